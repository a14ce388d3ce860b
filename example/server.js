// A minimal fastify-ws-hub app: HTTP and WebSocket routes side by side, on the in-memory hub.
//   npm run example      then open http://127.0.0.1:3000
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import wsHub, { WebSocketHandler } from '../dist/lib/index.js'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
await app.register(wsHub)

const page = await readFile(new URL('./public/index.html', import.meta.url), 'utf8')
app.get('/', (_request, reply) => reply.type('text/html').send(page))

// A function handler (ProAPI / Nexios style): join the room from the path, relay every message.
app.wsRoute('/chat/:room', async conn => {
  const { room } = conn.params
  const nick = String(conn.query.nick ?? 'anonymous').slice(0, 32)
  await conn.join(room)
  await conn.hub.to(room).send({ type: 'joined', nick, members: await app.ws.roomSize(room) })
  for await (const message of conn) {
    await conn.hub.to(room).send({ type: 'message', nick, text: String(message).slice(0, 1000) })
  }
  await app.ws.to(room).send({ type: 'left', nick, members: await app.ws.roomSize(room) })
})

// A class handler (Panther style): accepted only with a token, echoes what it receives.
class EchoSocket extends WebSocketHandler {
  async connect () {
    if (this.query.token === 'demo') await this.accept()
  }

  async receive (data) {
    await this.send(data)
  }
}
app.wsRoute('/echo', EchoSocket)

// Reach a room from any HTTP handler, as an admin panel or a webhook would.
app.post('/rooms/:room/announce', async (request, reply) => {
  const { room } = request.params
  await app.ws.to(room).send({ type: 'announce', text: String(request.body?.text ?? '') })
  return reply.code(202).send({ room, members: await app.ws.roomSize(room) })
})

app.get('/stats', async () => app.ws.stats())

await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
console.log(`fastify-ws-hub example: open http://127.0.0.1:${app.server.address().port} (Ctrl-C to stop)`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => app.close())
}
