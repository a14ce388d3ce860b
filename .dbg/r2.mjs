import { spawn } from 'node:child_process'
import WebSocket from 'ws'
const sleep = ms => new Promise(r => setTimeout(r, ms))
const kind = process.argv[2]
const servers = []
for (let i = 0; i < 3; i++) {
  const child = spawn(process.execPath, ['bench/cross-node-server.js', kind, 'redis://127.0.0.1:6399', 'pipelined'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', c => { out += c })
  child.stderr?.on('data', c => process.stderr.write(c))
  while (!/listening (\d+)/.test(out)) await sleep(10)
  servers.push({ child, port: Number(/listening (\d+)/.exec(out)[1]) })
}
const clients = []
for (let i = 0; i < 60; i++) {
  const ws = new WebSocket(`ws://127.0.0.1:${servers[i % 3].port}/ws?room=bench`)
  await new Promise(r => ws.once('message', r))
  const c = { ws, node: i % 3, seen: [] , closed: null}
  ws.on('message', m => c.seen.push(JSON.parse(m).i))
  ws.on('close', code => { c.closed = code })
  clients.push(c)
}
const pub = new WebSocket(`ws://127.0.0.1:${servers[0].port}/ws?pub=bench`)
await new Promise(r => pub.once('message', r))
let n = 0
for (let round = 0; round < 10; round++) {
  for (let i = 0; i < 500; i++) pub.send(JSON.stringify({ i: n++ }))
  await sleep(300)
}
await sleep(2000)
const byNode = [0, 0, 0]
for (const c of clients) {
  const missing = n - new Set(c.seen).size
  if (missing > 0) byNode[c.node]++
  if (c.closed) console.log('closed', c.closed)
}
console.log('clients missing something, by node:', byNode, 'sample', clients.map(c => n - c.seen.length).slice(0, 6))
const c = clients.find(c => c.seen.length < n)
if (c) { const s = new Set(c.seen); const miss = []; for (let i = 0; i < n; i++) if (!s.has(i)) miss.push(i); console.log('missing', miss.length, miss.slice(0, 20)) }
for (const s of servers) s.child.kill('SIGKILL')
process.exit(0)
