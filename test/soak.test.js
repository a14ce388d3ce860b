// Soak: 2,000 connect / join / message / disconnect cycles leave no connection, no room, and no heap growth
// to speak of. The server runs in its own process with --expose-gc; the clients run here.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { test } from 'node:test'
import { Client, until } from './helpers.js'

const CYCLES = 2000
const CONCURRENCY = 20

test(`${CYCLES} connect/join/disconnect cycles: size 0, no rooms, heap growth under 10 MB after GC`, async t => {
  const child = spawn(process.execPath, ['--expose-gc', new URL('./fixtures/soak-server.js', import.meta.url).pathname], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  await until(() => /port (\d+)/.test(output), 10_000, 'the soak server to listen')
  const base = `127.0.0.1:${/port (\d+)/.exec(output)[1]}`
  const heap = async () => (await fetch(`http://${base}/heap`)).json()

  let started = 0
  async function cycle () {
    const i = started++
    const path = i % 2 === 0 ? `/class/room-${i % 50}` : `/fn/room-${i % 50}`
    const client = new Client(`ws://${base}${path}`)
    await client.open()
    client.send(`hello from ${i}`)
    // Half of them leave cleanly, the other half vanish without a close frame.
    if (i % 4 < 2) await client.close(1000)
    else {
      client.ws.terminate()
      await client.closed
    }
  }
  async function run (count) {
    const end = started + count
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (started < end) await cycle()
    }))
  }

  await run(200) // warm-up: JIT, lazily built structures, logger children
  await until(async () => (await heap()).size === 0, 5000, 'the warm-up connections to go')
  const before = await heap()
  await run(CYCLES - 200)
  await until(async () => (await heap()).size === 0, 10_000, 'every connection to go')
  const after = await heap()
  assert.equal(started, CYCLES)
  assert.equal(after.size, 0)
  assert.equal(after.rooms, 0)
  const growth = after.heapUsed - before.heapUsed
  t.diagnostic(`heap growth over ${CYCLES - 200} cycles: ${(growth / 1024 / 1024).toFixed(2)} MB`)
  assert.ok(growth < 10 * 1024 * 1024, `heap grew by ${(growth / 1024 / 1024).toFixed(2)} MB`)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})
