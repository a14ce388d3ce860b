// A bounded fuzz test with a fixed seed: random frame sequences (valid, fragmented, control frames, bad
// ones), close codes, and random hub API call orders. The server must never crash, never leak a
// connection, and answer every bad frame with the right close code.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebSocketHandler } from '../dist/lib/index.js'
import { build, until } from './helpers.js'
import { closePayload, frame, rawConnect } from './raw-client.js'

const SEED = 0x5eed
const CASES = 2500
const CONCURRENCY = 16
const MAX_PAYLOAD = 4096

/** mulberry32: a small, fast, seeded PRNG. */
function prng (seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (list) => list[Math.floor(next() * list.length)],
    bytes: (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)))
  }
}

const TEXTS = ['', 'a', 'hello', 'héllo wörld', '日本語テキスト', '😀 emoji', '{"json":true}', 'x'.repeat(300)]

/** A valid message as one or more frames (fragmented at random), and what the echo sends back. */
function validMessage (r) {
  const binary = r.next() < 0.4
  const payload = binary ? r.bytes(r.int(600)) : Buffer.from(r.pick(TEXTS))
  const opcode = binary ? 0x2 : 0x1
  const parts = r.int(4) // 0: one frame; otherwise that many fragments
  if (parts === 0 || payload.length < 2) return [frame({ opcode, payload })]
  const frames = []
  const cuts = [0]
  for (let i = 1; i < parts; i++) cuts.push(r.int(payload.length))
  cuts.sort((x, y) => x - y)
  cuts.push(payload.length)
  for (let i = 0; i < cuts.length - 1; i++) {
    frames.push(frame({ opcode: i === 0 ? opcode : 0x0, fin: i === cuts.length - 2, payload: payload.subarray(cuts[i], cuts[i + 1]) }))
    // A control frame may come between fragments.
    if (r.next() < 0.2) frames.push(frame({ opcode: 0x9, payload: Buffer.from('ping') }))
  }
  return frames
}

// Each way to end a case: the frame(s) to send and the close code the server must answer with.
const ENDINGS = [
  (r) => { const code = r.pick([1000, 1001, 3000, 4000, 4999]); return [[frame({ opcode: 0x8, payload: closePayload(code, 'bye') })], code] },
  () => [[frame({ opcode: 0x8 })], 1005],
  (r) => [[frame({ opcode: 0x8, payload: closePayload(r.pick([0, 999, 1004, 1005, 1006, 1015, 2000, 5000])) })], 1002],
  () => [[frame({ opcode: 0x8, payload: Buffer.from([0x03]) })], 1002],
  (r) => [[frame({ opcode: r.pick([0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf]), payload: Buffer.from('?') })], 1002],
  (r) => [[frame({ opcode: 0x1, rsv: r.pick([1, 2, 4]), payload: Buffer.from('rsv') })], 1002],
  () => [[frame({ opcode: 0x1, payload: Buffer.from('unmasked'), masked: false })], 1002],
  () => [[frame({ opcode: 0x0, payload: Buffer.from('orphan continuation') })], 1002],
  () => [[frame({ opcode: 0x1, fin: false, payload: Buffer.from('start') }), frame({ opcode: 0x1, payload: Buffer.from('new message mid-fragment') })], 1002],
  () => [[frame({ opcode: 0x9, fin: false, payload: Buffer.from('fragmented ping') })], 1002],
  () => [[frame({ opcode: 0x9, payload: Buffer.alloc(126) })], 1002],
  (r) => [[frame({ opcode: 0x1, payload: Buffer.concat([Buffer.from('ok'), r.pick([Buffer.from([0xff]), Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80])])]) })], 1007],
  () => [[frame({ opcode: 0x1, fin: false, payload: Buffer.from([0xe6, 0x97]) }), frame({ opcode: 0x0, payload: Buffer.from([0x41]) })], 1007],
  () => [[frame({ opcode: 0x2, length: MAX_PAYLOAD + 1 + 1000, payload: Buffer.alloc(8) })], 1009],
  () => [[frame({ opcode: 0x2, fin: false, payload: Buffer.alloc(MAX_PAYLOAD - 10) }), frame({ opcode: 0x0, payload: Buffer.alloc(100) })], 1009]
]

class Echo extends WebSocketHandler {
  async connect () {
    await this.accept()
    await this.join('fuzz')
  }

  async receive (data) {
    await this.send(data)
  }
}

test(`fuzz: ${CASES} random frame sequences (seed ${SEED.toString(16)}) get the right close code, no crash, no leak`, async t => {
  const app = await build(t, app => {
    app.wsRoute('/fn', async conn => {
      await conn.join('fuzz')
      for await (const message of conn) await conn.send(message)
    })
    app.wsRoute('/class', Echo)
    app.get('/health', async () => 'ok')
  }, { maxPayload: MAX_PAYLOAD, heartbeat: false })
  const port = app.server.address().port
  const r = prng(SEED)
  const plans = Array.from({ length: CASES }, (_, i) => {
    const messages = Array.from({ length: r.int(5) }, () => validMessage(r))
    const [ending, expected] = r.pick(ENDINGS)(r)
    return { i, path: r.pick(['/fn', '/class']), messages, ending, expected }
  })
  const failures = []
  let next = 0
  async function runCase (plan) {
    const client = await rawConnect(port, plan.path)
    try {
      assert.equal(await client.handshake, 101)
      for (const frames of plan.messages) for (const f of frames) client.send(f)
      // Wait for the echoes, so that the bad frame comes after the valid traffic was handled.
      await until(() => client.frames.filter(f => f.opcode !== 0xa).length === plan.messages.length, 2000, `echoes of case ${plan.i}`)
      for (const f of plan.ending) client.send(f)
      const code = await Promise.race([client.closed, new Promise(resolve => setTimeout(resolve, 2000, 'timeout'))])
      if (code !== plan.expected) failures.push(`case ${plan.i}: expected ${plan.expected}, got ${code}`)
    } finally {
      client.socket.destroy()
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < plans.length) await runCase(plans[next++])
  }))
  assert.deepEqual(failures.slice(0, 10), [])
  await until(() => app.ws.size === 0, 5000, 'every connection to be gone')
  assert.deepEqual(await app.ws.rooms(), [])
  assert.equal((await app.inject('/health')).body, 'ok', 'the server still serves')
  assert.deepEqual(app.logLines.filter(l => l.level >= 50).slice(0, 3), [], 'no handler error was logged')
})

test('fuzz: random hub API call orders with good and bad arguments never crash and never leak', async t => {
  const conns = []
  const app = await build(t, app => app.wsRoute('/api', async conn => {
    conns.push(conn)
    await new Promise(resolve => conn.signal.addEventListener('abort', resolve))
  }), { heartbeat: false })
  const port = app.server.address().port
  const r = prng(SEED + 1)
  const clients = []
  for (let i = 0; i < 12; i++) {
    const client = await rawConnect(port, '/api')
    t.after(() => client.socket.destroy())
    await client.handshake
    clients.push(client)
  }
  await until(() => conns.length === 12)
  const rooms = ['a', 'b', 'c', '', 'x'.repeat(257), 7, null]
  const payloads = ['text', Buffer.from([1, 2]), { json: 1 }, 10n, undefined, new Uint8Array([3])]
  const codes = [1000, 1001, 4000, 1006, 999, undefined]
  const ids = () => r.next() < 0.8 ? r.pick(conns).id : r.pick(['', 'nope', 'x.y', 42])
  const calls = [
    () => app.ws.send(ids(), r.pick(payloads)),
    () => app.ws.close(ids(), r.pick(codes), 'fuzz'),
    () => app.ws.has(ids()),
    () => app.ws.join(ids(), r.pick(rooms)),
    () => app.ws.leave(ids(), r.pick(rooms)),
    () => app.ws.to(r.next() < 0.5 ? r.pick(rooms) : [r.pick(rooms), r.pick(rooms)]).except(ids()).send(r.pick(payloads)),
    () => app.ws.broadcast(r.pick(rooms), r.pick(payloads)),
    () => app.ws.sendAll(r.pick(payloads)),
    () => app.ws.roomSize(r.pick(rooms)),
    () => app.ws.members(r.pick(rooms)),
    () => app.ws.rooms(),
    () => r.pick(conns).join(r.pick(rooms)),
    () => r.pick(conns).leave(r.pick(rooms)),
    () => r.pick(conns).send(r.pick(payloads)),
    () => r.pick(conns).broadcast(r.pick(rooms), r.pick(payloads)),
    () => r.pick(conns).close(r.pick(codes), 'fuzz'),
    () => r.pick(conns).receiveText()
  ]
  const unexpected = []
  const pending = []
  for (let i = 0; i < 3000; i++) {
    let result
    try {
      result = r.pick(calls)()
    } catch (err) {
      unexpected.push(`sync throw: ${err.message}`)
      continue
    }
    assert.ok(result instanceof Promise)
    // Every rejection is a coded error of ours or a WebSocketDisconnect; never an uncoded crash.
    pending.push(result.catch(err => {
      if (!(err.code?.startsWith?.('WSHUB_ERR_') || err.name === 'WebSocketDisconnect')) unexpected.push(`${err.name}: ${err.message}`)
    }))
    if (i % 100 === 0) await new Promise(resolve => setImmediate(resolve))
  }
  // Receives still waiting on open connections settle once those close.
  for (const client of clients) client.socket.destroy()
  await Promise.all(pending)
  assert.deepEqual(unexpected, [])
  await until(() => app.ws.size === 0, 5000, 'every connection to be gone')
  assert.deepEqual(await app.ws.rooms(), [])
})
