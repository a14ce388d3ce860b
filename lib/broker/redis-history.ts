import { createHash } from 'node:crypto'
import type { BroadcastEnvelope } from './broker.js'
import { encode } from './codec.js'
import type { EntryKind, HistoryRead, HistoryStore, StoredEntry } from '../history.js'
import { stampParts } from '../history.js'
import { roomKey } from './keys.js'
import type { LuaScript } from './redis-presence.js'

/** What the history store needs of its broker: the key prefix, whether channels are sharded, and a way to run a script with keys. */
export interface ScriptRunner {
  readonly keyPrefix: string
  /** Whether room channels are shard channels (a Redis Cluster: SPUBLISH) or plain ones (PUBLISH). */
  readonly sharded: boolean
  script (script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | Buffer>, bounded: boolean, buffers?: boolean): Promise<unknown>
}

function lua (name: string, body: string): LuaScript {
  return { name, lua: body, sha: createHash('sha1').update(body).digest('hex') }
}

// One stream per room, `<prefix>history#{<room>}`, each entry with fields k (kind) and p (payload,
// unstamped). XADD trims to exactly `size` entries; the stream's own expiry is pushed back by `ttl` on
// each append, so a quiet room's history disappears; reads leave out entries older than `ttl` (stream
// ids carry their time in ms).

/**
 * KEYS: the stream. ARGV: size, ttl, kind, payload, channel ('' publishes nothing), publish command,
 * envelope head (up to the origin), envelope rest (rooms and except, without the payload), stamp ('':
 * none; else what goes between the object without its brace and the offset).
 * Appends and, in the same step, publishes the envelope with the entry id spliced in as its offset.
 */
const APPEND = lua('history-append', `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'k', ARGV[3], 'p', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then
  local payload = ARGV[4]
  if ARGV[9] ~= '' then payload = string.sub(payload, 1, -2) .. ARGV[9] .. id .. '"}' end
  redis.call(ARGV[6], ARGV[5], ARGV[7] .. string.char(#id) .. id .. ARGV[8] .. payload)
end
return id
`)

/**
 * KEYS: the stream. ARGV: since ('' for the last entries), limit, ttl. Returns { held, entries }: with
 * since, whether the entry at since is held and not older than ttl, and the entries after it; without,
 * the last `limit` entries, newest first. Never an entry older than ttl.
 */
const READ = lua('history-read', `
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
local min = string.format('%d-0', oldest)
if ARGV[1] == '' then
  return {0, redis.call('XREVRANGE', KEYS[1], '+', min, 'COUNT', ARGV[2])}
end
local ms = tonumber(string.match(ARGV[1], '^(%d+)'))
if ms < oldest then
  return {0, redis.call('XRANGE', KEYS[1], min, '+', 'COUNT', ARGV[2])}
end
local held = #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
return {held, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])}
`)

type StreamEntry = [id: Buffer, fields: Buffer[]]

/**
 * Room histories in Redis streams, shared by every node: a client whose node died recovers on any
 * other. An append is one script that adds to the stream and publishes to the other nodes, so a room
 * message costs one round trip, and the order of the stream is the order of delivery.
 */
export class RedisHistoryStore implements HistoryStore {
  readonly #redis: ScriptRunner
  readonly #size: string
  readonly #ttl: string
  readonly #stamp: string | null

  /**
   * @param redis - the broker's script runner
   * @param size - messages kept per room
   * @param ttl - ms a message is kept
   * @param stamp - the property set to the offset in the plain-object messages published, or null
   */
  constructor (redis: ScriptRunner, size: number, ttl: number, stamp: string | null) {
    this.#redis = redis
    this.#size = String(size)
    this.#ttl = String(ttl)
    this.#stamp = stamp
  }

  append (room: string, kind: EntryKind, payload: Buffer, envelope: BroadcastEnvelope | null, channel: string): Promise<string> {
    const key = roomKey(this.#redis.keyPrefix, 'history', room)
    if (envelope === null) {
      return this.#redis.script(APPEND, [key], [this.#size, this.#ttl, kind, payload, '', '', '', '', ''], true) as Promise<string>
    }
    // Encoded with an empty offset and no payload: the script puts the id between the head (up to the
    // origin) and the rest, and the payload (stamped, maybe) after them.
    const encoded = encode({ ...envelope, offset: '', payload: EMPTY })
    const split = 3 + encoded[2]!
    const stamp = this.#stamp !== null && kind === 'o' ? stampParts(payload, this.#stamp)[1] : ''
    return this.#redis.script(APPEND, [key], [
      this.#size, this.#ttl, kind, payload, this.#redis.keyPrefix + channel, this.#redis.sharded ? 'spublish' : 'publish',
      encoded.subarray(0, split), encoded.subarray(split + 1), stamp
    ], true) as Promise<string>
  }

  async read (room: string, since: string | undefined, limit: number): Promise<HistoryRead> {
    const key = roomKey(this.#redis.keyPrefix, 'history', room)
    const count = String(Math.min(limit, Number(this.#size)))
    const [held, raw] = await this.#redis.script(READ, [key], [since ?? '', count, this.#ttl], true, true) as [number, StreamEntry[]]
    const entries: StoredEntry[] = raw.map(([id, fields]) => {
      let kind: EntryKind = 'b'
      let payload: Buffer = EMPTY
      for (let i = 0; i < fields.length; i += 2) {
        const name = fields[i]!.toString()
        if (name === 'k') kind = fields[i + 1]!.toString() as EntryKind
        else if (name === 'p') payload = fields[i + 1]!
      }
      return { offset: id.toString(), kind, payload }
    })
    if (since === undefined) entries.reverse()
    return { held: held === 1, entries }
  }

  async close (): Promise<void> {}
}

const EMPTY = Buffer.alloc(0)
