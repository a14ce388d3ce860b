// A tiny request/response layer over the Node IPC channel between a bench orchestrator and its children.

/** Monotonic time in ns (CLOCK_MONOTONIC, the same clock in every process of the machine). */
export const now = () => process.hrtime.bigint()

/**
 * Parent side: `request(cmd, args, timeoutMs)` sends `{ id, cmd, args }` to the child and resolves
 * with its answer, or rejects on an error answer, on the timeout, or when the child exits.
 */
export function client (child, name) {
  let nextId = 1
  const pending = new Map()
  function failAll (err) {
    for (const { reject, timer } of pending.values()) {
      clearTimeout(timer)
      reject(err)
    }
    pending.clear()
  }
  child.on('message', (msg) => {
    const entry = pending.get(msg.id)
    if (entry === undefined) return
    pending.delete(msg.id)
    clearTimeout(entry.timer)
    if (msg.ok) entry.resolve(msg.result)
    else entry.reject(new Error(`${name}: ${msg.error}`))
  })
  child.on('exit', (code, signal) => failAll(new Error(`${name} exited (code ${code}, signal ${signal})`)))
  child.on('error', (err) => failAll(err))
  return function request (cmd, args = {}, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      if (!child.connected) {
        reject(new Error(`${name} is not connected`))
        return
      }
      const id = nextId++
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`${name}: '${cmd}' timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      pending.set(id, { resolve, reject, timer })
      child.send({ id, cmd, args })
    })
  }
}

/**
 * Child side: answers requests with `handlers[cmd](args)`. The child exits when the parent goes away
 * (IPC disconnect) and, whatever happens, after `maxLifetimeMs`.
 */
export function serve (handlers, maxLifetimeMs) {
  if (typeof process.send !== 'function') throw new Error('this is a child process of a benchmark: run bench/run.js (npm run bench) or bench/fanout.js')
  process.on('message', async ({ id, cmd, args }) => {
    try {
      const handler = handlers[cmd]
      if (handler === undefined) throw new Error(`unknown command ${cmd}`)
      const result = await handler(args)
      if (process.connected) process.send({ id, ok: true, result })
    } catch (err) {
      if (process.connected) process.send({ id, ok: false, error: err.stack ?? String(err) })
    }
  })
  process.on('disconnect', () => process.exit(0))
  setTimeout(() => {
    process.stderr.write(`bench child ${process.pid}: lifetime of ${maxLifetimeMs} ms exceeded, exiting\n`)
    process.exit(3)
  }, maxLifetimeMs).unref()
}
