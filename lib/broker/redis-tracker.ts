import { createHash } from 'node:crypto'
import type { StoredPresence, TrackerStore } from '../presence.js'
import { roomKey } from './keys.js'
import type { ScriptRunner } from './redis-history.js'
import type { LuaScript } from './redis-presence.js'

function lua (name: string, body: string): LuaScript {
  return { name, lua: body, sha: createHash('sha1').update(body).digest('hex') }
}

// Keys, under the prefix P; every script touches one key, or keys of one slot:
//   P presence#{<room>}    hash: "<connection id>\n<key>" -> meta (JSON). A connection id starts with
//                          its node's id and a dot, so every entry says which node wrote it.
//   P tracked#{<node>}     set of the rooms where <node> has entries (its index)
//   P tracker-nodes        hash: node id -> the ms (Redis clock) until which it counts as alive
// Each node pushes its own time forward every beat (at most every second). A node whose time has
// passed died without closing: every other node sees that on its next beat and sweeps the dead node's
// index in chunks (SPOP, so that two sweepers never take the same room), removing its entries from each
// room and emitting them as leaves. Nothing walks all rooms: a sweep costs the dead node's rooms, each in
// the size of that room's presence.

/** KEYS: the room's hash. ARGV: field, meta. Returns the replaced meta, or nil. */
const TRACK = lua('tracker-track', `
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
`)

/** KEYS: the room's hash. ARGV: field. Returns the removed meta, or nil. */
const UNTRACK = lua('tracker-untrack', `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then redis.call('HDEL', KEYS[1], ARGV[1]) end
return old
`)

/** KEYS: the room's hash. */
const LIST = lua('tracker-list', `
return redis.call('HGETALL', KEYS[1])
`)

/** KEYS: a node's index. ARGV: '1' to add, '0' to remove, then the room. */
const INDEX = lua('tracker-index', `
if ARGV[1] == '1' then return redis.call('SADD', KEYS[1], ARGV[2]) end
return redis.call('SREM', KEYS[1], ARGV[2])
`)

/**
 * KEYS: the nodes hash. ARGV: node, ttl. Pushes the node's time forward; returns whether its field was
 * new (Redis lost it, or the first beat) and the nodes whose time has passed.
 */
const BEAT = lua('tracker-beat', `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created = redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
local dead = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] and tonumber(all[i + 1]) < now then dead[#dead + 1] = all[i] end
end
return {created, dead}
`)

/** KEYS: a node's index. ARGV: how many. Takes up to that many rooms out of it. */
const POP = lua('tracker-pop', `
return redis.call('SPOP', KEYS[1], ARGV[1])
`)

/** KEYS: the room's hash. ARGV: a node id and its dot. Removes that node's entries; returns them. */
const CLEAR = lua('tracker-clear', `
local out = {}
local all = redis.call('HGETALL', KEYS[1])
local n = #ARGV[1]
for i = 1, #all, 2 do
  if string.sub(all[i], 1, n) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
`)

/** KEYS: the nodes hash, or a node's index. ARGV: the node (for the hash). Forgets it. */
const FORGET = lua('tracker-forget', `
if ARGV[1] == '' then return redis.call('DEL', KEYS[1]) end
return redis.call('HDEL', KEYS[1], ARGV[1])
`)

/** Rooms taken from a dead node's index at a time. */
const SWEEP_CHUNK = '64'
/** Dead nodes remembered, to leave out entries a sweep has not removed yet. */
const MAX_DEAD = 1024

/** Cluster-wide presence in Redis, one hash per room. */
export class RedisTrackerStore implements TrackerStore {
  readonly #redis: ScriptRunner
  readonly #nodeTtl: number
  readonly #nodesKey: string
  /** This node's entries, by room (to keep its index, and to write them again if Redis lost them). */
  readonly #mine = new Map<string, Map<string, string>>()
  /** Nodes seen dead: their entries are left out of answers. */
  readonly #dead = new Set<string>()
  readonly #sweeping = new Set<string>()
  #nodeId = ''
  #timer: NodeJS.Timeout | null = null
  #beats = 0
  #onLeaves: (room: string, leaves: StoredPresence[]) => void = () => {}

  /**
   * @param redis - the broker's script runner
   * @param nodeTtl - ms after which a node that stopped beating counts as dead
   */
  constructor (redis: ScriptRunner, nodeTtl: number) {
    this.#redis = redis
    this.#nodeTtl = nodeTtl
    this.#nodesKey = `${redis.keyPrefix}tracker-nodes`
  }

  async start (nodeId: string, onLeaves: (room: string, leaves: StoredPresence[]) => void): Promise<void> {
    this.#nodeId = nodeId
    this.#onLeaves = onLeaves
    await this.#beat()
    this.#timer = setInterval(() => { this.#beat().catch(() => {}) }, Math.max(50, Math.min(1000, Math.floor(this.#nodeTtl / 3))))
    this.#timer.unref()
  }

  async track (room: string, key: string, id: string, meta: string): Promise<string | null> {
    const field = `${id}\n${key}`
    let mine = this.#mine.get(room)
    if (mine === undefined) {
      mine = new Map()
      this.#mine.set(room, mine)
      this.#index(true, room)
    }
    mine.set(field, meta)
    return await this.#redis.script(TRACK, [this.#roomKey(room)], [field, meta], true) as string | null
  }

  async untrack (room: string, key: string, id: string): Promise<string | null> {
    const field = `${id}\n${key}`
    const mine = this.#mine.get(room)
    if (mine !== undefined && mine.delete(field) && mine.size === 0) {
      this.#mine.delete(room)
      this.#index(false, room)
    }
    return await this.#redis.script(UNTRACK, [this.#roomKey(room)], [field], true) as string | null
  }

  async list (room: string): Promise<StoredPresence[]> {
    const flat = await this.#redis.script(LIST, [this.#roomKey(room)], [], true) as string[]
    return this.#entries(flat).filter(entry => !this.#dead.has(nodeOf(entry.id)))
  }

  async stop (): Promise<void> {
    if (this.#timer === null) return
    clearInterval(this.#timer)
    this.#timer = null
    const mine = this.#nodeId + '.'
    const writes: Promise<unknown>[] = []
    for (const room of this.#mine.keys()) writes.push(this.#redis.script(CLEAR, [this.#roomKey(room)], [mine], true))
    this.#mine.clear()
    writes.push(this.#redis.script(FORGET, [this.#indexKey(this.#nodeId)], [''], true))
    writes.push(this.#redis.script(FORGET, [this.#nodesKey], [this.#nodeId], true))
    await Promise.allSettled(writes)
  }

  async #beat (): Promise<void> {
    const [created, dead] = await this.#redis.script(BEAT, [this.#nodesKey], [this.#nodeId, String(this.#nodeTtl)], true) as [number, string[]]
    // Redis lost this node's time (a restart): write its entries again.
    if (created === 1 && this.#beats++ > 0) this.#restore()
    for (const node of dead) {
      if (this.#dead.size >= MAX_DEAD) this.#dead.delete(this.#dead.values().next().value!)
      this.#dead.add(node)
      if (!this.#sweeping.has(node)) {
        this.#sweeping.add(node)
        this.#sweep(node).catch(() => {}).finally(() => this.#sweeping.delete(node))
      }
    }
  }

  /** Removes a dead node's entries, room by room, and emits them as leaves. */
  async #sweep (node: string): Promise<void> {
    const index = this.#indexKey(node)
    for (;;) {
      const rooms = await this.#redis.script(POP, [index], [SWEEP_CHUNK], true) as string[]
      if (rooms.length === 0) break
      await Promise.all(rooms.map(async room => {
        const removed = this.#entries(await this.#redis.script(CLEAR, [this.#roomKey(room)], [node + '.'], true) as string[])
        if (removed.length > 0) this.#onLeaves(room, removed)
      }))
    }
    await this.#redis.script(FORGET, [this.#nodesKey], [node], true)
  }

  #restore (): void {
    for (const [room, entries] of this.#mine) {
      this.#index(true, room)
      for (const [field, meta] of entries) this.#redis.script(TRACK, [this.#roomKey(room)], [field, meta], true).catch(() => {})
    }
  }

  #index (add: boolean, room: string): void {
    this.#redis.script(INDEX, [this.#indexKey(this.#nodeId)], [add ? '1' : '0', room], true).catch(() => {})
  }

  #entries (flat: string[]): StoredPresence[] {
    const entries: StoredPresence[] = []
    for (let i = 0; i < flat.length; i += 2) {
      const field = flat[i]!
      const cut = field.indexOf('\n')
      entries.push({ id: field.slice(0, cut), key: field.slice(cut + 1), meta: flat[i + 1]! })
    }
    return entries
  }

  #roomKey (room: string): string {
    return roomKey(this.#redis.keyPrefix, 'presence', room)
  }

  #indexKey (node: string): string {
    return `${this.#redis.keyPrefix}tracked#{${node}}`
  }
}

function nodeOf (id: string): string {
  return id.slice(0, id.indexOf('.'))
}
