import { WSHUB_ERR_BROKER_CLOSED } from '../errors.js'
import type { Broker, Envelope, EnvelopeListener } from './broker.js'

/**
 * The channels shared by the `MemoryBroker`s of one process. Each broker gets its own by default;
 * brokers built on the same bus reach each other, which lets tests run several hubs in one process.
 */
export class MemoryBus {
  /** Listeners by channel. */
  readonly channels = new Map<string, Set<EnvelopeListener>>()
}

/**
 * The default broker: delivery within this process only. With one hub on its bus it has nobody to
 * reach, and the hub answers everything from its local registry. Hubs on one bus reach each other with
 * broadcasts and directed calls; it keeps no cluster-wide presence (each hub answers `roomSize`,
 * `members` and `rooms()` from its own registry).
 */
export class MemoryBroker implements Broker {
  readonly #bus: MemoryBus
  readonly #mine = new Map<string, EnvelopeListener>()
  #closed = false

  /**
   * @param bus - the bus to share with other brokers of this process; a new one by default
   */
  constructor (bus: MemoryBus = new MemoryBus()) {
    this.#bus = bus
  }

  async publish (channel: string, envelope: Envelope): Promise<void> {
    this.#post(channel, envelope)
  }

  async direct (channel: string, envelope: Envelope): Promise<boolean> {
    return this.#post(channel, envelope)
  }

  async subscribe (channel: string, listener: EnvelopeListener): Promise<void> {
    if (this.#closed) throw new WSHUB_ERR_BROKER_CLOSED()
    // At once, before this returns: an envelope posted right after a subscription reaches it.
    this.#remove(channel)
    this.#mine.set(channel, listener)
    let listeners = this.#bus.channels.get(channel)
    if (listeners === undefined) {
      listeners = new Set()
      this.#bus.channels.set(channel, listeners)
    }
    listeners.add(listener)
  }

  async unsubscribe (channel: string): Promise<void> {
    this.#remove(channel)
  }

  #remove (channel: string): void {
    const listener = this.#mine.get(channel)
    if (listener === undefined) return
    this.#mine.delete(channel)
    const listeners = this.#bus.channels.get(channel)!
    listeners.delete(listener)
    if (listeners.size === 0) this.#bus.channels.delete(channel)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    for (const channel of [...this.#mine.keys()]) await this.unsubscribe(channel)
    this.#closed = true
  }

  #post (channel: string, envelope: Envelope): boolean {
    if (this.#closed) throw new WSHUB_ERR_BROKER_CLOSED()
    const listeners = this.#bus.channels.get(channel)
    if (listeners === undefined) return false
    // Copy the listener list now, so a listener added later does not see this envelope, and deliver
    // on a later tick, so a listener never runs inside publish() (as with a real transport).
    const targets = [...listeners]
    queueMicrotask(() => {
      for (const listener of targets) listener(envelope)
    })
    return true
  }
}
