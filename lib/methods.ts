import type { FastifyInstance, FastifyTypeProvider, FastifyTypeProviderDefault } from 'fastify'
import AjvCompiler from '@fastify/ajv-compiler'
import type { BaseConnection } from './connection.js'
import { WSHUB_ERR_INVALID_HANDLER } from './errors.js'
import { DEFAULT_CALL_TIMEOUT, type CompiledMethod, type ParamsValidator, type RpcRoute } from './rpc.js'

/** The type a type provider gives a schema (`unknown` without one). */
type ResolveSchema<TypeProvider extends FastifyTypeProvider, Schema> =
  unknown extends Schema ? unknown : (TypeProvider & { schema: Schema })['validator']

/** A method handler: the call's params and the connection; what it returns (or resolves) is the result. */
export type MethodHandler<Params = unknown, Conn = BaseConnection> = (params: Params, conn: Conn) => unknown

/**
 * A method with options: `schema.params` (a JSON Schema, such as a TypeBox schema) is compiled with the
 * app's validator compiler; params that fail it get a -32602 error and the handler does not run.
 */
export interface MethodDefinition<Schema = unknown, TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault, Conn = BaseConnection> {
  schema?: { params?: Schema }
  handler: MethodHandler<ResolveSchema<TypeProvider, Schema>, Conn>
}

/**
 * The `methods` route option: each method a handler, or `{ schema, handler }`. With a type provider,
 * a method's `params` are typed from its `schema.params`.
 */
export type Methods<Schemas = Record<string, unknown>, TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault, Conn = BaseConnection> = {
  [Name in keyof Schemas]: MethodHandler<unknown, Conn> | MethodDefinition<Schemas[Name], TypeProvider, Conn>
}

/** The route options of a methods route. */
export interface MethodsRouteOptions<Schemas = Record<string, unknown>, TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault, Conn = BaseConnection> {
  /** JSON-RPC 2.0 methods: the route then speaks JSON-RPC over its text frames. */
  methods?: Methods<Schemas, TypeProvider, Conn>
  /** How many calls of one connection run at once (default 1: one at a time, in arrival order). */
  concurrency?: number
  /** Ms `conn.call()` and `app.ws.call()` wait for the client's response by default (default 10 000). */
  callTimeout?: number
}

function positiveInteger (url: string, name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new WSHUB_ERR_INVALID_HANDLER(url, `${name} must be a positive integer`)
  }
  return value
}

/**
 * Reads a route's `methods`, `concurrency` and `callTimeout`; null for a route without methods. The
 * validators are compiled later, by {@link compileValidators}, once the app's validator compiler is known.
 * @throws WSHUB_ERR_INVALID_HANDLER for a method that is neither a function nor `{ handler }`
 */
export function declareMethods (url: string, options: Record<string, unknown>): RpcRoute | null {
  const { methods, concurrency, callTimeout } = options
  if (methods === undefined) {
    if (concurrency !== undefined || callTimeout !== undefined) {
      throw new WSHUB_ERR_INVALID_HANDLER(url, 'concurrency and callTimeout go with methods')
    }
    return null
  }
  if (methods === null || typeof methods !== 'object' || Array.isArray(methods)) {
    throw new WSHUB_ERR_INVALID_HANDLER(url, 'methods must be an object of method names to handlers')
  }
  const compiled = new Map<string, CompiledMethod>()
  for (const [name, method] of Object.entries(methods)) {
    if (typeof method === 'function') {
      compiled.set(name, { handler: method as CompiledMethod['handler'], schema: undefined, validate: null })
      continue
    }
    const definition = method as { handler?: unknown, schema?: { params?: unknown } } | null
    if (definition === null || typeof definition !== 'object' || typeof definition.handler !== 'function') {
      throw new WSHUB_ERR_INVALID_HANDLER(url, `method "${name}" must be a function or { schema?, handler }`)
    }
    if (definition.schema !== undefined && (definition.schema === null || typeof definition.schema !== 'object')) {
      throw new WSHUB_ERR_INVALID_HANDLER(url, `method "${name}": schema must be an object ({ params })`)
    }
    compiled.set(name, { handler: definition.handler as CompiledMethod['handler'], schema: definition.schema?.params, validate: null })
  }
  return {
    methods: compiled,
    concurrency: positiveInteger(url, 'concurrency', concurrency, 1),
    callTimeout: positiveInteger(url, 'callTimeout', callTimeout, DEFAULT_CALL_TIMEOUT)
  }
}

type ValidatorCompiler = (routeSchema: { schema: unknown, method: string, url: string, httpPart?: string }) => ParamsValidator

/**
 * Compiles each method's `schema.params`, once, with the validator compiler that the route's own
 * schemas get: the route's `validatorCompiler` option, else the one the app set with
 * `setValidatorCompiler`, else Fastify's Ajv (with the schemas added by `addSchema`). The params are
 * validated as a request body is (`httpPart: 'body'`).
 * @throws WSHUB_ERR_INVALID_HANDLER for a schema that does not compile
 */
export function compileValidators (instance: FastifyInstance, url: string, route: RpcRoute, routeCompiler: unknown): void {
  const compiler = (routeCompiler ?? instance.validatorCompiler) as ValidatorCompiler | undefined
  let ajv: ValidatorCompiler | undefined
  const fastifyAjv = (): ValidatorCompiler => (ajv ??= defaultCompiler(instance))
  for (const [name, method] of route.methods) {
    if (method.schema === undefined) continue
    const routeSchema = { schema: method.schema, method: 'GET', url, httpPart: 'body' }
    try {
      method.validate = compileOne(compiler, routeSchema, fastifyAjv, routeCompiler === undefined)
    } catch (err) {
      const failed = new WSHUB_ERR_INVALID_HANDLER(url, `the params schema of method "${name}" does not compile: ${(err as Error).message}`)
      failed.cause = err
      throw failed
    }
  }
}

/**
 * Compiles one schema with `compiler`, or with Fastify's Ajv when there is none yet. The compiler
 * Fastify built for an outer plugin does not know the schemas that an inner plugin added (Fastify builds
 * the inner plugin's own only for a route of its own with a schema): when it cannot resolve a `$ref`
 * (Ajv's `MissingRefError`), Fastify's Ajv with this plugin's schemas gets a try, unless the route named
 * its compiler.
 */
function compileOne (compiler: ValidatorCompiler | undefined, routeSchema: Parameters<ValidatorCompiler>[0], fastifyAjv: () => ValidatorCompiler, mayFallBack: boolean): ParamsValidator {
  if (compiler === undefined) return fastifyAjv()(routeSchema)
  try {
    return compiler(routeSchema)
  } catch (err) {
    if (!mayFallBack || (err as { missingRef?: unknown }).missingRef === undefined) throw err
    try {
      return fastifyAjv()(routeSchema)
    } catch {
      throw err
    }
  }
}

// Fastify builds its Ajv only once some route has a schema to validate; a methods route may be the
// only one, so it builds the same compiler itself (the default options, and the app's shared schemas).
function defaultCompiler (instance: FastifyInstance): ValidatorCompiler {
  const build = (AjvCompiler as unknown as () => (schemas: unknown, options: unknown) => ValidatorCompiler)()
  return build(instance.getSchemas(), { customOptions: {}, plugins: [] })
}
