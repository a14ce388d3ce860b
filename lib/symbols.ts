// Every private symbol of the package, in one place (as fastify's lib/symbols.js).
// They key the members that the hub and the route wiring call on a connection and that are not public API.

/** Sets the connection up; called once, right after construction, by the route that owns it. */
export const kInit = Symbol('fastify-ws-hub.init')
/** Writes an already serialized (and maybe already framed) hub message to this connection. */
export const kDeliver = Symbol('fastify-ws-hub.deliver')
/** Starts delivering messages to a class handler's `receive()` after `connect()`. */
export const kStartDispatch = Symbol('fastify-ws-hub.startDispatch')
/** Tells a connection that its function handler has returned. */
export const kHandlerReturned = Symbol('fastify-ws-hub.handlerReturned')
/** Runs the class handler's `disconnect()` callback (no-op on a function handler's connection). */
export const kOnDisconnect = Symbol('fastify-ws-hub.onDisconnect')
/** The connection's socket close promise, settled when the socket has fully closed. */
export const kSocketClosed = Symbol('fastify-ws-hub.socketClosed')
/** Takes the next message of either kind from the connection's receive queue. */
export const kNext = Symbol('fastify-ws-hub.next')
/** Ends a connection whose handler threw: logs the error and closes with 1011. */
export const kFail = Symbol('fastify-ws-hub.fail')
/** Sends to a connection and says whether it was written (false: closed, or dropped for backpressure). */
export const kTrySend = Symbol('fastify-ws-hub.trySend')
/** Handles a message from the connection's socket. */
export const kOnMessage = Symbol('fastify-ws-hub.onMessage')
/** Handles the close of the connection's socket. */
export const kOnSocketClose = Symbol('fastify-ws-hub.onSocketClose')
/** Takes the next message from the connection's receive queue as an async iterator's result. */
export const kNextResult = Symbol('fastify-ws-hub.nextResult')
/** Gives a connection the stage its incoming messages go through first (message hooks, methods). */
export const kSetIntake = Symbol('fastify-ws-hub.setIntake')
/** Hands a message that went through the intake on to the connection's own reading (inbox or dispatch). */
export const kReceive = Symbol('fastify-ws-hub.receive')
/** A connection's hand-over from history replay to live delivery, per room (created on first use). */
export const kRecovery = Symbol('fastify-ws-hub.recovery')
/** Handles the peer's close frame, before the socket has closed. */
export const kOnPeerClose = Symbol('fastify-ws-hub.onPeerClose')
