// History and presence when Redis goes away and comes back empty (a restart without persistence): room
// sends keep reaching local members, an offset from before the restart never claims a complete recovery,
// and each node writes its presence entries again.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { build, connect, until } from './helpers.js'
import { startRedis } from './redis-server.js'

test('Redis down, then back empty: local delivery goes on, nothing claims recovery, presence is written again', async t => {
  const redis = await startRedis(t)
  let conn
  const app = await build(t, a => a.wsRoute('/r', async c => {
    conn = c
    const result = await c.join('room', { since: c.query.since })
    await c.sendJson({ joined: result })
  }), { redis: redis.url, heartbeat: false, nodeTtl: 600, requestTimeout: 1000, history: { size: 10, stamp: 'offset' } })
  const client = await connect(t, app, '/r')
  assert.equal(JSON.parse(await client.next()).joined.recovered, false)
  await conn.track('room', 'ann', { name: 'Ann' })
  const before = await app.ws.to('room').send({ n: 1 })
  assert.deepEqual(JSON.parse(await client.next()), { n: 1, offset: before })

  await redis.kill()
  // Once the hub knows Redis is down, a room message still reaches the local member, unstamped, and is
  // not kept.
  await until(() => app.ws.history('room').then(() => false, err => err.code === 'WSHUB_ERR_REDIS_UNAVAILABLE'), 5000, 'Redis to be seen down')
  assert.equal(await app.ws.to('room').send({ n: 2 }), undefined)
  assert.deepEqual(JSON.parse(await client.next()), { n: 2 })
  // A join with an offset joins, and says it did not recover.
  const away = await connect(t, app, `/r?since=${before}`)
  assert.deepEqual(JSON.parse(await away.next()).joined, { recovered: false, replayed: 0 })
  away.ws.terminate()

  await redis.start()
  await until(async () => {
    try {
      return (await app.ws.presence('room')).ann?.length === 1
    } catch {
      return false
    }
  }, 10_000, 'the presence to be written again')
  // The history was lost with the restart: an offset from before it recovers nothing.
  const again = await connect(t, app, `/r?since=${before}`)
  assert.deepEqual(JSON.parse(await again.next()).joined, { recovered: false, replayed: 0 })
  const after = await app.ws.to('room').send({ n: 3 })
  assert.match(after, /^\d+-\d+$/)
  assert.deepEqual((await app.ws.history('room')).map(entry => entry.data), [{ n: 3, offset: after }])
})
