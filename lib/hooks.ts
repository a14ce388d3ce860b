import type { BaseConnection } from './connection.js'
import { Inbox, type Message } from './inbox.js'
import { RpcSession, type RpcRoute } from './rpc.js'
import { kFail, kReceive, kSetIntake } from './symbols.js'

/**
 * A message hook (`onMessage`, app-wide or per route): sees every incoming message after the rate limit
 * and before the handler or the methods. Returning (or resolving) `false` drops the message; closing the
 * connection drops it too; throwing closes the connection with 1011 and logs the error.
 */
export type OnMessageHook<Conn = BaseConnection> = (conn: Conn, message: Message) => void | boolean | Promise<void | boolean>

/** What a route puts in front of its connections' messages: the hooks (the app's, then its own) and its methods. */
export interface IntakeWiring {
  hooks: readonly OnMessageHook[]
  rpc: RpcRoute | null
}

/** The hooks of an `onMessage` option (a function or an array of them), or null when it is neither. */
export function hooksOf (value: unknown): OnMessageHook[] | null {
  if (value === undefined) return []
  if (typeof value === 'function') return [value as OnMessageHook]
  if (Array.isArray(value) && value.every(hook => typeof hook === 'function')) return [...value]
  return null
}

/** Puts a route's intake in front of a new connection's messages; null for a route without one. */
export function attachIntake (conn: BaseConnection, wiring: IntakeWiring | null): Intake | null {
  if (wiring === null) return null
  const intake = new Intake(conn, wiring.hooks, wiring.rpc === null ? null : new RpcSession(conn, wiring.rpc))
  conn[kSetIntake](intake)
  return intake
}

/** Where the messages that pass the hooks go next: the methods, or the connection's own reading. */
type Stage = (message: Message) => void | Promise<void>

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function'
}

/**
 * The front of a connection's incoming messages on a route with message hooks or methods: holds them
 * until the connection is accepted, runs the hooks on them one message at a time, and hands what passes
 * to the next stage (the route's methods, or `receive*()`, the iterator and a class's `receive()`).
 *
 * While a hook or the next stage is busy with a promise, later messages wait in a bounded queue that
 * pauses reading from the socket when it is full (as the connection's own receive queue does). With
 * synchronous hooks and a stage with room, a message goes straight through, without a queue or a promise.
 */
export class Intake {
  readonly #conn: BaseConnection
  readonly #hooks: readonly OnMessageHook[]
  readonly #stage: Stage
  /** The route's methods for this connection, or null (a route with hooks only). */
  readonly rpc: RpcSession | null
  #queue: Inbox | null = null
  #started = false
  #busy = false
  #resume: ((value: unknown) => void) | null = null
  #failed: ((err: unknown) => void) | null = null

  /**
   * @param conn - the connection
   * @param hooks - the app's hooks, then the route's
   * @param rpc - the route's methods for this connection, or null
   */
  constructor (conn: BaseConnection, hooks: readonly OnMessageHook[], rpc: RpcSession | null) {
    this.#conn = conn
    this.#hooks = hooks
    this.rpc = rpc
    this.#stage = rpc === null ? message => conn[kReceive](message) : message => rpc.receive(message)
  }

  /** Takes a message from the socket. */
  push (message: Message): void {
    if (this.#started && !this.#busy && (this.#queue === null || this.#queue.length === 0)) this.#run(message, 0)
    else (this.#queue ??= new Inbox(this.#conn.socket)).push(message)
  }

  /** The connection was accepted: messages held until now go through, then the ones that follow. */
  start (): void {
    if (this.#started) return
    this.#started = true
    this.#drain()
  }

  /** The connection closed: what waits is dropped, and pending calls to the client reject. */
  close (): void {
    this.#queue?.clear()
    this.rpc?.close()
  }

  // Runs hooks from `index` on, then the stage; returns at the first promise, which continues later.
  #run (message: Message, index: number): void {
    const conn = this.#conn
    const hooks = this.#hooks
    for (let i = index; i < hooks.length; i++) {
      let result: unknown
      try {
        result = hooks[i]!(conn, message)
      } catch (err) {
        conn[kFail](err)
        return
      }
      if (isThenable(result)) {
        this.#busy = true
        result.then(passed => {
          this.#busy = false
          if (passed !== false && !conn.closed) this.#run(message, i + 1)
          this.#drain()
        }, this.#failed ??= (err: unknown) => {
          this.#busy = false
          conn[kFail](err)
        })
        return
      }
      if (result === false || conn.closed) return
    }
    let waiting: void | Promise<void>
    try {
      waiting = this.#stage(message)
    } catch (err) {
      conn[kFail](err)
      return
    }
    // The stage has no room for more (its own queue is full): wait before the next message.
    if (waiting !== undefined) {
      this.#busy = true
      waiting.then(this.#resume ??= () => {
        this.#busy = false
        this.#drain()
      })
    }
  }

  #drain (): void {
    const queue = this.#queue
    if (queue === null) return
    while (this.#started && !this.#busy && !this.#conn.closed) {
      const message = queue.shift()
      if (message === undefined) return
      this.#run(message, 0)
    }
  }
}
