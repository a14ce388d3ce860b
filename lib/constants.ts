// Values shared across modules (as ws's lib/constants.js).

/** The longest room name accepted, in characters (a room is a non-empty string of at most 256 UTF-16 code units). */
export const MAX_ROOM_LENGTH = 256

/**
 * A connection's receive queue pauses reading from its socket when it holds this many messages or
 * bytes, and resumes when it has drained below half of both. A slow handler therefore holds at most
 * about this much (plus what the socket had already read) instead of queueing without bound.
 */
export const INBOX_HIGH_WATER_MESSAGES = 256
export const INBOX_HIGH_WATER_BYTES = 1_048_576

/** How long `app.close()` waits for close handshakes before it terminates the sockets left. */
export const DEFAULT_CLOSE_TIMEOUT = 5_000

/** WebSocket readyState values (as ws exports them), kept here so hot paths need no property look-up. */
export const OPEN = 1

/** Defaults of the registration options. */
export const DEFAULTS = Object.freeze({
  maxPayload: 1_048_576,
  heartbeatInterval: 30_000,
  backpressureLimit: 4_194_304,
  backpressureAction: 'close',
  keyPrefix: 'wshub:',
  nodeTtl: 15_000,
  requestTimeout: 5_000,
  rateLimitWindow: 1_000,
  historySize: 100,
  historyTtl: 300_000,
  maxRoomsPerConnection: 10_000
} as const)

/** How many connections `app.close()` closes before it yields to the event loop. */
export const CLOSE_BATCH = 256

/**
 * About the least heap one write costs while it waits in a socket's buffer, beyond its bytes (Node's write request,
 * ws's frame header): counted against the backpressure limit, so that tiny messages are bounded too.
 */
export const MESSAGE_OVERHEAD = 128

/** A socket over its high-water mark that took nothing for this many ms stops pacing its senders. */
export const STALL_MS = 500

/** A room delivery yields to the event loop after about this many ms, and goes on in the next turn. */
export const FANOUT_SLICE_MS = 10

/** How many members a room delivery writes to between two reads of the clock. */
export const FANOUT_CHECK_EVERY = 64

/** A room delivery to more members than this flushes its writes as it goes, within its slices. */
export const FANOUT_LARGE = 1024
