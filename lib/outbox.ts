import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { BaseConnection } from './connection.js'
import { MESSAGE_OVERHEAD, STALL_MS } from './constants.js'
import { corkForTick } from './cork.js'
import { CloseCode, WSHUB_ERR_CONNECTION_CLOSED } from './errors.js'
import { writeOutgoing, type Outgoing } from './message.js'
import { stopReading } from './peer.js'

// The write path of a connection: the backpressure limit, and the pacing of senders that await.
//
// A socket is "high" once Node's stream says so (`writableNeedDrain`: its buffer passed the stream's
// high-water mark). Only high sockets have any state here, in `highs`, and they leave it on 'drain' or
// 'close': an idle or fast connection costs nothing.
//
// - The limit counts what the peer has not taken: a socket corked for the tick (cork.ts) is flushed as
//   soon as it holds the high-water mark, so that what waits in Node's buffer is what the kernel would
//   not take. Each write queued while the kernel is not taking them also counts MESSAGE_OVERHEAD bytes,
//   about the heap one queued write costs, so that a flood of tiny messages is bounded like one of large
//   ones.
// - A sender that awaits is paced as a Node stream writer is: its promise settles once the socket has
//   drained (or closed). A socket that has made no progress for STALL_MS stops pacing anyone until it
//   drains: its buffer then grows to the limit and the backpressure action applies to it, so that a
//   reader that stopped cannot hold up the senders that wait on it (a room's other members, say).

interface High {
  readonly socket: WebSocket
  /** Writes queued since the kernel stopped taking them (reset on 'drain'). */
  writes: number
  /** No progress for STALL_MS: nobody waits for this socket until it drains. */
  stalled: boolean
  /** `bufferedAmount` when the stall timer was armed. */
  mark: number
  timer: NodeJS.Timeout | null
  /**
   * What every sender waiting on this socket gets, made for the first of them: a sender that does not
   * await costs nothing more than one that does.
   */
  paced: Promise<void> | null
  /** The same, resolving true: what `app.ws.send(id)` senders share. */
  pacedTrue: Promise<boolean> | null
  release: (() => void) | null
}

const highs = new Map<Socket, High>()

const TEXT = { binary: false }
const BINARY = { binary: true }
const RESOLVED = Promise.resolve()
const TRUE = Promise.resolve(true)
const FALSE = Promise.resolve(false)

function rawOf (socket: WebSocket): Socket {
  return (socket as unknown as { _socket: Socket })._socket
}

/**
 * Writes one message to a connection's socket unless it is over the backpressure limit, in which case
 * the limit's action applies (the message is dropped, or the connection closed with 1013). Returns
 * whether it was written. The caller has checked that the connection is open.
 */
export function write (conn: BaseConnection, wire: string | Buffer, binary: boolean): boolean {
  const socket = conn.socket
  const raw = rawOf(socket)
  if (raw.writableNeedDrain ? overLimit(conn, socket, raw) : socket.bufferedAmount > conn.hub.settings.backpressure.limit) return refuse(conn)
  corkForTick(socket)
  socket.send(wire, binary ? BINARY : TEXT)
  const counters = conn.hub.counters
  counters.messagesOut++
  counters.bytesOut += typeof wire === 'string' ? Buffer.byteLength(wire) : wire.length
  if (raw.writableNeedDrain) rise(socket, raw)
  return true
}

/** {@link write} for a hub message, framed once for all its recipients. */
export function deliver (conn: BaseConnection, message: Outgoing): boolean {
  const socket = conn.socket
  const raw = rawOf(socket)
  if (raw.writableNeedDrain ? overLimit(conn, socket, raw) : socket.bufferedAmount > conn.hub.settings.backpressure.limit) return refuse(conn)
  corkForTick(socket)
  writeOutgoing(socket, message)
  const counters = conn.hub.counters
  counters.messagesOut++
  counters.bytesOut += message.payload.length
  if (raw.writableNeedDrain) rise(socket, raw)
  return true
}

/**
 * Whether a sender should wait for this connection's socket before its next write: it is high and not
 * stalled.
 */
export function isHigh (conn: BaseConnection): boolean {
  if (highs.size === 0) return false
  const high = highs.get(rawOf(conn.socket))
  return high !== undefined && !high.stalled
}

/**
 * Settles once the socket is below its high-water mark, has closed, or has stalled (at once when it is
 * not high). Never rejects: what the caller wrote was handed to the socket either way.
 */
export function paced (conn: BaseConnection): Promise<void> {
  const high = highs.get(rawOf(conn.socket))
  if (high === undefined || high.stalled) return RESOLVED
  if (high.paced === null) {
    high.paced = new Promise(resolve => { high.release = resolve })
    if (high.timer === null) arm(high)
  }
  return high.paced
}

// The last pacedAll() and the promises it waits on: the sends of a loop that does not await each find
// the same high members, and share one promise.
let lastAll: { parts: Array<Promise<void>>, all: Promise<void> } | null = null

/** Settles once every one of these connections has been {@link paced}. */
export function pacedAll (conns: BaseConnection[]): Promise<void> {
  if (conns.length === 1) return paced(conns[0]!)
  const last = lastAll
  if (last !== null && last.parts.length === conns.length && conns.every((conn, i) => paced(conn) === last.parts[i])) return last.all
  const parts = conns.map(paced)
  const all = Promise.all(parts).then(() => {
    if (lastAll?.all === all) lastAll = null
  })
  lastAll = { parts, all }
  return all
}

/** `send()` of a connection: writes, then paces (see {@link paced}). */
export function send (conn: BaseConnection, wire: string | Buffer, binary: boolean): Promise<void> {
  if (!write(conn, wire, binary)) {
    // Closed just now for backpressure ('close'): the message did not go out. Dropped ('drop'):
    // resolve, as delivery is at most once.
    return conn.closed ? Promise.reject(new WSHUB_ERR_CONNECTION_CLOSED(conn.id)) : RESOLVED
  }
  return isHigh(conn) ? paced(conn) : RESOLVED
}

/** `app.ws.send(id)` to a local connection: writes, then paces; resolves whether it was written. */
export function trySend (conn: BaseConnection, wire: string | Buffer): Promise<boolean> {
  if (!write(conn, wire, typeof wire !== 'string')) return FALSE
  if (!isHigh(conn)) return TRUE
  const high = highs.get(rawOf(conn.socket))!
  return (high.pacedTrue ??= paced(conn).then(() => true))
}

/**
 * Resolves when the socket can take more without buffering past its high-water mark (at once when it
 * can now); rejects with `WSHUB_ERR_CONNECTION_CLOSED` if it closes first (`conn.drain()`).
 */
export function drained (conn: BaseConnection): Promise<void> {
  const raw = rawOf(conn.socket)
  if (!raw.writableNeedDrain) return RESOLVED
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      conn.socket.off('close', onClose)
      resolve()
    }
    const onClose = (): void => {
      raw.off('drain', onDrain)
      reject(new WSHUB_ERR_CONNECTION_CLOSED(conn.id))
    }
    raw.once('drain', onDrain)
    conn.socket.once('close', onClose)
  })
}

// The socket has passed its high-water mark with this write.
function rise (socket: WebSocket, raw: Socket): void {
  // Corked for the tick: let the kernel have it now, so that the limit measures the peer, not us.
  if (raw.writableCorked !== 0) raw.uncork()
  let high = highs.get(raw)
  if (high === undefined) {
    high = { socket, writes: 0, stalled: false, mark: 0, timer: null, paced: null, pacedTrue: null, release: null }
    highs.set(raw, high)
    raw.on('drain', rawOnDrain)
    raw.on('close', rawOnDrain)
  }
  // Still past the mark after the flush: the kernel is not taking it, the write waits in our heap.
  if (raw.writableLength >= raw.writableHighWaterMark) high.writes++
}

// What a high socket holds for the peer, in bytes, counting the heap of each queued write.
function overLimit (conn: BaseConnection, socket: WebSocket, raw: Socket): boolean {
  const limit = conn.hub.settings.backpressure.limit
  const buffered = socket.bufferedAmount
  if (buffered > limit) return true
  const high = highs.get(raw)
  return high !== undefined && buffered + high.writes * MESSAGE_OVERHEAD > limit
}

// The socket's peer reads slower than we write: drop the message, or close with 1013 (the connection
// leaves its rooms at once, so the rest of a room keeps receiving at full speed) and stop reading
// from it.
function refuse (conn: BaseConnection): false {
  const counters = conn.hub.counters
  if (conn.hub.settings.backpressure.action === 'drop') {
    counters.dropped++
  } else {
    counters.closedForBackpressure++
    conn.log.warn({ bufferedAmount: conn.socket.bufferedAmount }, 'ws connection closed: backpressure limit reached')
    conn.close(CloseCode.TRY_AGAIN_LATER, 'Backpressure limit reached') // a valid code: resolves, never rejects
    stopReading(conn.socket)
  }
  return false
}

function arm (high: High): void {
  high.mark = high.socket.bufferedAmount
  high.timer = setTimeout(checkStall, STALL_MS, high)
}

// Waiters wait while the peer takes bytes; a socket that took none in STALL_MS stops pacing them.
function checkStall (high: High): void {
  high.timer = null
  if (high.socket.bufferedAmount < high.mark) {
    arm(high)
    return
  }
  high.stalled = true
  release(high)
}

function release (high: High): void {
  const resolve = high.release
  high.paced = null
  high.pacedTrue = null
  high.release = null
  if (resolve !== null) resolve()
}

function rawOnDrain (this: Socket): void {
  const high = highs.get(this)
  /* c8 ignore next -- both listeners go together with the entry */
  if (high === undefined) return
  highs.delete(this)
  this.off('drain', rawOnDrain)
  this.off('close', rawOnDrain)
  if (high.timer !== null) clearTimeout(high.timer)
  release(high)
}
