// Per-room routing on a real redis-server: a node listens on the channels of the rooms it has members
// in, and only on those; `join` resolves once the subscription is confirmed; a message to several rooms
// reaches each member once; subscriptions of one turn go out together, and a grace period keeps join
// and leave churn from turning into SUBSCRIBE / UNSUBSCRIBE traffic.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { roomChannel } from '../dist/lib/broker/keys.js'
import { ROOM_UNSUBSCRIBE_GRACE } from '../dist/lib/routing.js'
import { kDeliver } from '../dist/lib/symbols.js'
import { redisHub, until } from './helpers.js'
import { redisForFile } from './redis-server.js'

let redis, inspect
redisForFile((server, client) => { redis = server; inspect = client })

let prefixes = 0

/** A hub on its own RedisBroker; `add(rooms)` gives it a member that records what reaches it. */
async function node (t, keyPrefix) {
  const { hub, received, member } = await redisHub(t, redis.url, { keyPrefix })
  const add = async (rooms = []) => {
    const added = member()
    await Promise.all(rooms.map(room => hub.joinLocal(added, room)))
    return added
  }
  return { hub, add, received }
}

/** How many times Redis ran `command` so far. */
async function calls (command) {
  const stats = await inspect.info('commandstats')
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
}

const subscribers = async (keyPrefix, room) => (await inspect.pubsub('NUMSUB', keyPrefix + roomChannel(room)))[1]

test('a message published to a room right after a join on another node resolved reaches the new member', async t => {
  const keyPrefix = `routing-${++prefixes}:`
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  // Many joins at once keep the subscriber busy; each resolves once a listens on its room's channel.
  const rooms = Array.from({ length: 3000 }, (_, i) => `fresh${i}`)
  const member = await a.add(rooms)
  await Promise.all(rooms.map(room => b.hub.to(room).send(room)))
  await until(() => a.received.get(member.id).length === rooms.length, 3000, 'every message')
  assert.deepEqual(a.received.get(member.id).sort(), [...rooms].sort())
})

test('a node with no member in a room gets none of its messages; the nodes with members get each once', async t => {
  const keyPrefix = `routing-${++prefixes}:`
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  const c = await node(t, keyPrefix)
  const members = []
  for (let i = 0; i < 200; i++) members.push(await b.add([`b-room${i}`]))
  const other = await c.add(['c-room'])
  for (let i = 0; i < 200; i++) await a.hub.to(`b-room${i}`).send(`m${i}`)
  await until(() => members.every(member => b.received.get(member.id).length === 1), 3000, 'every member of b to get its message')
  await a.hub.sendAll('everyone')
  await until(() => c.received.get(other.id).length === 1, 2000, 'sendAll to reach c')
  assert.deepEqual(c.hub.routing(), { channels: 1, received: 0, idle: 0 }, 'c did no work for the rooms of b')
  assert.deepEqual(b.hub.routing(), { channels: 200, received: 200, idle: 0 })
  assert.equal(await subscribers(keyPrefix, 'b-room0'), 1, 'only b listens on the channel of its room')
})

test('to([r1, r2, r3]) reaches a member of several of the rooms once, on every node, and honours except', async t => {
  const keyPrefix = `routing-${++prefixes}:`
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  const all3 = await b.add(['r1', 'r2', 'r3'])
  const r2r3 = await b.add(['r2', 'r3'])
  const r3 = await b.add(['r3'])
  const left = await b.add(['r1'])
  const onA = await a.add(['r2', 'r3'])
  await a.hub.to(['r1', 'r2', 'r3']).except(left.id).send('once')
  await a.hub.to('r3').send('after')
  await until(() => b.received.get(r3.id).length === 2)
  for (const member of [all3, r2r3, r3]) assert.deepEqual(b.received.get(member.id), ['once', 'after'])
  assert.deepEqual(b.received.get(left.id), [])
  assert.deepEqual(a.received.get(onA.id), ['once', 'after'], 'the sender\'s own members once too')
})

test('the subscriptions of one turn go out in one SUBSCRIBE per 1,000 channels', async t => {
  const keyPrefix = `routing-${++prefixes}:`
  const a = await node(t, keyPrefix)
  const before = await calls('subscribe')
  const member = { id: a.hub.newId(), [kDeliver]: () => true }
  a.hub.registry.add(member)
  const joins = []
  for (let i = 0; i < 2500; i++) joins.push(a.hub.joinLocal(member, `batch${i}`))
  await Promise.all(joins)
  assert.equal(await calls('subscribe') - before, 3)
  assert.equal(await subscribers(keyPrefix, 'batch2499'), 1)
})

test('the messages of one turn to many rooms reach Redis in one write, in order, and each reaches its room on another node', async t => {
  const a = await node(t, 'routing-turn:')
  const b = await node(t, 'routing-turn:')
  const rooms = Array.from({ length: 40 }, (_, i) => `turn${i}`)
  const members = await Promise.all(rooms.map(room => b.add([room])))
  const readsBefore = Number(/total_reads_processed:(\d+)/.exec(await inspect.info('stats'))[1])
  const publishesBefore = await calls('publish')
  for (const [i, room] of rooms.entries()) a.hub.to(room).send(`m${i}`)
  await until(() => members.every(member => b.received.get(member.id).length === 1), 5000, 'every room\'s message')
  assert.deepEqual(members.map(member => b.received.get(member.id)), rooms.map((_, i) => [`m${i}`]))
  assert.equal(await calls('publish') - publishesBefore, 40, 'one PUBLISH per room channel')
  // The 40 commands, and then this client's INFO (and the other reads in between of the nodes' own
  // connections, such as a liveness refresh): far fewer reads than commands.
  const reads = Number(/total_reads_processed:(\d+)/.exec(await inspect.info('stats'))[1]) - readsBefore
  assert.ok(reads <= 6, `${reads} reads for 40 PUBLISH commands and 2 INFO`)
})

test('join and leave churn within the grace period costs no SUBSCRIBE or UNSUBSCRIBE; the channel is left after it', async t => {
  const keyPrefix = `routing-${++prefixes}:`
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  const member = await a.add(['churn'])
  const before = [await calls('subscribe'), await calls('unsubscribe')]
  for (let i = 0; i < 300; i++) {
    a.hub.registry.leave(member, 'churn')
    await a.hub.joinLocal(member, 'churn')
  }
  a.hub.registry.leave(member, 'churn')
  assert.deepEqual([await calls('subscribe'), await calls('unsubscribe')], before)
  // Still listening during the grace period: what arrives is counted as idle, and delivered to nobody.
  await b.hub.to('churn').send('during the grace period')
  await until(() => a.hub.routing().idle === 1, 2000, 'the idle envelope to be counted')
  assert.deepEqual(a.received.get(member.id), [])
  const left = Date.now()
  await until(async () => await subscribers(keyPrefix, 'churn') === 0, ROOM_UNSUBSCRIBE_GRACE + 2000, 'the channel to be left')
  assert.ok(Date.now() - left >= ROOM_UNSUBSCRIBE_GRACE - 1000, 'not before the grace period')
  assert.equal(await calls('unsubscribe') - before[1], 1)
  assert.equal(a.hub.routing().channels, 0)
  // Joining again subscribes again.
  await a.hub.joinLocal(member, 'churn')
  await b.hub.to('churn').send('back')
  await until(() => a.received.get(member.id).length === 1)
  assert.deepEqual(a.received.get(member.id), ['back'])
})

test('module events about a room go to the nodes with members of the room only', async t => {
  const keyPrefix = `routing-${++prefixes}:`
  const a = await node(t, keyPrefix)
  const b = await node(t, keyPrefix)
  const c = await node(t, keyPrefix)
  await b.add(['lobby'])
  await c.add(['elsewhere'])
  const seen = { b: [], c: [] }
  b.hub.onEvent('presence', (room, payload) => seen.b.push([room, payload.toString()]))
  c.hub.onEvent('presence', (room, payload) => seen.c.push([room, payload.toString()]))
  await a.hub.publishEvent('presence', 'lobby', Buffer.from('joined'))
  await until(() => seen.b.length === 1)
  assert.deepEqual(seen, { b: [['lobby', 'joined']], c: [] })
  assert.equal(c.hub.routing().received, 0)
})
