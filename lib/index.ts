import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { MemoryBroker } from './broker/memory.js'
import { WSHUB_ERR_INVALID_OPTION } from './errors.js'
import { Hub } from './hub.js'
import { resolveOptions, type WsHubOptions } from './options.js'
import { createWsRoute, type WsRouteMethod } from './route.js'

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /** The hub: every connection of this node by id, rooms, and sending from any handler. */
    ws: Hub
    /** Declares a WebSocket route with a function handler or a class extending `WebSocketHandler`. */
    wsRoute: WsRouteMethod<FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider>>
  }
}

/**
 * The plugin: validates the options, builds the hub, decorates `app.ws` and `app.wsRoute`, registers
 * `@fastify/websocket` unless the app already has, and closes every connection with 1001 on `app.close()`.
 */
const wsHubPlugin: FastifyPluginAsync<WsHubOptions> = async function wsHub (fastify: FastifyInstance, opts: WsHubOptions) {
  const options = resolveOptions(opts)
  if (options.redis !== undefined) {
    throw new WSHUB_ERR_INVALID_OPTION('redis', 'this version runs on one process only; the Redis broker is not available yet')
  }

  const hub = new Hub(new MemoryBroker(), fastify.log)
  await hub.start()
  fastify.decorate('ws', hub)
  fastify.decorate('wsRoute', createWsRoute(hub))

  // Added before @fastify/websocket is registered, so that this hook runs before its own preClose
  // (which closes sockets without a code): clients see 1001 and disconnect() handlers run first.
  fastify.addHook('preClose', async function closeConnections () {
    await hub.shutdown(fastify.websocketServer, options.closeTimeout)
  })
  fastify.addHook('onClose', async function stopHub () {
    await hub.stop()
  })

  if (fastify.hasDecorator('websocketServer')) {
    // The app registered @fastify/websocket itself: reuse it. The ws server reads maxPayload on each
    // upgrade, so an explicit maxPayload still applies.
    if (opts?.maxPayload !== undefined) fastify.websocketServer.options.maxPayload = options.maxPayload
    if (opts?.websocket !== undefined) {
      fastify.log.warn('fastify-ws-hub: @fastify/websocket is already registered, so the "websocket" option is ignored')
    }
  } else {
    const websocket = options.websocket
    await fastify.register(fastifyWebsocket, {
      ...websocket,
      options: { ...websocket.options, maxPayload: options.maxPayload }
    })
  }
}

/** The fastify-ws-hub plugin. */
const wsHub = fp(wsHubPlugin, { fastify: '5.x', name: 'fastify-ws-hub' })

export default wsHub
export { wsHub, wsHub as fastifyWsHub }

export { MemoryBroker, MemoryBus } from './broker/memory.js'
export type { Broker, Envelope, EnvelopeListener } from './broker/broker.js'
export { BaseConnection, Connection, type Message, type ParamsOf } from './connection.js'
export * from './errors.js'
export { WebSocketHandler, type WebSocketHandlerClass } from './handler.js'
export { Hub, RoomSender, type HubStats } from './hub.js'
export type { BackpressureAction, WsHubOptions } from './options.js'
export type { PathParams, WsHandlerFunction, WsRouteHandler, WsRouteMethod, WsRouteOptions, WsRouteShorthandOptions } from './route.js'
