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

function flushAfterPromiseJobs (): void {
  process.nextTick(flush)
}

/**
 * Holds a socket's writes until the end of the current tick, so that a burst of messages to one socket
 * (the replies to the frames of one TCP read, or several room messages sent in a row) leaves in one
 * `writev` instead of one system call per message. ws corks and uncorks around each frame itself; its
 * uncork only flushes once ours is undone too. Costs a flag check per write after the first.
 *
 * The flush is a `process.nextTick` queued from a promise job: Node runs the ticks queued by a promise
 * job once the promise jobs of the tick have drained, so the writes of handlers that await (a class
 * handler's next `receive()`, the next turn of a `for await` loop) leave with the first one. A tick
 * queued at once would not wait for them when the first write is made straight from a socket's
 * 'message' event: Node runs the ticks an I/O callback queued before its promise jobs.
 */
export function corkForTick (socket: WebSocket): void {
  const raw = (socket as unknown as { _socket: Socket })._socket
  if (raw.writableCorked !== 0) return
  raw.cork()
  corked.push(raw)
  if (!scheduled) {
    scheduled = true
    queueMicrotask(flushAfterPromiseJobs)
  }
}
