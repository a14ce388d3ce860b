import type { Socket } from 'node:net'
import type { WebSocket, WebSocketServer } from 'ws'
import { OPEN } from './constants.js'

// For each socket pinged, how many bytes it had read by then. A WeakMap: a socket that goes away needs
// no clean-up.
const readAtPing = new WeakMap<WebSocket, number>()

/**
 * One timer for all connections (not one per connection): every `interval` it terminates each socket
 * that has read nothing since the previous ping, its pong included, and pings the others. A terminated
 * socket closes with 1006, so its connection leaves its rooms and the hub and `disconnect()` runs.
 *
 * Liveness is read off the TCP socket's byte count rather than a `pong` listener on every socket: no
 * per-connection listener to add at every handshake, and any traffic from the peer counts.
 *
 * A socket whose reading is paused (its handler is behind) is skipped: what it sent cannot be read until
 * the handler catches up, which says nothing about the peer.
 */
export class Heartbeat {
  readonly #server: WebSocketServer
  readonly #timer: NodeJS.Timeout

  /**
   * @param server - the ws server whose clients to watch (needs `clientTracking`, the default)
   * @param interval - ms between pings
   */
  constructor (server: WebSocketServer, interval: number) {
    this.#server = server
    this.#timer = setInterval(() => this.#tick(), interval)
    this.#timer.unref()
  }

  /** Stops the timer. */
  stop (): void {
    clearInterval(this.#timer)
  }

  #tick (): void {
    const clients = this.#server.clients
    /* c8 ignore next -- without ws's clientTracking there are no clients to watch */
    if (clients === undefined) return
    for (const socket of clients) {
      if (socket.readyState !== OPEN || socket.isPaused) continue
      const read = (socket as unknown as { _socket: Socket })._socket.bytesRead
      if (readAtPing.get(socket) === read) {
        socket.terminate()
        continue
      }
      readAtPing.set(socket, read)
      socket.ping()
    }
  }
}
