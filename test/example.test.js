// The example app, run as a user runs it (its own process, on the in-memory default), driven by ws clients.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { test } from 'node:test'
import { Client, until } from './helpers.js'

test('the example serves its page, chats in a room, and announces from POST', async t => {
  const child = spawn(process.execPath, [new URL('../example/server.js', import.meta.url).pathname], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  await until(() => /open (http:\/\/\S+)/.test(output), 10_000, 'the example to listen')
  const base = /open (http:\/\/\S+)/.exec(output)[1]
  const page = await fetch(base)
  assert.equal(page.status, 200)
  assert.match(await page.text(), /new WebSocket\(/)

  const ws = base.replace('http', 'ws')
  const ann = new Client(`${ws}/chat/lobby?nick=ann`)
  await ann.open()
  assert.deepEqual(JSON.parse(await ann.next()), { type: 'joined', nick: 'ann', members: 1 })
  const bob = new Client(`${ws}/chat/lobby?nick=bob`)
  await bob.open()
  assert.deepEqual(JSON.parse(await ann.next()), { type: 'joined', nick: 'bob', members: 2 })
  assert.deepEqual(JSON.parse(await bob.next()), { type: 'joined', nick: 'bob', members: 2 })

  ann.send('hello bob')
  for (const client of [ann, bob]) assert.deepEqual(JSON.parse(await client.next()), { type: 'message', nick: 'ann', text: 'hello bob' })

  const res = await fetch(`${base}/rooms/lobby/announce`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'maintenance at noon' })
  })
  assert.equal(res.status, 202)
  assert.deepEqual(await res.json(), { room: 'lobby', members: 2 })
  for (const client of [ann, bob]) assert.deepEqual(JSON.parse(await client.next()), { type: 'announce', text: 'maintenance at noon' })

  const echo = new Client(`${ws}/echo?token=demo`)
  await echo.open()
  echo.send('echo me')
  assert.equal(await echo.next(), 'echo me')
  const refused = new Client(`${ws}/echo`)
  await refused.open()
  assert.equal((await refused.closed).code, 1008)

  await bob.close()
  assert.deepEqual(JSON.parse(await ann.next()), { type: 'left', nick: 'bob', members: 1 })

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0, 'the example shuts down cleanly on SIGTERM')
  assert.equal((await ann.closed).code, 1001)
  assert.equal((await echo.closed).code, 1001)
})
