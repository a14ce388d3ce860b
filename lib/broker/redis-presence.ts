import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { Presence, PresenceSnapshot } from './broker.js'
import { memberKey, nodeKey, roomKey } from './keys.js'

/** A Lua script run with EVALSHA, and with EVAL when Redis does not know it yet (or lost it on a restart). */
export interface LuaScript {
  readonly name: string
  readonly lua: string
  readonly sha: string
}

/** What the presence needs of its broker's Redis connection. Part of the shipped types because `RedisPresence` takes it. */
export interface RedisLink {
  /** Whether the command connection is up. */
  ready (): boolean
  /** The command connection (a Redis client or a Cluster). */
  client (): Redis | Cluster
  /**
   * Runs a script on its declared `keys` (all in one slot). Rejects with `WSHUB_ERR_REDIS_UNAVAILABLE`
   * when the connection is down and, when `bounded`, when Redis does not answer within the request timeout.
   */
  run (script: LuaScript, keys: string[], args: string[], bounded: boolean): Promise<unknown>
  /** Bounds a command's answer by the request timeout (`WSHUB_ERR_REDIS_UNAVAILABLE` after it). */
  bounded<T> (promise: Promise<T>, what: string): Promise<T>
  /** Reports a failed write: logged once until Redis is back (the broker knows whether it is down). */
  failed (err: Error, what: string): void
  /** Reports that the node's whole presence was written again after a failed write. */
  recovered (): void
}

function script (name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') }
}

// Keys (see keys.ts), P being the prefix; every script names its keys in KEYS, all in one slot:
//   P nodes                  sorted set: node id -> its liveness deadline (ms, by Redis's clock)
//   P node#{<n>}#rooms       set of the rooms where node <n> has members
//   P nodes#{<room>}         hash: node id -> how many members node has in <room>
//   P members#{<room>}#<n>   set of the connection ids of <room> on node <n>
// A node writes only its own entries. Any node removes the entries of a node whose deadline has passed
// (its sweep, through the dead node's room index), a chunk of rooms at a time; reads leave out the
// entries of nodes whose deadline has passed meanwhile. No script walks more than one room.

const NOW = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

/** KEYS: members, nodes of the room. ARGV: node, id. */
const JOIN = script('join', `
redis.call('sadd', KEYS[1], ARGV[2])
redis.call('hset', KEYS[2], ARGV[1], redis.call('scard', KEYS[1]))
return 1
`)

/** KEYS: members, nodes of the room. ARGV: node, id. */
const LEAVE = script('leave', `
redis.call('srem', KEYS[1], ARGV[2])
local left = redis.call('scard', KEYS[1])
if left == 0 then redis.call('hdel', KEYS[2], ARGV[1]) else redis.call('hset', KEYS[2], ARGV[1], left) end
return 1
`)

/** KEYS: members, nodes of the room. ARGV: node, reset ('1': replace what was there), ids... */
const WRITE = script('write', `
if ARGV[2] == '1' then redis.call('del', KEYS[1]) end
for i = 3, #ARGV do redis.call('sadd', KEYS[1], ARGV[i]) end
redis.call('hset', KEYS[2], ARGV[1], redis.call('scard', KEYS[1]))
return 1
`)

/** KEYS: members, nodes of the room. ARGV: node. Removes a node's entries from one room. */
const CLEAR = script('clear', `
redis.call('unlink', KEYS[1])
redis.call('hdel', KEYS[2], ARGV[1])
return 1
`)

/** KEYS: P nodes. ARGV: node, ttl. Marks the node alive until now + ttl. */
const MARK = script('mark', NOW + `
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
`)

/**
 * KEYS: P nodes. ARGV: node, ttl. Refreshes the node's deadline; returns whether it had not passed,
 * then up to ten nodes whose deadline has.
 */
const HEARTBEAT = script('heartbeat', NOW + `
local score = redis.call('zscore', KEYS[1], ARGV[1])
local existed = (score and tonumber(score) >= now) and 1 or 0
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local result = { existed }
for _, n in ipairs(redis.call('zrangebyscore', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 10)) do
  result[#result + 1] = n
end
return result
`)

/** KEYS: P nodes. ARGV: node. 1 when the node's deadline has not passed. */
const ALIVE = script('alive', NOW + `
local score = redis.call('zscore', KEYS[1], ARGV[1])
return (score and tonumber(score) >= now) and 1 or 0
`)

/** KEYS: P nodes. The nodes whose deadline has not passed. */
const LIVE = script('live', NOW + `
return redis.call('zrangebyscore', KEYS[1], now, '+inf')
`)

/** KEYS: P nodes. ARGV: node, deadline ('' for any). Forgets a node, unless it came back meanwhile. */
const FORGET = script('forget', NOW + `
local score = redis.call('zscore', KEYS[1], ARGV[1])
if score and ARGV[2] == '' or (score and tonumber(score) < now) then redis.call('zrem', KEYS[1], ARGV[1]) end
return 1
`)

/** How many ids one bulk write of a room carries at most (a large room is written in chunks). */
const WRITE_CHUNK = 5_000
/** How many rooms of a node one step of a sweep (or of a rewrite) handles. */
const ROOM_CHUNK = 200
/** How many rooms one step of `rooms()` asks for. */
const SCAN_COUNT = 1_000

/**
 * Cluster-wide presence in Redis (see the key layout above), where every operation costs what it
 * touches: a join or a leave writes one room's keys (and, for the node's first member in a room or its
 * last, one entry of the node's room index); `roomSize` reads one hash and the list of live nodes;
 * `members` reads one room; `rooms()` scans the live nodes' room indexes in bounded steps; a dead node's
 * entries are removed a chunk of rooms at a time. On a Redis Cluster a room's keys are in the room's
 * slot, a node's index in the node's.
 *
 * Each node writes its own memberships as they change, in order on the broker's command connection, so
 * a read on this node sees this node's earlier writes. A refresh timer (unref'd) keeps the node's
 * liveness deadline; reads leave out the nodes whose deadline has passed. When Redis comes back after
 * an outage, or the node finds its deadline passed, it writes its whole presence again.
 */
export class RedisPresence implements Presence {
  readonly #link: RedisLink
  readonly #prefix: string
  readonly #nodes: string
  readonly #ttl: number
  readonly #log: FastifyBaseLogger
  #nodeId = ''
  #index = ''
  #snapshot: PresenceSnapshot = () => []
  #has: (room: string) => boolean = () => false
  #timer: NodeJS.Timeout | null = null
  #started = false
  #stopped = false
  #dirty = false
  #beating = false
  /** The dead node being swept, if any (one at a time). */
  #sweeping: Promise<void> | null = null

  /**
   * @param link - the broker's command connection
   * @param prefix - the key prefix
   * @param nodeTtl - ms after which a node that stopped refreshing its mark counts as dead
   * @param log - for failed refreshes
   */
  constructor (link: RedisLink, prefix: string, nodeTtl: number, log: FastifyBaseLogger) {
    this.#link = link
    this.#prefix = prefix
    this.#nodes = `${prefix}nodes`
    this.#ttl = nodeTtl
    this.#log = log
  }

  async start (nodeId: string, snapshot: PresenceSnapshot, has?: (room: string) => boolean): Promise<void> {
    this.#nodeId = nodeId
    this.#index = nodeKey(this.#prefix, 'rooms', nodeId)
    this.#snapshot = snapshot
    if (has !== undefined) this.#has = has
    await this.#writeAll()
    this.#started = true
    this.#timer = setInterval(() => { this.#beat() }, Math.max(Math.floor(this.#ttl / 3), 10))
    this.#timer.unref()
  }

  join (room: string, id: string, first = false): void {
    if (this.#write(JOIN, room, id) && first) this.#indexWrite(true, room)
  }

  leave (room: string, id: string, last = false): void {
    if (this.#write(LEAVE, room, id) && last) this.#indexWrite(false, room)
  }

  async alive (nodeId: string): Promise<boolean> {
    return await this.#link.run(ALIVE, [this.#nodes], [nodeId], true) === 1
  }

  async roomSize (room: string): Promise<number> {
    const [counts, live] = await Promise.all([
      this.#link.bounded(this.#link.client().hgetall(roomKey(this.#prefix, 'nodes', room)), 'room'),
      this.#live()
    ])
    let size = 0
    for (const node in counts) if (live.has(node)) size += Number(counts[node])
    return size
  }

  async members (room: string): Promise<string[]> {
    const [nodes, live] = await Promise.all([
      this.#link.bounded(this.#link.client().hkeys(roomKey(this.#prefix, 'nodes', room)), 'room'),
      this.#live()
    ])
    const keys: string[] = []
    for (const node of nodes) if (live.has(node)) keys.push(memberKey(this.#prefix, room, node))
    if (keys.length === 0) return []
    return await this.#link.bounded(this.#link.client().sunion(...keys), 'room')
  }

  async rooms (): Promise<string[]> {
    const live = await this.#live()
    const client = this.#link.client()
    const seen = new Set<string>()
    await Promise.all([...live].map(async node => {
      const index = nodeKey(this.#prefix, 'rooms', node)
      let cursor = '0'
      do {
        const [next, rooms] = await this.#link.bounded(client.sscan(index, cursor, 'COUNT', SCAN_COUNT), 'rooms')
        for (const room of rooms) seen.add(room)
        cursor = next
      } while (cursor !== '0')
    }))
    return [...seen]
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#timer !== null) clearInterval(this.#timer)
    if (!this.#started || !this.#link.ready()) return
    try {
      await this.#sweep(this.#nodeId, false)
      await this.#link.run(FORGET, [this.#nodes], [this.#nodeId, ''], true)
    } catch (err) {
      this.#log.warn({ err }, 'fastify-ws-hub: could not remove this node\'s keys from Redis; the other nodes remove them once its liveness mark expires')
    }
  }

  /**
   * Writes this node's whole presence again (the broker calls it when Redis is back after an outage,
   * which may have been a restart that lost every key).
   * @internal
   */
  restore (): void {
    if (!this.#started || this.#stopped) return
    this.#writeAll().catch(err => {
      this.#dirty = true
      this.#link.failed(err, 'rewrite this node\'s presence')
    })
  }

  /** Queues one membership write of this node; false when it could not be queued (written in full later). */
  #write (script: LuaScript, room: string, id: string): boolean {
    if (this.#stopped) return false
    if (!this.#link.ready()) {
      this.#dirty = true // written in full when Redis is back
      return false
    }
    const keys = [memberKey(this.#prefix, room, this.#nodeId), roomKey(this.#prefix, 'nodes', room)]
    this.#link.run(script, keys, [this.#nodeId, id], false).catch(err => {
      this.#dirty = true
      this.#link.failed(err, `record a ${script.name}`)
    })
    return true
  }

  #indexWrite (add: boolean, room: string): void {
    const client = this.#link.client()
    const done = add ? client.sadd(this.#index, room) : client.srem(this.#index, room)
    done.catch(err => {
      this.#dirty = true
      this.#link.failed(err, 'record a room of this node')
    })
  }

  /**
   * The nodes whose liveness deadline has not passed, and this one (whose refresh may be late behind
   * a long queue of its own writes, but which knows it is alive).
   */
  async #live (): Promise<Set<string>> {
    const live = new Set(await this.#link.run(LIVE, [this.#nodes], [], true) as string[])
    if (this.#started && !this.#stopped) live.add(this.#nodeId)
    return live
  }

  /**
   * Removes node `node`'s entries, a chunk of rooms at a time, from the rooms of its index; then the
   * index itself. With `keep`, this node's own rooms that have a member stay: each chunk asks the
   * registry when it queues its removals, which go in order with the joins and leaves (a room joined
   * during the sweep is kept; one left during it is removed).
   */
  async #sweep (node: string, keep: boolean): Promise<void> {
    const client = this.#link.client()
    const index = nodeKey(this.#prefix, 'rooms', node)
    let cursor = '0'
    do {
      // Own rooms to keep stay in the index, so a scan walks past them; a dead node's are all removed.
      const [next, rooms] = keep
        ? await this.#link.bounded(client.sscan(index, cursor, 'COUNT', ROOM_CHUNK), 'sweep')
        : ['1', await this.#link.bounded(client.srandmember(index, ROOM_CHUNK), 'sweep')]
      const gone = keep ? rooms.filter(room => !this.#has(room)) : rooms
      if (gone.length > 0) {
        // Queued together, with nothing in between that a join could come before.
        const removals = gone.map(room =>
          this.#link.run(CLEAR, [memberKey(this.#prefix, room, node), roomKey(this.#prefix, 'nodes', room)], [node], true))
        removals.push(this.#link.bounded(client.srem(index, ...gone), 'sweep'))
        await Promise.all(removals)
      }
      cursor = keep ? next : (rooms.length === 0 ? '0' : next)
    } while (cursor !== '0')
  }

  /**
   * Marks this node alive, forgets what it wrote before that it no longer has, and writes its
   * memberships. The rooms are listed as they are written (each room's ids as its write is queued),
   * so that joins and leaves during the rewrite, queued after it on the same connection, stay true.
   */
  async #writeAll (): Promise<void> {
    const wasDirty = this.#dirty
    this.#dirty = false
    await this.#link.run(MARK, [this.#nodes], [this.#nodeId, String(this.#ttl)], true)
    if (this.#started) await this.#sweep(this.#nodeId, true)
    const client = this.#link.client()
    let batch: Promise<unknown>[] = []
    let names: string[] = []
    const flush = async (): Promise<void> => {
      if (names.length > 0) batch.push(this.#link.bounded(client.sadd(this.#index, ...names), 'write'))
      await Promise.all(batch)
      batch = []
      names = []
    }
    for (const [room, ids] of this.#snapshot()) {
      const list = [...ids]
      const keys = [memberKey(this.#prefix, room, this.#nodeId), roomKey(this.#prefix, 'nodes', room)]
      for (let start = 0; start < list.length; start += WRITE_CHUNK) {
        batch.push(this.#link.run(WRITE, keys, [this.#nodeId, start === 0 ? '1' : '0', ...list.slice(start, start + WRITE_CHUNK)], true))
      }
      names.push(room)
      if (names.length >= ROOM_CHUNK) await flush()
    }
    await flush()
    if (wasDirty && !this.#dirty) this.#link.recovered()
  }

  #beat (): void {
    if (this.#stopped || this.#beating || !this.#link.ready()) return
    this.#beating = true
    const done = (): void => { this.#beating = false }
    if (this.#dirty) {
      this.#writeAll().then(done, err => {
        done()
        this.#dirty = true
        this.#link.failed(err, 'rewrite this node\'s presence')
      })
      return
    }
    this.#link.run(HEARTBEAT, [this.#nodes], [this.#nodeId, String(this.#ttl)], true).then(result => {
      done()
      const [existed, ...dead] = result as [number, ...string[]]
      // The deadline had passed (this process stalled longer than nodeTtl, or Redis lost it): other
      // nodes may have removed this node's entries, so write them all again.
      if (existed === 0) this.restore()
      const node = dead.find(other => other !== this.#nodeId)
      if (node !== undefined && this.#sweeping === null) {
        this.#sweeping = this.#sweep(node, false)
          .then(() => this.#link.run(FORGET, [this.#nodes], [node, 'dead'], true))
          .then(() => {}, (err: Error) => { this.#log.debug({ err, node }, 'fastify-ws-hub: could not remove a dead node\'s entries from Redis') })
          .finally(() => { this.#sweeping = null })
      }
    }, err => {
      done()
      this.#link.failed(err, 'refresh this node\'s liveness mark')
    })
  }
}
