/**
 * A room broadcast or `sendAll`, serialized once by the node that sent it. `origin` is the sending
 * node's id, so a node drops what it published itself (its local members were served before the publish).
 */
export interface BroadcastEnvelope {
  /** The id of the node that published the envelope. */
  origin: string
  /** `'rooms'`: to the members of `rooms`; `'all'`: to every connection. */
  type: 'rooms' | 'all'
  /** The target rooms (for `'rooms'`); a member of several gets the message once. */
  rooms?: string[]
  /** Connection ids left out. */
  except?: string[]
  /** The message's offset in its room's history, when the room keeps one. */
  offset?: string
  /** Whether the payload goes out as a binary frame (otherwise as text). */
  binary: boolean
  /** The serialized message. */
  payload: Buffer
}

/**
 * An event of one of the hub's modules about a room (a presence change, say), for the nodes that
 * have members of that room. `topic` names the module; the payload is the module's own.
 */
export interface EventEnvelope {
  /** The id of the node that published the envelope. */
  origin: string
  type: 'event'
  /** Which module the event is for. */
  topic: string
  /** The room it is about. */
  room: string
  /** The module's bytes. */
  payload: Buffer
}

/** What a node may ask the node that owns a connection to do with it. */
export type RequestOp = 'send' | 'close' | 'join' | 'leave' | 'has' | 'call'

/**
 * A directed call (`app.ws.send(id)`, `close(id)`, `join(id, room)`, `leave(id, room)`, `has(id)`) for a
 * connection of another node, published on that node's channel. The owner answers with a
 * {@link ReplyEnvelope} carrying the same `seq`, on the channel of the `origin` node.
 */
export interface RequestEnvelope {
  /** The id of the node that asks, and that waits for the reply. */
  origin: string
  type: 'request'
  /** The request number, unique among the origin's pending requests, echoed by the reply. */
  seq: number
  /**
   * When the asking node stops waiting (ms since the epoch, by the asking node's clock); the owner drops
   * a request that reaches it later, unperformed. 0 or absent: no deadline.
   */
  deadline?: number
  op: RequestOp
  /** The connection id. */
  target: string
  /** `join`, `leave`: the room. */
  room?: string
  /** `close`: the close code. */
  code?: number
  /** `close`: the close reason. */
  reason?: string
  /** `send`: whether the payload goes out as a binary frame. */
  binary?: boolean
  /** `send`: the serialized message; `call`: the call, as JSON. */
  payload?: Buffer
}

/** The owning node's answer to a {@link RequestEnvelope}. */
export interface ReplyEnvelope {
  /** The id of the node that answers. */
  origin: string
  type: 'reply'
  /** The `seq` of the request. */
  seq: number
  /** The boolean the call resolves with (`false`: no such connection there). */
  result: boolean
  /** `call`: the outcome, as JSON. */
  payload?: Buffer
}

/** A message between hubs. */
export type Envelope = BroadcastEnvelope | EventEnvelope | RequestEnvelope | ReplyEnvelope

/** Called with every envelope published on a subscribed channel, by any node, the subscriber included. */
export type EnvelopeListener = (envelope: Envelope) => void

/** Lists this node's rooms and their member ids (to rewrite its presence after the store lost it). */
export type PresenceSnapshot = () => Iterable<[room: string, ids: Iterable<string>]>

/**
 * Cluster-wide presence, kept by a broker that reaches other processes. Each node records its own
 * memberships and keeps a liveness mark fresh; answers leave out the connections of nodes whose mark
 * has expired (nodes that died without closing).
 *
 * Writes (`join`, `leave`) are fire and forget, in order: a failure is the broker's to report, and the
 * node's whole presence is written again when the store is back. Reads reject with a `WSHUB_ERR_` error
 * when the store cannot answer within the broker's request timeout.
 */
export interface Presence {
  /**
   * Marks this node alive, keeps the mark fresh until `stop()`, and remembers how to list its rooms
   * (`snapshot`) and how to ask whether it has a member in one now (`has`: a rewrite of its presence
   * that runs while connections join and leave keeps what they wrote).
   */
  start (nodeId: string, snapshot: PresenceSnapshot, has?: (room: string) => boolean): Promise<void>
  /** Records that connection `id` of this node joined `room` (`first`: the node's first member there). */
  join (room: string, id: string, first?: boolean): void
  /** Records that connection `id` of this node left `room` (`last`: the node has no member there now). */
  leave (room: string, id: string, last?: boolean): void
  /** Whether node `nodeId` is alive (its liveness mark has not expired). */
  alive (nodeId: string): Promise<boolean>
  /** How many connections are in `room`, on live nodes. */
  roomSize (room: string): Promise<number>
  /** The ids of the connections in `room`, on live nodes. */
  members (room: string): Promise<string[]>
  /** The rooms with at least one member on a live node. */
  rooms (): Promise<string[]>
  /** Stops the liveness refresh and removes everything this node wrote. Idempotent. */
  stop (): Promise<void>
}

/**
 * The seam between the hub and the transport that reaches other nodes. The hub writes all the fan-out
 * logic once (local delivery, self-origin filtering, `except`, request and reply) and leaves a broker
 * only this: move envelopes between nodes over named channels (as socket.io's `ClusterAdapter.doPublish`
 * and Phoenix's `PubSub.Adapter` with its `broadcast` and `direct_broadcast` do).
 *
 * Contract, the same for every broker (test/broker-suite.js checks it against each):
 * - `publish` resolves once the envelope has been handed to the transport; it rejects with
 *   `WSHUB_ERR_BROKER_CLOSED` after `close()`. Envelopes from one publisher arrive in the order
 *   published; delivery is at most once (a transport that is down drops them, and `publish` still
 *   resolves).
 * - `direct` is `publish` for a channel that one node listens on, and resolves with whether anybody
 *   listened (false: that node is gone). It rejects when the transport is down, rather than drop.
 * - A listener is called asynchronously (never inside `publish`) with each envelope published on its
 *   channel after `subscribe` resolved, including the subscriber's own, equal to the one published.
 * - `close` unsubscribes everything and releases what the broker opened; it is idempotent.
 */
export interface Broker {
  /** Hands an envelope to every subscriber of `channel`, on every node. */
  publish (channel: string, envelope: Envelope): Promise<void>
  /** Hands an envelope to the subscribers of `channel`; resolves with whether there was one. */
  direct (channel: string, envelope: Envelope): Promise<boolean>
  /** Calls `listener` with every envelope later published on `channel`. One listener per channel. */
  subscribe (channel: string, listener: EnvelopeListener): Promise<void>
  /** Stops listening on `channel`. */
  unsubscribe (channel: string): Promise<void>
  /** Unsubscribes everything and releases the broker's resources. */
  close (): Promise<void>
  /** Cluster-wide presence, for a broker that reaches other processes; without it a hub answers from its own registry. */
  readonly presence?: Presence
  /** Whether the connection to the transport is up (a broker over the network; the metrics' `redis_up`). */
  up? (): boolean
}
