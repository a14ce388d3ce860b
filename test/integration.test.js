// The hub on @fastify/websocket, whoever registered it: quiet peer protocol errors, disconnect() codes
// that match what the client saw, shutdown with 1001, a clear error for the wrong registration order,
// and app.injectWS() sockets that close like TCP ones.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import wsHub, { WebSocketHandler } from '../dist/lib/index.js'
import { build, connect, logCapture, until } from './helpers.js'

const run = promisify(execFile)

/** A route whose disconnect() codes are recorded. */
function recordingRoute (app, path, seen) {
  app.wsRoute(path, class extends WebSocketHandler {
    async receive (data) { await this.send(data) }
    disconnect (code) { seen.push(code) }
  })
}

/** An app that registered @fastify/websocket itself, then the hub; logs kept in `app.logLines`. */
async function buildForeign (t, hubOptions = {}, websocketOptions = {}) {
  const log = logCapture()
  const app = Fastify({ logger: { level: 'debug', stream: log.stream } })
  app.logLines = log.lines
  await app.register(fastifyWebsocket, websocketOptions)
  await app.register(wsHub, hubOptions)
  t.after(() => app.close())
  return app
}

describe('a frame over maxPayload', () => {
  for (const who of ['the hub', 'the app']) {
    test(`disconnect() sees 1009, as the client does, and it is logged at warn without a stack (@fastify/websocket registered by ${who})`, async t => {
      const seen = []
      let app
      if (who === 'the hub') {
        app = await build(t, app => recordingRoute(app, '/small', seen), { maxPayload: 100 })
      } else {
        app = await buildForeign(t, { maxPayload: 100 })
        recordingRoute(app, '/small', seen)
        await app.listen({ port: 0, host: '127.0.0.1' })
      }
      const client = await connect(t, app, '/small')
      client.send('x'.repeat(101))
      assert.equal((await client.closed).code, 1009)
      await until(() => seen.length === 1, 2000, 'disconnect()')
      assert.deepEqual(seen, [1009])
      assert.equal(app.ws.size, 0)
      const lines = app.logLines.filter(line => line.err?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
      assert.equal(lines.length, 1)
      assert.equal(lines[0].level, 40, 'warn')
      assert.ok(!lines[0].err.stack, 'no stack')
      assert.ok(!app.logLines.some(line => line.level >= 50), 'nothing logged at error level')
    })
  }
})

describe('shutdown with the app\'s own @fastify/websocket', () => {
  test('clients see 1001 and disconnect() says 1001', async t => {
    const seen = []
    const app = await buildForeign(t)
    recordingRoute(app, '/r', seen)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const clients = [await connect(t, app, '/r'), await connect(t, app, '/r')]
    await app.close()
    for (const client of clients) assert.deepEqual(await client.closed, { code: 1001, reason: 'Server shutting down' })
    assert.deepEqual(seen, [1001, 1001])
  })

  test('a plain @fastify/websocket route beside the hub closes as that plugin closes it (without a code)', async t => {
    const app = await buildForeign(t)
    app.get('/raw', { websocket: true }, () => {})
    await app.listen({ port: 0, host: '127.0.0.1' })
    const client = await connect(t, app, '/raw')
    await app.close()
    assert.equal((await client.closed).code, 1005, 'its preClose runs before the hub\'s')
  })

  test('a socket closed by the application with a code keeps its code', async t => {
    const seen = []
    const app = await buildForeign(t)
    app.wsRoute('/r', class extends WebSocketHandler {
      async receive () { this.socket.close(4001, 'raw close') }
      disconnect (code) { seen.push(code) }
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const client = await connect(t, app, '/r')
    client.send('close me')
    assert.deepEqual(await client.closed, { code: 4001, reason: 'raw close' })
    await until(() => seen.length === 1)
    assert.deepEqual(seen, [4001])
  })
})

describe('registration order', () => {
  test('@fastify/websocket registered after the hub fails with an error naming the order', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub)
    await assert.rejects(async () => { await app.register(fastifyWebsocket) }, {
      code: 'WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER',
      message: /register @fastify\/websocket before fastify-ws-hub/
    })
  })

  test('also inside an encapsulated plugin', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub)
    app.register(async function routes (child) {
      await child.register(fastifyWebsocket)
    })
    await assert.rejects(app.ready(), { code: 'WSHUB_ERR_WEBSOCKET_REGISTERED_AFTER' })
  })

  test('other plugins register as before', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub)
    await app.register(async function other (instance) { instance.decorate('other', 1) }, { prefix: '/x' })
    await app.ready()
  })
})

describe('app.injectWS()', () => {
  test('a client close reaches the server: disconnect() runs and the rooms are left', async t => {
    const seen = []
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub)
    app.wsRoute('/chat/:room', class extends WebSocketHandler {
      async connect (params) {
        await this.accept()
        await this.join(params.room)
      }

      disconnect (code) { seen.push(code) }
    })
    await app.ready()
    const ws = await app.injectWS('/chat/lobby')
    await until(async () => await app.ws.roomSize('lobby') === 1)
    ws.close(1000, 'bye')
    await until(() => seen.length === 1, 2000, 'disconnect()')
    assert.deepEqual(seen, [1000])
    assert.equal(await app.ws.roomSize('lobby'), 0)
    assert.equal(app.ws.size, 0)
  })

  test('a server close reaches the client, and app.close() does not wait for closeTimeout', async t => {
    const log = logCapture()
    const app = Fastify({ logger: { level: 'warn', stream: log.stream } })
    await app.register(wsHub, { closeTimeout: 60_000 })
    app.wsRoute('/bye', async conn => {
      for await (const message of conn) if (message === 'bye') await conn.close(4000, 'done')
    })
    app.wsRoute('/stay', async conn => { for await (const message of conn) await conn.send(message) })
    await app.ready()
    const bye = await app.injectWS('/bye')
    const closed = new Promise(resolve => bye.once('close', (code, reason) => resolve([code, reason.toString()])))
    bye.send('bye')
    assert.deepEqual(await closed, [4000, 'done'])
    await until(() => app.ws.size === 0)
    const stay = await app.injectWS('/stay')
    const shutdown = new Promise(resolve => stay.once('close', code => resolve(code)))
    // Over TCP this completes in a round trip; an injected stream that never closed would hold
    // app.close() for the full closeTimeout (longer than this test's timeout).
    await app.close()
    assert.equal(await shutdown, 1001)
    assert.ok(!log.lines.some(line => /not finished in time/.test(line.msg)))
  })
})

describe('the README\'s recipes', () => {
  test('testing with injectWS: the sample of "Testing your routes", run as written', async () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    const section = readme.slice(readme.indexOf('## Testing your routes'))
    const code = section.slice(section.indexOf('```ts\n') + 6, section.indexOf('\n```', section.indexOf('```ts\n')))
    const js = code
      .replace(/new Promise<string>/g, 'new Promise')
      .replace("from 'fastify-ws-hub'", `from ${JSON.stringify(new URL('../dist/lib/index.js', import.meta.url).href)}`)
    for (let round = 0; round < 3; round++) {
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', js + '\nconsole.log("recipe ok")'], { cwd: new URL('..', import.meta.url).pathname })
      assert.match(stdout, /recipe ok/)
    }
  })
})
