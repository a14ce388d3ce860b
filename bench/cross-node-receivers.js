// The room members of the cross-node benchmark, in a process of their own (started by
// bench/cross-node.js over IPC): `members` clients spread evenly over the server ports, each in room
// "bench". Every message carries its send time `t` (ms, performance.timeOrigin-based, so comparable
// across processes of one machine); the latency of a delivery is its arrival time minus `t`.
//
//   node bench/cross-node-receivers.js hub|sio <members> <port>,<port>,...
//
// IPC: -> { ready } once every client has joined; <- { expect: n } starts a phase that waits for n
// messages per member; -> { done, received, firstAt, lastAt, latency: { p50, p99, p999, max, mean } }
// when they have all arrived, or when asked with <- { report }. <- { expect: n, keep: true } keeps the
// latencies of the phase, <- { summary } answers -> { summary: { deliveries, p50, ... } } over all the
// kept ones (the latency phase runs in several windows, taking turns with the other side), and
// <- { forget } drops them.
import WebSocket from 'ws'

const [kind, membersArg, portsArg] = process.argv.slice(2)
const members = Number(membersArg)
const ports = portsArg.split(',').map(Number)
const now = () => performance.timeOrigin + performance.now()

let expected = 0
let received = 0
let firstAt = 0
let lastAt = 0
let latencies = new Float64Array(0)
let keep = false
const kept = []

function onMessage (sentAt) {
  const at = now()
  if (received === 0) firstAt = at
  lastAt = at
  if (received < latencies.length) latencies[received] = at - sentAt
  received++
  if (received === expected) report()
}

function percentiles (samples) {
  samples.sort()
  const pick = q => samples.length === 0 ? null : samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]
  let sum = 0
  for (const value of samples) sum += value
  return { p50: pick(0.5), p99: pick(0.99), p999: pick(0.999), max: pick(1), mean: samples.length === 0 ? null : sum / samples.length }
}

function report () {
  const samples = latencies.slice(0, Math.min(received, latencies.length))
  if (keep) kept.push(samples)
  process.send({ done: true, received, firstAt, lastAt, latency: percentiles(samples.slice()) })
}

process.on('message', message => {
  if (message.expect !== undefined) {
    expected = message.expect * members
    received = 0
    keep = message.keep === true
    latencies = new Float64Array(expected)
  } else if (message.report) {
    report()
  } else if (message.forget) {
    kept.length = 0
  } else if (message.summary) {
    const all = new Float64Array(kept.reduce((sum, samples) => sum + samples.length, 0))
    let offset = 0
    for (const samples of kept) {
      all.set(samples, offset)
      offset += samples.length
    }
    process.send({ summary: { deliveries: all.length, ...percentiles(all) } })
  }
})

// A lean client: raw ws, JSON.parse of each text frame.
function hubClient (port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?room=bench`)
    ws.on('error', reject)
    ws.once('message', () => {
      ws.on('message', data => onMessage(JSON.parse(data).t))
      resolve(ws)
    })
  })
}

// socket.io-client, websocket transport only (no long-polling upgrade).
async function sioClient (port) {
  const { io } = await import('socket.io-client')
  return new Promise((resolve, reject) => {
    const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], query: { room: 'bench' }, reconnection: false })
    socket.on('connect_error', reject)
    socket.once('ready', () => {
      socket.on('msg', message => onMessage(message.t))
      resolve(socket)
    })
  })
}

const open = kind.startsWith('hub') ? hubClient : sioClient
const clients = []
for (let i = 0; i < members; i++) {
  clients.push(await open(ports[i % ports.length]))
}
process.send({ ready: true })
process.on('disconnect', () => process.exit(0))
