import type { RouteGenericInterface } from 'fastify'
import { BaseConnection, type Message, type ParamsOf } from './connection.js'
import { kOnDisconnect } from './symbols.js'

/**
 * The base of class handlers (Panther style). `this` is the connection, with every member of the
 * connection; override any of the three callbacks, each a no-op by default:
 *
 * - `connect(params)` runs first, with the route's path parameters. The connection is accepted only
 *   by `this.accept()`; if `connect()` ends without it, the socket is closed with 1008. Messages that
 *   arrive before `accept()` are held and delivered after it, in order. Without an override the
 *   connection is accepted at once.
 * - `receive(data)` runs for each message (`string` for text, `Buffer` for binary), one at a time in
 *   arrival order: the next call waits for the previous one's promise. While it is busy, messages queue,
 *   and reading from the socket pauses when the queue is full.
 * - `disconnect(code, reason)` runs once for every accepted connection after it closed, whoever
 *   closed it, with the close code that ended it. The connection has left its rooms and the hub by then.
 *
 * A callback that throws closes the connection with 1011 and logs the error; the server keeps serving.
 *
 * @example
 * class BookSocket extends WebSocketHandler<{ Params: { id: string }, Querystring: { token?: string } }> {
 *   async connect (params: { id: string }) { if (this.query.token) await this.accept() }
 *   async receive (data: string | Buffer) { await this.send(data) }
 * }
 * app.wsRoute('/ws/book/:id', BookSocket)
 */
export class WebSocketHandler<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> extends BaseConnection<RouteGeneric> {
  /**
   * Decides whether to accept the connection (call `this.accept()`).
   * @param params - the route's path parameters
   */
  connect (_params: ParamsOf<RouteGeneric>): void | Promise<void> {
    return this.accept()
  }

  /**
   * Handles one message.
   * @param data - a `string` for a text frame, a `Buffer` for a binary one
   */
  receive (_data: Message): void | Promise<void> {}

  /**
   * Runs once after an accepted connection closed.
   * @param code - the close code that ended the connection
   * @param reason - the close reason, or `''`
   */
  disconnect (_code: number, _reason: string): void | Promise<void> {}

  /** @internal */
  override [kOnDisconnect] (code: number, reason: string): void {
    let result: void | Promise<void>
    try {
      result = this.disconnect(code, reason)
    } catch (err) {
      this.log.error({ err }, 'ws disconnect() failed')
      return
    }
    if (result instanceof Promise) {
      this.hub.trackDisconnect(result.catch(err => this.log.error({ err }, 'ws disconnect() failed')))
    }
  }
}

/** A class that extends `WebSocketHandler`, as `wsRoute` takes it. */
export type WebSocketHandlerClass<RouteGeneric extends RouteGenericInterface = RouteGenericInterface> =
  new () => WebSocketHandler<RouteGeneric>

/** Whether `value` is a class that extends `WebSocketHandler`. */
export function isHandlerClass (value: unknown): value is WebSocketHandlerClass {
  return typeof value === 'function' && value.prototype instanceof WebSocketHandler
}
