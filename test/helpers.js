// Shared test helpers: a real Fastify app listening on 127.0.0.1 and real `ws` clients.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Writable } from 'node:stream'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify from 'fastify'
import WebSocket from 'ws'
import wsHub, { Hub, RedisBroker } from '../dist/lib/index.js'
import { kDeliver } from '../dist/lib/symbols.js'

let v8Gc = null

/** A full garbage collection: V8's gc(), exposed for this process on first use. */
export function gc () {
  if (v8Gc === null) {
    setFlagsFromString('--expose-gc')
    v8Gc = runInNewContext('gc')
  }
  v8Gc()
}

/**
 * A log destination that keeps every line, so tests can assert what was logged.
 * @returns {{ stream: Writable, lines: object[] }}
 */
export function logCapture () {
  const lines = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line))
      callback()
    }
  })
  return { stream, lines }
}

/**
 * A logger object (the shape Fastify's loggers have) that keeps every call, to assert what was logged
 * and how often: `lines` holds `{ level, msg, err }`.
 */
export function recordingLog () {
  const lines = []
  const log = {}
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) {
    log[level] = (obj, msg) => lines.push({ level, msg: typeof obj === 'string' ? obj : msg, err: obj?.err })
  }
  log.child = () => log
  return { log, lines }
}

/**
 * A hub driven directly on its own RedisBroker (`redis`: a URL, or `{ cluster }`), stopped after the
 * test, so that a node can have thousands of members. `member()` registers a new member that records
 * the text of what reaches it in `received` (by id).
 */
export async function redisHub (t, redis, { keyPrefix, nodeTtl, requestTimeout } = {}) {
  const { log, lines } = recordingLog()
  const broker = new RedisBroker(redis, { keyPrefix, nodeTtl, requestTimeout, log })
  await broker.connect()
  const hub = new Hub(broker, log, requestTimeout === undefined ? {} : { requestTimeout })
  await hub.start()
  t.after(() => hub.stop())
  const received = new Map()
  const member = () => {
    const added = { id: hub.newId(), [kDeliver]: message => { received.get(added.id).push(message.payload.toString()); return true } }
    received.set(added.id, [])
    hub.registry.add(added)
    return added
  }
  return { hub, broker, received, lines, member }
}

/**
 * Builds an app with the hub registered, lets `setup` declare routes, listens on a free port of
 * 127.0.0.1, and closes the app after the test.
 */
export async function build (t, setup = () => {}, options = {}) {
  const log = logCapture()
  const app = Fastify({ logger: { level: 'debug', stream: log.stream } })
  app.logLines = log.lines
  await app.register(wsHub, options)
  await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  // Clients opened by connect() go first, so that a client that stopped reading does not hold up
  // app.close() for its closeTimeout.
  app.testClients = []
  t.after(() => {
    for (const client of app.testClients) client.ws.terminate()
    return app.close()
  })
  return app
}

/** The ws:// URL of a path on a listening app. */
export function urlOf (app, path) {
  return `ws://127.0.0.1:${app.server.address().port}${path}`
}

/**
 * A `ws` client that keeps every message it receives, so that a test never misses one between awaits.
 */
export class Client {
  constructor (url, options) {
    this.ws = new WebSocket(url, options)
    this.messages = []
    this.waiters = []
    this.closed = new Promise(resolve => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
    })
    this.ws.on('error', () => {})
    this.ws.on('message', (data, isBinary) => {
      const message = isBinary ? data : data.toString()
      const waiter = this.waiters.shift()
      if (waiter) waiter(message)
      else this.messages.push(message)
    })
  }

  /** Resolves on open, rejects with the HTTP status when the handshake is refused. */
  open () {
    return new Promise((resolve, reject) => {
      this.ws.once('open', resolve)
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })))
      this.ws.once('error', reject)
    })
  }

  /** The next message (a string for text, a Buffer for binary); fails after `ms`. */
  next (ms = 2000) {
    if (this.messages.length > 0) return Promise.resolve(this.messages.shift())
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(done), 1)
        reject(new Error(`no message within ${ms} ms`))
      }, ms)
      const done = (message) => {
        clearTimeout(timer)
        resolve(message)
      }
      this.waiters.push(done)
    })
  }

  /** Resolves true when no message arrives within `ms`. */
  async silent (ms = 100) {
    await sleep(ms)
    return this.messages.length === 0
  }

  send (data) {
    this.ws.send(data)
  }

  close (code, reason) {
    this.ws.close(code, reason)
    return this.closed
  }
}

/** Opens a client on `path`; closes it after the test. */
export async function connect (t, app, path, options) {
  const client = new Client(urlOf(app, path), options)
  if (app.testClients) app.testClients.push(client)
  else t.after(() => client.ws.terminate())
  await client.open()
  return client
}

/** Opens a client that is expected to be refused; resolves with the HTTP status it got. */
export async function refusedStatus (app, path, options) {
  const client = new Client(urlOf(app, path), options)
  try {
    await client.open()
  } catch (err) {
    return err.statusCode
  } finally {
    client.ws.terminate()
  }
  throw new Error('the handshake was not refused')
}

/** Resolves after `ms`. */
export function sleep (ms) {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/** Waits until `predicate()` is true, polling; fails after `ms`. */
export async function until (predicate, ms = 2000, what = 'condition') {
  const deadline = Date.now() + ms
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/**
 * A deferred value: `promise` settles when `resolve` is called. Handy to get a connection out of a handler.
 */
export function deferred () {
  let resolve, reject
  const promise = new Promise((_resolve, _reject) => { resolve = _resolve; reject = _reject })
  return { promise, resolve, reject }
}

/** Starts `example/server.js` on a free port; resolves with its base URL. */
export async function startExample (t, env = {}) {
  const child = spawn(process.execPath, [new URL('../example/server.js', import.meta.url).pathname], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  await until(() => /open (http:\/\/\S+)/.test(output), 10_000, 'the example to listen')
  return { child, base: /open (http:\/\/\S+)/.exec(output)[1] }
}

export { once, WebSocket }
