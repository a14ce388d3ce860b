// Every member of the hub (`app.ws`), used from HTTP routes as an application would, with
// real ws clients.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { build, connect, until } from './helpers.js'

/** An app where `/ws/:name?rooms=a,b` joins the listed rooms and keeps the connection open. */
async function setup (t, options, routes = () => {}) {
  const conns = new Map()
  const app = await build(t, app => {
    routes(app)
    app.wsRoute('/ws/:name', async conn => {
      for (const room of (conn.query.rooms ?? '').split(',').filter(Boolean)) await conn.join(room)
      conns.set(conn.params.name, conn)
      await new Promise(resolve => conn.signal.addEventListener('abort', resolve))
    })
  }, options)
  const clients = {}
  async function open (name, rooms = '') {
    clients[name] = await connect(t, app, `/ws/${name}?rooms=${rooms}`)
    await until(() => conns.has(name))
    return clients[name]
  }
  return { app, conns, clients, open }
}

describe('send(id, data)', () => {
  test('resolves true and delivers to a known connection, from an HTTP route', async t => {
    const { app, conns, open } = await setup(t, {}, app => {
      app.post('/notify/:id', async request => ({ sent: await app.ws.send(request.params.id, request.body) }))
    })
    const ann = await open('ann')
    const res = await app.inject({ method: 'POST', url: `/notify/${conns.get('ann').id}`, payload: { hello: 'ann' } })
    assert.deepEqual(res.json(), { sent: true })
    assert.equal(await ann.next(), '{"hello":"ann"}')
    assert.equal(await app.ws.send(conns.get('ann').id, Buffer.from([7])), true)
    assert.deepEqual(await ann.next(), Buffer.from([7]))
  })

  test('an unknown or closed id resolves false, never throws', async t => {
    const { app, conns, open } = await setup(t)
    const bob = await open('bob')
    const id = conns.get('bob').id
    assert.equal(await app.ws.send('nope', 'x'), false)
    assert.equal(await app.ws.send('', 'x'), false)
    assert.equal(await app.ws.send(app.ws.nodeId + '.unknown', 'x'), false)
    await bob.close()
    await until(() => conns.get('bob').closed)
    assert.equal(await app.ws.send(id, 'x'), false)
  })

  test('a value JSON cannot represent rejects with WSHUB_ERR_INVALID_PAYLOAD', async t => {
    const { app, conns, open } = await setup(t)
    await open('cy')
    await assert.rejects(app.ws.send(conns.get('cy').id, 1n), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
  })

  test('a connection whose socket is already closing resolves false', async t => {
    const { app, conns, open } = await setup(t)
    await open('dee')
    conns.get('dee').socket.close()
    assert.equal(await app.ws.send(conns.get('dee').id, 'x'), false)
  })
})

describe('close(id, code?, reason?)', () => {
  test('closes a known connection with the code and reason and resolves true', async t => {
    const { app, conns, open } = await setup(t)
    const ann = await open('ann')
    assert.equal(await app.ws.close(conns.get('ann').id, 4003, 'kicked'), true)
    assert.deepEqual(await ann.closed, { code: 4003, reason: 'kicked' })
    assert.equal(app.ws.size, 0)
  })

  test('defaults to 1000; an unknown id resolves false', async t => {
    const { app, conns, open } = await setup(t)
    const ann = await open('ann')
    assert.equal(await app.ws.close('unknown'), false)
    assert.equal(await app.ws.close(conns.get('ann').id), true)
    assert.equal((await ann.closed).code, 1000)
    assert.equal(await app.ws.close(conns.get('ann').id), false)
  })
})

describe('get(id), has(id), size', () => {
  test('get returns the same object the handler has; has and size follow connections', async t => {
    const { app, conns, open } = await setup(t)
    assert.equal(app.ws.size, 0)
    const ann = await open('ann')
    await open('bob')
    const conn = conns.get('ann')
    assert.equal(app.ws.get(conn.id), conn)
    assert.equal(app.ws.get('missing'), undefined)
    assert.equal(await app.ws.has(conn.id), true)
    assert.equal(await app.ws.has('missing'), false)
    assert.equal(app.ws.size, 2)
    await ann.close()
    await until(() => app.ws.size === 1)
    assert.equal(app.ws.get(conn.id), undefined)
    assert.equal(await app.ws.has(conn.id), false)
  })
})

describe('to(room | rooms).except(id | ids).send(data), broadcast, sendAll', () => {
  test('to(room).send reaches every member, the sender included, and nobody else', async t => {
    const { app, open } = await setup(t)
    const a = await open('a', 'r')
    const b = await open('b', 'r')
    const c = await open('c', 'other')
    await app.ws.to('r').send('to r')
    assert.equal(await a.next(), 'to r')
    assert.equal(await b.next(), 'to r')
    assert.ok(await c.silent())
  })

  test('to([a, b]) reaches a member of both rooms once', async t => {
    const { app, open } = await setup(t)
    const both = await open('both', 'x,y')
    const x = await open('x', 'x')
    const y = await open('y', 'y')
    await app.ws.to(['x', 'y', 'x']).send('once')
    for (const client of [both, x, y]) assert.equal(await client.next(), 'once')
    assert.ok(await both.silent())
  })

  test('except(id) and except([ids]) leave connections out; unknown ids are fine', async t => {
    const { app, conns, open } = await setup(t)
    const a = await open('a', 'r')
    const b = await open('b', 'r')
    const c = await open('c', 'r')
    await app.ws.to('r').except(conns.get('a').id).send('not a')
    await app.ws.to('r').except([conns.get('a').id, conns.get('b').id, 'ghost']).send('only c')
    await app.ws.to('r').except(conns.get('a').id).except(conns.get('c').id).send('only b')
    assert.equal(await b.next(), 'not a')
    assert.equal(await b.next(), 'only b')
    assert.equal(await c.next(), 'not a')
    assert.equal(await c.next(), 'only c')
    assert.ok(await a.silent())
    assert.ok(await c.silent(0))
  })

  test('broadcast(room, data) is to(room).send(data)', async t => {
    const { app, open } = await setup(t)
    const a = await open('a', 'r')
    await app.ws.broadcast('r', { n: 1 })
    assert.equal(await a.next(), '{"n":1}')
    await app.ws.broadcast('r', new Uint8Array([1, 2]))
    assert.deepEqual(await a.next(), Buffer.from([1, 2]))
  })

  test('sendAll reaches every connection, in a room or not', async t => {
    const { app, open } = await setup(t)
    const clients = [await open('a', 'r'), await open('b'), await open('c', 'q')]
    await app.ws.sendAll('everyone')
    for (const client of clients) assert.equal(await client.next(), 'everyone')
  })

  test('a room with no members, and an empty list of rooms, are fine', async t => {
    const { app, open } = await setup(t)
    const a = await open('a', 'r')
    await app.ws.to('empty').send('nobody')
    await app.ws.to([]).send('nobody')
    assert.ok(await a.silent())
  })

  test('bad room names and unserializable data reject', async t => {
    const { app } = await setup(t)
    await assert.rejects(app.ws.to('').send('x'), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(app.ws.to(['ok', 'y'.repeat(257)]).send('x'), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(app.ws.broadcast(undefined, 'x'), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(app.ws.to('r').send(undefined), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    await assert.rejects(app.ws.sendAll(Symbol('x')), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
  })

  test('messages from one sender to one room arrive in order', async t => {
    const { app, open } = await setup(t)
    const members = [await open('a', 'r'), await open('b', 'r')]
    for (let i = 0; i < 500; i++) app.ws.to('r').send(`n${i}`)
    for (const member of members) {
      for (let i = 0; i < 500; i++) assert.equal(await member.next(), `n${i}`)
    }
  })

  test('a large binary message reaches every member byte for byte', async t => {
    const { app, open } = await setup(t)
    const members = [await open('a', 'r'), await open('b', 'r'), await open('c', 'r')]
    const payload = Buffer.alloc(200_000, 0xab)
    payload.writeUInt32BE(0xdeadbeef, 100_000)
    await app.ws.to('r').send(payload)
    for (const member of members) assert.ok(payload.equals(await member.next()))
  })

  test('with permessage-deflate, a room message waits behind a message still being compressed', async t => {
    const { app, conns, open } = await setup(t, { websocket: { options: { perMessageDeflate: { threshold: 0 } } } })
    const members = [await open('a', 'r'), await open('b', 'r')]
    assert.match(conns.get('a').socket.extensions, /permessage-deflate/)
    const big = 'z'.repeat(100_000)
    // The direct send is compressed asynchronously; the room message must not overtake it.
    conns.get('a').send(big)
    await app.ws.to('r').send('after the big one')
    assert.equal(await members[0].next(), big)
    assert.equal(await members[0].next(), 'after the big one')
    assert.equal(await members[1].next(), 'after the big one')
  })

  test('a room message counts one delivery per member in stats', async t => {
    const { app, open } = await setup(t)
    await open('a', 'r')
    await open('b', 'r')
    const before = app.ws.stats()
    await app.ws.to('r').send('12345')
    const after = app.ws.stats()
    assert.equal(after.messagesOut - before.messagesOut, 2)
    assert.equal(after.bytesOut - before.bytesOut, 10)
  })
})

describe('join(id, room), leave(id, room)', () => {
  test('move any connection in or out of a room; false for an unknown id', async t => {
    const { app, conns, open } = await setup(t)
    const a = await open('a')
    const id = conns.get('a').id
    assert.equal(await app.ws.join(id, 'vip'), true)
    assert.deepEqual([...conns.get('a').rooms], ['vip'])
    await app.ws.to('vip').send('welcome')
    assert.equal(await a.next(), 'welcome')
    assert.equal(await app.ws.leave(id, 'vip'), true)
    assert.equal(conns.get('a').rooms.size, 0)
    await app.ws.to('vip').send('gone')
    assert.ok(await a.silent())
    assert.equal(await app.ws.join('ghost', 'vip'), false)
    assert.equal(await app.ws.leave('ghost', 'vip'), false)
  })

  test('bad room names reject', async t => {
    const { app, conns, open } = await setup(t)
    await open('a')
    await assert.rejects(app.ws.join(conns.get('a').id, ''), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(app.ws.leave('ghost', 'z'.repeat(257)), { code: 'WSHUB_ERR_INVALID_ROOM' })
  })
})

describe('roomSize(room), members(room), rooms()', () => {
  test('follow joins, leaves and disconnects', async t => {
    const { app, conns, open } = await setup(t)
    assert.equal(await app.ws.roomSize('r'), 0)
    assert.deepEqual(await app.ws.members('r'), [])
    assert.deepEqual(await app.ws.rooms(), [])
    const a = await open('a', 'r,s')
    await open('b', 'r')
    assert.equal(await app.ws.roomSize('r'), 2)
    assert.deepEqual((await app.ws.members('r')).sort(), [conns.get('a').id, conns.get('b').id].sort())
    assert.deepEqual((await app.ws.rooms()).sort(), ['r', 's'])
    await a.close()
    await until(async () => (await app.ws.roomSize('r')) === 1)
    assert.deepEqual(await app.ws.members('r'), [conns.get('b').id])
    assert.deepEqual(await app.ws.rooms(), ['r'], 'a room without members is gone')
  })

  test('bad room names reject', async t => {
    const { app } = await setup(t)
    await assert.rejects(app.ws.roomSize(''), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(app.ws.members(7), { code: 'WSHUB_ERR_INVALID_ROOM' })
  })
})

describe('stats()', () => {
  test('is synchronous, with current counts and cumulative figures', async t => {
    const { app, open } = await setup(t)
    assert.deepEqual(app.ws.stats(), {
      connections: 0, rooms: 0, messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, closedForBackpressure: 0, rateLimited: 0
    })
    const a = await open('a', 'r,s')
    a.send('hi')
    await until(() => app.ws.stats().messagesIn === 1)
    const stats = app.ws.stats()
    assert.equal(stats.connections, 1)
    assert.equal(stats.rooms, 2)
    assert.equal(stats.bytesIn, 2)
    await a.close()
    await until(() => app.ws.stats().connections === 0)
    assert.equal(app.ws.stats().rooms, 0)
    assert.equal(app.ws.stats().messagesIn, 1, 'cumulative figures stay')
  })
})

describe('promises everywhere', () => {
  test('every member but get, size and stats returns a Promise', async t => {
    const { app } = await setup(t)
    const calls = {
      send: app.ws.send('x', 1),
      close: app.ws.close('x'),
      has: app.ws.has('x'),
      toSend: app.ws.to('r').send(1),
      broadcast: app.ws.broadcast('r', 1),
      sendAll: app.ws.sendAll(1),
      join: app.ws.join('x', 'r'),
      leave: app.ws.leave('x', 'r'),
      roomSize: app.ws.roomSize('r'),
      members: app.ws.members('r'),
      rooms: app.ws.rooms()
    }
    for (const [name, value] of Object.entries(calls)) assert.ok(value instanceof Promise, name)
    await Promise.all(Object.values(calls))
  })
})

describe('maxRoomsPerConnection', () => {
  test('a join past it rejects with WSHUB_ERR_TOO_MANY_ROOMS; the rooms already joined, and leaving, still work', async t => {
    const { app, conns, open } = await setup(t, { maxRoomsPerConnection: 3 })
    await open('ann', 'a,b,c')
    const ann = conns.get('ann')
    await assert.rejects(ann.join('d'), { code: 'WSHUB_ERR_TOO_MANY_ROOMS', message: `Connection ${ann.id} is in 3 rooms already (maxRoomsPerConnection)` })
    await assert.rejects(app.ws.join(ann.id, 'd'), { code: 'WSHUB_ERR_TOO_MANY_ROOMS' })
    await ann.join('a') // already in it
    assert.deepEqual((await app.ws.rooms()).sort(), ['a', 'b', 'c'])
    await ann.leave('a')
    await ann.join('d')
    assert.deepEqual((await app.ws.rooms()).sort(), ['b', 'c', 'd'])
  })
})
