// One server process of the cross-node benchmark (bench/cross-node.js starts three of each kind).
//
//   node bench/cross-node-server.js hub <redis url>   fastify-ws-hub with its Redis broker
//   node bench/cross-node-server.js sio <redis url>   Socket.IO 4 with @socket.io/redis-adapter
//   hub-history (room history on, in Redis), hub-memory and hub-memory-history (one process, no Redis):
//   the variants of bench/history.js; a third argument "pipelined" passes each message on without
//   waiting for the previous send to resolve
//
// Both do the same thing: a client that connects with ?room=R joins room R; a client that connects
// with ?pub=R is the publisher, and each of its messages goes to every member of room R, on every
// node, as it is. Prints "listening <port>"; exits on SIGTERM.
import { createServer } from 'node:http'
import { Redis } from 'ioredis'

const [kind, redisUrl, mode] = process.argv.slice(2)

async function hub (kind) {
  const { default: Fastify } = await import('fastify')
  const { default: wsHub } = await import('../dist/lib/index.js')
  const app = Fastify()
  // A prefix of its own for each kind: two kinds on one Redis must not reach each other's members.
  const options = { heartbeat: false, keyPrefix: `${kind}:` }
  if (!kind.startsWith('hub-memory')) options.redis = redisUrl
  if (kind.endsWith('-history')) options.history = { size: 100, ttl: 300_000 }
  await app.register(wsHub, options)
  app.wsRoute('/ws', async conn => {
    const { room, pub } = conn.query
    if (room !== undefined) {
      await conn.join(room)
      await conn.send('ready')
      return
    }
    await conn.send('ready')
    const to = conn.hub.to(pub)
    if (mode === 'pipelined') {
      for await (const message of conn) to.send(message).catch(() => {})
    } else {
      for await (const message of conn) await to.send(message)
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
  return app.server.address().port
}

async function sio () {
  const { Server } = await import('socket.io')
  const { createAdapter } = await import('@socket.io/redis-adapter')
  const pubClient = new Redis(redisUrl)
  const subClient = pubClient.duplicate()
  const server = createServer()
  const io = new Server(server, {
    transports: ['websocket'],
    adapter: createAdapter(pubClient, subClient)
  })
  io.on('connection', socket => {
    const { room, pub } = socket.handshake.query
    if (room !== undefined) {
      socket.join(room)
      socket.emit('ready')
      return
    }
    socket.on('pub', message => { io.to(pub).emit('msg', message) })
    socket.emit('ready')
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  process.on('SIGTERM', () => {
    io.close()
    pubClient.disconnect()
    subClient.disconnect()
    process.exit(0)
  })
  return server.address().port
}

const port = kind.startsWith('hub') ? await hub(kind) : await sio()
process.stdout.write(`listening ${port}\n`)
