// Cross-node benchmark: fastify-ws-hub with its Redis broker against Socket.IO 4 with
// @socket.io/redis-adapter, in the same run, on the same redis-server.
//
// Scenario, the same for both: 3 server processes (bench/cross-node-server.js) share one Redis; 300 room
// members (bench/cross-node-receivers.js, one process) are spread evenly over them; one publisher,
// connected to the first server, sends messages that the server passes on to the room. Each message
// reaches 100 members on its own node and 200 through Redis.
//
//   throughput  the publisher sends --messages messages at once; deliveries/s = members x messages /
//               (last arrival - first send)
//   latency     the publisher sends --rate messages/s for --seconds; p50/p99 of send -> arrival over
//               every delivery (a rate both sustain, so that this measures latency, not queueing)
//
// Usage: npm run bench:cross-node -- [--messages 3000] [--rate 100] [--seconds 5] [--members 300]
// Needs redis-server on PATH. Writes bench/results/cross-node.json and prints a table.
import { fork, spawn } from 'node:child_process'
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
    messages: { type: 'string', default: '3000' },
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '5' },
    members: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '300' },
    only: { type: 'string' } // hub | sio: run one side only (for profiling; no table, no results file)
  }
})
const MESSAGES = Number(args.messages)
const RATE = Number(args.rate)
const SECONDS = Number(args.seconds)
const MEMBERS = Number(args.members)
const WARMUP = Number(args.warmup)
const NODES = 3
const PAD = 'x'.repeat(64) // a message of about 110 bytes
const here = path => new URL(path, import.meta.url).pathname
const now = () => performance.timeOrigin + performance.now()
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Resolves with the first IPC message of `child` that has `key`; fails after `ms`. */
function nextMessage (child, key, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.off('message', on); reject(new Error(`no "${key}" within ${ms} ms`)) }, ms)
    const on = message => {
      if (message[key] === undefined) return
      clearTimeout(timer)
      child.off('message', on)
      resolve(message)
    }
    child.on('message', on)
  })
}

async function startServer (kind, redisUrl) {
  const child = spawn(process.execPath, [here('./cross-node-server.js'), kind, redisUrl], { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  const deadline = Date.now() + 15_000
  while (!/listening (\d+)/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`a ${kind} server did not start: ${output}`)
    await sleep(10)
  }
  return { child, port: Number(/listening (\d+)/.exec(output)[1]) }
}

async function stop (child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

/** The publisher: `send(message)` to the first server, which passes it on to room "bench". */
async function publisher (kind, port) {
  if (kind === 'hub') {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?pub=bench`)
    await once(ws, 'message') // ready
    return { send: message => ws.send(JSON.stringify(message)), close: () => ws.terminate() }
  }
  const socket = sioConnect(`http://127.0.0.1:${port}`, { transports: ['websocket'], query: { pub: 'bench' }, reconnection: false })
  await once(socket, 'ready')
  return { send: message => socket.emit('pub', message), close: () => socket.close() }
}

/** Sends `count` messages at once; resolves with the receivers' report. */
async function burst (receivers, pub, count, timeout) {
  receivers.send({ expect: count })
  const done = nextMessage(receivers, 'done', timeout).catch(async () => {
    receivers.send({ report: true })
    return nextMessage(receivers, 'done', 5000)
  })
  const startedAt = now()
  for (let i = 0; i < count; i++) pub.send({ i, t: now(), pad: PAD })
  return { startedAt, report: await done }
}

/** Sends `rate` messages per second for `seconds`; resolves with the receivers' report. */
async function paced (receivers, pub, rate, seconds) {
  const count = rate * seconds
  receivers.send({ expect: count })
  const done = nextMessage(receivers, 'done', seconds * 1000 + 30_000).catch(async () => {
    receivers.send({ report: true })
    return nextMessage(receivers, 'done', 5000)
  })
  const startedAt = now()
  let sent = 0
  while (sent < count) {
    const due = Math.min(count, Math.floor((now() - startedAt) * rate / 1000) + 1)
    while (sent < due) pub.send({ i: sent++, t: now(), pad: PAD })
    await sleep(1)
  }
  return await done
}

async function run (kind, redis) {
  const name = kind === 'hub' ? 'fastify-ws-hub' : 'Socket.IO 4 + redis-adapter'
  process.stdout.write(`${name}: starting ${NODES} servers and ${MEMBERS} members... `)
  const servers = await Promise.all(Array.from({ length: NODES }, () => startServer(kind, redis.url)))
  const receivers = fork(here('./cross-node-receivers.js'), [kind, String(MEMBERS), servers.map(s => s.port).join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  try {
    await nextMessage(receivers, 'ready', 60_000)
    const pub = await publisher(kind, servers[0].port)
    await sleep(200)
    process.stdout.write('warm-up... ')
    await burst(receivers, pub, WARMUP, 60_000)
    await sleep(300)
    process.stdout.write('throughput... ')
    const { startedAt, report: thr } = await burst(receivers, pub, MESSAGES, 120_000)
    const deliveries = thr.received
    const seconds = (thr.lastAt - startedAt) / 1000
    await sleep(500)
    process.stdout.write('latency...\n')
    const lat = await paced(receivers, pub, RATE, SECONDS)
    pub.close()
    return {
      name,
      throughput: {
        messages: MESSAGES,
        deliveries,
        expected: MESSAGES * MEMBERS,
        seconds: round(seconds, 3),
        deliveriesPerSecond: Math.round(deliveries / seconds),
        latency: roundAll(thr.latency)
      },
      latency: {
        rate: RATE,
        seconds: SECONDS,
        deliveries: lat.received,
        expected: RATE * SECONDS * MEMBERS,
        ...roundAll(lat.latency)
      }
    }
  } finally {
    receivers.kill('SIGKILL')
    await Promise.all(servers.map(server => stop(server.child)))
  }
}

const round = (value, digits = 2) => value === null ? null : Number(value.toFixed(digits))
const roundAll = object => Object.fromEntries(Object.entries(object).map(([key, value]) => [key, round(value)]))

const redis = new RedisServer(await freePort())
await redis.start()
const inspect = new Redis(redis.url)
const results = []
try {
  for (const kind of args.only === undefined ? ['hub', 'sio'] : [args.only]) {
    await inspect.flushall()
    results.push(await run(kind, redis))
    await sleep(500)
  }
} finally {
  inspect.disconnect()
  await redis.kill()
}

if (args.only !== undefined) {
  console.log(JSON.stringify(results, null, 2))
  process.exit(0)
}
const [hub, sio] = results
const table = [
  ['', hub.name, sio.name, 'ratio'],
  ['deliveries/s (burst of ' + MESSAGES + ')', hub.throughput.deliveriesPerSecond, sio.throughput.deliveriesPerSecond,
    (hub.throughput.deliveriesPerSecond / sio.throughput.deliveriesPerSecond).toFixed(2) + 'x'],
  ['delivered in the burst', `${hub.throughput.deliveries} / ${hub.throughput.expected}`, `${sio.throughput.deliveries} / ${sio.throughput.expected}`, ''],
  [`p50 latency, ms (${RATE} msg/s)`, hub.latency.p50, sio.latency.p50, (sio.latency.p50 / hub.latency.p50).toFixed(2) + 'x lower'],
  [`p99 latency, ms (${RATE} msg/s)`, hub.latency.p99, sio.latency.p99, (sio.latency.p99 / hub.latency.p99).toFixed(2) + 'x lower'],
  ['max latency, ms', hub.latency.max, sio.latency.max, ''],
  ['delivered at that rate', `${hub.latency.deliveries} / ${hub.latency.expected}`, `${sio.latency.deliveries} / ${sio.latency.expected}`, '']
]
const widths = table[0].map((_, column) => Math.max(...table.map(row => String(row[column]).length)))
console.log()
for (const row of table) console.log(row.map((cell, column) => String(cell).padEnd(widths[column])).join('  '))

const output = {
  scenario: `${NODES} server processes on one Redis, ${MEMBERS} room members spread evenly over them, one publisher on the first server; ` +
    'the server passes each message on to the room',
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: process.platform },
  redis: (await import('node:child_process')).execFileSync('redis-server', ['--version']).toString().trim(),
  command: `npm run bench:cross-node -- --messages ${MESSAGES} --rate ${RATE} --seconds ${SECONDS} --members ${MEMBERS}`,
  results,
  ratio: {
    deliveriesPerSecond: round(hub.throughput.deliveriesPerSecond / sio.throughput.deliveriesPerSecond),
    p99: round(sio.latency.p99 / hub.latency.p99)
  }
}
mkdirSync(here('./results'), { recursive: true })
writeFileSync(here('./results/cross-node.json'), JSON.stringify(output, null, 2) + '\n')
console.log('\nwritten to bench/results/cross-node.json')
