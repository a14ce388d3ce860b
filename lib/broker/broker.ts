/**
 * A message between hubs: one room broadcast or `sendAll`, serialized once by the node that sent it.
 * `origin` is the sending node's id, so a node drops what it published itself (its local members were
 * served before the publish).
 */
export interface Envelope {
  /** The id of the node that published the envelope. */
  origin: string
  /** `'rooms'`: to the members of `rooms`; `'all'`: to every connection. */
  type: 'rooms' | 'all'
  /** The target rooms (for `'rooms'`); a member of several gets the message once. */
  rooms?: string[]
  /** Connection ids left out. */
  except?: string[]
  /** Whether the payload goes out as a binary frame (otherwise as text). */
  binary: boolean
  /** The serialized message. */
  payload: Buffer
}

/** Called with every envelope published on a subscribed channel, by any node, the subscriber included. */
export type EnvelopeListener = (envelope: Envelope) => void

/**
 * The seam between the hub and the transport that reaches other nodes. The hub writes all the fan-out
 * logic once (local delivery, self-origin filtering, `except`, presence) and leaves a broker only this:
 * move envelopes between nodes over named channels (as socket.io's `ClusterAdapter.doPublish` and
 * Phoenix's `PubSub.Adapter` do).
 *
 * Contract, the same for every broker:
 * - `publish` resolves once the envelope has been handed to the transport; it rejects with
 *   `WSHUB_ERR_BROKER_CLOSED` after `close()`. Envelopes from one publisher on one channel arrive in the
 *   order published; delivery is at most once.
 * - A listener is called asynchronously (never inside `publish`) with each envelope published on its
 *   channel after `subscribe` resolved, including the subscriber's own.
 * - `close` unsubscribes everything and releases what the broker opened; it is idempotent.
 */
export interface Broker {
  /** Hands an envelope to every subscriber of `channel`, on every node. */
  publish (channel: string, envelope: Envelope): Promise<void>
  /** Calls `listener` with every envelope later published on `channel`. One listener per channel. */
  subscribe (channel: string, listener: EnvelopeListener): Promise<void>
  /** Stops listening on `channel`. */
  unsubscribe (channel: string): Promise<void>
  /** Unsubscribes everything and releases the broker's resources. */
  close (): Promise<void>
}
