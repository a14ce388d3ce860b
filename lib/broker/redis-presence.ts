import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Presence, PresenceSnapshot } from './broker.js'

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
  /**
   * Runs a script (with no KEYS: key names are built from ARGV[1], the prefix, so that an ioredis
   * `keyPrefix` of a shared client does not apply to some keys and not others). Rejects with
   * `WSHUB_ERR_REDIS_UNAVAILABLE` when the connection is down and, when `bounded`, when Redis does not
   * answer within the request timeout.
   */
  run (script: LuaScript, args: string[], bounded: boolean): Promise<unknown>
  /** Reports a failed write: logged once until Redis is back (the broker knows whether it is down). */
  failed (err: Error, what: string): void
  /** Reports that the node's whole presence was written again after a failed write. */
  recovered (): void
}

function script (name: string, body: string): LuaScript {
  const lua = COMMON + body
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') }
}

// Keys, all under the prefix P (ARGV[1]); node ids never contain '#', so every key is unambiguous:
//   P alive#<node>           liveness mark, a string with a TTL of nodeTtl, refreshed every nodeTtl / 3
//   P nodes                  set of the node ids that registered
//   P rooms#<node>           set of the rooms where <node> has members
//   P room#<room>            set of the node ids that have members in <room>
//   P members#<node>#<room>  set of the connection ids of <room> on <node>
// A node writes only its own entries. Any node removes the entries of a node whose liveness mark is
// gone (`clear`), when it comes across one: in a read, and in its own heartbeat's sweep of P nodes.
const COMMON = `
local P = ARGV[1]
local function alive (n)
  return redis.call('exists', P .. 'alive#' .. n) == 1
end
-- pcall: a read that comes across a dead node still answers when the clean-up cannot be written
-- (a read-only replica); the next read or refresh cleans up.
local function clear (n)
  local roomsKey = P .. 'rooms#' .. n
  for _, r in ipairs(redis.call('smembers', roomsKey)) do
    redis.pcall('srem', P .. 'room#' .. r, n)
    redis.pcall('del', P .. 'members#' .. n .. '#' .. r)
  end
  redis.pcall('del', roomsKey)
  redis.pcall('srem', P .. 'nodes', n)
end
`

/** ARGV: P, node, ttl. Refreshes the mark and sweeps dead nodes; returns 0 when the mark had expired. */
const HEARTBEAT = script('heartbeat', `
local n = ARGV[2]
local key = P .. 'alive#' .. n
local existed = redis.call('exists', key)
if existed == 1 then redis.call('pexpire', key, ARGV[3]) end
for _, other in ipairs(redis.call('smembers', P .. 'nodes')) do
  if other ~= n and not alive(other) then clear(other) end
end
return existed
`)

/**
 * ARGV: P, node, ttl, reset ('1': forget what the node wrote before and mark it alive), then groups of
 * room, count, and count ids. Writes a node's memberships in bulk.
 */
const WRITE = script('write', `
local n = ARGV[2]
if ARGV[4] == '1' then
  clear(n)
  redis.call('set', P .. 'alive#' .. n, '1', 'PX', ARGV[3])
  redis.call('sadd', P .. 'nodes', n)
end
local i = 5
while i <= #ARGV do
  local r = ARGV[i]
  local count = tonumber(ARGV[i + 1])
  local key = P .. 'members#' .. n .. '#' .. r
  for j = i + 2, i + 1 + count do redis.call('sadd', key, ARGV[j]) end
  redis.call('sadd', P .. 'room#' .. r, n)
  redis.call('sadd', P .. 'rooms#' .. n, r)
  i = i + 2 + count
end
return 1
`)

/** ARGV: P, node, room, id. */
const JOIN = script('join', `
redis.call('sadd', P .. 'members#' .. ARGV[2] .. '#' .. ARGV[3], ARGV[4])
redis.call('sadd', P .. 'room#' .. ARGV[3], ARGV[2])
redis.call('sadd', P .. 'rooms#' .. ARGV[2], ARGV[3])
return 1
`)

/** ARGV: P, node, room, id. */
const LEAVE = script('leave', `
local key = P .. 'members#' .. ARGV[2] .. '#' .. ARGV[3]
redis.call('srem', key, ARGV[4])
if redis.call('scard', key) == 0 then
  redis.call('srem', P .. 'room#' .. ARGV[3], ARGV[2])
  redis.call('srem', P .. 'rooms#' .. ARGV[2], ARGV[3])
end
return 1
`)

/** ARGV: P, node. */
const ALIVE = script('alive', `
return alive(ARGV[2]) and 1 or 0
`)

/** ARGV: P, room, 'size' | 'members'. The count or the ids of the room's members on live nodes. */
const ROOM = script('room', `
local r = ARGV[2]
local roomKey = P .. 'room#' .. r
local size = 0
local list = {}
for _, n in ipairs(redis.call('smembers', roomKey)) do
  local key = P .. 'members#' .. n .. '#' .. r
  if alive(n) then
    if ARGV[3] == 'size' then
      size = size + redis.call('scard', key)
    else
      for _, id in ipairs(redis.call('smembers', key)) do list[#list + 1] = id end
    end
  else
    clear(n)
    redis.pcall('srem', roomKey, n)
    redis.pcall('del', key)
  end
end
if ARGV[3] == 'size' then return size end
return list
`)

/** ARGV: P. The rooms with members on live nodes. */
const ROOMS = script('rooms', `
local seen = {}
local list = {}
for _, n in ipairs(redis.call('smembers', P .. 'nodes')) do
  if alive(n) then
    for _, r in ipairs(redis.call('smembers', P .. 'rooms#' .. n)) do
      if not seen[r] then
        seen[r] = true
        list[#list + 1] = r
      end
    end
  else
    clear(n)
  end
end
return list
`)

/** ARGV: P, node. Removes everything the node wrote. */
const REMOVE = script('remove', `
clear(ARGV[2])
redis.call('del', P .. 'alive#' .. ARGV[2])
return 1
`)

/** How many ARGV entries one bulk write carries at most (a node's presence is written in chunks). */
const WRITE_CHUNK = 10_000

/**
 * Cluster-wide presence in Redis (see the key layout above). Each node writes its own memberships as
 * they change, one script per join or leave, in order on the broker's command connection, so a read on
 * this node sees this node's earlier writes. A refresh timer (unref'd) keeps the node's liveness mark;
 * reads leave out, and clean up, the entries of nodes whose mark is gone. When Redis comes back after
 * an outage, or the node finds its mark expired, it writes its whole presence again.
 */
export class RedisPresence implements Presence {
  readonly #link: RedisLink
  readonly #prefix: string
  readonly #ttl: number
  readonly #log: FastifyBaseLogger
  #nodeId = ''
  #snapshot: PresenceSnapshot = () => []
  #timer: NodeJS.Timeout | null = null
  #started = false
  #stopped = false
  #dirty = false
  #beating = false

  /**
   * @param link - the broker's command connection
   * @param prefix - the key prefix
   * @param nodeTtl - ms after which a node that stopped refreshing its mark counts as dead
   * @param log - for failed refreshes
   */
  constructor (link: RedisLink, prefix: string, nodeTtl: number, log: FastifyBaseLogger) {
    this.#link = link
    this.#prefix = prefix
    this.#ttl = nodeTtl
    this.#log = log
  }

  async start (nodeId: string, snapshot: PresenceSnapshot): Promise<void> {
    this.#nodeId = nodeId
    this.#snapshot = snapshot
    await this.#writeAll()
    this.#started = true
    this.#timer = setInterval(() => { this.#beat() }, Math.max(Math.floor(this.#ttl / 3), 10))
    this.#timer.unref()
  }

  join (room: string, id: string): void {
    this.#write(JOIN, room, id)
  }

  leave (room: string, id: string): void {
    this.#write(LEAVE, room, id)
  }

  async alive (nodeId: string): Promise<boolean> {
    return await this.#link.run(ALIVE, [this.#prefix, nodeId], true) === 1
  }

  async roomSize (room: string): Promise<number> {
    return await this.#link.run(ROOM, [this.#prefix, room, 'size'], true) as number
  }

  async members (room: string): Promise<string[]> {
    return await this.#link.run(ROOM, [this.#prefix, room, 'members'], true) as string[]
  }

  async rooms (): Promise<string[]> {
    return await this.#link.run(ROOMS, [this.#prefix], true) as string[]
  }

  async stop (): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    if (this.#timer !== null) clearInterval(this.#timer)
    if (!this.#started || !this.#link.ready()) return
    try {
      await this.#link.run(REMOVE, [this.#prefix, this.#nodeId], true)
    } catch (err) {
      this.#log.warn({ err }, 'fastify-ws-hub: could not remove this node\'s keys from Redis; they expire with its liveness mark')
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

  #write (script: LuaScript, room: string, id: string): void {
    if (this.#stopped) return
    if (!this.#link.ready()) {
      this.#dirty = true // written in full when Redis is back
      return
    }
    this.#link.run(script, [this.#prefix, this.#nodeId, room, id], false).catch(err => {
      this.#dirty = true
      this.#link.failed(err, `record a ${script.name}`)
    })
  }

  /** Forgets what this node wrote before, marks it alive, and writes its memberships, in order. */
  async #writeAll (): Promise<void> {
    const wasDirty = this.#dirty
    this.#dirty = false
    const head = [this.#prefix, this.#nodeId, String(this.#ttl)]
    let args = [...head, '1']
    const pending: Promise<unknown>[] = []
    for (const [room, ids] of this.#snapshot()) {
      const list = [...ids]
      for (let start = 0; start < list.length;) {
        const count = Math.min(list.length - start, WRITE_CHUNK)
        args.push(room, String(count))
        for (let i = start; i < start + count; i++) args.push(list[i]!)
        start += count
        if (args.length >= WRITE_CHUNK) {
          pending.push(this.#link.run(WRITE, args, true))
          args = [...head, '0']
        }
      }
    }
    if (args.length > 4 || pending.length === 0) pending.push(this.#link.run(WRITE, args, true))
    await Promise.all(pending)
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
    this.#link.run(HEARTBEAT, [this.#prefix, this.#nodeId, String(this.#ttl)], true).then(existed => {
      done()
      // The mark expired (this process stalled longer than nodeTtl, or Redis lost it): other nodes
      // may have removed this node's entries, so write them all again.
      if (existed === 0) this.restore()
    }, err => {
      done()
      this.#link.failed(err, 'refresh this node\'s liveness mark')
    })
  }
}
