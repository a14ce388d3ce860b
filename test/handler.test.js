// The class base, WebSocketHandler: connect / accept / receive / disconnect, with real ws clients.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WebSocketDisconnect, WebSocketHandler } from '../dist/lib/index.js'
import { build, connect, deferred, sleep, until } from './helpers.js'

describe('connect()', () => {
  test('a class without connect() is accepted at once and gets the path parameters on this', async t => {
    const got = deferred()
    class Echo extends WebSocketHandler {
      receive (data) { return this.send(`${this.params.id}:${data}`) }
    }
    const app = await build(t, app => {
      app.wsRoute('/echo/:id', Echo)
      app.addHook('onRequest', async () => {})
      app.get('/probe', async () => { got.resolve(app.ws.size); return 'ok' })
    })
    const client = await connect(t, app, '/echo/7')
    client.send('hi')
    assert.equal(await client.next(), '7:hi')
    await app.inject('/probe')
    assert.equal(await got.promise, 1)
  })

  test('connect(params) receives the path parameters; accept() lets the connection in', async t => {
    const seen = deferred()
    class Book extends WebSocketHandler {
      async connect (params) {
        seen.resolve({ ...params })
        if (this.query.token === 'ok') await this.accept()
      }

      async receive (data) { await this.send(data) }
    }
    const app = await build(t, app => app.wsRoute('/ws/book/:id', Book))
    const client = await connect(t, app, '/ws/book/42?token=ok')
    assert.deepEqual(await seen.promise, { id: '42' })
    client.send('ping')
    assert.equal(await client.next(), 'ping')
    const [conn] = app.ws.registry.connections.values()
    assert.ok(conn instanceof Book)
    assert.equal(app.ws.get(conn.id), conn, 'app.ws.get returns the handler instance')
  })

  test('connect() that does not accept closes the socket with 1008; disconnect() does not run', async t => {
    let disconnects = 0
    class Guarded extends WebSocketHandler {
      async connect () { if (this.query.token) await this.accept() }
      disconnect () { disconnects++ }
    }
    const app = await build(t, app => app.wsRoute('/guarded', Guarded))
    const client = await connect(t, app, '/guarded')
    assert.deepEqual(await client.closed, { code: 1008, reason: 'Connection not accepted' })
    assert.equal(app.ws.size, 0)
    await sleep(20)
    assert.equal(disconnects, 0)
  })

  test('a synchronous connect() works the same way', async t => {
    class Sync extends WebSocketHandler {
      connect () { if (this.query.ok) this.accept() }
      receive (data) { this.send(data) }
    }
    const app = await build(t, app => app.wsRoute('/sync', Sync))
    const refused = await connect(t, app, '/sync')
    assert.equal((await refused.closed).code, 1008)
    const allowed = await connect(t, app, '/sync?ok=1')
    allowed.send('x')
    assert.equal(await allowed.next(), 'x')
  })

  test('before accept(), send and join reject with WSHUB_ERR_NOT_ACCEPTED', async t => {
    const errors = deferred()
    class Early extends WebSocketHandler {
      async connect () {
        const results = await Promise.allSettled([this.send('too early'), this.join('room')])
        errors.resolve(results.map(r => r.reason?.code))
        assert.equal(this.accepted, false)
        assert.equal(this.hub.get(this.id), undefined, 'not in the hub before accept()')
        await this.accept()
      }
    }
    const app = await build(t, app => app.wsRoute('/early', Early))
    await connect(t, app, '/early')
    assert.deepEqual(await errors.promise, ['WSHUB_ERR_NOT_ACCEPTED', 'WSHUB_ERR_NOT_ACCEPTED'])
  })

  test('messages that arrive before accept() are held and delivered after it, in order', async t => {
    const release = deferred()
    const received = []
    class Slow extends WebSocketHandler {
      async connect () {
        await release.promise
        await this.accept()
      }

      receive (data) { received.push(data) }
    }
    const app = await build(t, app => app.wsRoute('/slow', Slow))
    const client = await connect(t, app, '/slow')
    for (let i = 0; i < 10; i++) client.send(`m${i}`)
    await until(() => app.ws.stats().messagesIn === 10)
    assert.deepEqual(received, [])
    release.resolve()
    await until(() => received.length === 10)
    assert.deepEqual(received, Array.from({ length: 10 }, (_, i) => `m${i}`))
  })

  test('connect() may read a first message itself (authentication by message)', async t => {
    const received = []
    class Auth extends WebSocketHandler {
      async connect () {
        const hello = await this.receiveJson()
        if (hello.token === 'secret') await this.accept()
      }

      receive (data) { received.push(data) }
    }
    const app = await build(t, app => app.wsRoute('/auth', Auth))
    const good = await connect(t, app, '/auth')
    good.send(JSON.stringify({ token: 'secret' }))
    good.send('after auth')
    await until(() => received.length === 1)
    assert.deepEqual(received, ['after auth'])
    const bad = await connect(t, app, '/auth')
    bad.send(JSON.stringify({ token: 'wrong' }))
    assert.equal((await bad.closed).code, 1008)
  })

  test('connect() that throws closes with 1011 and logs the error', async t => {
    class Broken extends WebSocketHandler {
      async connect () { throw new Error('connect exploded') }
    }
    const app = await build(t, app => app.wsRoute('/broken', Broken))
    const client = await connect(t, app, '/broken')
    assert.deepEqual(await client.closed, { code: 1011, reason: 'Internal error' })
    const line = app.logLines.find(l => l.err?.message === 'connect exploded')
    assert.equal(line.level, 50)
    assert.equal(line.msg, 'ws handler failed')
    assert.ok(line.connId)
  })

  test('a synchronous connect() that throws closes with 1011 too', async t => {
    class SyncBroken extends WebSocketHandler {
      connect () { throw new Error('sync connect exploded') }
    }
    const app = await build(t, app => app.wsRoute('/sync-broken', SyncBroken))
    const client = await connect(t, app, '/sync-broken')
    assert.equal((await client.closed).code, 1011)
    assert.ok(app.logLines.some(l => l.err?.message === 'sync connect exploded'))
  })

  test('super.connect() accepts, as a class without connect() is', async t => {
    class Delegating extends WebSocketHandler {
      connect (params) {
        this.state.seen = params.id
        return super.connect(params)
      }

      receive () { return this.send(this.state.seen) }
    }
    const app = await build(t, app => app.wsRoute('/delegating/:id', Delegating))
    const client = await connect(t, app, '/delegating/9')
    client.send('?')
    assert.equal(await client.next(), '9')
  })

  test('the peer leaving during connect() ends it quietly: no accept, no disconnect()', async t => {
    const release = deferred()
    let disconnects = 0
    class Waiting extends WebSocketHandler {
      async connect () {
        await release.promise
      }

      disconnect () { disconnects++ }
    }
    const app = await build(t, app => app.wsRoute('/waiting', Waiting))
    const client = await connect(t, app, '/waiting')
    await client.close()
    release.resolve()
    await sleep(20)
    assert.equal(disconnects, 0)
    assert.equal(app.ws.size, 0)
  })
})

describe('receive()', () => {
  test('is called one at a time, in arrival order, each waiting for the previous promise', async t => {
    const log = []
    let active = 0
    let maxActive = 0
    class Serial extends WebSocketHandler {
      async receive (data) {
        active++
        maxActive = Math.max(maxActive, active)
        log.push(`start ${data}`)
        await sleep(data === 'a' ? 30 : 1)
        log.push(`end ${data}`)
        active--
      }
    }
    const app = await build(t, app => app.wsRoute('/serial', Serial))
    const client = await connect(t, app, '/serial')
    client.send('a')
    client.send('b')
    client.send('c')
    await until(() => log.length === 6)
    assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
    assert.equal(maxActive, 1)
  })

  test('gets strings for text and Buffers for binary', async t => {
    const received = []
    class Kinds extends WebSocketHandler {
      receive (data) { received.push(data) }
    }
    const app = await build(t, app => app.wsRoute('/kinds', Kinds))
    const client = await connect(t, app, '/kinds')
    client.send('text')
    client.send(Buffer.from([1, 2]))
    await until(() => received.length === 2)
    assert.equal(received[0], 'text')
    assert.ok(Buffer.isBuffer(received[1]))
    assert.deepEqual(received[1], Buffer.from([1, 2]))
  })

  test('a slow receive() pauses reading from the socket rather than queueing without bound', async t => {
    const release = deferred()
    let count = 0
    class Stuck extends WebSocketHandler {
      async receive () {
        count++
        await release.promise
      }
    }
    const app = await build(t, app => app.wsRoute('/stuck', Stuck))
    const client = await connect(t, app, '/stuck')
    const filler = 'y'.repeat(1000)
    for (let i = 0; i < 2000; i++) client.send(filler)
    const [conn] = app.ws.registry.connections.values()
    await until(() => conn.socket.isPaused, 2000, 'the socket to pause')
    await sleep(100)
    assert.ok(app.ws.stats().messagesIn < 600, `paused after ${app.ws.stats().messagesIn} messages`)
    assert.equal(count, 1)
    release.resolve()
    await until(() => count === 2000, 5000, 'every message to be handled')
    assert.equal(conn.socket.isPaused, false)
  })

  test('a receive() that throws closes with 1011, logs, and the server keeps serving', async t => {
    class Fragile extends WebSocketHandler {
      receive (data) {
        if (data === 'boom') throw new Error('receive exploded')
        return this.send(`ok ${data}`)
      }
    }
    const app = await build(t, app => app.wsRoute('/fragile', Fragile))
    const first = await connect(t, app, '/fragile')
    const other = await connect(t, app, '/fragile')
    first.send('boom')
    assert.equal((await first.closed).code, 1011)
    assert.ok(app.logLines.some(l => l.level === 50 && l.err?.message === 'receive exploded'))
    other.send('still here')
    assert.equal(await other.next(), 'ok still here')
    const again = await connect(t, app, '/fragile')
    again.send('new')
    assert.equal(await again.next(), 'ok new')
  })

  test('an async receive() that rejects closes with 1011', async t => {
    class Rejecting extends WebSocketHandler {
      async receive () { throw new TypeError('async failure') }
    }
    const app = await build(t, app => app.wsRoute('/rejecting', Rejecting))
    const client = await connect(t, app, '/rejecting')
    client.send('x')
    assert.equal((await client.closed).code, 1011)
  })
})

describe('disconnect()', () => {
  test('runs once with the peer\'s close code, after the connection left its rooms and the hub', async t => {
    const calls = []
    class Tracked extends WebSocketHandler {
      async connect () {
        await this.accept()
        await this.join('lobby')
      }

      async disconnect (code, reason) {
        calls.push({ code, reason, inHub: this.hub.get(this.id) !== undefined, rooms: this.rooms.size, closed: this.closed })
      }
    }
    const app = await build(t, app => app.wsRoute('/tracked', Tracked))
    const client = await connect(t, app, '/tracked')
    await until(async () => (await app.ws.roomSize('lobby')) === 1)
    await client.close(4002, 'leaving')
    await until(() => calls.length === 1)
    await sleep(20)
    assert.deepEqual(calls, [{ code: 4002, reason: 'leaving', inHub: false, rooms: 0, closed: true }])
    assert.equal(await app.ws.roomSize('lobby'), 0)
  })

  test('runs with the server\'s code when the server closes, whoever calls close', async t => {
    const codes = []
    class Closable extends WebSocketHandler {
      receive (data) { if (data === 'close me') return this.close(4100, 'by handler') }
      disconnect (code) { codes.push(code) }
    }
    const app = await build(t, app => app.wsRoute('/closable', Closable))
    const a = await connect(t, app, '/closable')
    a.send('close me')
    assert.equal((await a.closed).code, 4100)
    const b = await connect(t, app, '/closable')
    await until(() => app.ws.size === 1)
    const [conn] = app.ws.registry.connections.values()
    await app.ws.close(conn.id, 4200)
    assert.equal((await b.closed).code, 4200)
    await until(() => codes.length === 2)
    assert.deepEqual(codes, [4100, 4200])
  })

  test('a peer that goes away without a close frame gives 1006', async t => {
    const codes = []
    class Dropped extends WebSocketHandler {
      disconnect (code) { codes.push(code) }
    }
    const app = await build(t, app => app.wsRoute('/dropped', Dropped))
    const client = await connect(t, app, '/dropped')
    client.ws.terminate()
    await until(() => codes.length === 1)
    assert.deepEqual(codes, [1006])
  })

  test('a disconnect() that throws is logged and does not crash', async t => {
    class Noisy extends WebSocketHandler {
      disconnect () { throw new Error('disconnect exploded') }
    }
    class NoisyAsync extends WebSocketHandler {
      async disconnect () { throw new Error('async disconnect exploded') }
    }
    const app = await build(t, app => {
      app.wsRoute('/noisy', Noisy)
      app.wsRoute('/noisy-async', NoisyAsync)
    })
    await (await connect(t, app, '/noisy')).close()
    await (await connect(t, app, '/noisy-async')).close()
    await until(() => app.logLines.filter(l => l.msg === 'ws disconnect() failed').length === 2)
  })
})

describe('construction', () => {
  test('constructing a handler by hand throws WSHUB_ERR_HANDLER_CONSTRUCTED', () => {
    class Mine extends WebSocketHandler {}
    assert.throws(() => new Mine(), err => err.code === 'WSHUB_ERR_HANDLER_CONSTRUCTED' && err instanceof TypeError)
  })

  test('a subclass may declare its own constructor and fields', async t => {
    class WithFields extends WebSocketHandler {
      count = 0
      constructor () {
        super()
        this.greeting = 'hello'
      }

      receive () {
        this.count++
        return this.send(`${this.greeting} ${this.count}`)
      }
    }
    const app = await build(t, app => app.wsRoute('/fields', WithFields))
    const client = await connect(t, app, '/fields')
    client.send('a')
    client.send('b')
    assert.equal(await client.next(), 'hello 1')
    assert.equal(await client.next(), 'hello 2')
  })

  test('a constructor that throws closes with 1011 and logs', async t => {
    class Exploding extends WebSocketHandler {
      constructor () {
        super()
        throw new Error('constructor exploded')
      }
    }
    const app = await build(t, app => app.wsRoute('/exploding', Exploding))
    const client = await connect(t, app, '/exploding')
    assert.equal((await client.closed).code, 1011)
    assert.ok(app.logLines.some(l => l.err?.message === 'constructor exploded'))
  })

  test('the pull API works on a class handler too, and an escaping WebSocketDisconnect is not an error', async t => {
    class Puller extends WebSocketHandler {
      async connect () {
        await this.accept()
        const first = await this.receiveText()
        await this.send(`got ${first}`)
        await this.receiveText() // rejects with WebSocketDisconnect once the peer leaves
      }
    }
    const app = await build(t, app => app.wsRoute('/puller', Puller))
    const client = await connect(t, app, '/puller')
    client.send('one')
    assert.equal(await client.next(), 'got one')
    await client.close()
    await sleep(30)
    assert.ok(!app.logLines.some(l => l.level >= 50), 'nothing logged as an error')
    assert.ok(app.logLines.some(l => l.msg === 'ws handler ended on disconnect'))
    assert.ok(new WebSocketDisconnect(1000) instanceof Error)
  })
})
