import * as ws from 'ws'
import { WSHUB_ERR_INVALID_PAYLOAD } from './errors.js'

/** What `send()` accepts: text, bytes, or any value JSON can represent. */
export type SendData = string | Buffer | ArrayBuffer | ArrayBufferView | unknown

/**
 * A message serialized for the wire: its bytes and whether they go out as a binary frame. A hub
 * message is serialized once and then framed once (`frame`, built on first delivery), however many
 * sockets it reaches.
 */
export interface Outgoing {
  binary: boolean
  payload: Buffer
  frame?: Buffer[]
  /** A message of one room's history: the room (for the hand-over after a reconnect). */
  room?: string
  /** A message of one room's history: its offset. */
  offset?: string
}

/**
 * Turns `send()`'s argument into a string or bytes: a string goes out as text; a Buffer, ArrayBuffer
 * or typed array as binary; anything else as JSON text.
 * @throws WSHUB_ERR_INVALID_PAYLOAD when JSON cannot represent the value
 */
export function toWire (data: unknown): string | Buffer {
  if (typeof data === 'string' || Buffer.isBuffer(data)) return data
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return toJson(data)
}

/**
 * JSON text of a value.
 * @throws WSHUB_ERR_INVALID_PAYLOAD when JSON cannot represent it (a cycle, a BigInt, `undefined`, a function)
 */
export function toJson (value: unknown): string {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (cause) {
    const err = new WSHUB_ERR_INVALID_PAYLOAD((cause as Error).message)
    err.cause = cause
    throw err
  }
  if (text === undefined) throw new WSHUB_ERR_INVALID_PAYLOAD(`JSON has no representation for ${typeof value}`)
  return text
}

/** Serializes a hub message once, for any number of sockets. */
export function serialize (data: unknown): Outgoing {
  const wire = toWire(data)
  return typeof wire === 'string'
    ? { binary: false, payload: Buffer.from(wire) }
    : { binary: true, payload: wire }
}

const TEXT_FRAME = { fin: true, rsv1: false, opcode: 0x01, mask: false, readOnly: false }
const BINARY_FRAME = { fin: true, rsv1: false, opcode: 0x02, mask: false, readOnly: false }

/**
 * ws's frame builder: exported by ws as `Sender` (`Sender.frame`), though @types/ws does not declare it.
 * Taken from the module's named exports, which its ESM entry has whether or not anything has required the
 * CommonJS entry (which is what attaches `WebSocket.Sender`).
 */
const Sender = (ws as unknown as { Sender: { frame (data: Buffer, options: object): Buffer[] } }).Sender

/** The ws sender internals that writing a pre-built frame relies on (engine.io does the same). */
interface SenderInternals {
  _state: number
  _firstFragment: boolean
  sendFrame (list: Buffer[], cb?: () => void): void
}

/**
 * Writes a hub message to one socket, framing it once for all sockets: the first call builds the
 * frame header, and every socket gets the same header and payload buffers. A server frame is not
 * masked, so the bytes are the same for every peer (socket.io does this with `wsPreEncodedFrame`).
 *
 * When the socket's sender is busy (compressing, or in the middle of a fragmented message) the
 * message goes through `socket.send()` instead, so that it cannot overtake what is queued there.
 */
export function writeOutgoing (socket: ws.WebSocket, message: Outgoing): void {
  const sender = (socket as unknown as { _sender: SenderInternals })._sender
  if (sender._state === 0 && sender._firstFragment) {
    message.frame ??= Sender.frame(message.payload, message.binary ? BINARY_FRAME : TEXT_FRAME)
    sender.sendFrame(message.frame)
  } else {
    socket.send(message.payload, { binary: message.binary })
  }
}
