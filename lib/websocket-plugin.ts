import { Socket } from 'node:net'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { connectionOf } from './connection.js'
import { CloseCode, WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER } from './errors.js'
import type { ResolvedOptions, WsHubOptions } from './options.js'

// How the hub sits on @fastify/websocket: it registers the plugin itself, or adapts to the one the app
// registered, so that in both cases peer protocol errors are quiet, disconnect() sees the close code
// the client saw, and shutdown closes with 1001. Sockets of the hub's routes pass through `adopt`.

/** Prepares a new socket of a hub route before its handler starts. */
export type AdoptSocket = (socket: WebSocket, request: FastifyRequest) => void

/** What each socket of a hub route goes through: depends on who registers `@fastify/websocket`. */
export function socketAdopter (fastify: FastifyInstance, options: ResolvedOptions): AdoptSocket {
  if (fastify.hasDecorator('websocketServer')) return adoptForeign
  return options.websocket.errorHandler === undefined ? adoptOwn : adoptKeepingErrorListener
}

/** Registers `@fastify/websocket` with the hub's options, or, when the app has registered it already, reuses it. */
export async function setUpWebsocket (fastify: FastifyInstance, opts: WsHubOptions | undefined, options: ResolvedOptions): Promise<void> {
  if (fastify.hasDecorator('websocketServer')) {
    // The app registered @fastify/websocket itself: reuse it. The ws server reads maxPayload on each
    // upgrade, so an explicit maxPayload still applies.
    if (opts?.maxPayload !== undefined) fastify.websocketServer.options.maxPayload = options.maxPayload
    if (opts?.websocket !== undefined) {
      fastify.log.warn('fastify-ws-hub: @fastify/websocket is already registered, so the "websocket" option is ignored')
    }
    return
  }
  const websocket = options.websocket
  await fastify.register(fastifyWebsocket, {
    errorHandler: socketOnError,
    ...websocket,
    options: { ...websocket.options, maxPayload: options.maxPayload }
  })
  refuseLaterRegistration(fastify)
}

/**
 * Errors emitted by an established socket. A bad frame from the peer (ws has already answered it with
 * the right close code: 1002, 1007, 1009) or a connection reset is the peer's doing, not the server's:
 * it is logged at warn and debug rather than as an error, and the socket is left to finish its close
 * handshake instead of being terminated (which could discard the close frame ws just wrote). The
 * connection ends at once with the code the peer was sent, which `disconnect()` gets (ws itself stops
 * reading and would report 1006). The default handler of @fastify/websocket logs every one of them at
 * error level and terminates.
 */
export function socketOnError (error: Error & { code?: string }, socket: WebSocket, request: FastifyRequest): void {
  if (error.code?.startsWith('WS_ERR_') === true) {
    request.log.warn({ err: { code: error.code, message: error.message } }, 'ws protocol error from the peer')
    connectionOf(socket)?.close(sentCloseCode(error))
  } else {
    request.log.debug({ err: error }, 'ws socket error')
  }
}

/** The close code ws sent the peer for a protocol error (kept on the error under ws's `status-code` symbol). */
function sentCloseCode (error: Error & { code?: string }): number {
  const key = ownSymbol(error, 'status-code')
  const value = key === undefined ? undefined : (error as unknown as Record<symbol, unknown>)[key]
  if (typeof value === 'number') return value
  if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return CloseCode.MESSAGE_TOO_BIG
  return error.code === 'WS_ERR_INVALID_UTF8' ? CloseCode.INVALID_PAYLOAD : 1002
}

function adoptOwn (socket: WebSocket, request: FastifyRequest): void {
  useHubErrorListener(socket)
  adoptKeepingErrorListener(socket, request)
}

function adoptKeepingErrorListener (socket: WebSocket, request: FastifyRequest): void {
  releaseUpgrade(socket, request)
  if (!(socketStream(socket) instanceof Socket)) finishInjected(socket)
}

/**
 * @fastify/websocket's error listener on each socket is a closure over the request and the hijacked
 * reply, which it keeps alive for the life of the socket: one shared listener that finds the
 * connection replaces it.
 */
function useHubErrorListener (socket: WebSocket): void {
  socket.removeAllListeners('error')
  socket.on('error', onSocketError)
}

function onSocketError (this: WebSocket, error: Error & { code?: string }): void {
  const conn = connectionOf(this)
  // No connection: its class constructor threw, and the socket is already closing with 1011.
  if (conn !== undefined) socketOnError(error, this, conn.request)
}

/**
 * What @fastify/websocket holds for the life of a socket that nothing uses once ws has it: the
 * upgrade's head on the raw request (a slice that keeps the whole chunk the request was read in), and
 * the hijacked reply's ServerResponse, still assigned to the TCP socket. Released with the error
 * listener above, they are about 1.4 KB of heap per connection, a quarter of an idle one.
 */
function releaseUpgrade (socket: WebSocket, request: FastifyRequest): void {
  const raw = request.raw as unknown as Record<symbol, unknown>
  const head = ownSymbol(raw, 'ws-head')
  if (head !== undefined) raw[head] = undefined
  const tcp = socketStream(socket) as { _httpMessage?: { detachSocket?: (socket: unknown) => void } | null }
  tcp._httpMessage?.detachSocket?.(tcp)
}

/**
 * A socket of an app-registered @fastify/websocket: its error handler gives way to the hub's, and a
 * close without a code (what that plugin's own shutdown hook does, before the hub's runs) closes with
 * 1001, so that clients see what `disconnect()` sees.
 */
function adoptForeign (socket: WebSocket, request: FastifyRequest): void {
  useHubErrorListener(socket)
  const close = socket.close
  socket.close = function closeWithCode (code?: number, reason?: string | Buffer): void {
    if (code === undefined) {
      close.call(this, CloseCode.GOING_AWAY, 'Server shutting down')
      // The hub's own shutdown, which runs next, closes the connection with the same code.
      connectionOf(socket)?.close(CloseCode.GOING_AWAY, 'Server shutting down')
    } else {
      close.call(this, code, reason)
    }
  }
  adoptKeepingErrorListener(socket, request)
}

// A library's private symbol on an object, found by its description.
function ownSymbol (object: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(object).find(key => key.description === description)
}

// The underlying stream of a ws socket: a net.Socket, or the in-memory stream of @fastify/websocket's injectWS().
function socketStream (socket: WebSocket): unknown {
  return (socket as unknown as { _socket: unknown })._socket
}

/**
 * A socket of `app.injectWS()` runs over an in-memory duplex stream that, unlike a TCP socket, never
 * emits 'close' once both sides have ended: ws would wait for its 30 s close timer before reporting the
 * close. Destroying the stream when both directions are done makes a close reach `disconnect()` and
 * `app.close()` at once, as over TCP.
 */
function finishInjected (socket: WebSocket): void {
  const stream = socketStream(socket) as NodeJS.ReadWriteStream & { destroy (): void, once (event: string, listener: () => void): void }
  let done = 0
  const onDone = (): void => { if (++done === 2) stream.destroy() }
  stream.once('end', onDone)
  stream.once('finish', onDone)
}

/**
 * Once the hub has registered @fastify/websocket, registering it again would fail deep inside it with an
 * uncaught FST_ERR_DEC_ALREADY_PRESENT: fail that registration with an error that names the order to use.
 */
function refuseLaterRegistration (fastify: FastifyInstance): void {
  const register = fastify.register
  const guarded = function (this: FastifyInstance, plugin: unknown, ...rest: unknown[]) {
    const meta = (plugin as Record<symbol, { name?: string } | undefined> | null)?.[Symbol.for('plugin-meta')]
    if (meta?.name === '@fastify/websocket') {
      return (register as (...args: unknown[]) => unknown).call(this, async function websocketAfterHub () {
        throw new WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER()
      })
    }
    return (register as (...args: unknown[]) => unknown).call(this, plugin, ...rest)
  }
  fastify.register = guarded as typeof fastify.register
}
