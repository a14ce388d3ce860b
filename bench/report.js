// Tables and targets from the suite's results (bench/results/bench.json): the ratio table printed by
// `npm run bench`, the README block written by readme-table.js, and the targets.

export const VARIANTS = ['ws', 'ws-frame-once', 'fastify-ws', 'socketio', 'hub-fn', 'hub-class']

/** The variants of the request/response scenario: bare ws echo and Socket.IO's acknowledgements beside the hub's methods. */
export const RPC_VARIANTS = ['ws', 'socketio', 'hub-rpc']

/** Every variant, in the table's column order. */
export const ALL_VARIANTS = [...VARIANTS, 'hub-rpc']

export const LABELS = {
  ws: 'bare ws',
  'ws-frame-once': 'ws, framed once',
  'fastify-ws': '@fastify/websocket',
  socketio: 'Socket.IO 4',
  'hub-fn': 'fastify-ws-hub (function)',
  'hub-class': 'fastify-ws-hub (class)',
  'hub-rpc': 'fastify-ws-hub (JSON-RPC method)'
}

export const BASE = 'ws'

const rate = (x) => x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(0)}k` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0)
const us = (x) => x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
const ms = (x) => x >= 10 ? x.toFixed(1) : x.toFixed(2)
const bytes = (x) => Math.abs(x) >= 1024 ? `${(x / 1024).toFixed(1)} KB` : `${x.toFixed(0)} B`

/** The table's rows: one figure of one scenario each. `better` says which way is better. */
export const ROWS = [
  { scenario: 'echo', key: 'msgsPerSec', label: 'echo: msgs/s', fmt: rate, better: 'higher' },
  { scenario: 'echo', key: 'p50Ms', label: 'echo: p50 round trip (ms)', fmt: ms, better: 'lower' },
  { scenario: 'echo', key: 'p99Ms', label: 'echo: p99 round trip (ms)', fmt: ms, better: 'lower' },
  { scenario: 'echo', key: 'serverCpuUsPerMsg', label: 'echo: server CPU us/msg', fmt: us, better: 'lower' },
  { scenario: 'rpc', key: 'msgsPerSec', label: 'request/response: round trips/s', fmt: rate, better: 'higher' },
  { scenario: 'rpc', key: 'p50Ms', label: 'request/response: p50 round trip (ms)', fmt: ms, better: 'lower' },
  { scenario: 'rpc', key: 'serverCpuUsPerMsg', label: 'request/response: server CPU us/round trip', fmt: us, better: 'lower' },
  { scenario: 'fanout', key: 'deliveriesPerSec', label: 'fan-out: deliveries/s', fmt: rate, better: 'higher' },
  { scenario: 'fanout', key: 'serverCpuUsPerDelivery', label: 'fan-out: server CPU us/delivery', fmt: us, better: 'lower' },
  { scenario: 'memory', key: 'heapPerConn', label: 'idle: heap/conn', fmt: bytes, better: 'lower' },
  { scenario: 'memory', key: 'rssPerConn', label: 'idle: RSS/conn', fmt: bytes, better: 'lower' },
  { scenario: 'setup', key: 'connectsPerSec', label: 'setup: connects/s', fmt: rate, better: 'higher' },
  { scenario: 'setup', key: 'serverCpuUsPerConnect', label: 'setup: server CPU us/connect', fmt: us, better: 'lower' }
]

/** The targets, each a ratio of medians of one run: variant / base `op` threshold. */
export const TARGETS = ['hub-fn', 'hub-class'].flatMap((hub) => [
  { scenario: 'echo', key: 'msgsPerSec', variant: hub, base: 'ws', op: '>=', threshold: 0.95 },
  { scenario: 'echo', key: 'serverCpuUsPerMsg', variant: hub, base: 'ws', op: '<=', threshold: 1.1 },
  { scenario: 'fanout', key: 'deliveriesPerSec', variant: hub, base: 'ws-frame-once', op: '>=', threshold: 1.0 },
  { scenario: 'fanout', key: 'serverCpuUsPerDelivery', variant: hub, base: 'ws-frame-once', op: '<=', threshold: 0.8 },
  { scenario: 'fanout', key: 'deliveriesPerSec', variant: hub, base: 'socketio', op: '>=', threshold: 1.2 },
  { scenario: 'memory', key: 'heapPerConn', variant: hub, base: 'fastify-ws', op: '<=', threshold: 1.15 },
  { scenario: 'memory', key: 'heapPerConn', variant: hub, base: 'socketio', op: '<=', threshold: 0.55 },
  { scenario: 'setup', key: 'connectsPerSec', variant: hub, base: 'fastify-ws', op: '>=', threshold: 0.9 }
]).concat([
  // a validated JSON-RPC call and its response against an acknowledged Socket.IO event and a bare ws echo
  { scenario: 'rpc', key: 'msgsPerSec', variant: 'hub-rpc', base: 'socketio', op: '>=', threshold: 2.0 },
  { scenario: 'rpc', key: 'msgsPerSec', variant: 'hub-rpc', base: 'ws', op: '>=', threshold: 0.7 }
])

const median = (results, scenario, variant, key) => results.scenarios?.[scenario]?.variants?.[variant]?.[key]?.median

/** The ratio of `variant` to `base` taken within each round (runs seconds apart): median, min, max; or null. */
export function pairedRatio (results, scenario, variant, base, key) {
  const runs = results.scenarios?.[scenario]?.runs ?? []
  const ratios = []
  for (const r of runs) {
    if (r.variant !== variant) continue
    const b = runs.find((x) => x.round === r.round && x.variant === base)
    if (b !== undefined && Number.isFinite(r[key]) && Number.isFinite(b[key]) && b[key] !== 0) ratios.push(r[key] / b[key])
  }
  if (ratios.length < 2) return null
  ratios.sort((x, y) => x - y)
  const mid = ratios.length >> 1
  return { median: ratios.length % 2 ? ratios[mid] : (ratios[mid - 1] + ratios[mid]) / 2, min: ratios[0], max: ratios[ratios.length - 1] }
}

/** Each target with its measured ratio and PASS / MISS (or n/a when not measured). */
export function evaluateTargets (results) {
  return TARGETS.map((t) => {
    const row = ROWS.find((r) => r.scenario === t.scenario && r.key === t.key)
    const a = median(results, t.scenario, t.variant, t.key)
    const b = median(results, t.scenario, t.base, t.key)
    const ratio = Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : null
    const pass = ratio === null ? null : t.op === '>=' ? ratio >= t.threshold : ratio <= t.threshold
    return {
      ...t,
      paired: pairedRatio(results, t.scenario, t.variant, t.base, t.key),
      text: `${row.label}: ${LABELS[t.variant]} ${t.op} ${t.threshold}x ${LABELS[t.base]}`,
      value: a ?? null,
      baseValue: b ?? null,
      ratio,
      status: pass === null ? 'n/a' : pass ? 'PASS' : 'MISS'
    }
  })
}

function cell (results, row, variant, { minMax }) {
  const v = results.scenarios?.[row.scenario]?.variants?.[variant]?.[row.key]
  if (v === undefined || !Number.isFinite(v.median)) return '-'
  const base = median(results, row.scenario, BASE, row.key)
  const ratio = Number.isFinite(base) && base !== 0 ? `${(v.median / base).toFixed(2)}x ` : ''
  if (!minMax) return `${ratio}(${row.fmt(v.median)})`
  const range = v.n > 1 ? ` (${row.fmt(v.min)}-${row.fmt(v.max)})` : ''
  return `${ratio}${row.fmt(v.median)}${range}`
}

/**
 * The ratio table: rows are the scenarios' figures, columns the variants; a cell is the ratio of the
 * medians to bare ws, then the median (and with `minMax`, the min-max over the rounds).
 */
export function ratioTable (results, { minMax = false } = {}) {
  const variants = ALL_VARIANTS.filter((v) => Object.values(results.scenarios ?? {}).some((s) => s.variants?.[v] !== undefined))
  const rows = ROWS.filter((r) => results.scenarios?.[r.scenario] !== undefined)
  return [
    `| | ${variants.map((v) => LABELS[v]).join(' | ')} |`,
    `|---|${variants.map(() => '---:').join('|')}|`,
    ...rows.map((r) => `| ${r.label} | ${variants.map((v) => cell(results, r, v, { minMax })).join(' | ')} |`)
  ].join('\n')
}

/** One line on the machine, the code measured and the method. */
export function describeRun (results) {
  const m = results.machine
  const src = m.source === null
    ? ''
    : `, fastify-ws-hub ${m.source.commit}${m.source.libChanges.length > 0 ? ` + uncommitted ${m.source.libChanges.map((l) => l.replace(/^\S+\s+/, '')).join(', ')}` : ''}`
  return `${m.cpus} x ${m.cpu}, Node ${m.node}, ${results.date.slice(0, 10)}${src}; ` +
    (m.pinning ? 'server pinned to CPU 0, load generator to CPU 1' : `NOT pinned (${m.pinningNote})`) +
    `; ${results.config.rounds} interleaved round${results.config.rounds === 1 ? '' : 's'}` +
    (results.mode === 'quick' ? ' (a --quick smoke run: small sizes, short windows)' : '')
}

/** How noisy the machine was, per scenario (other processes' CPU during the measured windows). */
export function noiseLines (results) {
  return Object.entries(results.scenarios ?? {}).map(([name, s]) => {
    const n = s.noise
    if (n === undefined) return `- ${name}: not a timed scenario`
    if (n.otherUserPct === null) return `- ${name}: no CPU accounting (no /proc/stat)`
    const steal = n.stealPct === null || n.stealPct === undefined ? '' : `, steal ${n.stealPct.median.toFixed(0)}% (max ${n.stealPct.max.toFixed(0)}%)`
    return `- ${name}: other processes ${n.otherUserPct.median.toFixed(0)}% (median; max ${n.otherUserPct.max.toFixed(0)}%)${steal}; ` +
      `${n.noisyRuns} of ${n.runs} runs noisy (other processes over ${n.thresholdPct}% or steal over ${n.stealThresholdPct ?? '?'}%)` +
      `${n.quietWaitMs > 0 ? `; waited ${(n.quietWaitMs / 1000).toFixed(1)} s for quiet` : ''}`
  })
}

/** The block between the README markers. */
export function readmeBlock (results) {
  return [
    `Measured by \`npm run bench\` on ${describeRun(results)}. A cell is the ratio to bare ws of the medians, with the median in ` +
      'parentheses; for latency, CPU and memory lower is better. Server CPU is the server process\'s own time per message ' +
      '(process.cpuUsage), which stays honest when the load generator is the bottleneck.',
    '',
    ratioTable(results),
    '',
    ...Object.values(results.scenarios ?? {}).map((s) => `- ${s.title}`),
    ''
  ].join('\n')
}
