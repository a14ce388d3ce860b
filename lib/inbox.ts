import { INBOX_HIGH_WATER_BYTES, INBOX_HIGH_WATER_MESSAGES } from './constants.js'

/** A received message: `string` for a text frame, `Buffer` for a binary one. */
export type Message = string | Buffer

interface Waiter {
  resolve: (value: any) => void
  reject: (err: Error) => void
  /** An iterator's `next()`: settles with an IteratorResult and never rejects. */
  iterating: boolean
}

/** The iterator result once the queue has ended. */
const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true })

/** What the queue pauses when it is full: reading from a socket. */
export interface Pausable {
  pause (): void
  resume (): void
  /** Whether reading is paused now (ws's `isPaused`), when the socket can say. */
  readonly isPaused?: boolean
}

function sizeOf (message: Message): number {
  return typeof message === 'string' ? message.length : message.byteLength
}

/**
 * A connection's bounded receive queue. Messages wait here until a `receive*()` call, an iterator
 * or a class handler's dispatcher takes them. When the queue passes its high-water mark it pauses the
 * socket, and resumes it once it has drained below half.
 *
 * An idle function handler is one waiter on an empty queue, and a server holds many of them: the first
 * waiter lives in fields of its own and the message list is made on first use, so that waiting costs
 * the promise and nothing more.
 */
export class Inbox {
  #items: Message[] | null = null
  #head = 0
  #bytes = 0
  /** The first waiter (most queues only ever have one), then the others in order. */
  #resolve: ((value: any) => void) | null = null
  #reject: ((err: Error) => void) | null = null
  #iterating = false
  #waiters: Waiter[] | null = null
  #end: (() => Error) | null = null
  #endError: Error | null = null
  #paused = false
  readonly #socket: Pausable

  /**
   * @param socket - what to pause when the queue is full (a ws WebSocket)
   */
  constructor (socket: Pausable) {
    this.#socket = socket
  }

  /** Messages waiting. */
  get length (): number {
    return this.#items === null ? 0 : this.#items.length - this.#head
  }

  /** Whether someone is waiting in `next()`. */
  get hasWaiters (): boolean {
    return this.#resolve !== null
  }

  /** Whether the queue has ended (the connection closed). */
  get ended (): boolean {
    return this.#end !== null
  }

  /** Adds a message, handing it straight to a waiter when there is one. */
  push (message: Message): void {
    if (this.#end !== null) return
    const resolve = this.#resolve
    if (resolve !== null) {
      const iterating = this.#iterating
      this.#promote()
      resolve(iterating ? { value: message, done: false } : message)
      return
    }
    (this.#items ??= []).push(message)
    this.#bytes += sizeOf(message)
    // Paused again when full and found reading: another queue of the same socket (a connection's message
    // hooks hold one too) may have resumed it meanwhile.
    if ((!this.#paused || this.#socket.isPaused === false) && (this.length >= INBOX_HIGH_WATER_MESSAGES || this.#bytes >= INBOX_HIGH_WATER_BYTES)) {
      this.#paused = true
      this.#socket.pause()
    }
  }

  /** Takes the oldest message, or `undefined` when there is none. */
  shift (): Message | undefined {
    const items = this.#items
    if (items === null) return undefined
    const message = items[this.#head]!
    items[this.#head++] = undefined as unknown as Message
    if (this.#head === items.length) {
      this.#items = null
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= items.length) {
      this.#items = items.slice(this.#head)
      this.#head = 0
    }
    this.#bytes -= sizeOf(message)
    if (this.#paused && this.length * 2 < INBOX_HIGH_WATER_MESSAGES && this.#bytes * 2 < INBOX_HIGH_WATER_BYTES) {
      this.#paused = false
      this.#socket.resume()
    }
    return message
  }

  /**
   * The next message. Rejects with the end error once the queue has ended and is empty (messages
   * that arrived before the close are still handed out first).
   */
  next (): Promise<Message> {
    const message = this.shift()
    if (message !== undefined) return Promise.resolve(message)
    if (this.#end !== null) return Promise.reject(this.#error())
    return new Promise((resolve, reject) => { this.#wait(resolve, reject, false) })
  }

  /**
   * The next message as an async iterator's result: `{ value, done: false }`, or `{ done: true }` once the
   * queue has ended and is empty. Never rejects. Lets a connection be iterated without an async
   * generator's extra promises per message.
   */
  nextResult (): Promise<IteratorResult<Message, undefined>> {
    const message = this.shift()
    if (message !== undefined) return Promise.resolve({ value: message, done: false })
    if (this.#end !== null) return Promise.resolve(DONE)
    return new Promise((resolve, reject) => { this.#wait(resolve, reject, true) })
  }

  /** Drops every waiting message (used when nobody will ever read them). */
  clear (): void {
    this.#items = null
    this.#head = 0
    this.#bytes = 0
    if (this.#paused) {
      this.#paused = false
      this.#socket.resume()
    }
  }

  /**
   * Ends the queue: waiters and later `next()` calls (once it is empty) reject with the error `makeError`
   * builds, made only if someone is there to get it.
   */
  end (makeError: () => Error): void {
    if (this.#end !== null) return
    this.#end = makeError
    while (this.#resolve !== null) {
      const resolve = this.#resolve
      const reject = this.#reject!
      const iterating = this.#iterating
      this.#promote()
      if (iterating) resolve(DONE)
      else reject(this.#error())
    }
  }

  #wait (resolve: (value: any) => void, reject: (err: Error) => void, iterating: boolean): void {
    if (this.#resolve === null) {
      this.#resolve = resolve
      this.#reject = reject
      this.#iterating = iterating
    } else {
      (this.#waiters ??= []).push({ resolve, reject, iterating })
    }
  }

  /** The first waiter has been served: the next one in line takes its place. */
  #promote (): void {
    const next = this.#waiters?.shift()
    if (next === undefined) {
      this.#resolve = null
      this.#reject = null
      this.#waiters = null
    } else {
      this.#resolve = next.resolve
      this.#reject = next.reject
      this.#iterating = next.iterating
    }
  }

  #error (): Error {
    return (this.#endError ??= this.#end!())
  }
}
