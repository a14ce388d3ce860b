import type {
  ContextConfigDefault,
  FastifyInstance,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
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
 * (`MethodsRouteOptions`), typed with the app's type provider. The hooks' `request` is typed by
 * `RouteGeneric`; `SchemaCompiler` is the route's `schema` and `TypeProvider` the app's type provider,
 * as in Fastify's own route options.
 */
export type WsRouteShorthandOptions<
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
> = Omit<
  RouteShorthandOptions<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, RouteGeneric, ContextConfigDefault, SchemaCompiler, TypeProvider>,
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
  WsRouteShorthandOptions<RouteGeneric, FastifySchema, TypeProvider> & MethodsRouteOptions<Schemas, TypeProvider, BaseConnection<RouteGeneric>>

/** The object form, `wsRoute({ url, handler, ...options })`. */
export type WsRouteOptions<
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
> = WsRouteShorthandOptions<RouteGeneric, SchemaCompiler, TypeProvider> & { url: string, handler: WsRouteHandler<RouteGeneric> }

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
 * The type a type provider gives a JSON schema: with `@fastify/type-provider-typebox`, the static type
 * of a TypeBox schema; `unknown` with Fastify's default provider.
 */
export type SchemaType<TypeProvider extends FastifyTypeProvider, Schema> = (TypeProvider & { schema: Schema })['validator']

// One part of the route generic: from the route's schema when the type provider types it, else `Fallback`.
type FromSchema<TypeProvider extends FastifyTypeProvider, SchemaCompiler, Key extends string, Fallback> =
  SchemaCompiler extends { readonly [K in Key]: infer Part }
    ? unknown extends SchemaType<TypeProvider, Part> ? Fallback : SchemaType<TypeProvider, Part>
    : Fallback

type Flatten<T> = { [K in keyof T]: T[K] }
// A part of the route generic that the schema types, or nothing (so that Fastify's defaults apply).
type SchemaPart<TypeProvider extends FastifyTypeProvider, SchemaCompiler, Key extends string, Name extends string> =
  unknown extends FromSchema<TypeProvider, SchemaCompiler, Key, unknown> ? {} : { [K in Name]: FromSchema<TypeProvider, SchemaCompiler, Key, unknown> }

/**
 * The route generic of a ws route declared without an explicit one: `Params` from `schema.params` when
 * the app's type provider types it, else from the path; `Querystring` and `Headers` from
 * `schema.querystring` and `schema.headers` when the type provider types them (`unknown` otherwise, as
 * in Fastify). Without a schema, `'/chat/:room'` gives `{ Params: { room: string } }`.
 */
export type WsRouteGeneric<
  Path extends string,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
> = Flatten<
  { Params: FromSchema<TypeProvider, SchemaCompiler, 'params', PathParams<Path>> } &
  SchemaPart<TypeProvider, SchemaCompiler, 'querystring', 'Querystring'> &
  SchemaPart<TypeProvider, SchemaCompiler, 'headers', 'Headers'>
>

/**
 * The default of the explicit-generic forms of `wsRoute`: no handler fits it. Without it, a handler
 * typed for other params than its path has (`{ id }` on `'/book/:bookId'`) would silently pick the
 * route generic from the handler and find `params.id` undefined at run time.
 */
interface ExplicitRouteGenericRequired extends RouteGenericInterface {
  Params: { readonly 'wsRoute: the handler expects params that the path does not have': never }
}

/** What a class handler's `connect()` override takes as its params. */
type ConnectParams<Class extends WebSocketHandlerClass> =
  Parameters<InstanceType<Class>['connect']> extends [infer Params, ...unknown[]] ? Params : unknown

/**
 * A class handler declared without a route generic (its `this.params` are `unknown`): it fits a route
 * whose params its `connect(params)` override accepts (any route without an override). On a path only
 * known as `string`, the params cannot be checked and any override fits.
 */
type UntypedHandlerClass<Class extends WebSocketHandlerClass, Path extends string, Params> =
  Class & (unknown extends InstanceType<Class>['params']
    ? string extends Path ? unknown : [Params] extends [ConnectParams<Class>] ? unknown : never
    : never)

/**
 * The route options of the inferred forms of `wsRoute`. `schema` alone decides `SchemaCompiler`; the
 * hooks' `request` is typed by the route generic resolved from it (so a hook declared apart, typed for
 * Fastify's defaults, fits as it does on an HTTP route).
 */
type InferredRouteOptions<Path extends string, SchemaCompiler extends FastifySchema, TypeProvider extends FastifyTypeProvider, Schemas> =
  WithMethods<WsRouteGeneric<Path, NoInfer<SchemaCompiler>, TypeProvider>, Schemas, TypeProvider> & { schema?: SchemaCompiler }

/**
 * `app.wsRoute`: declares a WebSocket route beside the HTTP ones. `TypeProvider` is the app's (see
 * `withTypeProvider()`): with one, the route's `schema` types `conn.params`, `conn.query`,
 * `conn.headers` and the hooks' `request`.
 */
export interface WsRouteMethod<Instance, TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault> {
  /** A route whose `conn.params` are typed from the path (`'/chat/:room'` gives `{ room: string }`) or `schema.params`. */
  <const Path extends string, const SchemaCompiler extends FastifySchema = FastifySchema, Schemas = Record<string, unknown>>(
    path: Path,
    handler: WsRouteHandler<WsRouteGeneric<Path, SchemaCompiler, TypeProvider>>,
    options?: InferredRouteOptions<Path, SchemaCompiler, TypeProvider, Schemas>
  ): Instance
  /** A class handler declared without a route generic. */
  <const Path extends string, Class extends WebSocketHandlerClass, const SchemaCompiler extends FastifySchema = FastifySchema, Schemas = Record<string, unknown>>(
    path: Path,
    handler: UntypedHandlerClass<Class, Path, WsRouteGeneric<Path, SchemaCompiler, TypeProvider>['Params']>,
    options?: InferredRouteOptions<Path, SchemaCompiler, TypeProvider, Schemas>
  ): Instance
  /** A route typed by an explicit route generic (`{ Params, Querystring, Headers }`). */
  <RouteGeneric extends RouteGenericInterface = ExplicitRouteGenericRequired, Schemas = Record<string, unknown>>(
    path: string,
    handler: WsRouteHandler<NoInfer<RouteGeneric>>,
    options?: WithMethods<NoInfer<RouteGeneric>, Schemas, TypeProvider>
  ): Instance
  /** The object form, typed from `url` (or `schema.params`). */
  <const Path extends string, const SchemaCompiler extends FastifySchema = FastifySchema, Schemas = Record<string, unknown>>(
    options: InferredRouteOptions<Path, SchemaCompiler, TypeProvider, Schemas> &
      { url: Path, handler: WsRouteHandler<WsRouteGeneric<Path, SchemaCompiler, TypeProvider>> }
  ): Instance
  /** The object form with a class handler declared without a route generic. */
  <const Path extends string, Class extends WebSocketHandlerClass, const SchemaCompiler extends FastifySchema = FastifySchema, Schemas = Record<string, unknown>>(
    options: InferredRouteOptions<Path, SchemaCompiler, TypeProvider, Schemas> &
      { url: Path, handler: UntypedHandlerClass<Class, Path, WsRouteGeneric<Path, SchemaCompiler, TypeProvider>['Params']> }
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
export function createWsRoute (hub: Hub, appHooks: readonly OnMessageHook[] = [], adopt?: (socket: WebSocket, request: FastifyRequest) => void): WsRouteMethod<FastifyInstance> {
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
    const compiled = compileHandler(hub, url, routeOptions.handler, wiring)
    const start: Start = adopt === undefined ? compiled : (socket, request) => { adopt(socket, request); compiled(socket, request) }
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
