import type { WebSocket, WebSocketServer } from 'ws'
import { OPEN } from './constants.js'

// Sockets pinged and not yet answered. A WeakSet: a socket that goes away needs no clean-up.
const awaitingPong = new WeakSet<WebSocket>()

function socketOnPong (this: WebSocket): void {
  awaitingPong.delete(this)
}

/**
 * One timer for all connections (not one per connection): every `interval` it terminates each socket
 * that has not answered the previous ping and pings the others. A terminated socket closes with 1006,
 * so its connection leaves its rooms and the hub and `disconnect()` runs.
 *
 * A socket whose reading is paused (its handler is behind) is skipped: its pong cannot be read until
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
    server.on('connection', serverOnConnection)
    this.#timer = setInterval(() => this.#tick(), interval)
    this.#timer.unref()
  }

  /** Stops the timer. */
  stop (): void {
    clearInterval(this.#timer)
    this.#server.off('connection', serverOnConnection)
  }

  #tick (): void {
    const clients = this.#server.clients
    /* c8 ignore next -- without ws's clientTracking there are no clients to watch */
    if (clients === undefined) return
    for (const socket of clients) {
      if (socket.readyState !== OPEN || socket.isPaused) continue
      if (awaitingPong.has(socket)) {
        socket.terminate()
        continue
      }
      awaitingPong.add(socket)
      socket.ping()
    }
  }
}

function serverOnConnection (socket: WebSocket): void {
  socket.on('pong', socketOnPong)
}
