// Inbox: a connection's bounded receive queue.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { INBOX_HIGH_WATER_BYTES, INBOX_HIGH_WATER_MESSAGES } from '../dist/lib/constants.js'
import { Inbox } from '../dist/lib/inbox.js'

const idle = { pause () {}, resume () {} }
const recorder = calls => ({ pause: () => calls.push(true), resume: () => calls.push(false) })

test('hands messages out in order, to waiters first', async () => {
  const inbox = new Inbox(idle)
  const waiting = inbox.next()
  assert.equal(inbox.hasWaiters, true)
  inbox.push('a')
  inbox.push(Buffer.from('b'))
  assert.equal(await waiting, 'a')
  assert.equal(inbox.length, 1)
  assert.deepEqual(await inbox.next(), Buffer.from('b'))
  assert.equal(inbox.shift(), undefined)
})

test('asks to pause at the message high-water mark and to resume below half', () => {
  const calls = []
  const inbox = new Inbox(recorder(calls))
  for (let i = 0; i < INBOX_HIGH_WATER_MESSAGES - 1; i++) inbox.push('x')
  assert.deepEqual(calls, [])
  inbox.push('x')
  assert.deepEqual(calls, [true])
  inbox.push('x')
  assert.deepEqual(calls, [true], 'asks once')
  while (inbox.length * 2 >= INBOX_HIGH_WATER_MESSAGES) inbox.shift()
  assert.deepEqual(calls, [true, false])
})

test('pauses again when full and another queue of the socket has resumed it', () => {
  const calls = []
  const socket = { isPaused: false, pause () { this.isPaused = true; calls.push(true) }, resume () { this.isPaused = false; calls.push(false) } }
  const inbox = new Inbox(socket)
  for (let i = 0; i < INBOX_HIGH_WATER_MESSAGES; i++) inbox.push('x')
  inbox.push('x')
  assert.deepEqual(calls, [true])
  socket.resume() // someone else
  inbox.push('x')
  assert.deepEqual(calls, [true, false, true])
})

test('asks to pause at the byte high-water mark', () => {
  const calls = []
  const inbox = new Inbox(recorder(calls))
  inbox.push(Buffer.alloc(INBOX_HIGH_WATER_BYTES / 2))
  assert.deepEqual(calls, [])
  inbox.push('y'.repeat(INBOX_HIGH_WATER_BYTES / 2))
  assert.deepEqual(calls, [true])
  inbox.shift()
  inbox.shift()
  assert.deepEqual(calls, [true, false])
})

test('clear drops everything and resumes a paused socket', () => {
  const calls = []
  const inbox = new Inbox(recorder(calls))
  for (let i = 0; i < INBOX_HIGH_WATER_MESSAGES; i++) inbox.push('x')
  inbox.clear()
  assert.equal(inbox.length, 0)
  assert.deepEqual(calls, [true, false])
})

test('end rejects waiters, then hands out what was left, then rejects', async () => {
  const inbox = new Inbox(idle)
  const waiting = inbox.next()
  const err = new Error('closed')
  let built = 0
  inbox.end(() => { built++; return err })
  await assert.rejects(waiting, err)
  await assert.rejects(inbox.next(), err)
  assert.equal(built, 1, 'the error is built once, when first needed')
  assert.equal(inbox.ended, true)

  const other = new Inbox(idle)
  other.push('left over')
  other.end(() => err)
  other.end(() => new Error('ignored: ends once'))
  other.push('after the end is dropped')
  assert.equal(await other.next(), 'left over')
  await assert.rejects(other.next(), err)
})

test('a long queue read from the front stays compact and correct', async () => {
  const inbox = new Inbox(idle)
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 3000; i++) inbox.push(`m${i}`)
    for (let i = 0; i < 3000; i++) assert.equal(inbox.shift(), `m${i}`)
  }
  assert.equal(inbox.length, 0)
})

test('nextResult: iterator results, waiting or not, and done once ended and empty', async () => {
  const inbox = new Inbox(idle)
  inbox.push('queued')
  assert.deepEqual(await inbox.nextResult(), { value: 'queued', done: false })
  const waiting = inbox.nextResult()
  inbox.push('later')
  assert.deepEqual(await waiting, { value: 'later', done: false })
  inbox.push('left over')
  const pending = [inbox.next()]
  inbox.end(() => new Error('closed'))
  assert.equal(await pending[0], 'left over')
  assert.deepEqual(await inbox.nextResult(), { value: undefined, done: true })
  const other = new Inbox(idle)
  const waitingForEnd = other.nextResult()
  let built = false
  other.end(() => { built = true; return new Error('closed') })
  assert.deepEqual(await waitingForEnd, { value: undefined, done: true }, 'a waiting iterator ends, it does not reject')
  assert.equal(built, false, 'no error is built when nobody gets it')
})

test('several waiters at once are served in order, of either kind, and all settle at the end', async () => {
  const inbox = new Inbox(idle)
  const first = inbox.next()
  const second = inbox.nextResult()
  const third = inbox.next()
  const fourth = inbox.nextResult()
  const fifth = inbox.next()
  inbox.push('a')
  inbox.push('b')
  assert.equal(await first, 'a')
  assert.deepEqual(await second, { value: 'b', done: false })
  assert.equal(inbox.hasWaiters, true)
  inbox.push('c')
  assert.equal(await third, 'c')
  assert.equal(inbox.length, 0)
  inbox.end(() => new Error('gone'))
  assert.equal(inbox.hasWaiters, false)
  assert.deepEqual(await fourth, { value: undefined, done: true })
  await assert.rejects(fifth, /gone/)
  // A waiter after the others were served takes the first place again.
  const other = new Inbox(idle)
  const x = other.next()
  other.push('x')
  assert.equal(await x, 'x')
  const y = other.next()
  assert.equal(other.hasWaiters, true)
  other.push('y')
  assert.equal(await y, 'y')
  assert.equal(other.hasWaiters, false)
})
