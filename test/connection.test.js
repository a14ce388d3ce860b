// Every member of the connection, on a function handler's `conn`, with real ws clients.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Connection, WebSocketDisconnect } from '../dist/lib/index.js'
import { build, connect, deferred, sleep, until } from './helpers.js'

/** Keeps a function handler running until its connection closes (a handler that returns stops reading). */
function untilClosed (conn) {
  return new Promise(resolve => conn.signal.addEventListener('abort', resolve))
}

/** An app with one route that hands its connection out, and a client connected to it. */
async function setup (t, path = '/ws', url = path, handler = untilClosed, options) {
  const got = deferred()
  const app = await build(t, app => {
    app.wsRoute(path, async conn => {
      got.resolve(conn)
      await handler(conn)
    })
  }, options)
  const client = await connect(t, app, url)
  const conn = await got.promise
  return { app, client, conn }
}

describe('identity and request shortcuts', () => {
  test('id is URL-safe, unique, and starts with the node id', async t => {
    const ids = []
    const app = await build(t, app => app.wsRoute('/ws', conn => { ids.push(conn.id) }))
    for (let i = 0; i < 5; i++) await connect(t, app, '/ws')
    await until(() => ids.length === 5)
    assert.equal(new Set(ids).size, 5)
    for (const id of ids) {
      assert.match(id, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
      assert.equal(encodeURIComponent(id), id)
      assert.ok(id.startsWith(app.ws.nodeId + '.'))
    }
  })

  test('request, params, query, headers, path, ip, protocol', async t => {
    const got = deferred()
    const app = await build(t, app => {
      app.wsRoute('/rooms/:room/users/:user', conn => got.resolve(conn))
    })
    await connect(t, app, '/rooms/lobby/users/ann?token=abc&x=1', { headers: { 'x-test': 'yes' } })
    const conn = await got.promise
    assert.ok(conn instanceof Connection)
    assert.equal(conn.request.url, '/rooms/lobby/users/ann?token=abc&x=1')
    assert.deepEqual({ ...conn.params }, { room: 'lobby', user: 'ann' })
    assert.deepEqual({ ...conn.query }, { token: 'abc', x: '1' })
    assert.equal(conn.headers['x-test'], 'yes')
    assert.equal(conn.path, '/rooms/lobby/users/ann')
    assert.equal(conn.ip, '127.0.0.1')
    assert.equal(conn.protocol, '')
    assert.equal(conn.hub, app.ws)
  })

  test('path without a query string is the URL itself', async t => {
    const { conn } = await setup(t, '/plain')
    assert.equal(conn.path, '/plain')
  })

  test('protocol is the negotiated subprotocol', async t => {
    const got = deferred()
    const app = await build(t, app => app.wsRoute('/p', conn => got.resolve(conn)))
    const { Client, urlOf } = await import('./helpers.js')
    const client = new Client(urlOf(app, '/p'), ['chat.v2', 'chat.v1'])
    t.after(() => client.ws.terminate())
    await client.open()
    assert.equal((await got.promise).protocol, 'chat.v2')
  })

  test('log is a child logger carrying the connection id', async t => {
    const { app, conn } = await setup(t)
    conn.log.info('hello from the connection')
    const line = app.logLines.find(l => l.msg === 'hello from the connection')
    assert.equal(line.connId, conn.id)
    assert.equal(conn.log, conn.log, 'the child logger is made once')
  })
})

describe('state, accepted, closed, signal, accept()', () => {
  test('state is a plain object kept per connection, and may be replaced', async t => {
    const { conn } = await setup(t)
    assert.deepEqual(conn.state, {})
    conn.state.user = 'ann'
    assert.equal(conn.state.user, 'ann')
    conn.state = { user: 'bob' }
    assert.deepEqual(conn.state, { user: 'bob' })
  })

  test('a function handler connection is accepted; accept() is idempotent', async t => {
    const { app, conn } = await setup(t)
    assert.equal(conn.accepted, true)
    assert.equal(conn.closed, false)
    await conn.accept()
    await conn.accept()
    assert.equal(app.ws.size, 1)
  })

  test('closed turns true and signal aborts with a WebSocketDisconnect when the peer closes', async t => {
    const { client, conn } = await setup(t)
    const signal = conn.signal
    assert.equal(signal.aborted, false)
    const aborted = new Promise(resolve => signal.addEventListener('abort', resolve))
    client.close(4001, 'bye')
    await aborted
    assert.equal(conn.closed, true)
    assert.equal(conn.accepted, false)
    assert.ok(signal.reason instanceof WebSocketDisconnect)
    assert.equal(signal.reason.code, 4001)
    assert.equal(signal.reason.reason, 'bye')
  })

  test('signal read after the close is already aborted', async t => {
    const { client, conn } = await setup(t)
    await client.close(1000)
    await until(() => conn.closed)
    assert.equal(conn.signal.aborted, true)
    assert.equal(conn.signal.reason.code, 1000)
  })

  test('accept() after close rejects', async t => {
    const { client, conn } = await setup(t)
    await client.close()
    await until(() => conn.closed)
    await assert.rejects(conn.accept(), { code: 'WSHUB_ERR_CONNECTION_CLOSED' })
  })
})

describe('sending', () => {
  test('send: string -> text, Buffer / ArrayBuffer / typed array -> binary, other -> JSON text', async t => {
    const { client, conn } = await setup(t)
    await conn.send('hello')
    assert.equal(await client.next(), 'hello')
    await conn.send(Buffer.from([1, 2, 3]))
    assert.deepEqual(await client.next(), Buffer.from([1, 2, 3]))
    await conn.send(new Uint8Array([4, 5]).buffer)
    assert.deepEqual(await client.next(), Buffer.from([4, 5]))
    const view = new Uint16Array([0x0102, 0x0304]).subarray(1)
    await conn.send(view)
    assert.deepEqual(await client.next(), Buffer.from(view.buffer, view.byteOffset, view.byteLength))
    await conn.send({ a: 1, b: [true, null] })
    assert.equal(await client.next(), '{"a":1,"b":[true,null]}')
    await conn.send(42)
    assert.equal(await client.next(), '42')
  })

  test('sendText, sendBytes, sendJson are the explicit forms', async t => {
    const { client, conn } = await setup(t)
    await conn.sendText('{"not":"parsed"}')
    assert.equal(await client.next(), '{"not":"parsed"}')
    await conn.sendBytes(Buffer.from('bytes'))
    const bytes = await client.next()
    assert.ok(Buffer.isBuffer(bytes))
    assert.equal(bytes.toString(), 'bytes')
    await conn.sendJson('a string')
    assert.equal(await client.next(), '"a string"')
  })

  test('the explicit forms reject the wrong kind of value', async t => {
    const { conn } = await setup(t)
    await assert.rejects(conn.sendText(42), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    await assert.rejects(conn.sendBytes('text'), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    await assert.rejects(conn.sendBytes({}), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
  })

  test('a value JSON cannot represent rejects with WSHUB_ERR_INVALID_PAYLOAD and nothing is sent', async t => {
    const { client, conn } = await setup(t)
    const cyclic = {}
    cyclic.self = cyclic
    await assert.rejects(conn.send(cyclic), err => err.code === 'WSHUB_ERR_INVALID_PAYLOAD' && err.cause instanceof TypeError)
    await assert.rejects(conn.sendJson(10n), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    await assert.rejects(conn.send(undefined), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    await assert.rejects(conn.sendJson(() => {}), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    assert.equal(conn.closed, false)
    assert.ok(await client.silent(50))
  })

  test('send after close rejects with WSHUB_ERR_CONNECTION_CLOSED', async t => {
    const { client, conn } = await setup(t)
    await client.close()
    await until(() => conn.closed)
    for (const attempt of [conn.send('x'), conn.sendText('x'), conn.sendBytes(Buffer.alloc(1)), conn.sendJson(1)]) {
      await assert.rejects(attempt, err => err.code === 'WSHUB_ERR_CONNECTION_CLOSED' && err.message.includes(conn.id))
    }
  })

  test('send while the socket is closing rejects', async t => {
    const { conn } = await setup(t)
    conn.socket.close()
    await assert.rejects(conn.send('late'), { code: 'WSHUB_ERR_CONNECTION_CLOSED' })
  })

  test('stats count messages and bytes both ways', async t => {
    const { app, client, conn } = await setup(t)
    await conn.send('four')
    await client.next()
    client.send('hello')
    assert.equal(await conn.receive(), 'hello')
    const stats = app.ws.stats()
    assert.equal(stats.messagesOut, 1)
    assert.equal(stats.bytesOut, 4)
    assert.equal(stats.messagesIn, 1)
    assert.equal(stats.bytesIn, 5)
  })
})

describe('receiving', () => {
  test('receive: string for text, Buffer for binary, in order', async t => {
    const { client, conn } = await setup(t)
    client.send('one')
    client.send(Buffer.from([9]))
    client.send('three')
    assert.equal(await conn.receive(), 'one')
    assert.deepEqual(await conn.receive(), Buffer.from([9]))
    assert.equal(await conn.receive(), 'three')
  })

  test('receive waits for a message that has not arrived yet', async t => {
    const { client, conn } = await setup(t)
    const pending = conn.receive()
    await sleep(20)
    client.send('later')
    assert.equal(await pending, 'later')
  })

  test('receiveText, receiveBytes, receiveJson', async t => {
    const { client, conn } = await setup(t)
    client.send('text')
    client.send(Buffer.from('bin'))
    client.send('{"n":1,"list":[1,2]}')
    assert.equal(await conn.receiveText(), 'text')
    const bytes = await conn.receiveBytes()
    assert.ok(Buffer.isBuffer(bytes))
    assert.equal(bytes.toString(), 'bin')
    assert.deepEqual(await conn.receiveJson(), { n: 1, list: [1, 2] })
  })

  test('a binary frame to receiveText rejects, is consumed, and the connection stays open', async t => {
    const { client, conn } = await setup(t)
    client.send(Buffer.from([1]))
    client.send('after')
    await assert.rejects(conn.receiveText(), err =>
      err.code === 'WSHUB_ERR_UNEXPECTED_FRAME' && err.message === 'Expected a text message but received a binary one')
    assert.equal(await conn.receiveText(), 'after')
    assert.equal(conn.closed, false)
  })

  test('a text frame to receiveBytes rejects and is consumed', async t => {
    const { client, conn } = await setup(t)
    client.send('text')
    client.send(Buffer.from([2]))
    await assert.rejects(conn.receiveBytes(), { code: 'WSHUB_ERR_UNEXPECTED_FRAME' })
    assert.deepEqual(await conn.receiveBytes(), Buffer.from([2]))
  })

  test('invalid JSON to receiveJson rejects with WSHUB_ERR_INVALID_JSON, is consumed, and the connection stays open', async t => {
    const { client, conn } = await setup(t)
    client.send('{"broken":')
    client.send(Buffer.from('{}'))
    client.send('{"ok":true}')
    await assert.rejects(conn.receiveJson(), err =>
      err.code === 'WSHUB_ERR_INVALID_JSON' && err.statusCode === 400 && err.cause instanceof SyntaxError)
    await assert.rejects(conn.receiveJson(), { code: 'WSHUB_ERR_UNEXPECTED_FRAME' })
    assert.deepEqual(await conn.receiveJson(), { ok: true })
    await conn.send('still open')
    assert.equal(await client.next(), 'still open')
  })

  test('for await yields messages until the peer closes, then ends quietly', async t => {
    const done = deferred()
    const { client } = await setup(t, '/ws', '/ws', async conn => {
      const seen = []
      for await (const message of conn) seen.push(message)
      done.resolve(seen)
    })
    client.send('a')
    client.send(Buffer.from('b'))
    client.send('c')
    await sleep(20)
    client.close()
    assert.deepEqual(await done.promise, ['a', Buffer.from('b'), 'c'])
  })

  test('breaking out of for await leaves the connection open', async t => {
    const { client, conn } = await setup(t)
    client.send('first')
    // eslint-disable-next-line no-unreachable-loop -- leaving the loop after one message is the point
    for await (const message of conn) {
      assert.equal(message, 'first')
      break
    }
    assert.equal(conn.closed, false)
    client.send('second')
    assert.equal(await conn.receive(), 'second')
    const iterator = conn[Symbol.asyncIterator]()
    assert.equal(iterator[Symbol.asyncIterator](), iterator, 'the iterator is iterable itself')
    assert.deepEqual(await iterator.return(), { value: undefined, done: true })
  })

  test('receive after the peer closed rejects with WebSocketDisconnect carrying code and reason', async t => {
    const { client, conn } = await setup(t)
    const pending = conn.receive()
    client.close(4000, 'done')
    await assert.rejects(pending, err => err instanceof WebSocketDisconnect && err.code === 4000 && err.reason === 'done')
    await assert.rejects(conn.receiveText(), WebSocketDisconnect)
    await assert.rejects(conn.receiveBytes(), WebSocketDisconnect)
    await assert.rejects(conn.receiveJson(), WebSocketDisconnect)
  })

  test('messages that arrived before the peer closed can still be read, then receive rejects', async t => {
    const { client, conn } = await setup(t)
    client.send('last words')
    await until(() => conn.hub.stats().messagesIn === 1)
    await client.close(1000)
    await until(() => conn.closed)
    assert.equal(await conn.receive(), 'last words')
    await assert.rejects(conn.receive(), WebSocketDisconnect)
  })

  test('receive on a connection closed before it ever read rejects at once', async t => {
    const { client, conn } = await setup(t)
    await client.close(1001)
    await until(() => conn.closed)
    await assert.rejects(conn.receive(), { name: 'WebSocketDisconnect', code: 1001 })
  })

  test('a slow reader pauses the socket when its queue is full and resumes when drained', async t => {
    const { client, conn } = await setup(t)
    const filler = 'x'.repeat(1000)
    for (let i = 0; i < 2000; i++) client.send(`m${i}${filler}`)
    await until(() => conn.socket.isPaused, 2000, 'the socket to pause')
    await sleep(100)
    // Paused: the queue stops at its mark (plus what the socket had already read), not at 2,000.
    const arrived = conn.hub.stats().messagesIn
    assert.ok(arrived >= 256 && arrived < 600, `reading paused after ${arrived} messages`)
    for (let i = 0; i < 2000; i++) assert.equal(await conn.receive(), `m${i}${filler}`)
    assert.equal(conn.socket.isPaused, false)
  })

  test('a handler that returns without reading leaves the connection open for sending and drops what it receives', async t => {
    const { client, conn } = await setup(t, '/ws', '/ws', async conn => { await conn.join('news') })
    await until(() => conn.rooms.has('news'))
    for (let i = 0; i < 1000; i++) client.send('ignored')
    await until(() => conn.hub.stats().messagesIn === 1000, 3000, 'all messages to be read off the socket')
    assert.equal(conn.socket.isPaused, false)
    await conn.hub.to('news').send('headline')
    assert.equal(await client.next(), 'headline')
    // A receive() made later still gets later messages.
    const later = conn.receive()
    client.send('read me')
    assert.equal(await later, 'read me')
  })
})

describe('close()', () => {
  test('close(code, reason): the client sees them; closed at once; idempotent', async t => {
    const { app, client, conn } = await setup(t)
    await conn.close(4321, 'custom')
    assert.equal(conn.closed, true)
    assert.equal(app.ws.size, 0)
    await conn.close(4000, 'again')
    assert.deepEqual(await client.closed, { code: 4321, reason: 'custom' })
  })

  test('close() defaults to 1000 and an empty reason', async t => {
    const { client, conn } = await setup(t)
    await conn.close()
    assert.deepEqual(await client.closed, { code: 1000, reason: '' })
  })

  test('a close code a server may not send, or a reason over 123 bytes, rejects and leaves the connection open', async t => {
    const { client, conn } = await setup(t)
    for (const code of [999, 1005, 1006, 1015, 2000, 5000, 1000.5, '1000']) {
      await assert.rejects(conn.close(code), { code: 'WSHUB_ERR_INVALID_PAYLOAD' }, String(code))
    }
    await assert.rejects(conn.close(1000, 'x'.repeat(124)), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    assert.equal(conn.closed, false)
    await conn.send('alive')
    assert.equal(await client.next(), 'alive')
  })

  test('closing from the server drops unread messages and rejects pending receives', async t => {
    const { client, conn } = await setup(t)
    client.send('unread')
    await until(() => conn.hub.stats().messagesIn === 1)
    await conn.close(1000)
    await assert.rejects(conn.receive(), { name: 'WebSocketDisconnect', code: 1000 })
  })
})

describe('rooms', () => {
  test('join, leave, rooms', async t => {
    const { app, conn } = await setup(t)
    assert.equal(conn.rooms.size, 0)
    await conn.join('a')
    await conn.join('b')
    await conn.join('a')
    assert.deepEqual([...conn.rooms], ['a', 'b'])
    assert.deepEqual((await app.ws.rooms()).sort(), ['a', 'b'])
    await conn.leave('a')
    await conn.leave('never-joined')
    assert.deepEqual([...conn.rooms], ['b'])
    assert.deepEqual(await app.ws.rooms(), ['b'])
  })

  test('a room is a non-empty string of at most 256 characters', async t => {
    const { conn } = await setup(t)
    await conn.join('x'.repeat(256))
    for (const bad of ['', 'x'.repeat(257), 42, null, undefined, ['a'], [''], {}]) {
      await assert.rejects(conn.join(bad), err => err.code === 'WSHUB_ERR_INVALID_ROOM' && err instanceof TypeError)
      await assert.rejects(conn.leave(bad), { code: 'WSHUB_ERR_INVALID_ROOM' })
    }
    // broadcast and to() also take a list of rooms, so only a list is not an error there.
    for (const bad of ['', 'x'.repeat(257), 42, null, undefined, [''], ['ok', 7], {}]) {
      await assert.rejects(conn.broadcast(bad, 'x'), { code: 'WSHUB_ERR_INVALID_ROOM' })
      await assert.rejects(conn.to(bad).send('x'), { code: 'WSHUB_ERR_INVALID_ROOM' })
    }
    await assert.rejects(conn.join('y'.repeat(300)), /"yyyy.*\.\.\." \(300 characters\)/)
  })

  test('join after close rejects; the closed connection is in no room', async t => {
    const { app, client, conn } = await setup(t)
    await conn.join('r')
    await client.close()
    await until(() => conn.closed)
    assert.equal(conn.rooms.size, 0)
    assert.equal(await app.ws.roomSize('r'), 0)
    await assert.rejects(conn.join('r'), { code: 'WSHUB_ERR_CONNECTION_CLOSED' })
  })

  test('broadcast and to(room).send reach every other member, not the sender', async t => {
    const conns = []
    const app = await build(t, app => app.wsRoute('/room', async conn => {
      await conn.join('r')
      conns.push(conn)
    }))
    const clients = [await connect(t, app, '/room'), await connect(t, app, '/room'), await connect(t, app, '/room')]
    const outsider = await connect(t, app, '/room')
    await until(() => conns.length === 4)
    await conns[3].leave('r')
    const sender = conns[0]
    await sender.broadcast('r', 'via broadcast')
    await sender.to('r').send({ via: 'to' })
    for (const client of clients.slice(1)) {
      assert.equal(await client.next(), 'via broadcast')
      assert.equal(await client.next(), '{"via":"to"}')
    }
    assert.ok(await clients[0].silent())
    assert.ok(await outsider.silent(0))
  })

  test('to([a, b]) from a connection reaches a member of both rooms once', async t => {
    const conns = []
    const app = await build(t, app => app.wsRoute('/m/:rooms', async conn => {
      for (const room of conn.params.rooms.split(',')) await conn.join(room)
      conns.push(conn)
    }))
    const sender = await connect(t, app, '/m/a,b')
    const both = await connect(t, app, '/m/a,b')
    const onlyB = await connect(t, app, '/m/b')
    await until(() => conns.length === 3)
    await conns[0].to(['a', 'b']).send('once')
    assert.equal(await both.next(), 'once')
    assert.equal(await onlyB.next(), 'once')
    assert.ok(await both.silent())
    assert.ok(await sender.silent(0))
  })
})
