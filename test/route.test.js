// app.wsRoute: the ways to declare a route, Fastify hooks and schemas before the upgrade, encapsulation,
// and function handlers that return or throw.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { WebSocketDisconnect } from '../dist/lib/index.js'
import { build, connect, refusedStatus, sleep, until } from './helpers.js'

const echo = async conn => {
  for await (const message of conn) await conn.send(message)
}

describe('declaring routes', () => {
  test('wsRoute(path, handler), wsRoute(path, handler, options) and wsRoute({ url, handler, ...options })', async t => {
    const app = await build(t, app => {
      app.wsRoute('/a', echo)
      app.wsRoute('/b', echo, { config: { name: 'b' } })
      app.wsRoute({ url: '/c', handler: echo })
    })
    for (const path of ['/a', '/b', '/c']) {
      const client = await connect(t, app, path)
      client.send(path)
      assert.equal(await client.next(), path)
    }
  })

  test('wsRoute is chainable and returns the instance', async t => {
    await build(t, app => {
      const returned = app.wsRoute('/x', echo)
      assert.equal(returned, app)
      assert.equal(app.wsRoute('/y', echo).wsRoute('/z', echo), app)
    })
  })

  test('a plain GET on a ws route answers 404; HTTP routes on other paths are untouched', async t => {
    const app = await build(t, app => {
      app.wsRoute('/live', echo)
      app.get('/health', async () => ({ ok: true }))
    })
    assert.equal((await app.inject('/live')).statusCode, 404)
    assert.deepEqual((await app.inject('/health')).json(), { ok: true })
    const res = await fetch(`http://127.0.0.1:${app.server.address().port}/live`)
    assert.equal(res.status, 404)
  })

  test('a method in the options is ignored: a ws route is always GET', async t => {
    const app = await build(t, app => app.wsRoute('/m', echo, { method: 'POST' }))
    const client = await connect(t, app, '/m')
    client.send('get')
    assert.equal(await client.next(), 'get')
  })

  test('works with app.injectWS (no network)', async t => {
    const app = await build(t, app => app.wsRoute('/inject', echo))
    const ws = await app.injectWS('/inject')
    const reply = new Promise(resolve => ws.once('message', data => resolve(data.toString())))
    ws.send('through inject')
    assert.equal(await reply, 'through inject')
    // An injected socket has no TCP connection to end, so terminate it before app.close() (as with
    // @fastify/websocket) rather than wait for a close handshake.
    ws.terminate()
  })
})

describe('invalid declarations', () => {
  test('a handler that is not a function or a WebSocketHandler class throws WSHUB_ERR_INVALID_HANDLER', async t => {
    await build(t, app => {
      for (const bad of [undefined, null, 42, 'handler', {}]) {
        assert.throws(() => app.wsRoute('/bad', bad), err =>
          err.code === 'WSHUB_ERR_INVALID_HANDLER' && err instanceof TypeError && err.message.includes('"/bad"'))
      }
    })
  })

  test('a class that does not extend WebSocketHandler throws WSHUB_ERR_INVALID_HANDLER naming it', async t => {
    class NotAHandler {
      receive () {}
    }
    await build(t, app => {
      assert.throws(() => app.wsRoute('/bad', NotAHandler), err =>
        err.code === 'WSHUB_ERR_INVALID_HANDLER' && err.message.includes('class NotAHandler does not extend WebSocketHandler'))
    })
  })

  test('a missing path or non-object options throw WSHUB_ERR_INVALID_HANDLER', async t => {
    await build(t, app => {
      assert.throws(() => app.wsRoute(), { code: 'WSHUB_ERR_INVALID_HANDLER' })
      assert.throws(() => app.wsRoute({ handler: echo }), { code: 'WSHUB_ERR_INVALID_HANDLER' })
      assert.throws(() => app.wsRoute('/p', echo, 'options'), { code: 'WSHUB_ERR_INVALID_HANDLER' })
    })
  })
})

describe('hooks and schemas run before the upgrade', () => {
  test('a preValidation hook that replies refuses the handshake with its status; request decorations reach conn.request', async t => {
    const app = await build(t, app => {
      app.decorateRequest('user', null)
      const authenticate = async (request, reply) => {
        if (request.query.token !== 'secret') return reply.code(401).send({ error: 'unauthorized' })
        request.user = { name: 'ann' }
      }
      app.wsRoute('/secure', async conn => { await conn.send(`hello ${conn.request.user.name}`) }, { preValidation: authenticate })
    })
    assert.equal(await refusedStatus(app, '/secure'), 401)
    assert.equal(app.ws.size, 0)
    const client = await connect(t, app, '/secure?token=secret')
    assert.equal(await client.next(), 'hello ann')
  })

  test('onRequest hooks (array form, object form) run; a throwing hook refuses with its status', async t => {
    let calls = 0
    const limit = async () => {
      calls++
      if (calls > 1) {
        const err = new Error('slow down')
        err.statusCode = 429
        throw err
      }
    }
    const app = await build(t, app => app.wsRoute({ url: '/limited', handler: echo, onRequest: [limit] }))
    await connect(t, app, '/limited')
    assert.equal(await refusedStatus(app, '/limited'), 429)
  })

  test('a querystring schema validates before the upgrade: 400 when it fails', async t => {
    const app = await build(t, app => {
      app.wsRoute('/typed', async conn => { await conn.sendJson(conn.query) }, {
        schema: {
          querystring: {
            type: 'object',
            properties: { page: { type: 'integer', minimum: 1 } },
            required: ['page']
          }
        }
      })
    })
    assert.equal(await refusedStatus(app, '/typed'), 400)
    assert.equal(await refusedStatus(app, '/typed?page=0'), 400)
    const client = await connect(t, app, '/typed?page=3')
    assert.equal(await client.next(), '{"page":3}', 'the coerced query reaches conn.query')
  })

  test('an encapsulated plugin\'s prefix and hooks apply; sibling routes do not get its hooks', async t => {
    const seen = []
    const app = await build(t, async app => {
      await app.register(async child => {
        child.addHook('onRequest', async request => { seen.push(request.url) })
        child.wsRoute('/chat/:room', async conn => { await conn.send(`room ${conn.params.room} at ${conn.path}`) })
      }, { prefix: '/v1' })
      app.wsRoute('/outside', async conn => { await conn.send('outside') })
    })
    const inside = await connect(t, app, '/v1/chat/lobby')
    assert.equal(await inside.next(), 'room lobby at /v1/chat/lobby')
    const outside = await connect(t, app, '/outside')
    assert.equal(await outside.next(), 'outside')
    assert.deepEqual(seen, ['/v1/chat/lobby'])
    assert.equal(await refusedStatus(app, '/chat/lobby'), 404)
  })

  test('an unknown path is refused with 404', async t => {
    const app = await build(t, app => app.wsRoute('/known', echo))
    assert.equal(await refusedStatus(app, '/unknown'), 404)
  })
})

describe('function handlers', () => {
  test('a handler that returns does not close the connection', async t => {
    const app = await build(t, app => app.wsRoute('/returns', async conn => { await conn.join('r') }))
    const client = await connect(t, app, '/returns')
    await until(async () => (await app.ws.roomSize('r')) === 1)
    await sleep(30)
    assert.equal(app.ws.size, 1)
    await app.ws.to('r').send('still connected')
    assert.equal(await client.next(), 'still connected')
  })

  test('a synchronous handler that returns does not close it either', async t => {
    const app = await build(t, app => app.wsRoute('/sync', conn => { conn.send('hi') }))
    const client = await connect(t, app, '/sync')
    assert.equal(await client.next(), 'hi')
    assert.ok(await client.silent(30))
    assert.equal(app.ws.size, 1)
  })

  test('a handler that throws closes with 1011, logs the error, and the server keeps serving', async t => {
    const app = await build(t, app => {
      app.wsRoute('/throws', async conn => {
        const message = await conn.receiveText()
        if (message === 'boom') throw new Error('handler exploded')
        await conn.send('fine')
      })
      app.wsRoute('/sync-throws', () => { throw new RangeError('sync explosion') })
      app.get('/health', async () => 'ok')
    })
    const bad = await connect(t, app, '/throws')
    bad.send('boom')
    assert.deepEqual(await bad.closed, { code: 1011, reason: 'Internal error' })
    const line = app.logLines.find(l => l.err?.message === 'handler exploded')
    assert.equal(line.level, 50)
    const syncBad = await connect(t, app, '/sync-throws')
    assert.equal((await syncBad.closed).code, 1011)
    assert.ok(app.logLines.some(l => l.err?.message === 'sync explosion'))
    const good = await connect(t, app, '/throws')
    good.send('ok')
    assert.equal(await good.next(), 'fine')
    assert.equal((await app.inject('/health')).body, 'ok')
  })

  test('an uncaught WebSocketDisconnect is not logged as an error', async t => {
    const ended = []
    const app = await build(t, app => app.wsRoute('/reader', async conn => {
      try {
        while (true) await conn.receive()
      } catch (err) {
        ended.push(err)
        throw err
      }
    }))
    const client = await connect(t, app, '/reader')
    await client.close(1000)
    await until(() => ended.length === 1)
    await sleep(20)
    assert.ok(ended[0] instanceof WebSocketDisconnect)
    assert.ok(!app.logLines.some(l => l.level >= 40), 'no warning or error logged')
  })
})
