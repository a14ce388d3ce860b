// The `redis` option with a real redis-server, in this process: every form it takes (URL, options, a
// client, true with @fastify/redis), what registration does when Redis is not there, what app.close()
// leaves behind, and the hub when Redis dies and comes back.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fastifyRedis from '@fastify/redis'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import wsHub from '../dist/lib/index.js'
import { build, connect, sleep, until } from './helpers.js'
import { freePort, redisForFile, RedisServer } from './redis-server.js'

let redis, inspect
redisForFile((server, client) => { redis = server; inspect = client })

let prefixes = 0
const uniquePrefix = () => `redis-test-${++prefixes}:`

/** An app whose /ws?rooms=a,b route joins the rooms and sends the client its id first. */
async function node (t, options) {
  return build(t, app => {
    app.wsRoute('/ws', async conn => {
      for (const room of (conn.query.rooms ?? '').split(',').filter(Boolean)) await conn.join(room)
      await conn.sendJson({ id: conn.id })
    })
  }, options)
}

/** A client in `rooms`, with its connection id. */
async function member (t, app, rooms = '') {
  const client = await connect(t, app, `/ws?rooms=${rooms}`)
  client.id = JSON.parse(await client.next()).id
  return client
}

describe('the forms of the redis option', () => {
  test('a URL: two apps on one Redis reach each other\'s connections', async t => {
    const keyPrefix = uniquePrefix()
    const a = await node(t, { redis: redis.url, keyPrefix })
    const b = await node(t, { redis: redis.url, keyPrefix })
    const onB = await member(t, b, 'r')
    await a.ws.to('r').send('from a')
    assert.equal(await onB.next(), 'from a')
    assert.equal(await a.ws.send(onB.id, 'direct'), true)
    assert.equal(await onB.next(), 'direct')
    assert.deepEqual(await a.ws.members('r'), [onB.id])
  })

  test('ioredis options', async t => {
    const keyPrefix = uniquePrefix()
    const a = await node(t, { redis: { host: '127.0.0.1', port: redis.port }, keyPrefix })
    const onA = await member(t, a, 'r')
    assert.equal(await a.ws.roomSize('r'), 1)
    assert.deepEqual(await inspect.smembers(`${keyPrefix}members#{r}#${a.ws.nodeId}`), [onA.id])
  })

  test('a client of the app: used, and still open after app.close()', async t => {
    const client = new Redis(redis.url)
    t.after(() => client.quit())
    const keyPrefix = uniquePrefix()
    const app = Fastify()
    await app.register(wsHub, { redis: client, keyPrefix })
    await app.ready()
    assert.notEqual(await inspect.zscore(`${keyPrefix}nodes`, app.ws.nodeId), null)
    await app.close()
    assert.equal(client.status, 'ready')
    assert.equal(await inspect.zscore(`${keyPrefix}nodes`, app.ws.nodeId), null, 'its keys are removed')
  })

  test('true: app.redis of @fastify/redis, registered first; the keys are removed before @fastify/redis closes it', async t => {
    const keyPrefix = uniquePrefix()
    const other = await node(t, { redis: redis.url, keyPrefix })
    const app = Fastify()
    await app.register(fastifyRedis, { url: redis.url })
    await app.register(wsHub, { redis: true, keyPrefix })
    app.wsRoute('/ws', async conn => {
      await conn.join('shared')
      await conn.sendJson({ id: conn.id })
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const onApp = await member(t, app)
    const onOther = await member(t, other, 'shared')
    await app.ws.to('shared').send('via app.redis')
    assert.equal(await onOther.next(), 'via app.redis')
    assert.equal(await onApp.next(), 'via app.redis')
    assert.equal(await other.ws.roomSize('shared'), 2)
    const clientsBefore = (await inspect.client('LIST')).trim().split('\n').length
    await app.close()
    await until(() => app.redis.status === 'end', 2000, '@fastify/redis to close its own client')
    assert.deepEqual(await inspect.keys(`${keyPrefix}*${app.ws.nodeId}*`), [])
    assert.equal(await other.ws.roomSize('shared'), 1)
    await until(async () => (await inspect.client('LIST')).trim().split('\n').length === clientsBefore - 2, 2000,
      'app.redis and the subscriber to disconnect')
  })

  test('true without @fastify/redis, or with a namespaced one, fails registration with WSHUB_ERR_INVALID_OPTION', async () => {
    const app = Fastify()
    await assert.rejects(app.register(wsHub, { redis: true }).ready(), {
      code: 'WSHUB_ERR_INVALID_OPTION', message: /"redis": true reuses app.redis from @fastify\/redis; register @fastify\/redis before/
    })
    await app.close()
    const namespaced = Fastify()
    await namespaced.register(fastifyRedis, { url: redis.url, namespace: 'cache' })
    await assert.rejects(namespaced.register(wsHub, { redis: true }).ready(), { code: 'WSHUB_ERR_INVALID_OPTION', message: /not an ioredis client/ })
    await namespaced.close()
  })

  test('a Redis that cannot be reached fails registration with WSHUB_ERR_REDIS_UNAVAILABLE within requestTimeout', async () => {
    const app = Fastify()
    const started = Date.now()
    await assert.rejects(app.register(wsHub, { redis: `redis://127.0.0.1:${await freePort()}`, requestTimeout: 400 }).ready(), {
      code: 'WSHUB_ERR_REDIS_UNAVAILABLE', message: /no connection within 400 ms/
    })
    assert.ok(Date.now() - started < 2000)
    await app.close()
  })
})

describe('the hub when Redis goes away and comes back', () => {
  test('local delivery goes on, cross-node calls fail fast, the log says so once, and everything resumes', async t => {
    const server = new RedisServer(await freePort())
    t.after(() => server.kill())
    await server.start()
    const keyPrefix = uniquePrefix()
    const a = await node(t, { redis: server.url, keyPrefix, requestTimeout: 2000, nodeTtl: 3000 })
    const b = await node(t, { redis: server.url, keyPrefix, requestTimeout: 2000, nodeTtl: 3000 })
    const onA = await member(t, a, 'r')
    const onB = await member(t, b, 'r')
    assert.equal(await a.ws.roomSize('r'), 2)

    await server.kill()
    await until(() => a.logLines.some(line => line.level === 40), 2000, 'the loss to be logged')

    // Local delivery needs no Redis: a room send reaches the local member and resolves.
    const started = Date.now()
    await a.ws.to('r').send('local only')
    assert.equal(await onA.next(), 'local only')
    assert.equal(await a.ws.send(onA.id, 'local direct'), true)
    assert.equal(await onA.next(), 'local direct')
    assert.equal(await a.ws.has(onA.id), true)
    // What needs another node, or Redis, fails at once with a clear error.
    for (const call of [a.ws.send(onB.id, 'x'), a.ws.has(onB.id), a.ws.close(onB.id), a.ws.join(onB.id, 'q'),
      a.ws.roomSize('r'), a.ws.members('r'), a.ws.rooms()]) {
      await assert.rejects(call, { code: 'WSHUB_ERR_REDIS_UNAVAILABLE' })
    }
    assert.ok(Date.now() - started < 500, `failed within ${Date.now() - started} ms`)
    // A member joins while Redis is away: it is recorded when Redis is back.
    const lateOnA = await member(t, a, 'r')
    assert.equal(await onB.silent(50), true)
    // A join of a room new to the node does not wait for Redis either; it is subscribed when Redis is back.
    const joinedAt = Date.now()
    const newRoom = await member(t, a, 'new-room')
    assert.ok(Date.now() - joinedAt < 500, `joined within ${Date.now() - joinedAt} ms`)

    // Reconnection attempts go on meanwhile; the log says it once.
    await new Promise(resolve => setTimeout(resolve, 1200))
    await server.start() // empty: no persistence
    await until(async () => {
      await a.ws.to('r').send('resumed')
      return onB.messages.includes('resumed')
    }, 5000, 'cross-node delivery to resume')
    assert.equal(await a.ws.send(onB.id, 'direct again'), true)
    await until(async () => {
      await b.ws.to('new-room').send('to the new room')
      return newRoom.messages.includes('to the new room')
    }, 3000, 'the room joined while Redis was away to be subscribed')
    await until(async () => await b.ws.roomSize('r') === 3, 3000, 'the nodes to write their presence again')
    assert.deepEqual((await b.ws.members('r')).sort(), [onA.id, onB.id, lateOnA.id].sort())

    for (const app of [a, b]) {
      const said = app.logLines.filter(line => line.level >= 30 && /Redis/.test(line.msg)).map(line => [line.level, line.msg])
      assert.deepEqual(said, [
        [40, 'fastify-ws-hub: lost the connection to Redis; local delivery goes on, cross-node delivery and calls fail until it is back'],
        [30, 'fastify-ws-hub: Redis connection is back; cross-node delivery resumes']
      ])
    }
  })

  test('app.close() while Redis is down does not wait for it, and leaves no connection trying', async t => {
    const server = new RedisServer(await freePort())
    t.after(() => server.kill())
    await server.start()
    const app = Fastify()
    await app.register(wsHub, { redis: server.url, keyPrefix: uniquePrefix() })
    await app.ready()
    await server.kill()
    await sleep(100)
    const started = Date.now()
    await app.close()
    assert.ok(Date.now() - started < 1000, `closed in ${Date.now() - started} ms`)
    await assert.rejects(app.ws.roomSize('r'), { code: 'WSHUB_ERR_BROKER_CLOSED' })
    // Redis back on the same port: nothing of the closed app reconnects (its clients retry every second at most).
    await server.start()
    await sleep(1300)
    const check = new Redis(server.url)
    t.after(() => check.disconnect())
    assert.equal((await check.client('LIST')).trim().split('\n').length, 1, 'only this check\'s own connection')
  })
})
