// The history and recovery tests, run on one process (history in memory) and on a real redis-server
// (history in Redis streams) by history.test.js and history-redis.test.js.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { build, Client, connect, sleep, until, urlOf } from './helpers.js'

/** A route that joins `room` with `since` from the query and reports the join's result first. */
function feedRoute (app) {
  app.wsRoute('/feed/:room', async conn => {
    const result = await conn.join(conn.params.room, { since: conn.query.since })
    await conn.sendJson({ joined: result })
    for await (const message of conn) await conn.broadcast(conn.params.room, JSON.parse(message))
  })
}

/** Reads messages until one has `joined`; resolves with it and the messages before it. */
async function untilJoined (client) {
  const before = []
  for (;;) {
    const message = JSON.parse(await client.next(5000))
    if (message.joined !== undefined) return { joined: message.joined, before }
    before.push(message)
  }
}

/**
 * @param {string} name - what the suite runs on
 * @param {(history: object) => object} options - the registration options for a `history` setting
 */
export function historySuite (name, options) {
  test(`${name}: to(room).send resolves with increasing offsets; stamp on live single-room objects only`, async t => {
    const app = await build(t, feedRoute, options({ size: 10, stamp: 'offset' }))
    const client = await connect(t, app, '/feed/a')
    assert.deepEqual((await untilJoined(client)).joined, { recovered: false, replayed: 0 })
    const first = await app.ws.to('a').send({ n: 1 })
    const second = await app.ws.broadcast('a', {})
    assert.match(first, /^\d+-\d+$/)
    assert.notEqual(first, second)
    assert.deepEqual(JSON.parse(await client.next()), { n: 1, offset: first })
    assert.deepEqual(JSON.parse(await client.next()), { offset: second })
    // Not a plain object, or more than one room: as sent.
    assert.match(await app.ws.to('a').send([1, 2]), /^\d+-\d+$/)
    assert.match(await app.ws.to('a').send('text'), /^\d+-\d+$/)
    assert.equal(await client.next(), '[1,2]')
    assert.equal(await client.next(), 'text')
    assert.equal(await app.ws.to(['a', 'b']).send({ n: 2 }), undefined)
    assert.deepEqual(JSON.parse(await client.next()), { n: 2 })
    // A property of the stamp's name in the object is overridden.
    const third = await app.ws.to('a').send({ offset: 'mine' })
    assert.deepEqual(JSON.parse(await client.next()), { offset: third })
    // sendAll and send(id) are not kept.
    await app.ws.sendAll({ all: true })
    await client.next()
    const kept = await app.ws.history('a')
    assert.deepEqual(kept.map(entry => entry.data), [{ n: 1, offset: first }, { offset: second }, [1, 2], 'text', { n: 2 }, { offset: third }])
    assert.equal(new Set(kept.map(entry => entry.offset)).size, kept.length)
    assert.deepEqual((await app.ws.history('b')).map(entry => entry.data), [{ n: 2 }])
  })

  test(`${name}: join with since replays what came after it, then live, and says it recovered`, async t => {
    const app = await build(t, feedRoute, options({ size: 5, stamp: 'offset' }))
    const offsets = []
    for (let i = 0; i < 4; i++) offsets.push(await app.ws.to('r').send({ i }))
    await app.ws.to('r').send(Buffer.from([1, 2, 3]))
    const client = await connect(t, app, `/feed/r?since=${offsets[1]}`)
    const replayed = [JSON.parse(await client.next()), JSON.parse(await client.next()), await client.next()]
    assert.deepEqual(replayed.slice(0, 2), [{ i: 2, offset: offsets[2] }, { i: 3, offset: offsets[3] }])
    assert.deepEqual(replayed[2], Buffer.from([1, 2, 3]))
    assert.deepEqual((await untilJoined(client)).joined, { recovered: true, replayed: 3 })
    const live = await app.ws.to('r').send({ i: 5 })
    assert.deepEqual(JSON.parse(await client.next()), { i: 5, offset: live })
    // The newest offset: nothing to replay, and nothing missing.
    const latest = await connect(t, app, `/feed/r?since=${live}`)
    assert.deepEqual((await untilJoined(latest)).joined, { recovered: true, replayed: 0 })
  })

  test(`${name}: an offset trimmed by size or by ttl, lost, or not an offset recovers nothing`, async t => {
    const app = await build(t, feedRoute, options({ size: 3, ttl: 400 }))
    const first = await app.ws.to('t').send('one')
    for (let i = 0; i < 3; i++) await app.ws.to('t').send(`m${i}`)
    for (const since of [first, 'garbage', '1-0', `${Date.now() + 1000}-0`]) {
      const client = await connect(t, app, `/feed/t?since=${encodeURIComponent(since)}`)
      const { joined, before } = await untilJoined(client)
      assert.deepEqual(joined, { recovered: false, replayed: 0 }, since)
      assert.deepEqual(before, [])
      client.ws.terminate()
    }
    // Held by size, but older than the ttl: not replayed, not listed.
    const recent = (await app.ws.history('t')).at(-1).offset
    await until(async () => (await app.ws.history('t')).length === 0, 5000, 'the ttl to pass')
    const client = await connect(t, app, `/feed/t?since=${recent}`)
    assert.deepEqual((await untilJoined(client)).joined, { recovered: false, replayed: 0 })
  })

  test(`${name}: history(room, { since, limit }) lists oldest first, as sent`, async t => {
    const app = await build(t, () => {}, options({}))
    const a = await app.ws.to('h').send({ a: 1 })
    const b = await app.ws.to('h').send('two')
    const c = await app.ws.to('h').send(Buffer.from('three'))
    assert.deepEqual(await app.ws.history('h'), [{ offset: a, data: { a: 1 } }, { offset: b, data: 'two' }, { offset: c, data: Buffer.from('three') }])
    assert.deepEqual((await app.ws.history('h', { limit: 2 })).map(entry => entry.offset), [b, c])
    assert.deepEqual((await app.ws.history('h', { since: a })).map(entry => entry.offset), [b, c])
    assert.deepEqual((await app.ws.history('h', { since: a, limit: 1 })).map(entry => entry.offset), [b])
    assert.deepEqual(await app.ws.history('h', { since: 'nope' }), [])
    assert.deepEqual(await app.ws.history('empty'), [])
    await assert.rejects(app.ws.history('h', { limit: 0 }), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    await assert.rejects(app.ws.history(''), { code: 'WSHUB_ERR_INVALID_ROOM' })
  })

  test(`${name}: clients that reconnect again and again during a steady stream miss nothing and get nothing twice`, async t => {
    const app = await build(t, feedRoute, options({ size: 1000, stamp: 'offset' }))
    let seq = 0
    const stream = { on: true }
    const sender = (async () => {
      while (stream.on) {
        await app.ws.to('s').send({ seq: seq++ })
        if (seq % 4 === 0) await new Promise(resolve => setImmediate(resolve))
      }
    })()
    const run = async () => {
      const seen = []
      let last
      for (let round = 0; round < 12; round++) {
        const client = new Client(urlOf(app, `/feed/s${last === undefined ? '' : `?since=${last}`}`))
        await client.open()
        let joined = null
        const want = 20 + Math.floor(Math.random() * 30)
        let got = 0
        while (got < want || joined === null) {
          const message = JSON.parse(await client.next(5000))
          if (message.joined !== undefined) {
            joined = message.joined
            // A plain join (the first round) may see live messages before it resolves; a join with since
            // must recover.
            if (round > 0) assert.equal(joined.recovered, true)
            continue
          }
          seen.push(message.seq)
          last = message.offset
          got++
        }
        client.ws.terminate()
        await sleep(Math.floor(Math.random() * 10))
      }
      return seen
    }
    let results
    try {
      results = await Promise.all([run(), run(), run()])
    } finally {
      stream.on = false
      await sender
    }
    for (const seen of results) {
      for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1] + 1, `seq ${seen[i - 1]} then ${seen[i]}`)
    }
  })
}
