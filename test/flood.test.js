// Floods of tiny messages that the peer never reads: what one connection can make the server hold is
// bounded near the backpressure limit whatever the message sizes, and the server keeps answering others.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebSocketHandler } from '../dist/lib/index.js'
import { flood, heapGrowth, MB } from './flood-helpers.js'
import { build, connect, until } from './helpers.js'

// An echo that does not await its send, so that nothing paces it: only the limit bounds what it queues.
// (One that awaits is paced by the peer: test/write-path.test.js.)
class SyncEcho extends WebSocketHandler {
  receive (data) { this.send(data).catch(() => {}) }
}

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
