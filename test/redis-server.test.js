// The Redis tests start their own redis-server from PATH. Without one, this test fails with the line
// that says how to install it (and the other Redis test files fail in their setup), rather than skip.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { startRedis } from './redis-server.js'

test('redis-server is on PATH, starts on a free port of 127.0.0.1 without persistence, and stops', async t => {
  const server = await startRedis(t)
  assert.match(server.url, /^redis:\/\/127\.0\.0\.1:\d+$/)
  const client = new Redis(server.url)
  t.after(() => client.disconnect())
  assert.deepEqual(await client.config('GET', 'save'), ['save', ''])
  assert.deepEqual(await client.config('GET', 'appendonly'), ['appendonly', 'no'])
  await server.kill()
  assert.equal(server.process, null)
})
