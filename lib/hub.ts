import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'
import type { BroadcastEnvelope, Broker, Envelope, Presence, RequestEnvelope } from './broker/broker.js'
import { roomChannel } from './broker/keys.js'
import { Cluster, ownerOf, type RequestFields } from './cluster.js'
import { closeError } from './close.js'
import type { BaseConnection } from './connection.js'
import { CLOSE_BATCH, DEFAULTS, FANOUT_LARGE, MAX_ROOM_LENGTH, OPEN } from './constants.js'
import {
  CloseCode, WSHUB_ERR_BROKER_CLOSED, WSHUB_ERR_CONNECTION_NOT_FOUND, WSHUB_ERR_INVALID_ARGUMENT, WSHUB_ERR_INVALID_ROOM, WSHUB_ERR_TOO_MANY_ROOMS
} from './errors.js'
import type { History, HistoryEntry, JoinResult } from './history.js'
import { serialize, type Outgoing } from './message.js'
import type { ResolvedOptions } from './options.js'
import { Fanout } from './fanout.js'
import { isHigh, pacedAll } from './outbox.js'
import { MemoryTrackerStore, Tracker, type PresenceListener, type PresenceState } from './presence.js'
import { RoomRegistry } from './rooms.js'
import { RoomRouting, type RoutingStats } from './routing.js'
import { callOutcome, encodeCall, performCall, REMOTE_CALL_WAIT } from './rpc-remote.js'
import { sendNotification, type CallOptions } from './rpc.js'
import { kDeliver, kSocketClosed, kTrySend } from './symbols.js'

/** The cumulative figures of `stats()`. */
export interface HubCounters {
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
  /** Outgoing messages skipped for a connection over the backpressure limit (`action: 'drop'`). */
  dropped: number
  /** Connections closed with 1013 for going over the backpressure limit (`action: 'close'`). */
  closedForBackpressure: number
  /** Incoming messages over the rate limit (dropped, or the one that closed the connection). */
  rateLimited: number
}

/** The per-connection limits a hub applies and how it reaches other nodes (from the registration options). */
export interface HubSettings {
  backpressure: ResolvedOptions['backpressure']
  rateLimit: ResolvedOptions['rateLimit']
  /** Ms a call about a connection of another node waits for its reply. Default 5 000. */
  requestTimeout: number
  /** At most this many rooms per connection. Default 10 000. */
  maxRoomsPerConnection: number
}

const DEFAULT_SETTINGS: HubSettings = {
  backpressure: { limit: DEFAULTS.backpressureLimit, action: DEFAULTS.backpressureAction },
  rateLimit: false,
  requestTimeout: DEFAULTS.requestTimeout,
  maxRoomsPerConnection: DEFAULTS.maxRoomsPerConnection
}

/** The optional capabilities a hub delegates to. */
export interface HubModules {
  /** Room history and recovery (the `history` option). */
  history?: History | null
  /** Tracked presence (`conn.track`, `presence(room)`); in this process's memory by default. */
  tracker?: Tracker
}

/** This node's figures: `connections` and `rooms` are current counts, the rest cumulative. */
export interface HubStats extends HubCounters {
  connections: number
  rooms: number
}

/**
 * What a module that watches the hub (the metrics) is told as it happens; every member is optional.
 * Figures that `stats()` has are read from there instead.
 */
export interface HubObserver {
  /** An accepted connection closed with `code`. */
  closed? (code: number): void
  /** A call about a connection of another node settled after `seconds` (`op`: send, close, has, join, leave). */
  requested? (op: string, seconds: number): void
}

/** Gets a module's event about a room from another node (see `Hub.publishEvent`). */
export type RoomEventListener = (room: string, payload: Buffer, origin: string) => void

/** The broker channel every node listens on for `sendAll`. */
export const BROADCAST_CHANNEL = 'broadcast'

const RESOLVED = Promise.resolve()
const NOT_RECOVERED: JoinResult = Object.freeze({ recovered: false, replayed: 0 })
/** What `sendAll` addresses: every connection rather than the members of some rooms. */
const ALL = Symbol('fastify-ws-hub.all')

// Random bytes for connection ids, drawn from the system in blocks rather than one call per connection.
const ID_BYTES = 9
const POOL_IDS = 512
let idPool = Buffer.alloc(0)
let idOffset = 0

/** 72 random bits, base64url (12 characters). */
function randomId (): string {
  if (idOffset === idPool.length) {
    idPool = randomBytes(ID_BYTES * POOL_IDS)
    idOffset = 0
  }
  const id = idPool.toString('base64url', idOffset, idOffset + ID_BYTES)
  idOffset += ID_BYTES
  return id
}

/** `String.prototype.isWellFormed` (Node 20+; not in TypeScript's ES2023 lib). */
function isWellFormed (text: string): boolean {
  return (text as unknown as { isWellFormed (): boolean }).isWellFormed()
}

/**
 * Checks a room name: a non-empty, well-formed string (no lone surrogate) of at most 256 UTF-16 code
 * units. Returns the `WSHUB_ERR_INVALID_ROOM`
 * to reject or throw with, or null for a good name.
 */
export function roomError (room: unknown): Error | null {
  // Well-formed Unicode only: a lone surrogate has no UTF-8 form, so Redis could not tell such names apart.
  if (typeof room === 'string' && room.length > 0 && room.length <= MAX_ROOM_LENGTH && isWellFormed(room)) return null
  const shown = typeof room === 'string'
    ? room.length > 40 ? `"${room.slice(0, 40)}..." (${room.length} characters)` : JSON.stringify(room)
    : typeof room
  return new WSHUB_ERR_INVALID_ROOM(shown)
}

function checkEvent (event: unknown, listener: unknown): PresenceListener {
  if (event !== 'presence') throw new WSHUB_ERR_INVALID_ARGUMENT('event', "'presence'")
  if (typeof listener !== 'function') throw new WSHUB_ERR_INVALID_ARGUMENT('listener', 'a function')
  return listener as PresenceListener
}

/**
 * Addresses the members of one or more rooms (`app.ws.to(room)`), optionally leaving some out.
 */
export class RoomSender {
  readonly #hub: Hub
  readonly #rooms: string[] | null
  #except: string[] | null = null
  #error: Error | null = null
  #local = false

  /** @internal */
  constructor (hub: Hub, rooms: string | readonly string[] | typeof ALL) {
    this.#hub = hub
    if (rooms === ALL) {
      this.#rooms = null
      return
    }
    const list = typeof rooms === 'string' ? [rooms] : Array.isArray(rooms) ? [...new Set(rooms)] : [rooms as unknown as string]
    for (const room of list) {
      this.#error = roomError(room)
      if (this.#error !== null) break
    }
    this.#rooms = list
  }

  /** Leaves out one connection id or several (unknown ids are fine). Returns this sender. */
  except (ids: string | readonly string[]): this {
    // Anything but a string can be no connection's id, so it leaves nobody out (as an unknown id does).
    const list = typeof ids === 'string' ? [ids] : Array.isArray(ids) ? ids.filter(id => typeof id === 'string') : []
    this.#except = this.#except === null ? list : this.#except.concat(list)
    return this
  }

  /**
   * Reaches the members on this node only (Socket.IO's `local`, Phoenix's `local_broadcast`): for what
   * every node learns by itself. Returns this sender.
   */
  local (): this {
    this.#local = true
    return this
  }

  /** Sends a JSON-RPC notification (`{ jsonrpc: '2.0', method, params }`) to every member, as `send` does. */
  notify (method: string, params?: unknown): Promise<void> {
    return sendNotification(method, params, message => this.send(message) as Promise<unknown> as Promise<void>)
  }

  /**
   * Sends to every member, on every node, serialized and framed once. A member of several of the rooms
   * gets the message once. Resolves when local members have been written to and the message has been
   * handed to the broker for the other nodes; with history on, a message to one room resolves with its
   * offset (otherwise with undefined).
   */
  send (data: unknown): Promise<string | undefined> {
    if (this.#error !== null) return Promise.reject(this.#error)
    let message: Outgoing
    try {
      message = serialize(data)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#hub.publish(message, this.#rooms, this.#except, this.#local, data)
  }
}

/**
 * The hub, `app.ws`: every connection of this node by id, the rooms, and sending to a connection or a
 * room from anywhere. All fan-out goes through one place, `publish`: local delivery, then the broker for
 * the other nodes, whose envelopes come back in through `#onEnvelope` (as socket.io's `ClusterAdapter`
 * and Phoenix's `PubSub` compose broadcast as local dispatch plus remote publish).
 *
 * A call about one connection (`send`, `close`, `has`, `join`, `leave`) is answered here when the
 * connection is local, and otherwise asked of the node that owns it (the id says which) through the
 * {@link Cluster}. Presence (`roomSize`, `members`, `rooms()`) comes from the broker's `presence` when it
 * has one (Redis), and from the local registry when it has none (one process).
 *
 * Every member but `get`, `size` and `stats` returns a Promise, also on a single node, so that code does
 * not change when a broker reaching other processes is added.
 */
export class Hub {
  /** This node's id, the prefix of the ids of its connections. */
  readonly nodeId: string
  /** @internal */
  readonly registry = new RoomRegistry<BaseConnection>()
  /** @internal */
  readonly counters: HubCounters = {
    messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, closedForBackpressure: 0, rateLimited: 0
  }

  /** @internal */
  readonly settings: HubSettings

  /** @internal */
  observer: HubObserver | null = null

  readonly #broker: Broker
  readonly #presence: Presence | null
  readonly #cluster: Cluster
  readonly #log: FastifyBaseLogger
  readonly #disconnecting = new Set<Promise<void>>()
  readonly #events = new Map<string, RoomEventListener>()
  readonly #history: History | null
  readonly #tracker: Tracker
  readonly #routing: RoomRouting<BaseConnection>
  readonly #fanout = new Fanout<BaseConnection>()
  #closed = false

  /** @internal */
  constructor (broker: Broker, log: FastifyBaseLogger, settings: Partial<HubSettings> = {}, modules: HubModules = {}) {
    this.#broker = broker
    this.#history = modules.history ?? null
    this.#tracker = modules.tracker ?? new Tracker(new MemoryTrackerStore(), log)
    this.#presence = broker.presence ?? null
    this.#log = log
    this.settings = { ...DEFAULT_SETTINGS, ...settings }
    this.nodeId = randomBytes(6).toString('base64url')
    this.#cluster = new Cluster(this.nodeId, broker, log, this.settings.requestTimeout, request => this.#perform(request))
    this.#routing = new RoomRouting(broker, this.registry, (room, envelope) => this.#onEnvelope(envelope, room), log,
      this.settings.requestTimeout)
  }

  /**
   * Subscribes to the broker's channels and, with cluster-wide presence, marks this node alive and
   * starts recording its memberships.
   * @internal
   */
  async start (): Promise<void> {
    await this.#broker.subscribe(BROADCAST_CHANNEL, envelope => this.#onEnvelope(envelope))
    await this.#cluster.start()
    await this.#tracker.start(this)
    this.registry.on('remove', (conn: BaseConnection) => this.#tracker.untrackAll(conn.id))
    const presence = this.#presence
    if (presence !== null) {
      await presence.start(this.nodeId, () => this.#snapshot(), room => this.registry.rooms.has(room))
      const count = (room: string): number => this.registry.rooms.get(room)?.size ?? 0
      this.registry.on('join-room', (room: string, id: string) => presence.join(room, id, count(room) === 1))
      this.registry.on('leave-room', (room: string, id: string) => presence.leave(room, id, count(room) === 0))
    }
  }

  /**
   * A new connection id: this node's id, a dot, and 72 random bits (URL-safe, not guessable).
   * @internal
   */
  newId (): string {
    return `${this.nodeId}.${randomId()}`
  }

  /** Connections on this node. */
  get size (): number {
    return this.registry.connections.size
  }

  /**
   * The local connection with this id (the `conn` of a function handler, the instance of a class
   * handler). Name the class to get its own members: `app.ws.get<ChatSocket>(id)` (the caller vouches
   * for the id's route; check with `instanceof` where it may be another's).
   */
  get<T extends BaseConnection = BaseConnection> (id: string): T | undefined {
    return this.registry.connections.get(id) as T | undefined
  }

  /**
   * Whether a connection with this id exists (cluster-wide). For an id of another node, rejects with
   * `WSHUB_ERR_REQUEST_TIMEOUT` or `WSHUB_ERR_REDIS_UNAVAILABLE` when that node cannot be asked.
   */
  has (id: string): Promise<boolean> {
    if (this.registry.connections.has(id)) return Promise.resolve(true)
    return this.#remote(id, { op: 'has', target: id })
  }

  /**
   * Sends to one connection, on any node. Resolves true when it exists and the message was written to
   * it, false for an unknown or closed id; rejects for a value that cannot be serialized and, for an id
   * of another node, when that node cannot be asked (`WSHUB_ERR_REQUEST_TIMEOUT`,
   * `WSHUB_ERR_REDIS_UNAVAILABLE`).
   */
  send (id: string, data: unknown): Promise<boolean> {
    const conn = this.registry.connections.get(id)
    if (conn === undefined) {
      const node = this.#remoteOwner(id)
      if (node === null) return Promise.resolve(false)
      let message: Outgoing
      try {
        message = serialize(data)
      } catch (err) {
        return Promise.reject(err)
      }
      return this.#cluster.request(node, { op: 'send', target: id, binary: message.binary, payload: message.payload })
    }
    try {
      return Promise.resolve(conn[kTrySend](data))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /**
   * Closes one connection, on any node. Resolves true when such a connection existed and was closed.
   * An invalid close code or reason rejects with `WSHUB_ERR_INVALID_PAYLOAD`, as `conn.close()` does.
   */
  close (id: string, code: number = CloseCode.NORMAL, reason = ''): Promise<boolean> {
    // Checked first, so that a bad code fails the same way whatever the id (local, remote or unknown).
    const invalid = closeError(code, reason)
    if (invalid !== null) return Promise.reject(invalid)
    const conn = this.registry.connections.get(id)
    if (conn !== undefined) return conn.close(code, reason).then(() => true)
    const node = this.#remoteOwner(id)
    if (node === null) return Promise.resolve(false)
    return this.#cluster.request(node, { op: 'close', target: id, code, reason })
  }

  /** Sends a JSON-RPC notification to one connection, on any node; resolves as `send` does. */
  notify (id: string, method: string, params?: unknown): Promise<boolean> {
    return sendNotification(method, params, message => this.send(id, message))
  }

  /**
   * Calls a method of the client of one connection, on any node (JSON-RPC), and resolves with its
   * `result`. Rejects as `conn.call()` does, and with `WSHUB_ERR_CONNECTION_NOT_FOUND` for an id that no
   * node holds. A call to another node's connection without a `timeout` waits for the route's
   * `callTimeout` there, and gives up after 60 s (plus `requestTimeout`) whatever the route says.
   */
  call<T = unknown> (id: string, method: string, params?: unknown, options?: CallOptions): Promise<T> {
    const conn = this.registry.connections.get(id)
    if (conn !== undefined) return conn.call<T>(method, params, options)
    const node = this.#remoteOwner(id)
    if (node === null) return Promise.reject(new WSHUB_ERR_CONNECTION_NOT_FOUND(String(id)))
    let payload: Buffer
    try {
      payload = encodeCall(method, params, options)
    } catch (err) {
      return Promise.reject(err)
    }
    const wait = (options?.timeout ?? REMOTE_CALL_WAIT) + this.settings.requestTimeout
    return this.#cluster.ask(node, { op: 'call', target: id, payload }, wait).then(reply => {
      if (reply === null) throw new WSHUB_ERR_CONNECTION_NOT_FOUND(id)
      return callOutcome(id, method, options?.timeout, reply) as T
    })
  }

  /** Addresses the members of a room, or of several rooms (each member once). */
  to (room: string | readonly string[]): RoomSender {
    return new RoomSender(this, room)
  }

  /** The same as `to(room).send(data)`. */
  broadcast (room: string, data: unknown): Promise<string | undefined> {
    return new RoomSender(this, room).send(data)
  }

  /** Sends to every connection on every node. */
  sendAll (data: unknown): Promise<void> {
    return new RoomSender(this, ALL).send(data) as Promise<undefined>
  }

  /** Puts a connection in a room. Resolves false for an unknown id. */
  join (id: string, room: string): Promise<boolean> {
    return this.#move(id, room, true)
  }

  /** Takes a connection out of a room. Resolves false for an unknown id. */
  leave (id: string, room: string): Promise<boolean> {
    return this.#move(id, room, false)
  }

  /**
   * How many connections are in a room (cluster-wide). With Redis, rejects with
   * `WSHUB_ERR_REDIS_UNAVAILABLE` or `WSHUB_ERR_REQUEST_TIMEOUT` when Redis cannot answer.
   */
  roomSize (room: string): Promise<number> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    if (this.#presence !== null) return this.#presence.roomSize(room)
    return Promise.resolve(this.registry.rooms.get(room)?.size ?? 0)
  }

  /** The ids of the connections in a room (cluster-wide; in no particular order). */
  members (room: string): Promise<string[]> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    if (this.#presence !== null) return this.#presence.members(room)
    const members = this.registry.rooms.get(room)
    return Promise.resolve(members === undefined ? [] : Array.from(members, member => member.id))
  }

  /** The names of the rooms with at least one member (cluster-wide; in no particular order). */
  rooms (): Promise<string[]> {
    if (this.#presence !== null) return this.#presence.rooms()
    return Promise.resolve([...this.registry.rooms.keys()])
  }

  /**
   * Who is in a room, cluster-wide: for each key that connections track there (`conn.track`), one
   * `{ id, meta }` per tracking connection. Costs time in the size of the room's presence.
   */
  presence (room: string): Promise<PresenceState> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    return this.#tracker.presence(room)
  }

  /**
   * Listens for `'presence'` events: `{ room, joins, leaves }` for every change of the presence of a
   * room with a member on this node, made on any node. Returns the hub.
   */
  on (event: 'presence', listener: PresenceListener): this {
    this.#tracker.on(checkEvent(event, listener))
    return this
  }

  /** Removes a `'presence'` listener. Returns the hub. */
  off (event: 'presence', listener: PresenceListener): this {
    this.#tracker.off(checkEvent(event, listener))
    return this
  }

  /**
   * Tracks a key in a room for a local connection (`conn.track`).
   * @internal
   */
  track (conn: BaseConnection, room: string, key: string, meta?: object): Promise<void> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    return this.#tracker.track(conn, room, key, meta)
  }

  /**
   * Untracks a key in a room for a local connection (`conn.untrack`).
   * @internal
   */
  untrack (conn: BaseConnection, room: string, key: string): Promise<void> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    return this.#tracker.untrack(conn.id, room, key)
  }

  /**
   * Whether this node has a member of `room`.
   * @internal
   */
  hasLocalMembers (room: string): boolean {
    return this.registry.rooms.has(room)
  }

  /**
   * The messages kept in a room's history, oldest first, as `{ offset, data }` (`data` as it was sent:
   * a string, a Buffer or the JSON value, stamped when `stamp` is set). With `since`, the messages after
   * that offset (at most `limit`); without, the last `limit`. Empty without history.
   */
  history (room: string, options: { since?: unknown, limit?: number } = {}): Promise<HistoryEntry[]> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    const limit = options.limit ?? Number.MAX_SAFE_INTEGER
    if (!Number.isSafeInteger(limit) || limit <= 0) return Promise.reject(new WSHUB_ERR_INVALID_ARGUMENT('limit', 'a positive integer'))
    if (this.#history === null) return Promise.resolve([])
    return this.#history.list(room, options.since, limit)
  }

  /**
   * What this node's per-room routing has done: the room channels it listens on, the envelopes that
   * arrived on them, and how many of those were for a room with no local member (during the grace
   * period after its last member left). A node with no member in a room gets none of its messages.
   */
  routing (): RoutingStats {
    return this.#routing.stats()
  }

  /**
   * This node's figures, synchronously: `connections` and `rooms` are current counts, the rest
   * cumulative (`messagesOut` counts one per recipient).
   */
  stats (): HubStats {
    return {
      connections: this.registry.connections.size,
      rooms: this.registry.rooms.size,
      ...this.counters
    }
  }

  /**
   * Puts a local connection in a room (`conn.join`).
   * @internal
   */
  joinLocal (conn: BaseConnection, room: string, since?: unknown): Promise<JoinResult> {
    const invalid = roomError(room) ?? this.#roomsError(conn, room)
    if (invalid !== null) return Promise.reject(invalid)
    // Resolves once the room's subscription is confirmed, so that a replay from history reads only after
    // every later message of the room is sure to arrive live.
    const join = (): Promise<void> => {
      this.#setMembership(conn, room, true)
      return this.#routing.ready(room)
    }
    if (since !== undefined && this.#history !== null) return this.#history.join(conn, room, since, join)
    return join().then(() => NOT_RECOVERED)
  }

  /**
   * Takes a local connection out of a room (`conn.leave`).
   * @internal
   */
  leaveLocal (conn: BaseConnection, room: string): Promise<void> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    this.#setMembership(conn, room, false)
    return RESOLVED
  }

  /**
   * Delivers a serialized message to the local members of `rooms` (every local connection when null),
   * then hands it to the broker for the other nodes.
   * @internal
   */
  publish (message: Outgoing, rooms: string[] | null, except: string[] | null, local = false, data?: unknown): Promise<string | undefined> {
    if (this.#closed) return Promise.reject(new WSHUB_ERR_BROKER_CLOSED())
    // Kept in the room's history unless it is for this node only (other nodes' clients would replay it).
    if (this.#history !== null && rooms !== null && !local) return this.#publishKept(this.#history, message, rooms, except, data)
    const delivered = this.#deliver(message, rooms, except)
    if (local) return (delivered ?? RESOLVED) as Promise<undefined>
    const envelope: Envelope = rooms === null
      ? { origin: this.nodeId, type: 'all', binary: message.binary, payload: message.payload }
      : { origin: this.nodeId, type: 'rooms', rooms, binary: message.binary, payload: message.payload }
    if (except !== null) envelope.except = except
    const published = rooms === null ? this.#broker.publish(BROADCAST_CHANNEL, envelope) : this.#routing.publish(envelope as BroadcastEnvelope)
    // The delivery's pacing never rejects: once published, it is what is left to wait for.
    return (delivered === null ? published : published.then(() => delivered)) as Promise<undefined>
  }

  /**
   * Publishes a module's event about a room (a presence change, say) on the room's channel, to the other
   * nodes that have members of the room; `onEvent` listeners of the same topic get it there. The
   * publishing node does not get its own.
   * @internal
   */
  publishEvent (topic: string, room: string, payload: Buffer): Promise<void> {
    if (this.#closed) return Promise.reject(new WSHUB_ERR_BROKER_CLOSED())
    return this.#broker.publish(roomChannel(room), { origin: this.nodeId, type: 'event', topic, room, payload })
  }

  /**
   * Listens for the events of one topic that other nodes publish with `publishEvent` (one listener per topic).
   * @internal
   */
  onEvent (topic: string, listener: RoomEventListener): void {
    this.#events.set(topic, listener)
  }

  /**
   * Tells `observer` about closes and cross-node calls from now on.
   * @internal
   */
  observe (observer: HubObserver): void {
    this.observer = observer
    this.#cluster.observer = observer
  }

  /**
   * Keeps track of a class handler's pending `disconnect()` so that shutdown can wait for it.
   * @internal
   */
  trackDisconnect (promise: Promise<void>): void {
    const tracked = promise.finally(() => this.#disconnecting.delete(tracked))
    this.#disconnecting.add(tracked)
  }

  /**
   * Closes every connection with 1001 (in batches) and waits, at most `timeout` ms, for the close handshakes and
   * for `disconnect()` handlers; sockets still open then are terminated. Sockets of the WebSocket server
   * that have no hub connection (a class handler still in `connect()`, a plain `@fastify/websocket` route)
   * are closed the same way.
   * @internal
   */
  async shutdown (server: WebSocketServer | undefined, timeout: number): Promise<void> {
    // The hub stays usable until stop(): handlers ending on this close may still tell their rooms.
    const reason = 'Server shutting down'
    const closing: Promise<void>[] = []
    let batch = 0
    for (const conn of [...this.registry.connections.values()]) {
      conn.close(CloseCode.GOING_AWAY, reason) // a valid code: resolves, never rejects
      closing.push(conn[kSocketClosed]())
      // Close in batches, so that a node with many connections keeps serving its event loop meanwhile.
      if (++batch % CLOSE_BATCH === 0) await new Promise(resolve => setImmediate(resolve))
    }
    // Without ws's clientTracking there is no list of sockets: only hub connections are closed then.
    const sockets: WebSocket[] = server?.clients === undefined ? [] : [...server.clients]
    for (const socket of sockets) {
      if (socket.readyState === OPEN) socket.close(CloseCode.GOING_AWAY, reason)
      if (socket.readyState !== 3) closing.push(new Promise(resolve => socket.once('close', () => resolve())))
    }
    closing.push(...this.#disconnecting)
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<boolean>(resolve => {
      timer = setTimeout(resolve, timeout, true)
      timer.unref()
    })
    const timedOut = await Promise.race([Promise.allSettled(closing).then(() => false), expired])
    clearTimeout(timer)
    if (timedOut) {
      let terminated = 0
      for (const socket of sockets) {
        if (socket.readyState !== 3) {
          socket.terminate()
          terminated++
        }
      }
      this.#log.warn({ terminated, timeout }, 'fastify-ws-hub: close handshakes not finished in time, sockets terminated')
    }
    // Every connection has left its rooms: take this node out of cluster-wide presence while the
    // Redis client is surely still open (@fastify/redis closes app.redis in its own onClose hook).
    await this.#tracker.stop()
    await this.#presence?.stop()
  }

  /**
   * Rejects pending cross-node calls, leaves cluster-wide presence, and releases the broker.
   * @internal
   */
  async stop (): Promise<void> {
    this.#closed = true
    this.#cluster.stop()
    this.#routing.stop()
    await this.#tracker.stop()
    await this.#presence?.stop()
    await this.#history?.close()
    await this.#broker.close()
  }

  /**
   * A room message with history on: kept in each room's history. A message to one room is appended (and
   * published to the other nodes with its offset by the store) before local delivery, which needs the
   * offset: for the stamp, and for a hand-over in progress on this node.
   */
  #publishKept (history: History, message: Outgoing, rooms: string[], except: string[] | null, data: unknown): Promise<string | undefined> {
    const envelope: BroadcastEnvelope = { origin: this.nodeId, type: 'rooms', rooms, binary: message.binary, payload: message.payload }
    if (except !== null) envelope.except = except
    if (rooms.length === 1) {
      const room = rooms[0]!
      return history.appendOne(room, data, message, envelope, roomChannel(room)).then(local => {
        const delivered = this.#deliver(local, rooms, except)
        let offset: Promise<string | undefined> | string | undefined = local.offset
        if (offset === undefined) {
          // The store failed (Redis down): the other nodes get it as without history, if at all.
          delete envelope.offset
          offset = this.#routing.publish(envelope).then(() => undefined)
        }
        return delivered === null ? offset : Promise.all([delivered, offset]).then(([, value]) => value)
      })
    }
    const delivered = this.#deliver(message, rooms, except)
    const kept = Promise.all([history.appendMany(rooms, data, message), this.#routing.publish(envelope)]).then(() => undefined)
    return delivered === null ? kept : Promise.all([delivered, kept]).then(() => undefined)
  }

  #move (id: string, room: string, join: boolean): Promise<boolean> {
    const invalid = roomError(room)
    if (invalid !== null) return Promise.reject(invalid)
    const conn = this.registry.connections.get(id)
    if (conn === undefined) return this.#remote(id, { op: join ? 'join' : 'leave', target: id, room })
    const full = join ? this.#roomsError(conn, room) : null
    if (full !== null) return Promise.reject(full)
    this.#setMembership(conn, room, join)
    return join ? this.#routing.ready(room).then(() => true) : Promise.resolve(true)
  }

  /** `WSHUB_ERR_TOO_MANY_ROOMS` when `conn` is in as many rooms as it may be and `room` is not one of them. */
  #roomsError (conn: BaseConnection, room: string): Error | null {
    const rooms = this.registry.roomsOf(conn)
    const max = this.settings.maxRoomsPerConnection
    return rooms.size < max || rooms.has(room) ? null : new WSHUB_ERR_TOO_MANY_ROOMS(conn.id, String(max))
  }

  #setMembership (conn: BaseConnection, room: string, join: boolean): void {
    if (join) this.registry.join(conn, room)
    else this.registry.leave(conn, room)
  }

  /** The node that owns `id` when it is another node, or null (not an id, or one of this node's). */
  #remoteOwner (id: string): string | null {
    const node = ownerOf(id)
    return node === this.nodeId ? null : node
  }

  /** Asks the node that owns `id`; false for an id that no other node can own. */
  #remote (id: string, fields: RequestFields): Promise<boolean> {
    const node = this.#remoteOwner(id)
    return node === null ? Promise.resolve(false) : this.#cluster.request(node, fields)
  }

  /** Carries out another node's request on a connection of this node. */
  #perform (request: RequestEnvelope): boolean | Promise<boolean | Buffer> {
    const conn = this.registry.connections.get(request.target)
    if (conn === undefined) return false
    switch (request.op) {
      case 'call':
        return performCall(conn, request.payload)
      case 'send':
        return conn[kDeliver]({ binary: request.binary === true, payload: request.payload ?? Buffer.alloc(0) })
      case 'close':
        return conn.close(request.code, request.reason).then(() => true)
      case 'join':
      case 'leave': {
        const invalid = roomError(request.room) ?? (request.op === 'join' ? this.#roomsError(conn, request.room as string) : null)
        if (invalid !== null) throw invalid
        this.#setMembership(conn, request.room as string, request.op === 'join')
        return request.op === 'join' ? this.#routing.ready(request.room as string).then(() => true) : true
      }
      default:
        return true // has
    }
  }

  /** This node's rooms and their members' ids, for presence to write again after Redis lost them. */
  * #snapshot (): Generator<[string, string[]]> {
    for (const [room, members] of this.registry.rooms) yield [room, Array.from(members, member => member.id)]
  }

  /** An envelope from another node, on the broadcast channel or (`via`) on a room's channel. */
  #onEnvelope (envelope: Envelope, via?: string): void {
    if (envelope.origin === this.nodeId) return
    if (envelope.type === 'event') {
      this.#events.get(envelope.topic)?.(envelope.room, envelope.payload, envelope.origin)
      return
    }
    if (envelope.type !== 'rooms' && envelope.type !== 'all') return
    const message: Outgoing = { binary: envelope.binary, payload: envelope.payload }
    if (envelope.offset !== undefined && envelope.rooms?.length === 1) {
      message.room = envelope.rooms[0]!
      message.offset = envelope.offset
    }
    if (via !== undefined && envelope.type === 'rooms') {
      const except = this.#routing.exceptFor(via, envelope)
      if (except !== false) this.#deliver(message, [via], except)
      return
    }
    this.#deliver(message, envelope.type === 'all' ? null : envelope.rooms ?? [], envelope.except ?? null)
  }

  // Local delivery: framed once, in slices when the room is large (Fanout); settles, when it is not
  // null, once the delivery is done and the members it made high have drained (or stalled).
  #deliver (message: Outgoing, rooms: string[] | null, except: string[] | null): Promise<void> | null {
    // One excluded id (conn.broadcast, the common case) is compared directly; a Set only for several.
    const one = except !== null && except.length === 1 ? except[0] : undefined
    const many = except !== null && except.length > 1 ? new Set(except) : null
    let high: BaseConnection[] | null = null
    const deliver = (conn: BaseConnection): void => {
      if (conn.id !== one && (many === null || !many.has(conn.id)) && conn[kDeliver](message) && isHigh(conn)) {
        (high ??= []).push(conn)
      }
    }
    const size = this.#sizeOf(rooms)
    if (size <= FANOUT_LARGE && !this.#fanout.busy) {
      // A room that fits in one slice, with nothing ahead of it: the plain loops, at full speed.
      if (rooms === null) for (const conn of this.registry.connections.values()) deliver(conn)
      else if (rooms.length === 1) for (const conn of this.registry.rooms.get(rooms[0]!) ?? NOBODY) deliver(conn)
      else for (const conn of union(this.registry.rooms, rooms)) deliver(conn)
      return high === null ? null : pacedAll(high)
    }
    const done = this.#fanout.run(this.#members(rooms), size, deliver)
    if (done === null) return high === null ? null : pacedAll(high)
    return done.then(() => high === null ? undefined : pacedAll(high))
  }

  #sizeOf (rooms: string[] | null): number {
    if (rooms === null) return this.registry.connections.size
    let size = 0
    for (const room of rooms) size += this.registry.rooms.get(room)?.size ?? 0
    return size
  }

  #members (rooms: string[] | null): Iterator<BaseConnection> {
    if (rooms === null) return this.registry.connections.values()
    if (rooms.length === 1) return (this.registry.rooms.get(rooms[0]!) ?? NOBODY).values()
    return union(this.registry.rooms, rooms)
  }
}

const NOBODY: ReadonlySet<BaseConnection> = new Set()

// The members of several rooms, each once.
function * union (index: Map<string, Set<BaseConnection>>, rooms: string[]): Generator<BaseConnection> {
  const seen = new Set<BaseConnection>()
  for (const room of rooms) {
    const members = index.get(room)
    if (members === undefined) continue
    for (const conn of members) {
      if (seen.has(conn)) continue
      seen.add(conn)
      yield conn
    }
  }
}
