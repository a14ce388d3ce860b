// The broker seam: MemoryBroker's contract, and hubs that reach each other through one.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Hub, MemoryBroker, MemoryBus } from '../dist/lib/index.js'
import { BROADCAST_CHANNEL } from '../dist/lib/hub.js'
import { kDeliver } from '../dist/lib/symbols.js'

const envelope = (origin, text) => ({ origin, type: 'all', binary: false, payload: Buffer.from(text) })
const tick = () => new Promise(resolve => setImmediate(resolve))

describe('MemoryBroker', () => {
  test('delivers to every subscriber of the channel, itself included, asynchronously and in order', async () => {
    const bus = new MemoryBus()
    const a = new MemoryBroker(bus)
    const b = new MemoryBroker(bus)
    const seenA = []
    const seenB = []
    await a.subscribe('c', e => seenA.push(e.payload.toString()))
    await b.subscribe('c', e => seenB.push(e.payload.toString()))
    const published = [a.publish('c', envelope('a', '1')), a.publish('c', envelope('a', '2'))]
    assert.deepEqual(seenA, [], 'never inside publish()')
    await Promise.all(published)
    await tick()
    assert.deepEqual(seenA, ['1', '2'])
    assert.deepEqual(seenB, ['1', '2'])
  })

  test('other channels, unsubscribed listeners and separate buses see nothing', async () => {
    const bus = new MemoryBus()
    const a = new MemoryBroker(bus)
    const b = new MemoryBroker(bus)
    const alone = new MemoryBroker()
    const seen = []
    await b.subscribe('other', () => seen.push('other'))
    await b.subscribe('c', () => seen.push('c'))
    await alone.subscribe('c', () => seen.push('alone'))
    await b.unsubscribe('c')
    await b.unsubscribe('never')
    await a.publish('c', envelope('a', 'x'))
    await a.publish('nobody-listens', envelope('a', 'x'))
    await tick()
    assert.deepEqual(seen, [])
  })

  test('subscribing again replaces the listener', async () => {
    const broker = new MemoryBroker()
    const seen = []
    await broker.subscribe('c', () => seen.push(1))
    await broker.subscribe('c', () => seen.push(2))
    await broker.publish('c', envelope('x', 'y'))
    await tick()
    assert.deepEqual(seen, [2])
  })

  test('close unsubscribes everything, is idempotent, and publish or subscribe after it reject', async () => {
    const bus = new MemoryBus()
    const broker = new MemoryBroker(bus)
    await broker.subscribe('c', () => {})
    await broker.close()
    await broker.close()
    assert.equal(bus.channels.size, 0)
    await assert.rejects(broker.publish('c', envelope('x', 'y')), { code: 'WSHUB_ERR_BROKER_CLOSED' })
    await assert.rejects(broker.subscribe('c', () => {}), { code: 'WSHUB_ERR_BROKER_CLOSED' })
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

  test('a hub publishes room broadcasts and sendAll on the broadcast channel, once, with its origin', async () => {
    const bus = new MemoryBus()
    const { hub } = await node(bus, {})
    const listener = new MemoryBroker(bus)
    const seen = []
    await listener.subscribe(BROADCAST_CHANNEL, e => seen.push(e))
    await hub.to(['r', 's']).except('someone').send({ hello: 1 })
    await hub.sendAll(Buffer.from([1, 2]))
    await tick()
    assert.equal(seen.length, 2)
    assert.deepEqual(seen[0], {
      origin: hub.nodeId, type: 'rooms', rooms: ['r', 's'], except: ['someone'], binary: false, payload: Buffer.from('{"hello":1}')
    })
    assert.deepEqual(seen[1], { origin: hub.nodeId, type: 'all', binary: true, payload: Buffer.from([1, 2]) })
    await hub.stop()
    await listener.close()
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
