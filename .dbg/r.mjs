import { spawn, fork } from 'node:child_process'
import WebSocket from 'ws'
const sleep = ms => new Promise(r => setTimeout(r, ms))
const kind = process.argv[2]
const servers = []
for (let i = 0; i < 3; i++) {
  const child = spawn(process.execPath, ['bench/cross-node-server.js', kind, 'redis://127.0.0.1:6399', process.argv[3] ?? 'await'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', c => { out += c })
  while (!/listening (\d+)/.test(out)) await sleep(10)
  servers.push({ child, port: Number(/listening (\d+)/.exec(out)[1]) })
}
const rec = fork('bench/cross-node-receivers.js', [kind, '200', servers.map(s => s.port).join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
const next = key => new Promise(r => { const on = m => { if (m[key] !== undefined) { rec.off('message', on); r(m) } }; rec.on('message', on) })
await next('ready')
const pub = new WebSocket(`ws://127.0.0.1:${servers[0].port}/ws?pub=bench`)
await new Promise(r => pub.once('message', r))
for (let round = 0; round < 6; round++) {
  rec.send({ expect: 200 })
  const done = next('done')
  for (let i = 0; i < 200; i++) pub.send(JSON.stringify({ i, t: performance.timeOrigin + performance.now() }))
  const res = await Promise.race([done, sleep(8000).then(() => null)])
  if (res === null) { rec.send({ report: true }); console.log('round', round, 'LOST', (await next('done')).received); break }
  console.log('round', round, res.received)
}
for (const s of servers) s.child.kill('SIGKILL')
rec.kill('SIGKILL')
process.exit(0)
