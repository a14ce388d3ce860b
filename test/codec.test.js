// The wire format between nodes (lib/broker/codec.ts): compact, binary-safe, and strict when decoding.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decode, decodeMessage, encode, encodeBatch, FORMAT_VERSION } from '../dist/lib/broker/codec.js'
import { WSHUB_ERR_INVALID_ENVELOPE } from '../dist/lib/errors.js'

test('a room message carries a small header and then the payload bytes unchanged', () => {
  const payload = Buffer.from('{"text":"hello"}')
  const wire = encode({ origin: 'AbCdEfGh', type: 'rooms', rooms: ['lobby'], binary: false, payload })
  // version, kind, origin length + 8, room count (4), room length (2) + 5
  assert.equal(wire.length, 2 + 1 + 8 + 4 + 2 + 5 + payload.length)
  assert.equal(wire[0], FORMAT_VERSION)
  assert.ok(wire.subarray(wire.length - payload.length).equals(payload), 'the payload is not re-encoded')
})

test('decoding hands out the payload as a view of the message, without a copy', () => {
  const wire = encode({ origin: 'n', type: 'all', binary: true, payload: Buffer.from([1, 2, 3]) })
  const envelope = decode(wire)
  assert.equal(envelope.payload.buffer, wire.buffer)
  assert.deepEqual([...envelope.payload], [1, 2, 3])
  assert.equal(envelope.binary, true)
})

test('except ids that cannot be connection ids are left out when encoding', () => {
  const long = 'x'.repeat(70_000)
  const envelope = decode(encode({ origin: 'n', type: 'all', except: ['n.a', long, 7, 'n.b'], binary: false, payload: Buffer.alloc(0) }))
  assert.deepEqual(envelope.except, ['n.a', 'n.b'])
})

test('a field too long for its length prefix fails to encode with WSHUB_ERR_INVALID_ENVELOPE', () => {
  assert.throws(() => encode({ origin: 'o'.repeat(256), type: 'all', binary: false, payload: Buffer.alloc(0) }),
    { code: 'WSHUB_ERR_INVALID_ENVELOPE', message: 'Malformed message between nodes: origin of 256 bytes is longer than 255' })
  assert.throws(() => encode({ origin: 'n', type: 'request', seq: 1, op: 'close', target: 'n.a', code: 1000, reason: 'é'.repeat(128) }),
    { code: 'WSHUB_ERR_INVALID_ENVELOPE', message: /reason of 256 bytes/ })
})

test('a request without its optional fields gets their defaults', () => {
  assert.deepEqual(decode(encode({ origin: 'n', type: 'request', seq: 3, op: 'close', target: 'm.a' })),
    { origin: 'n', type: 'request', seq: 3, op: 'close', target: 'm.a', code: 1000, reason: '' })
  assert.deepEqual(decode(encode({ origin: 'n', type: 'request', seq: 3, op: 'join', target: 'm.a' })),
    { origin: 'n', type: 'request', seq: 3, op: 'join', target: 'm.a', room: '' })
  const send = decode(encode({ origin: 'n', type: 'request', seq: 3, op: 'send', target: 'm.a' }))
  assert.equal(send.binary, false)
  assert.equal(send.payload.length, 0)
  assert.deepEqual(decode(encode({ origin: 'n', type: 'rooms', binary: false, payload: Buffer.alloc(0) })).rooms, [])
})

test('bytes that are not an envelope fail to decode with WSHUB_ERR_INVALID_ENVELOPE', () => {
  const good = encode({ origin: 'node', type: 'rooms', rooms: ['r'], except: ['a'], binary: false, payload: Buffer.from('x') })
  const reply = encode({ origin: 'node', type: 'reply', seq: 1, result: true })
  const request = encode({ origin: 'node', type: 'request', seq: 1, op: 'has', target: 'n.a' })
  const cases = {
    'too short': [Buffer.from([1, 1]), /2 bytes is too short/],
    'another version': [Buffer.concat([Buffer.from([9]), good.subarray(1)]), /unknown format version 9/],
    'an unknown kind': [Buffer.concat([good.subarray(0, 1), Buffer.from([7]), good.subarray(2)]), /unknown kind 7/],
    'a truncated origin': [good.subarray(0, 5), /truncated/],
    'a room count beyond the message': [Buffer.concat([good.subarray(0, 7), Buffer.from([0xff, 0xff, 0xff, 0xff])]), /truncated/],
    'a truncated room': [good.subarray(0, 13), /truncated/],
    'a request with trailing bytes': [Buffer.concat([request, Buffer.from([0])]), /trailing bytes/],
    'a truncated reply': [reply.subarray(0, reply.length - 1), /truncated/],
    'a truncated deadline': [request.subarray(0, 15), /truncated/],
    'an unknown operation': [Buffer.concat([request.subarray(0, 19), Buffer.from([9]), request.subarray(20)]), /unknown request operation/]
  }
  for (const [what, [bytes, message]] of Object.entries(cases)) {
    assert.throws(() => decode(bytes), err => err instanceof WSHUB_ERR_INVALID_ENVELOPE && message.test(err.message), what)
  }
})

test('a request carries its deadline, a call its JSON; a reply may carry an outcome', () => {
  const call = decode(encode({ origin: 'n', type: 'request', seq: 9, deadline: 1_790_000_000_123, op: 'call', target: 'm.a', payload: Buffer.from('{"method":"x"}') }))
  assert.equal(call.deadline, 1_790_000_000_123)
  assert.equal(call.op, 'call')
  assert.equal(call.payload.toString(), '{"method":"x"}')
  assert.equal(decode(encode({ origin: 'n', type: 'request', seq: 1, op: 'has', target: 'm.a' })).deadline, undefined, 'no deadline: none decoded')
  const reply = decode(encode({ origin: 'n', type: 'reply', seq: 9, result: true, payload: Buffer.from('{"result":1}') }))
  assert.equal(reply.payload.toString(), '{"result":1}')
  assert.equal(decode(encode({ origin: 'n', type: 'reply', seq: 9, result: false })).payload, undefined)
})

test('a room message may carry its history offset, right after the origin; an event carries topic, room and bytes', () => {
  const payload = Buffer.from('{"text":"hi"}')
  const wire = encode({ origin: 'node', type: 'rooms', rooms: ['r'], offset: '1700000000000-0', binary: false, payload })
  assert.equal(wire[1] & 0x40, 0x40)
  assert.equal(wire[2 + 1 + 4], 15, 'the offset length follows the origin')
  assert.equal(wire.toString('latin1', 2 + 1 + 4 + 1, 2 + 1 + 4 + 1 + 15), '1700000000000-0')
  const decoded = decode(wire)
  assert.equal(decoded.offset, '1700000000000-0')
  assert.deepEqual(decoded.rooms, ['r'])
  assert.ok(decoded.payload.equals(payload))
  assert.equal(decode(encode({ origin: 'n', type: 'all', binary: false, payload })).offset, undefined)
  const event = decode(encode({ origin: 'n', type: 'event', topic: 'presence', room: 'lobby', payload: Buffer.from([1, 2]) }))
  assert.deepEqual({ ...event, payload: [...event.payload] }, { origin: 'n', type: 'event', topic: 'presence', room: 'lobby', payload: [1, 2] })
  assert.throws(() => encode({ origin: 'n', type: 'all', offset: 'x'.repeat(256), binary: false, payload }), /offset of 256 bytes/)
})

test('a batch carries several envelopes in one message, in order; a lone envelope is a message too', () => {
  const envelopes = [
    { origin: 'n', type: 'rooms', rooms: ['r'], binary: false, payload: Buffer.from('one') },
    { origin: 'n', type: 'all', binary: true, payload: Buffer.from([2]) },
    { origin: 'n', type: 'reply', seq: 3, result: true }
  ]
  const batch = encodeBatch(envelopes.map(encode))
  assert.equal(batch.length, 2 + 4 + envelopes.reduce((sum, e) => sum + 4 + encode(e).length, 0))
  const decoded = decodeMessage(batch).map(e => e.payload === undefined ? e : { ...e, payload: Buffer.from(e.payload) })
  assert.deepEqual(decoded, envelopes)
  assert.deepEqual(decodeMessage(encode(envelopes[2])), [envelopes[2]])
  assert.deepEqual(decodeMessage(encodeBatch([])), [])
})

test('a malformed batch fails to decode with WSHUB_ERR_INVALID_ENVELOPE', () => {
  const batch = encodeBatch([encode({ origin: 'n', type: 'reply', seq: 1, result: true })])
  const invalid = err => err instanceof WSHUB_ERR_INVALID_ENVELOPE
  assert.throws(() => decodeMessage(batch.subarray(0, batch.length - 1)), invalid, 'truncated envelope')
  assert.throws(() => decodeMessage(Buffer.concat([batch, Buffer.from([0])])), invalid, 'trailing bytes')
  const huge = Buffer.from(batch)
  huge.writeUInt32BE(0xffffffff, 2)
  assert.throws(() => decodeMessage(huge), invalid, 'a count beyond the message')
  const inner = Buffer.from(batch)
  inner[2 + 4 + 4] = 9 // the version byte of the envelope inside
  assert.throws(() => decodeMessage(inner), /unknown format version 9/)
  assert.throws(() => decode(batch), /unknown kind 5/, 'a batch is not a single envelope')
})
