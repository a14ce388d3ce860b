// Room members that stop reading while tiny broadcasts keep coming: what each can make the server hold
// is bounded near the backpressure limit whatever the message sizes.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'
import { build, until } from './helpers.js'

const FLOODER = new URL('./fixtures/flooder.js', import.meta.url).pathname
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

function flood (t, app, path, clients = 1, quiet = '') {
  const child = spawn(process.execPath, [FLOODER, String(app.server.address().port), path, String(clients), quiet], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => child.kill('SIGKILL'))
  return child
}

// The most heap the server holds (after a full collection, sampled every 200 ms) while `done()` is
// false, over what it held before.
async function heapGrowth (done, ms) {
  gc()
  const base = process.memoryUsage().heapUsed
  let peak = base
  let sampled = 0
  await until(() => {
    if (Date.now() - sampled >= 200) {
      gc()
      peak = Math.max(peak, process.memoryUsage().heapUsed)
      sampled = Date.now()
    }
    return done()
  }, ms, 'the flood to end')
  return peak - base
}

const MB = 1024 * 1024
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
