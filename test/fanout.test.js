// Room delivery in slices (lib/fanout.ts): a delivery that outlasts its slice yields to the event loop
// and goes on, and deliveries made meanwhile wait behind it, so every member sees the sending order.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FANOUT_LARGE, FANOUT_SLICE_MS } from '../dist/lib/constants.js'
import { Fanout } from '../dist/lib/fanout.js'

// Busy for `ms`: a member whose write is slow.
function spin (ms) {
  const until = performance.now() + ms
  while (performance.now() < until);
}

test('a delivery longer than its slice yields to the event loop between slices, and later ones keep their order', async () => {
  const fanout = new Fanout()
  const got = []
  const members = Array.from({ length: 400 }, (_, i) => i)
  let turns = 0
  const timer = setInterval(() => turns++, 0)
  const first = fanout.run(members.values(), members.length, (m) => { spin(0.1); got.push(['a', m]) })
  assert.ok(first instanceof Promise, 'not done within the call')
  assert.ok(fanout.busy)
  const sliceOf = got.length
  assert.ok(sliceOf > 0 && sliceOf < 400, `${sliceOf} delivered in the first slice`)
  // Queued behind the first even though it is small.
  const second = fanout.run([0, 1].values(), 2, (m) => got.push(['b', m]))
  assert.ok(second instanceof Promise)
  await Promise.all([first, second])
  clearInterval(timer)
  assert.equal(fanout.busy, false)
  assert.ok(turns > 0, 'timers ran between the slices')
  assert.deepEqual(got.slice(0, 400), members.map(m => ['a', m]))
  assert.deepEqual(got.slice(400), [['b', 0], ['b', 1]])
  assert.ok(FANOUT_SLICE_MS > 0)
})

test('a delivery that fits its slice is done within the call', () => {
  const fanout = new Fanout()
  const got = []
  assert.equal(fanout.run([1, 2, 3].values(), FANOUT_LARGE + 1, m => got.push(m)), null)
  assert.deepEqual(got, [1, 2, 3])
  assert.equal(fanout.busy, false)
})
