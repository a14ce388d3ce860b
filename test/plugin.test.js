// Registering the plugin: option validation, @fastify/websocket registered or reused, decorators.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import wsHub, { fastifyWsHub, Hub, wsHub as named, WSHUB_ERR_INVALID_OPTION } from '../dist/lib/index.js'
import { build, connect, gc, sleep, until } from './helpers.js'
import { frame, rawConnect } from './raw-client.js'

/** Registers the plugin with `options` and resolves with the error registration failed with. */
async function registrationError (options) {
  const app = Fastify()
  try {
    await app.register(wsHub, options)
    await app.ready()
  } catch (err) {
    return err
  } finally {
    await app.close()
  }
  throw new Error(`registration with ${JSON.stringify(options)} did not fail`)
}

describe('exports', () => {
  test('default, wsHub and fastifyWsHub are the same plugin, named for fastify-plugin', () => {
    assert.equal(named, wsHub)
    assert.equal(fastifyWsHub, wsHub)
    assert.equal(wsHub[Symbol.for('plugin-meta')].name, 'fastify-ws-hub')
    assert.equal(wsHub[Symbol.for('plugin-meta')].fastify, '5.x')
  })
})

describe('decorators', () => {
  test('app.ws and app.wsRoute are visible everywhere, also in encapsulated plugins', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub)
    await app.register(async child => {
      assert.equal(child.ws, app.ws)
      assert.equal(typeof child.wsRoute, 'function')
    })
    await app.ready()
    assert.ok(app.ws instanceof Hub)
    assert.ok(app.hasPlugin('fastify-ws-hub'))
    assert.ok(app.hasPlugin('@fastify/websocket'), 'registers @fastify/websocket itself')
  })

  test('registering twice fails (one hub per app)', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub)
    app.register(wsHub)
    await assert.rejects(app.ready(), { code: 'FST_ERR_DEC_ALREADY_PRESENT' })
  })
})

describe('option validation', () => {
  const cases = [
    [{ maxPayload: 0 }, 'maxPayload'],
    [{ maxPayload: -1 }, 'maxPayload'],
    [{ maxPayload: 1.5 }, 'maxPayload'],
    [{ maxPayload: '1mb' }, 'maxPayload'],
    [{ heartbeat: true }, 'heartbeat'],
    [{ heartbeat: 30000 }, 'heartbeat'],
    [{ heartbeat: { interval: 0 } }, 'heartbeat.interval'],
    [{ heartbeat: { interval: 'often' } }, 'heartbeat.interval'],
    [{ backpressure: 'close' }, 'backpressure'],
    [{ backpressure: { limit: -5 } }, 'backpressure.limit'],
    [{ backpressure: { action: 'explode' } }, 'backpressure.action'],
    [{ allowedOrigins: 'https://example.com' }, 'allowedOrigins'],
    [{ allowedOrigins: ['https://example.com', 7] }, 'allowedOrigins'],
    [{ allowedOrigins: [''] }, 'allowedOrigins'],
    [{ redis: 6379 }, 'redis'],
    [{ redis: false }, 'redis'],
    [{ redis: 'localhost:6379' }, 'redis'],
    [{ keyPrefix: '' }, 'keyPrefix'],
    [{ keyPrefix: 5 }, 'keyPrefix'],
    [{ nodeTtl: 0 }, 'nodeTtl'],
    [{ requestTimeout: Infinity }, 'requestTimeout'],
    [{ closeTimeout: -1 }, 'closeTimeout'],
    [{ websocket: 'yes' }, 'websocket'],
    [{ rateLimit: true }, 'rateLimit'],
    [{ rateLimit: {} }, 'rateLimit.max'],
    [{ rateLimit: { max: 0 } }, 'rateLimit.max'],
    [{ rateLimit: { max: 5, windowMs: -1 } }, 'rateLimit.windowMs'],
    [{ rateLimit: { max: 5, action: 'ban' } }, 'rateLimit.action'],
    [{ maxConnections: 0 }, 'maxConnections'],
    [{ maxConnectionsPerIp: '10' }, 'maxConnectionsPerIp'],
    [{ maxRoomsPerConnection: 0 }, 'maxRoomsPerConnection'],
    [{ keyPrefix: 'app{1}:' }, 'keyPrefix'],
    [{ redis: { cluster: [] } }, 'redis.cluster'],
    [{ redis: { cluster: 'host:7000' } }, 'redis.cluster'],
    [{ maxPayLoad: 10 }, 'maxPayLoad']
  ]
  for (const [options, name] of cases) {
    test(`${JSON.stringify(options)} fails registration with WSHUB_ERR_INVALID_OPTION naming ${name}`, async () => {
      const err = await registrationError(options)
      assert.ok(err instanceof WSHUB_ERR_INVALID_OPTION)
      assert.ok(err instanceof TypeError)
      assert.equal(err.code, 'WSHUB_ERR_INVALID_OPTION')
      assert.ok(err.message.startsWith(`Invalid fastify-ws-hub option "${name}": `), err.message)
    })
  }

  test('the message says what was expected and what came', async () => {
    const err = await registrationError({ backpressure: { action: 'explode' } })
    assert.equal(err.message, 'Invalid fastify-ws-hub option "backpressure.action": expected \'close\' or \'drop\', got "explode"')
  })

  test('options that are not an object fail', async () => {
    const app = Fastify()
    app.register(wsHub, () => 7)
    await assert.rejects(app.ready(), { code: 'WSHUB_ERR_INVALID_OPTION' })
  })

  test('every documented option with a valid value is accepted', async t => {
    const app = await build(t, () => {}, {
      maxPayload: 1024,
      heartbeat: { interval: 10_000 },
      backpressure: { limit: 1_000_000, action: 'drop' },
      allowedOrigins: ['https://app.example.com'],
      keyPrefix: 'chat:',
      nodeTtl: 20_000,
      requestTimeout: 2_000,
      closeTimeout: 1_000,
      rateLimit: { max: 100, windowMs: 1000, action: 'close' },
      maxConnections: 1000,
      maxConnectionsPerIp: 50,
      websocket: { options: { clientTracking: true } }
    })
    assert.ok(app.ws)
  })

  test('heartbeat: false and allowedOrigins as a function are accepted', async t => {
    const app = await build(t, () => {}, { heartbeat: false, allowedOrigins: origin => origin === undefined })
    assert.ok(app.ws)
  })

  test('Fastify\'s own register options (prefix, logLevel) are not mistaken for unknown options', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub, { prefix: '/api', logLevel: 'warn' })
    await app.ready()
    assert.ok(app.ws)
  })
})

describe('@fastify/websocket', () => {
  test('maxPayload reaches the WebSocket server: a larger message closes with 1009', async t => {
    const app = await build(t, app => app.wsRoute('/small', async conn => {
      for await (const message of conn) await conn.send(`got ${message.length}`)
    }), { maxPayload: 100 })
    const client = await connect(t, app, '/small')
    client.send('x'.repeat(100))
    assert.equal(await client.next(), 'got 100')
    client.send('x'.repeat(101))
    assert.equal((await client.closed).code, 1009)
  })

  test('the websocket option is passed through to @fastify/websocket', async t => {
    const app = await build(t, () => {}, { websocket: { options: { clientTracking: false } } })
    assert.equal(app.websocketServer.options.clientTracking, false)
    assert.equal(app.websocketServer.options.maxPayload, 1_048_576, 'maxPayload defaults to 1 MiB')
  })

  test('an app that registered @fastify/websocket itself keeps it; maxPayload still applies', async t => {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(fastifyWebsocket)
    const server = app.websocketServer
    await app.register(wsHub, { maxPayload: 50 })
    app.wsRoute('/reuse', async conn => { for await (const m of conn) await conn.send(m) })
    await app.listen({ port: 0, host: '127.0.0.1' })
    assert.equal(app.websocketServer, server)
    const client = await connect(t, app, '/reuse')
    client.send('small')
    assert.equal(await client.next(), 'small')
    client.send('x'.repeat(51))
    assert.equal((await client.closed).code, 1009)
  })

  test('when @fastify/websocket was registered first, the websocket option is ignored with a warning', async t => {
    const lines = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: line => lines.push(JSON.parse(line)) } } })
    t.after(() => app.close())
    await app.register(fastifyWebsocket)
    await app.register(wsHub, { websocket: { options: { clientTracking: false } } })
    await app.ready()
    assert.ok(lines.some(l => l.level === 40 && /already registered/.test(l.msg)))
  })

  test('plain @fastify/websocket routes keep working beside ws routes', async t => {
    const app = await build(t, app => {
      app.get('/raw', { websocket: true }, socket => { socket.send('raw route') })
    })
    const client = await connect(t, app, '/raw')
    assert.equal(await client.next(), 'raw route')
    await sleep(10)
    assert.equal(app.ws.size, 0, 'not a hub connection')
  })
})

// What @fastify/websocket holds for each socket beyond the upgrade: the hijacked reply (through its error
// listener and the ServerResponse assigned to the TCP socket) and the upgrade's head buffer. Each open
// connection must let them go; `conn.request` stays.
describe('what an open connection keeps of its upgrade', () => {
  async function collected (refs) {
    for (let i = 0; i < 5 && refs.some(ref => ref.deref() !== undefined); i++) {
      await sleep(10)
      gc()
    }
    return refs.map(ref => ref.deref() === undefined)
  }

  async function upgradeRefs (t, app, conns) {
    const refs = { reply: [], response: [], head: [] }
    app.server.prependListener('upgrade', (_req, _socket, head) => refs.head.push(new WeakRef(head)))
    app.addHook('onRequest', async (request, reply) => {
      refs.reply.push(new WeakRef(reply))
      refs.response.push(new WeakRef(reply.raw))
    })
    app.wsRoute('/kept', async conn => {
      conns.push(conn)
      for await (const m of conn) await conn.send(m)
    })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const client = await connect(t, app, '/kept')
    client.send('still open')
    assert.equal(await client.next(), 'still open')
    return refs
  }

  for (const registeredBy of ['the hub', 'the app']) {
    test(`with @fastify/websocket registered by ${registeredBy}: the reply, its ServerResponse and the head buffer are released`, async t => {
      const app = Fastify()
      t.after(() => app.close())
      if (registeredBy === 'the app') await app.register(fastifyWebsocket)
      await app.register(wsHub)
      const conns = []
      const refs = await upgradeRefs(t, app, conns)
      assert.deepEqual(await collected([...refs.reply, ...refs.response, ...refs.head]), [true, true, true])
      assert.equal(conns.length, 1)
      assert.equal(conns[0].closed, false)
      assert.equal(conns[0].request.headers.upgrade, 'websocket', 'the request is still there')
    })
  }

  test('an errorHandler passed to @fastify/websocket keeps its reply argument and is still called', async t => {
    const errors = []
    const app = Fastify()
    t.after(() => app.close())
    await app.register(wsHub, {
      websocket: { errorHandler: (error, socket, request, reply) => errors.push({ code: error.code, reply }) }
    })
    const conns = []
    await upgradeRefs(t, app, conns)
    const raw = await rawConnect(app.server.address().port, '/kept')
    assert.equal(await raw.handshake, 101)
    raw.send(frame({ opcode: 0x1, rsv: 2, payload: 'x' }))
    assert.equal(await raw.closed, 1002)
    await until(() => errors.length === 1)
    assert.equal(errors[0].code, 'WS_ERR_UNEXPECTED_RSV_2_3')
    assert.equal(typeof errors[0].reply.hijack, 'function')
  })
})
