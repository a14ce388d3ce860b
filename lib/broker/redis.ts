import type { FastifyBaseLogger } from 'fastify'
import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis'
import { DEFAULTS } from '../constants.js'
import { WSHUB_ERR_BROKER_CLOSED, WSHUB_ERR_REDIS_UNAVAILABLE } from '../errors.js'
import type { Broker, Envelope, EnvelopeListener } from './broker.js'
import { decodeMessage, encode, encodeBatch } from './codec.js'
import { roomChannel } from './keys.js'
import { RedisPresence, type LuaScript, type RedisLink } from './redis-presence.js'

/** A Redis Cluster to connect to: its startup nodes, with ioredis's cluster options beside them. */
export interface RedisClusterOptions extends ClusterOptions {
  /** Startup nodes of the cluster (one reachable master is enough). */
  cluster: ClusterNode[]
}

/**
 * What the `redis` option may be, short of `true`: a URL, ioredis options, an ioredis client, a Redis
 * Cluster's startup nodes (`{ cluster: [...] }`), or an ioredis `Cluster`.
 */
export type RedisInput = string | RedisOptions | Redis | RedisClusterOptions | Cluster

/** The options of a {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /** Prefix of every channel and key. Default `'wshub:'`. */
  keyPrefix?: string
  /** Ms after which a node that stopped refreshing its liveness mark drops out of presence. Default 15 000. */
  nodeTtl?: number
  /** Ms to wait for Redis: for the first connection, and for each presence read. Default 5 000. */
  requestTimeout?: number
  /** Where connection loss and recovery are reported (once each). */
  log?: FastifyBaseLogger
}

// Reconnect quickly (ioredis's default backoff goes up to 2 s): local delivery does not wait for
// Redis, but cross-node delivery does. Used only for the clients the broker opens itself.
const OWN_CLIENT_DEFAULTS: RedisOptions = {
  retryStrategy: (times: number) => Math.min(times * 50, 1000)
}

const RESOLVED = Promise.resolve()
/** A batch of publishes is sent at once when it reaches this size, without waiting for the end of the turn. */
const BATCH_BYTES = 262_144
const noop = (): void => {}

const SILENT_LOG: FastifyBaseLogger = {
  level: 'silent',
  fatal: noop,
  error: noop,
  warn: noop,
  info: noop,
  debug: noop,
  trace: noop,
  silent: noop,
  child: () => SILENT_LOG
} as unknown as FastifyBaseLogger

/** Whether `value` is an ioredis client (or Cluster) rather than options (duck-typed: the app's ioredis may be another copy). */
export function isRedisClient (value: unknown): value is Redis | Cluster {
  return typeof value === 'object' && value !== null &&
    typeof (value as Redis).duplicate === 'function' && typeof (value as Redis).publish === 'function'
}

/** Whether `value` asks for a Redis Cluster: an ioredis `Cluster`, or options with `cluster` nodes. */
function isCluster (value: RedisInput): value is Cluster | RedisClusterOptions {
  if (typeof value !== 'object') return false
  return isRedisClient(value) ? (value as Cluster).isCluster === true : Array.isArray((value as RedisClusterOptions).cluster)
}

/** How many channels one SUBSCRIBE or UNSUBSCRIBE names at most (a larger batch is split). */
const SUBSCRIBE_CHUNK = 1_000

interface SubscriptionOp {
  subscribe: boolean
  name: string
  resolve (): void
  reject (err: Error): void
}

// Connection states.
const CONNECTING = 0
const UP = 1
const DOWN = 2
const CLOSED = 3

/**
 * The broker for several processes, on Redis pub/sub through ioredis, with cluster-wide presence in
 * Redis ({@link RedisPresence}).
 *
 * Two connections: a command connection (the app's client when one is given, used as is and never
 * closed by the broker) that publishes and runs the presence scripts, and a subscriber connection the
 * broker always opens itself with `duplicate()` and closes on `close()`. Every channel is
 * `<keyPrefix><channel>` (`wshub:broadcast`, `wshub:node#<node id>`, `wshub:room#{<room>}`), and every
 * envelope is one binary message (see `codec.ts`), published as a Buffer and read from ioredis's
 * `messageBuffer` event, so payload bytes are never re-encoded. The subscriptions asked for in one turn
 * of the event loop go out together, in one SUBSCRIBE (or UNSUBSCRIBE) of up to 1,000 channels.
 *
 * On a Redis Cluster (`{ cluster: [...] }` or an ioredis `Cluster`) both are cluster clients, the
 * subscriber with ioredis's sharded subscribers (one connection per master), and every channel is a
 * shard channel (`SPUBLISH`, `SSUBSCRIBE`): a room's messages stay on the shard of the room's slot
 * and cross no cluster bus.
 *
 * When Redis goes away: `publish` drops envelopes and resolves (delivery is at most once; local delivery
 * does not need Redis), `direct` and presence calls reject with `WSHUB_ERR_REDIS_UNAVAILABLE`, the loss
 * is logged once as a warning, and reconnection errors at debug level. When it is back, the subscriber
 * resubscribes (ioredis `autoResubscribe`), the recovery is logged once, and the node writes its
 * presence again.
 */
export class RedisBroker implements Broker {
  /** Cluster-wide presence in Redis. */
  readonly presence: RedisPresence
  /** Whether channels are shard channels (a Redis Cluster: `SPUBLISH`), rather than `PUBLISH` ones. */
  readonly sharded: boolean
  readonly #pub: Redis | Cluster
  readonly #sub: Redis | Cluster
  readonly #ownsPub: boolean
  readonly #prefix: string
  readonly #timeout: number
  readonly #log: FastifyBaseLogger
  readonly #listeners = new Map<string, EnvelopeListener>()
  /** Envelopes published on `#batchChannel` in this turn of the event loop, not yet sent. */
  #batch: Buffer[] = []
  #batchChannel = ''
  #batchBytes = 0
  /** The command connection's socket, corked for this turn (its commands then leave in one write). */
  #corked: { uncork (): void } | null = null
  /** The scripts sent with EVAL on the current connection (so Redis has them for EVALSHA). */
  readonly #loaded = new Set<string>()
  /** Subscriptions and unsubscriptions asked for in this turn, in order, not yet sent. */
  #ops: SubscriptionOp[] = []
  #state = CONNECTING
  /** The last outage was the subscriber's alone: presence was never lost, and is not written again. */
  #subscriberOnly = false
  /** How many times a connection other than the subscriber's closed. */
  #losses = 0
  /** On a cluster: each master's run id (a master that restarted has a new one, and may have lost its keys). */
  readonly #runIds = new Map<string, string>()
  #masterTimer: NodeJS.Timeout | null = null
  #checking = false
  #lastError: Error | null = null
  #warnedWrite = false

  /**
   * @param redis - a `redis://` URL, ioredis options, or an ioredis client (used, never closed, by the broker)
   * @param options - prefix, timeouts, logger
   */
  constructor (redis: RedisInput, options: RedisBrokerOptions = {}) {
    this.#prefix = options.keyPrefix ?? DEFAULTS.keyPrefix
    this.#timeout = options.requestTimeout ?? DEFAULTS.requestTimeout
    this.#log = options.log ?? SILENT_LOG
    this.sharded = isCluster(redis)
    if (isRedisClient(redis)) {
      this.#pub = redis
      this.#ownsPub = false
    } else if (this.sharded) {
      const { cluster, ...clusterOptions } = redis as RedisClusterOptions
      this.#pub = new Cluster(cluster, { clusterRetryStrategy: OWN_CLIENT_DEFAULTS.retryStrategy, ...clusterOptions })
      this.#ownsPub = true
    } else {
      this.#pub = typeof redis === 'string'
        ? new Redis(redis, OWN_CLIENT_DEFAULTS)
        : new Redis({ ...OWN_CLIENT_DEFAULTS, ...redis as RedisOptions })
      this.#ownsPub = true
    }
    // Subscribe mode needs a connection of its own (as sio-redis's subClient = pubClient.duplicate());
    // on a cluster, one per master, for the shard channels.
    this.#sub = this.sharded
      ? (this.#pub as Cluster).duplicate(undefined, { shardedSubscribers: true, lazyConnect: false })
      : (this.#pub as Redis).duplicate({ autoResubscribe: true, lazyConnect: false, enableOfflineQueue: true })

    for (const client of [this.#pub, this.#sub]) {
      client.on('error', this.#onError)
      client.on('close', client === this.#sub ? this.#onSubscriberClose : this.#onClose)
      client.on('end', this.#onClose)
      client.on('ready', this.#onReady)
    }
    this.#sub.on(this.sharded ? 'smessageBuffer' : 'messageBuffer', this.#onMessage)
    if (this.sharded) {
      this.#pub.on('+node', this.#onNodeAdded)
      // Restarted masters are looked for on every liveness refresh too (events can come before the master is back).
      this.#masterTimer = setInterval(() => { this.#checkMasters() }, Math.max(Math.floor((options.nodeTtl ?? DEFAULTS.nodeTtl) / 3), 10))
      this.#masterTimer.unref()
    }

    const link: RedisLink = {
      ready: () => this.#pub.status === 'ready',
      client: () => this.#pub,
      run: (script, keys, args, bounded) => this.#run(script, keys, args, bounded),
      bounded: (promise, what) => this.#bounded(promise, what),
      failed: (err, what) => this.#writeFailed(err, what),
      recovered: () => this.#writesRecovered()
    }
    this.presence = new RedisPresence(link, this.#prefix, options.nodeTtl ?? DEFAULTS.nodeTtl, this.#log)
  }

  /** The command client (the app's, when it gave one): a `Redis`, or a `Cluster` when {@link sharded}. */
  get client (): Redis | Cluster {
    return this.#pub
  }

  /**
   * The full name of `room`'s channel, prefix included, as PUBLISH (or, when {@link sharded}, SPUBLISH)
   * takes it: a module that publishes to a room from a script of its own (one that appends to the
   * room's history and publishes in one step) publishes there, an envelope encoded with `encode()`.
   */
  channelOf (room: string): string {
    return this.#prefix + roomChannel(room)
  }

  /**
   * Sends the envelopes queued in this turn now, so that a command sent next (a module's own publish
   * of a room message) follows them.
   */
  flush (): void {
    this.#flush()
  }

  /**
   * Resolves once both connections are ready; rejects with `WSHUB_ERR_REDIS_UNAVAILABLE` after the
   * request timeout.
   */
  async connect (): Promise<void> {
    if (this.#state === CLOSED) throw new WSHUB_ERR_BROKER_CLOSED()
    if (this.#pub.status === 'wait') this.#pub.connect().catch(noop) // a lazyConnect client of the app
    if (this.#sub.status === 'wait') this.#sub.connect().catch(noop)
    const clients = [this.#pub, this.#sub]
    if (clients.every(client => client.status === 'ready')) return
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (clients.every(client => client.status === 'ready')) finish(null)
        else if (this.#pub.status === 'end') finish(new WSHUB_ERR_REDIS_UNAVAILABLE('the Redis client is closed'))
      }
      const timer = setTimeout(() => {
        const cause = this.#lastError
        const err = new WSHUB_ERR_REDIS_UNAVAILABLE(`no connection within ${this.#timeout} ms${cause === null ? '' : ` (${cause.message})`}`)
        if (cause !== null) err.cause = cause
        finish(err)
      }, this.#timeout)
      const finish = (err: Error | null): void => {
        clearTimeout(timer)
        for (const client of clients) {
          client.off('ready', check)
          client.off('end', check)
        }
        if (err === null) resolve()
        else reject(err)
      }
      for (const client of clients) {
        client.on('ready', check)
        client.on('end', check)
      }
      check()
    })
  }

  /** Whether both connections to Redis (commands and subscriptions) are ready. */
  up (): boolean {
    return this.#pub.status === 'ready' && this.#sub.status === 'ready'
  }

  /**
   * Encodes the envelope and queues it; the envelopes published on one channel in one turn of the event
   * loop go out as one Redis message (a burst costs one PUBLISH, not one each), at the end of the turn.
   */
  publish (channel: string, envelope: Envelope): Promise<void> {
    if (this.#state === CLOSED) return Promise.reject(new WSHUB_ERR_BROKER_CLOSED())
    // Redis is down: drop it (at most once) rather than queue it; the loss has been logged once.
    if (this.#pub.status !== 'ready') return RESOLVED
    let message: Buffer
    try {
      message = encode(envelope)
    } catch (err) {
      return Promise.reject(err)
    }
    const name = this.#prefix + channel
    if (this.#batch.length > 0 && this.#batchChannel !== name) this.#flush()
    if (this.#batch.length === 0) {
      this.#batchChannel = name
      if (this.#corked === null) this.#cork()
    }
    this.#batch.push(message)
    this.#batchBytes += message.length
    if (this.#batchBytes >= BATCH_BYTES) this.#flush()
    return RESOLVED
  }

  async direct (channel: string, envelope: Envelope): Promise<boolean> {
    if (this.#state === CLOSED) throw new WSHUB_ERR_BROKER_CLOSED()
    // A reply could not reach this node without its subscriber: fail now rather than time out.
    if (this.#pub.status !== 'ready' || this.#sub.status !== 'ready') {
      throw new WSHUB_ERR_REDIS_UNAVAILABLE('the connection to Redis is down')
    }
    const message = encode(envelope)
    this.#flush() // what was published before goes first
    return await this.#send(this.#prefix + channel, message) > 0
  }

  #send (name: string, message: Buffer): Promise<number> {
    return (this.sharded ? (this.#pub as Cluster).spublish(name, message) : this.#pub.publish(name, message)) as Promise<number>
  }

  /**
   * Holds the command connection's writes until the end of the turn, so that the PUBLISH commands of
   * a turn's messages to many rooms (one per room channel, in order) leave in one write, not one each.
   * A Redis Cluster's commands go to several connections, which are left as they are.
   */
  #cork (): void {
    const stream = this.sharded ? null : (this.#pub as Redis).stream
    if (stream === null || stream === undefined) {
      process.nextTick(this.#flush)
      return
    }
    stream.cork()
    this.#corked = stream
    process.nextTick(this.#endTurn)
  }

  #endTurn = (): void => {
    const stream = this.#corked
    this.#corked = null
    this.#flush()
    stream?.uncork()
  }

  #flush = (): void => {
    const batch = this.#batch
    if (batch.length === 0) return
    this.#batch = []
    this.#batchBytes = 0
    // Redis went away within the turn: dropped, as a publish would have been (at most once).
    if (this.#pub.status !== 'ready') return
    const message = batch.length === 1 ? batch[0]! : encodeBatch(batch)
    this.#send(this.#batchChannel, message).catch(this.#onPublishError)
  }

  /** Listens on `channel`; resolves once Redis confirmed the subscription (sent with the others of this turn). */
  async subscribe (channel: string, listener: EnvelopeListener): Promise<void> {
    if (this.#state === CLOSED) throw new WSHUB_ERR_BROKER_CLOSED()
    const name = this.#prefix + channel
    this.#listeners.set(name, listener)
    await this.#queue(true, name)
  }

  async unsubscribe (channel: string): Promise<void> {
    const name = this.#prefix + channel
    if (!this.#listeners.delete(name)) return
    // While Redis is down the command would wait for it; without a listener, messages are dropped anyway.
    if (this.#sub.status === 'ready') await this.#queue(false, name)
  }

  #queue (subscribe: boolean, name: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#ops.length === 0) process.nextTick(this.#sendOps)
      this.#ops.push({ subscribe, name, resolve, reject })
    })
  }

  /** Sends the (un)subscriptions of this turn: runs of the same kind together, in order, in chunks. */
  #sendOps = (): void => {
    const ops = this.#ops
    this.#ops = []
    if (this.#state === CLOSED) {
      for (const op of ops) op.reject(new WSHUB_ERR_BROKER_CLOSED())
      return
    }
    for (let start = 0; start < ops.length;) {
      let end = start + 1
      while (end < ops.length && end - start < SUBSCRIBE_CHUNK && ops[end]!.subscribe === ops[start]!.subscribe) end++
      const run = ops.slice(start, end)
      start = end
      const names = run.map(op => op.name)
      const sub = this.#sub
      const sent: Array<Promise<unknown>> = this.sharded
        // A shard channel is subscribed on its own master: one command each (sent together).
        ? names.map(name => run[0]!.subscribe ? (sub as Cluster).ssubscribe(name) : (sub as Cluster).sunsubscribe(name))
        : [run[0]!.subscribe ? sub.subscribe(...names) : sub.unsubscribe(...names)]
      // While Redis is away the commands wait in ioredis's offline queue, and go out when it is back:
      // do not make a join wait for that (local delivery does not need it).
      if (sub.status !== 'ready') {
        for (const op of run) op.resolve()
        Promise.all(sent).catch(noop)
        continue
      }
      Promise.all(sent).then(() => {
        for (const op of run) op.resolve()
      }, (err: Error) => {
        for (const op of run) op.reject(err)
      })
    }
  }

  /** Closes the subscriber connection, and the command connection if the broker opened it. Idempotent. */
  async close (): Promise<void> {
    if (this.#state === CLOSED) return
    this.#flush()
    this.#state = CLOSED
    this.#listeners.clear()
    if (this.#masterTimer !== null) clearInterval(this.#masterTimer)
    await this.presence.stop()
    this.#sub.off(this.sharded ? 'smessageBuffer' : 'messageBuffer', this.#onMessage)
    this.#sub.off('close', this.#onSubscriberClose)
    const closing = [quit(this.#sub)]
    if (this.#ownsPub) {
      closing.push(quit(this.#pub))
    } else {
      for (const event of ['close', 'end', 'ready'] as const) {
        this.#pub.off(event, event === 'ready' ? this.#onReady : this.#onClose)
      }
      this.#pub.off('error', this.#onError)
      this.#pub.off('+node', this.#onNodeAdded)
    }
    await Promise.all(closing)
  }

  /** The prefix of every channel and key. */
  get keyPrefix (): string {
    return this.#prefix
  }

  /**
   * Runs a Lua script that declares its keys on the command connection, in order with the broker's own
   * commands (EVAL the first time on a connection, EVALSHA later; EVAL always on a cluster); `buffers`
   * answers bulk strings as Buffers. Rejects with `WSHUB_ERR_REDIS_UNAVAILABLE` when Redis is down or,
   * when `bounded`, does not answer within the request timeout.
   * @internal
   */
  script (script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | Buffer>, bounded: boolean, buffers = false): Promise<unknown> {
    return this.#run(script, keys, args, bounded, buffers)
  }

  #run (script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | Buffer>, bounded: boolean, buffers = false): Promise<unknown> {
    const pub = this.#pub
    if (this.#state === CLOSED) return Promise.reject(new WSHUB_ERR_BROKER_CLOSED())
    if (pub.status !== 'ready') return Promise.reject(new WSHUB_ERR_REDIS_UNAVAILABLE('the connection to Redis is down'))
    let result: Promise<unknown>
    // The first use of a script on a connection is an EVAL, which also loads it; later ones are EVALSHA.
    // Falling back to EVAL on a NOSCRIPT reply instead would send that write after the commands that
    // followed it, and presence writes must stay in order (a join, then its leave). A cluster spreads
    // the scripts over connections to several masters, which come and go: EVAL there, always.
    // ioredis has a Buffer-answering twin of every command, though its types declare few of them.
    const twins = pub as unknown as Record<'evalshaBuffer' | 'evalBuffer', Redis['evalsha']>
    const evalsha = buffers ? twins.evalshaBuffer : pub.evalsha
    const evalLua = buffers ? twins.evalBuffer : pub.eval
    if (this.sharded) {
      result = evalLua.call(pub, script.lua, keys.length, ...keys, ...args)
    } else if (this.#loaded.has(script.sha)) {
      result = evalsha.call(pub, script.sha, keys.length, ...keys, ...args).catch((err: Error) => {
        // Only if someone ran SCRIPT FLUSH on this connection's server.
        /* c8 ignore next 3 */
        if (!err.message.startsWith('NOSCRIPT')) throw err
        return evalLua.call(pub, script.lua, keys.length, ...keys, ...args)
      })
    } else {
      this.#loaded.add(script.sha)
      result = evalLua.call(pub, script.lua, keys.length, ...keys, ...args)
    }
    return bounded ? this.#bounded(result, script.name) : result
  }

  #bounded<T> (promise: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new WSHUB_ERR_REDIS_UNAVAILABLE(`no answer to "${what}" within ${this.#timeout} ms`))
      }, this.#timeout)
      promise.then(value => {
        clearTimeout(timer)
        resolve(value)
      }, (err: Error) => {
        clearTimeout(timer)
        reject(err)
      })
    })
  }

  #writeFailed (err: Error, what: string): void {
    if (this.#state !== UP || this.#warnedWrite) {
      this.#log.debug({ err }, `fastify-ws-hub: could not ${what} in Redis`)
      return
    }
    this.#warnedWrite = true
    this.#log.warn({ err }, `fastify-ws-hub: could not ${what} in Redis; it is written again on the next refresh`)
  }

  #writesRecovered (): void {
    if (!this.#warnedWrite) return
    this.#warnedWrite = false
    this.#log.info('fastify-ws-hub: this node\'s presence is written in Redis again')
  }

  #onMessage = (channel: Buffer, message: Buffer): void => {
    const listener = this.#listeners.get(channel.toString())
    if (listener === undefined) return
    let envelopes: Envelope[]
    try {
      envelopes = decodeMessage(message)
    } catch (err) {
      this.#log.warn({ err, channel: channel.toString() }, 'fastify-ws-hub: dropped a malformed message')
      return
    }
    for (const envelope of envelopes) listener(envelope)
  }

  /**
   * The subscriber connection closed. When the command connection is up and Redis answers it, Redis
   * dropped the subscriber alone: most likely (short of a CLIENT KILL) because its pub/sub output
   * buffer went over `client-output-buffer-limit pubsub` while this node read too slowly, and the
   * messages published to this node meanwhile are lost. Said once, at warn, with what to tune.
   */
  #onSubscriberClose = (): void => {
    if (this.#state !== UP) return
    if (this.#pub.status !== 'ready') {
      this.#onClose()
      return
    }
    this.#state = DOWN
    this.#subscriberOnly = true
    const losses = this.#losses
    this.#bounded(this.#pub.ping(), 'ping').then(() => {
      // The command connection went down meanwhile: Redis itself was gone, and #onClose said so.
      if (this.#losses !== losses) return
      this.#log.warn('fastify-ws-hub: Redis closed the subscriber connection while the command connection stayed up, most ' +
        'likely for its pub/sub output buffer (client-output-buffer-limit pubsub on the Redis server): the ' +
        'messages published to this node meanwhile are lost; raise that limit, or read faster (fewer messages per node)')
    }, () => {
      if (this.#losses === losses) this.#warnLost()
    })
  }

  #warnLost (): void {
    this.#log.warn({ err: this.#lastError ?? undefined },
      'fastify-ws-hub: lost the connection to Redis; local delivery goes on, cross-node delivery and calls fail until it is back')
  }

  /** A master (re)joined the cluster client: it may be a restarted one. */
  #onNodeAdded = (): void => {
    setTimeout(() => { this.#checkMasters() }, 100).unref()
  }

  /**
   * Refreshes the cluster client's map of the slots (a master that was gone is added back: ioredis
   * refreshes it on redirections only), then reads each master's run id; when one changed (the master
   * restarted, and without persistence lost its keys), this node writes its presence again.
   */
  #checkMasters (): void {
    if (this.#checking || this.#state !== UP) return
    this.#checking = true
    const pub = this.#pub as Cluster
    new Promise<void>(resolve => { pub.refreshSlotsCache(() => resolve()) }).then(() => Promise.all(pub.nodes('master').map(async master => {
      const info = await this.#bounded(master.info('server'), 'info')
      const runId = /run_id:(\w+)/.exec(info)?.[1] ?? ''
      const key = `${master.options.host ?? ''}:${master.options.port ?? ''}`
      const known = this.#runIds.get(key)
      this.#runIds.set(key, runId)
      return known !== undefined && known !== runId
    }))).then(changed => {
      if (changed.includes(true) && this.#state === UP) this.presence.restore()
    }, noop).finally(() => { this.#checking = false })
  }

  #onPublishError = (err: Error): void => {
    // The connection dropped with the message in flight: the loss is logged once by #onClose.
    this.#log.debug({ err }, 'fastify-ws-hub: a publish to Redis failed')
  }

  #onReady = (): void => {
    if (this.#state === CLOSED || this.#pub.status !== 'ready' || this.#sub.status !== 'ready') return
    const wasDown = this.#state === DOWN
    this.#state = UP
    this.#lastError = null
    this.#warnedWrite = false
    if (this.sharded) this.#checkMasters()
    if (wasDown) {
      this.#log.info('fastify-ws-hub: Redis connection is back; cross-node delivery resumes')
      if (!this.#subscriberOnly) this.presence.restore()
    }
    this.#subscriberOnly = false
  }

  #onClose = (): void => {
    // The next connection may be to a restarted Redis that knows no script.
    this.#loaded.clear()
    // The subscriber's close just before was Redis going away too: said here, once.
    const subscriberFirst = this.#subscriberOnly && this.#state === DOWN
    this.#subscriberOnly = false
    this.#losses++
    if (this.#state !== UP && !subscriberFirst) return
    this.#state = DOWN
    this.#warnLost()
  }

  #onError = (err: Error): void => {
    this.#lastError = err
    // Each reconnection attempt fails with an error: the loss is logged once, the attempts at debug level.
    this.#log.debug({ err }, 'fastify-ws-hub: Redis connection error')
  }
}

/** Closes a connection: QUIT when it is up (bounded), at once otherwise. */
async function quit (client: Redis | Cluster): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect()
    return
  }
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>(resolve => {
    timer = setTimeout(resolve, 1000)
    timer.unref()
  })
  const done = await Promise.race([client.quit().then(() => true, () => false), late.then(() => false)])
  clearTimeout(timer)
  if (!done) client.disconnect()
}
