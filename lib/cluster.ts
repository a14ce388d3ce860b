import type { FastifyBaseLogger } from 'fastify'
import type { Broker, Envelope, ReplyEnvelope, RequestEnvelope } from './broker/broker.js'
import type { HubObserver } from './hub.js'
import { WSHUB_ERR_BROKER_CLOSED, WSHUB_ERR_REQUEST_TIMEOUT } from './errors.js'

/** The broker channel node `nodeId` listens on for requests to it and replies to its own requests. */
export function nodeChannel (nodeId: string): string {
  return `node#${nodeId}`
}

/** The longest node id a connection id may start with (ours are 8 characters). */
const MAX_NODE_ID = 64
/** The longest connection id worth asking another node about (ours are 21 characters). */
const MAX_ID = 256

/**
 * The id of the node that owns connection `id` (`<node id>.<random>`), or null when `id` cannot be a
 * connection id.
 */
export function ownerOf (id: unknown): string | null {
  if (typeof id !== 'string' || id.length > MAX_ID) return null
  const dot = id.indexOf('.')
  return dot < 1 || dot > MAX_NODE_ID ? null : id.slice(0, dot)
}

/** What a request asks for, without the fields the cluster fills in. */
export type RequestFields = Omit<RequestEnvelope, 'origin' | 'type' | 'seq'>

/**
 * Carries out a request on the owning node; resolves with the boolean the caller gets, or with the
 * payload of the reply (a `call`'s outcome).
 */
export type RequestHandler = (request: RequestEnvelope) => boolean | Promise<boolean | Buffer>

interface Pending {
  resolve (result: boolean, payload?: Buffer): void
  reject (err: Error): void
  timer: NodeJS.Timeout
}

/**
 * Directed calls between nodes: a call about a connection of another node goes to that node's channel
 * only, and waits for the owner's reply on this node's channel, at most `timeout` ms. A node that is
 * gone (nobody listens on its channel) answers false at once; a node that does not answer in time makes
 * the call reject with `WSHUB_ERR_REQUEST_TIMEOUT`, so a call never hangs. A request carries its
 * deadline, and an owner that gets it later drops it: false means it was not and will not be carried
 * out; a timeout, that it may or may not have been.
 */
export class Cluster {
  readonly #nodeId: string
  readonly #broker: Broker
  readonly #log: FastifyBaseLogger
  readonly #timeout: number
  readonly #handle: RequestHandler
  readonly #pending = new Map<number, Pending>()
  #seq = 0
  #closed = false
  /** Told how long each request took, when set (the metrics). */
  observer: HubObserver | null = null

  /**
   * @param nodeId - this node's id
   * @param broker - the transport
   * @param log - for requests that could not be answered
   * @param timeout - ms a request waits for its reply
   * @param handle - carries out the requests of other nodes on this node's connections
   */
  constructor (nodeId: string, broker: Broker, log: FastifyBaseLogger, timeout: number, handle: RequestHandler) {
    this.#nodeId = nodeId
    this.#broker = broker
    this.#log = log
    this.#timeout = timeout
    this.#handle = handle
  }

  /** Listens on this node's channel. */
  start (): Promise<void> {
    return this.#broker.subscribe(nodeChannel(this.#nodeId), envelope => this.#onEnvelope(envelope))
  }

  /**
   * Asks node `node` to carry out a request and resolves with its answer: false when the node is gone.
   * Rejects with `WSHUB_ERR_REQUEST_TIMEOUT` after the timeout, with the broker's error when the
   * transport is down, and with `WSHUB_ERR_BROKER_CLOSED` after `stop()`.
   */
  request (node: string, fields: RequestFields): Promise<boolean> {
    const requested = this.observer?.requested
    if (requested === undefined) return this.#requestBoolean(node, fields)
    const start = performance.now()
    const done = (): void => requested(fields.op, (performance.now() - start) / 1000)
    const result = this.#requestBoolean(node, fields)
    result.then(done, done)
    return result
  }

  #requestBoolean (node: string, fields: RequestFields): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => this.#request(node, fields, this.#timeout, resolve, reject))
  }

  /**
   * Like `request`, for a request whose reply carries a payload (a `call`), waiting at most `timeout`
   * ms: resolves with the payload, or with null when the connection or its node is gone.
   */
  ask (node: string, fields: RequestFields, timeout: number): Promise<Buffer | null> {
    return new Promise<Buffer | null>((resolve, reject) => this.#request(node, fields, timeout, (result, payload) => {
      resolve(result ? payload ?? Buffer.alloc(0) : null)
    }, reject))
  }

  #request (node: string, fields: RequestFields, timeout: number, resolve: Pending['resolve'], reject: Pending['reject']): void {
    if (this.#closed) {
      reject(new WSHUB_ERR_BROKER_CLOSED())
      return
    }
    this.#seq = (this.#seq + 1) >>> 0
    const seq = this.#seq
    // The owner drops a request that reaches it after the asker stopped waiting: a timeout means it
    // may or may not have been carried out, never that it will be later.
    const envelope: RequestEnvelope = { origin: this.#nodeId, type: 'request', seq, deadline: Date.now() + timeout, ...fields }
    const timer = setTimeout(() => {
      this.#pending.delete(seq)
      reject(new WSHUB_ERR_REQUEST_TIMEOUT(`${fields.op}(${fields.target})`, String(timeout)))
    }, timeout)
    this.#pending.set(seq, { resolve, reject, timer })
    // Nobody on the channel means the node is gone: false without waiting, as the request was surely
    // not taken. A node that is subscribed but silent (stalled past its liveness mark, say) may still
    // take it before its deadline: that is a timeout, not false.
    this.#broker.direct(nodeChannel(node), envelope).then(
      reached => { if (!reached) this.#settle(seq, false) },
      (err: Error) => this.#fail(seq, err)
    )
  }

  /** Rejects every pending request with `WSHUB_ERR_BROKER_CLOSED`; later requests reject at once. */
  stop (): void {
    this.#closed = true
    for (const seq of [...this.#pending.keys()]) this.#fail(seq, new WSHUB_ERR_BROKER_CLOSED())
  }

  #settle (seq: number, result: boolean, payload?: Buffer): void {
    const pending = this.#pending.get(seq)
    if (pending === undefined) return
    this.#pending.delete(seq)
    clearTimeout(pending.timer)
    pending.resolve(result, payload)
  }

  #fail (seq: number, err: Error): void {
    const pending = this.#pending.get(seq)
    if (pending === undefined) return
    this.#pending.delete(seq)
    clearTimeout(pending.timer)
    pending.reject(err)
  }

  #onEnvelope (envelope: Envelope): void {
    if (envelope.type === 'reply') {
      this.#settle(envelope.seq, envelope.result, envelope.payload)
    } else if (envelope.type === 'request') {
      this.#answer(envelope)
    }
  }

  #answer (request: RequestEnvelope): void {
    if (request.deadline !== undefined && request.deadline !== 0 && Date.now() > request.deadline) {
      this.#log.debug({ op: request.op, target: request.target }, 'fastify-ws-hub: a request from another node came after its deadline, dropped')
      return
    }
    const reply = (result: boolean | Buffer): Promise<boolean> => {
      const envelope: ReplyEnvelope = typeof result === 'boolean'
        ? { origin: this.#nodeId, type: 'reply', seq: request.seq, result }
        : { origin: this.#nodeId, type: 'reply', seq: request.seq, result: true, payload: result }
      return this.#broker.direct(nodeChannel(request.origin), envelope)
    }
    let result: boolean | Promise<boolean | Buffer>
    try {
      result = this.#handle(request)
    } catch (err) {
      result = Promise.reject(err)
    }
    Promise.resolve(result).catch((err: Error) => {
      this.#log.warn({ err, op: request.op, target: request.target }, 'fastify-ws-hub: a request from another node failed')
      return false
    }).then(reply).catch((err: Error) => {
      // The asking node gets no reply and rejects with WSHUB_ERR_REQUEST_TIMEOUT; the broker has already
      // said that Redis is down, if that is why.
      this.#log.debug({ err, op: request.op, target: request.target }, 'fastify-ws-hub: could not reply to another node')
    })
  }
}
