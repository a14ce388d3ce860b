// The example chat, as a Fastify user would build it: HTTP and WebSocket routes side by side, each
// group in a route module registered with a prefix. `buildApp()` is what server.js runs and the tests use.
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import wsHub from '../dist/lib/index.js'
import chat from './routes/chat.js'
import lobby from './routes/lobby.js'
import rooms from './routes/rooms.js'

/**
 * @param {{ redis?: string, logger?: object | boolean }} [options] - `redis`: a Redis URL, so that several
 *   copies of the app form one chat
 */
export async function buildApp ({ redis, logger = { level: 'info' } } = {}) {
  const app = Fastify({ logger })
  await app.register(wsHub, redis ? { redis } : {})

  // The page: plain HTML and JS, no build step, the browser's own WebSocket.
  const page = await readFile(new URL('./public/index.html', import.meta.url), 'utf8')
  const script = await readFile(new URL('./public/chat.js', import.meta.url), 'utf8')
  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.get('/chat.js', (_request, reply) => reply.type('text/javascript; charset=utf-8').send(script))

  await app.register(chat, { prefix: '/ws' }) // ws   /ws/chat/:room   (class handler, Panther style)
  await app.register(lobby, { prefix: '/ws' }) // ws   /ws/lobby        (function handler, Nexios style)
  await app.register(rooms, { prefix: '/rooms' }) // HTTP GET /rooms, POST /rooms/:room/announce
  return app
}
