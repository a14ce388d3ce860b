// Message hooks (onMessage, app-wide and per route) and sends to this node only (to(room).local()).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import wsHub, {
  Hub, MemoryBroker, MemoryBus, RpcError, WebSocketHandler, WSHUB_ERR_CONNECTION_CLOSED, WSHUB_ERR_CONNECTION_NOT_FOUND, WSHUB_ERR_INVALID_HANDLER,
  WSHUB_ERR_INVALID_OPTION, WSHUB_ERR_INVALID_PAYLOAD, WSHUB_ERR_RPC_TIMEOUT, WSHUB_ERR_RPC_UNAVAILABLE
} from '../dist/lib/index.js'
import { kDeliver } from '../dist/lib/symbols.js'
import { build, connect, sleep, until } from './helpers.js'

describe('message hooks', () => {
  test('app hooks run first, then the route\'s, in the order given, before the handler sees the message', async (t) => {
    const order = []
    const app = await build(t, app => {
      app.wsRoute('/echo', async (conn) => {
        for await (const message of conn) {
          order.push(`handler ${message}`)
          await conn.send(message)
        }
      }, { onMessage: [(conn, m) => { order.push(`route1 ${m}`) }, async (conn, m) => { order.push(`route2 ${m}`) }] })
    }, { onMessage: [(conn, m) => { order.push(`app1 ${m}`) }, (conn, m) => { order.push(`app2 ${m}`) }] })
    const client = await connect(t, app, '/echo')
    client.send('a')
    assert.equal(await client.next(), 'a')
    assert.deepEqual(order, ['app1 a', 'app2 a', 'route1 a', 'route2 a', 'handler a'])
  })

  test('a hook that returns or resolves false drops the message: nothing after it sees it', async (t) => {
    const later = []
    const app = await build(t, app => {
      app.wsRoute('/echo', async (conn) => {
        for await (const message of conn) await conn.send(message)
      }, { onMessage: [(conn, m) => m !== 'sync-drop', async (conn, m) => m !== 'async-drop', (conn, m) => { later.push(m) }] })
    })
    const client = await connect(t, app, '/echo')
    for (const m of ['sync-drop', 'async-drop', 'kept']) client.send(m)
    assert.equal(await client.next(), 'kept')
    assert.ok(await client.silent(30))
    assert.deepEqual(later, ['kept'])
  })

  test('hooks see one message at a time per connection, in arrival order, even when they are slow', async (t) => {
    const seen = []
    let inside = 0
    const app = await build(t, app => {
      app.wsRoute('/echo', async (conn) => {
        for await (const message of conn) await conn.send(message)
      }, {
        onMessage: async (conn, m) => {
          assert.equal(++inside, 1)
          await sleep(Number(m) % 3)
          seen.push(m)
          inside--
        }
      })
    })
    const client = await connect(t, app, '/echo')
    const sent = Array.from({ length: 30 }, (_, i) => String(i))
    for (const m of sent) client.send(m)
    const got = []
    for (let i = 0; i < sent.length; i++) got.push(await client.next())
    assert.deepEqual(got, sent)
    assert.deepEqual(seen, sent)
  })

  test('a hook may close the connection: the message is dropped', async (t) => {
    const got = []
    const app = await build(t, app => {
      app.wsRoute('/echo', async (conn) => {
        for await (const message of conn) got.push(message)
      }, { onMessage: async (conn, m) => { if (m === 'bye') await conn.close(4000, 'hook said so') } })
    })
    const client = await connect(t, app, '/echo')
    client.send('hello')
    client.send('bye')
    assert.deepEqual(await client.closed, { code: 4000, reason: 'hook said so' })
    assert.deepEqual(got, ['hello'])
  })

  test('a hook that throws or rejects closes with 1011 and is logged; the server keeps serving', async (t) => {
    const app = await build(t, app => {
      app.wsRoute('/sync', async (conn) => { for await (const m of conn) await conn.send(m) }, { onMessage: () => { throw new Error('sync hook failed') } })
      app.wsRoute('/async', async (conn) => { for await (const m of conn) await conn.send(m) }, { onMessage: async () => { throw new Error('async hook failed') } })
      app.wsRoute('/fine', async (conn) => { for await (const m of conn) await conn.send(m) })
    })
    for (const path of ['/sync', '/async']) {
      const client = await connect(t, app, path)
      client.send('x')
      assert.equal((await client.closed).code, 1011)
    }
    assert.ok(app.logLines.some(line => line.msg === 'ws handler failed' && line.err?.message === 'sync hook failed'))
    assert.ok(app.logLines.some(line => line.msg === 'ws handler failed' && line.err?.message === 'async hook failed'))
    const fine = await connect(t, app, '/fine')
    fine.send('still here')
    assert.equal(await fine.next(), 'still here')
  })

  test('hooks run in front of methods too, and in front of a class handler\'s receive(), after accept()', async (t) => {
    const hooked = []
    class Echo extends WebSocketHandler {
      async connect () {
        await sleep(20)
        await this.accept()
      }

      receive (m) { return this.send(`class ${m}`) }
    }
    const app = await build(t, app => {
      app.wsRoute('/rpc', () => {}, {
        methods: { ping: () => 'pong' },
        onMessage: (conn, m) => { hooked.push(m); return !m.includes('secret') }
      })
      app.wsRoute('/class', Echo, { onMessage: (conn, m) => { hooked.push(`${conn.accepted} ${m}`) } })
    })
    const rpc = await connect(t, app, '/rpc')
    rpc.send('{"jsonrpc":"2.0","method":"ping","id":"secret"}')
    rpc.send('{"jsonrpc":"2.0","method":"ping","id":1}')
    assert.deepEqual(JSON.parse(await rpc.next()), { jsonrpc: '2.0', result: 'pong', id: 1 })
    const cls = await connect(t, app, '/class')
    cls.send('early')
    assert.equal(await cls.next(), 'class early')
    assert.deepEqual(hooked, ['{"jsonrpc":"2.0","method":"ping","id":"secret"}', '{"jsonrpc":"2.0","method":"ping","id":1}', 'true early'])
  })

  test('hooks see the messages after the rate limit: a dropped message never reaches them', async (t) => {
    let hooked = 0
    const app = await build(t, app => {
      app.wsRoute('/echo', async (conn) => { for await (const m of conn) await conn.send(m) })
    }, { onMessage: () => { hooked++ }, rateLimit: { max: 3, windowMs: 60_000 } })
    const client = await connect(t, app, '/echo')
    for (let i = 0; i < 10; i++) client.send(String(i))
    for (let i = 0; i < 3; i++) assert.equal(await client.next(), String(i))
    await until(() => app.ws.stats().rateLimited === 7)
    assert.equal(hooked, 3)
  })

  test('an onMessage that is not a function or an array of them is refused, app-wide and per route', async () => {
    const app = Fastify()
    app.register(wsHub, { onMessage: 'audit' })
    await assert.rejects(app.ready(), (err) => err instanceof WSHUB_ERR_INVALID_OPTION && /onMessage/.test(err.message))
    const other = Fastify()
    await other.register(wsHub, { onMessage: [() => {}] })
    assert.throws(() => other.wsRoute('/x', () => {}, { onMessage: [() => {}, 1] }), WSHUB_ERR_INVALID_HANDLER)
    await other.close()
  })
})

describe('only this node: to(room).local()', () => {
  /** A hub on `bus` with local members that record what reaches them (the hub needs an id and kDeliver). */
  async function node (bus, names, call) {
    const hub = new Hub(new MemoryBroker(bus), { warn () {}, debug () {} })
    await hub.start()
    const received = {}
    const members = {}
    for (const name of names) {
      const member = { id: hub.newId(), [kDeliver]: message => { received[name].push(message.payload.toString()); return true }, call }
      received[name] = []
      hub.registry.add(member)
      hub.registry.join(member, 'r')
      members[name] = member
    }
    return { hub, received, members }
  }
  const tick = () => new Promise(resolve => setImmediate(resolve))

  test('local().send and local().notify reach the members on this node only; except() still applies; without local() every node gets them', async (t) => {
    const bus = new MemoryBus()
    const a = await node(bus, ['a1', 'a2'])
    const b = await node(bus, ['b1'])
    t.after(() => Promise.all([a.hub.stop(), b.hub.stop()]))
    await a.hub.to('r').local().send('local only')
    await a.hub.to('r').local().except(a.members.a1.id).notify('tick', { n: 1 })
    await tick()
    assert.deepEqual(a.received, { a1: ['local only'], a2: ['local only', '{"jsonrpc":"2.0","method":"tick","params":{"n":1}}'] })
    assert.deepEqual(b.received, { b1: [] })
    await a.hub.to('r').notify('tock')
    await a.hub.broadcast('r', 'everyone')
    await until(() => b.received.b1.length === 2)
    assert.deepEqual(b.received.b1, ['{"jsonrpc":"2.0","method":"tock"}', 'everyone'])
  })

  test('to(room).notify is serialized once for all its members, on every node, as send is', async (t) => {
    const bus = new MemoryBus()
    const nodes = []
    const seen = []
    for (let n = 0; n < 2; n++) {
      const hub = new Hub(new MemoryBroker(bus), { warn () {}, debug () {} })
      await hub.start()
      for (let i = 0; i < 3; i++) {
        const member = { id: hub.newId(), [kDeliver]: message => { seen.push([n, message]); return true } }
        hub.registry.add(member)
        hub.registry.join(member, 'r')
      }
      nodes.push(hub)
    }
    t.after(() => Promise.all(nodes.map(hub => hub.stop())))
    await nodes[0].to('r').notify('news', { v: 1 })
    await until(() => seen.length === 6)
    const onNode = n => new Set(seen.filter(([node]) => node === n).map(([, message]) => message))
    assert.equal(onNode(0).size, 1, 'one message object for the members of the sending node')
    assert.equal(onNode(1).size, 1, 'one for the members of the other node')
    assert.deepEqual(JSON.parse([...onNode(1)][0].payload), { jsonrpc: '2.0', method: 'news', params: { v: 1 } })
  })

  test('app.ws.call of a connection of another node carries its result and its errors back', async (t) => {
    const bus = new MemoryBus()
    const outcomes = {
      double: (params) => Promise.resolve(params[0] * 2),
      refuse: () => Promise.reject(new RpcError(7, 'no', [1])),
      slow: (params, options) => Promise.reject(new WSHUB_ERR_RPC_TIMEOUT('slow', String(options?.timeout ?? 10000))),
      gone: () => Promise.reject(new WSHUB_ERR_CONNECTION_CLOSED('x')),
      plain: () => Promise.reject(new WSHUB_ERR_RPC_UNAVAILABLE('x')),
      odd: () => Promise.reject(new Error('odd'))
    }
    const seen = []
    const a = await node(bus, [])
    const b = await node(bus, ['b1'], (method, params, options) => { seen.push([method, params, options]); return outcomes[method](params, options) })
    t.after(() => Promise.all([a.hub.stop(), b.hub.stop()]))
    const id = b.members.b1.id
    assert.equal(await a.hub.call(id, 'double', [21]), 42)
    await assert.rejects(a.hub.call(id, 'refuse'), (err) => err instanceof RpcError && err.code === 7 && err.message === 'no' && err.data[0] === 1)
    await assert.rejects(a.hub.call(id, 'slow', undefined, { timeout: 50 }), (err) => err instanceof WSHUB_ERR_RPC_TIMEOUT && /50 ms/.test(err.message))
    await assert.rejects(a.hub.call(id, 'gone'), WSHUB_ERR_CONNECTION_CLOSED)
    await assert.rejects(a.hub.call(id, 'plain'), WSHUB_ERR_RPC_UNAVAILABLE)
    await assert.rejects(a.hub.call(id, 'odd'), WSHUB_ERR_INVALID_PAYLOAD)
    await assert.rejects(a.hub.call(`${b.hub.nodeId}.nobody`, 'double', [1]), WSHUB_ERR_CONNECTION_NOT_FOUND)
    await assert.rejects(a.hub.call('nonode.nobody', 'double', [1]), WSHUB_ERR_CONNECTION_NOT_FOUND)
    await assert.rejects(a.hub.call(id, 5), WSHUB_ERR_INVALID_PAYLOAD)
    await assert.rejects(a.hub.call(id, 'double', 'text'), WSHUB_ERR_INVALID_PAYLOAD)
    await assert.rejects(a.hub.call(id, 'double', [], { timeout: 0 }), WSHUB_ERR_INVALID_PAYLOAD)
    assert.deepEqual(seen[0], ['double', [21], undefined])
    assert.deepEqual(seen[2], ['slow', undefined, { timeout: 50 }])
    assert.equal(await a.hub.notify(id, 'hello', { x: 1 }), true)
    await until(() => b.received.b1.length === 1)
    assert.deepEqual(JSON.parse(b.received.b1[0]), { jsonrpc: '2.0', method: 'hello', params: { x: 1 } })
  })
})
