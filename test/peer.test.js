// What peers do besides sending messages, over raw TCP: a close frame from a peer that then stops
// reading, a flood past the rate limit, and frames that break the protocol right after a valid one in
// the same TCP read. And the rules that hold the same for every id and every broker: close codes and
// room names that are not well-formed Unicode.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { WebSocketHandler } from '../dist/lib/index.js'
import { build, connect, until } from './helpers.js'
import { closePayload, frame, rawConnect } from './raw-client.js'
import { startRedis } from './redis-server.js'

const portOf = app => app.server.address().port

async function upgraded (app, path) {
  const peer = await rawConnect(portOf(app), path)
  assert.equal(await peer.handshake, 101)
  return peer
}

test('a peer that sent its close frame and stops reading leaves the hub and its rooms at once', async (t) => {
  const app = await build(t, app => {
    app.wsRoute('/room', async conn => {
      await conn.join('r')
      for await (const _ of conn); // eslint-disable-line no-unused-vars
    })
  })
  const peer = await upgraded(app, '/room')
  await until(async () => await app.ws.roomSize('r') === 1, 2000, 'the peer to join')
  peer.socket.pause() // never reads again: the server's close reply stays unread
  peer.send(frame({ opcode: 0x8, payload: closePayload(1000) }))
  await until(() => app.ws.size === 0, 3000, 'the peer to leave the hub')
  assert.equal(await app.ws.roomSize('r'), 0)
  peer.socket.destroy()
})

test('after a rate-limit close the rest of the flood is neither parsed nor counted', async (t) => {
  const app = await build(t, app => {
    app.wsRoute('/sink', async conn => { for await (const _ of conn); }) // eslint-disable-line no-unused-vars
  }, { rateLimit: { max: 10, action: 'close' } })
  const peer = await upgraded(app, '/sink')
  const one = frame({ opcode: 0x1, payload: 'a' })
  peer.send(Buffer.concat(Array.from({ length: 5000 }, () => one)))
  assert.equal(await peer.closed, 1008)
  assert.equal(app.ws.stats().messagesIn, 11)
  assert.equal(app.ws.stats().rateLimited, 1)
})

test('app.ws.close(id, code) checks the code first, for local, remote and unknown ids alike', async (t) => {
  const app = await build(t, app => {
    app.wsRoute('/sink', async conn => { for await (const _ of conn); }) // eslint-disable-line no-unused-vars
  })
  const client = await connect(t, app, '/sink')
  await until(() => app.ws.size === 1)
  const [local] = app.ws.registry.connections.keys()
  for (const id of [local, 'othernode.abcdef', 'unknown', 42]) {
    await assert.rejects(app.ws.close(id, 1005), { code: 'WSHUB_ERR_INVALID_PAYLOAD' }, String(id))
  }
  assert.equal(client.ws.readyState, 1)
})

for (const redis of [false, true]) {
  test(`room names that are not well-formed Unicode are rejected with WSHUB_ERR_INVALID_ROOM (${redis ? 'Redis' : 'one process'})`, async (t) => {
    const options = {}
    if (redis) options.redis = (await startRedis({ after: fn => t.after(fn) })).url
    const app = await build(t, app => {
      app.wsRoute('/join', async conn => {
        const results = []
        for (const room of ['\uD800', '\uDBFF', 'a\uDC00b', '\uFFFD', '\uD83D\uDE00']) {
          results.push(await conn.join(room).then(() => 'ok', err => err.code))
        }
        await conn.sendJson(results)
      })
    }, options)
    const client = await connect(t, app, '/join')
    assert.deepEqual(JSON.parse(await client.next(5000)),
      ['WSHUB_ERR_INVALID_ROOM', 'WSHUB_ERR_INVALID_ROOM', 'WSHUB_ERR_INVALID_ROOM', 'ok', 'ok'])
    await assert.rejects(app.ws.roomSize('\uD800'), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(app.ws.to('\uDBFF').send('x'), { code: 'WSHUB_ERR_INVALID_ROOM' })
    assert.equal(await app.ws.roomSize('\uFFFD'), 1)
    assert.equal(await app.ws.roomSize('\uD83D\uDE00'), 1)
  })
}

// A valid text frame, then a frame that breaks the protocol, in one TCP write: the echo of the first
// goes out before the close, from either kind of handler, and nothing is logged as a handler failure.
const BAD = [
  ['RSV2 set', frame({ opcode: 0x1, rsv: 0x2, payload: 'x' }), 1002],
  ['RSV3 set on a binary frame', frame({ opcode: 0x2, rsv: 0x1, payload: 'x' }), 1002],
  ['a reserved opcode', frame({ opcode: 0x3, payload: 'x' }), 1002],
  ['an unmasked frame', frame({ opcode: 0x1, payload: 'x', masked: false }), 1002],
  ['invalid UTF-8', frame({ opcode: 0x1, payload: Buffer.from([0xce, 0xba, 0xe1, 0xbd]) }), 1007],
  ['a continuation with nothing to continue', frame({ opcode: 0x0, payload: 'x' }), 1002],
  ['a fragmented ping', frame({ fin: false, opcode: 0x9, payload: 'x' }), 1002],
  ['a frame over maxPayload', frame({ opcode: 0x2, payload: Buffer.alloc(2048) }), 1009]
]

class ClassEcho extends WebSocketHandler {
  receive (data) { return this.send(data) }
}

for (const [kind, handler] of [['function', async conn => { for await (const m of conn) await conn.send(m) }], ['class', ClassEcho]]) {
  for (const [name, bad, code] of BAD) {
    test(`${kind} echo: a text frame then ${name} in one TCP write gets the echo, then ${code}`, async (t) => {
      const app = await build(t, app => { app.wsRoute('/echo', handler) }, { maxPayload: 1024 })
      const peer = await upgraded(app, '/echo')
      peer.send(Buffer.concat([frame({ opcode: 0x1, payload: 'before' }), bad]))
      assert.equal(await peer.closed, code)
      assert.deepEqual(peer.frames.map(f => [f.opcode, f.payload.toString()]), [[0x1, 'before']])
      assert.ok(!app.logLines.some(line => line.msg === 'ws handler failed'), 'no handler failure logged')
    })
  }
}

test('a handler whose send fails because the peer broke the protocol meanwhile is not logged as failing', async (t) => {
  const app = await build(t, app => {
    app.wsRoute('/slow-echo', async conn => {
      for await (const m of conn) {
        await new Promise(resolve => setTimeout(resolve, 50)) // the close for the bad frame happens meanwhile
        await conn.send(m)
      }
    })
  })
  const peer = await upgraded(app, '/slow-echo')
  peer.send(Buffer.concat([frame({ opcode: 0x1, payload: 'late' }), frame({ opcode: 0x1, rsv: 0x2, payload: 'x' })]))
  assert.equal(await peer.closed, 1002)
  await until(() => app.logLines.some(line => line.msg === 'ws handler ended on a closed connection'), 2000, 'the debug line')
  assert.ok(!app.logLines.some(line => line.msg === 'ws handler failed'))
})
