import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'

// Sockets corked during this tick, uncorked together once it ends.
const corked: Socket[] = []
let scheduled = false

/** Uncorks every socket corked this tick now (a long room delivery does, between its slices). */
export function flush (): void {
  scheduled = false
  for (let i = 0; i < corked.length; i++) corked[i]!.uncork()
  corked.length = 0
}

/**
 * Holds a socket's writes until the end of the current tick, so that a burst of messages to one socket
 * (the replies to the frames of one TCP read, or several room messages sent in a row) leaves in one
 * `writev` instead of one system call per message. ws corks and uncorks around each frame itself; its
 * uncork only flushes once ours is undone too. Costs a flag check per write after the first.
 *
 * The flush runs on `process.nextTick`, which Node runs after the promise jobs of the tick have drained,
 * so writes made by awaiting handlers in the same tick are coalesced as well.
 */
export function corkForTick (socket: WebSocket): void {
  const raw = (socket as unknown as { _socket: Socket })._socket
  if (raw.writableCorked !== 0) return
  raw.cork()
  corked.push(raw)
  if (!scheduled) {
    scheduled = true
    process.nextTick(flush)
  }
}
