import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Broker } from './broker/broker.js'
import { MemoryBroker } from './broker/memory.js'
import { isRedisClient, RedisBroker } from './broker/redis.js'
import { RedisHistoryStore } from './broker/redis-history.js'
import { RedisTrackerStore } from './broker/redis-tracker.js'
import { WSHUB_ERR_INVALID_OPTION } from './errors.js'
import { UpgradeGuard } from './guard.js'
import { Heartbeat } from './heartbeat.js'
import { History, MemoryHistoryStore } from './history.js'
import { Hub } from './hub.js'
import { MemoryTrackerStore, Tracker } from './presence.js'
import { installMetrics } from './metrics.js'
import { resolveOptions, type ResolvedOptions, type WsHubOptions } from './options.js'
import { createWsRoute, type WsRouteMethod } from './route.js'
import { setUpWebsocket, socketAdopter } from './websocket-plugin.js'

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /** The hub: every connection of this node by id, rooms, and sending from any handler. */
    ws: Hub
    /** Declares a WebSocket route with a function handler or a class extending `WebSocketHandler`. */
    wsRoute: WsRouteMethod<FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>, TypeProvider>
  }
}

/**
 * The broker the options ask for: in-process without `redis`, otherwise Redis, connected (or a
 * `WSHUB_ERR_REDIS_UNAVAILABLE` after `requestTimeout`).
 */
async function createBroker (fastify: FastifyInstance, options: ResolvedOptions): Promise<Broker> {
  if (options.redis === undefined) return new MemoryBroker()
  let redis = options.redis
  if (redis === true) {
    if (!fastify.hasDecorator('redis')) {
      throw new WSHUB_ERR_INVALID_OPTION('redis', 'true reuses app.redis from @fastify/redis; register @fastify/redis before fastify-ws-hub')
    }
    redis = (fastify as unknown as { redis: unknown }).redis as object
    if (!isRedisClient(redis)) {
      throw new WSHUB_ERR_INVALID_OPTION('redis', 'app.redis is not an ioredis client (with a namespaced @fastify/redis, pass the client itself)')
    }
  }
  const broker = new RedisBroker(redis, {
    keyPrefix: options.keyPrefix,
    nodeTtl: options.nodeTtl,
    requestTimeout: options.requestTimeout,
    log: fastify.log
  })
  try {
    await broker.connect()
  } catch (err) {
    await broker.close()
    throw err
  }
  return broker
}

/** The history module the options ask for: in Redis with a Redis broker, in memory otherwise, or none. */
function createHistory (broker: Broker, options: ResolvedOptions): History | null {
  const history = options.history
  if (history === false) return null
  const store = broker instanceof RedisBroker
    ? new RedisHistoryStore(broker, history.size, history.ttl, history.stamp)
    : new MemoryHistoryStore(broker, history.size, history.ttl, history.stamp)
  return new History(store, history)
}

/** Tracked presence: in Redis with a Redis broker, in memory otherwise. */
function createTracker (fastify: FastifyInstance, broker: Broker, options: ResolvedOptions): Tracker {
  const store = broker instanceof RedisBroker ? new RedisTrackerStore(broker, options.nodeTtl) : new MemoryTrackerStore()
  return new Tracker(store, fastify.log)
}

/**
 * The plugin: validates the options, builds the hub on the in-process or the Redis broker, decorates
 * `app.ws` and `app.wsRoute`, registers `@fastify/websocket` unless the app already has, installs the
 * defences (upgrade guard, heartbeat), and closes every connection with 1001 on `app.close()`.
 */
const wsHubPlugin: FastifyPluginAsync<WsHubOptions> = async function wsHub (fastify: FastifyInstance, opts: WsHubOptions) {
  const options = resolveOptions(opts)

  const broker = await createBroker(fastify, options)
  const hub = new Hub(broker, fastify.log, {
    backpressure: options.backpressure,
    rateLimit: options.rateLimit,
    requestTimeout: options.requestTimeout,
    maxRoomsPerConnection: options.maxRoomsPerConnection
  }, { history: createHistory(broker, options), tracker: createTracker(fastify, broker, options) })
  try {
    await hub.start()
    await installMetrics(fastify, hub, broker, options.metrics)
  } catch (err) {
    await hub.stop()
    throw err
  }
  let heartbeat: Heartbeat | undefined
  fastify.decorate('ws', hub)
  fastify.decorate('wsRoute', createWsRoute(hub, options.onMessage, socketAdopter(fastify, options)))

  // Added before @fastify/websocket is registered, so that this hook runs before its own preClose
  // (which closes sockets without a code): clients see 1001 and disconnect() handlers run first.
  fastify.addHook('preClose', async function closeConnections () {
    heartbeat?.stop()
    await hub.shutdown(fastify.websocketServer, options.closeTimeout)
  })
  fastify.addHook('onClose', async function stopHub () {
    await hub.stop()
  })

  await setUpWebsocket(fastify, opts, options)

  // Added after @fastify/websocket, whose own onRequest hook marks upgrade requests (request.ws).
  const guard = new UpgradeGuard(options)
  if (guard.active) fastify.addHook('onRequest', guard.onRequest)
  if (options.heartbeat !== false) heartbeat = new Heartbeat(fastify.websocketServer, options.heartbeat.interval)
}

/** The fastify-ws-hub plugin. */
const wsHub = fp(wsHubPlugin, { fastify: '5.x', name: 'fastify-ws-hub' })

export default wsHub
export { wsHub, wsHub as fastifyWsHub }

export { MemoryBroker, MemoryBus } from './broker/memory.js'
export { RedisBroker, type RedisBrokerOptions, type RedisInput } from './broker/redis.js'
export type {
  BroadcastEnvelope,
  Broker,
  Envelope,
  EnvelopeListener,
  Presence,
  PresenceSnapshot,
  ReplyEnvelope,
  RequestEnvelope,
  RequestOp
} from './broker/broker.js'
export { BaseConnection, Connection, type ConnectionState, type Message, type ParamsOf } from './connection.js'
export * from './errors.js'
export { WebSocketHandler, type WebSocketHandlerClass } from './handler.js'
export { Hub, RoomSender, type HubCounters, type HubModules, type HubObserver, type HubSettings, type HubStats } from './hub.js'
export type { HistoryEntry, JoinOptions, JoinResult } from './history.js'
export type { PresenceDiff, PresenceEntry, PresenceListener, PresenceMeta, PresenceState } from './presence.js'
export type { BackpressureAction, RateLimitAction, WsHubOptions } from './options.js'
export type { MetricsOption, MetricsRegistry } from './metrics.js'
export type {
  PathParams,
  SchemaType,
  WsHandlerFunction,
  WsRouteGeneric,
  WsRouteHandler,
  WsRouteMethod,
  WsRouteOptions,
  WsRouteShorthandOptions
} from './route.js'
export type { OnMessageHook } from './hooks.js'
export type { MethodDefinition, MethodHandler, Methods, MethodsRouteOptions } from './methods.js'
export { MAX_BATCH, RpcErrorCode, type CallOptions } from './rpc.js'
