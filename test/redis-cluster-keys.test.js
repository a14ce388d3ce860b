// What only a Redis Cluster has, on a real 3-master cluster (test/redis-cluster.js): every key and
// channel of a room in the room's slot, shard channels, per-room routing there, an ioredis Cluster
// passed in, and a master that restarts empty. The cross-node suite on the cluster is in
// redis-cluster.test.js.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import wsHub from '../dist/lib/index.js'
import { memberKey, nodeKey, roomChannel, roomKey } from '../dist/lib/broker/keys.js'
import { build, connect, redisHub, until } from './helpers.js'
import { redisClusterForFile } from './redis-cluster.js'

let cluster = null
redisClusterForFile(started => { cluster = started })

/** One client per master, to look into each. */
function masterClients () {
  return cluster.masters.map(master => new Redis({ port: master.port, host: '127.0.0.1' }))
}

describe('on a 3-master Redis Cluster', () => {
  let prefixes = 0

  /** A hub on its own broker on the cluster; `add(rooms)` gives it a member that records what it gets. */
  async function node (t, { keyPrefix, redis = { cluster: cluster.nodes }, nodeTtl = 15_000, requestTimeout = 2000 } = {}) {
    const { hub, broker, received, lines, member } = await redisHub(t, redis, { keyPrefix, nodeTtl, requestTimeout })
    const add = async (rooms = []) => {
      const added = member()
      for (const room of rooms) await hub.joinLocal(added, room)
      return added
    }
    return { hub, broker, add, received, lines }
  }

  test('a room\'s channel and keys hash to the slot of {<room>}, braces in the name included; the channel is a shard channel', async t => {
    const keyPrefix = `slots-${++prefixes}:`
    const a = await node(t, { keyPrefix })
    const masters = masterClients()
    t.after(() => { for (const master of masters) master.disconnect() })
    const names = ['plain', 'a}b', 'a{b', '{x}', '}lead', '}}', 'ü{é}']
    for (const room of names) await a.add([room])
    const slot = key => masters[0].cluster('KEYSLOT', key)
    for (const room of names) {
      const expected = room.startsWith('}') ? await slot('{@}') : await slot(`{${room}}`)
      const keys = [roomKey(keyPrefix, 'nodes', room), memberKey(keyPrefix, room, a.hub.nodeId), keyPrefix + roomChannel(room),
        roomKey(keyPrefix, 'history', room), roomKey(keyPrefix, 'presence', room)]
      for (const key of keys) assert.equal(await slot(key), expected, `${key} of room ${JSON.stringify(room)}`)
      // The keys exist, each on the master of that slot.
      const owner = await cluster.masterOf(`{${room.startsWith('}') ? '@' : room}}`)
      assert.equal(await masters[owner].exists(roomKey(keyPrefix, 'nodes', room)), 1)
      assert.equal(await masters[owner].hget(roomKey(keyPrefix, 'nodes', room), a.hub.nodeId), '1')
    }
    // Two rooms never share a key, whatever their braces.
    const all = names.flatMap(room => [roomKey(keyPrefix, 'nodes', room), memberKey(keyPrefix, room, 'n'), roomChannel(room)])
    assert.equal(new Set(all).size, all.length)
    assert.equal(await slot(nodeKey(keyPrefix, 'rooms', a.hub.nodeId)), await slot(`{${a.hub.nodeId}}`))
    // Subscriptions are shard channels on their masters, and no classic channel carries a room.
    const shardChannels = (await Promise.all(masters.map(master => master.pubsub('SHARDCHANNELS', `${keyPrefix}*`)))).flat()
    assert.deepEqual(shardChannels.sort(), [...names.map(room => keyPrefix + roomChannel(room)), `${keyPrefix}broadcast`, `${keyPrefix}node#${a.hub.nodeId}`].sort())
    assert.deepEqual((await Promise.all(masters.map(master => master.pubsub('CHANNELS', `${keyPrefix}*`)))).flat(), [])
    assert.deepEqual((await a.hub.rooms()).sort(), [...names].sort())
  })

  test('a room message reaches only the nodes with members of its rooms; each member once', async t => {
    const keyPrefix = `routing-${++prefixes}:`
    const a = await node(t, { keyPrefix })
    const b = await node(t, { keyPrefix })
    const c = await node(t, { keyPrefix })
    const b1 = await b.add(['r1', 'r2'])
    const b2 = await b.add(['r2'])
    const c1 = await c.add(['elsewhere'])
    await a.hub.to(['r1', 'r2']).send('one')
    await a.hub.to('r2').send('two')
    await until(() => b.received.get(b2.id).length === 2)
    assert.deepEqual(b.received.get(b1.id), ['one', 'two'])
    assert.deepEqual(b.received.get(b2.id), ['one', 'two'])
    assert.deepEqual(c.received.get(c1.id), [])
    assert.equal(c.hub.routing().received, 0, 'the node with no member did no work for them')
    assert.equal(b.hub.routing().received, 3, 'r1 and r2 once each, then r2')
  })

  test('an ioredis Cluster of the app is used and left open; the hub works on it', async t => {
    const client = new Cluster(cluster.nodes)
    t.after(() => client.disconnect())
    const keyPrefix = `app-cluster-${++prefixes}:`
    const a = await build(t, app => {
      app.wsRoute('/ws', async conn => {
        await conn.join('lobby')
        await conn.sendJson({ id: conn.id })
      })
    }, { redis: client, keyPrefix })
    const b = await build(t, () => {}, { redis: { cluster: cluster.nodes }, keyPrefix })
    const ws = await connect(t, a, '/ws')
    const id = JSON.parse(await ws.next()).id
    await b.ws.to('lobby').send('from b')
    assert.equal(await ws.next(), 'from b')
    assert.equal(await b.ws.send(id, 'direct'), true)
    assert.equal(await ws.next(), 'direct')
    assert.equal(await b.ws.has(id), true)
    assert.equal(await b.ws.roomSize('lobby'), 1)
    assert.deepEqual(await b.ws.members('lobby'), [id])
    await b.ws.sendAll('everyone')
    assert.equal(await ws.next(), 'everyone')
    await a.close()
    assert.equal(client.status, 'ready', 'the app\'s Cluster stays open')
    assert.equal(await b.ws.roomSize('lobby'), 0)
  })

  test('registration with { cluster: [] } fails with WSHUB_ERR_INVALID_OPTION', async () => {
    const app = Fastify()
    await assert.rejects(app.register(wsHub, { redis: { cluster: [] } }).ready(), { code: 'WSHUB_ERR_INVALID_OPTION', message: /redis\.cluster/ })
    await app.close()
  })

  test('a master that restarts empty: the rooms on its shard get their messages and their presence back', async t => {
    const keyPrefix = `restart-${++prefixes}:`
    const a = await node(t, { keyPrefix, nodeTtl: 1500, requestTimeout: 1000 })
    const b = await node(t, { keyPrefix, nodeTtl: 1500, requestTimeout: 1000 })
    // A room on each master.
    const rooms = [undefined, undefined, undefined]
    for (let i = 0; rooms.includes(undefined); i++) {
      const owner = await cluster.masterOf(`{room${i}}`)
      if (rooms[owner] === undefined) rooms[owner] = `room${i}`
      if (i > 1000) throw new Error('no room found for every master')
    }
    const members = []
    for (const room of rooms) members.push(await b.add([room]))
    const victim = await cluster.masterOf(`${keyPrefix}nodes`) === 0 ? 1 : 0

    await cluster.restartMaster(victim)
    const room = rooms[victim]
    await until(async () => {
      await a.hub.to(room).send('after the restart')
      return b.received.get(members[victim].id).includes('after the restart')
    }, 10_000, 'messages to the restarted shard\'s room to flow again')
    await until(async () => await a.hub.roomSize(room).catch(() => -1) === 1, 10_000, 'the presence on the restarted shard to be written again')
    assert.deepEqual(await a.hub.members(room), [members[victim].id])
    for (const [i, other] of rooms.entries()) assert.equal(await a.hub.roomSize(other), 1, `room on master ${i}`)
    assert.equal(await a.hub.has(members[0].id), true)
  })
  test('history and tracked presence on the cluster: a stamped message with its offset on every node, recovery on another node, presence diffs', async t => {
    const keyPrefix = `kept-${++prefixes}:`
    const options = { redis: { cluster: cluster.nodes }, keyPrefix, history: { size: 10, stamp: 'offset' } }
    const route = app => {
      app.wsRoute('/feed/:room', async conn => {
        const joined = await conn.join(conn.params.room, { since: conn.query.since })
        await conn.track(conn.params.room, conn.query.name ?? 'anon', { name: conn.query.name })
        await conn.sendJson({ joined })
      })
    }
    const a = await build(t, route, options)
    const b = await build(t, route, options)
    const diffs = []
    b.ws.on('presence', diff => diffs.push(diff))
    // Rooms on each master: their streams and shard channels live on different shards.
    const rooms = ['r0', 'r1', 'r2', 'r3', 'r4', 'r5']
    for (const room of rooms) {
      const ws = await connect(t, b, `/feed/${room}?name=ann`)
      assert.deepEqual(JSON.parse(await ws.next()).joined, { recovered: false, replayed: 0 })
      const first = await a.ws.to(room).send({ n: 1 })
      const second = await a.ws.to(room).send({ n: 2 })
      assert.equal(typeof first, 'string')
      assert.deepEqual(JSON.parse(await ws.next()), { n: 1, offset: first })
      assert.deepEqual(JSON.parse(await ws.next()), { n: 2, offset: second })
      assert.deepEqual((await a.ws.history(room)).map(entry => entry.offset), [first, second])
      // The page reconnects to the other node with the first offset: the second is replayed.
      const again = await connect(t, a, `/feed/${room}?name=bob&since=${encodeURIComponent(first)}`)
      assert.deepEqual(JSON.parse(await again.next()), { n: 2, offset: second })
      assert.deepEqual(JSON.parse(await again.next()).joined, { recovered: true, replayed: 1 })
      const present = await b.ws.presence(room)
      assert.deepEqual(Object.keys(present).sort(), ['ann', 'bob'])
    }
    await until(() => diffs.some(diff => diff.room === 'r5' && Object.keys(diff.joins).includes('bob')))
  })
})
