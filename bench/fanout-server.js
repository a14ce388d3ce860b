// The server child of bench/fanout.js: a bare `ws` server and a Fastify app with fastify-ws-hub, both
// on 127.0.0.1, and the publish loop of every variant. Started by fanout.js only.
import Fastify from 'fastify'
import WebSocket, { WebSocketServer } from 'ws'
import wsHub from '../dist/lib/index.js'
import { serve } from './ipc.js'
import { publishRun } from './publish.js'

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

/** One run of a variant's publish loop (see publish.js). */
async function run ({ variant, ...args }) {
  const v = VARIANTS[variant]
  if (v === undefined) throw new Error(`unknown variant ${variant}`)
  return { variant, ...await publishRun(v, args) }
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
