import { performance } from 'node:perf_hooks'
import { FANOUT_CHECK_EVERY, FANOUT_LARGE, FANOUT_SLICE_MS } from './constants.js'
import { flush } from './cork.js'

interface Job<T> {
  readonly members: Iterator<T>
  readonly each: (member: T) => void
  readonly done: () => void
  readonly large: boolean
}

/**
 * Delivers room messages to their members in slices of at most about `FANOUT_SLICE_MS` of the event
 * loop, so that a message to a very large room does not hold up the rest of the application. A
 * delivery that does not finish in its slice goes on after the event loop has had its turn; deliveries
 * made meanwhile wait behind it, so every member gets the messages in the order they were sent.
 * A delivery with nothing ahead of it starts at once, within the call that made it.
 */
export class Fanout<T> {
  readonly #jobs: Array<Job<T>> = []
  #scheduled = false

  /** Whether a delivery is still going on (the next ones must queue behind it). */
  get busy (): boolean {
    return this.#jobs.length > 0
  }

  /**
   * Calls `each` for every one of the `size` members the iterator yields (`size` may be an upper
   * bound). Returns null when it is done, or a promise that resolves once it is.
   */
  run (members: Iterator<T>, size: number, each: (member: T) => void): Promise<void> | null {
    // A large room's writes are flushed as they go, so that the system calls are within the slices too
    // (a small room's wait for the end of the tick, to leave with the next messages in one write).
    const large = size > FANOUT_LARGE
    if (this.#jobs.length === 0 && slice(members, each, large)) return null
    return new Promise(resolve => {
      this.#jobs.push({ members, each, done: resolve, large })
      this.#schedule()
    })
  }

  #schedule (): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => this.#continue())
  }

  #continue (): void {
    this.#scheduled = false
    const started = performance.now()
    while (this.#jobs.length > 0) {
      const job = this.#jobs[0]!
      if (!slice(job.members, job.each, job.large, started)) break
      this.#jobs.shift()
      job.done()
    }
    if (this.#jobs.length > 0) this.#schedule()
  }
}

// Delivers until the iterator ends (true) or the slice that began at `started` is used up (false).
function slice<T> (members: Iterator<T>, each: (member: T) => void, large: boolean, started = performance.now()): boolean {
  let count = 0
  for (let next = members.next(); next.done !== true; next = members.next()) {
    each(next.value)
    if (++count === FANOUT_CHECK_EVERY) {
      if (large) flush()
      if (performance.now() - started >= FANOUT_SLICE_MS) return false
      count = 0
    }
  }
  return true
}
