// The example app, run as a user runs it (`node example/server.js`, its own process, the in-memory
// default), driven by ws clients. The browser test drives the same app through Chromium.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { Client, startExample } from './helpers.js'

const json = async client => JSON.parse(await client.next())

test('the example: page, chat room with nicknames and counts, lobby feed, announce from POST, clean shutdown', async t => {
  const { child, base } = await startExample(t)
  const ws = base.replace('http', 'ws')

  const page = await fetch(base)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type'), /text\/html/)
  assert.match(await page.text(), /<script src="\/chat.js">/)
  const script = await fetch(`${base}/chat.js`)
  assert.match(await script.text(), /new WebSocket\(/)

  const lobby = new Client(`${ws}/ws/lobby`)
  await lobby.open()
  assert.deepEqual(await json(lobby), { type: 'rooms', rooms: [] })

  const ann = new Client(`${ws}/ws/chat/general?nick=ann`)
  await ann.open()
  const welcome = await json(ann)
  assert.equal(welcome.type, 'welcome')
  assert.deepEqual({ ...welcome, id: undefined }, { type: 'welcome', nick: 'ann', room: 'general', members: 1, id: undefined })
  assert.deepEqual(await json(lobby), { type: 'rooms', rooms: [{ room: 'general', members: 1 }] })

  const bob = new Client(`${ws}/ws/chat/general?nick=bob`)
  await bob.open()
  assert.equal((await json(bob)).members, 2)
  assert.deepEqual(await json(ann), { type: 'joined', nick: 'bob', members: 2 })
  assert.deepEqual(await json(lobby), { type: 'rooms', rooms: [{ room: 'general', members: 2 }] })

  // A chat line is a JSON-RPC call of "say": the room gets the line, the caller a reply saying it was delivered.
  ann.send(JSON.stringify({ jsonrpc: '2.0', method: 'say', params: { text: 'hello bob' }, id: 1 }))
  for (const client of [ann, bob]) {
    const m = await json(client)
    assert.deepEqual({ type: m.type, nick: m.nick, text: m.text, from: m.from }, { type: 'message', nick: 'ann', text: 'hello bob', from: welcome.id })
  }
  const reply = await json(ann)
  assert.deepEqual({ ...reply, result: { ...reply.result, at: undefined } }, { jsonrpc: '2.0', result: { delivered: true, at: undefined, members: 2 }, id: 1 })
  assert.equal(typeof reply.result.at, 'number')
  ann.send(JSON.stringify({ jsonrpc: '2.0', method: 'say', params: { text: '' }, id: 2 }))
  assert.equal((await json(ann)).error.code, -32602, 'an empty line is refused by the schema')

  const res = await fetch(`${base}/rooms/general/announce`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'maintenance at noon' })
  })
  assert.equal(res.status, 202)
  assert.deepEqual(await res.json(), { room: 'general', members: 2 })
  for (const client of [ann, bob]) {
    const m = await json(client)
    assert.deepEqual({ type: m.type, text: m.text }, { type: 'announce', text: 'maintenance at noon' })
  }
  const bad = await fetch(`${base}/rooms/general/announce`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({})
  })
  assert.equal(bad.status, 400)
  assert.deepEqual(await (await fetch(`${base}/rooms`)).json(), { rooms: [{ room: 'general', members: 2 }] })

  const refused = new Client(`${ws}/ws/chat/general?nick=${'x'.repeat(40)}`)
  await refused.open()
  assert.equal((await refused.closed).code, 1008, 'an invalid nickname is refused')

  await bob.close()
  assert.deepEqual(await json(ann), { type: 'left', nick: 'bob', members: 1 })
  assert.deepEqual(await json(lobby), { type: 'rooms', rooms: [{ room: 'general', members: 1 }] })

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0, 'the example shuts down cleanly on SIGTERM')
  assert.equal((await ann.closed).code, 1001)
  assert.equal((await lobby.closed).code, 1001)
})
