// The broker seam: MemoryBroker's contract, and hubs that reach each other through one.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Hub, MemoryBroker, MemoryBus } from '../dist/lib/index.js'
import { BROADCAST_CHANNEL } from '../dist/lib/hub.js'
import { roomChannel } from '../dist/lib/broker/keys.js'
import { kDeliver } from '../dist/lib/symbols.js'
import { brokerSuite } from './broker-suite.js'

const envelope = (origin, text) => ({ origin, type: 'all', binary: false, payload: Buffer.from(text) })
const tick = () => new Promise(resolve => setImmediate(resolve))

brokerSuite('MemoryBroker', async () => {
  const bus = new MemoryBus()
  return [new MemoryBroker(bus), new MemoryBroker(bus)]
})

describe('MemoryBroker', () => {
  test('brokers on separate buses do not reach each other', async () => {
    const a = new MemoryBroker()
    const alone = new MemoryBroker()
    const seen = []
    await alone.subscribe('c', () => seen.push('alone'))
    await a.publish('c', envelope('a', 'x'))
    assert.equal(await a.direct('c', envelope('a', 'x')), false)
    await tick()
    assert.deepEqual(seen, [])
  })

  test('close leaves nothing on the bus', async () => {
    const bus = new MemoryBus()
    const broker = new MemoryBroker(bus)
    await broker.subscribe('c', () => {})
    await broker.subscribe('d', () => {})
    await broker.close()
    assert.equal(bus.channels.size, 0)
  })
})

describe('hubs over one bus', () => {
  /** A hub with local members that record what reaches them (the hub only needs an id and kDeliver). */
  async function node (bus, members) {
    const hub = new Hub(new MemoryBroker(bus), { warn () {} })
    await hub.start()
    const received = {}
    for (const [name, rooms] of Object.entries(members)) {
      const member = { id: hub.newId(), [kDeliver]: message => { received[name].push(message.payload.toString()); return true } }
      received[name] = []
      hub.registry.add(member)
      for (const room of rooms) hub.registry.join(member, room)
      members[name] = member
    }
    return { hub, received, members }
  }

  test('a hub publishes a room message once on each target room\'s channel, and sendAll on the broadcast channel, with its origin', async () => {
    const bus = new MemoryBus()
    const { hub } = await node(bus, {})
    const listener = new MemoryBroker(bus)
    const seen = { all: [], r: [], s: [] }
    await listener.subscribe(BROADCAST_CHANNEL, e => seen.all.push(e))
    await listener.subscribe(roomChannel('r'), e => seen.r.push(e))
    await listener.subscribe(roomChannel('s'), e => seen.s.push(e))
    await hub.to(['r', 's']).except('someone').send({ hello: 1 })
    await hub.sendAll(Buffer.from([1, 2]))
    await tick()
    const envelope = {
      origin: hub.nodeId, type: 'rooms', rooms: ['r', 's'], except: ['someone'], binary: false, payload: Buffer.from('{"hello":1}')
    }
    assert.deepEqual(seen.r, [envelope])
    assert.deepEqual(seen.s, [envelope])
    assert.deepEqual(seen.all, [{ origin: hub.nodeId, type: 'all', binary: true, payload: Buffer.from([1, 2]) }])
    await hub.stop()
    await listener.close()
  })

  test('a module event about a room reaches the listener of its topic on the other hubs with members of the room, not the publisher', async () => {
    const bus = new MemoryBus()
    const a = await node(bus, { a1: ['lobby'] })
    const b = await node(bus, { b1: ['lobby'] })
    const c = await node(bus, { c1: ['elsewhere'] })
    const seen = { a: [], b: [], c: [], other: [] }
    a.hub.onEvent('presence', (room, payload, origin) => seen.a.push([room, payload.toString(), origin]))
    b.hub.onEvent('presence', (room, payload, origin) => seen.b.push([room, payload.toString(), origin]))
    c.hub.onEvent('presence', (room, payload, origin) => seen.c.push([room, payload.toString(), origin]))
    b.hub.onEvent('other', () => seen.other.push('x'))
    await a.hub.publishEvent('presence', 'lobby', Buffer.from('diff'))
    await tick()
    assert.deepEqual(seen, { a: [], b: [['lobby', 'diff', a.hub.nodeId]], c: [], other: [] })
    assert.equal(c.hub.routing().received, 0, 'a hub with no member of the room gets nothing')
    await c.hub.stop()
    await a.hub.stop()
    await assert.rejects(a.hub.publishEvent('presence', 'lobby', Buffer.from('late')), { code: 'WSHUB_ERR_BROKER_CLOSED' })
    await b.hub.stop()
  })

  test('room broadcasts, except and sendAll reach members of the other hub; a hub ignores its own envelopes', async () => {
    const bus = new MemoryBus()
    const a = await node(bus, { a1: ['r'] })
    const b = await node(bus, { b1: ['r'], b2: ['r', 's'], b3: [] })
    await a.hub.to('r').send('to r')
    await a.hub.to(['r', 's']).except(b.members.b1.id).send('r or s, not b1')
    await a.hub.sendAll('all')
    await tick()
    assert.deepEqual(a.received, { a1: ['to r', 'r or s, not b1', 'all'] }, 'local members once, not again from the bus')
    assert.deepEqual(b.received, {
      b1: ['to r', 'all'],
      b2: ['to r', 'r or s, not b1', 'all'],
      b3: ['all']
    })
    await a.hub.stop()
    await b.hub.stop()
  })

  test('a stopped hub no longer receives', async () => {
    const bus = new MemoryBus()
    const a = await node(bus, {})
    const b = await node(bus, { b1: ['r'] })
    await b.hub.stop()
    await a.hub.to('r').send('x')
    await tick()
    assert.deepEqual(b.received.b1, [])
    await a.hub.stop()
  })
})

describe('directed calls between hubs over one bus', () => {
  /** A hub whose members record deliveries and closes (the hub needs an id, kDeliver and close). */
  async function node (bus, names, options) {
    const hub = new Hub(new MemoryBroker(bus), { warn () {}, debug () {} }, options)
    await hub.start()
    const log = []
    const members = {}
    for (const name of names) {
      const member = {
        id: hub.newId(),
        [kDeliver]: message => { log.push([name, message.binary ? [...message.payload] : message.payload.toString()]); return true },
        close: async (code, reason) => { log.push([name, 'closed', code, reason]); hub.registry.remove(member) }
      }
      hub.registry.add(member)
      members[name] = member
    }
    return { hub, log, members }
  }

  test('send, close, has, join and leave reach a connection of the other hub', async t => {
    const bus = new MemoryBus()
    const a = await node(bus, ['a1'])
    const b = await node(bus, ['b1', 'b2'])
    t.after(() => Promise.all([a.hub.stop(), b.hub.stop()]))
    const b1 = b.members.b1.id
    assert.equal(await a.hub.has(b1), true)
    assert.equal(await a.hub.send(b1, { hi: 1 }), true)
    assert.equal(await a.hub.send(b1, new Uint8Array([1, 2])), true)
    assert.equal(await a.hub.join(b1, 'vip'), true)
    assert.deepEqual([...b.hub.registry.roomsOf(b.members.b1)], ['vip'])
    await a.hub.to('vip').send('to vip')
    await tick()
    assert.equal(await a.hub.leave(b1, 'vip'), true)
    assert.equal(b.hub.registry.rooms.size, 0)
    assert.equal(await a.hub.close(b1, 4001, 'kicked'), true)
    assert.equal(await a.hub.has(b1), false, 'gone after the close')
    assert.equal(await a.hub.send(b1, 'late'), false)
    assert.equal(await a.hub.join(b1, 'vip'), false)
    assert.equal(await a.hub.close(b1), false)
    assert.deepEqual(b.log, [['b1', '{"hi":1}'], ['b1', [1, 2]], ['b1', 'to vip'], ['b1', 'closed', 4001, 'kicked']])
    assert.deepEqual(a.log, [])
  })

  test('an id of a node nobody hears resolves false at once; ids that cannot be ids resolve false', async t => {
    const bus = new MemoryBus()
    const a = await node(bus, [], { requestTimeout: 60_000 })
    t.after(() => a.hub.stop())
    for (const id of ['gone.abc', 'nodot', '.abc', `${'n'.repeat(65)}.abc`, `x.${'y'.repeat(300)}`, 42, undefined]) {
      assert.equal(await a.hub.has(id), false, String(id))
      assert.equal(await a.hub.send(id, 'x'), false, String(id))
      assert.equal(await a.hub.close(id), false, String(id))
      assert.equal(await a.hub.join(id, 'r'), false, String(id))
      assert.equal(await a.hub.leave(id, 'r'), false, String(id))
    }
    assert.equal(await a.hub.has(`${a.hub.nodeId}.unknown`), false, 'an unknown id of this node is not asked about')
  })

  test('a remote send or close checks its arguments as a local one does', async t => {
    const bus = new MemoryBus()
    const a = await node(bus, [])
    const b = await node(bus, ['b1'])
    t.after(() => Promise.all([a.hub.stop(), b.hub.stop()]))
    const b1 = b.members.b1.id
    await assert.rejects(a.hub.send(b1, 10n), { code: 'WSHUB_ERR_INVALID_PAYLOAD' })
    await assert.rejects(a.hub.close(b1, 1005), { code: 'WSHUB_ERR_INVALID_PAYLOAD', message: /1005 is not a close code/ })
    await assert.rejects(a.hub.close(b1, 1000, 'x'.repeat(124)), { code: 'WSHUB_ERR_INVALID_PAYLOAD', message: /123 bytes/ })
    await assert.rejects(a.hub.join(b1, ''), { code: 'WSHUB_ERR_INVALID_ROOM' })
    assert.deepEqual(b.log, [])
  })

  test('a node that hears but never answers makes the call reject with WSHUB_ERR_REQUEST_TIMEOUT in time', async t => {
    const bus = new MemoryBus()
    const a = await node(bus, [], { requestTimeout: 150 })
    const silent = new MemoryBroker(bus)
    const heard = []
    await silent.subscribe('node#mute', e => heard.push(e))
    t.after(() => Promise.all([a.hub.stop(), silent.close()]))
    const started = Date.now()
    await assert.rejects(a.hub.has('mute.conn'), {
      code: 'WSHUB_ERR_REQUEST_TIMEOUT',
      statusCode: 504,
      message: 'has(mute.conn) got no reply from the owning node within 150 ms'
    })
    const took = Date.now() - started
    assert.ok(took >= 140 && took < 1000, `rejected after ${took} ms`)
    assert.deepEqual(heard.map(e => [e.type, e.op, e.target, e.origin]), [['request', 'has', 'mute.conn', a.hub.nodeId]])
  })

  test('a request the owner fails to carry out is answered false; stray replies are ignored', async t => {
    const bus = new MemoryBus()
    const a = await node(bus, [])
    const b = await node(bus, ['b1'])
    t.after(() => Promise.all([a.hub.stop(), b.hub.stop()]))
    b.members.b1.close = () => Promise.reject(new Error('cannot close'))
    assert.equal(await a.hub.close(b.members.b1.id), false)
    const other = new MemoryBroker(bus)
    t.after(() => other.close())
    await other.direct(`node#${a.hub.nodeId}`, { origin: 'x', type: 'reply', seq: 12345, result: true })
    await other.direct(`node#${a.hub.nodeId}`, { origin: 'x', type: 'rooms', rooms: [], binary: false, payload: Buffer.alloc(0) })
    await tick()
    assert.equal(await a.hub.has(b.members.b1.id), true, 'still answering')
  })

  test('pending calls reject with WSHUB_ERR_BROKER_CLOSED when the hub stops, and later ones at once', async () => {
    const bus = new MemoryBus()
    const a = await node(bus, [], { requestTimeout: 60_000 })
    const silent = new MemoryBroker(bus)
    await silent.subscribe('node#mute', () => {})
    const pending = a.hub.send('mute.conn', 'x')
    await tick()
    await a.hub.stop()
    await assert.rejects(pending, { code: 'WSHUB_ERR_BROKER_CLOSED' })
    await assert.rejects(a.hub.has('mute.conn'), { code: 'WSHUB_ERR_BROKER_CLOSED' })
    await silent.close()
  })
})

describe('requests from another node that cannot be carried out or answered', () => {
  test('a malformed request is answered false and logged; a reply that cannot be sent is logged at debug level', async () => {
    const bus = new MemoryBus()
    const lines = []
    const log = { warn: (obj, msg) => lines.push(['warn', msg, obj.err?.code]), debug: (obj, msg) => lines.push(['debug', msg, obj.err?.code]) }
    const owner = new Hub(new MemoryBroker(bus), log)
    await owner.start()
    let finishClose
    const member = { id: owner.newId(), [kDeliver]: () => true, close: () => new Promise(resolve => { finishClose = resolve }) }
    owner.registry.add(member)
    const asker = new MemoryBroker(bus)
    const replies = []
    await asker.subscribe('node#asker', e => replies.push(e))

    // A join with an invalid room name (a well-behaved node checks it before asking).
    await asker.direct(`node#${owner.nodeId}`, { origin: 'asker', type: 'request', seq: 1, op: 'join', target: member.id, room: '' })
    await tick()
    assert.deepEqual(replies, [{ origin: owner.nodeId, type: 'reply', seq: 1, result: false }])
    assert.deepEqual(lines, [['warn', 'fastify-ws-hub: a request from another node failed', 'WSHUB_ERR_INVALID_ROOM']])

    // A close still running when the owner shuts down: its reply cannot go out any more.
    await asker.direct(`node#${owner.nodeId}`, { origin: 'asker', type: 'request', seq: 2, op: 'close', target: member.id, code: 1000, reason: '' })
    await tick()
    await owner.stop()
    finishClose()
    await tick()
    assert.equal(replies.length, 1)
    assert.deepEqual(lines[1], ['debug', 'fastify-ws-hub: could not reply to another node', 'WSHUB_ERR_BROKER_CLOSED'])
    await asker.close()
  })
})
