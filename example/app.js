// The example chat, as a Fastify user would build it: HTTP and WebSocket routes side by side, each
// group in a route module registered with a prefix. `buildApp()` is what server.js runs and the tests use.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import wsHub from '../dist/lib/index.js'
import chat from './routes/chat.js'
import lobby from './routes/lobby.js'
import rooms from './routes/rooms.js'

/**
 * @param {{ redis?: string, nodeTtl?: number, logger?: object | boolean }} [options] - `redis`: a Redis URL,
 *   so that several copies of the app form one chat; `nodeTtl`: how soon a copy that died drops out
 */
export async function buildApp ({ redis, nodeTtl, logger = { level: 'info' } } = {}) {
  const app = Fastify({ logger })
  // Each room keeps its last 200 messages for 10 minutes: a page that reconnects gets what it missed.
  // Every chat message carries its offset ("offset"), which the page sends back as ?since=.
  const history = { size: 200, ttl: 600_000, stamp: 'offset' }
  await app.register(wsHub, redis ? { redis, nodeTtl, history } : { history })

  // The page: plain HTML and JS, no build step, the browser's own WebSocket.
  const page = await readFile(new URL('./public/index.html', import.meta.url), 'utf8')
  const script = await readFile(new URL('./public/chat.js', import.meta.url), 'utf8')
  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.get('/chat.js', (_request, reply) => reply.type('text/javascript; charset=utf-8').send(script))
  // The reconnecting WebSocket, as its package ships it for browsers (an ES module with no imports).
  const reconnecting = await readFile(createRequire(import.meta.url).resolve('partysocket/ws').replace(/\.cjs$/, '.js'), 'utf8')
  app.get('/vendor/reconnecting-websocket.js', (_request, reply) => reply.type('text/javascript; charset=utf-8').send(reconnecting))

  await app.register(chat, { prefix: '/ws' }) // ws   /ws/chat/:room   (class handler, Panther style)
  await app.register(lobby, { prefix: '/ws' }) // ws   /ws/lobby        (function handler, Nexios style)
  await app.register(rooms, { prefix: '/rooms' }) // HTTP GET /rooms, POST /rooms/:room/announce
  return app
}
