import { performance } from 'node:perf_hooks'
import { FANOUT_CHECK_EVERY, FANOUT_SLICE_MS } from './constants.js'

interface Job<T> {
  readonly members: Iterator<T>
  readonly each: (member: T) => void
  readonly done: () => void
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
   * Calls `each` for every member the iterator yields. Returns null when it is done, or a promise
   * that resolves once it is.
   */
  run (members: Iterator<T>, each: (member: T) => void): Promise<void> | null {
    if (this.#jobs.length === 0 && slice(members, each)) return null
    return new Promise(resolve => {
      this.#jobs.push({ members, each, done: resolve })
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
      if (!slice(job.members, job.each, started)) break
      this.#jobs.shift()
      job.done()
    }
    if (this.#jobs.length > 0) this.#schedule()
  }
}

// Delivers until the iterator ends (true) or the slice that began at `started` is used up (false).
function slice<T> (members: Iterator<T>, each: (member: T) => void, started = performance.now()): boolean {
  let count = 0
  for (let next = members.next(); next.done !== true; next = members.next()) {
    each(next.value)
    if (++count === FANOUT_CHECK_EVERY) {
      if (performance.now() - started >= FANOUT_SLICE_MS) return false
      count = 0
    }
  }
  return true
}
