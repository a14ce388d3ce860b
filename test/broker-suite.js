// The broker contract (lib/broker/broker.ts), written once and run against every broker: the in-memory
// one (test/broker.test.js) and the Redis one (test/broker-redis.test.js), as socket.io-redis-adapter's
// "default test suite for all adapters" and phoenix_pubsub's shared pubsub tests do.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

/** Waits until `list` holds `count` items; fails after `ms`. */
async function filled (list, count, ms = 2000) {
  const deadline = Date.now() + ms
  while (list.length < count) {
    if (Date.now() > deadline) throw new Error(`got ${list.length} of ${count} envelopes within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

/** Gives a transport time to deliver what it would (to check that something does not arrive). */
const settle = () => new Promise(resolve => setTimeout(resolve, 50))

const text = (origin, payload) => ({ origin, type: 'all', binary: false, payload: Buffer.from(payload) })

// One envelope of each kind and shape, with every optional field that kind has.
const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
const KINDS = {
  'rooms, except, text': { origin: 'nodeA', type: 'rooms', rooms: ['r', 'ünïcödé room', 'x'.repeat(256)], except: ['nodeA.1', 'nodeB.2'], binary: false, payload: Buffer.from('{"hello":"wörld"}') },
  'rooms, binary, every byte': { origin: 'nodeA', type: 'rooms', rooms: ['r'], binary: true, payload: everyByte },
  'rooms, empty payload': { origin: 'nodeA', type: 'rooms', rooms: [], binary: false, payload: Buffer.alloc(0) },
  'all, except': { origin: 'nodeA', type: 'all', except: [], binary: true, payload: Buffer.from([0, 13, 10, 0]) },
  'request send': { origin: 'nodeA', type: 'request', seq: 4_294_967_295, op: 'send', target: 'nodeB.xyz', binary: true, payload: everyByte },
  'request close': { origin: 'nodeA', type: 'request', seq: 7, op: 'close', target: 'nodeB.xyz', code: 4999, reason: 'bye ✓' },
  'request join': { origin: 'nodeA', type: 'request', seq: 8, op: 'join', target: 'nodeB.xyz', room: 'room #1' },
  'request leave': { origin: 'nodeA', type: 'request', seq: 9, op: 'leave', target: 'nodeB.xyz', room: 'r' },
  'request has': { origin: 'nodeA', type: 'request', seq: 0, op: 'has', target: 'nodeB.xyz' },
  'reply true': { origin: 'nodeB', type: 'reply', seq: 9, result: true },
  'reply false': { origin: 'nodeB', type: 'reply', seq: 10, result: false }
}

/**
 * Defines the broker contract tests.
 * @param name - the broker's name, for the suite title
 * @param pair - `async (t) => [a, b]`: two brokers that reach each other, closed after the test
 */
export function brokerSuite (name, pair) {
  describe(`broker contract: ${name}`, () => {
    test('publish reaches every subscriber of the channel, itself included, asynchronously', async t => {
      const [a, b] = await pair(t)
      const seenA = []
      const seenB = []
      await a.subscribe('c', e => seenA.push(e.payload.toString()))
      await b.subscribe('c', e => seenB.push(e.payload.toString()))
      const published = [a.publish('c', text('a', '1')), a.publish('c', text('a', '2'))]
      assert.deepEqual(seenA, [], 'never inside publish()')
      for (const result of await Promise.all(published)) assert.equal(result, undefined)
      await filled(seenA, 2)
      await filled(seenB, 2)
      assert.deepEqual(seenA, ['1', '2'])
      assert.deepEqual(seenB, ['1', '2'])
    })

    test('every kind of envelope arrives equal to the one published', async t => {
      const [a, b] = await pair(t)
      const seen = []
      await b.subscribe('kinds', e => seen.push(e))
      for (const envelope of Object.values(KINDS)) await a.publish('kinds', envelope)
      await filled(seen, Object.keys(KINDS).length)
      Object.keys(KINDS).forEach((kind, i) => {
        const got = { ...seen[i] }
        // A transport may hand the payload over as a view of a larger buffer: compare the bytes.
        if (got.payload !== undefined) got.payload = Buffer.from(got.payload)
        assert.deepEqual(got, KINDS[kind], kind)
      })
    })

    test('1,000 envelopes from one publisher arrive in order', async t => {
      const [a, b] = await pair(t)
      const seen = []
      await b.subscribe('order', e => seen.push(Number(e.payload.toString())))
      const published = []
      for (let i = 0; i < 1000; i++) published.push(a.publish('order', text('a', String(i))))
      await Promise.all(published)
      await filled(seen, 1000, 5000)
      assert.deepEqual(seen, Array.from({ length: 1000 }, (_, i) => i))
    })

    test('direct resolves true when somebody listens on the channel and false when nobody does', async t => {
      const [a, b] = await pair(t)
      const seen = []
      await b.subscribe('node#b', e => seen.push(e))
      assert.equal(await a.direct('node#b', KINDS['request has']), true)
      assert.equal(await a.direct('node#nobody', KINDS['request has']), false)
      await filled(seen, 1)
      assert.deepEqual(seen, [KINDS['request has']])
      await b.unsubscribe('node#b')
      assert.equal(await a.direct('node#b', KINDS['request has']), false)
    })

    test('other channels and unsubscribed listeners see nothing; unsubscribing twice is fine', async t => {
      const [a, b] = await pair(t)
      const seen = []
      await b.subscribe('other', () => seen.push('other'))
      await b.subscribe('c', () => seen.push('c'))
      await b.unsubscribe('c')
      await b.unsubscribe('c')
      await b.unsubscribe('never')
      await a.publish('c', text('a', 'x'))
      await a.publish('nobody-listens', text('a', 'x'))
      await settle()
      assert.deepEqual(seen, [])
    })

    test('subscribing again replaces the listener', async t => {
      const [a, b] = await pair(t)
      const seen = []
      await b.subscribe('c', () => seen.push(1))
      await b.subscribe('c', () => seen.push(2))
      await a.publish('c', text('a', 'y'))
      await filled(seen, 1)
      await settle()
      assert.deepEqual(seen, [2])
    })

    test('close unsubscribes everything and is idempotent; publish, direct and subscribe after it reject', async t => {
      const [a, b] = await pair(t)
      const seen = []
      await b.subscribe('c', () => seen.push('c'))
      await b.close()
      await b.close()
      await a.publish('c', text('a', 'after close'))
      await settle()
      assert.deepEqual(seen, [])
      assert.equal(await a.direct('c', text('a', 'x')), false, 'nobody listens after close')
      await assert.rejects(b.publish('c', text('b', 'y')), { code: 'WSHUB_ERR_BROKER_CLOSED' })
      await assert.rejects(b.direct('c', text('b', 'y')), { code: 'WSHUB_ERR_BROKER_CLOSED' })
      await assert.rejects(b.subscribe('c', () => {}), { code: 'WSHUB_ERR_BROKER_CLOSED' })
    })
  })
}
