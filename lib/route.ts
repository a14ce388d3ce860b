import type {
  FastifyInstance,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteGenericInterface,
  RouteShorthandOptions
} from 'fastify'
import type { WebSocket } from 'ws'
import { Connection, construct, type BaseConnection, type Message } from './connection.js'
import { CloseCode, WSHUB_ERR_INVALID_HANDLER } from './errors.js'
import { isHandlerClass, WebSocketHandler, type WebSocketHandlerClass } from './handler.js'
import { attachIntake, hooksOf, type IntakeWiring, type OnMessageHook } from './hooks.js'
import type { Hub } from './hub.js'
import { compileValidators, declareMethods, type MethodsRouteOptions } from './methods.js'
import { kFail, kHandlerReturned, kStartDispatch } from './symbols.js'

/** A function handler (ProAPI / Nexios style): gets the connection, may return a promise. */
export type WsHandlerFunction<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> =
  (conn: Connection<RouteGeneric>) => unknown

/** What `wsRoute` takes as a handler: a function, or a class extending `WebSocketHandler`. */
export type WsRouteHandler<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> =
  WsHandlerFunction<RouteGeneric> | WebSocketHandlerClass<RouteGeneric>

/**
 * Fastify route options a ws route takes: hooks, schemas, config, constraints, ... (they run before the
 * upgrade); and the ws route's message hooks (`onMessage`). `wsRoute` adds the JSON-RPC `methods`
 * (`MethodsRouteOptions`), typed with the app's type provider.
 */
export type WsRouteShorthandOptions<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> = Omit<
  RouteShorthandOptions<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, RouteGeneric>,
  'websocket' | 'handler' | 'wsHandler'
> & {
  /** Message hooks of this route, after the app's: see every incoming message before the handler and the methods. */
  onMessage?: OnMessageHook<BaseConnection<RouteGeneric>> | OnMessageHook<BaseConnection<RouteGeneric>>[]
}

/**
 * The options of a route with JSON-RPC `methods`: with a type provider, each method's `params` are typed
 * from its `schema.params`.
 */
type WithMethods<RouteGeneric extends RouteGenericInterface, Schemas, TypeProvider extends FastifyTypeProvider> =
  WsRouteShorthandOptions<RouteGeneric> & MethodsRouteOptions<Schemas, TypeProvider, BaseConnection<RouteGeneric>>

/** The object form, `wsRoute({ url, handler, ...options })`. */
export type WsRouteOptions<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> =
  WsRouteShorthandOptions<RouteGeneric> & { url: string, handler: WsRouteHandler<RouteGeneric> }

type Simplify<T> = { [K in keyof T]: T[K] } & {}
type ParamName<S extends string> = S extends `${infer Name}(${string}` ? Name : S
type SegmentParams<S extends string> =
  S extends `${infer Head}-${infer Tail}` ? SegmentParams<Head> & SegmentParams<Tail>
    : S extends `:${infer Name}?` ? { [K in ParamName<Name>]?: string }
      : S extends `:${infer Name}` ? { [K in ParamName<Name>]: string }
        : S extends '*' ? { '*': string } : unknown
type SplitParams<Path extends string> =
  Path extends `${infer Segment}/${infer Rest}` ? SegmentParams<Segment> & SplitParams<Rest> : SegmentParams<Path>

/**
 * The path parameters of a route path, as find-my-way names them: `'/chat/:room'` gives
 * `{ room: string }`, `'/opt/:id?'` gives `{ id?: string }`, `'/files/*'` gives `{ '*': string }`; a
 * path only known as `string` gives `Record<string, string>`.
 */
export type PathParams<Path extends string> =
  string extends Path ? Record<string, string> : Simplify<SplitParams<Path>>

/**
 * The default of the explicit-generic forms of `wsRoute`: no handler fits it. Without it, a handler
 * typed for other params than its path has (`{ id }` on `'/book/:bookId'`) would silently pick the
 * route generic from the handler and find `params.id` undefined at run time.
 */
interface ExplicitRouteGenericRequired extends RouteGenericInterface {
  Params: { readonly 'wsRoute: the handler expects params that the path does not have': never }
}

/** A class handler declared without a route generic (its params are `unknown`): it fits any path. */
type UntypedHandlerClass<Class extends WebSocketHandlerClass> =
  Class & (unknown extends InstanceType<Class>['params'] ? unknown : never)

/** `app.wsRoute`: declares a WebSocket route beside the HTTP ones. */
export interface WsRouteMethod<Instance, TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault> {
  /** A route whose `conn.params` are typed from the path (`'/chat/:room'` gives `{ room: string }`). */
  <const Path extends string, Schemas = Record<string, unknown>>(
    path: Path,
    handler: WsRouteHandler<{ Params: PathParams<Path> }>,
    options?: WithMethods<{ Params: PathParams<Path> }, Schemas, TypeProvider>
  ): Instance
  /** A class handler declared without a route generic. */
  <Class extends WebSocketHandlerClass, Schemas = Record<string, unknown>>(
    path: string, handler: UntypedHandlerClass<Class>, options?: WithMethods<RouteGenericInterface, Schemas, TypeProvider>
  ): Instance
  /** A route typed by an explicit route generic (`{ Params, Querystring, Headers }`). */
  <RouteGeneric extends RouteGenericInterface = ExplicitRouteGenericRequired, Schemas = Record<string, unknown>>(
    path: string,
    handler: WsRouteHandler<NoInfer<RouteGeneric>>,
    options?: WithMethods<NoInfer<RouteGeneric>, Schemas, TypeProvider>
  ): Instance
  /** The object form, typed from `url`. */
  <const Path extends string, Schemas = Record<string, unknown>>(
    options: WithMethods<{ Params: PathParams<Path> }, Schemas, TypeProvider> & { url: Path, handler: WsRouteHandler<{ Params: PathParams<Path> }> }
  ): Instance
  /** The object form with a class handler declared without a route generic. */
  <Class extends WebSocketHandlerClass, Schemas = Record<string, unknown>>(
    options: WithMethods<RouteGenericInterface, Schemas, TypeProvider> & { url: string, handler: UntypedHandlerClass<Class> }
  ): Instance
  /** The object form, typed by an explicit route generic. */
  <RouteGeneric extends RouteGenericInterface = ExplicitRouteGenericRequired, Schemas = Record<string, unknown>>(
    options: WithMethods<NoInfer<RouteGeneric>, Schemas, TypeProvider> & { url: string, handler: WsRouteHandler<NoInfer<RouteGeneric>> }
  ): Instance
}

type Start = (socket: WebSocket, request: FastifyRequest) => void

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as PromiseLike<unknown>).then === 'function'
}

/** A function handler: the connection is accepted first, then the function runs. */
function startFunction (hub: Hub, handler: WsHandlerFunction, wiring: IntakeWiring | null): Start {
  return (socket, request) => {
    const conn = construct(Connection, { id: hub.newId(), socket, request, hub })
    const intake = attachIntake(conn, wiring)
    conn.accept()
    intake?.start()
    let result: unknown
    try {
      result = handler(conn)
    } catch (err) {
      conn[kFail](err)
      return
    }
    if (isThenable(result)) {
      result.then(() => conn[kHandlerReturned](), (err: unknown) => conn[kFail](err))
    } else {
      conn[kHandlerReturned]()
    }
  }
}

/**
 * A class handler: one instance per connection; `connect()` decides on acceptance, then messages go to
 * `receive()` one at a time.
 */
function startClass (hub: Hub, Class: WebSocketHandlerClass, wiring: IntakeWiring | null): Start {
  const hasConnect = Class.prototype.connect !== WebSocketHandler.prototype.connect
  return (socket, request) => {
    let conn: WebSocketHandler
    try {
      conn = construct(Class, { id: hub.newId(), socket, request, hub })
    } catch (err) {
      request.log.error({ err }, 'ws handler constructor failed')
      socket.close(CloseCode.INTERNAL_ERROR, 'Internal error')
      return
    }
    const intake = attachIntake(conn, wiring)
    const dispatch = (message: Message): unknown => conn.receive(message)
    const afterConnect = (): void => {
      if (conn.closed) return
      if (!conn.accepted) {
        conn.close(CloseCode.POLICY_VIOLATION, 'Connection not accepted')
        return
      }
      conn[kStartDispatch](dispatch)
      intake?.start()
    }
    if (!hasConnect) {
      conn.accept()
      afterConnect()
      return
    }
    let result: unknown
    try {
      result = conn.connect(conn.params)
    } catch (err) {
      conn[kFail](err)
      return
    }
    if (isThenable(result)) result.then(afterConnect, (err: unknown) => conn[kFail](err))
    else afterConnect()
  }
}

/**
 * Turns a handler into the function `@fastify/websocket` calls after the upgrade.
 * @throws WSHUB_ERR_INVALID_HANDLER for anything but a function or a `WebSocketHandler` subclass
 */
function compileHandler (hub: Hub, url: string, handler: unknown, wiring: IntakeWiring | null): Start {
  if (isHandlerClass(handler)) return startClass(hub, handler, wiring)
  if (typeof handler !== 'function') {
    throw new WSHUB_ERR_INVALID_HANDLER(url, `expected a function or a class extending WebSocketHandler, got ${handler === null ? 'null' : typeof handler}`)
  }
  if (/^class\b/.test(Function.prototype.toString.call(handler))) {
    throw new WSHUB_ERR_INVALID_HANDLER(url, `class ${handler.name || '(anonymous)'} does not extend WebSocketHandler`)
  }
  return startFunction(hub, handler as WsHandlerFunction, wiring)
}

/**
 * Builds `app.wsRoute` for a hub. It declares a `GET` route with `websocket: true` on the instance it is
 * called on, so an encapsulated plugin's prefix, hooks and schemas apply, and hooks run before the
 * upgrade (a hook that replies refuses the handshake with that reply).
 */
export function createWsRoute (hub: Hub, appHooks: readonly OnMessageHook[] = []): WsRouteMethod<FastifyInstance> {
  return function wsRoute (this: FastifyInstance, pathOrOptions: unknown, handler?: unknown, options?: unknown): FastifyInstance {
    let routeOptions: Record<string, unknown>
    if (typeof pathOrOptions === 'string') {
      if (options !== undefined && (typeof options !== 'object' || options === null)) {
        throw new WSHUB_ERR_INVALID_HANDLER(pathOrOptions, 'route options must be an object')
      }
      routeOptions = { ...(options as object), url: pathOrOptions, handler }
    } else if (typeof pathOrOptions === 'object' && pathOrOptions !== null && typeof (pathOrOptions as { url?: unknown }).url === 'string') {
      routeOptions = { ...pathOrOptions }
    } else {
      throw new WSHUB_ERR_INVALID_HANDLER(String(pathOrOptions), 'wsRoute takes (path, handler, options?) or ({ url, handler, ...options })')
    }
    const url = routeOptions.url as string
    const { methods, concurrency, callTimeout, onMessage, ...fastifyOptions } = routeOptions
    const rpc = declareMethods(url, { methods, concurrency, callTimeout })
    const routeHooks = hooksOf(onMessage)
    if (routeHooks === null) throw new WSHUB_ERR_INVALID_HANDLER(url, 'onMessage must be a function or an array of functions')
    const hooks = [...appHooks, ...routeHooks]
    const wiring = rpc === null && hooks.length === 0 ? null : { hooks, rpc }
    const start = compileHandler(hub, url, routeOptions.handler, wiring)
    if (rpc !== null) {
      const instance = this
      this.addHook('onReady', function compileMethodSchemas (done) {
        try {
          compileValidators(instance, url, rpc, fastifyOptions.validatorCompiler)
        } catch (err) {
          done(err as Error)
          return
        }
        done()
      })
    }
    this.route({
      ...fastifyOptions,
      url: routeOptions.url as string,
      method: 'GET',
      websocket: true,
      handler: start as never
    })
    return this
  } as WsRouteMethod<FastifyInstance>
}

export type { BaseConnection }
