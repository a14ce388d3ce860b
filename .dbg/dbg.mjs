import Fastify from 'fastify'
import wsHub from '/work/wt/i12/dist/lib/index.js'
const app = Fastify()
await app.register(wsHub, { redis: 'redis://127.0.0.1:6399', history: { size: 50, stamp: 'offset' }, heartbeat: false })
try { console.log(await app.ws.to('x').send({ a: 1 })) } catch (e) { console.log('ERR', e) }
console.log(await app.ws.history('x'))
await app.close()
