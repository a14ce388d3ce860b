// Three nodes as separate processes (test/fixtures/cluster-node.js) sharing one Redis (a real
// redis-server, or a real 3-master Redis Cluster: the same suite runs on both, see cluster.test.js and
// redis-cluster.test.js): every hub member across nodes, binary payloads, ordering, a node that stalls,
// a node killed with kill -9, and a node closed cleanly.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { JSONRPCClient, JSONRPCServer, JSONRPCServerAndClient } from 'json-rpc-2.0'
import { Client, deferred, sleep, until } from './helpers.js'

const NODE_TTL = 1500
const REQUEST_TIMEOUT = 1000
const KEY_PREFIX = 'cluster-test:'
const FIXTURE = new URL('./fixtures/cluster-node.js', import.meta.url).pathname

/** One node process, driven over HTTP (`call`) and reached by ws clients (`client`). */
class Node {
  constructor (child, port, nodeId) {
    this.child = child
    this.port = port
    this.nodeId = nodeId
  }

  /** Calls `app.ws[member](...args)` on the node; resolves with the result, rejects with its error. */
  async call (member, ...args) {
    const body = JSON.stringify({ args: args.map(arg => Buffer.isBuffer(arg) ? { $bytes: arg.toString('base64') } : arg) })
    const res = await fetch(`http://127.0.0.1:${this.port}/hub/${member}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000)
    })
    const json = await res.json()
    if (json.error) throw Object.assign(new Error(json.error.message), { code: json.error.code, data: json.error.data })
    return json.result
  }

  /** Opens a ws client in `rooms`; resolves once it knows its connection id (`client.id`). */
  async client (rooms = []) {
    const client = new Client(`ws://127.0.0.1:${this.port}/ws/c?rooms=${rooms.join(',')}`)
    clients.push(client)
    await client.open()
    client.id = JSON.parse(await client.next(3000)).id
    return client
  }

  /**
   * Opens a JSON-RPC client (json-rpc-2.0's JSONRPCServerAndClient over ws) on the node's methods route,
   * answering the server's calls with `methods`; resolves once it knows its connection id (`peer.id`).
   */
  async rpcClient (rooms, methods) {
    const client = new Client(`ws://127.0.0.1:${this.port}/rpc?rooms=${rooms.join(',')}`)
    clients.push(client)
    const welcome = deferred()
    const notes = []
    const peer = new JSONRPCServerAndClient(new JSONRPCServer({ errorListener: () => {} }), new JSONRPCClient(payload => client.send(JSON.stringify(payload))))
    peer.addMethod('welcome', ({ id }) => welcome.resolve(id))
    for (const [name, fn] of Object.entries(methods)) peer.addMethod(name, fn)
    peer.notes = notes
    client.ws.on('message', data => {
      const message = JSON.parse(data.toString())
      if (message.method !== undefined && message.id === undefined && message.method !== 'welcome') notes.push(message)
      peer.receiveAndSend(message)
    })
    await client.open()
    peer.id = await welcome.promise
    return peer
  }

  /** SIGTERM (the node closes its app and exits), then SIGKILL if it is still there after `ms`. */
  async stop (ms = 5000) {
    const child = this.child
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), ms)
    await exited
    clearTimeout(timer)
  }
}

/** Starts a node process and waits for it to listen. */
async function startNode (redisEnv) {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, ...redisEnv, KEY_PREFIX, NODE_TTL: String(NODE_TTL), REQUEST_TIMEOUT: String(REQUEST_TIMEOUT) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  child.stderr.on('data', chunk => { output += chunk })
  const node = new Node(child, 0, '')
  nodes.push(node)
  await until(() => /listening \d+ \S+\n/.test(output) || child.exitCode !== null, 15_000, 'a node to listen')
  const match = /listening (\d+) (\S+)\n/.exec(output)
  if (match === null) throw new Error(`the node did not start: ${output}`)
  node.port = Number(match[1])
  node.nodeId = match[2]
  return node
}

const nodes = []
const clients = []
let inspect, n0, n1, n2

const sorted = list => [...list].sort()

/**
 * The suite, on a Redis that `backend.start()` brings up: it resolves with `{ env, inspect, stop }`,
 * `env` telling the node processes where Redis is (REDIS_URL or REDIS_CLUSTER), `inspect` with
 * `keys(pattern)` (over every master) and `zscore(key, member)`.
 */
export function clusterSuite (backend) {
  let stopBackend = null
  before(async () => {
    const started = await backend.start()
    inspect = started.inspect
    stopBackend = started.stop
    ;[n0, n1, n2] = await Promise.all([startNode(started.env), startNode(started.env), startNode(started.env)])
  })

  after(async () => {
    for (const client of clients) client.ws.terminate()
    await Promise.all(nodes.map(node => node.stop()))
    await stopBackend?.()
  })

  describe('room messages across nodes', () => {
    test('to(room).send on one node reaches the members on every node, and nobody else', async () => {
      const members = [await n0.client(['r1']), await n1.client(['r1']), await n2.client(['r1'])]
      const outsider = await n2.client(['other'])
      assert.equal(await n0.call('to', 'r1', null, 'hello r1'), null)
      for (const member of members) assert.equal(await member.next(), 'hello r1')
      assert.ok(await outsider.silent(150))
    })

    test('except leaves out members of other nodes; to([a, b]) reaches a member of both rooms once', async () => {
      const a0 = await n0.client(['ra'])
      const a1 = await n1.client(['ra'])
      const both2 = await n2.client(['ra', 'rb'])
      const b2 = await n2.client(['rb'])
      await n0.call('to', ['ra', 'rb'], [a1.id, 'ghost.id'], 'not a1')
      assert.equal(await a0.next(), 'not a1')
      assert.equal(await both2.next(), 'not a1')
      assert.equal(await b2.next(), 'not a1')
      assert.ok(await a1.silent(100))
      assert.ok(await both2.silent(0), 'once')
    })

    test('conn.broadcast reaches the room on the other nodes but not the sender', async () => {
      const sender = await n0.client(['chat'])
      const others = [await n1.client(['chat']), await n2.client(['chat'])]
      sender.send('broadcast chat hi from n0')
      for (const other of others) assert.equal(await other.next(), 'hi from n0')
      assert.ok(await sender.silent(100))
    })

    test('sendAll reaches every connection of every node, in a room or not', async () => {
      const everyone = [await n0.client(), await n1.client(['x']), await n2.client()]
      await n1.call('sendAll', { all: true })
      for (const client of everyone) {
        // Clients opened by earlier tests get it too; each of these gets it exactly once.
        assert.equal(await client.next(), '{"all":true}')
      }
      for (const client of clients) client.messages.length = 0
    })

    test('a Buffer sent to a room arrives on the other nodes byte for byte, as a binary frame', async () => {
      const members = [await n0.client(['bin']), await n1.client(['bin'])]
      const payload = Buffer.alloc(70_000)
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + 7) & 0xff
      await n2.call('to', 'bin', null, payload)
      for (const member of members) {
        const received = await member.next()
        assert.ok(Buffer.isBuffer(received), 'a binary frame')
        assert.ok(received.equals(payload))
      }
    })

    test('1,000 messages from one sender to one room arrive in order on every node', async () => {
      const members = [await n0.client(['order']), await n1.client(['order']), await n2.client(['order'])]
      await n1.call('burst', 'order', 1000)
      for (const member of members) {
        for (let i = 0; i < 1000; i++) assert.equal(await member.next(3000), `m${i}`)
      }
    })
  })

  describe('calls about one connection, on any node', () => {
    test('send(id) to a connection of another node resolves true and delivers; false for an unknown id', async () => {
      const target = await n2.client()
      assert.equal(await n0.call('send', target.id, { to: 'you' }), true)
      assert.equal(await target.next(), '{"to":"you"}')
      assert.equal(await n1.call('send', target.id, Buffer.from([0, 255, 1])), true)
      assert.deepEqual(await target.next(), Buffer.from([0, 255, 1]))
      assert.equal(await n0.call('send', `${n2.nodeId}.unknown`, 'x'), false)
      assert.equal(await n0.call('send', 'nosuchnode.x', 'x'), false)
    })

    test('close(id) closes a connection of another node with the code and reason', async () => {
      const target = await n1.client(['closing'])
      assert.equal(await n0.call('close', target.id, 4001, 'kicked'), true)
      assert.deepEqual(await target.closed, { code: 4001, reason: 'kicked' })
      assert.equal(await n0.call('has', target.id), false)
      assert.equal(await n2.call('close', target.id), false)
      await assert.rejects(n0.call('close', `${n1.nodeId}.x`, 1006), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    })

    test('join(id, room) and leave(id, room) move a connection of another node', async () => {
      const target = await n1.client()
      assert.equal(await n0.call('join', target.id, 'vip'), true)
      assert.deepEqual(await n2.call('members', 'vip'), [target.id], 'visible on every node once the call resolved')
      await n2.call('to', 'vip', null, 'welcome')
      assert.equal(await target.next(), 'welcome')
      assert.equal(await n0.call('leave', target.id, 'vip'), true)
      assert.equal(await n2.call('roomSize', 'vip'), 0)
      await n2.call('to', 'vip', null, 'gone')
      assert.ok(await target.silent(100))
      assert.equal(await n0.call('join', `${n1.nodeId}.unknown`, 'vip'), false)
    })

    test('has, roomSize, members and rooms() answer for the whole cluster, on every node', async () => {
      const p0 = await n0.client(['presence', 'p-only0'])
      const p1 = await n1.client(['presence'])
      const p2 = await n2.client(['presence'])
      const ids = sorted([p0.id, p1.id, p2.id])
      for (const node of [n0, n1, n2]) {
        for (const client of [p0, p1, p2]) assert.equal(await node.call('has', client.id), true)
        assert.equal(await node.call('roomSize', 'presence'), 3)
        assert.deepEqual(sorted(await node.call('members', 'presence')), ids)
        const rooms = await node.call('rooms')
        assert.ok(rooms.includes('presence') && rooms.includes('p-only0'), rooms.join())
      }
      await p0.close()
      await until(async () => await n2.call('roomSize', 'presence') === 2, 2000, 'the leave to be seen')
      assert.ok(!(await n1.call('rooms')).includes('p-only0'), 'a room without members is gone')
      assert.equal(await n2.call('has', p0.id), false)
    })

    test('a node that stalls makes calls about its connections reject with WSHUB_ERR_REQUEST_TIMEOUT, then answer again', async () => {
      const target = await n2.client()
      n2.child.kill('SIGSTOP')
      try {
        const started = Date.now()
        await assert.rejects(n0.call('has', target.id), {
          code: 'WSHUB_ERR_REQUEST_TIMEOUT',
          message: `has(${target.id}) got no reply from the owning node within ${REQUEST_TIMEOUT} ms`
        })
        const took = Date.now() - started
        assert.ok(took >= REQUEST_TIMEOUT - 50 && took < REQUEST_TIMEOUT + 800, `rejected after ${took} ms`)
        // Room messages do not wait for it.
        const other = await n1.client(['stall'])
        await n0.call('to', 'stall', null, 'still flowing')
        assert.equal(await other.next(), 'still flowing')
      } finally {
        n2.child.kill('SIGCONT')
      }
      assert.equal(await n0.call('has', target.id), true)
    })
  })

  describe('requests that outlive their deadline', () => {
    test('a node stalled past nodeTtl but still subscribed: calls time out (never false), and after SIGCONT the expired ones are dropped, not carried out', async () => {
      const target = await n2.client(['late'])
      n2.child.kill('SIGSTOP')
      try {
        await until(async () => Number(await inspect.zscore(`${KEY_PREFIX}nodes`, n2.nodeId) ?? 0) < Date.now(), NODE_TTL + 3000, 'its liveness deadline to pass')
        await assert.rejects(n0.call('send', target.id, 'late'), { code: 'WSHUB_ERR_REQUEST_TIMEOUT' })
        await assert.rejects(n1.call('close', target.id, 4001, 'late'), { code: 'WSHUB_ERR_REQUEST_TIMEOUT' })
        await assert.rejects(n1.call('join', target.id, 'later'), { code: 'WSHUB_ERR_REQUEST_TIMEOUT' })
      } finally {
        n2.child.kill('SIGCONT')
      }
      // Its channel delivers in order: once it answers this, it has seen the expired requests.
      await until(async () => await n0.call('has', target.id).catch(() => false), 10_000, 'the node to answer again')
      assert.ok(await target.silent(200), 'the expired send was not delivered')
      assert.equal(target.ws.readyState, 1, 'the expired close was not carried out')
      await until(async () => await n0.call('roomSize', 'late') === 1, 5000, 'its presence to be written again')
      assert.equal(await n0.call('roomSize', 'later'), 0, 'the expired join was not carried out')
    })
  })

  describe('methods across nodes', () => {
    test('app.ws.call on any node reaches the client of a connection of another node: its result, its error, the timeout', async () => {
      const peer = await n1.rpcClient([], {
        add: ({ a, b }) => a + b,
        refuse: () => { throw new Error('nope') },
        stall: () => new Promise(() => {})
      })
      assert.equal(await n0.call('call', peer.id, 'add', { a: 2, b: 40 }), 42)
      assert.equal(await n2.call('call', peer.id, 'add', { a: 1, b: 1 }), 2)
      assert.equal(await n1.call('call', peer.id, 'add', { a: 0, b: 5 }), 5)
      await assert.rejects(n2.call('call', peer.id, 'refuse'), (err) => err.message === 'nope' && typeof err.code === 'number')
      await assert.rejects(n0.call('call', peer.id, 'stall', {}, { timeout: 200 }), { code: 'WSHUB_ERR_RPC_TIMEOUT' })
      await assert.rejects(n0.call('call', peer.id, 'stall'), { code: 'WSHUB_ERR_RPC_TIMEOUT' }) // the route's callTimeout there
      await assert.rejects(n0.call('call', `${n1.nodeId}.nobody`, 'add', {}), { code: 'WSHUB_ERR_CONNECTION_NOT_FOUND' })
      await assert.rejects(n0.call('call', 'nonode.nobody', 'add', {}), { code: 'WSHUB_ERR_CONNECTION_NOT_FOUND' })
      assert.equal(await n2.call('notify', peer.id, 'ping', { n: 1 }), true)
      await until(() => peer.notes.length === 1)
      assert.deepEqual(peer.notes[0], { jsonrpc: '2.0', method: 'ping', params: { n: 1 } })
    })

    test('to(room).notify reaches the members on every node', async () => {
      const room = 'rpc-room'
      const peers = await Promise.all([n0.rpcClient([room], {}), n1.rpcClient([room], {}), n2.rpcClient([room], {})])
      await until(async () => await n0.call('roomSize', room) === 3, 5000, 'members on three nodes')
      await n1.call('toNotify', room, 'news', { v: 1 })
      await until(() => peers.every(peer => peer.notes.length === 1), 5000, 'the notification on every node')
      for (const peer of peers) assert.deepEqual(peer.notes[0], { jsonrpc: '2.0', method: 'news', params: { v: 1 } })
    })
  })

  describe('nodes that go away', () => {
    test('a node killed with kill -9 drops out of every answer within nodeTtl, and its keys are cleaned up', async () => {
      const k0 = await n0.client(['k', 'k0'])
      const k1 = await n1.client(['k'])
      const k2 = await n2.client(['k', 'k2'])
      assert.equal(await n0.call('roomSize', 'k'), 3)
      assert.ok((await inspect.keys(`${KEY_PREFIX}*${n2.nodeId}*`)).length > 0)

      const exited = once(n2.child, 'exit')
      n2.child.kill('SIGKILL')
      await exited
      const killedAt = Date.now()
      // Nobody listens on its channel any more: a call about its connection answers false at once.
      assert.equal(await n0.call('has', k2.id), false)
      assert.equal(await n1.call('send', k2.id, 'x'), false)
      await until(async () => await n0.call('roomSize', 'k') === 2, NODE_TTL + 1000, 'the dead node to drop out')
      const took = Date.now() - killedAt
      assert.ok(took <= NODE_TTL + 300, `dropped out after ${took} ms (nodeTtl ${NODE_TTL})`)
      assert.deepEqual(sorted(await n1.call('members', 'k')), sorted([k0.id, k1.id]))
      assert.ok(!(await n1.call('rooms')).includes('k2'))
      // The sweep removes the node's keys, then (one command later) its entry in the liveness set.
      await until(async () => (await inspect.keys(`${KEY_PREFIX}*${n2.nodeId}*`)).length === 0 &&
        await inspect.zscore(`${KEY_PREFIX}nodes`, n2.nodeId) === null, NODE_TTL, 'its keys and its liveness entry to go')
      assert.deepEqual(await inspect.keys(`${KEY_PREFIX}*${n2.nodeId}*`), [])
      assert.equal(await inspect.zscore(`${KEY_PREFIX}nodes`, n2.nodeId), null)
      // The rest of the cluster carries on.
      await n1.call('to', 'k', null, 'after the crash')
      assert.equal(await k0.next(), 'after the crash')
      assert.equal(await k1.next(), 'after the crash')
    })

    test('a node closed cleanly removes its keys at once and its connections leave every answer', async () => {
      const c1 = await n1.client(['bye'])
      const c0 = await n0.client(['bye'])
      assert.equal(await n0.call('roomSize', 'bye'), 2)
      await n1.stop()
      assert.deepEqual(await c1.closed, { code: 1001, reason: 'Server shutting down' })
      assert.deepEqual(await inspect.keys(`${KEY_PREFIX}*${n1.nodeId}*`), [])
      assert.equal(await n0.call('roomSize', 'bye'), 1)
      assert.deepEqual(await n0.call('members', 'bye'), [c0.id])
      assert.equal(await n0.call('has', c1.id), false)
      await sleep(0)
    })
  })
}
