// The benchmark suite: fastify-ws-hub next to bare ws, ws framed once, @fastify/websocket and
// Socket.IO 4, in five scenarios. Run by bench/run.js (`npm run bench [-- options]`):
//
//   --quick                 smoke run: 1 round, short windows, small sizes (a few seconds per scenario)
//   --rounds N              interleaved rounds (default 3)
//   --duration MS           measured window of echo, fan-out and setup runs (default 2500)
//   --warmup MS             warm-up before each measured window (default 500)
//   --scenarios a,b         echo, rpc, fanout, memory, setup (default: all)
//   --variants a,b          ws, ws-frame-once, fastify-ws, socketio, hub-fn, hub-class, hub-rpc (default: all);
//                           rpc (request/response) runs ws, socketio and hub-rpc of these, the others the rest
//   --prof-server DIR       V8 CPU profile of every server child (node --cpu-prof), one file per
//                           scenario and variant: DIR/<scenario>.<variant>.<n>.cpuprofile (see prof-top.js)
//   --no-pin                do not pin with taskset
//   --priority=-10          run the children under nice (needs CAP_SYS_NICE)
//   --out FILE              results JSON (default bench/results/bench.json; bench.quick.tmp.json for --quick)
//   --no-cross-node         do not run bench/cross-node.js
//
// Every server variant runs in its own child process pinned to CPU 0 (server.js); the load generator
// (load.js, lean raw-TCP clients) in one child pinned to CPU 1. Variants run interleaved, once per
// round, in a rotating order; each scenario reports medians with min-max over the rounds, ratios to bare
// ws, and the server's own CPU time per message (process.cpuUsage in the server child over the measured
// window). Other processes' CPU during each window is measured from /proc/stat to say how noisy a run was.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { client, now } from './ipc.js'
import {
  childGroup, cpusAllowed, distHash, gitState, int, machineInfo, machineWindow, niceOf, NOISY_PCT, NOISY_STEAL_PCT,
  otherUserPct, probePinning, probePriority, QUIET_PCT, sleep, stats, stealPct, versionOf, waitQuiet
} from './common.js'
import { ALL_VARIANTS, BASE, describeRun, evaluateTargets, LABELS, noiseLines, ratioTable, RPC_VARIANTS, VARIANTS } from './report.js'

export const SCENARIOS = ['echo', 'rpc', 'fanout', 'memory', 'setup']

const PROFILES = {
  full: {
    rounds: 3,
    warmup: 500,
    duration: 2500,
    warmPass: true, // one unmeasured run of every variant before round 1
    quietBudgetMs: 15_000, // per scenario, at most 2 s before a run
    echo: { conns: 50, inflight: 8, payload: 32 },
    rpc: { conns: 50, inflight: 8, payload: 32 },
    fanout: { members: 1000, payload: 64, burst: 4000, limit: 1024 * 1024 },
    memory: { conns: 5000 },
    setup: { concurrency: 50 }
  },
  quick: {
    rounds: 1,
    warmup: 200,
    duration: 300,
    warmPass: true, // short: it warms the load generator's JIT, which the first variant would pay for
    quietBudgetMs: 0,
    echo: { conns: 50, inflight: 8, payload: 32 },
    rpc: { conns: 50, inflight: 8, payload: 32 },
    fanout: { members: 200, payload: 64, burst: 4000, limit: 1024 * 1024 },
    memory: { conns: 500 },
    setup: { concurrency: 50 }
  }
}

const protocolOf = (variant) => variant === 'socketio' ? 'sio' : 'ws'

function options (argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      scenarios: { type: 'string', default: SCENARIOS.join(',') },
      variants: { type: 'string', default: ALL_VARIANTS.join(',') },
      'prof-server': { type: 'string' },
      'no-pin': { type: 'boolean', default: false },
      priority: { type: 'string', default: '0' },
      out: { type: 'string' },
      'no-cross-node': { type: 'boolean', default: false }
    }
  })
  const mode = values.quick ? 'quick' : 'full'
  const profile = PROFILES[mode]
  const list = (name, value, known) => {
    const items = value.split(',').filter(Boolean)
    for (const item of items) if (!known.includes(item)) throw new Error(`unknown ${name} ${item}; known: ${known.join(', ')}`)
    if (items.length === 0) throw new Error(`--${name}s is empty`)
    return known.filter((k) => items.includes(k))
  }
  const chosen = list('variant', values.variants, ALL_VARIANTS)
  const variants = chosen.filter((v) => VARIANTS.includes(v))
  const rpcVariants = RPC_VARIANTS.filter((v) => v === BASE || chosen.includes(v))
  const opt = {
    ...profile,
    mode,
    rounds: int('rounds', values.rounds ?? profile.rounds, 1, 20),
    duration: int('duration', values.duration ?? profile.duration, 100, 10_000),
    warmup: int('warmup', values.warmup ?? profile.warmup, 0, 5000),
    scenarios: list('scenario', values.scenarios, SCENARIOS),
    variants: variants.includes(BASE) ? variants : [BASE, ...variants], // ratios are to bare ws
    rpcVariants, // the request/response scenario's own: bare ws echo, Socket.IO's acknowledgements, the hub's methods
    pin: !values['no-pin'],
    priority: int('priority', values.priority, -20, 19),
    profServer: values['prof-server'],
    crossNode: !values['no-cross-node'],
    out: values.out ?? fileURLToPath(new URL(mode === 'quick' ? './results/bench.quick.tmp.json' : './results/bench.json', import.meta.url))
  }
  // the watchdog: what the plan should take (a timed scenario: starting its servers, then every run with
  // its lead, windows and settling, and the wait for quiet; a memory run: a fresh server, connecting,
  // GCs), with room to spare, plus the cross-node scenario's own limit
  opt.crossNodeTimeoutMs = mode === 'quick' ? 90_000 : 180_000
  const runs = (opt.rounds + (opt.warmPass ? 1 : 0)) * Math.max(opt.variants.length, opt.rpcVariants.length)
  const timed = opt.scenarios.filter((s) => s !== 'memory').length
  const plan = timed * (10_000 + opt.quietBudgetMs + runs * (opt.warmup + opt.duration + 1500)) +
    (opt.scenarios.includes('memory') ? opt.rounds * opt.variants.length * 8000 : 0)
  opt.budgetMs = 60_000 + Math.round(1.5 * plan) + (opt.crossNode ? opt.crossNodeTimeoutMs + 10_000 : 0)
  return opt
}

/** A warm-up run is shorter than a measured one (in --quick mode, only long enough to warm the JIT). */
const windowOf = (opt, warm) => !warm
  ? { warmup: opt.warmup, duration: opt.duration }
  : opt.mode === 'quick' ? { warmup: 100, duration: 100 } : { warmup: opt.warmup, duration: Math.min(opt.duration, 500) }

function times (warmup, duration, leadMs = 150) {
  const start = now() + BigInt(leadMs) * 1_000_000n
  const t0 = start + BigInt(warmup) * 1_000_000n
  const t1 = t0 + BigInt(duration) * 1_000_000n
  return { start: String(start), t0: String(t0), t1: String(t1) }
}

/** Polls a server's `info` (every 20 ms, at most `ms`) until `test(info)` holds; returns the last info. */
async function waitInfo (server, test, ms = 10_000) {
  const deadline = Date.now() + ms
  while (true) {
    const info = await server.request('info')
    if (test(info) || Date.now() >= deadline) return info
    await sleep(20)
  }
}

/** Summary of the runs of each variant: median, min and max of each figure, and the ratio to bare ws. */
function summarize (runs, keys, variants) {
  const summary = {}
  for (const variant of variants) {
    const mine = runs.filter((r) => r.variant === variant)
    if (mine.length === 0) continue
    const s = { label: LABELS[variant], runs: mine.length }
    for (const key of keys) s[key] = stats(mine.map((r) => r[key]))
    const others = mine.map((r) => r.otherUserPct).filter((x) => x !== null && x !== undefined)
    s.otherUserPct = others.length === 0 ? null : stats(others)
    const steals = mine.map((r) => r.stealPct).filter((x) => x !== null && x !== undefined)
    s.stealPct = steals.length === 0 ? null : stats(steals)
    s.noisyRuns = mine.filter(isNoisy).length
    s.complete = mine.every((r) => r.complete)
    summary[variant] = s
  }
  const base = summary[BASE]
  if (base !== undefined) {
    for (const s of Object.values(summary)) {
      s.vsWs = {}
      for (const key of keys) s.vsWs[key] = s[key].median / base[key].median
    }
  }
  return summary
}

/** A run during which other processes or the hypervisor took more than a little CPU. */
const isNoisy = (r) => (r.otherUserPct ?? 0) > NOISY_PCT || (r.stealPct ?? 0) > NOISY_STEAL_PCT

function noiseOf (runs, quietWaitMs) {
  const others = runs.map((r) => r.otherUserPct).filter((x) => x !== null && x !== undefined)
  const steals = runs.map((r) => r.stealPct).filter((x) => x !== null && x !== undefined)
  return {
    runs: runs.length,
    thresholdPct: NOISY_PCT,
    stealThresholdPct: NOISY_STEAL_PCT,
    otherUserPct: others.length === 0 ? null : stats(others),
    stealPct: steals.length === 0 ? null : stats(steals),
    noisyRuns: runs.filter(isNoisy).length,
    quietWaitMs
  }
}

const fmt = (x, digits = 0) => Number.isFinite(x) ? x.toFixed(digits) : '?'
const k = (x) => Number.isFinite(x) ? `${(x / 1000).toFixed(1)}k` : '?'

/** Everything the scenarios share: options, children, the load generator, server starts, rounds. */
function context (opt) {
  const pinning = opt.pin ? probePinning() : { ok: false, why: 'disabled by --no-pin' }
  if (!pinning.ok) process.stderr.write(`bench: running WITHOUT CPU pinning: ${pinning.why}\n`)
  const priority = opt.priority === 0 ? { ok: false, why: 'not changed' } : probePriority(opt.priority)
  if (opt.priority !== 0 && !priority.ok) process.stderr.write(`bench: running at the default priority: ${priority.why}\n`)
  const children = childGroup({ pinning, priority, priorityValue: opt.priority, budgetMs: opt.budgetMs, name: 'bench' })
  const hashes = new Map() // dist hash -> server starts that ran it
  const placement = { serverCpus: null, loadCpus: null, serverNice: null, loadNice: null }
  let seq = 0
  if (opt.profServer !== undefined) mkdirSync(opt.profServer, { recursive: true })

  /** Starts one server child (server.js) for a scenario and variant, pinned to CPU 0. */
  async function startServer (scenario, variant, payloadBytes) {
    const nodeArgs = opt.profServer === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${opt.profServer}`, `--cpu-prof-name=${scenario}.${variant}.${++seq}.cpuprofile`]
    if (variant.startsWith('hub')) {
      const hash = distHash()
      hashes.set(hash, (hashes.get(hash) ?? 0) + 1)
    }
    const child = children.spawnChild('./server.js', 0, nodeArgs)
    const request = client(child, `server ${variant}`)
    const server = { variant, child, request }
    try {
      Object.assign(server, await request('start', { variant, payloadBytes }, 20_000))
    } catch (err) {
      child.kill('SIGKILL')
      throw err
    }
    placement.serverCpus ??= cpusAllowed(child.pid)
    placement.serverNice ??= niceOf(child.pid)
    return server
  }

  function stopServer (server) {
    return children.stopChild(server.child, server.request, opt.profServer === undefined ? 3000 : 20_000)
  }

  function startLoad () {
    const child = children.spawnChild('./load.js', 1)
    const ipc = client(child, 'load generator')
    // where it runs, read once it answers (right after the spawn, `taskset` may not have pinned it yet)
    const request = async (...args) => {
      const answer = await ipc(...args)
      placement.loadCpus ??= cpusAllowed(child.pid)
      placement.loadNice ??= niceOf(child.pid)
      return answer
    }
    return { child, request, stop: () => children.stopChild(child, ipc) }
  }

  /**
   * Runs `runOnce(variant, warm)` for every variant: once unmeasured (full mode), then once per round,
   * each round in a rotated order. Logs a line per run with `line(run)`.
   */
  async function rounds (scenario, runOnce, line, variants = opt.variants) {
    const warmUp = []
    const runs = []
    if (opt.warmPass) {
      for (const variant of variants) warmUp.push({ variant, ...await runOnce(variant, true) })
    }
    for (let round = 0; round < opt.rounds; round++) {
      const shift = round % variants.length
      const order = [...variants.slice(shift), ...variants.slice(0, shift)]
      for (const variant of order) {
        const run = { variant, round: round + 1, ...await runOnce(variant, false) }
        runs.push(run)
        const noise = run.otherUserPct === null || run.otherUserPct === undefined
          ? ''
          : `, other procs ${fmt(run.otherUserPct)}%, steal ${fmt(run.stealPct)}%${isNoisy(run) ? ' (noisy)' : ''}`
        process.stderr.write(`${scenario} round ${round + 1}/${opt.rounds} ${variant.padEnd(13)} ${line(run)}${noise}` +
          `${run.complete ? '' : ' INCOMPLETE'}\n`)
      }
    }
    return { runs, warmUp }
  }

  let quietBudget = 0
  /** Before a measured run: wait (at most 2 s, and the scenario's budget) for the machine to be quiet. */
  async function quiet () {
    if (quietBudget <= 0) return { waitedMs: 0, busyPct: null }
    const q = await waitQuiet(Math.min(quietBudget, 2000), QUIET_PCT)
    quietBudget -= q.waitedMs
    return q
  }
  const resetQuiet = () => {
    const used = opt.quietBudgetMs - Math.max(quietBudget, 0)
    quietBudget = opt.quietBudgetMs
    return used
  }

  return { opt, pinning, priority, children, hashes, placement, startServer, stopServer, startLoad, rounds, quiet, resetQuiet }
}

/** Starts one server per variant, all at once (an idle server costs the others nothing). */
async function startAll (ctx, scenario, payloadBytes, variants = ctx.opt.variants) {
  const servers = {}
  const started = await Promise.allSettled(variants.map(async (variant) => {
    servers[variant] = await ctx.startServer(scenario, variant, payloadBytes)
  }))
  const failed = started.find((s) => s.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all(Object.values(servers).map((s) => ctx.stopServer(s)))
    throw failed.reason
  }
  return servers
}

/** Checks every echo endpoint with a real client (`ws`, socket.io-client) once, before measuring. */
async function checkWithRealClients (servers) {
  const { default: WebSocket } = await import('ws')
  const { io } = await import('socket.io-client')
  const within = (ms, what, promise) => Promise.race([promise, sleep(ms).then(() => { throw new Error(`${what}: no answer in ${ms} ms`) })])
  for (const server of Object.values(servers)) {
    const what = `real-client echo check of ${server.variant}`
    if (server.variant === 'socketio') {
      const socket = io(`http://127.0.0.1:${server.port}`, { transports: ['websocket'], reconnection: false })
      try {
        const got = await within(5000, what, new Promise((resolve, reject) => {
          socket.once('connect_error', reject)
          socket.once('m', resolve)
          socket.emit('m', 'check')
        }))
        if (got !== 'check') throw new Error(`${what}: got ${JSON.stringify(got)}`)
      } finally {
        socket.close()
      }
    } else {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/echo`)
      try {
        const got = await within(5000, what, new Promise((resolve, reject) => {
          ws.once('error', reject)
          ws.once('open', () => ws.send('check'))
          ws.once('message', (data, isBinary) => resolve(isBinary ? null : data.toString()))
        }))
        if (got !== 'check') throw new Error(`${what}: got ${JSON.stringify(got)}`)
      } finally {
        ws.terminate()
      }
    }
  }
}

/** (a) echo: `conns` clients keep `inflight` messages each in flight; msgs/s, round trip, server CPU/msg. */
function echo (ctx) {
  const cfg = ctx.opt.echo
  return roundTrips(ctx, {
    scenario: 'echo',
    variants: ctx.opt.variants,
    exchange: () => ({}),
    check: checkWithRealClients,
    title: `echo: ${cfg.conns} connections x ${cfg.inflight} messages in flight, ${cfg.payload}-byte text messages`
  })
}

/**
 * (a') request/response: the same load as echo, but each message is a request that gets its own
 * response: for the hub, a JSON-RPC call of a method whose params a JSON Schema validates; for
 * Socket.IO, an event answered with an acknowledgement (what `emitWithAck` waits for); bare ws echoes.
 */
function rpc (ctx) {
  const cfg = ctx.opt.rpc
  const text = 'x'.repeat(cfg.payload)
  return roundTrips(ctx, {
    scenario: 'rpc',
    variants: ctx.opt.rpcVariants,
    exchange: (variant) => variant === 'hub-rpc'
      ? {
          message: JSON.stringify({ jsonrpc: '2.0', method: 'echo', params: { text }, id: 1 }),
          reply: JSON.stringify({ jsonrpc: '2.0', result: { text }, id: 1 })
        }
      : variant === 'socketio' ? { message: `421${JSON.stringify(['a', text])}`, reply: `431${JSON.stringify([text])}` } : {},
    check: checkRequestsWithRealClients,
    title: `request/response: ${cfg.conns} connections x ${cfg.inflight} requests in flight, ${cfg.payload}-byte text; ` +
      'the hub: a JSON-RPC method with a validated schema; Socket.IO: an event with an acknowledgement (emitWithAck); bare ws: echo'
  })
}

/** Checks the request/response endpoints with real clients: rpc-websockets, socket.io-client's emitWithAck, ws. */
async function checkRequestsWithRealClients (servers) {
  const { Client } = await import('rpc-websockets')
  const { io } = await import('socket.io-client')
  const within = (ms, what, promise) => Promise.race([promise, sleep(ms).then(() => { throw new Error(`${what}: no answer in ${ms} ms`) })])
  for (const server of Object.values(servers)) {
    const what = `real-client request check of ${server.variant}`
    let got
    if (server.variant === 'hub-rpc') {
      const client = new Client(`ws://127.0.0.1:${server.port}/echo`, { reconnect: false })
      try {
        got = await within(5000, what, new Promise((resolve, reject) => {
          client.once('error', reject)
          client.once('open', () => client.call('echo', { text: 'check' }).then((result) => resolve(result.text), reject))
        }))
      } finally {
        client.close()
      }
    } else if (server.variant === 'socketio') {
      const socket = io(`http://127.0.0.1:${server.port}`, { transports: ['websocket'], reconnection: false })
      try {
        got = await within(5000, what, socket.emitWithAck('a', 'check'))
      } finally {
        socket.close()
      }
    } else {
      await checkWithRealClients({ [server.variant]: server })
      continue
    }
    if (got !== 'check') throw new Error(`${what}: got ${JSON.stringify(got)}`)
  }
}

/** Round trips: `conns` clients keep `inflight` messages each in flight, each answered by one reply. */
async function roundTrips (ctx, { scenario, variants, exchange, check, title }) {
  const { opt } = ctx
  const cfg = opt[scenario]
  const text = 'x'.repeat(cfg.payload)
  const load = ctx.startLoad()
  let servers = {}
  try {
    servers = await startAll(ctx, scenario, cfg.payload, variants)
    await check(servers)
    for (const [variant, server] of Object.entries(servers)) {
      await load.request('connect', { group: variant, protocol: protocolOf(variant), port: server.port, path: '/echo', count: cfg.conns }, 30_000)
      const info = await waitInfo(server, (i) => i.open === cfg.conns)
      if (info.open !== cfg.conns) throw new Error(`${scenario}: ${variant} has ${info.open} connections, not ${cfg.conns}`)
    }
    ctx.resetQuiet()
    const runOnce = async (variant, warm) => {
      const quiet = warm ? null : await ctx.quiet()
      const w = windowOf(opt, warm)
      const t = times(w.warmup, w.duration)
      const budget = w.warmup + w.duration + 15_000
      const [c, s, host] = await Promise.all([
        load.request('echo', { group: variant, start: t.start, t0: t.t0, t1: t.t1, inflight: cfg.inflight, text, ...exchange(variant), drainTimeoutMs: 5000 }, budget),
        servers[variant].request('cpuWindow', { t0: t.t0, t1: t.t1 }, budget),
        machineWindow(t.t0, t.t1)
      ])
      const msgsPerSec = c.replies / c.seconds
      const serverCpuUs = s.cpuUserUs + s.cpuSystemUs
      return {
        msgsPerSec,
        p50Ms: c.latency.p50Ms,
        p99Ms: c.latency.p99Ms,
        serverCpuUsPerMsg: (serverCpuUs / s.seconds) / msgsPerSec,
        serverUserUsPerMsg: (s.cpuUserUs / s.seconds) / msgsPerSec,
        serverCpuPct: serverCpuUs / 1e4 / s.seconds,
        clientCpuPct: c.cpuPct,
        otherUserPct: otherUserPct(host, s.userPct, c.userPct),
        stealPct: stealPct(host),
        complete: c.replies > 0 && c.unanswered === 0 && c.bad === 0 && c.errors === 0 && c.closed === 0 && c.protocolErrors === 0,
        quiet,
        client: c,
        server: s,
        host
      }
    }
    const { runs, warmUp } = await ctx.rounds(scenario, runOnce, (r) =>
      `${k(r.msgsPerSec)} msgs/s, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, ${fmt(r.serverCpuUsPerMsg, 2)} us CPU/msg, ` +
      `server CPU ${fmt(r.serverCpuPct)}%, client CPU ${fmt(r.clientCpuPct)}%`, variants)
    const keys = ['msgsPerSec', 'p50Ms', 'p99Ms', 'serverCpuUsPerMsg', 'serverUserUsPerMsg', 'serverCpuPct', 'clientCpuPct']
    return {
      title,
      params: cfg,
      variants: summarize(runs, keys, variants),
      noise: noiseOf(runs, ctx.resetQuiet()),
      runs,
      warmUp: warmUp.map((r) => ({ variant: r.variant, complete: r.complete, msgsPerSec: r.msgsPerSec }))
    }
  } finally {
    await Promise.all([load.stop(), ...Object.values(servers).map((s) => ctx.stopServer(s))])
  }
}

/** (b) room fan-out: `members` clients in one room, the server publishes; deliveries/s, CPU/delivery. */
async function fanout (ctx) {
  const { opt } = ctx
  const cfg = opt.fanout
  const load = ctx.startLoad()
  let servers = {}
  try {
    servers = await startAll(ctx, 'fanout', cfg.payload)
    for (const [variant, server] of Object.entries(servers)) {
      await load.request('connect', { group: variant, protocol: protocolOf(variant), port: server.port, path: '/room?room=1', count: cfg.members }, 60_000)
      const info = await waitInfo(server, (i) => i.open === cfg.members && i.roomSize === cfg.members)
      if (info.roomSize !== cfg.members) throw new Error(`fanout: ${variant} has ${info.roomSize} room members, not ${cfg.members}`)
    }
    ctx.resetQuiet()
    const runOnce = async (variant, warm) => {
      const quiet = warm ? null : await ctx.quiet()
      const w = windowOf(opt, warm)
      const t = times(w.warmup, w.duration)
      const budget = w.warmup + w.duration + 15_000
      const [c, s, host] = await Promise.all([
        load.request('window', { group: variant, t0: t.t0, t1: t.t1 }, budget),
        servers[variant].request('publish', {
          start: t.start, t0: t.t0, t1: t.t1, limit: cfg.limit, burstDeliveries: cfg.burst, drainTimeoutMs: 2000
        }, budget),
        machineWindow(t.t0, t.t1)
      ])
      const delivery = await load.request('settle', { group: variant, perSocket: s.published, timeoutMs: 15_000 }, 20_000)
      const sw = s.window
      const serverCpuUs = sw.cpuUserUs + sw.cpuSystemUs
      const deliveriesPerSec = c.frames / c.seconds
      return {
        deliveriesPerSec,
        // server CPU rate over its window / delivery rate over the client's (the same span of the same
        // monotonic clock, give or take a burst)
        serverCpuUsPerDelivery: (serverCpuUs / sw.seconds) / deliveriesPerSec,
        serverUserUsPerDelivery: (sw.cpuUserUs / sw.seconds) / deliveriesPerSec,
        serverCpuPct: serverCpuUs / 1e4 / sw.seconds,
        clientCpuPct: c.cpuPct,
        otherUserPct: otherUserPct(host, sw.userPct, c.userPct),
        stealPct: stealPct(host),
        complete: delivery.complete && delivery.otherFrames === 0 && delivery.protocolErrors === 0 && s.openAfter === cfg.members,
        quiet,
        client: c,
        server: s,
        delivery,
        host
      }
    }
    const { runs, warmUp } = await ctx.rounds('fanout', runOnce, (r) =>
      `${k(r.deliveriesPerSec)} deliveries/s, ${fmt(r.serverCpuUsPerDelivery, 3)} us CPU/delivery, server CPU ${fmt(r.serverCpuPct)}%, ` +
      `client CPU ${fmt(r.clientCpuPct)}%, ${r.delivery.complete ? 'all delivered' : `delivered ${r.delivery.received}/${r.delivery.expected}`}`)
    const keys = ['deliveriesPerSec', 'serverCpuUsPerDelivery', 'serverUserUsPerDelivery', 'serverCpuPct', 'clientCpuPct']
    return {
      title: `room fan-out: ${cfg.members} members in one room, ${cfg.payload}-byte text messages published by the server, ` +
        `${Math.max(1, Math.round(cfg.burst / cfg.members))} per event-loop turn`,
      params: cfg,
      variants: summarize(runs, keys, opt.variants),
      noise: noiseOf(runs, ctx.resetQuiet()),
      runs,
      warmUp: warmUp.map((r) => ({ variant: r.variant, complete: r.complete, deliveriesPerSec: r.deliveriesPerSec }))
    }
  } finally {
    await Promise.all([load.stop(), ...Object.values(servers).map((s) => ctx.stopServer(s))])
  }
}

/**
 * (c) idle memory: a fresh server per run; after GC, its baseline; then `conns` idle connections to
 * the echo endpoint, GC again: heap and RSS per connection. Then all close, and GC once more (what is
 * left is reported as the residue, a leak check).
 */
async function memory (ctx) {
  const { opt } = ctx
  const cfg = opt.memory
  const load = ctx.startLoad()
  try {
    const runOnce = async (variant) => {
      const server = await ctx.startServer('memory', variant, 32)
      try {
        const base = await server.request('memory', {}, 10_000)
        const t = Date.now()
        await load.request('connect', {
          group: 'idle', protocol: protocolOf(variant), port: server.port, path: '/echo', count: cfg.conns, concurrency: 100
        }, 120_000)
        const connectSeconds = (Date.now() - t) / 1000
        const info = await waitInfo(server, (i) => i.open === cfg.conns)
        const full = await server.request('memory', {}, 10_000)
        await load.request('close', { group: 'idle' })
        await waitInfo(server, (i) => i.open === 0)
        const after = await server.request('memory', {}, 10_000)
        const per = (key, m = full) => (m[key] - base[key]) / cfg.conns
        return {
          heapPerConn: per('heapUsed'),
          rssPerConn: per('rss'),
          externalPerConn: per('external'),
          arrayBuffersPerConn: per('arrayBuffers'),
          residualHeapPerConn: per('heapUsed', after),
          connectSeconds,
          complete: info.open === cfg.conns && full.open === cfg.conns && after.open === 0,
          base,
          full,
          after
        }
      } finally {
        await load.request('close', { group: 'idle' }).catch(() => {})
        await ctx.stopServer(server)
      }
    }
    // no warm-up pass: every run is a fresh process, and memory does not need a warm JIT
    const saved = opt.warmPass
    opt.warmPass = false
    let result
    try {
      result = await ctx.rounds('memory', runOnce, (r) =>
        `heap ${fmt(r.heapPerConn)} B/conn, RSS ${fmt(r.rssPerConn)} B/conn, external ${fmt(r.externalPerConn)} B/conn, ` +
        `heap left after close ${fmt(r.residualHeapPerConn)} B/conn, ${cfg.conns} connected in ${fmt(r.connectSeconds, 1)} s`)
    } finally {
      opt.warmPass = saved
    }
    const keys = ['heapPerConn', 'rssPerConn', 'externalPerConn', 'arrayBuffersPerConn', 'residualHeapPerConn']
    return {
      title: `idle memory: ${cfg.conns} idle connections to the echo endpoint, after GC, minus the baseline before connecting`,
      params: cfg,
      variants: summarize(result.runs, keys, opt.variants),
      runs: result.runs
    }
  } finally {
    await load.stop()
  }
}

/**
 * (d) connection setup: `concurrency` clients at a time connect, finish the handshake (through the
 * Fastify hooks, with a no-op onRequest hook, for the Fastify variants; up to the namespace connect for
 * Socket.IO) and close the connection (close frame and FIN); connects/s and server CPU per connect.
 */
async function setup (ctx) {
  const { opt } = ctx
  const cfg = opt.setup
  const load = ctx.startLoad()
  let servers = {}
  try {
    servers = await startAll(ctx, 'setup', 32)
    ctx.resetQuiet()
    const runOnce = async (variant, warm) => {
      const quiet = warm ? null : await ctx.quiet()
      const server = servers[variant]
      const before = await server.request('info')
      const w = windowOf(opt, warm)
      const t = times(w.warmup, w.duration)
      const budget = w.warmup + w.duration + 30_000
      const [c, s, host] = await Promise.all([
        load.request('setup', {
          port: server.port, path: '/echo', protocol: protocolOf(variant), concurrency: cfg.concurrency, start: t.start, t0: t.t0, t1: t.t1
        }, budget),
        server.request('cpuWindow', { t0: t.t0, t1: t.t1 }, budget),
        machineWindow(t.t0, t.t1)
      ])
      const after = await waitInfo(server, (i) => i.open === 0 && i.handled - before.handled >= c.completed)
      const connectsPerSec = c.connects / c.seconds
      const serverCpuUs = s.cpuUserUs + s.cpuSystemUs
      return {
        connectsPerSec,
        serverCpuUsPerConnect: (serverCpuUs / s.seconds) / connectsPerSec,
        p50Ms: c.latency.p50Ms,
        p99Ms: c.latency.p99Ms,
        serverCpuPct: serverCpuUs / 1e4 / s.seconds,
        clientCpuPct: c.cpuPct,
        otherUserPct: otherUserPct(host, s.userPct, c.userPct),
        stealPct: stealPct(host),
        serverHandled: after.handled - before.handled,
        complete: c.failed === 0 && c.connects > 0 && after.open === 0 && after.handled - before.handled === c.completed,
        quiet,
        client: c,
        server: s,
        host
      }
    }
    const { runs, warmUp } = await ctx.rounds('setup', runOnce, (r) =>
      `${k(r.connectsPerSec)} connects/s, ${fmt(r.serverCpuUsPerConnect, 1)} us CPU/connect, p50 ${fmt(r.p50Ms, 2)} ms, ` +
      `server CPU ${fmt(r.serverCpuPct)}%, client CPU ${fmt(r.clientCpuPct)}%, ${r.client.failed} failed`)
    const keys = ['connectsPerSec', 'serverCpuUsPerConnect', 'p50Ms', 'p99Ms', 'serverCpuPct', 'clientCpuPct']
    return {
      title: `connection setup: ${cfg.concurrency} concurrent clients connect, complete the handshake and close, over and over`,
      params: cfg,
      variants: summarize(runs, keys, opt.variants),
      noise: noiseOf(runs, ctx.resetQuiet()),
      runs,
      warmUp: warmUp.map((r) => ({ variant: r.variant, complete: r.complete, connectsPerSec: r.connectsPerSec }))
    }
  } finally {
    await Promise.all([load.stop(), ...Object.values(servers).map((s) => ctx.stopServer(s))])
  }
}

const SCENARIO_RUNNERS = { echo, rpc, fanout, memory, setup }

/** Runs bench/cross-node.js (the Redis issue's scenario, written apart) when it exists. */
async function crossNode (ctx) {
  const file = fileURLToPath(new URL('./cross-node.js', import.meta.url))
  if (!ctx.opt.crossNode) return { ran: false, why: 'disabled by --no-cross-node' }
  if (!existsSync(file)) return { ran: false, why: 'bench/cross-node.js does not exist (yet)' }
  process.stderr.write('\nbench: running bench/cross-node.js\n')
  const result = await ctx.children.runDetached(file, ctx.opt.mode === 'quick' ? ['--quick'] : [], ctx.opt.crossNodeTimeoutMs)
  return { ran: true, ...result }
}

export async function main (argv) {
  const opt = options(argv)
  const started = Date.now()
  const source = gitState()
  const distAtStart = distHash()
  const ctx = context(opt)
  const results = {
    bench: 'fastify-ws-hub suite',
    date: new Date().toISOString(),
    mode: opt.mode,
    config: opt,
    machine: null,
    heartbeat: 'each library at its default: none for ws and @fastify/websocket, engine.io ping every 25 s (Socket.IO), ' +
      'fastify-ws-hub ping every 30 s (one timer for all connections); the load generator answers pings',
    scenarios: {}
  }
  let failed = null
  try {
    for (const name of opt.scenarios) {
      process.stderr.write(`\nbench: ${name}\n`)
      const t = Date.now()
      results.scenarios[name] = await SCENARIO_RUNNERS[name](ctx)
      results.scenarios[name].seconds = (Date.now() - t) / 1000
    }
    results.crossNode = await crossNode(ctx)
  } catch (err) {
    failed = err
  } finally {
    ctx.children.close()
  }
  results.machine = {
    ...machineInfo({ pinning: ctx.pinning, priority: ctx.priority, priorityValue: opt.priority }),
    ...ctx.placement,
    versions: {
      ws: versionOf('ws'),
      fastify: versionOf('fastify'),
      '@fastify/websocket': versionOf('@fastify/websocket'),
      'socket.io': versionOf('socket.io'),
      'engine.io': versionOf('engine.io'),
      'ws (of engine.io)': versionOf('engine.io/node_modules/ws') ?? versionOf('ws')
    },
    source,
    dist: { atStart: distAtStart, serverStartsByHash: Object.fromEntries(ctx.hashes), changedDuringRun: ctx.hashes.size > 1 || (ctx.hashes.size === 1 && !ctx.hashes.has(distAtStart)) }
  }
  results.targets = evaluateTargets(results)
  results.elapsedSeconds = (Date.now() - started) / 1000
  if (failed !== null) results.error = failed.stack ?? String(failed)

  mkdirSync(dirname(opt.out), { recursive: true })
  writeFileSync(opt.out, JSON.stringify(results, null, 2) + '\n')

  const lines = ['', `fastify-ws-hub benchmark suite: ${describeRun(results)}`]
  for (const [name, s] of Object.entries(results.scenarios)) lines.push(`- ${name}: ${s.title}`)
  lines.push('',
    'cells: ratio of the medians to bare ws, then the median (min-max over the rounds); higher is better for rates, lower for latency, CPU and memory;',
    'ws and "ws, framed once" run the same echo and handshake code (their difference there is noise); they differ in fan-out only;',
    'server CPU = the server process\'s user+system time over the measured window (process.cpuUsage) / messages, deliveries or connects in it',
    '', ratioTable(results, { minMax: true }), '', 'targets (ratios of medians, this run):')
  for (const t of results.targets) {
    const paired = t.paired === null ? '' : `; within each round ${t.paired.min.toFixed(2)}-${t.paired.max.toFixed(2)}x (median ${t.paired.median.toFixed(2)}x)`
    lines.push(`  ${t.status.padEnd(4)} ${t.text}: ${t.ratio === null ? 'not measured' : `${t.ratio.toFixed(2)}x${paired}`}`)
  }
  lines.push('', 'noise (during the measured windows, % of one CPU: user CPU of other processes; steal time taken by the hypervisor):', ...noiseLines(results))
  const incomplete = Object.entries(results.scenarios).flatMap(([name, s]) =>
    Object.entries(s.variants).filter(([, v]) => !v.complete).map(([variant]) => `${name}/${variant}`))
  if (incomplete.length > 0) lines.push('', `INCOMPLETE (a check failed; see "complete" in the runs): ${incomplete.join(', ')}`)
  if (results.machine.dist.changedDuringRun) lines.push('', `WARNING: dist/ changed during the run (another session rebuilt it): ${JSON.stringify(results.machine.dist)}`)
  if (results.crossNode !== undefined) {
    lines.push('', results.crossNode.ran
      ? `cross-node (bench/cross-node.js): exit ${results.crossNode.exitCode}${results.crossNode.timedOut ? ' (timed out)' : ''} in ${results.crossNode.seconds.toFixed(0)} s`
      : `cross-node: not run (${results.crossNode.why})`)
  }
  lines.push('', `${results.elapsedSeconds.toFixed(0)} s in all; results in ${opt.out}`)
  process.stdout.write(lines.join('\n') + '\n')

  if (failed !== null) throw failed
  const crossFailed = results.crossNode?.ran === true && results.crossNode.exitCode !== 0
  return incomplete.length === 0 && !crossFailed ? 0 : 1
}
