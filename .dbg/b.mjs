import { spawn } from 'node:child_process'
import WebSocket from 'ws'
const sleep = ms => new Promise(r => setTimeout(r, ms))
const kind = process.argv[2]
const servers = []
for (let i = 0; i < 2; i++) {
  const child = spawn(process.execPath, ['bench/cross-node-server.js', kind, 'redis://127.0.0.1:6399', 'pipelined'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', c => { out += c })
  while (!/listening (\d+)/.test(out)) await sleep(10)
  servers.push({ child, port: Number(/listening (\d+)/.exec(out)[1]) })
}
let got = [0, 0]
for (let i = 0; i < 2; i++) {
  const ws = new WebSocket(`ws://127.0.0.1:${servers[i].port}/ws?room=bench`)
  await new Promise(r => ws.once('message', r))
  ws.on('message', () => got[i]++)
}
const pub = new WebSocket(`ws://127.0.0.1:${servers[0].port}/ws?pub=bench`)
await new Promise(r => pub.once('message', r))
for (let i = 0; i < 500; i++) pub.send(JSON.stringify({ i }))
await sleep(1500)
console.log(kind, got)
for (const s of servers) s.child.kill('SIGKILL')
process.exit(0)
