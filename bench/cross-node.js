// Cross-node benchmark: fastify-ws-hub with its Redis broker against Socket.IO 4 with
// @socket.io/redis-adapter, in the same run, on the same redis-server.
//
// Scenario, the same for both: 3 server processes (bench/cross-node-server.js) share one Redis; 300 room
// members (bench/cross-node-receivers.js, one process) are spread evenly over them; one publisher,
// connected to the first server, sends messages that the server passes on to the room. Each message
// reaches 100 members on its own node and 200 through Redis.
//
//   throughput  the publisher sends --messages messages at once; deliveries/s = members x messages /
//               (last arrival - first send); the median of --rounds bursts
//   latency     for each --rate (messages/s), the publisher sends at that rate for --seconds (in
//               one-second windows); p50/p99 of send -> arrival over every delivery. The default rates
//               are both well within what each side sustains: 100 msg/s (30k deliveries/s, light) and
//               300 msg/s (90k deliveries/s, about half of Socket.IO's throughput here)
//
// Both sides run at once and take turns, so that other load on the machine weighs on both alike.
//
// Usage: npm run bench:cross-node -- [--messages 3000] [--rounds 3] [--rate 100,300] [--seconds 10] [--members 300]
//        npm run bench:cross-node -- --quick   (a smoke run of about 20 s; npm run bench runs it too)
// Needs redis-server on PATH. Writes bench/results/cross-node.json and prints a table. With
// CROSS_NODE_PROF=<dir>, the server processes write CPU profiles there (--only hub|sio runs one side).
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { parseArgs } from 'node:util'
import { io as sioConnect } from 'socket.io-client'
import WebSocket from 'ws'
import { freePort, RedisServer } from '../test/redis-server.js'
import { nextMessage, startServer as startChild } from './children.js'

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '3000' },
    rate: { type: 'string', default: '100,300' }, // messages/s of the latency phases, one phase each
    seconds: { type: 'string', default: '10' },
    members: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '3' },
    // A smoke run of a few seconds (npm run bench -- --quick passes it on); its results go to a .tmp.json.
    quick: { type: 'boolean', default: false },
    only: { type: 'string' } // hub | sio: run one side only (for profiling; no table, no results file)
  }
})
const QUICK = args.quick
const MESSAGES = QUICK ? 500 : Number(args.messages)
const RATES = args.rate.split(',').map(Number)
const SECONDS = QUICK ? 2 : Number(args.seconds)
const MEMBERS = Number(args.members)
const WARMUP = QUICK ? 100 : Number(args.warmup)
const ROUNDS = QUICK ? 1 : Number(args.rounds)
const WINDOWS = Math.max(1, Math.round(SECONDS)) // one-second windows
const NODES = 3
const PAD = 'x'.repeat(64) // a message of about 110 bytes
const here = path => new URL(path, import.meta.url).pathname
const now = () => performance.timeOrigin + performance.now()
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function startServer (kind, redisUrl) {
  const prof = process.env.CROSS_NODE_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.CROSS_NODE_PROF] : []
  return startChild([...prof, here('./cross-node-server.js'), kind, redisUrl], kind)
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
  const count = Math.round(rate * seconds)
  receivers.send({ expect: count, keep: true })
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

const NAMES = { hub: 'fastify-ws-hub', sio: 'Socket.IO 4 + redis-adapter' }

/** Starts one side: its servers, its members (ready), and its publisher. */
async function startSide (kind, redis) {
  const servers = await Promise.all(Array.from({ length: NODES }, () => startServer(kind, redis.url)))
  const receivers = fork(here('./cross-node-receivers.js'), [kind, String(MEMBERS), servers.map(s => s.port).join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const side = { kind, name: NAMES[kind], servers, receivers, pub: null, rounds: [], latency: [] }
  await nextMessage(receivers, 'ready', 60_000)
  side.pub = await publisher(kind, servers[0].port)
  return side
}

async function stopSide (side) {
  side.pub?.close()
  side.receivers.kill('SIGKILL')
  await Promise.all(side.servers.map(server => stop(server.child)))
}

/** One throughput round: a burst of MESSAGES; deliveries/s from the first send to the last arrival. */
async function throughputRound (side) {
  const { startedAt, report } = await burst(side.receivers, side.pub, MESSAGES, 120_000)
  const seconds = (report.lastAt - startedAt) / 1000
  side.rounds.push({
    deliveries: report.received,
    expected: MESSAGES * MEMBERS,
    seconds: round(seconds, 3),
    deliveriesPerSecond: Math.round(report.received / seconds),
    latency: roundAll(report.latency)
  })
}

/** One window of a latency phase; the windows' latencies add up in the receivers. */
async function latencyWindow (side, rate, seconds) {
  await paced(side.receivers, side.pub, rate, seconds)
}

async function latencySummary (side, rate) {
  side.receivers.send({ summary: true })
  const { summary } = await nextMessage(side.receivers, 'summary', 10_000)
  side.receivers.send({ forget: true })
  side.latency.push({ rate, seconds: SECONDS, windows: WINDOWS, expected: rate * SECONDS * MEMBERS, ...roundAll(summary) })
}

const median = list => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]

const round = (value, digits = 2) => value === null ? null : Number(value.toFixed(digits))
const roundAll = object => Object.fromEntries(Object.entries(object).map(([key, value]) => [key, round(value)]))

const loadBefore = os.loadavg().map(value => round(value))
const redis = new RedisServer(await freePort())
await redis.start()
const kinds = args.only === undefined ? ['hub', 'sio'] : [args.only]
const sides = []
try {
  // Both sides are up at once and take turns, round after round, so that whatever else the machine is
  // doing at some moment weighs on both alike.
  for (const kind of kinds) {
    process.stdout.write(`${NAMES[kind]}: starting ${NODES} servers and ${MEMBERS} members\n`)
    sides.push(await startSide(kind, redis))
  }
  await sleep(300)
  for (const side of sides) await burst(side.receivers, side.pub, WARMUP, 60_000)
  for (let r = 0; r < ROUNDS; r++) {
    for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
      await sleep(300)
      await throughputRound(side)
      process.stdout.write(`round ${r + 1}: ${side.name} ${side.rounds.at(-1).deliveriesPerSecond} deliveries/s\n`)
    }
  }
  // Latency at each rate in WINDOWS windows per side, taking turns too: a moment of other load lands
  // on one window of one side, not on a whole phase.
  for (const rate of RATES) {
    for (let w = 0; w < WINDOWS; w++) {
      for (const side of w % 2 === 0 ? sides : [...sides].reverse()) {
        await sleep(200)
        await latencyWindow(side, rate, SECONDS / WINDOWS)
      }
    }
    for (const side of sides) {
      await latencySummary(side, rate)
      const latency = side.latency.at(-1)
      process.stdout.write(`latency at ${rate} msg/s: ${side.name} p50 ${latency.p50} ms, p99 ${latency.p99} ms\n`)
    }
  }
} finally {
  for (const side of sides) await stopSide(side)
  await redis.kill()
}

const results = sides.map(side => ({
  name: side.name,
  throughput: {
    messages: MESSAGES,
    rounds: side.rounds,
    deliveriesPerSecond: median(side.rounds.map(r => r.deliveriesPerSecond)),
    delivered: side.rounds.reduce((sum, r) => sum + r.deliveries, 0),
    expected: side.rounds.reduce((sum, r) => sum + r.expected, 0)
  },
  latency: side.latency
}))
if (args.only !== undefined) {
  console.log(JSON.stringify(results, null, 2))
  process.exit(0)
}
const [hub, sio] = results
const lower = (ours, theirs) => ours <= theirs ? `${(theirs / ours).toFixed(2)}x lower` : `${(ours / theirs).toFixed(2)}x HIGHER`
const table = [
  ['', hub.name, sio.name, 'ratio'],
  [`deliveries/s (median of ${ROUNDS} bursts of ${MESSAGES})`, hub.throughput.deliveriesPerSecond, sio.throughput.deliveriesPerSecond,
    (hub.throughput.deliveriesPerSecond / sio.throughput.deliveriesPerSecond).toFixed(2) + 'x'],
  ['  each burst', hub.throughput.rounds.map(r => r.deliveriesPerSecond).join(' '), sio.throughput.rounds.map(r => r.deliveriesPerSecond).join(' '), ''],
  ['delivered in the bursts', `${hub.throughput.delivered} / ${hub.throughput.expected}`, `${sio.throughput.delivered} / ${sio.throughput.expected}`, ''],
  ...RATES.flatMap((rate, i) => {
    const [ours, theirs] = [hub.latency[i], sio.latency[i]]
    const what = `(${rate} msg/s = ${rate * MEMBERS / 1000}k deliveries/s, ${SECONDS} s)`
    return [
      [`p50 latency, ms ${what}`, ours.p50, theirs.p50, lower(ours.p50, theirs.p50)],
      [`p99 latency, ms ${what}`, ours.p99, theirs.p99, lower(ours.p99, theirs.p99)],
      ['  max latency, ms', ours.max, theirs.max, ''],
      ['  delivered', `${ours.deliveries} / ${ours.expected}`, `${theirs.deliveries} / ${theirs.expected}`, '']
    ]
  })
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
  command: QUICK ? 'npm run bench:cross-node -- --quick' : `npm run bench:cross-node -- --messages ${MESSAGES} --rounds ${ROUNDS} --rate ${RATES.join(',')} --seconds ${SECONDS} --members ${MEMBERS}`,
  // 1, 5 and 15 min load averages before and after: figures from a machine busy with other work vary.
  loadAverageBefore: loadBefore,
  loadAverageAfter: os.loadavg().map(value => round(value)),
  results,
  ratio: {
    deliveriesPerSecond: round(hub.throughput.deliveriesPerSecond / sio.throughput.deliveriesPerSecond),
    p99: Object.fromEntries(RATES.map((rate, i) => [`${rate} msg/s`, round(sio.latency[i].p99 / hub.latency[i].p99)]))
  }
}
const file = QUICK ? 'results/cross-node.quick.tmp.json' : 'results/cross-node.json'
mkdirSync(here('./results'), { recursive: true })
writeFileSync(here(`./${file}`), JSON.stringify(output, null, 2) + '\n')
console.log(`\nwritten to bench/${file}`)
