// Cluster-wide presence in a real Redis, and the faults that hurt it short of Redis going away: Redis
// losing every key, refusing writes (out of memory), and hanging (CLIENT PAUSE). Hubs are driven
// directly with members that record what reaches them, so that a node can have thousands of them.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import wsHub from '../dist/lib/index.js'
import { redisHub, sleep, until } from './helpers.js'
import { freePort, redisForFile } from './redis-server.js'

let redis, inspect
redisForFile((server, client) => { redis = server; inspect = client })

let prefixes = 0

/** Turns the server into a replica of a master that is not there: it serves reads and refuses writes. */
async function readOnly (t) {
  await inspect.call('REPLICAOF', '127.0.0.1', String(await freePort()))
  t.after(() => inspect.call('REPLICAOF', 'NO', 'ONE'))
}

/** A hub on its own RedisBroker, stopped after the test; `add(rooms)` gives it a member. */
async function node (t, { keyPrefix = `presence-test-${++prefixes}:`, nodeTtl = 15_000, requestTimeout = 2000 } = {}) {
  const { hub, broker, received, lines, member } = await redisHub(t, redis.url, { keyPrefix, nodeTtl, requestTimeout })
  const add = (rooms = []) => {
    const added = member()
    for (const room of rooms) hub.registry.join(added, room)
    return added
  }
  return { hub, broker, add, received, lines, keyPrefix }
}

test('a node that finds its liveness mark gone (Redis lost its keys) writes its presence again, in chunks when large', async t => {
  const a = await node(t, { nodeTtl: 1500 })
  const count = 12_001 // more ids than one bulk write carries
  for (let i = 0; i < count; i++) a.add(['big'])
  a.add(['small'])
  assert.equal(await a.hub.roomSize('big'), count)
  assert.equal(await inspect.flushall(), 'OK')
  await until(async () => await a.hub.roomSize('big') === count, 3000, 'the presence to be written again')
  assert.equal(await a.hub.roomSize('small'), 1)
  assert.deepEqual((await a.hub.rooms()).sort(), ['big', 'small'])
  await until(async () => await inspect.zscore(`${a.keyPrefix}nodes`, a.hub.nodeId) !== null, 2000, 'the node to be marked alive again')
})

test('joins and leaves while the node writes its presence again are kept: a room joined then is not swept, one left then is not written back', async t => {
  const a = await node(t)
  // Enough rooms that the rewrite's sweep and writes take many round trips.
  const members = []
  for (let i = 0; i < 4000; i++) members.push(a.add([`old${i}`]))
  assert.equal(await a.hub.roomSize('old3999'), 1)
  const fresh = []
  a.broker.presence.restore()
  // One join of a new room and one leave of an old room each turn of the event loop, while the
  // rewrite runs.
  for (let i = 0; i < 200; i++) {
    await new Promise(resolve => setImmediate(resolve))
    fresh.push(a.add([`new${i}`]))
    a.hub.registry.leave(members[i], `old${i}`)
  }
  await until(async () => await inspect.zcard(`${a.keyPrefix}nodes`) === 1, 2000, 'the node to be marked')
  // A read answers after every write queued before it.
  const rooms = new Set(await a.hub.rooms())
  const missing = []
  const stale = []
  for (let i = 0; i < 200; i++) {
    if (!rooms.has(`new${i}`) || await a.hub.roomSize(`new${i}`) !== 1) missing.push(`new${i}`)
    if (rooms.has(`old${i}`) || await a.hub.roomSize(`old${i}`) !== 0) stale.push(`old${i}`)
  }
  assert.deepEqual(missing, [], 'rooms joined during the rewrite')
  assert.deepEqual(stale, [], 'rooms left during the rewrite')
  assert.equal(rooms.size, 4000)
  assert.equal(await a.hub.roomSize('old3999'), 1)
})

test('Redis refusing writes (a read-only replica): warned once, local rooms unaffected, presence written again once it accepts them', async t => {
  // Refreshes every 800 ms; the mark (2.4 s) outlives the read-only spell.
  const a = await node(t, { nodeTtl: 2400 })
  const first = a.add(['r'])
  assert.equal(await a.hub.roomSize('r'), 1)
  await readOnly(t)
  const second = a.add(['r'])
  const third = a.add(['r'])
  await until(() => a.lines.some(line => line.level === 'warn'), 2000, 'the failed write to be reported')
  await a.hub.to('r').send('local delivery')
  assert.deepEqual(a.received.get(third.id), ['local delivery'])
  await sleep(900) // a refresh tries to write it all again meanwhile, and fails
  assert.equal(await a.hub.roomSize('r'), 1, 'reads still work; the joins are not recorded yet')

  await inspect.call('REPLICAOF', 'NO', 'ONE')
  await until(async () => await a.hub.roomSize('r') === 3, 2000, 'the presence to be written again')
  assert.deepEqual((await a.hub.members('r')).sort(), [first.id, second.id, third.id].sort())
  await until(() => a.lines.some(line => line.level === 'info'), 1000, 'the recovery to be reported')
  assert.deepEqual(a.lines.filter(line => line.level === 'warn' || line.level === 'info').map(line => [line.level, line.msg]), [
    ['warn', 'fastify-ws-hub: could not record a join in Redis; it is written again on the next refresh'],
    ['info', 'fastify-ws-hub: this node\'s presence is written in Redis again']
  ])
  assert.match(a.lines.find(line => line.level === 'warn').err.message, /^READONLY/)
  assert.ok(a.lines.filter(line => line.level === 'debug' && /rewrite this node's presence/.test(line.msg)).length >= 1,
    'the failed rewrites were logged at debug level only')
})

test('Redis that hangs (CLIENT PAUSE): presence reads and calls about remote ids reject within requestTimeout; local delivery does not wait', async t => {
  const keyPrefix = `presence-test-${++prefixes}:`
  // A short nodeTtl: liveness refreshes run (and fail) during the pause too.
  const a = await node(t, { keyPrefix, requestTimeout: 300, nodeTtl: 600 })
  const b = await node(t, { keyPrefix, requestTimeout: 300, nodeTtl: 600 })
  const local = a.add(['r'])
  const remote = b.add(['r'])
  await inspect.call('CLIENT', 'PAUSE', '1500', 'ALL')
  t.after(() => inspect.call('CLIENT', 'UNPAUSE'))
  let started = Date.now()
  await assert.rejects(a.hub.roomSize('r'), { code: 'WSHUB_ERR_REDIS_UNAVAILABLE', message: 'Redis is not available: no answer to "room" within 300 ms' })
  await assert.rejects(a.hub.rooms(), { code: 'WSHUB_ERR_REDIS_UNAVAILABLE' })
  await assert.rejects(a.hub.has(remote.id), err => ['WSHUB_ERR_REQUEST_TIMEOUT', 'WSHUB_ERR_REDIS_UNAVAILABLE'].includes(err.code))
  const took = Date.now() - started
  assert.ok(took >= 800 && took < 1400, `three calls took ${took} ms`)
  started = Date.now()
  await a.hub.to('r').send('now')
  assert.ok(Date.now() - started < 50)
  assert.deepEqual(a.received.get(local.id), ['now'])
  await inspect.call('CLIENT', 'UNPAUSE')
  await until(() => b.received.get(remote.id).includes('now'), 2000, 'the paused publish to go through')
  assert.equal(await a.hub.has(remote.id), true)
})

test('registration fails when Redis refuses to record the node, and leaves no connection behind', async t => {
  const clientsBefore = (await inspect.client('LIST')).trim().split('\n').length
  await readOnly(t)
  const app = Fastify()
  await assert.rejects(app.register(wsHub, { redis: redis.url, keyPrefix: 'refused:' }).ready(), /READONLY/)
  await app.close()
  assert.deepEqual(await inspect.keys('refused:*'), [])
  await until(async () => (await inspect.client('LIST')).trim().split('\n').length === clientsBefore, 2000, 'its connections to close')
})

test('app.close() while Redis hangs (CLIENT PAUSE) leaves keys behind that the other nodes remove once its liveness mark expires', async t => {
  const keyPrefix = `presence-test-${++prefixes}:`
  const a = await node(t, { keyPrefix, requestTimeout: 300, nodeTtl: 600 })
  const b = await node(t, { keyPrefix, requestTimeout: 300, nodeTtl: 600 })
  for (let i = 0; i < 300; i++) a.add([`stalled${i}`, 'shared'])
  b.add(['shared'])
  await until(async () => await a.hub.roomSize('shared') === 301, 2000, 'the joins to be recorded')
  await inspect.call('CLIENT', 'PAUSE', '1000', 'ALL')
  t.after(() => inspect.call('CLIENT', 'UNPAUSE'))
  await a.hub.stop()
  const warning = a.lines.find(line => line.level === 'warn')
  assert.equal(warning?.msg, 'fastify-ws-hub: could not remove this node\'s keys from Redis; the other nodes remove them once its liveness mark expires')
  await until(async () => (await inspect.keys(`${keyPrefix}*${a.hub.nodeId}*`)).length === 0, 5000, 'the keys of the stopped node to be removed')
  await until(async () => await inspect.zscore(`${keyPrefix}nodes`, a.hub.nodeId) === null, 2000, 'the stopped node to be forgotten')
  assert.deepEqual(await inspect.hkeys(`${keyPrefix}nodes#{shared}`), [b.hub.nodeId])
  assert.deepEqual((await inspect.keys(`${keyPrefix}*`)).sort(), [`${keyPrefix}members#{shared}#${b.hub.nodeId}`, `${keyPrefix}node#{${b.hub.nodeId}}#rooms`, `${keyPrefix}nodes`, `${keyPrefix}nodes#{shared}`])
  assert.equal(await b.hub.roomSize('shared'), 1)
})

test('Redis dropping the subscriber for its pub/sub output buffer is logged once, at warn, with the limit to tune; delivery resumes', async t => {
  const [, limit] = await inspect.config('GET', 'client-output-buffer-limit')
  await inspect.config('SET', 'client-output-buffer-limit', 'pubsub 1mb 512kb 1')
  t.after(() => inspect.config('SET', 'client-output-buffer-limit', limit))
  const keyPrefix = `presence-test-${++prefixes}:`
  const a = await node(t, { keyPrefix })
  const member = a.add(['flood'])
  await a.hub.joinLocal(member, 'flood')
  const raw = new Redis(redis.url)
  t.after(() => raw.disconnect())
  await raw.ping()
  // 24 MB for a's subscriber while this process (and so a's subscriber) reads nothing for 1.5 s.
  const flood = raw.eval('for i = 1, 2400 do redis.call(\'publish\', KEYS[1], ARGV[1]) end return 1', 1,
    `${keyPrefix}room#{flood}`, 'x'.repeat(10_000))
  const until1500 = Date.now() + 1500
  while (Date.now() < until1500) { /* block the event loop */ }
  await flood
  await until(() => a.lines.some(line => line.level === 'warn'), 5000, 'the drop to be logged')
  await until(() => a.lines.some(line => line.level === 'info'), 5000, 'the subscriber to be back')
  const above = a.lines.filter(line => line.level !== 'debug').map(line => [line.level, line.msg])
  assert.equal(above.length, 2, JSON.stringify(above))
  assert.equal(above[0][0], 'warn')
  assert.match(above[0][1], /Redis closed the subscriber connection .*client-output-buffer-limit pubsub.*messages published to this node meanwhile are lost/)
  assert.deepEqual(above[1], ['info', 'fastify-ws-hub: Redis connection is back; cross-node delivery resumes'])
  const b = await node(t, { keyPrefix })
  await until(async () => {
    await b.hub.to('flood').send('again')
    return a.received.get(member.id).includes('again')
  }, 3000, 'the room channel to be subscribed again')
})
