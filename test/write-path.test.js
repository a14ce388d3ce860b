// The write path under bursts and floods, against readers in another process (test/fixtures/reader.js):
// awaited sends are paced by the peer, so bursts reach fast readers whole with the default limit; a
// reader that stopped (SIGSTOP) is still closed, or skipped with 'drop', and does not hold up the room.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { WebSocketHandler } from '../dist/lib/index.js'
import { build, until, urlOf } from './helpers.js'
import { frame, rawConnect } from './raw-client.js'

const READER = new URL('./fixtures/reader.js', import.meta.url).pathname

/** `clients` ws readers in a child process; `report()` says what each got. */
async function readers (t, url, clients) {
  const child = spawn(process.execPath, [READER, url, String(clients)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const answers = []
  lines.on('line', line => answers.shift()?.(JSON.parse(line)))
  const ask = (command) => new Promise(resolve => {
    answers.push(resolve)
    child.stdin.write(command + '\n')
  })
  t.after(() => {
    child.kill('SIGCONT')
    child.kill('SIGKILL')
  })
  const group = {
    child,
    report: async () => (await ask('report')).clients,
    stop: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT')
  }
  await until(async () => (await group.report()).every(client => client.id !== null), 10_000, 'the readers to connect')
  group.ids = (await group.report()).map(client => client.id)
  return group
}

async function app (t, options) {
  return build(t, app => {
    app.wsRoute('/ws', async conn => {
      await conn.sendJson({ id: conn.id })
      await conn.join('room')
      for await (const _ of conn); // eslint-disable-line no-unused-vars
    })
  }, options)
}

async function allGot (group, count, size, ms = 20_000) {
  await until(async () => (await group.report()).every(c => c.messages === count), ms, `every reader to get ${count} messages`)
  for (const client of await group.report()) assert.equal(client.bytes, count * size)
}

for (const action of ['close', 'drop']) {
  test(`backpressure '${action}': a burst of 5,120 x 1 KB from an awaiting loop of conn.send() reaches a fast reader whole`, async (t) => {
    const hub = await app(t, action === 'drop' ? { backpressure: { action } } : {})
    const group = await readers(t, urlOf(hub, '/ws'), 1)
    const conn = hub.ws.get(group.ids[0])
    const message = Buffer.alloc(1024, 1)
    for (let i = 0; i < 5120; i++) await conn.send(message)
    await allGot(group, 5120, 1024)
    assert.equal(hub.ws.stats().closedForBackpressure, 0)
    assert.equal(hub.ws.stats().dropped, 0)
  })
}

test('80 x 64 KB through await app.ws.send(id) all resolve true and all arrive', async (t) => {
  const hub = await app(t)
  const group = await readers(t, urlOf(hub, '/ws'), 1)
  const message = Buffer.alloc(65536, 2)
  for (let i = 0; i < 80; i++) assert.equal(await hub.ws.send(group.ids[0], message), true, `send ${i}`)
  await allGot(group, 80, 65536)
})

test('20 x 256 KB through await app.ws.to(room).send() reach three fast members whole', async (t) => {
  const hub = await app(t)
  const group = await readers(t, urlOf(hub, '/ws'), 3)
  await until(async () => await hub.ws.roomSize('room') === 3, 5000, 'the members to join')
  const message = Buffer.alloc(262144, 3)
  for (let i = 0; i < 20; i++) await hub.ws.to('room').send(message)
  await allGot(group, 20, 262144)
  assert.equal(hub.ws.stats().closedForBackpressure, 0)
})

for (const action of ['close', 'drop']) {
  test(`a member that stopped reading is ${action === 'close' ? 'closed' : 'skipped'} and does not hold up the room's awaiting sender`, async (t) => {
    const limit = 1024 * 1024
    const hub = await app(t, { backpressure: { limit, action } })
    const fast = await readers(t, urlOf(hub, '/ws'), 2)
    const stopped = await readers(t, urlOf(hub, '/ws'), 1)
    await until(async () => await hub.ws.roomSize('room') === 3, 5000, 'the members to join')
    stopped.stop()
    const message = Buffer.alloc(65536, 4)
    const count = 400 // 25 MiB: more than the kernel buffers and the limit of the stopped one
    for (let i = 0; i < count; i++) await hub.ws.to('room').send(message)
    await allGot(fast, count, 65536)
    const stats = hub.ws.stats()
    if (action === 'close') {
      assert.equal(stats.closedForBackpressure, 1)
      assert.equal(hub.ws.get(stopped.ids[0]), undefined)
    } else {
      assert.ok(stats.dropped > 0, 'messages to the stopped reader were dropped')
      assert.ok(hub.ws.get(stopped.ids[0]) !== undefined)
    }
    stopped.resume()
  })
}

test('app.ws.send(id) to a member that stopped reading resolves (paced until it stalls), then the limit closes it', async (t) => {
  const hub = await app(t, { backpressure: { limit: 512 * 1024 } })
  const stopped = await readers(t, urlOf(hub, '/ws'), 1)
  stopped.stop()
  const id = stopped.ids[0]
  const message = Buffer.alloc(65536, 5)
  let sent = 0
  while (await hub.ws.send(id, message)) sent++
  assert.ok(sent > 8, `${sent} sent before the limit`)
  assert.equal(hub.ws.stats().closedForBackpressure, 1)
  const conn = hub.ws.get(id)
  assert.equal(conn, undefined)
  stopped.resume()
})

const ECHOES = [
  ['a function handler', async conn => { for await (const message of conn) await conn.send(message) }],
  ['a class handler whose receive() returns send()', class extends WebSocketHandler { receive (data) { return this.send(data) } }],
  ['a class handler whose receive() awaits send()', class extends WebSocketHandler { async receive (data) { await this.send(data) } }]
]

for (const [kind, handler] of ECHOES) {
  test(`${kind}: the replies to the frames of one read leave in one write`, async (t) => {
    const hub = await build(t, app => { app.wsRoute('/echo', handler) })
    const client = await rawConnect(hub.server.address().port, '/echo')
    t.after(() => client.socket.destroy())
    assert.equal(await client.handshake, 101)
    await until(() => hub.ws.size === 1, 2000, 'the connection')
    const raw = [...hub.websocketServer.clients][0]._socket
    let writes = 0
    for (const method of ['_write', '_writev']) {
      const original = raw[method]
      raw[method] = function (...args) {
        writes++
        return original.apply(this, args)
      }
    }
    const texts = Array.from({ length: 8 }, (_, i) => `message ${i}`)
    client.send(Buffer.concat(texts.map(text => frame({ opcode: 0x1, payload: text }))))
    await until(() => client.frames.length === texts.length, 2000, 'the replies')
    assert.deepEqual(client.frames.map(f => f.payload.toString()), texts)
    assert.equal(writes, 1)
  })
}
