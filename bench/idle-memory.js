// Idle heap per connection of the ways to write an echo route: @fastify/websocket with a 'message'
// listener, the same with a `for await` loop over Node's `events.on(socket, 'message')`, and
// fastify-ws-hub's class and function handlers. Each server runs in a process of its own; the clients
// connect from a child process; heap after GC, minus the heap before connecting, over the connections.
//
// Usage: node bench/idle-memory.js [--conns 2000] [--kinds fastify-websocket,fastify-websocket-events-on,hub-class,hub-fn]
// Needs a build (npm run build).
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    conns: { type: 'string', default: '2000' },
    kinds: { type: 'string', default: 'fastify-websocket,fastify-websocket-events-on,hub-class,hub-fn' },
    role: { type: 'string' },
    port: { type: 'string' }
  }
})
const CONNS = Number(args.conns)
const self = new URL(import.meta.url).pathname

async function server (kind) {
  const { default: Fastify } = await import('fastify')
  const app = Fastify({ logger: false })
  if (kind.startsWith('fastify-websocket')) {
    const { default: websocket } = await import('@fastify/websocket')
    const { on } = await import('node:events')
    await app.register(websocket)
    app.register(async app => {
      if (kind === 'fastify-websocket') {
        app.get('/echo', { websocket: true }, socket => {
          socket.on('message', (data, binary) => socket.send(data, { binary }))
        })
      } else {
        app.get('/echo', { websocket: true }, async socket => {
          for await (const [data, binary] of on(socket, 'message')) socket.send(data, { binary })
        })
      }
    })
  } else {
    const { default: wsHub, WebSocketHandler } = await import('../dist/lib/index.js')
    await app.register(wsHub)
    if (kind === 'hub-class') {
      app.wsRoute('/echo', class Echo extends WebSocketHandler {
        receive (data) { return this.send(data) }
      })
    } else {
      app.wsRoute('/echo', async conn => { for await (const message of conn) await conn.send(message) })
    }
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  global.gc()
  global.gc()
  const before = process.memoryUsage().heapUsed
  const clients = fork(self, ['--role', 'clients', '--port', String(app.server.address().port), '--conns', String(CONNS)])
  await once(clients, 'message')
  await new Promise(resolve => setTimeout(resolve, 500))
  global.gc()
  global.gc()
  const perConn = (process.memoryUsage().heapUsed - before) / CONNS
  clients.kill()
  process.send(perConn)
  process.exit(0)
}

async function clients () {
  const { default: WebSocket } = await import('ws')
  const open = []
  for (let i = 0; i < CONNS; i++) {
    const socket = new WebSocket(`ws://127.0.0.1:${args.port}/echo`)
    await once(socket, 'open')
    open.push(socket)
  }
  process.send('open')
  setInterval(() => {}, 60_000)
}

if (args.role === 'clients') {
  await clients()
} else if (args.role !== undefined) {
  await server(args.role)
} else {
  const results = {}
  for (const kind of args.kinds.split(',')) {
    const child = fork(self, ['--role', kind, '--conns', String(CONNS)], { execArgv: ['--expose-gc'] })
    const [perConn] = await once(child, 'message')
    results[kind] = perConn
    await once(child, 'exit')
  }
  const base = results['fastify-websocket']
  for (const [kind, perConn] of Object.entries(results)) {
    const ratio = base === undefined ? '' : ` (${(perConn / base).toFixed(2)}x @fastify/websocket)`
    process.stdout.write(`${kind}: ${(perConn / 1024).toFixed(2)} KB heap per idle connection${ratio}\n`)
  }
}
