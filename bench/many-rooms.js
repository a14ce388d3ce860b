// Many-rooms benchmark: what one node costs per local delivery as nodes are added, and what Redis
// carries, for fastify-ws-hub and for Socket.IO 4 with @socket.io/redis-adapter (classic, and its
// sharded adapter in dynamic mode), in the same run, on the same redis-server.
//
// Scenario: --rooms rooms of --size members each; each room's members are all on one node, the rooms
// spread evenly over 1, 2, 3 and 4 server processes (bench/many-rooms-server.js). Each node sends
// --rate / N messages a second of --payload bytes to its own rooms, from the server. So every message
// has --size local deliveries and no remote one: with routing by room, the other nodes and Redis should
// not have to care; with one shared channel, every node reads every message.
//
// Measured over --seconds after a warm-up, per configuration: each node's CPU time (process.cpuUsage)
// per local delivery, and the user part of it alone (the process's own code, without the kernel's
// work for its socket writes, which every kind pays alike per delivery); Redis's CPU (INFO cpu) per message and the bytes it sent (INFO stats
// total_net_output_bytes) per message; and the deliveries that arrived. Configurations take turns
// (hub, sio, sio-sharded at N = 1, then at N = 2, ...), so that other load on the machine weighs on
// all alike. --rounds repeats the whole and takes medians.
//
// A node's CPU per message also depends on its own message rate, which falls as nodes are added
// (--rate / N each): a timer tick and a write to Redis carry fewer messages, and a process that sleeps
// more wakes up colder. So for each N > 1, each kind also runs alone at the node rate of the N-node run
// (one node, --rate / N messages a second): the ratio of the two is what the other N - 1 nodes cost a
// node, the figure that routing by room is about.
//
// Usage: node bench/many-rooms.js [--rooms 600] [--size 5] [--rate 2000] [--payload 256] [--seconds 5]
//        [--rounds 1] [--nodes 1,2,3,4] [--kinds hub,sio,sio-sharded] [--control true]
// Needs redis-server on PATH and a build (npm run build). Writes bench/results/many-rooms.json.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { io as sioConnect } from 'socket.io-client'
import WebSocket from 'ws'
import { freePort, RedisServer } from '../test/redis-server.js'

const { values: args } = parseArgs({
  options: {
    rooms: { type: 'string', default: '600' },
    size: { type: 'string', default: '5' },
    rate: { type: 'string', default: '2000' },
    payload: { type: 'string', default: '256' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    nodes: { type: 'string', default: '1,2,3,4' },
    kinds: { type: 'string', default: 'hub,sio,sio-sharded' },
    control: { type: 'string', default: 'true' }
  }
})
const ROOMS = Number(args.rooms)
const SIZE = Number(args.size)
const RATE = Number(args.rate)
const PAYLOAD = Number(args.payload)
const SECONDS = Number(args.seconds)
const WARMUP = Number(args.warmup)
const ROUNDS = Number(args.rounds)
const NODE_COUNTS = args.nodes.split(',').map(Number)
const KINDS = args.kinds.split(',')
const CONTROL = args.control !== 'false'
const here = path => new URL(path, import.meta.url).pathname
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const median = list => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]

async function startServer (kind, redisUrl) {
  const child = fork(here('./many-rooms-server.js'), [kind, redisUrl], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  while (!/listening (\d+)/.test(output)) {
    if (child.exitCode !== null) throw new Error(`${kind} server exited: ${output}`)
    await sleep(20)
  }
  return { child, port: Number(/listening (\d+)/.exec(output)[1]) }
}

/** Opens a member of `room` on the server; resolves once it is in the room. Counts what it gets. */
function member (kind, port, room, counter) {
  return new Promise((resolve, reject) => {
    if (kind === 'hub') {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?room=${room}`)
      ws.once('message', () => {
        ws.on('message', () => { counter.count++ })
        resolve(() => ws.terminate())
      })
      ws.once('error', reject)
    } else {
      const socket = sioConnect(`http://127.0.0.1:${port}`, { transports: ['websocket'], query: { room }, reconnection: false, timeout: 60_000 })
      socket.once('ready', () => {
        socket.on('msg', () => { counter.count++ })
        resolve(() => socket.disconnect())
      })
      socket.once('connect_error', reject)
    }
  })
}

async function redisFigures (client) {
  const cpu = await client.info('cpu')
  const stats = await client.info('stats')
  const field = (text, name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(text)[1])
  return {
    cpu: (field(cpu, 'used_cpu_sys') + field(cpu, 'used_cpu_user')) * 1e6,
    bytesOut: field(stats, 'total_net_output_bytes')
  }
}

async function run (kind, nodes, redis, client, rate = RATE) {
  const servers = await Promise.all(Array.from({ length: nodes }, () => startServer(kind, redis.url)))
  const counter = { count: 0 }
  const close = []
  const roomsOf = servers.map(() => [])
  for (let r = 0; r < ROOMS; r++) roomsOf[r % nodes].push(`room${r}`)
  for (const [i, server] of servers.entries()) {
    // In batches, so that a busy machine does not time the connections out.
    for (let start = 0; start < roomsOf[i].length; start += 40) {
      const batch = []
      for (const room of roomsOf[i].slice(start, start + 40)) {
        for (let m = 0; m < SIZE; m++) batch.push(member(kind, server.port, room, counter))
      }
      close.push(...await Promise.all(batch))
    }
  }
  for (const [i, server] of servers.entries()) {
    server.child.send({ start: { rooms: roomsOf[i], perSecond: rate / nodes, payload: PAYLOAD } })
  }
  await sleep(WARMUP * 1000)
  // The measured window: restart the servers' counters, then read everything after SECONDS.
  for (const server of servers) {
    server.child.send({ stop: true })
    await once(server.child, 'message')
  }
  for (const [i, server] of servers.entries()) {
    server.child.send({ start: { rooms: roomsOf[i], perSecond: rate / nodes, payload: PAYLOAD } })
  }
  const before = await redisFigures(client)
  const received = counter.count
  await sleep(SECONDS * 1000)
  const stopped = []
  for (const server of servers) {
    server.child.send({ stop: true })
    const [message] = await once(server.child, 'message')
    stopped.push(message.stopped)
  }
  const after = await redisFigures(client)
  await sleep(200) // what was in flight arrives
  const deliveries = counter.count - received
  for (const fn of close) fn()
  for (const server of servers) server.child.kill('SIGTERM')
  await Promise.all(servers.map(server => once(server.child, 'exit')))
  const sent = stopped.reduce((sum, s) => sum + s.sent, 0)
  const cpu = stopped.map(s => s.cpu)
  return {
    kind,
    nodes,
    rate,
    sent,
    deliveries,
    delivered: deliveries / (sent * SIZE),
    // per node: its CPU over its own local deliveries (each of its messages has SIZE of them)
    nodeCpuPerDelivery: median(stopped.map(s => s.cpu / (s.sent * SIZE))),
    nodeUserCpuPerDelivery: median(stopped.map(s => s.user / (s.sent * SIZE))),
    nodeCpuPerMessage: median(stopped.map(s => s.cpu / s.sent)),
    nodeCpuShare: median(cpu) / (SECONDS * 1e6),
    redisCpuPerMessage: (after.cpu - before.cpu) / sent,
    redisBytesPerMessage: (after.bytesOut - before.bytesOut) / sent
  }
}

const redis = new RedisServer(await freePort())
await redis.start()
const client = new Redis(redis.url)
const results = []
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const nodes of NODE_COUNTS) {
      for (const kind of KINDS) {
        await client.flushall()
        const result = await run(kind, nodes, redis, client)
        results.push(result)
        process.stderr.write(`${kind} x${nodes}: ${result.nodeCpuPerDelivery.toFixed(1)} us/delivery, ` +
          `redis ${result.redisBytesPerMessage.toFixed(0)} B/msg, ${(result.delivered * 100).toFixed(1)}% delivered\n`)
        if (CONTROL && nodes > 1) {
          await client.flushall()
          const alone = await run(kind, 1, redis, client, RATE / nodes)
          results.push(alone)
          process.stderr.write(`${kind} x1 at ${RATE / nodes} msg/s: ${alone.nodeCpuPerDelivery.toFixed(1)} us/delivery\n`)
        }
      }
    }
  }
} finally {
  client.disconnect()
  await redis.kill()
}

const summary = []
for (const nodes of NODE_COUNTS) {
  for (const kind of KINDS) {
    const mine = results.filter(r => r.kind === kind && r.nodes === nodes && r.rate === RATE)
    const pick = key => median(mine.map(r => r[key]))
    const alone = results.filter(r => r.kind === kind && r.nodes === 1 && r.rate === RATE / nodes)
    summary.push({
      kind,
      nodes,
      aloneCpuPerDelivery: nodes > 1 ? median(alone.map(r => r.nodeCpuPerDelivery)) : undefined,
      nodeCpuPerDelivery: pick('nodeCpuPerDelivery'),
      nodeUserCpuPerDelivery: pick('nodeUserCpuPerDelivery'),
      nodeCpuPerMessage: pick('nodeCpuPerMessage'),
      redisCpuPerMessage: pick('redisCpuPerMessage'),
      redisBytesPerMessage: pick('redisBytesPerMessage'),
      delivered: pick('delivered')
    })
  }
}

const lines = []
lines.push(`many rooms: ${ROOMS} rooms x ${SIZE} members, each room on one node, ${RATE} msg/s of ${PAYLOAD} B across the cluster, ${SECONDS} s, ${ROUNDS} round(s); ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(1)}`)
lines.push('')
lines.push('| | nodes | node CPU per local delivery, us | of which user, us | one node alone at the same node rate, us | node CPU per message, us | Redis CPU per message, us | Redis bytes out per message | delivered |')
lines.push('|---|---|---|---|---|---|---|---|---|')
const fixed = (value, digits) => value === undefined ? '' : value.toFixed(digits)
for (const row of summary) {
  lines.push(`| ${row.kind} | ${row.nodes} | ${row.nodeCpuPerDelivery.toFixed(1)} | ${row.nodeUserCpuPerDelivery.toFixed(1)} | ${fixed(row.aloneCpuPerDelivery, 1)} | ${row.nodeCpuPerMessage.toFixed(0)} | ${row.redisCpuPerMessage.toFixed(1)} | ${row.redisBytesPerMessage.toFixed(0)} | ${(row.delivered * 100).toFixed(1)}% |`)
}
lines.push('')
const at = (kind, nodes) => summary.find(row => row.kind === kind && row.nodes === nodes)
const first = NODE_COUNTS[0]
const last = NODE_COUNTS[NODE_COUNTS.length - 1]
for (const kind of KINDS) {
  const growth = at(kind, last).nodeCpuPerDelivery / at(kind, first).nodeCpuPerDelivery
  lines.push(`${kind}: node CPU per delivery at ${last} nodes / at ${first}: ${growth.toFixed(2)}x`)
  const control = NODE_COUNTS.filter(nodes => at(kind, nodes).aloneCpuPerDelivery !== undefined)
  if (control.length > 0) {
    const ratios = control.map(nodes => (at(kind, nodes).nodeCpuPerDelivery / at(kind, nodes).aloneCpuPerDelivery).toFixed(2))
    lines.push(`${kind}: node CPU per delivery at ${control.join(', ')} nodes / one node alone at the same node rate: ${ratios.join(', ')}`)
  }
}
if (KINDS.includes('hub')) {
  for (const other of KINDS.filter(kind => kind !== 'hub')) {
    const ratios = NODE_COUNTS.map(nodes => (at(other, nodes).nodeCpuPerDelivery / at('hub', nodes).nodeCpuPerDelivery).toFixed(2))
    lines.push(`${other} / hub node CPU per delivery at ${NODE_COUNTS.join(', ')} nodes: ${ratios.join(', ')}`)
    const user = NODE_COUNTS.map(nodes => (at(other, nodes).nodeUserCpuPerDelivery / at('hub', nodes).nodeUserCpuPerDelivery).toFixed(2))
    lines.push(`${other} / hub node user CPU per delivery at ${NODE_COUNTS.join(', ')} nodes: ${user.join(', ')}`)
  }
}
process.stdout.write(lines.join('\n') + '\n')
mkdirSync(here('./results'), { recursive: true })
writeFileSync(here('./results/many-rooms.json'), JSON.stringify({ args, summary, results, load: os.loadavg() }, null, 2) + '\n')
