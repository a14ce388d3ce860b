// Helpers of the flood tests: a flooding (or only non-reading) peer in another process, and the heap
// the server holds meanwhile.
import { spawn } from 'node:child_process'
import { gc, until } from './helpers.js'

const FLOODER = new URL('./fixtures/flooder.js', import.meta.url).pathname

/** Starts test/fixtures/flooder.js against `path` of `app`; killed after the test. */
export function flood (t, app, path, clients = 1, quiet = '') {
  const child = spawn(process.execPath, [FLOODER, String(app.server.address().port), path, String(clients), quiet], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => child.kill('SIGKILL'))
  return child
}

// The most heap the server holds (after a full collection, sampled every 200 ms) while `done()` is
// false, over what it held before.
export async function heapGrowth (done, ms) {
  gc()
  const base = process.memoryUsage().heapUsed
  let peak = base
  let sampled = 0
  await until(() => {
    if (Date.now() - sampled >= 200) {
      gc()
      peak = Math.max(peak, process.memoryUsage().heapUsed)
      sampled = Date.now()
    }
    return done()
  }, ms, 'the flood to end')
  return peak - base
}

/** A mebibyte. */
export const MB = 1024 * 1024
