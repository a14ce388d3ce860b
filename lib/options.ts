import type { WebsocketPluginOptions } from '@fastify/websocket'
import type { RedisInput } from './broker/redis.js'
import { DEFAULT_CLOSE_TIMEOUT, DEFAULTS } from './constants.js'
import { WSHUB_ERR_INVALID_OPTION } from './errors.js'
import { metricsOption, type MetricsOption } from './metrics.js'
import { hooksOf, type OnMessageHook } from './hooks.js'
import type { HistoryOptions } from './history.js'

/** What `backpressure.action` may be. */
export type BackpressureAction = 'close' | 'drop'

/** What `rateLimit.action` may be. */
export type RateLimitAction = 'close' | 'drop'

/** The options of `app.register(wsHub, options)`; every one is optional. */
export interface WsHubOptions {
  /** The largest frame accepted, in bytes; a larger one closes the socket with 1009. Default 1 MiB. */
  maxPayload?: number
  /** Ping every `interval` ms; a peer that has not answered by the next ping is terminated. `false` turns it off. */
  heartbeat?: false | { interval?: number }
  /** When a socket's buffered outgoing bytes pass `limit`: `'close'` it (1013) or `'drop'` messages to it. */
  backpressure?: { limit?: number, action?: BackpressureAction }
  /** Origins allowed to open a connection (others get HTTP 403), or a function that decides. */
  allowedOrigins?: readonly string[] | ((origin: string | undefined) => boolean)
  /**
   * Redis for more than one process: a `redis://` URL, ioredis options, an ioredis client (used, never
   * closed, by the plugin), `true` for `app.redis` of `@fastify/redis`, or a Redis Cluster:
   * `{ cluster: [{ host, port }, ...], ...ioredis cluster options }` or an ioredis `Cluster`.
   */
  redis?: RedisInput | true
  /** Prefix of Redis keys and channels. Default `'wshub:'`. */
  keyPrefix?: string
  /** Ms after which a silent node drops out of cluster answers. Default 15 000. */
  nodeTtl?: number
  /** Ms a cross-node call waits for its reply. Default 5 000. */
  requestTimeout?: number
  /** Ms `app.close()` waits for close handshakes before terminating the sockets left. Default 5 000. */
  closeTimeout?: number
  /** At most `max` messages per connection per `windowMs`; past it `'drop'` them or `'close'` (1008). Off by default. */
  rateLimit?: false | { max: number, windowMs?: number, action?: RateLimitAction }
  /** At most this many WebSocket connections on this node; more are refused before the upgrade with 503. */
  maxConnections?: number
  /** At most this many WebSocket connections from one client IP (`request.ip`); more get 429. */
  maxConnectionsPerIp?: number
  /** At most this many rooms per connection; a join past it rejects with `WSHUB_ERR_TOO_MANY_ROOMS`. Default 10 000. */
  maxRoomsPerConnection?: number
  /** Passed through to `@fastify/websocket` when the hub registers it. */
  websocket?: WebsocketPluginOptions
  /** Message hooks of every ws route of the app, before the route's own (a function or an array). */
  onMessage?: OnMessageHook | OnMessageHook[]
  /**
   * Keep each room's recent messages for recovery after a reconnect: the last `size` (default 100), none
   * older than `ttl` ms (default 300 000); `stamp` names a property set to the message's offset in
   * single-room plain-object messages. In Redis with `redis`, in memory otherwise. Default `false` (off).
   */
  history?: false | { size?: number, ttl?: number, stamp?: string }
  /**
   * Prometheus metrics (`wshub_...`, with the optional package prom-client): `true` registers them in
   * fastify-metrics' registry when it is registered, else in prom-client's default registry;
   * `{ registry }` in that prom-client `Registry`. Off by default.
   */
  metrics?: MetricsOption
}

/** The options with every default filled in. */
export interface ResolvedOptions {
  maxPayload: number
  heartbeat: false | { interval: number }
  backpressure: { limit: number, action: BackpressureAction }
  allowedOrigins: readonly string[] | ((origin: string | undefined) => boolean) | undefined
  redis: RedisInput | true | undefined
  keyPrefix: string
  nodeTtl: number
  requestTimeout: number
  closeTimeout: number
  rateLimit: false | { max: number, windowMs: number, action: RateLimitAction }
  maxConnections: number
  maxConnectionsPerIp: number
  maxRoomsPerConnection: number
  websocket: WebsocketPluginOptions
  onMessage: OnMessageHook[]
  history: false | HistoryOptions
  metrics: MetricsOption
}

const KNOWN = new Set([
  'maxPayload', 'heartbeat', 'backpressure', 'allowedOrigins', 'redis', 'keyPrefix', 'nodeTtl',
  'requestTimeout', 'closeTimeout', 'rateLimit', 'maxConnections', 'maxConnectionsPerIp', 'maxRoomsPerConnection', 'websocket',
  'onMessage', 'history', 'metrics'
])

// Options that Fastify's register() itself takes and passes on to every plugin.
const FASTIFY_OWN = new Set(['prefix', 'logLevel', 'logSerializers'])

function fail (name: string, expected: string, value: unknown): never {
  const shown = typeof value === 'string' ? JSON.stringify(value) : typeof value === 'function' ? 'a function' : String(value)
  throw new WSHUB_ERR_INVALID_OPTION(name, `expected ${expected}, got ${shown}`)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function positiveInteger (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) fail(name, 'a positive integer', value)
  return value
}

function heartbeat (value: unknown): ResolvedOptions['heartbeat'] {
  if (value === undefined) return { interval: DEFAULTS.heartbeatInterval }
  if (value === false) return false
  if (!isPlainObject(value)) fail('heartbeat', 'false or { interval }', value)
  return { interval: positiveInteger('heartbeat.interval', value.interval, DEFAULTS.heartbeatInterval) }
}

function backpressure (value: unknown): ResolvedOptions['backpressure'] {
  if (value === undefined) return { limit: DEFAULTS.backpressureLimit, action: DEFAULTS.backpressureAction }
  if (!isPlainObject(value)) fail('backpressure', '{ limit, action }', value)
  const action = value.action ?? DEFAULTS.backpressureAction
  if (action !== 'close' && action !== 'drop') fail('backpressure.action', "'close' or 'drop'", action)
  return { limit: positiveInteger('backpressure.limit', value.limit, DEFAULTS.backpressureLimit), action }
}

function allowedOrigins (value: unknown): ResolvedOptions['allowedOrigins'] {
  if (value === undefined || typeof value === 'function') return value as ResolvedOptions['allowedOrigins']
  if (!Array.isArray(value) || !value.every(origin => typeof origin === 'string' && origin.length > 0)) {
    fail('allowedOrigins', 'an array of origin strings or a function', value)
  }
  return Object.freeze([...value])
}

function rateLimit (value: unknown): ResolvedOptions['rateLimit'] {
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) fail('rateLimit', 'false or { max, windowMs, action }', value)
  if (value.max === undefined) fail('rateLimit.max', 'a positive integer', value.max)
  const action = value.action ?? 'drop'
  if (action !== 'close' && action !== 'drop') fail('rateLimit.action', "'close' or 'drop'", action)
  return {
    max: positiveInteger('rateLimit.max', value.max, 0),
    windowMs: positiveInteger('rateLimit.windowMs', value.windowMs, DEFAULTS.rateLimitWindow),
    action
  }
}

function history (value: unknown): ResolvedOptions['history'] {
  if (value === undefined || value === false) return false
  if (!isPlainObject(value)) fail('history', 'false or { size, ttl, stamp }', value)
  const stamp = value.stamp
  if (stamp !== undefined && (typeof stamp !== 'string' || stamp.length === 0)) fail('history.stamp', 'a non-empty property name', stamp)
  return {
    size: positiveInteger('history.size', value.size, DEFAULTS.historySize),
    ttl: positiveInteger('history.ttl', value.ttl, DEFAULTS.historyTtl),
    stamp: stamp ?? null
  }
}

function redis (value: unknown): ResolvedOptions['redis'] {
  if (value === undefined) return undefined
  if (value !== true && typeof value !== 'string' && !isPlainObject(value)) {
    fail('redis', 'a URL string, ioredis options, an ioredis client or true', value)
  }
  if (typeof value === 'string' && !/^rediss?:\/\//.test(value)) fail('redis', 'a redis:// or rediss:// URL', value)
  const client = isPlainObject(value) && typeof value.duplicate === 'function'
  if (isPlainObject(value) && !client && 'cluster' in value && (!Array.isArray(value.cluster) || value.cluster.length === 0)) {
    fail('redis.cluster', 'a non-empty list of { host, port } startup nodes', value.cluster)
  }
  return value as ResolvedOptions['redis']
}

/**
 * Checks every option and fills in the defaults.
 * @throws WSHUB_ERR_INVALID_OPTION naming the first option of the wrong type or value
 */
export function resolveOptions (options: unknown): ResolvedOptions {
  if (options === undefined || options === null) options = {}
  if (!isPlainObject(options)) fail('options', 'an object', options)
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key) && !FASTIFY_OWN.has(key)) throw new WSHUB_ERR_INVALID_OPTION(key, `unknown option; the options are ${[...KNOWN].join(', ')}`)
  }
  const keyPrefix = options.keyPrefix ?? DEFAULTS.keyPrefix
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0) fail('keyPrefix', 'a non-empty string', keyPrefix)
  // A brace in the prefix would take the place of a room's hash tag.
  if (/[{}]/.test(keyPrefix)) fail('keyPrefix', 'a string without { or } (the room names are the hash tags)', keyPrefix)
  const websocket = options.websocket ?? {}
  if (!isPlainObject(websocket)) fail('websocket', 'an object of @fastify/websocket options', websocket)
  const onMessage = hooksOf(options.onMessage)
  if (onMessage === null) fail('onMessage', 'a function or an array of functions', options.onMessage)
  return {
    maxPayload: positiveInteger('maxPayload', options.maxPayload, DEFAULTS.maxPayload),
    heartbeat: heartbeat(options.heartbeat),
    backpressure: backpressure(options.backpressure),
    allowedOrigins: allowedOrigins(options.allowedOrigins),
    redis: redis(options.redis),
    keyPrefix,
    nodeTtl: positiveInteger('nodeTtl', options.nodeTtl, DEFAULTS.nodeTtl),
    requestTimeout: positiveInteger('requestTimeout', options.requestTimeout, DEFAULTS.requestTimeout),
    closeTimeout: positiveInteger('closeTimeout', options.closeTimeout, DEFAULT_CLOSE_TIMEOUT),
    rateLimit: rateLimit(options.rateLimit),
    maxConnections: positiveInteger('maxConnections', options.maxConnections, Infinity),
    maxConnectionsPerIp: positiveInteger('maxConnectionsPerIp', options.maxConnectionsPerIp, Infinity),
    maxRoomsPerConnection: positiveInteger('maxRoomsPerConnection', options.maxRoomsPerConnection, DEFAULTS.maxRoomsPerConnection),
    websocket: websocket as WebsocketPluginOptions,
    onMessage,
    history: history(options.history),
    metrics: metricsOption(options.metrics)
  }
}
