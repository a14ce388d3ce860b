// Room members that stop reading while tiny broadcasts keep coming: what each can make the server hold
// is bounded near the backpressure limit whatever the message sizes.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { flood, heapGrowth, MB } from './flood-helpers.js'
import { build, until } from './helpers.js'

const TINY = 'x'
const MEMBERS = 3

test('room members that stop reading under a stream of 1-byte broadcasts are closed near the limit', async (t) => {
  const app = await build(t, app => {
    app.wsRoute('/room', async conn => {
      await conn.join('tiny')
      for await (const _ of conn); // eslint-disable-line no-unused-vars
    })
  })
  flood(t, app, '/room', MEMBERS, 'quiet')
  await until(async () => await app.ws.roomSize('tiny') === MEMBERS, 10_000, 'the members to join')
  const sending = { on: true }
  const growth = heapGrowth(() => app.ws.stats().closedForBackpressure === MEMBERS, 20_000).finally(() => { sending.on = false })
  while (sending.on) {
    for (let i = 0; i < 5000; i++) app.ws.to('tiny').send(TINY)
    await new Promise(resolve => setImmediate(resolve))
  }
  assert.ok(await growth < 64 * MB, `heap grew ${(await growth / MB).toFixed(1)} MB`)
  assert.equal(app.ws.size, 0)
})
