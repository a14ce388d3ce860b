// Methods routes: JSON-RPC 2.0 over real sockets, driven by JSON-RPC clients that others wrote
// (rpc-websockets, json-rpc-2.0) and by hand-made frames for the error cases of the specification.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Type } from 'typebox'
import { JSONRPCClient, JSONRPCServer, JSONRPCServerAndClient } from 'json-rpc-2.0'
import { Client as RpcWebSocketsClient } from 'rpc-websockets'
import { RpcError, WebSocketHandler, WSHUB_ERR_CONNECTION_CLOSED, WSHUB_ERR_CONNECTION_NOT_FOUND, WSHUB_ERR_INVALID_HANDLER, WSHUB_ERR_INVALID_PAYLOAD, WSHUB_ERR_RPC_TIMEOUT, WSHUB_ERR_RPC_UNAVAILABLE } from '../dist/lib/index.js'
import { MAX_BATCH, pendingCallCount } from '../dist/lib/rpc.js'
import { build, connect, deferred, once, sleep, until, urlOf, WebSocket } from './helpers.js'

const say = {
  schema: { params: Type.Object({ text: Type.String({ minLength: 1, maxLength: 20 }) }) },
  handler: async (params) => ({ echoed: params.text })
}

/** An rpc-websockets client on `path`, closed after the test. */
async function rpcWebSockets (t, app, path) {
  const client = new RpcWebSocketsClient(urlOf(app, path), { autoconnect: true, reconnect: false })
  t.after(() => client.close())
  await once(client, 'open')
  return client
}

/** A json-rpc-2.0 server-and-client over a ws socket: it answers the server's calls with `methods`. */
async function bidirectional (t, app, path, methods = {}) {
  const ws = new WebSocket(urlOf(app, path))
  t.after(() => ws.terminate())
  const peer = new JSONRPCServerAndClient(new JSONRPCServer({ errorListener: () => {} }), new JSONRPCClient(payload => { ws.send(JSON.stringify(payload)) }))
  for (const [name, fn] of Object.entries(methods)) peer.addMethod(name, fn)
  ws.on('message', data => { peer.receiveAndSend(JSON.parse(data.toString())) })
  ws.on('close', () => peer.rejectAllPendingRequests('closed'))
  await once(ws, 'open')
  return { ws, peer }
}

/** Sends raw text frames and parses the answers. */
async function raw (t, app, path) {
  const client = await connect(t, app, path)
  return {
    client,
    send: text => client.send(text),
    next: async (ms) => JSON.parse(await client.next(ms))
  }
}

describe('requests from the client (rpc-websockets)', () => {
  test('a method with a TypeBox schema answers with its result; bad params get -32602 with the validator\'s errors', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { say } }))
    const client = await rpcWebSockets(t, app, '/rpc')
    assert.deepEqual(await client.call('say', { text: 'hi' }), { echoed: 'hi' })
    await assert.rejects(client.call('say', { text: '' }), (err) => {
      assert.equal(err.code, -32602)
      assert.equal(err.message, 'Invalid params')
      assert.ok(Array.isArray(err.data) && err.data.length > 0)
      assert.equal(err.data[0].instancePath, '/text')
      return true
    })
    await assert.rejects(client.call('say', [1, 2]), { code: -32602 })
  })

  test('a bare function gets the params unvalidated; undefined becomes a null result', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      methods: { sum: (params) => params.reduce((a, b) => a + b, 0), nothing: () => undefined, time: async () => 42 }
    }))
    const client = await rpcWebSockets(t, app, '/rpc')
    assert.equal(await client.call('sum', [1, 2, 3]), 6)
    assert.equal(await client.call('nothing'), null)
    assert.equal(await client.call('time'), 42)
  })

  test('-32601 for an unknown method (also for names on Object.prototype)', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { say } }))
    const client = await rpcWebSockets(t, app, '/rpc')
    await assert.rejects(client.call('nope', {}), { code: -32601, message: 'Method not found' })
    await assert.rejects(client.call('toString', {}), { code: -32601 })
    await assert.rejects(client.call('__proto__', {}), { code: -32601 })
  })

  test('an RpcError is sent as it is; anything else is -32603 "Internal error", logged, never the thrown message', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      methods: {
        refuse: () => { throw new RpcError(4001, 'Not allowed', { why: 'test' }) },
        boom: async () => { throw new Error('secret detail') }
      }
    }))
    const client = await rpcWebSockets(t, app, '/rpc')
    await assert.rejects(client.call('refuse'), (err) => {
      assert.deepEqual(err, { code: 4001, message: 'Not allowed', data: { why: 'test' } })
      return true
    })
    await assert.rejects(client.call('boom'), (err) => {
      assert.deepEqual(err, { code: -32603, message: 'Internal error' })
      return true
    })
    await until(() => app.logLines.some(line => line.msg === 'ws method failed' && line.err?.message === 'secret detail'))
  })

  test('a notification runs the method and gets no response, even when it fails', async (t) => {
    const seen = []
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      methods: { note: (params) => { seen.push(params) }, fail: () => { throw new Error('x') }, ping: () => 'pong' }
    }))
    const { client, send, next } = await raw(t, app, '/rpc')
    send('{"jsonrpc":"2.0","method":"note","params":{"a":1}}')
    send('{"jsonrpc":"2.0","method":"fail"}')
    send('{"jsonrpc":"2.0","method":"missing"}')
    send('{"jsonrpc":"2.0","method":"ping","id":"last"}')
    assert.deepEqual(await next(), { jsonrpc: '2.0', result: 'pong', id: 'last' })
    assert.deepEqual(seen, [{ a: 1 }])
    assert.ok(await client.silent(50))
  })

  test('the server notifies the client: conn.notify, app.ws.notify(id), app.ws.to(room).notify', async (t) => {
    const ids = deferred()
    const app = await build(t, app => app.wsRoute('/rpc', async (conn) => {
      await conn.join('lobby')
      ids.resolve(conn.id)
    }, { methods: { hello: async (params, conn) => { await conn.notify('greeting', { to: params.name }); return true } } }))
    const client = await rpcWebSockets(t, app, '/rpc')
    const id = await ids.promise
    const greeting = once(client, 'greeting')
    assert.equal(await client.call('hello', { name: 'ada' }), true)
    assert.deepEqual(await greeting, [{ to: 'ada' }])
    const direct = once(client, 'direct')
    assert.equal(await app.ws.notify(id, 'direct', [1, 2]), true)
    assert.deepEqual(await direct, [[1, 2]])
    assert.equal(await app.ws.notify('nobody.here', 'direct'), false)
    const room = once(client, 'room')
    await app.ws.to('lobby').notify('room', { n: 1 })
    assert.deepEqual(await room, [{ n: 1 }])
    await assert.rejects(app.ws.to('lobby').notify(42), WSHUB_ERR_INVALID_PAYLOAD)
    await assert.rejects(app.ws.notify(id, 'x', 'not params'), WSHUB_ERR_INVALID_PAYLOAD)
  })
})

describe('the wire, by hand', () => {
  test('-32700 for text that is not JSON, with id null', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { say } }))
    const { send, next } = await raw(t, app, '/rpc')
    send('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert.deepEqual(await next(), { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null })
  })

  test('-32600 for what is not a request object, with its id when it has a usable one', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { say } }))
    const { send, next } = await raw(t, app, '/rpc')
    const invalid = (id) => ({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id })
    for (const [frame, id] of [
      ['{"jsonrpc":"2.0","method":1,"params":"bar"}', null],
      ['{"method":"say","params":{},"id":1}', 1],
      ['{"jsonrpc":"1.0","method":"say","id":2}', 2],
      ['{"jsonrpc":"2.0","method":"say","params":"text","id":3}', 3],
      ['{"jsonrpc":"2.0","method":"say","params":null,"id":4}', 4],
      ['{"jsonrpc":"2.0","method":"say","id":{"a":1}}', null],
      ['{"jsonrpc":"2.0","method":"say","id":[1]}', null],
      ['1', null],
      ['"text"', null],
      ['null', null],
      ['{}', null],
      ['{"jsonrpc":"2.0","id":5}', 5],
      ['[]', null]
    ]) {
      send(frame)
      assert.deepEqual(await next(), invalid(id), frame)
    }
  })

  test('ids: a string, a number or null come back as they were', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { ping: () => 'pong' } }))
    const { send, next } = await raw(t, app, '/rpc')
    for (const id of ['abc', 0, -7, 1.5, null, '']) {
      send(JSON.stringify({ jsonrpc: '2.0', method: 'ping', id }))
      assert.deepEqual(await next(), { jsonrpc: '2.0', result: 'pong', id })
    }
  })

  test('a batch gets an array of the responses to its requests; none when it held only notifications', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      methods: { sum: (p) => p.reduce((a, b) => a + b, 0), notify_hello: () => {}, subtract: (p) => p[0] - p[1], get_data: () => ['hello', 5] }
    }))
    const { client, send, next } = await raw(t, app, '/rpc')
    // the example of the specification
    send(JSON.stringify([
      { jsonrpc: '2.0', method: 'sum', params: [1, 2, 4], id: '1' },
      { jsonrpc: '2.0', method: 'notify_hello', params: [7] },
      { jsonrpc: '2.0', method: 'subtract', params: [42, 23], id: '2' },
      { foo: 'boo' },
      { jsonrpc: '2.0', method: 'foo.get', params: { name: 'myself' }, id: '5' },
      { jsonrpc: '2.0', method: 'get_data', id: '9' }
    ]))
    assert.deepEqual(await next(), [
      { jsonrpc: '2.0', result: 7, id: '1' },
      { jsonrpc: '2.0', result: 19, id: '2' },
      { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null },
      { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: '5' },
      { jsonrpc: '2.0', result: ['hello', 5], id: '9' }
    ])
    send('[1,2,3]')
    assert.deepEqual(await next(), [1, 2, 3].map(() => ({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null })))
    send('[1]')
    assert.equal((await next()).length, 1)
    send(JSON.stringify([{ jsonrpc: '2.0', method: 'notify_hello' }, { jsonrpc: '2.0', method: 'notify_hello', params: [7] }]))
    assert.ok(await client.silent(80))
  })

  test(`a batch of more than ${MAX_BATCH} calls gets one -32600 error and runs none of them`, async (t) => {
    let ran = 0
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { count: () => ++ran } }))
    const { send, next } = await raw(t, app, '/rpc')
    const batch = Array.from({ length: MAX_BATCH + 1 }, (_, i) => ({ jsonrpc: '2.0', method: 'count', id: i }))
    send(JSON.stringify(batch))
    const answer = await next()
    assert.equal(answer.error.code, -32600)
    assert.equal(answer.id, null)
    assert.equal(ran, 0)
    send(JSON.stringify(batch.slice(0, MAX_BATCH)))
    assert.equal((await next()).length, MAX_BATCH)
    assert.equal(ran, MAX_BATCH)
  })

  test('deep nesting, huge arrays and a result JSON cannot represent get an answer, not a crash', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      methods: { echo: (params) => params, big: () => 10n, say }
    }))
    const { send, next } = await raw(t, app, '/rpc')
    const deep = '['.repeat(100_000) + ']'.repeat(100_000)
    send(`{"jsonrpc":"2.0","method":"say","params":{"text":${deep}},"id":1}`)
    assert.equal((await next(5000)).error.code, -32602)
    send(`{"jsonrpc":"2.0","method":"missing","params":${deep},"id":2}`)
    assert.equal((await next(5000)).error.code, -32601)
    send(`${'['.repeat(50_000)}${']'.repeat(50_000)}`) // a batch of one array, which is no request
    assert.deepEqual(await next(5000), [{ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null }])
    send('{"jsonrpc":"2.0","method":"big","id":3}')
    assert.deepEqual(await next(), { jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: 3 })
    send(JSON.stringify({ jsonrpc: '2.0', method: 'echo', params: Array(100_000).fill(0), id: 4 }))
    assert.equal((await next(5000)).result.length, 100_000)
  })

  test('a binary frame closes the connection with 1003', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { say } }))
    const { client } = await raw(t, app, '/rpc')
    client.send(Buffer.from('{"jsonrpc":"2.0","method":"say","id":1}'))
    assert.equal((await client.closed).code, 1003)
  })

  test('receive*(), the iterator and a class\'s receive() see no RPC traffic; the handler still runs on connect', async (t) => {
    const got = []
    let connected = 0
    class Rpc extends WebSocketHandler {
      async connect () { connected++; await this.accept() }
      receive (message) { got.push(message) }
    }
    const app = await build(t, app => {
      app.wsRoute('/fn', async (conn) => {
        connected++
        for await (const message of conn) got.push(message)
      }, { methods: { ping: () => 'pong' } })
      app.wsRoute('/class', Rpc, { methods: { ping: () => 'pong' } })
    })
    for (const path of ['/fn', '/class']) {
      const { send, next } = await raw(t, app, path)
      send('{"jsonrpc":"2.0","method":"ping","id":1}')
      send('not json')
      assert.equal((await next()).result, 'pong')
      assert.equal((await next()).error.code, -32700)
    }
    assert.equal(connected, 2)
    assert.deepEqual(got, [])
  })

  test('calls that arrive before a class handler accepts wait for accept(), and run in order', async (t) => {
    const gate = deferred()
    const ran = []
    class Slow extends WebSocketHandler {
      async connect () {
        await gate.promise
        await this.accept()
      }
    }
    const app = await build(t, app => app.wsRoute('/rpc', Slow, { methods: { step: (p, conn) => { ran.push([p[0], conn.accepted]); return p[0] } } }))
    const { send, next } = await raw(t, app, '/rpc')
    for (let i = 0; i < 3; i++) send(JSON.stringify({ jsonrpc: '2.0', method: 'step', params: [i], id: i }))
    await sleep(30)
    assert.deepEqual(ran, [])
    gate.resolve()
    for (let i = 0; i < 3; i++) assert.equal((await next()).result, i)
    assert.deepEqual(ran, [[0, true], [1, true], [2, true]])
  })
})

describe('concurrency', () => {
  test('by default the calls of one connection run one at a time, in arrival order', async (t) => {
    const events = []
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      methods: {
        work: async (p) => {
          events.push(`start ${p[0]}`)
          await sleep(p[1])
          events.push(`end ${p[0]}`)
          return p[0]
        }
      }
    }))
    const client = await rpcWebSockets(t, app, '/rpc')
    const results = await Promise.all([client.call('work', ['a', 30]), client.call('work', ['b', 1]), client.call('work', ['c', 10])])
    assert.deepEqual(results, ['a', 'b', 'c'])
    assert.deepEqual(events, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
  })

  test('with concurrency: 3, three calls run at once and the fastest answers first; the fourth waits', async (t) => {
    let running = 0
    let most = 0
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      concurrency: 3,
      methods: {
        work: async (p) => {
          most = Math.max(most, ++running)
          await sleep(p[1])
          running--
          return p[0]
        }
      }
    }))
    const { send, next } = await raw(t, app, '/rpc')
    send(JSON.stringify([40, 5, 20, 1].map((ms, i) => ({ jsonrpc: '2.0', method: 'work', params: [i, ms], id: i }))))
    assert.deepEqual((await next()).map(r => r.result), [0, 1, 2, 3])
    assert.equal(most, 3)
    for (const [ms, i] of [[40, 0], [5, 1]]) send(JSON.stringify({ jsonrpc: '2.0', method: 'work', params: [i, ms], id: i }))
    assert.equal((await next()).id, 1)
    assert.equal((await next()).id, 0)
  })

  test('a flood of calls to a slow method pauses reading from the socket instead of queueing without bound', async (t) => {
    const release = deferred()
    let started = 0
    const conns = deferred()
    const app = await build(t, app => app.wsRoute('/rpc', (conn) => conns.resolve(conn), {
      methods: { slow: async () => { started++; await release.promise; return 1 } }
    }))
    const { client, next } = await raw(t, app, '/rpc')
    const conn = await conns.promise
    const frame = JSON.stringify({ jsonrpc: '2.0', method: 'slow', params: ['x'.repeat(100)], id: 1 })
    for (let i = 0; i < 5000; i++) client.send(frame)
    await until(() => conn.socket.isPaused, 5000, 'the socket to pause')
    assert.equal(started, 1)
    release.resolve()
    let answered = 0
    while (answered < 5000) {
      await next(5000)
      answered++
    }
    assert.equal(started, 5000)
    assert.equal(conn.socket.isPaused, false)
  })
})

describe('calls from the server to the client (json-rpc-2.0)', () => {
  test('conn.call resolves with the client\'s result, rejects with an RpcError carrying its error', async (t) => {
    const conns = deferred()
    const app = await build(t, app => app.wsRoute('/rpc', (conn) => conns.resolve(conn), { methods: { ping: () => 'pong' } }))
    const { peer } = await bidirectional(t, app, '/rpc', {
      add: ({ a, b }) => a + b,
      refuse: () => { throw new Error('no thanks') }
    })
    const conn = await conns.promise
    assert.equal(await conn.call('add', { a: 2, b: 3 }), 5)
    await assert.rejects(conn.call('refuse'), (err) => {
      assert.ok(err instanceof RpcError)
      assert.equal(err.message, 'no thanks')
      assert.equal(typeof err.code, 'number')
      return true
    })
    await assert.rejects(conn.call('missing'), (err) => err instanceof RpcError && err.code === -32601)
    // the client calls the server on the same socket meanwhile
    assert.equal(await peer.request('ping'), 'pong')
    // app.ws.call of a local connection
    assert.equal(await app.ws.call(conn.id, 'add', { a: 1, b: 1 }), 2)
  })

  test('a method handler may call the client and wait for it, even with concurrency 1', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, {
      methods: { confirm: async (params, conn) => ({ confirmed: await conn.call('ask', params) }) }
    }))
    const { peer } = await bidirectional(t, app, '/rpc', { ask: ({ q }) => q === 'ok?' })
    assert.deepEqual(await peer.request('confirm', { q: 'ok?' }), { confirmed: true })
  })

  test('a call times out with WSHUB_ERR_RPC_TIMEOUT after its timeout or the route\'s callTimeout', async (t) => {
    const conns = deferred()
    const app = await build(t, app => app.wsRoute('/rpc', (conn) => conns.resolve(conn), { callTimeout: 60, methods: {} }))
    await connect(t, app, '/rpc') // a client that never answers
    const conn = await conns.promise
    const started = Date.now()
    await assert.rejects(conn.call('slow'), WSHUB_ERR_RPC_TIMEOUT)
    assert.ok(Date.now() - started >= 55)
    await assert.rejects(conn.call('slow', [], { timeout: 20 }), (err) => err instanceof WSHUB_ERR_RPC_TIMEOUT && /20 ms/.test(err.message))
    await assert.rejects(conn.call('slow', [], { timeout: -1 }), WSHUB_ERR_INVALID_PAYLOAD)
    await assert.rejects(conn.call(7), WSHUB_ERR_INVALID_PAYLOAD)
    await assert.rejects(conn.call('x', 'text'), WSHUB_ERR_INVALID_PAYLOAD)
  })

  test('closing first rejects pending calls with WSHUB_ERR_CONNECTION_CLOSED; later calls reject at once', async (t) => {
    const conns = deferred()
    const app = await build(t, app => app.wsRoute('/rpc', (conn) => conns.resolve(conn), { methods: {} }))
    const client = await connect(t, app, '/rpc')
    const conn = await conns.promise
    const pending = conn.call('never')
    client.close()
    await assert.rejects(pending, WSHUB_ERR_CONNECTION_CLOSED)
    await assert.rejects(conn.call('again'), WSHUB_ERR_CONNECTION_CLOSED)
    await assert.rejects(app.ws.call(conn.id, 'again'), WSHUB_ERR_CONNECTION_NOT_FOUND)
  })

  test('a response with an id nobody waits for is dropped and logged at debug', async (t) => {
    const app = await build(t, app => app.wsRoute('/rpc', () => {}, { methods: { ping: () => 'pong' } }))
    const { send, next } = await raw(t, app, '/rpc')
    send('{"jsonrpc":"2.0","result":1,"id":12345}')
    send('{"jsonrpc":"2.0","error":{"code":1,"message":"x"},"id":"str"}')
    send('[{"jsonrpc":"2.0","result":1,"id":777}]')
    send('{"jsonrpc":"2.0","method":"ping","id":1}')
    assert.deepEqual(await next(), { jsonrpc: '2.0', result: 'pong', id: 1 })
    await until(() => app.logLines.filter(line => line.msg === 'ws JSON-RPC response for no pending call dropped').length === 3)
  })

  test('many calls to clients that never answer leave nothing behind: after their timeout, and after a close', async (t) => {
    const conns = []
    const app = await build(t, app => app.wsRoute('/rpc', (conn) => { conns.push(conn) }, { methods: {} }))
    const before = pendingCallCount()
    for (let i = 0; i < 5; i++) await connect(t, app, '/rpc')
    await until(() => conns.length === 5)
    const calls = []
    for (const conn of conns) for (let i = 0; i < 2000; i++) calls.push(conn.call('never', [i], { timeout: 100 }).catch(err => err))
    assert.equal(pendingCallCount() - before, 10_000)
    const errors = await Promise.all(calls)
    assert.ok(errors.every(err => err instanceof WSHUB_ERR_RPC_TIMEOUT))
    assert.equal(pendingCallCount(), before)
    for (let i = 0; i < 2000; i++) calls.push(conns[0].call('never', [i], { timeout: 60_000 }).catch(err => err))
    assert.equal(pendingCallCount() - before, 2000)
    await conns[0].close()
    assert.equal(pendingCallCount(), before)
  })

  test('call on a route without methods rejects with WSHUB_ERR_RPC_UNAVAILABLE; app.ws.call of an unknown id with WSHUB_ERR_CONNECTION_NOT_FOUND', async (t) => {
    const conns = deferred()
    const app = await build(t, app => app.wsRoute('/plain', (conn) => conns.resolve(conn)))
    await connect(t, app, '/plain')
    const conn = await conns.promise
    await assert.rejects(conn.call('x'), WSHUB_ERR_RPC_UNAVAILABLE)
    await assert.rejects(app.ws.call(conn.id, 'x'), WSHUB_ERR_RPC_UNAVAILABLE)
    await assert.rejects(app.ws.call('nobody', 'x'), WSHUB_ERR_CONNECTION_NOT_FOUND)
    await assert.rejects(app.ws.call(`${app.ws.nodeId}.gone`, 'x'), WSHUB_ERR_CONNECTION_NOT_FOUND)
  })
})

describe('schemas and the validator compiler', () => {
  test('the app\'s setValidatorCompiler compiles each method\'s schema once, at ready, whatever the connections', async (t) => {
    const compiled = []
    const app = await build(t, app => {
      app.setValidatorCompiler(({ schema, httpPart }) => {
        compiled.push(httpPart)
        return (data) => data?.ok === schema.mustBe ? { value: { ...data, seen: true } } : { error: new Error('not ok') }
      })
      app.wsRoute('/rpc', () => {}, {
        methods: { check: { schema: { params: { mustBe: true } }, handler: (p) => p }, free: (p) => p }
      })
    })
    assert.deepEqual(compiled, ['body'])
    for (let i = 0; i < 3; i++) {
      const client = await rpcWebSockets(t, app, '/rpc')
      assert.deepEqual(await client.call('check', { ok: true }), { ok: true, seen: true })
      await assert.rejects(client.call('check', { ok: false }), (err) => err.code === -32602 && err.data[0].message === 'not ok')
    }
    assert.deepEqual(compiled, ['body'])
  })

  test('Fastify\'s Ajv with the app\'s shared schemas ($ref to addSchema)', async (t) => {
    const app = await build(t, app => {
      app.addSchema({ $id: 'point', type: 'object', properties: { x: { type: 'number' } }, required: ['x'] })
      app.wsRoute('/rpc', () => {}, { methods: { move: { schema: { params: { $ref: 'point#' } }, handler: (p) => p.x * 2 } } })
    })
    const client = await rpcWebSockets(t, app, '/rpc')
    assert.equal(await client.call('move', { x: 4 }), 8)
    await assert.rejects(client.call('move', { y: 1 }), { code: -32602 })
  })

  test('an async schema ($async, Ajv\'s async validation) answers once its verdict is in', async (t) => {
    const app = await build(t, app => {
      app.wsRoute('/rpc', () => {}, {
        methods: {
          check: { schema: { params: { $async: true, type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } }, handler: (p) => p.n + 1 }
        }
      })
    })
    const client = await rpcWebSockets(t, app, '/rpc')
    assert.equal(await client.call('check', { n: 1 }), 2)
    await assert.rejects(client.call('check', { n: 'x' }), (err) => err.code === -32602 && err.data[0].instancePath === '/n')
    const { send, next } = await raw(t, app, '/rpc')
    send(JSON.stringify([{ jsonrpc: '2.0', method: 'check', params: { n: 2 }, id: 1 }, { jsonrpc: '2.0', method: 'check', params: {}, id: 2 }, { jsonrpc: '2.0', method: 'check', params: {} }]))
    const [ok, bad] = await next()
    assert.deepEqual(ok, { jsonrpc: '2.0', result: 3, id: 1 })
    assert.equal(bad.error.code, -32602)
  })

  test('a validator that throws answers -32603 and is logged', async (t) => {
    const app = await build(t, app => {
      app.setValidatorCompiler(() => () => { throw new Error('validator broke') })
      app.wsRoute('/rpc', () => {}, { methods: { check: { schema: { params: {} }, handler: () => 1 } } })
    })
    const { send, next } = await raw(t, app, '/rpc')
    send('{"jsonrpc":"2.0","method":"check","params":{},"id":1}')
    assert.deepEqual(await next(), { jsonrpc: '2.0', error: { code: -32603, message: 'Internal error' }, id: 1 })
    assert.ok(app.logLines.some(line => line.msg === 'ws method params validator failed' && line.err?.message === 'validator broke'))
  })

  test('in an encapsulated plugin: its prefix, its shared schemas and its own validator compiler', async (t) => {
    let compiledHere = 0
    const app = await build(t, app => app.register(async (plugin) => {
      plugin.addSchema({ $id: 'name', type: 'string', minLength: 2 })
      plugin.wsRoute('/rpc', () => {}, { methods: { hello: { schema: { params: { type: 'object', properties: { name: { $ref: 'name#' } } } }, handler: (p) => `hello ${p.name}` } } })
      plugin.register(async (inner) => {
        inner.setValidatorCompiler(() => { compiledHere++; return () => true })
        inner.wsRoute('/loose', () => {}, { methods: { hello: { schema: { params: { type: 'object' } }, handler: (p) => p } } })
      })
    }, { prefix: '/v1' }))
    const client = await rpcWebSockets(t, app, '/v1/rpc')
    assert.equal(await client.call('hello', { name: 'ada' }), 'hello ada')
    await assert.rejects(client.call('hello', { name: 'a' }), { code: -32602 })
    const loose = await rpcWebSockets(t, app, '/v1/loose')
    assert.deepEqual(await loose.call('hello', [1]), [1])
    assert.equal(compiledHere, 1)
  })

  test('a plugin\'s shared schemas work when an outer route already made Fastify build its Ajv', async (t) => {
    const app = await build(t, app => {
      app.post('/http', { schema: { body: { type: 'object' } } }, async () => ({}))
      return app.register(async (plugin) => {
        plugin.addSchema({ $id: 'name', type: 'string', minLength: 2 })
        plugin.wsRoute('/rpc', () => {}, { methods: { hello: { schema: { params: { type: 'object', properties: { name: { $ref: 'name#' } } } }, handler: (p) => p.name } } })
      })
    })
    const client = await rpcWebSockets(t, app, '/rpc')
    assert.equal(await client.call('hello', { name: 'ada' }), 'ada')
    await assert.rejects(client.call('hello', { name: 'a' }), { code: -32602 })
  })

  test('a schema that does not compile fails app.ready(); bad method definitions fail wsRoute', async () => {
    const { default: Fastify } = await import('fastify')
    const { default: wsHub } = await import('../dist/lib/index.js')
    const app = Fastify()
    await app.register(wsHub)
    app.wsRoute('/rpc', () => {}, { methods: { bad: { schema: { params: { type: 'no-such-type' } }, handler: () => {} } } })
    await assert.rejects(app.ready(), (err) => err instanceof WSHUB_ERR_INVALID_HANDLER && /method "bad"/.test(err.message))
    await app.close()
    for (const setup of [
      (app) => app.post('/http', { schema: { body: { type: 'object' } } }, async () => ({})), // Fastify's Ajv, built for the HTTP route
      (app) => app.setValidatorCompiler(() => { throw new Error('refused') }),
      (app) => app.setValidatorCompiler(() => { throw Object.assign(new Error('no such ref'), { missingRef: 'nowhere#' }) })
    ]) {
      const other = Fastify()
      await other.register(wsHub)
      setup(other)
      other.wsRoute('/rpc', () => {}, { methods: { bad: { schema: { params: { type: 'no-such-type' } }, handler: () => {} } } })
      await assert.rejects(other.ready(), WSHUB_ERR_INVALID_HANDLER)
      await other.close()
    }
    const named = Fastify()
    await named.register(wsHub)
    named.wsRoute('/rpc', () => {}, { validatorCompiler: () => { throw new Error('route compiler refused') }, methods: { m: { schema: { params: { type: 'object' } }, handler: () => {} } } })
    await assert.rejects(named.ready(), (err) => /route compiler refused/.test(err.message))
    await named.close()
    const other = Fastify()
    await other.register(wsHub)
    assert.throws(() => other.wsRoute('/a', () => {}, { methods: { x: 1 } }), WSHUB_ERR_INVALID_HANDLER)
    assert.throws(() => other.wsRoute('/b', () => {}, { methods: [] }), WSHUB_ERR_INVALID_HANDLER)
    assert.throws(() => other.wsRoute('/c', () => {}, { methods: { x: { handler: 1 } } }), WSHUB_ERR_INVALID_HANDLER)
    assert.throws(() => other.wsRoute('/d', () => {}, { methods: { x: { handler () {}, schema: 1 } } }), WSHUB_ERR_INVALID_HANDLER)
    assert.throws(() => other.wsRoute('/e', () => {}, { methods: {}, concurrency: 0 }), WSHUB_ERR_INVALID_HANDLER)
    assert.throws(() => other.wsRoute('/f', () => {}, { methods: {}, callTimeout: 'soon' }), WSHUB_ERR_INVALID_HANDLER)
    assert.throws(() => other.wsRoute('/g', () => {}, { concurrency: 2 }), WSHUB_ERR_INVALID_HANDLER)
    await other.close()
  })
})
