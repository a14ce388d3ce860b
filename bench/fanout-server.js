// The server child of bench/fanout.js: a bare `ws` server and a Fastify app with fastify-ws-hub, both
// on 127.0.0.1, and the publish loop of every variant. Started by fanout.js only.
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import WebSocket, { WebSocketServer } from 'ws'
import wsHub from '../dist/lib/index.js'
import { now, serve } from './ipc.js'

const ROOM = 'room'
const OPEN = WebSocket.OPEN
const TEXT = { binary: false }
const TEXT_FRAME = { fin: true, rsv1: false, opcode: 0x01, mask: false, readOnly: false }

let wss
let app
let text = ''
let bytes = Buffer.alloc(0)

/** The variants; `publish()` sends one message to every member, `sockets()` lists the member sockets. */
const VARIANTS = {
  // (1) bare ws, each socket frames the message itself
  'ws-send': {
    sockets: () => wss.clients,
    publish () {
      for (const socket of wss.clients) {
        if (socket.readyState === OPEN) socket.send(bytes, TEXT)
      }
    }
  },
  // (2) bare ws, framed once, the same buffers written to every socket (what lib/message.ts does)
  'ws-frame-once': {
    sockets: () => wss.clients,
    publish () {
      const frame = WebSocket.Sender.frame(bytes, TEXT_FRAME)
      for (const socket of wss.clients) {
        if (socket.readyState === OPEN) socket._sender.sendFrame(frame)
      }
    }
  },
  // (3) fastify-ws-hub room send (serialized and framed once)
  'hub-to-room': {
    sockets: () => app.websocketServer.clients,
    publish () {
      return app.ws.to(ROOM).send(text)
    }
  },
  // (4) fastify-ws-hub, one send() per member: each socket frames (and UTF-8 encodes) the message itself
  'hub-per-member': {
    sockets: () => app.websocketServer.clients,
    async publish () {
      const ids = await app.ws.members(ROOM)
      for (const id of ids) {
        const conn = app.ws.get(id)
        if (conn !== undefined && !conn.closed) conn.send(text)
      }
    }
  },
  // (extra, not run by default) bare ws with a string: each socket also UTF-8 encodes it, as (4) does
  'ws-send-string': {
    sockets: () => wss.clients,
    publish () {
      for (const socket of wss.clients) {
        if (socket.readyState === OPEN) socket.send(text, TEXT)
      }
    }
  }
}

async function start ({ payloadBytes }) {
  text = 'x'.repeat(payloadBytes)
  bytes = Buffer.from(text)

  wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve)
    wss.once('error', reject)
  })
  wss.on('connection', (socket) => socket.on('error', () => {}))

  app = Fastify({ logger: false })
  await app.register(wsHub, { heartbeat: false })
  app.wsRoute('/room', async (conn) => {
    await conn.join(ROOM)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { wsPort: wss.address().port, hubPort: app.server.address().port, pid: process.pid }
}

async function info () {
  return { wsClients: wss.clients.size, hubClients: app.websocketServer.clients.size, roomSize: await app.ws.roomSize(ROOM) }
}

/**
 * Waits until the underlying TCP sockets of `sockets` have flushed (their 'drain'), at most `ms`.
 * Resolves true, or false on the timeout. No busy waiting: the wait must not show up as server CPU.
 */
function waitDrain (sockets, ms) {
  return new Promise((resolve) => {
    const waiting = []
    let left = 0
    let settled = false
    const finish = (ok) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      for (const [raw, listener] of waiting) raw.removeListener('drain', listener)
      resolve(ok)
    }
    const timer = setTimeout(finish, ms, false)
    const onDrain = () => { if (--left === 0) finish(true) }
    for (const socket of sockets) {
      const raw = socket._socket
      if (raw != null && raw.writableNeedDrain) {
        left++
        raw.once('drain', onDrain)
        waiting.push([raw, onDrain])
      }
    }
    // bytes held by the ws sender itself (not the case without compression): poll gently
    if (left === 0) setTimeout(finish, 1, true)
  })
}

/**
 * Publishes in bursts from `start` until `t1` (absolute monotonic ns), measuring [t0, t1]: after each
 * burst, yields to the event loop (setImmediate) or, when a member has more than `limit` bytes
 * buffered, waits for those sockets to drain.
 */
async function run ({ variant, start, t0, t1, limit, burstDeliveries, drainTimeoutMs }) {
  const v = VARIANTS[variant]
  if (v === undefined) throw new Error(`unknown variant ${variant}`)
  const sockets = [...v.sockets()]
  const members = sockets.length
  if (members === 0) throw new Error('no members')
  const perBurst = Math.max(1, Math.round(burstDeliveries / members))
  const T0 = BigInt(t0)
  const T1 = BigInt(t1)

  globalThis.gc?.()
  const wait = Number(BigInt(start) - now()) / 1e6
  if (wait > 0) await sleep(wait)

  let published = 0
  let bursts = 0
  let drainWaits = 0
  let drainTimeouts = 0
  let maxBuffered = 0
  let mark = null
  while (true) {
    const t = now()
    if (mark === null && t >= T0) mark = { ns: t, cpu: process.cpuUsage(), published, drainWaits }
    if (t >= T1) break
    for (let i = 0; i < perBurst; i++) {
      const pending = v.publish()
      if (pending !== undefined) await pending
      published++
    }
    bursts++
    let over = null
    for (const socket of sockets) {
      const buffered = socket.bufferedAmount
      if (buffered > maxBuffered) maxBuffered = buffered
      if (buffered > limit) (over ??= []).push(socket)
    }
    if (over !== null) {
      drainWaits++
      if (!await waitDrain(over, drainTimeoutMs)) drainTimeouts++
    } else {
      await immediate()
    }
  }
  const end = now()
  const cpu = process.cpuUsage(mark.cpu)
  const messages = published - mark.published
  return {
    variant,
    members,
    perBurst,
    published,
    bursts,
    drainWaits,
    drainTimeouts,
    maxBuffered,
    window: {
      startNs: String(mark.ns),
      endNs: String(end),
      seconds: Number(end - mark.ns) / 1e9,
      messages,
      writes: messages * members,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      drainWaits: drainWaits - mark.drainWaits
    },
    openAfter: sockets.filter((s) => s.readyState === OPEN).length
  }
}

async function stop () {
  setTimeout(() => process.exit(0), 2000).unref()
  for (const socket of wss.clients) socket.terminate()
  await new Promise((resolve) => wss.close(resolve))
  for (const socket of app.websocketServer.clients) socket.terminate()
  await app.close()
  setImmediate(() => process.exit(0))
  return true
}

serve({ start, info, run, stop }, Number(process.env.BENCH_MAX_LIFETIME_MS ?? 300_000))
