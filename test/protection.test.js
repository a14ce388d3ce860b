// The defences: heartbeat, payload limits, origin check, backpressure, rate limit, connection limits.
// Each test fails without its defence.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WebSocketHandler } from '../dist/lib/index.js'
import { build, Client, connect, refusedStatus, sleep, until, urlOf } from './helpers.js'
import { frame, rawConnect } from './raw-client.js'

const keepOpen = conn => new Promise(resolve => conn.signal.addEventListener('abort', resolve))

describe('heartbeat', () => {
  test('a peer that does not answer pings is terminated within two intervals; disconnect() sees 1006', async t => {
    const codes = []
    class Member extends WebSocketHandler {
      async connect () {
        await this.accept()
        await this.join('r')
      }

      disconnect (code) { codes.push(code) }
    }
    const app = await build(t, app => app.wsRoute('/hb', Member), { heartbeat: { interval: 100 } })
    const live = await connect(t, app, '/hb')
    const mute = new Client(urlOf(app, '/hb'), { autoPong: false })
    t.after(() => mute.ws.terminate())
    await mute.open()
    const opened = Date.now()
    await until(() => app.ws.size === 2)
    const { code } = await mute.closed
    const took = Date.now() - opened
    assert.equal(code, 1006)
    assert.ok(took <= 2 * 100 + 150, `terminated after ${took} ms`)
    await until(() => codes.length === 1)
    assert.deepEqual(codes, [1006])
    assert.equal(await app.ws.roomSize('r'), 1, 'it left its room')
    await sleep(350)
    assert.equal(live.ws.readyState, 1, 'a peer that answers stays connected')
    assert.equal(app.ws.size, 1)
  })

  test('heartbeat: false sends no pings', async t => {
    const app = await build(t, app => app.wsRoute('/quiet', keepOpen), { heartbeat: false })
    const client = await connect(t, app, '/quiet')
    let pings = 0
    client.ws.on('ping', () => pings++)
    await sleep(150)
    assert.equal(pings, 0)
    assert.equal(client.ws.readyState, 1)
  })

  test('pings go out every interval, and the timer stops with the app', async t => {
    const app = await build(t, app => app.wsRoute('/ping', keepOpen), { heartbeat: { interval: 40 } })
    const client = await connect(t, app, '/ping')
    let pings = 0
    client.ws.on('ping', () => pings++)
    await sleep(220)
    assert.ok(pings >= 3 && pings <= 6, `${pings} pings`)
  })
})

describe('payload limits', () => {
  test('a frame over maxPayload closes with 1009, invalid UTF-8 with 1007; other connections are unaffected', async t => {
    const app = await build(t, app => app.wsRoute('/echo', async conn => {
      for await (const message of conn) await conn.send(message)
    }), { maxPayload: 1024 })
    const port = app.server.address().port
    const bystander = await connect(t, app, '/echo')

    const big = await rawConnect(port, '/echo')
    t.after(() => big.socket.destroy())
    assert.equal(await big.handshake, 101)
    big.send(frame({ opcode: 0x1, length: 2 * 1024 * 1024, payload: Buffer.alloc(16) }))
    assert.equal(await big.closed, 1009)

    const justFits = await rawConnect(port, '/echo')
    t.after(() => justFits.socket.destroy())
    await justFits.handshake
    justFits.send(frame({ opcode: 0x2, payload: Buffer.alloc(1024, 7) }))
    await until(() => justFits.frames.length === 1)
    assert.equal(justFits.frames[0].payload.length, 1024)

    const bad = await rawConnect(port, '/echo')
    t.after(() => bad.socket.destroy())
    await bad.handshake
    bad.send(frame({ opcode: 0x1, payload: Buffer.from([0x68, 0x69, 0xff, 0xfe]) }))
    assert.equal(await bad.closed, 1007)

    bystander.send('still fine')
    assert.equal(await bystander.next(), 'still fine')
  })
})

describe('allowedOrigins', () => {
  test('a list refuses other origins with 403 and lets the listed one and origin-less clients in', async t => {
    const app = await build(t, app => app.wsRoute('/o', keepOpen), { allowedOrigins: ['https://app.example'] })
    assert.equal(await refusedStatus(app, '/o', { origin: 'https://evil.example' }), 403)
    assert.equal(await refusedStatus(app, '/o', { origin: 'https://app.example.evil.example' }), 403)
    await connect(t, app, '/o', { origin: 'https://app.example' })
    await connect(t, app, '/o')
    await until(() => app.ws.size === 2)
    assert.ok(app.logLines.some(l => l.level === 40 && l.msg === 'ws upgrade refused: origin not allowed' && l.origin === 'https://evil.example'))
  })

  test('a function decides, and is called with undefined when there is no Origin header', async t => {
    const seen = []
    const app = await build(t, app => app.wsRoute('/f', keepOpen), {
      allowedOrigins: origin => {
        seen.push(origin)
        return origin !== undefined && origin.endsWith('.trusted.example')
      }
    })
    assert.equal(await refusedStatus(app, '/f'), 403)
    assert.equal(await refusedStatus(app, '/f', { origin: 'https://evil.example' }), 403)
    await connect(t, app, '/f', { origin: 'https://a.trusted.example' })
    assert.deepEqual(seen, [undefined, 'https://evil.example', 'https://a.trusted.example'])
  })

  test('plain HTTP routes are not checked', async t => {
    const app = await build(t, app => app.get('/api', async () => 'ok'), { allowedOrigins: ['https://app.example'] })
    const res = await app.inject({ url: '/api', headers: { origin: 'https://evil.example' } })
    assert.equal(res.statusCode, 200)
  })
})

describe('connection limits', () => {
  test('the 11th connection from one IP with maxConnectionsPerIp 10 gets 429; a freed slot is reused', async t => {
    const app = await build(t, app => app.wsRoute('/ip', keepOpen), { maxConnectionsPerIp: 10 })
    const clients = []
    for (let i = 0; i < 10; i++) clients.push(await connect(t, app, '/ip'))
    assert.equal(await refusedStatus(app, '/ip'), 429)
    await clients[0].close()
    await until(() => app.ws.size === 9)
    await sleep(20)
    await connect(t, app, '/ip')
    assert.equal(await refusedStatus(app, '/ip'), 429)
  })

  test('past maxConnections the upgrade gets 503; refused upgrades hold no slot', async t => {
    const app = await build(t, app => {
      app.wsRoute('/total', keepOpen)
      app.wsRoute('/denied', keepOpen, { preValidation: async (_request, reply) => reply.code(401).send() })
    }, { maxConnections: 3 })
    for (let i = 0; i < 5; i++) assert.equal(await refusedStatus(app, '/denied'), 401)
    await sleep(20)
    for (let i = 0; i < 3; i++) await connect(t, app, '/total')
    assert.equal(await refusedStatus(app, '/total'), 503)
    assert.ok(app.logLines.some(l => l.msg === 'ws upgrade refused: maxConnections reached'))
  })

  test('injected connections (app.injectWS) are not counted', async t => {
    const app = await build(t, app => app.wsRoute('/inj', keepOpen), { maxConnections: 1 })
    const injected = [await app.injectWS('/inj'), await app.injectWS('/inj')]
    await connect(t, app, '/inj')
    for (const ws of injected) ws.terminate()
  })
})

describe('rate limit', () => {
  test('action drop: past max messages per window the rest are dropped and counted', async t => {
    const app = await build(t, app => app.wsRoute('/rl', async conn => {
      for await (const message of conn) await conn.send(message)
    }), { rateLimit: { max: 10, windowMs: 60_000, action: 'drop' } })
    const client = await connect(t, app, '/rl')
    for (let i = 0; i < 50; i++) client.send(`m${i}`)
    for (let i = 0; i < 10; i++) assert.equal(await client.next(), `m${i}`)
    assert.ok(await client.silent(100))
    assert.equal(app.ws.stats().rateLimited, 40)
    assert.equal(app.ws.stats().messagesIn, 50)
    assert.equal(client.ws.readyState, 1)
  })

  test('action close: a flood closes with 1008', async t => {
    const app = await build(t, app => app.wsRoute('/rlc', keepOpen), { rateLimit: { max: 5, windowMs: 60_000, action: 'close' } })
    const client = await connect(t, app, '/rlc')
    for (let i = 0; i < 20; i++) client.send('flood')
    assert.deepEqual(await client.closed, { code: 1008, reason: 'Rate limit exceeded' })
  })

  test('the window resets', async t => {
    const app = await build(t, app => app.wsRoute('/rlw', async conn => {
      for await (const message of conn) await conn.send(message)
    }), { rateLimit: { max: 2, windowMs: 100 } })
    const client = await connect(t, app, '/rlw')
    for (const m of ['a', 'b', 'c']) client.send(m)
    assert.equal(await client.next(), 'a')
    assert.equal(await client.next(), 'b')
    await sleep(150)
    client.send('d')
    assert.equal(await client.next(), 'd')
    assert.equal(app.ws.stats().rateLimited, 1)
  })
})

describe('backpressure', () => {
  /**
   * 20 fast members and one that stops reading share a room; 20 MB are broadcast to it, paced by the fast
   * members. Returns what each fast member received and the slow member's client.
   */
  async function broadcastToSlowReader (t, action) {
    const conns = []
    const app = await build(t, app => app.wsRoute('/bp', async conn => {
      await conn.join('r')
      conns.push(conn)
    }), { backpressure: { limit: 1_048_576, action }, heartbeat: false })
    const fast = []
    for (let i = 0; i < 20; i++) {
      const client = await connect(t, app, '/bp')
      client.bytes = 0
      client.count = 0
      client.ws.removeAllListeners('message')
      client.ws.on('message', data => { client.count++; client.bytes += data.length })
      fast.push(client)
    }
    const slow = await connect(t, app, '/bp')
    await until(() => conns.length === 21)
    const slowConn = conns[20]
    slow.ws._socket.pause() // stops reading: the server's writes to it pile up
    const payload = Buffer.alloc(64 * 1024, 1)
    const messages = 320 // 20 MiB
    for (let i = 0; i < messages; i++) {
      await app.ws.to('r').send(payload)
      // Pace by the fast members only, as a real publisher paced by its normal clients would be.
      while (conns.slice(0, 20).some(conn => conn.bufferedAmount > 256 * 1024)) await new Promise(resolve => setImmediate(resolve))
    }
    await until(() => fast.every(client => client.count === messages), 10_000, 'every fast member to get every message')
    for (const client of fast) assert.equal(client.bytes, messages * payload.length)
    return { app, slow, slowConn }
  }

  test('action close: the slow reader is closed with 1013 and leaves the room; every fast member gets every message', async t => {
    const { app, slow, slowConn } = await broadcastToSlowReader(t, 'close')
    assert.equal(slowConn.closed, true)
    assert.equal(app.ws.stats().closedForBackpressure, 1)
    assert.equal(await app.ws.roomSize('r'), 20)
    slow.ws._socket.resume()
    assert.equal((await slow.closed).code, 1013)
  })

  test('action drop: messages to the slow reader are skipped while it is over the limit, and counted', async t => {
    const { app, slow, slowConn } = await broadcastToSlowReader(t, 'drop')
    assert.equal(slowConn.closed, false)
    const { dropped, closedForBackpressure } = app.ws.stats()
    assert.ok(dropped > 0, 'some messages were dropped')
    assert.equal(closedForBackpressure, 0)
    let got = 0
    slow.ws.removeAllListeners('message')
    slow.ws.on('message', () => got++)
    slow.ws._socket.resume()
    await until(() => slowConn.bufferedAmount === 0, 10_000, 'the slow member to catch up')
    await sleep(50)
    assert.equal(got + dropped, 320, 'what it did not get was counted as dropped')
    assert.equal(await app.ws.send(slowConn.id, 'after catching up'), true)
  })

  test('send(id) resolves false for a message dropped for backpressure; conn.send still resolves', async t => {
    let conn
    const app = await build(t, app => app.wsRoute('/d', c => { conn = c; return keepOpen(c) }), {
      backpressure: { limit: 1024, action: 'drop' }, heartbeat: false
    })
    const client = await connect(t, app, '/d')
    client.ws._socket.pause()
    const big = Buffer.alloc(256 * 1024)
    let sent = 0
    while (conn.bufferedAmount <= 1024 && sent < 1000) {
      await conn.send(big)
      sent++
    }
    assert.ok(conn.bufferedAmount > 1024)
    assert.equal(await app.ws.send(conn.id, 'dropped'), false)
    await conn.send('also dropped')
    assert.equal(app.ws.stats().dropped, 2)
  })

  test('drain() resolves once the socket can take more, and rejects if the connection closes first', async t => {
    let conn
    const app = await build(t, app => app.wsRoute('/drain', c => { conn = c; return keepOpen(c) }), {
      heartbeat: false, backpressure: { limit: 64 * 1024 * 1024 }
    })
    const client = await connect(t, app, '/drain')
    await conn.drain() // nothing buffered: at once
    client.ws._socket.pause()
    const chunk = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < 8; i++) await conn.send(chunk)
    assert.ok(conn.bufferedAmount > 0)
    let drained = false
    const waiting = conn.drain().then(() => { drained = true })
    await sleep(50)
    assert.equal(drained, false, 'still waiting while the peer does not read')
    client.ws._socket.resume()
    await waiting
    assert.equal(drained, true)

    client.ws._socket.pause()
    for (let i = 0; i < 8; i++) await conn.send(chunk)
    const failing = conn.drain()
    conn.socket.terminate()
    await assert.rejects(failing, { code: 'WSHUB_ERR_CONNECTION_CLOSED' })
    await assert.rejects(conn.drain(), { code: 'WSHUB_ERR_CONNECTION_CLOSED' })
  })
})
