// History and presence across three node processes (test/fixtures/recovery-node.js) on one real
// redis-server, while node 0 sends to a room without pause: clients that reconnect again and again to
// any node miss nothing and get nothing twice, and a client whose node is killed with kill -9 recovers
// on another node, where the dead node's presence entries leave within nodeTtl + 2 s.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { after, before, test } from 'node:test'
import { Client, sleep, until } from './helpers.js'
import { startRedis } from './redis-server.js'

const NODE_TTL = 1500
const FIXTURE = new URL('./fixtures/recovery-node.js', import.meta.url).pathname
const children = []
const clients = []
let n0, n1, n2

async function startNode (redisUrl, env = {}) {
  const child = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, REDIS_URL: redisUrl, KEY_PREFIX: 'recovery:', NODE_TTL: String(NODE_TTL), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.push(child)
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  child.stderr.on('data', chunk => { output += chunk })
  await until(() => /listening \d+ \S+\n/.test(output) || child.exitCode !== null, 15_000, 'a node to listen')
  const match = /listening (\d+) (\S+)\n/.exec(output)
  if (match === null) throw new Error(`the node did not start: ${output}`)
  return { child, port: Number(match[1]), nodeId: match[2] }
}

async function get (node, path) {
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`, { signal: AbortSignal.timeout(5000) })
  return res.json()
}

/** Opens a client on `node`'s feed of `room`; resolves with it once its join result arrived (`client.joined`). */
async function feed (node, room, since, key) {
  const query = new URLSearchParams()
  if (since !== undefined) query.set('since', since)
  if (key !== undefined) query.set('key', key)
  const client = new Client(`ws://127.0.0.1:${node.port}/feed/${room}?${query}`)
  clients.push(client)
  await client.open()
  return client
}

/**
 * Reads `want` stream messages (and the join result) from `client` into `seen`; returns the last offset
 * and the join result.
 */
async function read (client, want, seen) {
  let joined = null
  let last
  let got = 0
  while (got < want || joined === null) {
    const message = JSON.parse(await client.next(10_000))
    if (message.joined !== undefined) {
      joined = message.joined
      continue
    }
    seen.push(message.seq)
    last = message.offset
    got++
  }
  return { last, joined }
}

function assertContiguous (seen) {
  for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1] + 1, `seq ${seen[i - 1]} then ${seen[i]}`)
}

const cleanups = []

before(async () => {
  const redis = await startRedis({ after: fn => cleanups.push(fn) })
  ;[n0, n1, n2] = await Promise.all([startNode(redis.url, { SEND_TO: 'stream' }), startNode(redis.url), startNode(redis.url)])
})

after(async () => {
  for (const client of clients) client.ws.terminate()
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  }
  for (const fn of cleanups) await fn()
})

test('clients that reconnect again and again, each time to another node, miss nothing and get nothing twice', async () => {
  const run = async offsetNode => {
    const seen = []
    let last
    for (let round = 0; round < 9; round++) {
      const node = [n0, n1, n2][(round + offsetNode) % 3]
      const client = await feed(node, 'stream', last)
      const result = await read(client, 20 + Math.floor(Math.random() * 40), seen)
      if (last !== undefined) assert.deepEqual(result.joined.recovered, true)
      last = result.last
      client.ws.terminate()
      await sleep(Math.floor(Math.random() * 20))
    }
    return seen
  }
  for (const seen of await Promise.all([run(0), run(1), run(2)])) assertContiguous(seen)
})

test('a client whose node is killed with kill -9 recovers on another node; the dead node\'s presence leaves', async () => {
  const watcher = await feed(n1, 'stream', undefined, 'watcher')
  await read(watcher, 1, [])
  const victim = await feed(n2, 'stream', undefined, 'carol')
  const seen = []
  const { last } = await read(victim, 30, seen)
  const [carol] = (await get(n1, '/presence/stream')).carol
  assert.ok(carol.id.startsWith(n2.nodeId + '.'))

  n2.child.kill('SIGKILL')
  const killed = Date.now()
  await once(n2.child, 'exit')
  // The stream goes on while the client is away.
  await sleep(200)
  const again = await feed(n1, 'stream', last, 'carol')
  const { joined } = await read(again, 50, seen)
  assert.equal(joined.recovered, true)
  assert.ok(joined.replayed > 0)
  assertContiguous(seen)

  // The entry of the dead node leaves presence() and is emitted as a leave by a surviving node.
  await until(async () => (await get(n1, '/presence/stream')).carol.every(entry => entry.id !== carol.id), NODE_TTL + 4000, 'the dead entry to leave')
  const diffs = await get(n1, '/diffs')
  const leave = diffs.find(diff => diff.leaves.carol?.some(entry => entry.id === carol.id))
  assert.ok(leave, 'n1 emitted the leave')
  assert.ok(Date.now() - killed <= NODE_TTL + 2000 + 500, `left after ${Date.now() - killed} ms`)
  assert.equal((await get(n1, '/presence/stream')).carol.length, 1)
})
