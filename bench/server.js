// A server child of the benchmark suite (bench/run.js): one variant per process, on 127.0.0.1.
//
// Every variant serves an echo endpoint and a room endpoint, and publishes to its room on command:
//
//   ws             bare `ws` server; echo `socket.send(data)`; room = every client, `socket.send()` per member
//   ws-frame-once  the same server; the room message is framed once (`Sender.frame`) and the same
//                  buffers go to every member (`sendFrame`), as fastify-ws-hub and Socket.IO do
//   fastify-ws     Fastify + @fastify/websocket, plain routes; the room is a Set the app keeps
//   socketio       Socket.IO 4 on a plain http server, websocket transport only; event 'm' echoed;
//                  a client connecting with `?room=1` joins the room; `io.to(room).emit('m', text)`
//   hub-fn         Fastify + fastify-ws-hub, function handlers:
//                  `for await (const m of conn) await conn.send(m)` and `await conn.join(room)`
//   hub-class      Fastify + fastify-ws-hub, class handlers: `receive (data) { return this.send(data) }`,
//                  and a `connect()` that accepts and joins the room
//   hub-rpc        Fastify + fastify-ws-hub, `/echo` a methods route (JSON-RPC 2.0): a method `echo` whose
//                  params are validated by a JSON Schema (`{ text: string }`, with Fastify's Ajv) and returned
//
// Socket.IO also answers the event 'a' with an acknowledgement: `socket.on('a', (data, ack) => ack(data))`,
// which a client calls with `await socket.emitWithAck('a', data)`.
//
// The Fastify variants have a no-op onRequest hook, so that an upgrade goes through the hook chain.
// Heartbeats are left at each library's default: none for ws and @fastify/websocket, engine.io's ping
// every 25 s for Socket.IO, fastify-ws-hub's ping every 30 s (one timer for all connections).
//
// Commands (see ipc.js): start, info, cpuWindow, publish (a fan-out run), memory, stop.
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import { now, serve } from './ipc.js'
import { publishRun } from './publish.js'

const ROOM = 'room'
const OPEN = 1
const TEXT = { binary: false }
const BINARY = { binary: true }
const TEXT_FRAME = { fin: true, rsv1: false, opcode: 0x01, mask: false, readOnly: false }

let server = null // what start() built: { port, open(), roomSize(), sockets(), publish(), close() }
let handled = 0 // connections established since start (a 'connection' listener; the same for all)

function noopHook (_request, _reply, done) {
  done()
}

// The load generator does not answer close frames: end the sockets first, so that close is quick.
function terminateAndClose (app) {
  for (const socket of app.websocketServer.clients) socket.terminate()
  return app.close()
}

async function bareWs ({ frameOnce, bytes }) {
  const { Sender, WebSocketServer } = await import('ws')
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve)
    wss.once('error', reject)
  })
  wss.on('connection', (socket) => {
    handled++
    socket.on('error', () => {})
    socket.on('message', (data, isBinary) => socket.send(data, isBinary ? BINARY : TEXT))
  })
  const publish = frameOnce
    ? () => {
        const frame = Sender.frame(bytes, TEXT_FRAME)
        for (const socket of wss.clients) {
          if (socket.readyState === OPEN) socket._sender.sendFrame(frame)
        }
      }
    : () => {
        for (const socket of wss.clients) {
          if (socket.readyState === OPEN) socket.send(bytes, TEXT)
        }
      }
  return {
    port: wss.address().port,
    open: () => wss.clients.size,
    roomSize: () => wss.clients.size,
    sockets: () => wss.clients,
    publish,
    close: () => {
      for (const socket of wss.clients) socket.terminate()
      return new Promise((resolve) => wss.close(resolve))
    }
  }
}

async function fastifyWs ({ bytes }) {
  const { default: Fastify } = await import('fastify')
  const { default: fastifyWebsocket } = await import('@fastify/websocket')
  const app = Fastify({ logger: false })
  await app.register(fastifyWebsocket)
  app.addHook('onRequest', noopHook)
  app.websocketServer.on('connection', () => { handled++ })
  const room = new Set()
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, isBinary ? BINARY : TEXT))
  })
  app.get('/room', { websocket: true }, (socket) => {
    room.add(socket)
    socket.on('close', () => room.delete(socket))
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: app.server.address().port,
    open: () => app.websocketServer.clients.size,
    roomSize: () => room.size,
    sockets: () => room,
    publish () {
      for (const socket of room) {
        if (socket.readyState === OPEN) socket.send(bytes, TEXT)
      }
    },
    close: () => terminateAndClose(app)
  }
}

/** The params of the JSON-RPC variant's method `echo`. */
const ECHO_PARAMS = {
  type: 'object',
  properties: { text: { type: 'string', maxLength: 4096 } },
  required: ['text'],
  additionalProperties: false
}

async function hub ({ classes, rpc, text }) {
  const { default: Fastify } = await import('fastify')
  const { default: wsHub, WebSocketHandler } = await import('../dist/lib/index.js')
  const app = Fastify({ logger: false })
  await app.register(wsHub)
  app.addHook('onRequest', noopHook)
  app.websocketServer.on('connection', () => { handled++ })
  if (rpc) {
    app.wsRoute('/echo', () => {}, { methods: { echo: { schema: { params: ECHO_PARAMS }, handler: async (params) => params } } })
    app.wsRoute('/room', async (conn) => {
      await conn.join(ROOM)
    })
  } else if (classes) {
    class Echo extends WebSocketHandler {
      receive (data) { return this.send(data) }
    }
    class Member extends WebSocketHandler {
      async connect () {
        await this.accept()
        await this.join(ROOM)
      }
    }
    app.wsRoute('/echo', Echo)
    app.wsRoute('/room', Member)
  } else {
    app.wsRoute('/echo', async (conn) => {
      for await (const m of conn) await conn.send(m)
    })
    app.wsRoute('/room', async (conn) => {
      await conn.join(ROOM)
    })
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  const members = () => [...app.websocketServer.clients]
  return {
    port: app.server.address().port,
    open: () => app.ws.size,
    roomSize: () => app.ws.roomSize(ROOM),
    sockets: members,
    publish: () => app.ws.to(ROOM).send(text),
    close: () => terminateAndClose(app)
  }
}

async function socketio ({ text, bytes }) {
  const http = await import('node:http')
  const { Server } = await import('socket.io')
  const httpServer = http.createServer()
  const io = new Server(httpServer, { transports: ['websocket'], serveClient: false })
  io.on('connection', (socket) => {
    handled++
    if (socket.handshake.query.room !== undefined) socket.join(ROOM)
    socket.on('m', (data) => socket.emit('m', data))
    socket.on('a', (data, ack) => ack(data))
  })
  await new Promise((resolve, reject) => {
    httpServer.once('error', reject)
    httpServer.listen(0, '127.0.0.1', resolve)
  })
  // bytes of one room message on the wire, to count what waits in engine.io's own write buffer
  const frameBytes = Buffer.byteLength(`42${JSON.stringify(['m', text])}`) + 2
  // the members as publishRun wants them: what is buffered counts engine.io's queue too
  const member = (socket) => {
    const conn = socket.conn
    const ws = () => conn.transport.socket
    return {
      get bufferedAmount () { return ws().bufferedAmount + conn.writeBuffer.length * frameBytes },
      get readyState () { return ws().readyState },
      get _socket () { return ws()._socket }
    }
  }
  return {
    port: httpServer.address().port,
    open: () => io.of('/').sockets.size,
    roomSize: () => io.of('/').adapter.rooms.get(ROOM)?.size ?? 0,
    sockets: () => [...(io.of('/').adapter.rooms.get(ROOM) ?? [])].map((id) => member(io.of('/').sockets.get(id))),
    publish: () => { io.to(ROOM).emit('m', text) },
    close: () => new Promise((resolve) => io.close(() => resolve()))
  }
}

const BUILDERS = {
  ws: (o) => bareWs({ ...o, frameOnce: false }),
  'ws-frame-once': (o) => bareWs({ ...o, frameOnce: true }),
  'fastify-ws': fastifyWs,
  socketio,
  'hub-fn': (o) => hub({ ...o, classes: false }),
  'hub-class': (o) => hub({ ...o, classes: true }),
  'hub-rpc': (o) => hub({ ...o, rpc: true })
}

let variantName = null

async function start ({ variant, payloadBytes }) {
  const build = BUILDERS[variant]
  if (build === undefined) throw new Error(`unknown variant ${variant}`)
  if (server !== null) throw new Error('already started')
  const text = 'x'.repeat(payloadBytes)
  server = await build({ text, bytes: Buffer.from(text) })
  variantName = variant
  return { port: server.port, pid: process.pid }
}

async function info () {
  return { variant: variantName, open: server.open(), roomSize: await server.roomSize(), handled }
}

async function sampleAt (at) {
  const target = BigInt(at)
  const wait = Number(target - now()) / 1e6
  if (wait > 0) await sleep(wait)
  for (let i = 0; i < 5 && now() < target; i++) await sleep(1)
  return { ns: now(), cpu: process.cpuUsage() }
}

/** This process's CPU time over [t0, t1] (absolute monotonic ns), while the load generator works it. */
async function cpuWindow ({ t0, t1 }) {
  const a = await sampleAt(t0)
  const b = await sampleAt(t1)
  const cpu = process.cpuUsage(a.cpu)
  const seconds = Number(b.ns - a.ns) / 1e9
  return {
    seconds,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    userPct: cpu.user / 1e4 / seconds,
    startLateMs: Number(a.ns - BigInt(t0)) / 1e6
  }
}

/** A fan-out run: the publish loop of publish.js over this variant's room. */
function publish (args) {
  return publishRun(server, args)
}

/** Memory after a full GC (repeated, so that what finalizers free is collected too). */
async function memory () {
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await immediate()
    await sleep(5)
  }
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]))
  return { ...process.memoryUsage(), spaces, open: server.open() }
}

async function stop () {
  setTimeout(() => process.exit(0), 2000).unref()
  await server?.close()
  setImmediate(() => process.exit(0))
  return true
}

serve({ start, info, cpuWindow, publish, memory, stop }, Number(process.env.BENCH_MAX_LIFETIME_MS ?? 300_000))
