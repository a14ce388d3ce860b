// How long one broadcast to a large room holds the event loop, next to how long until the last
// member has it: `node bench/broadcast-loop.js [--members 10000] [--payload 1024] [--rounds 5]`
// (after `npm run build`). The server runs in this process with a `monitorEventLoopDelay` histogram
// (1 ms resolution) and a 1 ms interval timer whose worst lateness is the longest hold; the members are
// lean raw-TCP clients in a child process that report when each has received the whole message.
import { fork } from 'node:child_process'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import wsHub from '../dist/lib/index.js'

if (process.argv[2] === 'members') {
  // Child: open the connections, then count bytes per socket; report when every one has `expect`.
  const { createConnection } = await import('node:net')
  const [, , , port, count] = process.argv
  const sockets = []
  let expect = 0
  let done = 0
  const got = new Uint32Array(Number(count))
  const open = (i) => new Promise(resolve => {
    const socket = createConnection({ host: '127.0.0.1', port: Number(port) })
    socket.write('GET /room HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    let upgraded = false
    socket.on('data', chunk => {
      if (!upgraded) {
        upgraded = true
        const end = chunk.indexOf('\r\n\r\n')
        chunk = chunk.subarray(end + 4)
        resolve()
      }
      got[i] += chunk.length
      if (expect > 0 && got[i] >= expect && got[i] - chunk.length < expect && ++done === sockets.length) process.send({ done: true })
    })
    sockets.push(socket)
  })
  for (let i = 0; i < Number(count); i += 200) await Promise.all(Array.from({ length: Math.min(200, Number(count) - i) }, (_, j) => open(i + j)))
  process.on('message', ({ expectBytes }) => {
    got.fill(0)
    done = 0
    expect = expectBytes
  })
  process.send({ ready: true })
} else {
  const { values } = parseArgs({ options: { members: { type: 'string', default: '10000' }, payload: { type: 'string', default: '1024' }, rounds: { type: 'string', default: '5' } } })
  const members = Number(values.members)
  const payload = Buffer.alloc(Number(values.payload), 120).toString()
  const app = Fastify()
  await app.register(wsHub, { heartbeat: false })
  app.wsRoute('/room', async conn => { await conn.join('big'); for await (const _ of conn); }) // eslint-disable-line no-unused-vars
  await app.listen({ port: 0, host: '127.0.0.1' })
  const child = fork(new URL(import.meta.url).pathname, ['members', String(app.server.address().port), String(members)])
  const next = () => new Promise(resolve => child.once('message', resolve))
  await next()
  while (await app.ws.roomSize('big') < members) await new Promise(resolve => setTimeout(resolve, 50))
  const header = payload.length < 126 ? 2 : payload.length < 65536 ? 4 : 10
  const results = []
  for (let round = 0; round < Number(values.rounds); round++) {
    child.send({ expectBytes: payload.length + header })
    await new Promise(resolve => setTimeout(resolve, 100))
    const histogram = monitorEventLoopDelay({ resolution: 1 })
    histogram.enable()
    let worstLate = 0
    let last = performance.now()
    const tick = setInterval(() => {
      const now = performance.now()
      worstLate = Math.max(worstLate, now - last - 1)
      last = now
    }, 1)
    const done = next()
    const started = performance.now()
    await app.ws.to('big').send(payload)
    const sent = performance.now() - started
    await done
    const lastMember = performance.now() - started
    await new Promise(resolve => setTimeout(resolve, 20))
    clearInterval(tick)
    histogram.disable()
    results.push({ sent, lastMember, maxDelay: histogram.max / 1e6, worstLate })
    console.log(`round ${round + 1}: send() settled ${sent.toFixed(1)} ms, last member ${lastMember.toFixed(1)} ms, event-loop delay max ${(histogram.max / 1e6).toFixed(1)} ms (timer lateness max ${worstLate.toFixed(1)} ms)`)
  }
  // The longest hold is the larger of the two measures (the histogram can miss a hold that began before
  // its first sample; the timer cannot).
  const median = key => results.map(r => key === 'hold' ? Math.max(r.maxDelay, r.worstLate) : r[key]).sort((a, b) => a - b)[Math.floor(results.length / 2)]
  console.log(`median over ${results.length} rounds, ${members} members, ${payload.length} B: last member ${median('lastMember').toFixed(1)} ms, longest hold ${median('hold').toFixed(1)} ms`)
  child.kill()
  await app.close()
}
