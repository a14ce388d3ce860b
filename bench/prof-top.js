// The top self-time functions of a V8 CPU profile (`--prof-server DIR` of bench/run.js or fanout.js).
//
//   node bench/prof-top.js FILE.cpuprofile [--top 25] [--filter dist/lib]
//
// Self time is attributed to a function's own code (not its callees); `(garbage collector)`, `(program)`
// and `(idle)` are V8's own entries. Lines are 1-based, in the file the profile names (dist/lib/*.js
// for fastify-ws-hub: the compiled JavaScript).
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export function topSelf (profile, { top = 25, filter } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map()
  const dt = profile.timeDeltas
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i])
    const us = dt[i] ?? 0
    total += us
    const f = node.callFrame
    const url = f.url.startsWith('file://') ? relative(ROOT, fileURLToPath(f.url)) : f.url
    const key = `${f.functionName || '(anonymous)'}\t${url}${url === '' ? '' : `:${f.lineNumber + 1}`}`
    self.set(key, (self.get(key) ?? 0) + us)
  }
  const idle = [...self].filter(([k]) => k.startsWith('(idle)')).reduce((s, [, v]) => s + v, 0)
  const busy = total - idle
  const rows = [...self]
    .filter(([k]) => !k.startsWith('(idle)') && (filter === undefined || k.includes(filter)))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => {
      const [fn, where] = k.split('\t')
      return { fn, where, ms: us / 1000, pctOfBusy: us * 100 / busy }
    })
  return { totalMs: total / 1000, busyMs: busy / 1000, rows }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, filter: { type: 'string' } }
  })
  for (const file of positionals) {
    const { busyMs, totalMs, rows } = topSelf(JSON.parse(readFileSync(file, 'utf8')), { top: Number(values.top), filter: values.filter })
    process.stdout.write(`${file}: ${busyMs.toFixed(0)} ms busy of ${totalMs.toFixed(0)} ms sampled\n`)
    for (const r of rows) process.stdout.write(`${r.pctOfBusy.toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(6)} ms  ${r.fn}  ${r.where}\n`)
  }
}
