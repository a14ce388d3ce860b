import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'

// What the peer does to a connection's socket, beyond messages: its close frame, a protocol error,
// and a peer the server stops listening to. ws's own receiver listeners are wrapped rather than joined
// by ours, so that a connection costs no extra listener.

type Listener = (this: Receiver, ...args: any[]) => void

interface Receiver {
  listeners (event: string): Listener[]
  removeListener (event: string, listener: Listener): void
  on (event: string, listener: Listener): void
  [key: symbol]: WebSocket
}

/** Told when the peer's close frame has arrived (the socket itself closes once the handshake is done). */
export type OnPeerClose = (socket: WebSocket, code: number, reason: Buffer) => void

// ws's listeners and its symbol for "the WebSocket of this receiver", taken from the first receiver.
let wsOnConclude: Listener | null = null
let wsOnError: Listener | null = null
let kWebSocket: symbol | undefined
let onPeerClose: OnPeerClose = () => {}

function receiverOf (socket: WebSocket): Receiver {
  return (socket as unknown as { _receiver: Receiver })._receiver
}

/**
 * Wraps ws's receiver listeners of one socket:
 *
 * - the peer's close frame: `onClose` is told at once, so that a peer that sent it and stops reading
 *   leaves the hub and its rooms now rather than when ws's close timeout ends the handshake;
 * - a protocol error (a bad frame, invalid UTF-8, a frame too large): ws closes the socket with its
 *   code once the promise jobs of the tick have run, so that a handler that awaits the messages that
 *   arrived before the bad frame in the same read may still answer them, as one that takes them
 *   synchronously does.
 */
export function watchPeer (socket: WebSocket, onClose: OnPeerClose): void {
  const receiver = receiverOf(socket)
  if (wsOnConclude === null) {
    wsOnConclude = receiver.listeners('conclude')[0]!
    wsOnError = receiver.listeners('error')[0]!
    kWebSocket = Object.getOwnPropertySymbols(receiver).find(symbol => receiver[symbol] === socket)
    onPeerClose = onClose
  }
  receiver.removeListener('conclude', wsOnConclude)
  receiver.on('conclude', receiverOnConclude)
  receiver.removeListener('error', wsOnError!)
  receiver.on('error', receiverOnError)
}

function receiverOnConclude (this: Receiver, code: number, reason: Buffer): void {
  wsOnConclude!.call(this, code, reason)
  onPeerClose(this[kWebSocket!]!, code, reason)
}

function receiverOnError (this: Receiver, err: Error): void {
  setImmediate(handOn, this, err)
}

function handOn (receiver: Receiver, err: Error): void {
  wsOnError!.call(receiver, err)
}

/**
 * Stops reading from a socket the server has just closed (for a flood, say): what the peer sends is
 * no longer parsed, and the TCP connection ends once the close frame has been written.
 */
export function stopReading (socket: WebSocket): void {
  socket.pause()
  const raw = (socket as unknown as { _socket: Socket & { destroySoon (): void } })._socket
  // The close frame is written when the sender is idle; otherwise it waits in ws's queue, which a
  // close of the TCP connection must not overtake (ws's close timeout then ends it).
  if ((socket as unknown as { _sender: { _state: number } })._sender._state === 0) raw.destroySoon()
}
