// app.close(): every client sees 1001, disconnect() runs, and nothing keeps the process alive.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createConnection } from 'node:net'
import { test } from 'node:test'
import Fastify from 'fastify'
import wsHub, { WebSocketHandler } from '../dist/lib/index.js'
import { Redis } from 'ioredis'
import { Client, deferred, until, urlOf } from './helpers.js'
import { startRedis } from './redis-server.js'

/** An app without the automatic close of `build()`: these tests close it themselves. */
async function listening (setup, options) {
  const app = Fastify()
  await app.register(wsHub, options)
  await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

test('every client sees 1001 and every disconnect() runs before app.close() resolves', async t => {
  const disconnected = []
  class Member extends WebSocketHandler {
    async disconnect (code, reason) {
      await new Promise(resolve => setTimeout(resolve, 20))
      disconnected.push({ code, reason })
    }
  }
  const pending = deferred()
  class Undecided extends WebSocketHandler {
    async connect () { await pending.promise }
  }
  const app = await listening(app => {
    app.wsRoute('/member', Member)
    app.wsRoute('/fn', async conn => { for await (const m of conn) await conn.send(m) })
    app.wsRoute('/undecided', Undecided)
    app.get('/raw', { websocket: true }, () => {})
  })
  const clients = []
  for (const path of ['/member', '/member', '/fn', '/undecided', '/raw']) {
    const client = new Client(urlOf(app, path))
    t.after(() => client.ws.terminate())
    await client.open()
    clients.push(client)
  }
  await until(() => app.ws.size === 3)
  await app.close()
  assert.deepEqual(disconnected, [
    { code: 1001, reason: 'Server shutting down' },
    { code: 1001, reason: 'Server shutting down' }
  ])
  for (const client of clients) assert.equal((await client.closed).code, 1001)
  assert.equal(app.ws.size, 0)
  pending.resolve()
})

test('the hub refuses to publish after app.close()', async () => {
  const app = await listening(() => {})
  await app.close()
  await assert.rejects(app.ws.to('r').send('late'), { code: 'WSHUB_ERR_BROKER_CLOSED', statusCode: 503 })
  assert.equal(await app.ws.send('x', 'late'), false)
})

test('a peer that never answers the close handshake is terminated after closeTimeout', async () => {
  const app = await listening(app => app.wsRoute('/ws', () => {}), { closeTimeout: 300 })
  // A raw TCP client that completes the handshake and then never reads or answers anything.
  const socket = createConnection({ host: '127.0.0.1', port: app.server.address().port })
  socket.write('GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  await once(socket, 'data')
  await until(() => app.ws.size === 1)
  const started = Date.now()
  await app.close()
  const took = Date.now() - started
  assert.ok(took >= 250 && took < 1300, `app.close() took ${took} ms`)
  await once(socket, 'close')
})

/** Runs the close-exits fixture and checks that it exits by itself, soon, after closing its app. */
async function exitsOnItsOwn (env) {
  const child = spawn(process.execPath, [new URL('./fixtures/close-exits.js', import.meta.url).pathname], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env }
  })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  await until(() => /port (\d+)/.test(output), 5000, 'the child server to listen')
  const port = Number(/port (\d+)/.exec(output)[1])
  const clients = ['/class', '/class', '/fn'].map(path => new Client(`ws://127.0.0.1:${port}${path}`))
  await Promise.all(clients.map(client => client.open()))
  const started = Date.now()
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 5000)
  const [code, signal] = await once(child, 'exit')
  clearTimeout(watchdog)
  assert.equal(signal, null, 'the child exited by itself, it was not killed')
  const took = Date.now() - started
  assert.equal(code, 0)
  assert.ok(took < 3000, `exited ${took} ms after the close began`)
  assert.equal(output.match(/disconnect 1001/g)?.length, 2)
  assert.match(output, /closed\n/)
  for (const client of clients) assert.equal((await client.closed).code, 1001)
}

test('the process exits on its own after app.close(): no timer or socket keeps it alive', async () => {
  await exitsOnItsOwn({ REDIS_URL: '' })
})

test('so does a process whose hub runs on Redis, and its keys are gone', async t => {
  const redis = await startRedis(t)
  await exitsOnItsOwn({ REDIS_URL: redis.url })
  const inspect = new Redis(redis.url)
  t.after(() => inspect.disconnect())
  assert.deepEqual(await inspect.keys('*'), [])
})
