// What every benchmark orchestrator of bench/ shares (fanout.js and the suite, run.js): pinning and
// priority probes, the machine's CPU times to tell how noisy a run was, the source state measured,
// medians, and children that are pinned, bounded in time and always killed.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { now } from './ipc.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

// ws uses bufferutil and utf-8-validate when they are installed; a dev dependency (rpc-websockets)
// brings them. Every peer measured here runs on ws, so all of them run without, as a user's install
// without those optional packages does; the children inherit this.
process.env.WS_NO_BUFFER_UTIL ??= '1'
process.env.WS_NO_UTF_8_VALIDATE ??= '1'

// a run is marked noisy when other processes used more than NOISY_PCT of one CPU during it, or the
// hypervisor took more than NOISY_STEAL_PCT of one CPU from this VM (steal time: it also inflates the
// CPU time a process is charged); before a run, the orchestrator waits a little for the machine to be
// below QUIET_PCT
export const QUIET_PCT = 20
export const NOISY_PCT = 25
export const NOISY_STEAL_PCT = 10

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** An integer option in [min, max], or a thrown error naming it. */
export function int (name, value, min, max) {
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}]`)
  return n
}

/** Whether `taskset -c 0` and `taskset -c 1` work here (util-linux, two CPUs allowed). */
export function probePinning () {
  if (os.availableParallelism() < 2) return { ok: false, why: `only ${os.availableParallelism()} CPU available` }
  for (const cpu of ['0', '1']) {
    const r = spawnSync('taskset', ['-c', cpu, 'true'], { stdio: 'ignore', timeout: 5000 })
    if (r.error !== undefined) return { ok: false, why: `taskset not usable (${r.error.code ?? r.error.message})` }
    if (r.status !== 0) return { ok: false, why: `taskset -c ${cpu} failed (exit ${r.status})` }
  }
  return { ok: true, why: 'taskset -c 0 (server), taskset -c 1 (load generator)' }
}

/** Whether `nice -n <priority>` works here (a negative one needs root or CAP_SYS_NICE). */
export function probePriority (priority) {
  const r = spawnSync('nice', ['-n', String(priority), 'true'], { encoding: 'utf8', timeout: 5000 })
  if (r.error !== undefined) return { ok: false, why: `nice not usable (${r.error.code ?? r.error.message})` }
  if (r.status !== 0 || r.stderr.trim() !== '') return { ok: false, why: `nice -n ${priority}: ${r.stderr.trim() || `exit ${r.status}`}` }
  return { ok: true, why: `servers and load generator run under nice -n ${priority}` }
}

export function cpusAllowed (pid) {
  try {
    return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?'
  } catch {
    return '?'
  }
}

export function niceOf (pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[16])
  } catch {
    return null
  }
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 })
  return Number(r.stdout) > 0 ? Number(r.stdout) : 100
})()

/** The machine's CPU times by CPU ('cpu' is the sum), in seconds, from /proc/stat; null elsewhere. */
export function cpuTimes () {
  try {
    const times = {}
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^(cpu\d*)\s+(.*)$/.exec(line)
      if (m === null) continue
      const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].trim().split(/\s+/).map((x) => Number(x) / CLK_TCK)
      times[m[1]] = { user: user + nice, system, softirq: irq + softirq, steal, idle: idle + iowait }
    }
    return times
  } catch {
    return null
  }
}

/**
 * What the whole machine did over [t0, t1] (absolute monotonic ns): per CPU, the % of user, system,
 * softirq, steal and idle time, and this process's own CPU, to tell how much other processes took.
 */
export async function machineWindow (t0, t1) {
  const at = async (t) => {
    const wait = Number(BigInt(t) - now()) / 1e6
    if (wait > 0) await sleep(wait)
    for (let i = 0; i < 5 && now() < BigInt(t); i++) await sleep(1)
    return { ns: now(), cpu: cpuTimes(), self: process.cpuUsage() }
  }
  const a = await at(t0)
  const b = await at(t1)
  const seconds = Number(b.ns - a.ns) / 1e9
  const self = process.cpuUsage(a.self)
  const result = { seconds, orchestratorUserPct: self.user / 1e4 / seconds, cpus: null }
  if (a.cpu !== null && b.cpu !== null) {
    result.cpus = {}
    for (const name of Object.keys(b.cpu)) {
      const pct = {}
      for (const key of Object.keys(b.cpu[name])) pct[key] = (b.cpu[name][key] - a.cpu[name][key]) * 100 / seconds
      result.cpus[name] = pct
    }
  }
  return result
}

/**
 * User CPU (% of one CPU) that neither the measured processes (`userPcts`) nor this process used over
 * a machine window: other processes. Null without /proc/stat.
 */
export function otherUserPct (host, ...userPcts) {
  if (host.cpus === null) return null
  return userPcts.reduce((left, pct) => left - pct, host.cpus.cpu.user - host.orchestratorUserPct)
}

/** Steal time over a machine window, % of one CPU, all CPUs together; null without /proc/stat. */
export function stealPct (host) {
  return host.cpus === null ? null : host.cpus.cpu.steal
}

/**
 * Other processes share this machine: before a run, wait (at most `maxMs`) until the machine has been
 * quiet for 200 ms (all CPU time, as % of one CPU, under `thresholdPct`; the bench itself is idle then).
 */
export async function waitQuiet (maxMs, thresholdPct = QUIET_PCT) {
  const started = Date.now()
  while (true) {
    const a = cpuTimes()
    await sleep(200)
    const b = cpuTimes()
    if (a === null || b === null) return { waitedMs: 0, busyPct: null }
    const busyPct = ['user', 'system', 'softirq', 'steal'].reduce((sum, key) => sum + b.cpu[key] - a.cpu[key], 0) * 100 / 0.2
    const waitedMs = Date.now() - started
    if (busyPct < thresholdPct || waitedMs >= maxMs) return { waitedMs, busyPct }
  }
}

/** The commit measured, and the files of lib/ that differ from it (dist/ is built from the working tree). */
export function gitState () {
  const git = (...args) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 5000 })
  const head = git('rev-parse', '--short', 'HEAD')
  if (head.status !== 0) return null
  const dirty = git('status', '--porcelain', '--', 'lib').stdout.split('\n').filter(Boolean).map((line) => line.trim())
  return { commit: head.stdout.trim(), libChanges: dirty }
}

/**
 * A short hash of the built package (dist/lib/*.js). Other sessions may rebuild dist/ while a bench
 * runs; comparing this before each server start tells whether every server ran the same code.
 */
export function distHash () {
  const dir = new URL('../dist/lib/', import.meta.url)
  const hash = createHash('sha256')
  try {
    for (const name of readdirSync(dir, { recursive: true }).filter((n) => n.endsWith('.js')).sort()) {
      hash.update(name).update(readFileSync(new URL(name, dir)))
    }
  } catch {
    return null
  }
  return hash.digest('hex').slice(0, 12)
}

export function versionOf (pkg, from = '..') {
  try {
    return JSON.parse(readFileSync(new URL(`${from}/node_modules/${pkg}/package.json`, import.meta.url))).version
  } catch {
    return null
  }
}

/** Median, min and max of a list of numbers. */
export function stats (xs) {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 }
  const mid = s.length >> 1
  return { median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, min: s[0], max: s[s.length - 1], n: s.length }
}

/**
 * The children of one orchestrator: spawned pinned (`taskset -c cpu`, when `pinning.ok`) and under
 * `nice` (when `priority.ok`), with an IPC channel, a lifetime limit passed down to them
 * (BENCH_MAX_LIFETIME_MS, see ipc.js `serve`), and killed with SIGKILL when the orchestrator exits, is
 * interrupted (SIGINT, SIGTERM) or its watchdog fires. `close()` removes the handlers again.
 */
export function childGroup ({ pinning, priority, priorityValue = 0, budgetMs, name = 'bench' }) {
  const children = new Set()
  const killAll = () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      // a detached child leads its own process group: end the group (its own children too)
      try {
        if (child.benchDetached === true) process.kill(-child.pid, 'SIGKILL')
        else child.kill('SIGKILL')
      } catch {}
    }
  }
  const onSignal = (signal) => {
    killAll()
    process.exit(signal === 'SIGINT' ? 130 : 143)
  }
  process.on('exit', killAll)
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const watchdog = setTimeout(() => {
    process.stderr.write(`${name}: watchdog: over ${budgetMs} ms, killing the children\n`)
    killAll()
    process.exit(2)
  }, budgetMs)
  watchdog.unref()

  /** Starts `file` (relative to bench/) with `node --expose-gc [nodeArgs] file`, pinned to `cpu`. */
  function spawnChild (file, cpu, nodeArgs = [], lifetimeMs = budgetMs + 10_000) {
    const script = fileURLToPath(new URL(file, import.meta.url))
    const command = [
      ...(priority.ok ? ['nice', '-n', String(priorityValue)] : []),
      ...(pinning.ok ? ['taskset', '-c', String(cpu)] : []),
      process.execPath, '--expose-gc', ...nodeArgs, script
    ]
    const child = spawn(command[0], command.slice(1), {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_MAX_LIFETIME_MS: String(lifetimeMs) }
    })
    children.add(child)
    child.once('exit', () => children.delete(child))
    return child
  }

  /** Asks a child to stop (its 'stop' command), then kills it if it has not exited within `graceMs`. */
  async function stopChild (child, request, graceMs = 3000) {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    await request('stop', {}, 3000).catch(() => {})
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }

  /**
   * Runs `node file args` (inherited stdio, its own process group) and resolves with how it ended.
   * After `timeoutMs` its group gets SIGTERM, and SIGKILL 5 s later; when it has exited, whatever is
   * left in its group gets SIGKILL.
   */
  function runDetached (file, args, timeoutMs) {
    const started = Date.now()
    const child = spawn(process.execPath, [file, ...args], { stdio: 'inherit', detached: true })
    child.benchDetached = true
    children.add(child)
    return new Promise((resolve) => {
      let timedOut = false
      let killTimer
      const timer = setTimeout(() => {
        timedOut = true
        try { process.kill(-child.pid, 'SIGTERM') } catch {}
        killTimer = setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL') } catch {} }, 5000)
      }, timeoutMs)
      const done = (exitCode, signal, error) => {
        clearTimeout(timer)
        clearTimeout(killTimer)
        children.delete(child)
        // what it started and left behind (its process group) goes too
        try { process.kill(-child.pid, 'SIGKILL') } catch {}
        resolve({ exitCode, signal, timedOut, error, seconds: (Date.now() - started) / 1000 })
      }
      child.once('error', (err) => done(null, null, err.message))
      child.once('exit', (code, signal) => done(code, signal))
    })
  }

  function close () {
    killAll()
    clearTimeout(watchdog)
    process.removeListener('exit', killAll)
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
  }

  return { spawnChild, stopChild, runDetached, killAll, close, children }
}

/** The machine as the JSON records it. */
export function machineInfo ({ pinning, priority, priorityValue }) {
  return {
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? '?',
    cpus: os.availableParallelism(),
    memoryMB: Math.round(os.totalmem() / 2 ** 20),
    pinning: pinning.ok,
    pinningNote: pinning.why,
    priority: priority.ok ? priorityValue : 0,
    priorityNote: priority.why
  }
}
