import { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { WSHUB_ERR_CONNECTION_CLOSED, WSHUB_ERR_INVALID_ARGUMENT, WSHUB_ERR_NOT_ACCEPTED } from './errors.js'
import { MAX_ROOM_LENGTH } from './constants.js'

// Tracked presence: who is in a room, under an application key (a user id, say), with metadata, and
// join/leave diffs. Apart from membership: a connection tracks a key in a room whether or not it joined
// it, and one key tracked from two tabs has two entries. Every entry belongs to the connection that
// tracked it; the connection's node writes it, and removes it when the connection ends.

/** The metadata of a presence entry: a JSON object. */
export type PresenceMeta = Record<string, unknown>

/** One tracking connection of a key. */
export interface PresenceEntry {
  /** The connection id. */
  id: string
  meta: PresenceMeta
}

/** A room's presence: for each key, one entry per tracking connection. */
export type PresenceState = Record<string, PresenceEntry[]>

/** A `'presence'` event: the entries that came (`joins`) and went (`leaves`) in `room`. */
export interface PresenceDiff {
  room: string
  joins: PresenceState
  leaves: PresenceState
}

/** Gets the presence changes of rooms with a member on this node. */
export type PresenceListener = (diff: PresenceDiff) => void

/** An entry as stores keep it: the key, the connection id, and the metadata as JSON text. */
export interface StoredPresence {
  key: string
  id: string
  meta: string
}

/**
 * Where presence entries live: in this process, or in Redis for every node. Each call costs time in
 * the size of the room's presence, never in the number of rooms.
 */
export interface TrackerStore {
  /**
   * Starts the store for node `nodeId`; `onLeaves` gets the entries the store removed by itself (those of
   * a node that died without closing).
   */
  start (nodeId: string, onLeaves: (room: string, leaves: StoredPresence[]) => void): Promise<void>
  /** Adds or replaces the entry of connection `id` under `key`; resolves with the replaced meta, or null. */
  track (room: string, key: string, id: string, meta: string): Promise<string | null>
  /** Removes the entry; resolves with its meta, or null when there was none. */
  untrack (room: string, key: string, id: string): Promise<string | null>
  /** Every entry of the room. */
  list (room: string): Promise<StoredPresence[]>
  /** Forgets this node's entries and stops the store's timers. */
  stop (): Promise<void>
}

/** The most characters a presence key may have. */
const MAX_KEY_LENGTH = 256

/** Presence in this process's memory. */
export class MemoryTrackerStore implements TrackerStore {
  readonly #rooms = new Map<string, Map<string, StoredPresence>>()

  async start (): Promise<void> {}

  async track (room: string, key: string, id: string, meta: string): Promise<string | null> {
    let entries = this.#rooms.get(room)
    if (entries === undefined) {
      entries = new Map()
      this.#rooms.set(room, entries)
    }
    const field = `${id}\n${key}`
    const old = entries.get(field)?.meta ?? null
    entries.set(field, { key, id, meta })
    return old
  }

  async untrack (room: string, key: string, id: string): Promise<string | null> {
    const entries = this.#rooms.get(room)
    const field = `${id}\n${key}`
    const old = entries?.get(field)
    if (entries === undefined || old === undefined) return null
    entries.delete(field)
    if (entries.size === 0) this.#rooms.delete(room)
    return old.meta
  }

  async list (room: string): Promise<StoredPresence[]> {
    return [...(this.#rooms.get(room)?.values() ?? [])]
  }

  async stop (): Promise<void> {
    this.#rooms.clear()
  }
}

/** What the tracker needs of its hub. @internal */
export interface TrackerHost {
  readonly nodeId: string
  /** Whether this node has a member of `room`. */
  hasLocalMembers (room: string): boolean
  publishEvent (topic: string, room: string, payload: Buffer): Promise<void>
  onEvent (topic: string, listener: (room: string, payload: Buffer, origin: string) => void): void
}

/** What the tracker needs of a connection that tracks. */
interface Tracking {
  readonly id: string
  readonly accepted: boolean
  readonly closed: boolean
}

const TOPIC = 'presence'

/**
 * The presence module of a hub: `conn.track` / `untrack`, `app.ws.presence(room)` and the `'presence'`
 * event. A change is emitted on this node when it has a member of the room, and published to the other
 * nodes, which emit it when they have one. A connection's entries are untracked when it ends.
 */
export class Tracker {
  readonly #store: TrackerStore
  readonly #events = new EventEmitter()
  readonly #log: FastifyBaseLogger
  /** What each local connection tracks: room, then keys. */
  readonly #tracked = new Map<string, Map<string, Set<string>>>()
  readonly #pending = new Set<Promise<unknown>>()
  #host: TrackerHost | null = null

  /** @internal */
  constructor (store: TrackerStore, log: FastifyBaseLogger) {
    this.#store = store
    this.#log = log
    // One listener per connection is a fair use (a chat that tells each socket): no leak warning.
    this.#events.setMaxListeners(0)
  }

  /** @internal */
  async start (host: TrackerHost): Promise<void> {
    this.#host = host
    host.onEvent(TOPIC, (room, payload) => {
      if (!host.hasLocalMembers(room)) return
      let diff: { joins: PresenceState, leaves: PresenceState }
      try {
        diff = JSON.parse(payload.toString())
      } catch {
        return
      }
      this.#emit({ room, joins: diff.joins, leaves: diff.leaves })
    })
    await this.#store.start(host.nodeId, (room, leaves) => this.#changed(room, [], leaves))
  }

  /** Adds a listener of `'presence'` events. */
  on (listener: PresenceListener): void {
    this.#events.on(TOPIC, listener)
  }

  /** Removes a listener. */
  off (listener: PresenceListener): void {
    this.#events.off(TOPIC, listener)
  }

  /** Tracks `key` in `room` for connection `conn`, replacing its meta when it tracks the key already. */
  track (conn: Tracking, room: string, key: unknown, meta: unknown = {}): Promise<void> {
    const invalid = keyError(key) ?? metaError(meta)
    if (invalid !== null) return Promise.reject(invalid)
    if (conn.closed) return Promise.reject(new WSHUB_ERR_CONNECTION_CLOSED(conn.id))
    if (!conn.accepted) return Promise.reject(new WSHUB_ERR_NOT_ACCEPTED(conn.id))
    const text = JSON.stringify(meta)
    let rooms = this.#tracked.get(conn.id)
    if (rooms === undefined) {
      rooms = new Map()
      this.#tracked.set(conn.id, rooms)
    }
    let keys = rooms.get(room)
    if (keys === undefined) {
      keys = new Set()
      rooms.set(room, keys)
    }
    keys.add(key as string)
    return this.#run(this.#store.track(room, key as string, conn.id, text).then(old => {
      const leaves = old === null ? [] : [{ key: key as string, id: conn.id, meta: old }]
      this.#changed(room, [{ key: key as string, id: conn.id, meta: text }], leaves)
    }))
  }

  /** Untracks `key` in `room` for connection `id`; nothing happens when it was not tracked. */
  untrack (id: string, room: string, key: unknown): Promise<void> {
    const invalid = keyError(key)
    if (invalid !== null) return Promise.reject(invalid)
    const rooms = this.#tracked.get(id)
    const keys = rooms?.get(room)
    if (keys === undefined || !keys.delete(key as string)) return Promise.resolve()
    if (keys.size === 0) rooms!.delete(room)
    if (rooms!.size === 0) this.#tracked.delete(id)
    return this.#untrack(id, room, key as string)
  }

  /** Untracks everything connection `id` tracked (it has ended). */
  untrackAll (id: string): void {
    const rooms = this.#tracked.get(id)
    if (rooms === undefined) return
    this.#tracked.delete(id)
    for (const [room, keys] of rooms) {
      for (const key of keys) this.#untrack(id, room, key).catch(err => this.#log.debug({ err }, 'fastify-ws-hub: untrack failed'))
    }
  }

  /** The presence of `room`: for each key, one entry per tracking connection. */
  async presence (room: string): Promise<PresenceState> {
    return toState(await this.#store.list(room))
  }

  /** Waits for pending writes, then stops the store (this node's entries are gone from it). @internal */
  async stop (): Promise<void> {
    await Promise.allSettled([...this.#pending])
    await this.#store.stop()
  }

  #untrack (id: string, room: string, key: string): Promise<void> {
    return this.#run(this.#store.untrack(room, key, id).then(old => {
      if (old !== null) this.#changed(room, [], [{ key, id, meta: old }])
    }))
  }

  #run (promise: Promise<void>): Promise<void> {
    this.#pending.add(promise)
    return promise.finally(() => this.#pending.delete(promise))
  }

  #changed (room: string, joins: StoredPresence[], leaves: StoredPresence[]): void {
    const host = this.#host!
    const diff = { joins: toState(joins), leaves: toState(leaves) }
    host.publishEvent(TOPIC, room, Buffer.from(JSON.stringify(diff))).catch(err => {
      this.#log.debug({ err }, 'fastify-ws-hub: a presence change could not be published')
    })
    if (host.hasLocalMembers(room)) this.#emit({ room, ...diff })
  }

  #emit (diff: PresenceDiff): void {
    for (const listener of this.#events.listeners(TOPIC) as PresenceListener[]) {
      try {
        listener(diff)
      } catch (err) {
        this.#log.error({ err }, 'fastify-ws-hub: a presence listener threw')
      }
    }
  }
}

function toState (entries: readonly StoredPresence[]): PresenceState {
  const state: PresenceState = {}
  for (const { key, id, meta } of entries) (state[key] ??= []).push({ id, meta: JSON.parse(meta) })
  return state
}

function keyError (key: unknown): Error | null {
  if (typeof key === 'string' && key.length > 0 && key.length <= MAX_KEY_LENGTH) return null
  return new WSHUB_ERR_INVALID_ARGUMENT('presence key', `a non-empty string of at most ${MAX_ROOM_LENGTH} characters`)
}

function metaError (meta: unknown): Error | null {
  if (typeof meta === 'object' && meta !== null && !Array.isArray(meta)) {
    try {
      JSON.stringify(meta)
      return null
    } catch {}
  }
  return new WSHUB_ERR_INVALID_ARGUMENT('presence meta', 'a JSON object')
}
