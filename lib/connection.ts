import type { FastifyBaseLogger, FastifyRequest, RouteGenericInterface } from 'fastify'
import type { WebSocket } from 'ws'
import { closeError } from './close.js'
import { OPEN } from './constants.js'
import {
  CloseCode,
  WebSocketDisconnect,
  WSHUB_ERR_CONNECTION_CLOSED,
  WSHUB_ERR_HANDLER_CONSTRUCTED,
  WSHUB_ERR_INVALID_JSON,
  WSHUB_ERR_INVALID_PAYLOAD,
  WSHUB_ERR_NOT_ACCEPTED,
  WSHUB_ERR_RPC_UNAVAILABLE,
  WSHUB_ERR_UNEXPECTED_FRAME
} from './errors.js'
import type { JoinOptions, JoinResult, Recovery } from './history.js'
import type { Hub, RoomSender } from './hub.js'
import { Inbox, type Message } from './inbox.js'
import type { Intake } from './hooks.js'
import { toJson, toWire, type Outgoing } from './message.js'
import { deliver, drained, send, trySend } from './outbox.js'
import { stopReading, watchPeer } from './peer.js'
import {
  kDeliver, kFail, kHandlerReturned, kInit, kNext, kNextResult, kOnDisconnect, kOnMessage, kOnPeerClose, kOnSocketClose, kReceive, kSetIntake,
  kSocketClosed, kStartDispatch, kTrySend, kRecovery
} from './symbols.js'
import { sendNotification, type CallOptions } from './rpc.js'

export type { Message }

/** What a route hands a new connection. */
export interface ConnectionInit {
  id: string
  socket: WebSocket
  request: FastifyRequest
  hub: Hub
}

// Connection states: not yet accepted (a class handler inside connect()), accepted, closed.
const PENDING = 0
const ACCEPTED = 1
const CLOSED = 2

// What happens to an incoming message.
const QUEUE = 0 // into the inbox, for receive*(), the iterator, or a class handler not yet dispatching
const DISPATCH = 1 // straight to the class handler's receive(), one at a time
const DISCARD = 2 // dropped unless someone waits: the function handler returned without ever reading

const RESOLVED = Promise.resolve()

// A connection is built by its route, which hands its init over through this variable for the length
// of one synchronous `new`. That keeps the constructor free of arguments, so a class handler may
// declare its own constructor without having to pass anything on to `super()`.
let pendingInit: ConnectionInit | undefined

/**
 * Builds a connection or class-handler instance for a route.
 * @internal
 */
export function construct<C extends BaseConnection> (Class: new () => C, init: ConnectionInit): C {
  pendingInit = init
  try {
    return new Class()
  } finally {
    pendingInit = undefined
  }
}

/**
 * The type of `conn.state`: any key by default. Declare the keys an application keeps there to type
 * them, as Fastify's `FastifyRequest` is extended:
 * `declare module 'fastify-ws-hub' { interface ConnectionState { user?: { name: string } } }`.
 * (A class handler may keep its data in its own fields instead, typed with the class.)
 */
export interface ConnectionState {
  [key: string]: unknown
}

/** The route parameters of a route generic, as `request.params` types them. */
export type ParamsOf<RouteGeneric extends RouteGenericInterface> = FastifyRequest<RouteGeneric>['params']

/**
 * Everything a connection is, shared by the function handler's `conn` ({@link Connection}) and the
 * class handler's `this` (`WebSocketHandler`).
 */
export class BaseConnection<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> {
  /** A string unique in the whole cluster; URL-safe. */
  readonly id: string
  /** The `FastifyRequest` of the upgrade (`request.log`, `request.user` set by auth hooks, ...). */
  readonly request: FastifyRequest<RouteGeneric>
  /** The underlying `ws` WebSocket, for what the hub does not cover. */
  readonly socket: WebSocket
  /** The hub (`app.ws`). */
  readonly hub: Hub

  #state = PENDING
  #mode = QUEUE
  #busy = false
  #everRead = false
  #inbox: Inbox | null = null
  #closeCode = 0
  #closeReason = ''
  #data: ConnectionState | null = null
  #abort: AbortController | null = null
  #log: FastifyBaseLogger | null = null
  #socketClosed: Promise<void> | null = null
  #resolveSocketClosed: (() => void) | null = null
  #dispatch: ((message: Message) => unknown) | null = null
  #windowStart = 0
  #windowCount = 0
  #afterRun: (() => void) | null = null
  #afterRunFailed: ((err: unknown) => void) | null = null
  #intake: Intake | null = null

  constructor () {
    const init = pendingInit
    pendingInit = undefined
    if (init === undefined) throw new WSHUB_ERR_HANDLER_CONSTRUCTED()
    this.id = init.id
    this.request = init.request as FastifyRequest<RouteGeneric>
    this.socket = init.socket
    this.hub = init.hub
    this[kInit]()
  }

  /** @internal */
  [kInit] (): void {
    // Shared listeners that find the connection on the socket: no closures per connection.
    const socket = this.socket as OwnedSocket
    socket[kConnection] = this
    socket.on('message', socketOnMessage)
    socket.on('close', socketOnClose)
    watchPeer(socket, peerOnClose)
  }

  /** @internal */
  [kOnMessage] (data: Buffer, isBinary: boolean): void {
    this.#onMessage(data, isBinary)
  }

  /** @internal */
  [kOnSocketClose] (code: number, reason: Buffer): void {
    this.#onSocketClose(code, reason)
  }

  /** @internal */
  [kOnPeerClose] (code: number, reason: Buffer): void {
    this.#finish(code, reason.toString(), false)
  }

  /** The hand-over from a history replay to live delivery, once this connection has joined with `since`. @internal */
  [kRecovery]: Recovery | undefined = undefined

  /** The route parameters (`request.params`). */
  get params (): ParamsOf<RouteGeneric> {
    return this.request.params
  }

  /** The parsed query string (`request.query`). */
  get query (): FastifyRequest<RouteGeneric>['query'] {
    return this.request.query
  }

  /** The upgrade request's headers (`request.headers`). */
  get headers (): FastifyRequest<RouteGeneric>['headers'] {
    return this.request.headers
  }

  /** The URL path of the upgrade request, without the query string. */
  get path (): string {
    const url = this.request.url
    const q = url.indexOf('?')
    return q === -1 ? url : url.slice(0, q)
  }

  /** The client's IP address (`request.ip`, so it honours `trustProxy`). */
  get ip (): string {
    return this.request.ip
  }

  /** The negotiated subprotocol, or `''`. */
  get protocol (): string {
    return this.socket.protocol
  }

  /** A logger carrying this connection's id (a child of `request.log`). */
  get log (): FastifyBaseLogger {
    return (this.#log ??= this.request.log.child({ connId: this.id }))
  }

  /** A plain object for the application's own per-connection data. */
  get state (): ConnectionState {
    return (this.#data ??= {})
  }

  set state (value: ConnectionState) {
    this.#data = value
  }

  /** Whether the connection has been accepted. */
  get accepted (): boolean {
    return this.#state === ACCEPTED
  }

  /** Whether the connection has closed. */
  get closed (): boolean {
    return this.#state === CLOSED
  }

  /** Aborted when the connection closes; its `reason` is the `WebSocketDisconnect`. */
  get signal (): AbortSignal {
    if (this.#abort === null) {
      this.#abort = new AbortController()
      if (this.#state === CLOSED) this.#abort.abort(new WebSocketDisconnect(this.#closeCode, this.#closeReason))
    }
    return this.#abort.signal
  }

  /** The rooms this connection is in (a live, read-only view). */
  get rooms (): ReadonlySet<string> {
    return this.hub.registry.roomsOf(this)
  }

  /**
   * Accepts the connection: it joins the hub and may send and join rooms. Function handlers' connections
   * and class handlers without `connect()` are accepted before the handler runs. Idempotent.
   */
  accept (): Promise<void> {
    if (this.#state === PENDING) {
      this.#state = ACCEPTED
      this.hub.registry.add(this)
      if (isDebug(this.request.log)) this.log.debug({ path: this.path }, 'ws connected')
    } else if (this.#state === CLOSED) {
      return Promise.reject(new WSHUB_ERR_CONNECTION_CLOSED(this.id))
    }
    return RESOLVED
  }

  /**
   * Sends a message: a string as a text frame; a Buffer, ArrayBuffer or typed array as a binary frame;
   * anything else as JSON text. Resolves once handed to the socket and the socket is below its
   * high-water mark, so that a loop of awaited sends is paced by the peer (see `drain()`); rejects on a
   * connection that is closed or not yet accepted.
   */
  send (data: unknown): Promise<void> {
    const err = this.#cannotSend()
    if (err !== null) return Promise.reject(err)
    let wire: string | Buffer
    try {
      wire = toWire(data)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#write(wire, typeof wire !== 'string')
  }

  /** Sends a text frame. */
  sendText (text: string): Promise<void> {
    if (typeof text !== 'string') return Promise.reject(new WSHUB_ERR_INVALID_PAYLOAD(`sendText() takes a string, not ${typeof text}`))
    const err = this.#cannotSend()
    return err === null ? this.#write(text, false) : Promise.reject(err)
  }

  /** Sends a binary frame. */
  sendBytes (bytes: Buffer | ArrayBuffer | ArrayBufferView): Promise<void> {
    if (typeof bytes === 'string' || !(bytes instanceof ArrayBuffer || ArrayBuffer.isView(bytes))) {
      return Promise.reject(new WSHUB_ERR_INVALID_PAYLOAD('sendBytes() takes a Buffer, an ArrayBuffer or a typed array'))
    }
    return this.send(bytes)
  }

  /** Sends a value as JSON text (a string too: `sendJson('a')` sends `"a"`). */
  sendJson (value: unknown): Promise<void> {
    const err = this.#cannotSend()
    if (err !== null) return Promise.reject(err)
    let text: string
    try {
      text = toJson(value)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#write(text, false)
  }

  /** Bytes written to this connection that the peer has not taken yet (the socket's `bufferedAmount`). */
  get bufferedAmount (): number {
    return this.socket.bufferedAmount
  }

  /**
   * Resolves when the socket can take more data without buffering past its high-water mark (at once when
   * it can now); rejects with `WSHUB_ERR_CONNECTION_CLOSED` if the connection closes first. A handler that
   * streams to one client awaits it between writes instead of piling up memory.
   */
  drain (): Promise<void> {
    if (this.#state === CLOSED) return Promise.reject(new WSHUB_ERR_CONNECTION_CLOSED(this.id))
    return drained(this)
  }

  /** The next message as text; a binary frame rejects with `WSHUB_ERR_UNEXPECTED_FRAME` (and is consumed). */
  receiveText (): Promise<string> {
    return this.#next().then(expectText)
  }

  /** The next message as bytes; a text frame rejects with `WSHUB_ERR_UNEXPECTED_FRAME` (and is consumed). */
  receiveBytes (): Promise<Buffer> {
    return this.#next().then(expectBytes)
  }

  /**
   * The next text message, parsed as JSON. Invalid JSON rejects with `WSHUB_ERR_INVALID_JSON`, a binary
   * frame with `WSHUB_ERR_UNEXPECTED_FRAME`; either way the message is consumed and the connection stays open.
   */
  receiveJson<T = unknown> (): Promise<T> {
    return this.#next().then(parseJson<T>)
  }

  /**
   * Yields messages until the peer closes, then ends quietly. Leaving the loop early (`break`) leaves the
   * connection open. A hand-written iterator rather than an async generator: one promise per message.
   */
  [Symbol.asyncIterator] (): AsyncIterableIterator<Message> {
    return new MessageIterator(this)
  }

  /**
   * The next message as an iterator result (the connection's async iterator).
   * @internal
   */
  [kNextResult] (): Promise<IteratorResult<Message, undefined>> {
    return this.#nextResult()
  }

  /**
   * Closes the connection with `code` (default 1000) and `reason`. At once, the connection is `closed`,
   * leaves its rooms and the hub, and `disconnect()` runs; the close handshake then finishes in the
   * background. Idempotent. A code the protocol does not allow a server to send rejects with
   * `WSHUB_ERR_INVALID_PAYLOAD` and leaves the connection open.
   */
  close (code: number = CloseCode.NORMAL, reason = ''): Promise<void> {
    if (this.#state === CLOSED) return RESOLVED
    const invalid = closeError(code, reason)
    if (invalid !== null) return Promise.reject(invalid)
    this.#finish(code, reason, true)
    this.socket.close(code, reason)
    return RESOLVED
  }

  /** Sends a JSON-RPC notification (`{ jsonrpc: '2.0', method, params }`: no response expected). */
  notify (method: string, params?: unknown): Promise<void> {
    return sendNotification(method, params, message => this.send(message))
  }

  /**
   * Calls a method of the client (JSON-RPC) and resolves with its `result`; rejects with an `RpcError`
   * carrying the client's error, `WSHUB_ERR_RPC_TIMEOUT` after `timeout` ms (default: the route's
   * `callTimeout`), `WSHUB_ERR_CONNECTION_CLOSED` if the connection closes first, or
   * `WSHUB_ERR_RPC_UNAVAILABLE` on a route without `methods`.
   */
  call<T = unknown> (method: string, params?: unknown, options?: CallOptions): Promise<T> {
    const err = this.#cannotSend() ?? (this.#intake?.rpc == null ? new WSHUB_ERR_RPC_UNAVAILABLE(this.id) : null)
    return err === null ? this.#intake!.rpc!.call(method, params, options) as Promise<T> : Promise.reject(err)
  }

  /**
   * Joins a room. A room is a non-empty string of at most 256 characters. With history on and `since`
   * (the offset of the last message the client saw), first replays what came after it, then goes on
   * live with nothing missing or twice; resolves `{ recovered: true, replayed }` when the message at
   * `since` was still held, else `{ recovered: false, replayed: 0 }`.
   */
  join (room: string, options?: JoinOptions): Promise<JoinResult> {
    const err = this.#cannotSend()
    if (err !== null) return Promise.reject(err)
    return this.hub.joinLocal(this, room, options?.since)
  }

  /**
   * Tracks this connection's presence in `room` under `key` (a user id, say) with `meta` (a JSON
   * object): an entry of `app.ws.presence(room)`, announced as a join. Tracking the same room and key
   * again replaces the meta. Ending the connection untracks everything it tracked.
   */
  track (room: string, key: string, meta?: object): Promise<void> {
    return this.hub.track(this, room, key, meta)
  }

  /** Untracks this connection's entry of `key` in `room` (announced as a leave). */
  untrack (room: string, key: string): Promise<void> {
    return this.hub.untrack(this, room, key)
  }

  /** Leaves a room. */
  leave (room: string): Promise<void> {
    return this.hub.leaveLocal(this, room)
  }

  /** Sends to every member of `room` except this connection, on every node. */
  broadcast (room: string, data: unknown): Promise<string | undefined> {
    return this.hub.to(room).except(this.id).send(data)
  }

  /** Addresses every member of `room` (or of several rooms) except this connection. */
  to (room: string | readonly string[]): RoomSender {
    return this.hub.to(room).except(this.id)
  }

  /**
   * Writes a hub message, framed once for all its recipients. Returns false when the connection cannot
   * take it (not accepted, closed, or its socket closing).
   * @internal
   */
  [kDeliver] (message: Outgoing): boolean {
    if (this.#state !== ACCEPTED || this.socket.readyState !== OPEN) return false
    if (message.room !== undefined && this[kRecovery]?.intercept(this, message) === true) return true
    return deliver(this, message)
  }

  /**
   * Sends and says whether the message was written: false for a connection that is not open or a message
   * dropped for backpressure (`app.ws.send(id)`). Paced as `send()` is.
   * @throws WSHUB_ERR_INVALID_PAYLOAD for a value JSON cannot represent
   * @internal
   */
  [kTrySend] (data: unknown): Promise<boolean> {
    const wire = toWire(data)
    if (this.#state !== ACCEPTED || this.socket.readyState !== OPEN) return Promise.resolve(false)
    return trySend(this, wire)
  }

  /**
   * Switches a class handler's connection from queueing to calling `dispatch` with each message, one at a
   * time: the next waits for the previous call's promise. Messages held until now go first.
   * @internal
   */
  [kStartDispatch] (dispatch: (message: Message) => unknown): void {
    if (this.#state === CLOSED) return
    this.#dispatch = dispatch
    this.#mode = DISPATCH
    this.#drain()
  }

  /**
   * A function handler has returned. If it never read a message, nobody will: later messages are
   * dropped instead of filling the queue (a waiting `receive*()` still gets them).
   * @internal
   */
  [kHandlerReturned] (): void {
    if (!this.#everRead && this.#mode === QUEUE && this.#state !== CLOSED) {
      this.#mode = DISCARD
      this.#inbox?.clear()
    }
  }

  /**
   * Runs after the connection has closed, once, for accepted connections (class handlers call
   * `disconnect()` here).
   * @internal
   */
  [kOnDisconnect] (_code: number, _reason: string): void {}

  /**
   * Settles when the socket has fully closed (close handshake done, or terminated).
   * @internal
   */
  [kSocketClosed] (): Promise<void> {
    if (this.#socketClosed === null) {
      this.#socketClosed = this.socket.readyState === 3
        ? RESOLVED
        : new Promise(resolve => { this.#resolveSocketClosed = resolve })
    }
    return this.#socketClosed
  }

  /**
   * Closes the connection because its handler failed: logged as an error (a `WebSocketDisconnect` is
   * not an error), closed with 1011.
   * @internal
   */
  [kFail] (err: unknown): void {
    if (err instanceof WebSocketDisconnect) {
      this.log.debug({ code: err.code }, 'ws handler ended on disconnect')
      return
    }
    // A send on a socket that the peer (or a protocol error) has closed: the peer's doing, not a failure.
    if ((err as { code?: string } | null)?.code === 'WSHUB_ERR_CONNECTION_CLOSED' && this.socket.readyState !== OPEN) {
      this.log.debug({ err }, 'ws handler ended on a closed connection')
      return
    }
    this.log.error({ err }, 'ws handler failed')
    this.close(CloseCode.INTERNAL_ERROR, 'Internal error') // a valid code: resolves, never rejects
  }

  #cannotSend (): Error | null {
    if (this.#state === ACCEPTED) return null
    return this.#state === CLOSED ? new WSHUB_ERR_CONNECTION_CLOSED(this.id) : new WSHUB_ERR_NOT_ACCEPTED(this.id)
  }

  #write (wire: string | Buffer, binary: boolean): Promise<void> {
    if (this.socket.readyState !== OPEN) return Promise.reject(new WSHUB_ERR_CONNECTION_CLOSED(this.id))
    return send(this, wire, binary)
  }

  /**
   * The next message, of either kind (`receive()` of a function handler's connection).
   * @internal
   */
  [kNext] (): Promise<Message> {
    return this.#next()
  }

  #next (): Promise<Message> {
    this.#everRead = true
    if (this.#inbox === null) {
      if (this.#state === CLOSED) return Promise.reject(new WebSocketDisconnect(this.#closeCode, this.#closeReason))
      this.#inbox = this.#newInbox()
    }
    return this.#inbox.next()
  }

  #nextResult (): Promise<IteratorResult<Message, undefined>> {
    this.#everRead = true
    if (this.#inbox === null) {
      if (this.#state === CLOSED) return Promise.resolve({ value: undefined, done: true })
      this.#inbox = this.#newInbox()
    }
    return this.#inbox.nextResult()
  }

  #newInbox (): Inbox {
    return new Inbox(this.socket)
  }

  #onMessage (data: Buffer, isBinary: boolean): void {
    if (this.#state === CLOSED) return
    const counters = this.hub.counters
    counters.messagesIn++
    counters.bytesIn += data.length
    if (this.hub.settings.rateLimit !== false && this.#overRateLimit()) return
    const message: Message = isBinary ? data : data.toString()
    if (this.#intake !== null) this.#intake.push(message)
    else this[kReceive](message)
  }

  /**
   * Sets the stage that sees incoming messages before the connection's own reading does.
   * @internal
   */
  [kSetIntake] (intake: Intake): void {
    this.#intake = intake
  }

  /**
   * Takes a message in for `receive*()`, the iterator or a class handler's `receive()`.
   * @internal
   */
  [kReceive] (message: Message): void {
    if (this.#mode === DISPATCH) {
      if (!this.#busy && (this.#inbox === null || this.#inbox.length === 0)) {
        this.#run(message)
        return
      }
    } else if (this.#mode === DISCARD && !this.#inbox?.hasWaiters) {
      return
    }
    (this.#inbox ??= this.#newInbox()).push(message)
  }

  // A fixed window per connection: at most `max` messages per `windowMs`; past it drop, or close with 1008.
  #overRateLimit (): boolean {
    const { max, windowMs, action } = this.hub.settings.rateLimit as { max: number, windowMs: number, action: string }
    const now = Date.now()
    if (now - this.#windowStart >= windowMs) {
      this.#windowStart = now
      this.#windowCount = 0
    }
    if (++this.#windowCount <= max) return false
    this.hub.counters.rateLimited++
    if (action === 'close') {
      this.log.warn({ max, windowMs }, 'ws connection closed: rate limit exceeded')
      this.close(CloseCode.POLICY_VIOLATION, 'Rate limit exceeded') // a valid code: resolves, never rejects
      stopReading(this.socket)
    }
    return true
  }

  // Hands one message to the class handler; while its promise is pending, later messages queue.
  #run (message: Message): void {
    let result: unknown
    try {
      result = this.#dispatch!(message)
    } catch (err) {
      this[kFail](err)
      return
    }
    if (result !== null && typeof result === 'object' && typeof (result as Promise<void>).then === 'function') {
      this.#busy = true
      // Made on first use: only class handlers whose receive() returns a promise need them.
      this.#afterRun ??= () => {
        this.#busy = false
        this.#drain()
      }
      this.#afterRunFailed ??= (err: unknown) => {
        this.#busy = false
        this[kFail](err)
      }
      ;(result as Promise<void>).then(this.#afterRun, this.#afterRunFailed)
    }
  }

  #drain (): void {
    const inbox = this.#inbox
    if (inbox === null) return
    while (!this.#busy && this.#state !== CLOSED) {
      const message = inbox.shift()
      if (message === undefined) return
      this.#run(message)
    }
  }

  #onSocketClose (code: number, reason: Buffer): void {
    this.#finish(code, reason.toString(), false)
    this.#resolveSocketClosed?.()
    this.#socketClosed ??= RESOLVED
  }

  // The one place a connection ends, whoever closed it: it leaves the hub and its rooms, pending and
  // later receive*() calls reject, the signal aborts, and then disconnect() runs.
  #finish (code: number, reason: string, local: boolean): void {
    if (this.#state === CLOSED) return
    const wasAccepted = this.#state === ACCEPTED
    this.#state = CLOSED
    this.#closeCode = code
    this.#closeReason = reason
    if (wasAccepted) this.hub.registry.remove(this)
    if (wasAccepted) this.hub.observer?.closed?.(code)
    this.#intake?.close()
    // The WebSocketDisconnect is built only for those who will see it: a pending or later receive, or
    // the abort signal's reason. Most connections close without either.
    if (this.#inbox !== null) {
      // Closing from this side drops what was not read yet; a peer's close lets it be read first.
      if (local) this.#inbox.clear()
      this.#inbox.end(() => new WebSocketDisconnect(code, reason))
    }
    this.#abort?.abort(new WebSocketDisconnect(code, reason))
    if (wasAccepted) {
      if (isDebug(this.request.log)) this.log.debug({ code, reason }, 'ws disconnected')
      this[kOnDisconnect](code, reason)
    }
  }
}

/**
 * The connection a function handler receives (`conn`).
 */
export class Connection<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> extends BaseConnection<RouteGeneric> {
  /** The next message: a `string` for a text frame, a `Buffer` for a binary one. */
  receive (): Promise<Message> {
    return this[kNext]()
  }
}

/** A connection's async iterator: one small object, its methods on the prototype. */
class MessageIterator implements AsyncIterableIterator<Message> {
  readonly #conn: BaseConnection

  constructor (conn: BaseConnection) {
    this.#conn = conn
  }

  next (): Promise<IteratorResult<Message, undefined>> {
    return this.#conn[kNextResult]()
  }

  // Leaving a for-await loop early ends the iteration, not the connection.
  return (): Promise<IteratorResult<Message, undefined>> {
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}

// The socket listeners, shared by all connections (the connection is a property of its socket).
const kConnection = Symbol('fastify-ws-hub.connection')

type OwnedSocket = WebSocket & { [kConnection]: BaseConnection }

function socketOnMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
  (this as OwnedSocket)[kConnection][kOnMessage](data, isBinary)
}

function socketOnClose (this: WebSocket, code: number, reason: Buffer): void {
  (this as OwnedSocket)[kConnection][kOnSocketClose](code, reason)
}

function peerOnClose (socket: WebSocket, code: number, reason: Buffer): void {
  (socket as OwnedSocket)[kConnection][kOnPeerClose](code, reason)
}

/**
 * The connection a socket belongs to, or undefined for a socket of no ws route of the hub.
 * @internal
 */
export function connectionOf (socket: WebSocket): BaseConnection | undefined {
  return (socket as Partial<OwnedSocket>)[kConnection]
}

// Whether a logger writes debug lines; checked before building a child logger for them.
function isDebug (log: FastifyBaseLogger): boolean {
  return (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('debug') ?? false
}

function expectText (message: Message): string {
  if (typeof message !== 'string') throw new WSHUB_ERR_UNEXPECTED_FRAME('text', 'binary')
  return message
}

function expectBytes (message: Message): Buffer {
  if (typeof message === 'string') throw new WSHUB_ERR_UNEXPECTED_FRAME('binary', 'text')
  return message
}

function parseJson<T> (message: Message): T {
  if (typeof message !== 'string') throw new WSHUB_ERR_UNEXPECTED_FRAME('text (JSON)', 'binary')
  try {
    return JSON.parse(message) as T
  } catch (cause) {
    const err = new WSHUB_ERR_INVALID_JSON((cause as Error).message)
    err.cause = cause
    throw err
  }
}
