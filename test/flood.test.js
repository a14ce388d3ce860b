// Floods of tiny messages that the peer never reads: what one connection can make the server hold is
// bounded near the backpressure limit whatever the message sizes, and the server keeps answering others.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'
import { WebSocketHandler } from '../dist/lib/index.js'
import { build, connect, until } from './helpers.js'

const FLOODER = new URL('./fixtures/flooder.js', import.meta.url).pathname
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

// An echo that does not await its send, so that nothing paces it: only the limit bounds what it queues.
// (One that awaits is paced by the peer: test/write-path.test.js.)
class SyncEcho extends WebSocketHandler {
  receive (data) { this.send(data).catch(() => {}) }
}

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

for (const [name, Handler] of [['a synchronous', SyncEcho]]) {
  test(`a 1-byte flood to ${name} class echo that never reads is closed near the limit; another client's echo keeps answering`, async (t) => {
    const app = await build(t, app => {
      app.wsRoute('/echo', Handler)
    })
    const other = await connect(t, app, '/echo')
    flood(t, app, '/echo')
    await until(() => app.ws.stats().messagesIn > 20_000, 10_000, 'the flood to start')
    const growth = heapGrowth(() => app.ws.stats().closedForBackpressure === 1, 20_000)
    other.send('still there?')
    assert.equal(await other.next(5000), 'still there?')
    assert.ok(await growth < 32 * MB, `heap grew ${(await growth / MB).toFixed(1)} MB`)
    assert.equal(app.ws.size, 1)
  })
}
