// Room fan-out with history on versus off: what keeping each room message (in memory on one process,
// in a Redis stream with three processes) costs in deliveries per second and in latency.
//
// Scenario, the same for both settings: `--members` room members (bench/cross-node-receivers.js, one
// process) spread evenly over the server processes (bench/cross-node-server.js: one process without
// Redis, or three on one Redis); one publisher on the first server, which passes each message on to the
// room with `await conn.hub.to(room).send(message)` (with --pipelined: without awaiting it, so that the
// sends of one connection overlap).
//
//   throughput  a burst of --messages at once; deliveries/s = members x messages / (last arrival - first
//               send); the median of --rounds bursts
//   latency     --rate messages/s for --seconds, in one-second windows; p50/p99 of send -> arrival
//
// Both settings are up at once and take turns, so that other load on the machine weighs on both alike.
//
// Usage: node bench/history.js [--members 1000] [--messages 1000] [--rounds 3] [--rate 50] [--seconds 6]
//        [--nodes 1,3] [--pipelined] [--quick]
// Needs redis-server on PATH for --nodes 3. Writes bench/results/history.json and prints a table.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { freePort, RedisServer } from '../test/redis-server.js'
import { nextMessage, startServer as startChild } from './children.js'

const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '1000' },
    messages: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '6' },
    nodes: { type: 'string', default: '1,3' },
    quick: { type: 'boolean', default: false },
    // pass each message on without awaiting the previous send (the server's sends overlap)
    pipelined: { type: 'boolean', default: false }
  }
})
const QUICK = args.quick
const MEMBERS = QUICK ? 200 : Number(args.members)
const MESSAGES = QUICK ? 200 : Number(args.messages)
const ROUNDS = QUICK ? 1 : Number(args.rounds)
const RATE = Number(args.rate)
const SECONDS = QUICK ? 2 : Number(args.seconds)
const PAD = 'x'.repeat(64)
const here = path => new URL(path, import.meta.url).pathname
const now = () => performance.timeOrigin + performance.now()
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const median = list => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]
const round = (value, digits = 2) => Number(value.toFixed(digits))

function startServer (kind, redisUrl) {
  return startChild([here('./cross-node-server.js'), kind, redisUrl ?? '', args.pipelined ? 'pipelined' : 'await'], kind)
}

/** One setting: its servers, its members (ready), and its publisher. */
async function startSide (kind, nodes, redisUrl) {
  const servers = await Promise.all(Array.from({ length: nodes }, () => startServer(kind, redisUrl)))
  const receivers = fork(here('./cross-node-receivers.js'), [kind, String(MEMBERS), servers.map(s => s.port).join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  await nextMessage(receivers, 'ready', 60_000)
  const ws = new WebSocket(`ws://127.0.0.1:${servers[0].port}/ws?pub=bench`)
  await once(ws, 'message')
  return { kind, servers, receivers, ws, rounds: [], latency: null }
}

async function stopSide (side) {
  side.ws.terminate()
  side.receivers.kill('SIGKILL')
  for (const { child } of side.servers) {
    child.kill('SIGKILL')
    await once(child, 'exit')
  }
}

async function burst (side) {
  side.receivers.send({ expect: MESSAGES })
  const done = nextMessage(side.receivers, 'done', QUICK ? 20_000 : 120_000).catch(async () => {
    side.receivers.send({ report: true })
    const report = await nextMessage(side.receivers, 'done', 5000)
    throw new Error(`${side.kind}: ${report.received} of ${MESSAGES * MEMBERS} deliveries arrived`)
  })
  const startedAt = now()
  for (let i = 0; i < MESSAGES; i++) side.ws.send(JSON.stringify({ i, t: now(), pad: PAD }))
  const report = await done
  return Math.round(report.received / ((report.lastAt - startedAt) / 1000))
}

async function paced (side, seconds) {
  const count = Math.round(RATE * seconds)
  side.receivers.send({ expect: count, keep: true })
  const done = nextMessage(side.receivers, 'done', seconds * 1000 + 30_000)
  const startedAt = now()
  let sent = 0
  while (sent < count) {
    const due = Math.min(count, Math.floor((now() - startedAt) * RATE / 1000) + 1)
    while (sent < due) side.ws.send(JSON.stringify({ i: sent++, t: now(), pad: PAD }))
    await sleep(1)
  }
  await done
}

const results = []
const redis = new RedisServer(await freePort())
await redis.start()
try {
  for (const nodes of args.nodes.split(',').map(Number)) {
    const kinds = nodes === 1 ? ['hub-memory', 'hub-memory-history'] : ['hub', 'hub-history']
    const sides = []
    for (const kind of kinds) {
      process.stdout.write(`${kind}: starting ${nodes} server process(es) and ${MEMBERS} members\n`)
      sides.push(await startSide(kind, nodes, redis.url))
    }
    await sleep(300)
    for (const side of sides) process.stdout.write(`${side.kind}: warm-up ${await burst(side)} deliveries/s\n`)
    for (let r = 0; r < ROUNDS; r++) {
      for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
        await sleep(300)
        side.rounds.push(await burst(side))
        process.stdout.write(`${nodes} process(es), ${side.kind}: ${side.rounds.at(-1)} deliveries/s\n`)
      }
    }
    for (let w = 0; w < SECONDS; w++) {
      for (const side of w % 2 === 0 ? sides : [...sides].reverse()) {
        await sleep(200)
        await paced(side, 1)
      }
    }
    for (const side of sides) {
      side.receivers.send({ summary: true })
      side.latency = (await nextMessage(side.receivers, 'summary', 10_000)).summary
      await stopSide(side)
    }
    const [off, on] = sides.map(side => ({
      deliveriesPerSecond: median(side.rounds),
      rounds: side.rounds,
      p50: round(side.latency.p50),
      p99: round(side.latency.p99),
      delivered: side.latency.deliveries
    }))
    results.push({
      nodes,
      off,
      on,
      throughputRatio: round(on.deliveriesPerSecond / off.deliveriesPerSecond),
      p99Ratio: round(on.p99 / off.p99)
    })
  }
} finally {
  await redis.kill()
}

console.log()
console.log(`| ${MEMBERS} members | history off | history on | on / off |`)
console.log('|---|---|---|---|')
for (const r of results) {
  const where = r.nodes === 1 ? '1 process (memory)' : `${r.nodes} processes (Redis)`
  console.log(`| ${where}: deliveries/s (median of ${ROUNDS}) | ${r.off.deliveriesPerSecond} | ${r.on.deliveriesPerSecond} | ${r.throughputRatio} |`)
  console.log(`| ${where}: p99 latency, ms (${RATE} msg/s) | ${r.off.p99} | ${r.on.p99} | ${r.p99Ratio} |`)
  console.log(`| ${where}: p50 latency, ms | ${r.off.p50} | ${r.on.p50} | ${round(r.on.p50 / r.off.p50)} |`)
}
const output = {
  scenario: `${MEMBERS} room members, one publisher on the first server, which ${args.pipelined ? 'passes on' : 'awaits'} conn.hub.to(room).send() of each message`,
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version },
  command: `node bench/history.js ${process.argv.slice(2).join(' ')}`.trim(),
  results
}
const file = QUICK ? 'results/history.quick.tmp.json' : `results/history${args.pipelined ? '.pipelined' : ''}.json`
mkdirSync(here('./results'), { recursive: true })
writeFileSync(here(`./${file}`), JSON.stringify(output, null, 2) + '\n')
console.log(`\nwritten to bench/${file}`)
