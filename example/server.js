// Starts the example chat: `npm run example`, then open the printed URL.
// PORT (default 3000) and HOST (default 127.0.0.1) choose where it listens; with REDIS_URL set, several
// copies on different ports form one chat.
import { buildApp } from './app.js'

const app = await buildApp({
  redis: process.env.REDIS_URL,
  nodeTtl: process.env.NODE_TTL ? Number(process.env.NODE_TTL) : undefined,
  logger: { level: process.env.LOG_LEVEL ?? 'info' }
})
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
console.log(`fastify-ws-hub example chat: open http://127.0.0.1:${app.server.address().port} (Ctrl-C to stop)`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => app.close())
}
