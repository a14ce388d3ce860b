// Room broadcast, framed once vs framed per member, in more detail than the suite's fan-out scenario
// (bench/run.js), which compares the libraries.
//
//   node bench/fanout.js [--quick] [--rounds 5] [--duration 3000] [--warmup 500] [--members 1000]
//                        [--payload 64] [--limit 1048576] [--burst 4000] [--variants a,b] [--no-pin]
//                        [--priority=-10] [--prof-server DIR] [--out FILE]
//
// The server (a bare `ws` server and a Fastify app with fastify-ws-hub) runs in one child process, the
// receivers in another, pinned to CPU 0 and CPU 1 with `taskset` when it is available. The receivers are
// raw TCP sockets that do the upgrade themselves and only count frames (see load.js). Variants
// run interleaved, once per round; each run publishes in bursts for warmup + duration ms and measures
// the last `duration` ms. Results: a markdown table on stdout, and bench/results/fanout.json
// (bench/results/fanout.quick.tmp.json for --quick, or --out FILE).
//
// On a shared machine, other processes take CPU from the runs: each run records how much (the "other
// procs" column, from /proc/stat), the bench waits a little for a quiet moment before each run, and
// `--priority=-10` runs the server and the clients under `nice -n -10` (needs root or CAP_SYS_NICE).
// Server CPU per delivery is the steadier figure under such noise; deliveries/s moves with it.
// `--prof-server DIR` writes a V8 CPU profile of the server child into DIR (it slows the server).
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import {
  childGroup, cpusAllowed, gitState, int, machineInfo, machineWindow, niceOf, NOISY_PCT, probePinning, probePriority,
  QUIET_PCT, stats, versionOf, waitQuiet
} from './common.js'
import { client, now } from './ipc.js'

const VARIANTS = {
  'ws-send': '(1) ws: socket.send() per member',
  'ws-frame-once': '(2) ws: Sender.frame once, sendFrame per member',
  'hub-to-room': '(3) hub: app.ws.to(room).send()',
  'hub-per-member': '(4) hub: app.ws.get(id).send() per member',
  'ws-send-string': '(x) ws: socket.send(string) per member'
}
const TARGET = { 'ws-send': 'ws', 'ws-frame-once': 'ws', 'hub-to-room': 'hub', 'hub-per-member': 'hub', 'ws-send-string': 'ws' }
const DEFAULT_VARIANTS = ['ws-send', 'ws-frame-once', 'hub-to-room', 'hub-per-member']

const PROFILES = {
  full: { rounds: 5, duration: 3000, warmup: 500, members: 1000 },
  quick: { rounds: 2, duration: 300, warmup: 100, members: 100 }
}

function options (argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      members: { type: 'string' },
      payload: { type: 'string', default: '64' },
      limit: { type: 'string', default: String(1024 * 1024) },
      burst: { type: 'string', default: '4000' },
      variants: { type: 'string', default: DEFAULT_VARIANTS.join(',') },
      'no-pin': { type: 'boolean', default: false },
      priority: { type: 'string', default: '0' },
      'prof-server': { type: 'string' },
      // --quick is a smoke test: its figures go to a git-ignored file, not over the full run's
      out: { type: 'string' }
    }
  })
  const profile = PROFILES[values.quick ? 'quick' : 'full']
  const variants = values.variants.split(',').filter(Boolean)
  for (const v of variants) if (!(v in VARIANTS)) throw new Error(`unknown variant ${v}; known: ${Object.keys(VARIANTS).join(', ')}`)
  const result = {
    mode: values.quick ? 'quick' : 'full',
    rounds: int('rounds', values.rounds ?? profile.rounds, 1, 20),
    duration: int('duration', values.duration ?? profile.duration, 100, 10_000),
    warmup: int('warmup', values.warmup ?? profile.warmup, 0, 5000),
    members: int('members', values.members ?? profile.members, 1, 5000),
    payload: int('payload', values.payload, 1, 1_000_000),
    limit: int('limit', values.limit, 16 * 1024, 16 * 1024 * 1024),
    burst: int('burst', values.burst, 1, 1_000_000),
    variants,
    pin: !values['no-pin'],
    priority: int('priority', values.priority, -20, 19),
    profServer: values['prof-server'],
    out: values.out ?? fileURLToPath(new URL(values.quick ? './results/fanout.quick.tmp.json' : './results/fanout.json', import.meta.url))
  }
  // the watchdog: startup, then every run (the warm-up pass counts as a round) with its quiet wait,
  // lead and settling, with room to spare (a default full run takes under two minutes)
  result.budget = 30_000 + (result.rounds + 1) * result.variants.length * (result.warmup + result.duration + 4500)
  return result
}

const fmtRate = (x) => `${(x / 1e3).toFixed(0)}k`
const fmtUs = (x) => x.toFixed(3)
const fmtRatio = (x) => `${x.toFixed(2)}x`

export async function main (argv) {
  const opt = options(argv)
  const pinning = opt.pin ? probePinning() : { ok: false, why: 'disabled by --no-pin' }
  if (!pinning.ok) process.stderr.write(`fanout: running WITHOUT CPU pinning: ${pinning.why}\n`)
  const priority = opt.priority === 0 ? { ok: false, why: 'not changed' } : probePriority(opt.priority)
  if (opt.priority !== 0 && !priority.ok) process.stderr.write(`fanout: running at the default priority: ${priority.why}\n`)

  const children = childGroup({ pinning, priority, priorityValue: opt.priority, budgetMs: opt.budget, name: 'fanout' })
  const spawnChild = (file, cpu, nodeArgs = []) => children.spawnChild(file, cpu, nodeArgs)
  const stopChild = children.stopChild

  const started = Date.now()
  const source = gitState()
  const serverChild = spawnChild('./fanout-server.js', 0, opt.profServer === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${opt.profServer}`])
  const clientChild = spawnChild('./load.js', 1)
  const server = client(serverChild, 'server')
  const load = client(clientChild, 'client')
  const runs = []
  const checks = []
  let machine
  try {
    const ports = await server('start', { payloadBytes: opt.payload }, 15_000)
    machine = {
      ...machineInfo({ pinning, priority, priorityValue: opt.priority }),
      serverNice: niceOf(serverChild.pid),
      clientNice: niceOf(clientChild.pid),
      serverCpus: cpusAllowed(serverChild.pid),
      clientCpus: cpusAllowed(clientChild.pid),
      ws: versionOf('ws'),
      fastify: versionOf('fastify'),
      source
    }

    const groups = new Set(opt.variants.map((v) => TARGET[v]))
    if (groups.has('ws')) await load('connect', { group: 'ws', port: ports.wsPort, path: '/', count: opt.members }, 60_000)
    if (groups.has('hub')) await load('connect', { group: 'hub', port: ports.hubPort, path: '/room', count: opt.members }, 60_000)
    // the server sees the last upgrades a moment after the clients do
    for (let i = 0; ; i++) {
      const info = await server('info')
      const ready = (!groups.has('ws') || info.wsClients === opt.members) &&
        (!groups.has('hub') || (info.hubClients === opt.members && info.roomSize === opt.members))
      if (ready) break
      if (i === 200) throw new Error(`members not all connected: ${JSON.stringify(info)}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }

    // at most 2 s before a run, 15 s in all (none in --quick, whose figures are only a smoke test)
    let quietBudget = opt.mode === 'quick' ? 0 : 15_000
    const runOnce = async (variant, warmup, duration) => {
      const quiet = quietBudget > 0 ? await waitQuiet(Math.min(quietBudget, 2000), QUIET_PCT) : { waitedMs: 0, busyPct: null }
      quietBudget -= quiet.waitedMs
      const lead = 100n * 1_000_000n
      const start = now() + lead
      const t0 = start + BigInt(warmup) * 1_000_000n
      const t1 = t0 + BigInt(duration) * 1_000_000n
      const group = TARGET[variant]
      const budget = warmup + duration + 15_000
      const [clientWindow, serverRun, host] = await Promise.all([
        load('window', { group, t0: String(t0), t1: String(t1) }, budget),
        server('run', {
          variant,
          start: String(start),
          t0: String(t0),
          t1: String(t1),
          limit: opt.limit,
          burstDeliveries: opt.burst,
          drainTimeoutMs: 2000
        }, budget),
        machineWindow(t0, t1)
      ])
      const delivery = await load('settle', { group, perSocket: serverRun.published, timeoutMs: 15_000 }, 20_000)
      const w = serverRun.window
      const serverCpuUs = w.cpuUserUs + w.cpuSystemUs
      const deliveriesPerSec = clientWindow.frames / clientWindow.seconds
      const serverUserPct = w.cpuUserUs / 1e4 / w.seconds
      const clientUserPct = clientWindow.cpuUserUs / 1e4 / clientWindow.seconds
      return {
        variant,
        deliveriesPerSec,
        serverUserUsPerDelivery: (w.cpuUserUs / w.seconds) / deliveriesPerSec,
        // user-space CPU that neither the server, the clients nor this process used: other processes
        otherUserPct: host.cpus === null ? null : host.cpus.cpu.user - serverUserPct - clientUserPct - host.orchestratorUserPct,
        host,
        quiet,
        // server CPU rate over its window / delivery rate over the client's (the two windows are the
        // same span of the same monotonic clock, give or take a burst)
        serverCpuUsPerDelivery: (serverCpuUs / w.seconds) / deliveriesPerSec,
        serverCpuUsPerWrite: serverCpuUs / w.writes,
        serverCpuPct: serverCpuUs / 1e4 / w.seconds,
        serverSystemPct: w.cpuSystemUs / 1e4 / w.seconds,
        clientCpuPct: clientWindow.cpuUs / 1e4 / clientWindow.seconds,
        serverWritesPerSec: w.writes / w.seconds,
        client: clientWindow,
        server: serverRun,
        delivery
      }
    }

    // one unmeasured pass so every variant's code is warm before round 1
    for (const variant of opt.variants) {
      const r = await runOnce(variant, 0, opt.warmup + Math.min(opt.duration, 500))
      checks.push({ phase: 'warm-up', variant, complete: r.delivery.complete })
    }
    for (let round = 0; round < opt.rounds; round++) {
      const k = round % opt.variants.length
      const order = [...opt.variants.slice(k), ...opt.variants.slice(0, k)]
      for (const variant of order) {
        const r = await runOnce(variant, opt.warmup, opt.duration)
        r.round = round + 1
        runs.push(r)
        process.stderr.write(`round ${round + 1}/${opt.rounds} ${variant.padEnd(15)} ${fmtRate(r.deliveriesPerSec)} deliveries/s, ` +
          `${fmtUs(r.serverCpuUsPerDelivery)} us CPU/delivery, server CPU ${r.serverCpuPct.toFixed(0)}%, client CPU ${r.clientCpuPct.toFixed(0)}%, ` +
          `${r.delivery.complete ? 'all delivered' : `INCOMPLETE ${r.delivery.received}/${r.delivery.expected}`}\n`)
      }
    }
  } finally {
    await Promise.all([stopChild(serverChild, server, opt.profServer === undefined ? 3000 : 20_000), stopChild(clientChild, load)])
    children.close()
  }

  const summary = opt.variants.map((variant) => {
    const mine = runs.filter((r) => r.variant === variant)
    return {
      variant,
      label: VARIANTS[variant],
      deliveriesPerSec: stats(mine.map((r) => r.deliveriesPerSec)),
      serverCpuUsPerDelivery: stats(mine.map((r) => r.serverCpuUsPerDelivery)),
      serverUserUsPerDelivery: stats(mine.map((r) => r.serverUserUsPerDelivery)),
      serverCpuUsPerWrite: stats(mine.map((r) => r.serverCpuUsPerWrite)),
      otherUserPct: mine[0].otherUserPct === null ? null : stats(mine.map((r) => r.otherUserPct)),
      cpu0SoftirqPct: mine[0].host.cpus?.cpu0 === undefined ? null : stats(mine.map((r) => r.host.cpus.cpu0.softirq)),
      cpu0IdlePct: mine[0].host.cpus?.cpu0 === undefined ? null : stats(mine.map((r) => r.host.cpus.cpu0.idle)),
      serverCpuPct: stats(mine.map((r) => r.serverCpuPct)),
      serverSystemPct: stats(mine.map((r) => r.serverSystemPct)),
      clientCpuPct: stats(mine.map((r) => r.clientCpuPct)),
      drainWaitsPerSec: stats(mine.map((r) => r.server.window.drainWaits / r.server.window.seconds)),
      maxBuffered: Math.max(...mine.map((r) => r.server.maxBuffered)),
      noisyRuns: mine.filter((r) => r.otherUserPct !== null && r.otherUserPct > NOISY_PCT).length,
      complete: mine.every((r) => r.delivery.complete && r.delivery.otherFrames === 0 && r.delivery.protocolErrors === 0)
    }
  })
  const base = summary.find((s) => s.variant === 'ws-send') ?? summary[0]
  for (const s of summary) {
    s.vsBase = {
      deliveriesPerSec: s.deliveriesPerSec.median / base.deliveriesPerSec.median,
      serverCpuUsPerDelivery: s.serverCpuUsPerDelivery.median / base.serverCpuUsPerDelivery.median,
      serverUserUsPerDelivery: s.serverUserUsPerDelivery.median / base.serverUserUsPerDelivery.median
    }
    // the same ratios taken within each round (both runs a few seconds apart), then the median
    const paired = (key) => stats(runs.filter((r) => r.variant === s.variant).map((r) => {
      const b = runs.find((x) => x.round === r.round && x.variant === base.variant)
      return r[key] / b[key]
    }))
    s.vsBasePairedByRound = {
      deliveriesPerSec: paired('deliveriesPerSec'),
      serverCpuUsPerDelivery: paired('serverCpuUsPerDelivery'),
      serverUserUsPerDelivery: paired('serverUserUsPerDelivery')
    }
  }

  const b = base.label.slice(0, 3)
  const lines = [
    `fanout: ${opt.members} members in one room, ${opt.payload}-byte text messages, ${opt.rounds} rounds x ` +
      `${opt.duration} ms measured (after ${opt.warmup} ms warm-up), median (min-max); ratios are of the medians, to ${b}`,
    `machine: ${machine.cpus} x ${machine.cpu}, node ${machine.node}, ws ${machine.ws}, fastify ${machine.fastify}; ` +
      (source === null ? '' : `fastify-ws-hub at ${source.commit}${source.libChanges.length > 0 ? ` + ${source.libChanges.length} uncommitted lib/ changes` : ''}; `) +
      (machine.pinning ? `server pinned to CPU ${machine.serverCpus}, clients to CPU ${machine.clientCpus}` : `NOT pinned (${machine.pinningNote})`) +
      (machine.priority !== 0 ? `; nice ${machine.serverNice} (server), ${machine.clientNice} (clients)` : ''),
    '',
    `| variant | deliveries/s | vs ${b} | server CPU us/delivery (user+sys) | vs ${b} | of which user | vs ${b} | server CPU % | client CPU % | other procs CPU % | all delivered |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|',
    ...summary.map((s) => `| ${s.label} | ${fmtRate(s.deliveriesPerSec.median)} (${fmtRate(s.deliveriesPerSec.min)}-${fmtRate(s.deliveriesPerSec.max)}) | ` +
      `${fmtRatio(s.vsBase.deliveriesPerSec)} | ${fmtUs(s.serverCpuUsPerDelivery.median)} (${fmtUs(s.serverCpuUsPerDelivery.min)}-${fmtUs(s.serverCpuUsPerDelivery.max)}) | ` +
      `${fmtRatio(s.vsBase.serverCpuUsPerDelivery)} | ${fmtUs(s.serverUserUsPerDelivery.median)} (${fmtUs(s.serverUserUsPerDelivery.min)}-${fmtUs(s.serverUserUsPerDelivery.max)}) | ` +
      `${fmtRatio(s.vsBase.serverUserUsPerDelivery)} | ${s.serverCpuPct.median.toFixed(0)} | ${s.clientCpuPct.median.toFixed(0)} | ` +
      `${s.otherUserPct === null ? '?' : `${s.otherUserPct.median.toFixed(0)} (${s.otherUserPct.max.toFixed(0)})`} | ${s.complete ? 'yes' : 'NO'} |`)
  ]
  if (opt.rounds > 1) {
    lines.push('', `the same ratios to ${b} taken within each round, then the median (min-max), deliveries/s; CPU/delivery; user CPU/delivery:`)
    for (const s of summary) {
      if (s === base) continue
      const p = s.vsBasePairedByRound
      const f = (x) => `${fmtRatio(x.median)} (${x.min.toFixed(2)}-${x.max.toFixed(2)})`
      lines.push(`- ${s.label}: ${f(p.deliveriesPerSec)}; ${f(p.serverCpuUsPerDelivery)}; ${f(p.serverUserUsPerDelivery)}`)
    }
  }
  const elapsed = (Date.now() - started) / 1000
  const noisy = summary.reduce((n, s) => n + s.noisyRuns, 0)
  lines.push('', 'server CPU: the server process\'s user+system time (process.cpuUsage); the kernel\'s softirq network work on its CPU is not in it.')
  lines.push('other procs CPU %: user CPU of processes other than the bench during the window, median (max), % of one CPU; ' +
    `${noisy} of ${runs.length} runs had more than ${NOISY_PCT}%`)
  lines.push(`(${runs.length} runs in ${elapsed.toFixed(1)} s; raw figures in ${opt.out})`)
  process.stdout.write(lines.join('\n') + '\n')

  mkdirSync(new URL('.', pathToFileURL(opt.out)), { recursive: true })
  writeFileSync(opt.out, JSON.stringify({
    bench: 'fanout',
    date: new Date().toISOString(),
    config: opt,
    machine,
    summary,
    runs,
    warmUpChecks: checks,
    elapsedSeconds: elapsed
  }, null, 2) + '\n')

  const allGood = summary.every((s) => s.complete) && checks.every((c) => c.complete)
  if (!allGood) process.stderr.write('fanout: some frames were not delivered (see "complete" in the JSON)\n')
  return allGood ? 0 : 1
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err) => {
    process.stderr.write(`fanout: ${err.stack ?? err}\n`)
    process.exitCode = 1
  })
}
