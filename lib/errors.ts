import createError from '@fastify/error'

// Every error this package raises, in one place (fastify keeps its own in lib/errors.js the same way).
// The key of each entry equals its code, and every code is listed in the README.

// -- registration and routes ------------------------------------------------------------------------

/** An option of `app.register(wsHub, options)` has the wrong type or value. */
export const WSHUB_ERR_INVALID_OPTION = createError<'WSHUB_ERR_INVALID_OPTION', 500, [string, string]>(
  'WSHUB_ERR_INVALID_OPTION', 'Invalid fastify-ws-hub option "%s": %s', 500, TypeError)

/** `wsRoute` was given something that is neither a function nor a class extending `WebSocketHandler`. */
export const WSHUB_ERR_INVALID_HANDLER = createError<'WSHUB_ERR_INVALID_HANDLER', 500, [string, string]>(
  'WSHUB_ERR_INVALID_HANDLER', 'Invalid handler for ws route "%s": %s', 500, TypeError)

/** A `WebSocketHandler` subclass was constructed by hand instead of by a ws route. */
export const WSHUB_ERR_HANDLER_CONSTRUCTED = createError(
  'WSHUB_ERR_HANDLER_CONSTRUCTED',
  'A WebSocketHandler is constructed by its ws route; pass the class to app.wsRoute() instead of calling new', 500, TypeError)

/**
 * `@fastify/websocket` was registered after fastify-ws-hub, which had registered it already. Register
 * it before the hub (the hub then reuses it), or leave it to the hub and pass its options as `websocket`.
 */
export const WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER = createError(
  'WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER',
  '@fastify/websocket was registered after fastify-ws-hub, which registers it itself: register @fastify/websocket before fastify-ws-hub (the hub reuses it), or leave it out and pass its options as the hub\'s "websocket" option', 500)

/** An option needs an optional package that is not installed (`metrics` needs `prom-client`). */
export const WSHUB_ERR_MISSING_PACKAGE = createError<'WSHUB_ERR_MISSING_PACKAGE', 500, [string, string]>(
  'WSHUB_ERR_MISSING_PACKAGE', 'The "%s" option needs the optional package %s, which is not installed: add it to your dependencies', 500)

// -- the connection -----------------------------------------------------------------------------------

/** A room name is not a non-empty string of at most 256 characters. */
export const WSHUB_ERR_INVALID_ROOM = createError<'WSHUB_ERR_INVALID_ROOM', 400, [string]>(
  'WSHUB_ERR_INVALID_ROOM', 'Invalid room name %s: a room is a non-empty string of at most 256 characters', 400, TypeError)

/** A connection is in `maxRoomsPerConnection` rooms already and tried to join another. */
export const WSHUB_ERR_TOO_MANY_ROOMS = createError<'WSHUB_ERR_TOO_MANY_ROOMS', 400, [string, string]>(
  'WSHUB_ERR_TOO_MANY_ROOMS', 'Connection %s is in %s rooms already (maxRoomsPerConnection)', 400, RangeError)

/** An operation needs an open connection, and this one has closed. */
export const WSHUB_ERR_CONNECTION_CLOSED = createError<'WSHUB_ERR_CONNECTION_CLOSED', 500, [string]>(
  'WSHUB_ERR_CONNECTION_CLOSED', 'Connection %s is closed', 500)

/** A class handler sent or joined a room before calling `accept()`. */
export const WSHUB_ERR_NOT_ACCEPTED = createError<'WSHUB_ERR_NOT_ACCEPTED', 500, [string]>(
  'WSHUB_ERR_NOT_ACCEPTED', 'Connection %s has not been accepted yet; call accept() first', 500)

/** `receiveText()` got a binary frame, or `receiveBytes()` a text frame. The message is consumed. */
export const WSHUB_ERR_UNEXPECTED_FRAME = createError<'WSHUB_ERR_UNEXPECTED_FRAME', 400, [string, string]>(
  'WSHUB_ERR_UNEXPECTED_FRAME', 'Expected a %s message but received a %s one', 400, TypeError)

/** `receiveJson()` got a message that does not parse as JSON. The message is consumed. */
export const WSHUB_ERR_INVALID_JSON = createError<'WSHUB_ERR_INVALID_JSON', 400, [string]>(
  'WSHUB_ERR_INVALID_JSON', 'Message is not valid JSON: %s', 400, SyntaxError)

/** `send()`/`sendJson()` got a value that JSON cannot represent (a cycle, a BigInt, `undefined`, a function). */
export const WSHUB_ERR_INVALID_PAYLOAD = createError<'WSHUB_ERR_INVALID_PAYLOAD', 500, [string]>(
  'WSHUB_ERR_INVALID_PAYLOAD', 'Cannot send this value: %s', 500, TypeError)

/** An argument of a hub or connection method has the wrong type or value (a presence key or meta, a history limit). */
export const WSHUB_ERR_INVALID_ARGUMENT = createError<'WSHUB_ERR_INVALID_ARGUMENT', 400, [string, string]>(
  'WSHUB_ERR_INVALID_ARGUMENT', 'Invalid %s: expected %s', 400, TypeError)

// -- the hub and its broker ---------------------------------------------------------------------------

/** The hub was used after `app.close()` shut its broker down. */
export const WSHUB_ERR_BROKER_CLOSED = createError(
  'WSHUB_ERR_BROKER_CLOSED', 'The hub is closed: the application is shutting down', 503)

/**
 * A call that needs another node's answer (`send`, `close`, `has`, `join`, `leave` of a remote id) got
 * no reply within `requestTimeout`: the owning node is unresponsive, or the reply was lost.
 */
export const WSHUB_ERR_REQUEST_TIMEOUT = createError<'WSHUB_ERR_REQUEST_TIMEOUT', 504, [string, string]>(
  'WSHUB_ERR_REQUEST_TIMEOUT', '%s got no reply from the owning node within %s ms', 504)

/**
 * Redis cannot be reached: at registration (within `requestTimeout`), or, later, for a call that needs
 * it (a remote id, cluster-wide presence). Local delivery does not need Redis and keeps working.
 */
export const WSHUB_ERR_REDIS_UNAVAILABLE = createError<'WSHUB_ERR_REDIS_UNAVAILABLE', 503, [string]>(
  'WSHUB_ERR_REDIS_UNAVAILABLE', 'Redis is not available: %s', 503)

/** A message between nodes could not be decoded (another program publishing on the hub's channels?). It is dropped. */
export const WSHUB_ERR_INVALID_ENVELOPE = createError<'WSHUB_ERR_INVALID_ENVELOPE', 500, [string]>(
  'WSHUB_ERR_INVALID_ENVELOPE', 'Malformed message between nodes: %s', 500)

// -- methods (JSON-RPC) -------------------------------------------------------------------------------

/** `conn.call()` or `app.ws.call()` got no response from the client within its timeout. */
export const WSHUB_ERR_RPC_TIMEOUT = createError<'WSHUB_ERR_RPC_TIMEOUT', 504, [string, string]>(
  'WSHUB_ERR_RPC_TIMEOUT', 'The client did not answer the call of "%s" within %s ms', 504)

/** `app.ws.call()` (or `notify`) for an id that no node holds. */
export const WSHUB_ERR_CONNECTION_NOT_FOUND = createError<'WSHUB_ERR_CONNECTION_NOT_FOUND', 404, [string]>(
  'WSHUB_ERR_CONNECTION_NOT_FOUND', 'No connection %s on any node', 404)

/** `call()` on a connection of a route without `methods`: nothing there reads the client's responses. */
export const WSHUB_ERR_RPC_UNAVAILABLE = createError<'WSHUB_ERR_RPC_UNAVAILABLE', 500, [string]>(
  'WSHUB_ERR_RPC_UNAVAILABLE', 'Connection %s is on a route without methods, which does not read JSON-RPC responses', 500)

/**
 * A JSON-RPC error: thrown by a method handler, it is sent to the client as it is (`{ code, message,
 * data }`); `conn.call()` and `app.ws.call()` reject with one carrying the client's error.
 */
export class RpcError extends Error {
  /** The JSON-RPC error code (an integer; -32768 to -32000 are the protocol's own). */
  readonly code: number
  /** The error's `data`, if any. */
  readonly data: unknown

  /**
   * @param code - the JSON-RPC error code
   * @param message - a short description
   * @param data - anything JSON can represent, sent as the error's `data`
   */
  constructor (code: number, message: string, data?: unknown) {
    super(message)
    this.name = 'RpcError'
    this.code = code
    this.data = data
  }
}

/**
 * WebSocket close codes used by the hub, by the reason that leads to them
 * (HTTP status codes stay on the errors; these are what the peer sees after the upgrade).
 */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013
})

/**
 * Rejects a pending or later `receive*()` once the connection has closed, carrying the close code and
 * reason (as Starlette's and Panther's `WebSocketDisconnect` do). It is a signal, not a failure: a handler
 * that lets it escape is not logged as an error. Its `code` is the numeric WebSocket close code, which is
 * why it is a plain `Error` rather than a coded `@fastify/error` like the rest.
 */
export class WebSocketDisconnect extends Error {
  /** The close code that ended the connection (1000, 1001, 1006, ...). */
  readonly code: number
  /** The close reason, or `''`. */
  readonly reason: string

  /**
   * @param code - the close code
   * @param reason - the close reason
   */
  constructor (code: number, reason = '') {
    super(`WebSocket closed with code ${code}${reason ? `: ${reason}` : ''}`)
    this.name = 'WebSocketDisconnect'
    this.code = code
    this.reason = reason
  }
}
