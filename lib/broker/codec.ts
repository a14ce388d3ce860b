import { WSHUB_ERR_INVALID_ENVELOPE } from '../errors.js'
import type { BroadcastEnvelope, Envelope, EventEnvelope, ReplyEnvelope, RequestEnvelope, RequestOp } from './broker.js'

// The wire format of envelopes between nodes: a short binary header, then the message bytes as they
// are, so a Buffer sent to a room arrives as the same bytes and nothing is escaped or base64-encoded.
// A broadcast is encoded once and published once, however many members it reaches. Integers are
// big-endian; strings are UTF-8 with a length before them.
//
//   0  u8   format version (2)
//   1  u8   kind: 1 rooms, 2 all, 3 request, 4 reply, 5 batch, 6 event; | 0x10 binary payload;
//           | 0x20 except list follows; | 0x40 offset follows the origin
//   2  u8   origin length, then the origin node id
//   offset:   u8 length + bytes, right after the origin (rooms, all), so that a Redis script that
//             learns the offset (a stream entry id) can insert it between the head and the rest
//   rooms:    u32 count, then each room as u16 length + bytes
//   except:   u32 count, then each id as u16 length + bytes
//   request:  u32 seq, f64 deadline (ms since the epoch, 0: none), u8 op (1 send, 2 close, 3 join,
//             4 leave, 5 has, 6 call), u16 length + target id;
//             join / leave: u16 length + room; close: u16 code, u8 length + reason
//   reply:    u32 seq, u8 result (0 or 1)
//   event:    u16 length + topic, u16 length + room
//   the rest: the payload (rooms, all, send, call, reply, event)
//   batch:    (no origin) u32 count, then each envelope as u32 length + its encoding: several envelopes
//             published on one channel in one turn of the event loop travel as one Redis message
//
// A room message to one room from a node costs 2 + 1 + 8 + 4 + 2 + room bytes of header.

/** The format version in the first byte; a decoder drops what it does not know. */
export const FORMAT_VERSION = 2

const KIND_ROOMS = 1
const KIND_ALL = 2
const KIND_REQUEST = 3
const KIND_REPLY = 4
const KIND_BATCH = 5
const KIND_EVENT = 6
const FLAG_BINARY = 0x10
const FLAG_EXCEPT = 0x20
const FLAG_OFFSET = 0x40

const OPS: readonly RequestOp[] = ['send', 'close', 'join', 'leave', 'has', 'call']
const OP_CODES: Record<RequestOp, number> = { send: 1, close: 2, join: 3, leave: 4, has: 5, call: 6 }
const MAX_U16 = 0xffff
const EMPTY = Buffer.alloc(0)

/**
 * Encodes an envelope for the wire.
 * @throws WSHUB_ERR_INVALID_ENVELOPE for a field too long for its length prefix (an origin, an offset or
 * a close reason over 255 bytes, a room, topic or target id over 65 535 bytes)
 */
export function encode (envelope: Envelope): Buffer {
  const originLength = byteLength(envelope.origin, 0xff, 'origin')
  let size = 3 + originLength
  let kind: number
  let payload: Buffer = EMPTY
  let except: string[] | null = null
  let exceptLengths: number[] | null = null
  let roomLengths: number[] | null = null
  let extra = 0
  let extra2 = 0

  switch (envelope.type) {
    case 'rooms':
    case 'all': {
      kind = envelope.type === 'rooms' ? KIND_ROOMS : KIND_ALL
      if (envelope.binary) kind |= FLAG_BINARY
      payload = envelope.payload
      if (envelope.offset !== undefined) {
        kind |= FLAG_OFFSET
        extra = byteLength(envelope.offset, 0xff, 'offset')
        size += 1 + extra
      }
      if (envelope.type === 'rooms') {
        const rooms = envelope.rooms ?? []
        roomLengths = rooms.map(room => byteLength(room, MAX_U16, 'room'))
        size += 4
        for (const length of roomLengths) size += 2 + length
      }
      if (envelope.except !== undefined) {
        kind |= FLAG_EXCEPT
        // An id longer than a length prefix holds cannot be a connection id: leaving it out changes nothing.
        except = envelope.except.filter(id => typeof id === 'string' && Buffer.byteLength(id) <= MAX_U16)
        exceptLengths = except.map(id => Buffer.byteLength(id))
        size += 4
        for (const length of exceptLengths) size += 2 + length
      }
      break
    }
    case 'request': {
      kind = KIND_REQUEST
      size += 4 + 8 + 1 + 2 + byteLength(envelope.target, MAX_U16, 'target')
      switch (envelope.op) {
        case 'join':
        case 'leave':
          extra = byteLength(envelope.room ?? '', MAX_U16, 'room')
          size += 2 + extra
          break
        case 'close':
          extra = byteLength(envelope.reason ?? '', 0xff, 'reason')
          size += 2 + 1 + extra
          break
        case 'send':
          if (envelope.binary === true) kind |= FLAG_BINARY
          payload = envelope.payload ?? EMPTY
          break
        case 'call':
          payload = envelope.payload ?? EMPTY
          break
      }
      break
    }
    case 'reply':
      kind = KIND_REPLY
      size += 4 + 1
      payload = envelope.payload ?? EMPTY
      break
    case 'event':
      kind = KIND_EVENT
      extra = byteLength(envelope.topic, MAX_U16, 'topic')
      extra2 = byteLength(envelope.room, MAX_U16, 'room')
      size += 2 + extra + 2 + extra2
      payload = envelope.payload
      break
  }

  const buffer = Buffer.allocUnsafe(size + payload.length)
  buffer[0] = FORMAT_VERSION
  buffer[1] = kind
  buffer[2] = originLength
  let offset = 3 + buffer.write(envelope.origin, 3)

  switch (envelope.type) {
    case 'rooms':
    case 'all':
      if (envelope.offset !== undefined) offset = writeString(buffer, offset, envelope.offset, extra, 1)
      if (envelope.type === 'rooms') {
        const rooms = envelope.rooms ?? []
        offset = buffer.writeUInt32BE(rooms.length, offset)
        for (let i = 0; i < rooms.length; i++) offset = writeString(buffer, offset, rooms[i]!, roomLengths![i]!, 2)
      }
      if (except !== null) {
        offset = buffer.writeUInt32BE(except.length, offset)
        for (let i = 0; i < except.length; i++) offset = writeString(buffer, offset, except[i]!, exceptLengths![i]!, 2)
      }
      break
    case 'request':
      offset = buffer.writeUInt32BE(envelope.seq, offset)
      offset = buffer.writeDoubleBE(envelope.deadline ?? 0, offset)
      buffer[offset++] = OP_CODES[envelope.op]
      offset = writeString(buffer, offset, envelope.target, Buffer.byteLength(envelope.target), 2)
      if (envelope.op === 'join' || envelope.op === 'leave') {
        offset = writeString(buffer, offset, envelope.room ?? '', extra, 2)
      } else if (envelope.op === 'close') {
        offset = buffer.writeUInt16BE(envelope.code ?? 1000, offset)
        offset = writeString(buffer, offset, envelope.reason ?? '', extra, 1)
      }
      break
    case 'reply':
      offset = buffer.writeUInt32BE(envelope.seq, offset)
      buffer[offset++] = envelope.result ? 1 : 0
      break
    case 'event':
      offset = writeString(buffer, offset, envelope.topic, extra, 2)
      offset = writeString(buffer, offset, envelope.room, extra2, 2)
      break
  }
  payload.copy(buffer, offset)
  return buffer
}

/** Packs encoded envelopes into one message, which {@link decodeMessage} unpacks in order. */
export function encodeBatch (encoded: readonly Buffer[]): Buffer {
  let size = 2 + 4
  for (const part of encoded) size += 4 + part.length
  const buffer = Buffer.allocUnsafe(size)
  buffer[0] = FORMAT_VERSION
  buffer[1] = KIND_BATCH
  let offset = buffer.writeUInt32BE(encoded.length, 2)
  for (const part of encoded) {
    offset = buffer.writeUInt32BE(part.length, offset)
    offset += part.copy(buffer, offset)
  }
  return buffer
}

/**
 * Decodes a message: one envelope, or a batch of them, in order.
 * @throws WSHUB_ERR_INVALID_ENVELOPE for bytes that are not a message of this format version
 */
export function decodeMessage (buffer: Buffer): Envelope[] {
  if (buffer.length < 2 || buffer[0] !== FORMAT_VERSION || buffer[1] !== KIND_BATCH) return [decode(buffer)]
  const reader = new Reader(buffer, 2)
  const count = reader.u32()
  // Each envelope takes at least 4 + 3 bytes: a count beyond that is garbage, not a huge array.
  if (count * 7 > buffer.length) throw new WSHUB_ERR_INVALID_ENVELOPE('truncated')
  const envelopes = new Array<Envelope>(count)
  for (let i = 0; i < count; i++) {
    const length = reader.u32()
    const at = reader.skip(length)
    envelopes[i] = decode(buffer.subarray(at, at + length))
  }
  reader.end()
  return envelopes
}

/**
 * Decodes an envelope. The payload is a view into `buffer`, not a copy.
 * @throws WSHUB_ERR_INVALID_ENVELOPE for bytes that are not an envelope of this format version
 */
export function decode (buffer: Buffer): Envelope {
  if (buffer.length < 3) throw new WSHUB_ERR_INVALID_ENVELOPE(`${buffer.length} bytes is too short`)
  if (buffer[0] !== FORMAT_VERSION) throw new WSHUB_ERR_INVALID_ENVELOPE(`unknown format version ${buffer[0]}`)
  const reader = new Reader(buffer, 2)
  const flags = buffer[1]!
  const kind = flags & 0x0f
  const origin = reader.string(1)
  const binary = (flags & FLAG_BINARY) !== 0

  switch (kind) {
    case KIND_ROOMS:
    case KIND_ALL: {
      const offset = (flags & FLAG_OFFSET) !== 0 ? reader.string(1) : undefined
      const envelope: BroadcastEnvelope = kind === KIND_ROOMS
        ? { origin, type: 'rooms', rooms: reader.strings(), binary, payload: EMPTY }
        : { origin, type: 'all', binary, payload: EMPTY }
      if (offset !== undefined) envelope.offset = offset
      if ((flags & FLAG_EXCEPT) !== 0) envelope.except = reader.strings()
      envelope.payload = reader.rest()
      return envelope
    }
    case KIND_REQUEST: {
      const seq = reader.u32()
      const deadline = reader.f64()
      const op = OPS[reader.u8() - 1]
      if (op === undefined) throw new WSHUB_ERR_INVALID_ENVELOPE('unknown request operation')
      const envelope: RequestEnvelope = { origin, type: 'request', seq, op, target: reader.string(2) }
      if (deadline !== 0) envelope.deadline = deadline
      if (op === 'join' || op === 'leave') {
        envelope.room = reader.string(2)
      } else if (op === 'close') {
        envelope.code = reader.u16()
        envelope.reason = reader.string(1)
      } else if (op === 'send') {
        envelope.binary = binary
        envelope.payload = reader.rest()
      } else if (op === 'call') {
        envelope.payload = reader.rest()
      }
      reader.end()
      return envelope
    }
    case KIND_REPLY: {
      const envelope: ReplyEnvelope = { origin, type: 'reply', seq: reader.u32(), result: reader.u8() === 1 }
      const payload = reader.rest()
      if (payload.length > 0) envelope.payload = payload
      return envelope
    }
    case KIND_EVENT: {
      const envelope: EventEnvelope = { origin, type: 'event', topic: reader.string(2), room: reader.string(2), payload: EMPTY }
      envelope.payload = reader.rest()
      return envelope
    }
    default:
      throw new WSHUB_ERR_INVALID_ENVELOPE(`unknown kind ${kind}`)
  }
}

function byteLength (value: string, max: number, what: string): number {
  const length = Buffer.byteLength(value)
  if (length > max) throw new WSHUB_ERR_INVALID_ENVELOPE(`${what} of ${length} bytes is longer than ${max}`)
  return length
}

function writeString (buffer: Buffer, offset: number, value: string, length: number, prefix: 1 | 2): number {
  offset = prefix === 1 ? buffer.writeUInt8(length, offset) : buffer.writeUInt16BE(length, offset)
  return offset + buffer.write(value, offset)
}

/** Reads the fields of an envelope in order, failing with WSHUB_ERR_INVALID_ENVELOPE past the end. */
class Reader {
  readonly #buffer: Buffer
  #offset: number

  constructor (buffer: Buffer, offset: number) {
    this.#buffer = buffer
    this.#offset = offset
  }

  #need (bytes: number): number {
    const at = this.#offset
    if (at + bytes > this.#buffer.length) throw new WSHUB_ERR_INVALID_ENVELOPE('truncated')
    this.#offset = at + bytes
    return at
  }

  skip (bytes: number): number {
    return this.#need(bytes)
  }

  u8 (): number {
    return this.#buffer[this.#need(1)]!
  }

  u16 (): number {
    return this.#buffer.readUInt16BE(this.#need(2))
  }

  u32 (): number {
    return this.#buffer.readUInt32BE(this.#need(4))
  }

  f64 (): number {
    return this.#buffer.readDoubleBE(this.#need(8))
  }

  string (prefix: 1 | 2): string {
    const length = prefix === 1 ? this.u8() : this.u16()
    const at = this.#need(length)
    return this.#buffer.toString('utf8', at, at + length)
  }

  strings (): string[] {
    const count = this.u32()
    // Each string takes at least its 2-byte length: a count beyond that is garbage, not a huge array.
    if (count * 2 > this.#buffer.length - this.#offset) throw new WSHUB_ERR_INVALID_ENVELOPE('truncated')
    const list = new Array<string>(count)
    for (let i = 0; i < count; i++) list[i] = this.string(2)
    return list
  }

  rest (): Buffer {
    const at = this.#offset
    this.#offset = this.#buffer.length
    return this.#buffer.subarray(at)
  }

  end (): void {
    if (this.#offset !== this.#buffer.length) throw new WSHUB_ERR_INVALID_ENVELOPE('trailing bytes')
  }
}
