// A real redis-server for the tests: started from PATH on a free port of 127.0.0.1 with persistence
// off, stopped after the test. Without redis-server the tests fail, with one line that says how to
// install it (they never skip).
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer, createConnection } from 'node:net'
import { after, before } from 'node:test'
import { Redis } from 'ioredis'

const INSTALL = 'redis-server is not on PATH: install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) to run the Redis tests'

/** Throws the one-line install hint when redis-server is missing. */
export function requireRedisServer () {
  const found = spawnSync('redis-server', ['--version'], { stdio: 'ignore' })
  if (found.error !== undefined || found.status !== 0) throw new Error(INSTALL)
}

/** A free TCP port on 127.0.0.1. */
export async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  await once(server, 'close')
  return port
}

/** Resolves once something answers PING with PONG on the port; fails after `ms`. */
async function waitForPong (port, ms) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const pong = await new Promise(resolve => {
      const socket = createConnection({ host: '127.0.0.1', port })
      socket.setTimeout(500)
      socket.on('error', () => resolve(false))
      socket.on('timeout', () => { socket.destroy(); resolve(false) })
      socket.on('data', data => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
      socket.on('connect', () => socket.write('PING\r\n'))
    })
    if (pong) return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  throw new Error(`redis-server on port ${port} did not answer within ${ms} ms`)
}

/**
 * A redis-server process. `start()` launches it, `kill()` ends it with SIGKILL (as a crash would),
 * `restart()` starts it again on the same port (empty: there is no persistence).
 */
export class RedisServer {
  /**
   * @param port - the port to listen on
   * @param args - more redis-server arguments (a cluster node's, say)
   */
  constructor (port, args = []) {
    this.port = port
    this.args = args
    this.url = `redis://127.0.0.1:${port}`
    this.process = null
    this.output = ''
  }

  async start () {
    requireRedisServer()
    const child = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--loglevel', 'warning', ...this.args
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', chunk => { this.output += chunk })
    child.stderr.on('data', chunk => { this.output += chunk })
    this.process = child
    const exited = once(child, 'exit').then(([code]) => { throw new Error(`redis-server exited with ${code}: ${this.output.trim()}`) })
    await Promise.race([waitForPong(this.port, 5000), exited])
    exited.catch(() => {})
  }

  /** Ends the server at once with SIGKILL and waits for it to be gone. */
  async kill () {
    const child = this.process
    if (child === null) return
    this.process = null
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }
  }

  async restart () {
    await this.kill()
    await this.start()
  }
}

/**
 * Starts a redis-server for the current test (or suite) and stops it afterwards.
 * @param t - the test context (or an object with an `after` hook)
 */
export async function startRedis (t) {
  const server = new RedisServer(await freePort())
  t.after(() => server.kill())
  await server.start()
  return server
}

/**
 * One redis-server for a whole test file, and an ioredis client to look into it, both ended after the
 * file. Calls `ready(server, client)` once they are up.
 */
export function redisForFile (ready) {
  const cleanups = []
  let client = null
  before(async () => {
    const server = await startRedis({ after: fn => cleanups.push(fn) })
    client = new Redis(server.url)
    ready(server, client)
  })
  after(async () => {
    client?.disconnect()
    for (const fn of cleanups) await fn()
  })
}
