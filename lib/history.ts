import type { Broker, BroadcastEnvelope } from './broker/broker.js'
import type { BaseConnection } from './connection.js'
import type { Outgoing } from './message.js'
import { CloseCode } from './errors.js'
import { kDeliver, kRecovery } from './symbols.js'

// Room history and recovery after a reconnect. Every message sent to rooms is appended to each target
// room's history (the last `size` messages, none older than `ttl` ms) under an offset: an opaque string
// `<ms>-<seq>` that increases with each message of a room (a Redis stream entry id, or the same shape in
// memory). `conn.join(room, { since })` replays what came after `since` and hands over to live delivery
// with nothing missing and nothing twice (see `Recovery`).

/** The `history` registration option, resolved. */
export interface HistoryOptions {
  /** How many messages each room keeps. */
  size: number
  /** Ms a message is kept. */
  ttl: number
  /** A property set to the offset on single-room plain-object messages, or null. */
  stamp: string | null
}

/** How a stored message is turned back into a value: a plain object (stampable), other JSON, text or bytes. */
export type EntryKind = 'o' | 'j' | 't' | 'b'

/** A message of a room's history as the store keeps it (unstamped). */
export interface StoredEntry {
  offset: string
  kind: EntryKind
  payload: Buffer
}

/** What a store read answers: whether the entry at `since` is still held, and the entries after it. */
export interface HistoryRead {
  held: boolean
  entries: StoredEntry[]
}

/** An entry of `app.ws.history(room)`. */
export interface HistoryEntry {
  /** The message's offset. */
  offset: string
  /** The message as it was sent: a string, a Buffer, or the JSON value (stamped when `stamp` is set). */
  data: unknown
}

/** The options of `conn.join(room, options)`. */
export interface JoinOptions {
  /**
   * The offset of the last message of the room the client saw (from a query string, say): the messages
   * after it are replayed first. Anything but an offset replays nothing.
   */
  since?: unknown
}

/** What `conn.join(room, { since })` resolves with. */
export interface JoinResult {
  /** True when the message at `since` was still held, so nothing can be missing. */
  recovered: boolean
  /** How many messages were replayed. */
  replayed: number
}

/**
 * Where room histories live. `append` also hands the envelope, with its `offset` set, to the other
 * nodes (a store in Redis does both in one script, so that order and the offset agree on every node).
 */
export interface HistoryStore {
  /**
   * Appends a message to `room`'s history and, when `envelope` is given, publishes it to the other nodes
   * on `channel` with the new offset. Resolves with the offset.
   */
  append (room: string, kind: EntryKind, payload: Buffer, envelope: BroadcastEnvelope | null, channel: string): Promise<string>
  /**
   * With `since`: whether the entry at `since` is held, and up to `limit` entries after it. Without:
   * the last `limit` entries (`held` false). Oldest first, none older than the ttl.
   */
  read (room: string, since: string | undefined, limit: number): Promise<HistoryRead>
  /** Releases timers and connections. */
  close (): Promise<void>
}

const OFFSET = /^(\d{1,15})-(\d{1,15})$/

/** Whether `value` has the shape of an offset. */
export function isOffset (value: unknown): value is string {
  return typeof value === 'string' && OFFSET.test(value)
}

/** Whether offset `a` comes after offset `b` (both well-formed). */
export function newer (a: string, b: string): boolean {
  const i = a.indexOf('-')
  const j = b.indexOf('-')
  const ms = Number(a.slice(0, i)) - Number(b.slice(0, j))
  return ms !== 0 ? ms > 0 : Number(a.slice(i + 1)) > Number(b.slice(j + 1))
}

/** How `data` is kept, so that `history()` can give it back as it was sent. */
export function kindOf (data: unknown, message: Outgoing): EntryKind {
  if (message.binary) return 'b'
  if (typeof data === 'string') return 't'
  if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
    const proto = Object.getPrototypeOf(data)
    if ((proto === Object.prototype || proto === null) && (data as { toJSON?: unknown }).toJSON === undefined) return 'o'
  }
  return 'j'
}

/**
 * The parts a stamped payload is built from: the object's JSON without its closing brace, then a comma
 * unless the object was empty, the quoted property name, a colon, the quoted offset and the brace. The
 * property comes last, so it wins over one of the same name already in the object.
 */
export function stampParts (payload: Buffer, name: string): [head: Buffer, middle: string] {
  return [payload.subarray(0, payload.length - 1), `${payload.length > 2 ? ',' : ''}${JSON.stringify(name)}:"`]
}

/** A plain-object message's JSON with `name` set to `offset`. */
export function stamped (payload: Buffer, name: string, offset: string): Buffer {
  const [head, middle] = stampParts(payload, name)
  return Buffer.concat([head, Buffer.from(`${middle}${offset}"}`)])
}

interface RoomLog {
  entries: Array<StoredEntry & { time: number }>
}

/**
 * Room histories in this process's memory: the same semantics as in Redis. Offsets are `<ms>-<seq>`
 * from this process's clock, so that an offset from before a restart is never taken for a held one.
 * Rooms whose newest message is older than the ttl are forgotten by a timer that runs every ttl.
 */
export class MemoryHistoryStore implements HistoryStore {
  readonly #rooms = new Map<string, RoomLog>()
  readonly #size: number
  readonly #ttl: number
  readonly #stamp: string | null
  readonly #broker: Broker
  readonly #timer: NodeJS.Timeout
  #lastMs = 0
  #seq = 0

  /**
   * @param broker - where envelopes go to other hubs of this process
   * @param size - messages kept per room
   * @param ttl - ms a message is kept
   * @param stamp - the property set to the offset in the plain-object messages published, or null
   */
  constructor (broker: Broker, size: number, ttl: number, stamp: string | null) {
    this.#broker = broker
    this.#stamp = stamp
    this.#size = size
    this.#ttl = ttl
    this.#timer = setInterval(() => this.#sweep(), Math.min(ttl, 60_000))
    this.#timer.unref()
  }

  append (room: string, kind: EntryKind, payload: Buffer, envelope: BroadcastEnvelope | null, channel: string): Promise<string> {
    const now = Date.now()
    if (now > this.#lastMs) {
      this.#lastMs = now
      this.#seq = 0
    } else {
      this.#seq++
    }
    const offset = `${this.#lastMs}-${this.#seq}`
    let log = this.#rooms.get(room)
    if (log === undefined) {
      log = { entries: [] }
      this.#rooms.set(room, log)
    }
    log.entries.push({ offset, kind, payload, time: now })
    if (log.entries.length > this.#size) log.entries.shift()
    if (envelope === null) return Promise.resolve(offset)
    envelope.offset = offset
    if (this.#stamp !== null && kind === 'o') envelope.payload = stamped(payload, this.#stamp, offset)
    return this.#broker.publish(channel, envelope).then(() => offset)
  }

  read (room: string, since: string | undefined, limit: number): Promise<HistoryRead> {
    const entries = this.#rooms.get(room)?.entries ?? []
    const oldest = Date.now() - this.#ttl
    let first = 0
    while (first < entries.length && entries[first]!.time < oldest) first++
    if (since === undefined) return Promise.resolve({ held: false, entries: entries.slice(Math.max(first, entries.length - limit)) })
    let at = first
    while (at < entries.length && newer(since, entries[at]!.offset)) at++
    const held = at < entries.length && entries[at]!.offset === since
    if (held) at++
    return Promise.resolve({ held, entries: entries.slice(at, at + limit) })
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    this.#rooms.clear()
  }

  #sweep (): void {
    const oldest = Date.now() - this.#ttl
    for (const [room, log] of this.#rooms) {
      if (log.entries.at(-1)!.time < oldest) this.#rooms.delete(room)
    }
  }
}

/** The hand-over state of one room of one connection. */
interface Gate {
  /** Live messages held while the replay is read, or null once handed over. */
  held: Outgoing[] | null
  /** Their bytes: past the backpressure limit the connection is closed (1013), as for a slow reader. */
  bytes: number
  /** The newest offset replayed: live messages at or before it were replayed and are dropped. */
  floor: string | null
}

/**
 * A connection's hand-over from replay to live delivery, per room. The sequence, in `History.join`:
 * open the gate (live messages of the room are held), join the room (live delivery starts, into the
 * gate), read the history after `since` (everything appended before the read), replay it, then release:
 * held messages newer than the last replayed one are delivered, older ones dropped, and later live
 * messages at or before that offset are dropped too (a message appended before the read may reach this
 * node after it). Offsets of one room increase, so nothing is missing and nothing comes twice.
 */
export class Recovery {
  readonly #gates = new Map<string, Gate>()

  /**
   * Takes a live message for the hand-over: true when it is held or dropped (already replayed), false
   * when it is to be delivered now.
   */
  intercept (conn: BaseConnection, message: Outgoing): boolean {
    const gate = this.#gates.get(message.room!)
    if (gate === undefined) return false
    if (gate.held !== null) {
      gate.bytes += message.payload.length
      if (gate.bytes > conn.hub.settings.backpressure.limit) {
        gate.held = []
        conn.close(CloseCode.TRY_AGAIN_LATER, 'Too many messages during the replay').catch(() => {})
        return true
      }
      gate.held.push(message)
      return true
    }
    return gate.floor !== null && !newer(message.offset!, gate.floor)
  }

  /** Starts holding the live messages of `room`. */
  open (room: string): void {
    this.#gates.set(room, { held: [], bytes: 0, floor: null })
  }

  /** Hands over to live delivery: delivers the held messages newer than `floor` (all when null). */
  release (conn: BaseConnection, room: string, floor: string | null): void {
    const gate = this.#gates.get(room)
    /* c8 ignore next */
    if (gate === undefined || gate.held === null) return
    const held = gate.held
    gate.held = null
    gate.floor = floor
    for (const message of held) {
      if (floor === null || newer(message.offset!, floor)) conn[kDeliver](message)
    }
    if (floor === null) this.#gates.delete(room)
  }
}

/**
 * The history module of a hub: appends room messages, replays them on `join(room, { since })`, and
 * answers `history(room)`.
 */
export class History {
  readonly #store: HistoryStore
  readonly #options: HistoryOptions

  /** @internal */
  constructor (store: HistoryStore, options: HistoryOptions) {
    this.#store = store
    this.#options = options
  }

  /**
   * Appends a message sent to one room and hands it to the other nodes; resolves with the local
   * message to deliver (stamped, with its room and offset), or the message as it was when the store
   * failed (Redis down: local delivery goes on, without an offset).
   */
  async appendOne (room: string, data: unknown, message: Outgoing, envelope: BroadcastEnvelope, channel: string): Promise<Outgoing> {
    const kind = kindOf(data, message)
    const stamp = this.#options.stamp
    envelope.offset = ''
    let offset: string
    try {
      offset = await this.#store.append(room, kind, message.payload, envelope, channel)
    } catch {
      return message
    }
    const payload = stamp !== null && kind === 'o' ? stamped(message.payload, stamp, offset) : message.payload
    return { binary: message.binary, payload, room, offset }
  }

  /**
   * Appends a message sent to several rooms to each room's history. It has no single offset: it is not
   * stamped, live or replayed.
   */
  appendMany (rooms: readonly string[], data: unknown, message: Outgoing): Promise<unknown> {
    const found = kindOf(data, message)
    const kind = found === 'o' ? 'j' : found
    return Promise.allSettled(rooms.map(room => this.#store.append(room, kind, message.payload, null, '')))
  }

  /**
   * Joins `conn` to `room` through `join`, replaying the messages after `since` with the hand-over
   * described at {@link Recovery}.
   */
  async join (conn: BaseConnection, room: string, since: unknown, join: () => Promise<void>): Promise<JoinResult> {
    if (!isOffset(since)) {
      await join()
      return { recovered: false, replayed: 0 }
    }
    const recovery = conn[kRecovery] ??= new Recovery()
    recovery.open(room)
    let read: HistoryRead | null = null
    try {
      await join()
    } catch (err) {
      recovery.release(conn, room, null)
      throw err
    }
    try {
      read = await this.#store.read(room, since, this.#options.size)
    } catch {
      // The store cannot answer (Redis down): joined, but nothing can be claimed recovered.
    }
    if (read === null || !read.held) {
      recovery.release(conn, room, null)
      return { recovered: false, replayed: 0 }
    }
    for (const entry of read.entries) conn[kDeliver](this.#outgoing(entry))
    recovery.release(conn, room, read.entries.at(-1)?.offset ?? since)
    return { recovered: true, replayed: read.entries.length }
  }

  /** The messages of `room`, oldest first: after `since` when given, else the last `limit`. */
  async list (room: string, since: unknown, limit: number): Promise<HistoryEntry[]> {
    if (since !== undefined && !isOffset(since)) return []
    const read = await this.#store.read(room, since, limit)
    return read.entries.map(entry => {
      const payload = this.#outgoing(entry).payload
      return {
        offset: entry.offset,
        data: entry.kind === 'b' ? payload : entry.kind === 't' ? payload.toString() : JSON.parse(payload.toString())
      }
    })
  }

  /** @internal */
  close (): Promise<void> {
    return this.#store.close()
  }

  #outgoing (entry: StoredEntry): Outgoing {
    const stamp = this.#options.stamp
    const payload = stamp !== null && entry.kind === 'o' ? stamped(entry.payload, stamp, entry.offset) : entry.payload
    return { binary: entry.kind === 'b', payload }
  }
}
