import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ResolvedOptions } from './options.js'

/**
 * The checks an upgrade request passes before the handshake, as a root `onRequest` hook that only looks
 * at WebSocket upgrades (`request.ws`, set by @fastify/websocket):
 *
 * - Origin: with `allowedOrigins`, a browser page from another origin gets HTTP 403, so it cannot open a
 *   socket that rides the user's cookies (cross-site WebSocket hijacking). A request without an Origin
 *   header (not a browser) passes a list; the function form decides for itself.
 * - Limits: past `maxConnections` on this node the upgrade gets 503; past `maxConnectionsPerIp` from one
 *   `request.ip`, 429. A slot is taken here and given back when the request's TCP socket closes, which
 *   covers an upgrade refused by a later hook as well as a WebSocket that closes later.
 */
export class UpgradeGuard {
  readonly #allowedOrigins: ResolvedOptions['allowedOrigins']
  readonly #maxConnections: number
  readonly #maxPerIp: number
  readonly #perIp = new Map<string, number>()
  #total = 0

  constructor (options: ResolvedOptions) {
    this.#allowedOrigins = options.allowedOrigins
    this.#maxConnections = options.maxConnections
    this.#maxPerIp = options.maxConnectionsPerIp
  }

  /** Whether any check is configured (otherwise the hook is not installed at all). */
  get active (): boolean {
    return this.#allowedOrigins !== undefined || this.#maxConnections !== Infinity || this.#maxPerIp !== Infinity
  }

  /** The `onRequest` hook. */
  onRequest = (request: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    if (!request.ws) return done()
    if (this.#allowedOrigins !== undefined && !this.#originAllowed(request.headers.origin)) {
      request.log.warn({ origin: request.headers.origin }, 'ws upgrade refused: origin not allowed')
      reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'Origin not allowed' })
      return
    }
    const socket = request.raw.socket
    // An injected upgrade (app.injectWS) has no TCP socket to count.
    if (socket === undefined) return done()
    if (this.#total >= this.#maxConnections) {
      request.log.warn({ limit: this.#maxConnections }, 'ws upgrade refused: maxConnections reached')
      reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'Too many connections' })
      return
    }
    const ip = request.ip
    const fromIp = this.#perIp.get(ip) ?? 0
    if (fromIp >= this.#maxPerIp) {
      request.log.warn({ limit: this.#maxPerIp }, 'ws upgrade refused: maxConnectionsPerIp reached')
      reply.code(429).send({ statusCode: 429, error: 'Too Many Requests', message: 'Too many connections from this address' })
      return
    }
    this.#total++
    this.#perIp.set(ip, fromIp + 1)
    socket.once('close', () => this.#release(ip))
    done()
  }

  #originAllowed (origin: string | undefined): boolean {
    const allowed = this.#allowedOrigins!
    if (typeof allowed === 'function') return allowed(origin) === true
    return origin === undefined || allowed.includes(origin)
  }

  #release (ip: string): void {
    this.#total--
    const left = this.#perIp.get(ip)! - 1
    if (left === 0) this.#perIp.delete(ip)
    else this.#perIp.set(ip, left)
  }
}
