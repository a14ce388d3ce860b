import type { FastifyBaseLogger } from 'fastify'
import type { BroadcastEnvelope, Broker, Envelope } from './broker/broker.js'
import { roomChannel } from './broker/keys.js'
import type { Member, RoomRegistry } from './rooms.js'

/** How long a node stays subscribed to a room's channel after its last local member left (ms). */
export const ROOM_UNSUBSCRIBE_GRACE = 2_000

/** Gets the envelopes that arrive on a room's channel, with the room they came through. */
export type RoomEnvelopeListener = (room: string, envelope: Envelope) => void

/** What a node's per-room routing has done (see `Hub.routing()`). */
export interface RoutingStats {
  /** Room channels this node listens on now (rooms with a local member, and rooms in their grace period). */
  channels: number
  /** Envelopes that arrived on room channels. */
  received: number
  /** Of those, envelopes for a room with no local member left (in the grace period after the last left). */
  idle: number
}

const RESOLVED = Promise.resolve()

/**
 * Per-room routing: a node listens on the channel of each room it has a local member in, so that a room
 * message reaches only the nodes with members, and publishes a room message once on the channel of
 * each target room.
 *
 * The registry's `create-room` subscribes (the subscriptions of one turn go to the broker together);
 * `join` waits for that subscription (see `ready`). `delete-room` unsubscribes after a grace period,
 * cancelled when the room is created again, so that join and leave churn does not turn into a stream
 * of SUBSCRIBE and UNSUBSCRIBE.
 *
 * A node that listens on several target rooms of one message gets a copy on each of their channels,
 * and delivers each member once by a stateless rule: the copy from room R's channel goes to the local
 * members of R that are not members of a target room listed before R.
 */
export class RoomRouting<M extends Member> {
  readonly #broker: Broker
  readonly #registry: RoomRegistry<M>
  readonly #listener: RoomEnvelopeListener
  readonly #log: FastifyBaseLogger
  readonly #grace: number
  /** The rooms subscribed (or being subscribed), with the pending subscription until it is confirmed. */
  readonly #subscribed = new Map<string, Promise<void> | null>()
  /** Rooms whose last local member left, with when to unsubscribe them. */
  readonly #leaving = new Map<string, number>()
  #timer: NodeJS.Timeout | null = null
  #received = 0
  #idle = 0
  #stopped = false
  readonly #timeout: number

  /**
   * @param broker - the transport
   * @param registry - the node's rooms
   * @param listener - gets each envelope that arrives on a room channel of a room with local members
   * @param log - where failed subscriptions are reported
   * @param timeout - ms a `join` waits at most for its subscription (the transport may be down)
   * @param grace - ms before unsubscribing a room that has no local member left
   */
  constructor (broker: Broker, registry: RoomRegistry<M>, listener: RoomEnvelopeListener, log: FastifyBaseLogger,
    timeout: number, grace = ROOM_UNSUBSCRIBE_GRACE) {
    this.#broker = broker
    this.#timeout = timeout
    this.#registry = registry
    this.#listener = listener
    this.#log = log
    this.#grace = grace
    registry.on('create-room', this.#onCreate)
    registry.on('delete-room', this.#onDelete)
  }

  /**
   * Resolves once this node listens on `room`'s channel (at once when it already did), so that a
   * message published to the room after a local `join` resolved reaches the new member. A failed
   * subscription resolves too, and so does one not confirmed within the request timeout (local
   * delivery does not need it; the broker subscribes again when its transport is back).
   */
  ready (room: string): Promise<void> {
    return this.#subscribed.get(room) ?? RESOLVED
  }

  /** Publishes a room message once on the channel of each of its rooms. */
  publish (envelope: BroadcastEnvelope): Promise<void> {
    const rooms = envelope.rooms as string[]
    if (rooms.length === 1) return this.#broker.publish(roomChannel(rooms[0]!), envelope)
    return Promise.all(rooms.map(room => this.#broker.publish(roomChannel(room), envelope))).then(() => {})
  }

  /**
   * Whom the copy of a room message that came through `room`'s channel is for: the local members of
   * `room`, leaving out (beside the message's own `except`) the local members of target rooms listed
   * before `room`, who got it through those rooms' channels (null: nobody left out); false when
   * `room` is not one of the message's rooms.
   */
  exceptFor (room: string, envelope: BroadcastEnvelope): string[] | null | false {
    const rooms = envelope.rooms ?? []
    const at = rooms.indexOf(room)
    if (at < 0) return false
    const except = envelope.except ?? null
    if (at === 0) return except
    const ids = except === null ? [] : [...except]
    for (let i = 0; i < at; i++) {
      const members = this.#registry.rooms.get(rooms[i]!)
      if (members !== undefined) for (const member of members) ids.push(member.id)
    }
    return ids
  }

  /** Counts of what this node's routing has done. */
  stats (): RoutingStats {
    return { channels: this.#subscribed.size, received: this.#received, idle: this.#idle }
  }

  /** Stops listening to the registry and drops the unsubscribe timer; the broker's close unsubscribes. */
  stop (): void {
    this.#stopped = true
    this.#registry.off('create-room', this.#onCreate)
    this.#registry.off('delete-room', this.#onDelete)
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#leaving.clear()
  }

  #onCreate = (room: string): void => {
    if (this.#leaving.delete(room) || this.#subscribed.has(room) || this.#stopped) return
    let timer: NodeJS.Timeout | undefined
    const settled = (): void => {
      clearTimeout(timer)
      if (this.#subscribed.get(room) === pending) this.#subscribed.set(room, null)
    }
    const subscribed = this.#broker.subscribe(roomChannel(room), envelope => this.#onEnvelope(room, envelope)).then(settled, (err: Error) => {
      settled()
      this.#log.debug({ err, room }, 'fastify-ws-hub: could not subscribe to a room channel')
    })
    const late = new Promise<void>(resolve => {
      timer = setTimeout(resolve, this.#timeout)
      timer.unref()
    })
    const pending: Promise<void> = Promise.race([subscribed, late]).then(settled)
    this.#subscribed.set(room, pending)
  }

  #onDelete = (room: string): void => {
    if (this.#stopped) return
    this.#leaving.set(room, Date.now() + this.#grace)
    if (this.#timer === null) this.#schedule(this.#grace)
  }

  #schedule (ms: number): void {
    this.#timer = setTimeout(this.#sweep, ms)
    this.#timer.unref()
  }

  #sweep = (): void => {
    this.#timer = null
    const now = Date.now()
    let next = Infinity
    for (const [room, due] of this.#leaving) {
      if (due > now) {
        next = Math.min(next, due)
        continue
      }
      this.#leaving.delete(room)
      this.#subscribed.delete(room)
      this.#broker.unsubscribe(roomChannel(room)).catch((err: Error) => {
        this.#log.debug({ err, room }, 'fastify-ws-hub: could not unsubscribe from a room channel')
      })
    }
    if (next !== Infinity) this.#schedule(next - now)
  }

  #onEnvelope (room: string, envelope: Envelope): void {
    this.#received++
    if (!this.#registry.rooms.has(room)) {
      this.#idle++
      return
    }
    this.#listener(room, envelope)
  }
}
