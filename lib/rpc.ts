import type { BaseConnection } from './connection.js'
import {
  CloseCode,
  RpcError,
  WSHUB_ERR_CONNECTION_CLOSED,
  WSHUB_ERR_INVALID_PAYLOAD,
  WSHUB_ERR_RPC_TIMEOUT
} from './errors.js'
import type { Message } from './inbox.js'
import { toJson } from './message.js'
import { kTrySend } from './symbols.js'

// JSON-RPC 2.0 (https://www.jsonrpc.org/specification) over a connection's text frames: requests,
// notifications and batches from the client to the route's methods, and calls and notifications from
// the server to the client, whose responses come back on the same socket.

/** The most calls one batch may hold; a larger batch is answered with one -32600 error and not run. */
export const MAX_BATCH = 100
/**
 * Calls of one connection waiting for a free slot (`concurrency`): past this many, or past this many
 * bytes of the messages they came in, the connection stops taking messages until half have run; its
 * receive queue then fills and reading from the socket pauses.
 */
export const MAX_WAITING_CALLS = 256
export const MAX_WAITING_BYTES = 1_048_576
/** The default of the route option `callTimeout`: ms `conn.call()` waits for the client's response. */
export const DEFAULT_CALL_TIMEOUT = 10_000

/** The error codes of the specification. */
export const RpcErrorCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603
})

/** Options of `conn.call()` and `app.ws.call()`. */
export interface CallOptions {
  /** Ms to wait for the client's response; default: the route's `callTimeout`. */
  timeout?: number
}

/**
 * A compiled validator as Fastify's validator compilers build them: returns a boolean (the errors in
 * its `errors`), or `{ error }` / `{ value }` (a custom compiler).
 */
export type ParamsValidator = ((data: unknown) => unknown) & { errors?: unknown }

/** A method ready to be called: its handler and the compiled validator of its `schema.params`. */
export interface CompiledMethod {
  handler: (params: any, conn: any) => unknown
  schema: unknown
  validate: ParamsValidator | null
}

/** What a methods route shares among its connections. */
export interface RpcRoute {
  methods: Map<string, CompiledMethod>
  concurrency: number
  callTimeout: number
}

/** The JSON-RPC message of a notification, checked. */
export function notification (method: string, params?: unknown): object {
  checkCall(method, params)
  return params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params }
}

/** Sends the notification of `method` with `send`; rejects, unsent, for a bad method name or params. */
export function sendNotification<T> (method: string, params: unknown, send: (message: object) => Promise<T>): Promise<T> {
  let message: object
  try {
    message = notification(method, params)
  } catch (err) {
    return Promise.reject(err)
  }
  return send(message)
}

/**
 * Checks a method name and params the server sends.
 * @throws WSHUB_ERR_INVALID_PAYLOAD for a method that is not a string or params that are neither an
 * array nor an object
 */
export function checkCall (method: unknown, params: unknown): void {
  if (typeof method !== 'string') throw new WSHUB_ERR_INVALID_PAYLOAD(`a method name is a string, not ${typeof method}`)
  if (params !== undefined && (typeof params !== 'object' || params === null)) {
    throw new WSHUB_ERR_INVALID_PAYLOAD('JSON-RPC params are an array or an object')
  }
}

/**
 * A call's timeout, checked.
 * @throws WSHUB_ERR_INVALID_PAYLOAD for anything but a positive number of ms
 */
export function timeoutOf (options: CallOptions | undefined, fallback: number): number {
  const timeout = options?.timeout ?? fallback
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > 2_147_483_647) {
    throw new WSHUB_ERR_INVALID_PAYLOAD('a call timeout is a positive number of ms')
  }
  return timeout
}

interface Batch {
  responses: (object | undefined)[]
  left: number
}

interface Job {
  method: CompiledMethod
  name: string
  params: unknown
  id: unknown
  hasId: boolean
  batch: Batch | null
  index: number
  bytes: number
  /** An async validator's pending verdict (an Ajv `$async` schema): the handler runs once it passes. */
  validation: PromiseLike<unknown> | null
}

interface Pending {
  resolve (value: unknown): void
  reject (err: Error): void
  timer: NodeJS.Timeout
}

/** Nothing to answer now: the call was queued, or it needs no response. */
const QUEUED = 1
const NOTHING = 0

const PARSE_ERROR = '{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}'

let pendingCalls = 0

/** Server-to-client calls waiting for their response, in the whole process (for tests of boundedness). */
export function pendingCallCount (): number {
  return pendingCalls
}

function failure (id: unknown, code: number, message: string, data?: unknown): object {
  return { jsonrpc: '2.0', error: data === undefined ? { code, message } : { code, message, data }, id }
}

function invalidRequest (id: unknown): object {
  return failure(id, RpcErrorCode.INVALID_REQUEST, 'Invalid Request')
}

function isId (id: unknown): boolean {
  return id === null || typeof id === 'string' || typeof id === 'number'
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as PromiseLike<unknown>).then === 'function'
}

/**
 * The errors of a failed validation, or null when the params passed (`params.value` replaced if asked)
 * or their verdict is still to come (an async validator: `box.validation`).
 */
function validationErrors (validate: ParamsValidator, box: { params: unknown, validation: PromiseLike<unknown> | null }): unknown {
  const ret = validate(box.params === undefined ? null : box.params)
  if (ret === false) return validate.errors ?? []
  if (isThenable(ret)) {
    box.validation = ret
    return null
  }
  if (ret !== null && typeof ret === 'object') {
    const result = ret as { error?: unknown, value?: unknown }
    if (result.error !== undefined) {
      const error = result.error as { validation?: unknown, message?: unknown }
      return error.validation ?? [{ message: String(error.message ?? error) }]
    }
    if ('value' in result) box.params = result.value
  }
  return null
}

/** The `RpcError` of a client's error object. */
export function rpcErrorOf (error: unknown): RpcError {
  const e = error as { code?: unknown, message?: unknown, data?: unknown } | null
  if (e !== null && typeof e === 'object' && Number.isInteger(e.code) && typeof e.message === 'string') {
    return new RpcError(e.code as number, e.message, e.data)
  }
  return new RpcError(RpcErrorCode.INTERNAL_ERROR, 'Invalid error response', error)
}

/**
 * One connection's side of JSON-RPC on a methods route: it answers the client's requests from the
 * route's methods, at most `concurrency` at a time (in arrival order), and keeps the server's own calls
 * to the client until their response, their timeout or the close of the connection, whichever is first.
 */
export class RpcSession {
  readonly #conn: BaseConnection
  readonly #route: RpcRoute
  readonly #pending = new Map<number, Pending>()
  #waiting: Job[] = []
  #head = 0
  #waitingBytes = 0
  #running = 0
  #pumping = false
  #seq = 0
  #closed = false
  #resume: (() => void) | null = null

  /**
   * @param conn - the connection
   * @param route - the route's methods and limits
   */
  constructor (conn: BaseConnection, route: RpcRoute) {
    this.#conn = conn
    this.#route = route
  }

  /**
   * Takes a message from the client. Returns a promise when the calls waiting for a slot are at their
   * limit: the connection takes no further message until it settles.
   */
  receive (message: Message): void | Promise<void> {
    if (typeof message !== 'string') {
      this.#conn.close(CloseCode.UNSUPPORTED_DATA, 'Binary frames are not supported') // a valid code: never rejects
      return
    }
    let value: unknown
    try {
      value = JSON.parse(message)
    } catch {
      this.#send(PARSE_ERROR)
      return
    }
    if (Array.isArray(value)) {
      this.#batch(value, message.length)
    } else {
      const answer = this.#one(value, null, 0, message.length)
      if (typeof answer === 'object') this.#respond(answer)
    }
    if (this.#waiting.length - this.#head < MAX_WAITING_CALLS && this.#waitingBytes < MAX_WAITING_BYTES) return
    return new Promise(resolve => { this.#resume = resolve })
  }

  /** Calls a method of the client; see `conn.call()`. */
  call (method: string, params: unknown, options: CallOptions | undefined): Promise<unknown> {
    let timeout: number
    let text: string
    const id = ++this.#seq
    try {
      checkCall(method, params)
      timeout = timeoutOf(options, this.#route.callTimeout)
      text = toJson(params === undefined ? { jsonrpc: '2.0', method, id } : { jsonrpc: '2.0', method, params, id })
    } catch (err) {
      return Promise.reject(err)
    }
    if (this.#closed) return Promise.reject(new WSHUB_ERR_CONNECTION_CLOSED(this.#conn.id))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) pendingCalls--
        reject(new WSHUB_ERR_RPC_TIMEOUT(method, String(timeout)))
      }, timeout)
      this.#pending.set(id, { resolve, reject, timer })
      pendingCalls++
      // Not written (dropped for backpressure): the call times out, as delivery is at most once. Closed
      // for backpressure on this write: close() has rejected it already.
      this.#conn[kTrySend](text)
    })
  }

  /** The connection closed: pending calls reject, waiting calls are dropped. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer)
      pendingCalls--
      pending.reject(new WSHUB_ERR_CONNECTION_CLOSED(this.#conn.id))
    }
    this.#pending.clear()
    this.#waiting = []
    this.#head = 0
    this.#waitingBytes = 0
    this.#wake()
  }

  #batch (items: unknown[], bytes: number): void {
    if (items.length === 0) {
      this.#respond(invalidRequest(null))
      return
    }
    if (items.length > MAX_BATCH) {
      this.#respond(failure(null, RpcErrorCode.INVALID_REQUEST, 'Invalid Request', `a batch holds at most ${MAX_BATCH} calls`))
      return
    }
    // One more than it holds until every call is in, so that calls finishing meanwhile cannot flush it.
    const batch: Batch = { responses: new Array(items.length), left: items.length + 1 }
    const share = Math.ceil(bytes / items.length)
    for (let i = 0; i < items.length; i++) {
      const answer = this.#one(items[i], batch, i, share)
      if (answer === QUEUED) continue
      if (answer !== NOTHING) batch.responses[i] = answer
      batch.left--
    }
    if (--batch.left === 0) this.#flush(batch)
  }

  // One request, notification or response: an error to answer at once, QUEUED, or NOTHING.
  #one (item: unknown, batch: Batch | null, index: number, bytes: number): object | typeof QUEUED | typeof NOTHING {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return invalidRequest(null)
    const call = item as { jsonrpc?: unknown, method?: unknown, params?: unknown, id?: unknown }
    const hasId = Object.hasOwn(call, 'id')
    const id = hasId && isId(call.id) ? call.id : null
    if (call.method === undefined) {
      if (call.jsonrpc === '2.0' && hasId && isId(call.id) && (Object.hasOwn(call, 'result') || Object.hasOwn(call, 'error'))) {
        this.#settle(call as { id: unknown, result?: unknown, error?: unknown })
        return NOTHING
      }
      return invalidRequest(id)
    }
    if (call.jsonrpc !== '2.0' || typeof call.method !== 'string' || (hasId && !isId(call.id)) ||
      (call.params !== undefined && (typeof call.params !== 'object' || call.params === null))) {
      return invalidRequest(id)
    }
    const method = this.#route.methods.get(call.method)
    if (method === undefined) return hasId ? failure(id, RpcErrorCode.METHOD_NOT_FOUND, 'Method not found') : NOTHING
    const box = { params: call.params, validation: null as PromiseLike<unknown> | null }
    if (method.validate !== null) {
      let errors: unknown
      try {
        errors = validationErrors(method.validate, box)
      } catch (err) {
        this.#conn.log.error({ err, method: call.method }, 'ws method params validator failed')
        return hasId ? failure(id, RpcErrorCode.INTERNAL_ERROR, 'Internal error') : NOTHING
      }
      if (errors !== null) return hasId ? failure(id, RpcErrorCode.INVALID_PARAMS, 'Invalid params', errors) : NOTHING
    }
    const job: Job = { method, name: call.method, params: box.params, id, hasId, batch, index, bytes, validation: box.validation }
    if (this.#running < this.#route.concurrency && this.#head === this.#waiting.length) {
      this.#start(job)
    } else {
      this.#waiting.push(job)
      this.#waitingBytes += bytes
    }
    return QUEUED
  }

  #start (job: Job): void {
    this.#running++
    if (job.validation !== null) {
      // Ajv's async validators resolve when the data is valid and reject with its errors when not.
      const validation = job.validation
      job.validation = null
      validation.then(() => {
        this.#running--
        this.#start(job)
      }, (err: { errors?: unknown, message?: unknown }) => {
        this.#running--
        this.#deliver(job, job.hasId ? failure(job.id, RpcErrorCode.INVALID_PARAMS, 'Invalid params', err?.errors ?? [{ message: String(err?.message ?? err) }]) : undefined)
        this.#pump()
      })
      return
    }
    let result: unknown
    try {
      result = job.method.handler(job.params, this.#conn)
    } catch (err) {
      this.#done(job, err, true)
      return
    }
    if (isThenable(result)) {
      result.then(value => this.#done(job, value, false), (err: unknown) => this.#done(job, err, true))
    } else {
      this.#done(job, result, false)
    }
  }

  #done (job: Job, value: unknown, failed: boolean): void {
    this.#running--
    let response: object | undefined
    if (failed) {
      if (value instanceof RpcError) {
        if (job.hasId) response = failure(job.id, value.code, value.message, value.data)
      } else {
        this.#conn.log.error({ err: value, method: job.name }, 'ws method failed')
        if (job.hasId) response = failure(job.id, RpcErrorCode.INTERNAL_ERROR, 'Internal error')
      }
    } else if (job.hasId) {
      response = { jsonrpc: '2.0', result: value === undefined ? null : value, id: job.id }
    }
    this.#deliver(job, response)
    this.#pump()
  }

  // A call's response goes out alone, or into its batch (which goes out with its last response).
  #deliver (job: Job, response: object | undefined): void {
    const batch = job.batch
    if (batch === null) {
      if (response !== undefined) this.#respond(response, job.name)
    } else {
      batch.responses[job.index] = response
      if (--batch.left === 0) this.#flush(batch)
    }
  }

  // Starts waiting calls while there are free slots (a loop, not a recursion, for synchronous handlers).
  #pump (): void {
    if (this.#pumping) return
    this.#pumping = true
    while (this.#running < this.#route.concurrency && this.#head < this.#waiting.length) {
      const job = this.#waiting[this.#head]!
      this.#waiting[this.#head++] = undefined as unknown as Job
      this.#waitingBytes -= job.bytes
      if (this.#head === this.#waiting.length) {
        this.#waiting = []
        this.#head = 0
      }
      this.#start(job)
    }
    this.#pumping = false
    if (this.#resume !== null && (this.#waiting.length - this.#head) * 2 < MAX_WAITING_CALLS && this.#waitingBytes * 2 < MAX_WAITING_BYTES) {
      this.#wake()
    }
  }

  #wake (): void {
    const resume = this.#resume
    this.#resume = null
    resume?.()
  }

  #flush (batch: Batch): void {
    const responses = batch.responses.filter(response => response !== undefined)
    if (responses.length === 0) return
    let text: string
    try {
      text = toJson(responses)
    } catch {
      text = `[${responses.map(response => this.#serialize(response, undefined)).join(',')}]`
    }
    this.#send(text)
  }

  #respond (response: object, method?: string): void {
    this.#send(this.#serialize(response, method))
  }

  // A response as JSON; a result JSON cannot represent (a BigInt, a cycle) becomes an internal error.
  #serialize (response: object, method: string | undefined): string {
    try {
      return toJson(response)
    } catch (err) {
      this.#conn.log.error({ err, method }, 'ws method result cannot be sent as JSON')
      return toJson(failure((response as { id: unknown }).id, RpcErrorCode.INTERNAL_ERROR, 'Internal error'))
    }
  }

  #send (text: string): void {
    this.#conn[kTrySend](text)
  }

  #settle (response: { id: unknown, result?: unknown, error?: unknown }): void {
    const pending = typeof response.id === 'number' ? this.#pending.get(response.id) : undefined
    if (pending === undefined) {
      this.#conn.log.debug({ id: response.id }, 'ws JSON-RPC response for no pending call dropped')
      return
    }
    this.#pending.delete(response.id as number)
    pendingCalls--
    clearTimeout(pending.timer)
    if (Object.hasOwn(response, 'error')) pending.reject(rpcErrorOf(response.error))
    else pending.resolve(response.result)
  }
}
