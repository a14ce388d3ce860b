// RedisBroker against a real redis-server: the shared broker contract, then what is Redis's own:
// connecting, whose clients it closes, malformed messages, and losing and regaining Redis.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { Hub, RedisBroker } from '../dist/lib/index.js'
import { encode } from '../dist/lib/broker/codec.js'
import { kDeliver } from '../dist/lib/symbols.js'
import { brokerSuite } from './broker-suite.js'
import { recordingLog, until } from './helpers.js'
import { freePort, redisForFile, RedisServer } from './redis-server.js'

let redis
redisForFile(server => { redis = server })

let prefixes = 0
/** A key prefix of its own for each test, so that tests sharing the server never see each other. */
const uniquePrefix = () => `wshub-test-${++prefixes}:`

/** A connected RedisBroker, closed after the test. */
async function broker (t, options = {}, input = redis.url) {
  const b = new RedisBroker(input, { keyPrefix: options.keyPrefix ?? uniquePrefix(), requestTimeout: 2000, ...options })
  t.after(() => b.close())
  await b.connect()
  return b
}

brokerSuite('RedisBroker', async t => {
  const keyPrefix = uniquePrefix()
  return [await broker(t, { keyPrefix }), await broker(t, { keyPrefix })]
})

describe('RedisBroker', () => {
  test('channels are <keyPrefix><channel>, and envelopes are binary messages', async t => {
    const b = await broker(t, { keyPrefix: 'app1:' })
    const raw = new Redis(redis.url)
    t.after(() => raw.disconnect())
    const seen = []
    raw.on('messageBuffer', (channel, message) => seen.push([channel.toString(), message]))
    await raw.subscribe('app1:broadcast')
    await b.publish('broadcast', { origin: 'n', type: 'all', binary: true, payload: Buffer.from([0xff, 0x00]) })
    await until(() => seen.length === 1)
    assert.equal(seen[0][0], 'app1:broadcast')
    assert.deepEqual([...seen[0][1]], [2, 0x12, 1, 0x6e, 0xff, 0x00]) // format version 2
  })

  test('an envelope that cannot be encoded rejects publish and direct with WSHUB_ERR_INVALID_ENVELOPE', async t => {
    const b = await broker(t)
    const envelope = { origin: 'n', type: 'rooms', rooms: ['r'.repeat(70_000)], binary: false, payload: Buffer.alloc(0) }
    await assert.rejects(b.publish('c', envelope), { code: 'WSHUB_ERR_INVALID_ENVELOPE', message: /room of 70000 bytes/ })
    await assert.rejects(b.direct('c', envelope), { code: 'WSHUB_ERR_INVALID_ENVELOPE' })
  })

  test('envelopes published in one turn go out as one Redis message; a direct one goes after them', async t => {
    const keyPrefix = uniquePrefix()
    const a = await broker(t, { keyPrefix })
    const b = await broker(t, { keyPrefix })
    const raw = new Redis(redis.url)
    t.after(() => raw.disconnect())
    let rawMessages = 0
    raw.on('messageBuffer', () => rawMessages++)
    await raw.subscribe(`${keyPrefix}broadcast`, `${keyPrefix}node#b`)
    const seen = []
    await b.subscribe('broadcast', e => seen.push(e.payload.toString()))
    await b.subscribe('node#b', e => seen.push(`direct ${e.seq}`))
    for (let i = 0; i < 500; i++) a.publish('broadcast', { origin: 'a', type: 'all', binary: false, payload: Buffer.from(String(i)) })
    await a.direct('node#b', { origin: 'a', type: 'request', seq: 1, op: 'has', target: 'b.x' })
    await until(() => seen.length === 501)
    assert.deepEqual(seen, [...Array.from({ length: 500 }, (_, i) => String(i)), 'direct 1'])
    await until(() => rawMessages === 2)
    assert.equal(rawMessages, 2, 'one message for the 500 envelopes, one for the direct one')
  })

  test('a batch is sent early once it reaches 256 KiB', async t => {
    const keyPrefix = uniquePrefix()
    const a = await broker(t, { keyPrefix })
    const raw = new Redis(redis.url)
    t.after(() => raw.disconnect())
    const sizes = []
    raw.on('messageBuffer', (_channel, message) => sizes.push(message.length))
    await raw.subscribe(`${keyPrefix}c`)
    const payload = Buffer.alloc(100_000)
    for (let i = 0; i < 5; i++) a.publish('c', { origin: 'a', type: 'all', binary: true, payload })
    await until(() => sizes.length === 2)
    assert.ok(sizes[0] > 262_144 && sizes[0] < 400_000, `first batch of ${sizes[0]} bytes`)
    assert.ok(sizes[1] > 200_000 && sizes[1] < 262_144, `second batch of ${sizes[1]} bytes`)
  })

  test('connecting to a port where nothing listens fails with WSHUB_ERR_REDIS_UNAVAILABLE within requestTimeout', async () => {
    const port = await freePort()
    const b = new RedisBroker(`redis://127.0.0.1:${port}`, { requestTimeout: 300 })
    const started = Date.now()
    await assert.rejects(b.connect(), err => {
      assert.equal(err.code, 'WSHUB_ERR_REDIS_UNAVAILABLE')
      assert.equal(err.statusCode, 503)
      assert.match(err.message, /^Redis is not available: no connection within 300 ms \(.*ECONNREFUSED/)
      assert.equal(err.cause.code, 'ECONNREFUSED')
      return true
    })
    assert.ok(Date.now() - started < 1500)
    await b.close()
    await assert.rejects(b.connect(), { code: 'WSHUB_ERR_BROKER_CLOSED' })
  })

  test('a client of the app is used and left open; the subscriber it duplicated is closed', async t => {
    const client = new Redis(redis.url)
    t.after(() => client.quit())
    const listenersBefore = client.listenerCount('error')
    const keyPrefix = uniquePrefix()
    const b = new RedisBroker(client, { keyPrefix })
    await b.connect()
    assert.equal(client.listenerCount('error'), listenersBefore + 1, 'an error listener on every client')
    await b.subscribe('c', () => {})
    const subscribers = async () => (await client.pubsub('NUMSUB', `${keyPrefix}c`))[1]
    assert.equal(await subscribers(), 1)
    await b.close()
    assert.equal(client.status, 'ready', 'the app\'s client stays open')
    assert.equal(client.listenerCount('error'), listenersBefore, 'and gets its listeners back')
    assert.equal(await client.ping(), 'PONG')
    await until(async () => await subscribers() === 0, 2000, 'the subscriber connection to close')
  })

  test('an ioredis keyPrefix on the app\'s client applies to every key (in front of ours), not to the channels', async t => {
    const client = new Redis(redis.url, { keyPrefix: 'app:' })
    t.after(() => client.quit())
    const keyPrefix = uniquePrefix()
    const b = await broker(t, { keyPrefix }, client)
    const seen = []
    await b.subscribe('c', e => seen.push(e.payload.toString()))
    await b.publish('c', { origin: 'n', type: 'all', binary: false, payload: Buffer.from('hi') })
    await until(() => seen.length === 1)
    await b.presence.start('node1', () => [['r', ['node1.a']]])
    assert.equal(await b.presence.roomSize('r'), 1)
    const raw = new Redis(redis.url)
    t.after(() => raw.disconnect())
    assert.deepEqual((await raw.keys(`*${keyPrefix}*`)).sort(), [
      `app:${keyPrefix}members#{r}#node1`, `app:${keyPrefix}node#{node1}#rooms`, `app:${keyPrefix}nodes`, `app:${keyPrefix}nodes#{r}`
    ])
  })

  test('a lazyConnect client of the app is connected; connecting twice is fine', async t => {
    const client = new Redis(redis.url, { lazyConnect: true })
    t.after(() => client.quit())
    assert.equal(client.status, 'wait')
    const b = await broker(t, {}, client)
    await b.connect()
    assert.equal(client.status, 'ready')
  })

  test('a closed client of the app fails at once', async () => {
    const client = new Redis(redis.url)
    await client.quit()
    await until(() => client.status === 'end')
    const b = new RedisBroker(client, { requestTimeout: 5000 })
    const started = Date.now()
    await assert.rejects(b.connect(), { code: 'WSHUB_ERR_REDIS_UNAVAILABLE', message: /closed/ })
    assert.ok(Date.now() - started < 1000)
    await b.close()
  })

  test('a malformed message on a channel is dropped with a warning; the next one arrives', async t => {
    const { log, lines } = recordingLog()
    const keyPrefix = uniquePrefix()
    const b = await broker(t, { keyPrefix, log })
    const seen = []
    await b.subscribe('c', e => seen.push(e.payload.toString()))
    const raw = new Redis(redis.url)
    t.after(() => raw.disconnect())
    await raw.publish(`${keyPrefix}c`, 'not an envelope')
    await b.publish('c', { origin: 'n', type: 'all', binary: false, payload: Buffer.from('fine') })
    await until(() => seen.length === 1)
    assert.deepEqual(seen, ['fine'])
    const warning = lines.find(line => line.level === 'warn')
    assert.equal(warning.msg, 'fastify-ws-hub: dropped a malformed message')
    assert.equal(warning.err.code, 'WSHUB_ERR_INVALID_ENVELOPE')
  })
})

describe('RedisBroker when Redis goes away and comes back', () => {
  test('publish drops and resolves, direct rejects at once, the loss and the recovery are logged once each, and the subscriber resubscribes', async t => {
    const server = new RedisServer(await freePort())
    t.after(() => server.kill())
    await server.start()
    const { log, lines } = recordingLog()
    const keyPrefix = uniquePrefix()
    const a = await broker(t, { keyPrefix, log }, server.url)
    const b = await broker(t, { keyPrefix }, server.url)
    const seen = []
    await b.subscribe('c', e => seen.push(e.payload.toString()))
    const message = text => ({ origin: 'a', type: 'all', binary: false, payload: Buffer.from(text) })

    await server.kill()
    await until(() => lines.some(line => line.level === 'warn'), 2000, 'the loss to be logged')
    const started = Date.now()
    assert.equal(await a.publish('c', message('while down')), undefined, 'resolves, dropped')
    await assert.rejects(a.direct('c', message('x')), { code: 'WSHUB_ERR_REDIS_UNAVAILABLE', message: 'Redis is not available: the connection to Redis is down' })
    await assert.rejects(a.presence.roomSize('r'), { code: 'WSHUB_ERR_REDIS_UNAVAILABLE' })
    assert.ok(Date.now() - started < 100, 'without waiting')
    // Reconnection attempts fail every few hundred ms meanwhile: they must not be logged above debug.
    await new Promise(resolve => setTimeout(resolve, 1200))
    assert.ok(lines.filter(line => line.level === 'debug' && /connection error/.test(line.msg)).length >= 2, 'attempts were made')

    await server.start()
    await until(() => lines.some(line => line.level === 'info'), 4000, 'the recovery to be logged')
    // Both brokers reconnect on their own; b's subscriber resubscribes.
    await until(async () => {
      await a.publish('c', message('after'))
      return seen.includes('after')
    }, 4000, 'delivery to resume')
    assert.equal(await a.direct('c', message('direct')), true)
    assert.ok(!seen.includes('while down'))
    const above = lines.filter(line => line.level !== 'debug')
    assert.deepEqual(above.map(line => [line.level, line.msg]), [
      ['warn', 'fastify-ws-hub: lost the connection to Redis; local delivery goes on, cross-node delivery and calls fail until it is back'],
      ['info', 'fastify-ws-hub: Redis connection is back; cross-node delivery resumes']
    ])
  })
})

describe('RedisBroker for a module that publishes to a room itself (a script that appends and publishes)', () => {
  test('client, sharded and channelOf name what to publish on; flush sends what is queued first', async t => {
    const client = new Redis(redis.url)
    t.after(() => client.quit())
    const keyPrefix = uniquePrefix()
    const b = await broker(t, { keyPrefix }, client)
    assert.equal(b.client, client)
    assert.equal(b.sharded, false)
    assert.equal(b.channelOf('lobby'), `${keyPrefix}room#{lobby}`)
    assert.equal(b.channelOf('}x'), `${keyPrefix}room@{@}}x`)

    const receiver = await broker(t, { keyPrefix })
    const hub = new Hub(receiver, { warn () {}, debug () {} })
    await hub.start()
    t.after(() => hub.stop())
    const got = []
    const member = { id: hub.newId(), [kDeliver]: message => { got.push(message.payload.toString()); return true } }
    hub.registry.add(member)
    await hub.joinLocal(member, 'lobby')
    // Queued for the end of the turn, then sent at once by flush(), before the module's own PUBLISH.
    await b.publish('room#{lobby}', { origin: 'other', type: 'rooms', rooms: ['lobby'], binary: false, payload: Buffer.from('first') })
    b.flush()
    const envelope = encode({ origin: 'other', type: 'rooms', rooms: ['lobby'], binary: false, payload: Buffer.from('second') })
    assert.equal(await client.publish(b.channelOf('lobby'), envelope), 1)
    await until(() => got.length === 2)
    assert.deepEqual(got, ['first', 'second'])
  })
})
