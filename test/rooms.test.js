// RoomRegistry: the hub's local indexes, a plain data structure.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RoomRegistry } from '../dist/lib/rooms.js'

function recorder (registry) {
  const events = []
  for (const name of ['create-room', 'delete-room', 'join-room', 'leave-room']) {
    registry.on(name, (...args) => events.push([name, ...args]))
  }
  return events
}

test('join and leave keep both indexes and emit the four events', () => {
  const registry = new RoomRegistry()
  const events = recorder(registry)
  const a = { id: 'a' }
  const b = { id: 'b' }
  registry.add(a)
  registry.add(b)
  assert.equal(registry.join(a, 'r'), true)
  assert.equal(registry.join(a, 'r'), false, 'joining twice is a no-op')
  assert.equal(registry.join(b, 'r'), true)
  assert.deepEqual([...registry.rooms.get('r')], [a, b])
  assert.deepEqual([...registry.roomsOf(a)], ['r'])
  assert.equal(registry.leave(a, 'r'), true)
  assert.equal(registry.leave(a, 'r'), false, 'leaving twice is a no-op')
  assert.equal(registry.leave(a, 'never'), false)
  assert.equal(registry.leave(b, 'r'), true)
  assert.equal(registry.rooms.size, 0, 'an empty room is deleted')
  assert.deepEqual(events, [
    ['create-room', 'r'],
    ['join-room', 'r', 'a'],
    ['join-room', 'r', 'b'],
    ['leave-room', 'r', 'a'],
    ['leave-room', 'r', 'b'],
    ['delete-room', 'r']
  ])
})

test('remove takes a member out of every room and the id index', () => {
  const registry = new RoomRegistry()
  const events = recorder(registry)
  const a = { id: 'a' }
  const b = { id: 'b' }
  registry.add(a)
  registry.add(b)
  registry.join(a, 'x')
  registry.join(a, 'y')
  registry.join(b, 'y')
  registry.remove(a)
  assert.equal(registry.connections.has('a'), false)
  assert.equal(registry.roomsOf(a).size, 0)
  assert.deepEqual([...registry.rooms.keys()], ['y'])
  assert.deepEqual(events.slice(-3), [['leave-room', 'x', 'a'], ['delete-room', 'x'], ['leave-room', 'y', 'a']])
  registry.remove(b)
  assert.equal(registry.rooms.size, 0)
  assert.equal(registry.connections.size, 0)
})

test('a member in no room costs no membership set: roomsOf gives one shared, frozen empty set', () => {
  const registry = new RoomRegistry()
  const a = { id: 'a' }
  const b = { id: 'b' }
  assert.equal(registry.roomsOf(a), registry.roomsOf(b))
  assert.equal(registry.roomsOf(a).size, 0)
  assert.ok(Object.isFrozen(registry.roomsOf(a)))
  registry.join(a, 'r')
  registry.leave(a, 'r')
  assert.equal(registry.roomsOf(a), registry.roomsOf(b), 'the set goes away with the last room')
})
