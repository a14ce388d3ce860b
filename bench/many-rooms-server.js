// One server process of the many-rooms benchmark (bench/many-rooms.js forks 1 to 4 of them).
//
//   node bench/many-rooms-server.js <kind> <redis url>
//   kind: hub          fastify-ws-hub with its Redis broker
//         sio          Socket.IO 4 with @socket.io/redis-adapter (classic)
//         sio-sharded  Socket.IO 4 with @socket.io/redis-adapter's sharded adapter, dynamic mode
//
// A client that connects with ?room=R joins room R. Over IPC the parent sends { start: { rooms,
// perSecond, payload } }: the process then sends `perSecond` messages a second, round robin, to its
// rooms, from the server (as an app's timer or HTTP handler would); { stop: true } stops it and
// answers with the CPU time (user + system, and user alone, µs) the process spent and the messages it
// sent.
// Prints "listening <port>" on stdout.
import { createServer } from 'node:http'
import { Redis } from 'ioredis'

const [kind, redisUrl] = process.argv.slice(2)
let send = null
let close = null

async function hub () {
  const { default: Fastify } = await import('fastify')
  const { default: wsHub } = await import('../dist/lib/index.js')
  const app = Fastify()
  await app.register(wsHub, { redis: redisUrl, heartbeat: false })
  app.wsRoute('/ws', async conn => {
    await conn.join(conn.query.room)
    await conn.send('ready')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  send = (room, payload) => { app.ws.to(room).send(payload) }
  close = () => app.close()
  return app.server.address().port
}

async function sio (sharded) {
  const { Server } = await import('socket.io')
  const { createAdapter, createShardedAdapter } = await import('@socket.io/redis-adapter')
  const pubClient = new Redis(redisUrl)
  const subClient = pubClient.duplicate()
  const server = createServer()
  const io = new Server(server, {
    transports: ['websocket'],
    adapter: sharded ? createShardedAdapter(pubClient, subClient, { subscriptionMode: 'dynamic' }) : createAdapter(pubClient, subClient)
  })
  io.on('connection', socket => {
    socket.join(socket.handshake.query.room)
    socket.emit('ready')
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  send = (room, payload) => { io.to(room).emit('msg', payload) }
  close = async () => {
    io.close()
    pubClient.disconnect()
    subClient.disconnect()
  }
  return server.address().port
}

let timer = null
let sent = 0
let cpuAtStart = null

process.on('message', message => {
  if (message.start !== undefined) {
    const { rooms, perSecond, payload } = message.start
    const text = 'x'.repeat(payload)
    const TICK = 10
    let next = 0
    let owed = 0
    sent = 0
    cpuAtStart = process.cpuUsage()
    const started = performance.now()
    timer = setInterval(() => {
      // Catch up on what the timer owes, so that a late tick does not lower the rate.
      owed = Math.floor((performance.now() - started) / 1000 * perSecond) - sent
      for (let i = 0; i < owed; i++) {
        send(rooms[next], text)
        next = (next + 1) % rooms.length
        sent++
      }
    }, TICK)
  } else if (message.stop !== undefined) {
    clearInterval(timer)
    const cpu = process.cpuUsage(cpuAtStart)
    process.send({ stopped: { cpu: cpu.user + cpu.system, user: cpu.user, sent } })
  }
})

process.on('SIGTERM', () => {
  Promise.resolve(close?.()).then(() => process.exit(0))
})

const port = kind === 'hub' ? await hub() : await sio(kind === 'sio-sharded')
process.stdout.write(`listening ${port}\n`)
