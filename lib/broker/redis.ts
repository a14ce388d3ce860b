import type { FastifyBaseLogger } from 'fastify'
import { Redis, type RedisOptions } from 'ioredis'
import { DEFAULTS } from '../constants.js'
import { WSHUB_ERR_BROKER_CLOSED, WSHUB_ERR_REDIS_UNAVAILABLE } from '../errors.js'
import type { Broker, Envelope, EnvelopeListener } from './broker.js'
import { decodeMessage, encode, encodeBatch } from './codec.js'
import { RedisPresence, type LuaScript, type RedisLink } from './redis-presence.js'

/** What the `redis` option may be, short of `true`: a URL, ioredis options, or an ioredis client. */
export type RedisInput = string | RedisOptions | Redis

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

/** Whether `value` is an ioredis client rather than options (duck-typed: the app's ioredis may be another copy). */
export function isRedisClient (value: unknown): value is Redis {
  return typeof value === 'object' && value !== null &&
    typeof (value as Redis).duplicate === 'function' && typeof (value as Redis).publish === 'function'
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
 * `<keyPrefix><channel>` (`wshub:broadcast`, `wshub:node#<node id>`), and every envelope is one binary
 * message (see `codec.ts`), published with `PUBLISH` as a Buffer and read from ioredis's
 * `messageBuffer` event, so payload bytes are never re-encoded.
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
  readonly #pub: Redis
  readonly #sub: Redis
  readonly #ownsPub: boolean
  readonly #prefix: string
  readonly #timeout: number
  readonly #log: FastifyBaseLogger
  readonly #listeners = new Map<string, EnvelopeListener>()
  /** Envelopes published on `#batchChannel` in this turn of the event loop, not yet sent. */
  #batch: Buffer[] = []
  #batchChannel = ''
  #batchBytes = 0
  /** The scripts sent with EVAL on the current connection (so Redis has them for EVALSHA). */
  readonly #loaded = new Set<string>()
  #state = CONNECTING
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
    if (isRedisClient(redis)) {
      this.#pub = redis
      this.#ownsPub = false
    } else {
      this.#pub = typeof redis === 'string'
        ? new Redis(redis, OWN_CLIENT_DEFAULTS)
        : new Redis({ ...OWN_CLIENT_DEFAULTS, ...redis })
      this.#ownsPub = true
    }
    // Subscribe mode needs a connection of its own (as sio-redis's subClient = pubClient.duplicate()).
    this.#sub = this.#pub.duplicate({ autoResubscribe: true, lazyConnect: false, enableOfflineQueue: true })

    for (const client of [this.#pub, this.#sub]) {
      client.on('error', this.#onError)
      client.on('close', this.#onClose)
      client.on('end', this.#onClose)
      client.on('ready', this.#onReady)
    }
    this.#sub.on('messageBuffer', this.#onMessage)

    const link: RedisLink = {
      ready: () => this.#pub.status === 'ready',
      run: (script, args, bounded) => this.#run(script, args, bounded),
      failed: (err, what) => this.#writeFailed(err, what),
      recovered: () => this.#writesRecovered()
    }
    this.presence = new RedisPresence(link, this.#prefix, options.nodeTtl ?? DEFAULTS.nodeTtl, this.#log)
  }

  /**
   * Resolves once both connections are ready; rejects with `WSHUB_ERR_REDIS_UNAVAILABLE` after the
   * request timeout.
   */
  async connect (): Promise<void> {
    if (this.#state === CLOSED) throw new WSHUB_ERR_BROKER_CLOSED()
    if (this.#pub.status === 'wait') this.#pub.connect().catch(noop) // a lazyConnect client of the app
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
      process.nextTick(this.#flush)
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
    return await this.#pub.publish(this.#prefix + channel, message) > 0
  }

  #flush = (): void => {
    const batch = this.#batch
    if (batch.length === 0) return
    this.#batch = []
    this.#batchBytes = 0
    // Redis went away within the turn: dropped, as a publish would have been (at most once).
    if (this.#pub.status !== 'ready') return
    const message = batch.length === 1 ? batch[0]! : encodeBatch(batch)
    this.#pub.publish(this.#batchChannel, message).catch(this.#onPublishError)
  }

  async subscribe (channel: string, listener: EnvelopeListener): Promise<void> {
    if (this.#state === CLOSED) throw new WSHUB_ERR_BROKER_CLOSED()
    const name = this.#prefix + channel
    this.#listeners.set(name, listener)
    await this.#sub.subscribe(name)
  }

  async unsubscribe (channel: string): Promise<void> {
    const name = this.#prefix + channel
    if (!this.#listeners.delete(name)) return
    // While Redis is down the command would wait for it; without a listener, messages are dropped anyway.
    if (this.#sub.status === 'ready') await this.#sub.unsubscribe(name)
  }

  /** Closes the subscriber connection, and the command connection if the broker opened it. Idempotent. */
  async close (): Promise<void> {
    if (this.#state === CLOSED) return
    this.#flush()
    this.#state = CLOSED
    this.#listeners.clear()
    await this.presence.stop()
    this.#sub.off('messageBuffer', this.#onMessage)
    const closing = [quit(this.#sub)]
    if (this.#ownsPub) {
      closing.push(quit(this.#pub))
    } else {
      for (const event of ['close', 'end', 'ready'] as const) {
        this.#pub.off(event, event === 'ready' ? this.#onReady : this.#onClose)
      }
      this.#pub.off('error', this.#onError)
    }
    await Promise.all(closing)
  }

  #run (script: LuaScript, args: string[], bounded: boolean): Promise<unknown> {
    const pub = this.#pub
    if (this.#state === CLOSED) return Promise.reject(new WSHUB_ERR_BROKER_CLOSED())
    if (pub.status !== 'ready') return Promise.reject(new WSHUB_ERR_REDIS_UNAVAILABLE('the connection to Redis is down'))
    let result: Promise<unknown>
    // The first use of a script on a connection is an EVAL, which also loads it; later ones are EVALSHA.
    // Falling back to EVAL on a NOSCRIPT reply instead would send that write after the commands that
    // followed it, and presence writes must stay in order (a join, then its leave).
    if (this.#loaded.has(script.sha)) {
      result = pub.evalsha(script.sha, 0, ...args).catch((err: Error) => {
        // Only if someone ran SCRIPT FLUSH on this connection's server.
        /* c8 ignore next 3 */
        if (!err.message.startsWith('NOSCRIPT')) throw err
        return pub.eval(script.lua, 0, ...args)
      })
    } else {
      this.#loaded.add(script.sha)
      result = pub.eval(script.lua, 0, ...args)
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
    if (wasDown) {
      this.#log.info('fastify-ws-hub: Redis connection is back; cross-node delivery resumes')
      this.presence.restore()
    }
  }

  #onClose = (): void => {
    // The next connection may be to a restarted Redis that knows no script.
    this.#loaded.clear()
    if (this.#state !== UP) return
    this.#state = DOWN
    this.#log.warn({ err: this.#lastError ?? undefined },
      'fastify-ws-hub: lost the connection to Redis; local delivery goes on, cross-node delivery and calls fail until it is back')
  }

  #onError = (err: Error): void => {
    this.#lastError = err
    // Each reconnection attempt fails with an error: the loss is logged once, the attempts at debug level.
    this.#log.debug({ err }, 'fastify-ws-hub: Redis connection error')
  }
}

/** Closes a connection: QUIT when it is up (bounded), at once otherwise. */
async function quit (client: Redis): Promise<void> {
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
