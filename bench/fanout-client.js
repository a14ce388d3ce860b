// The load child of bench/fanout.js: many lean WebSocket receivers in one process. Each is a raw TCP
// socket that does the HTTP upgrade itself and then only counts the server's (unmasked) frames, so the
// receiving side costs far less per message than the server (a `ws` client would cost as much).
import { createHash } from 'node:crypto'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { now, serve } from './ipc.js'

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
const HEADER_END = Buffer.from('\r\n\r\n')

/** Groups of receivers by name ('ws', 'hub'): cumulative counters and the sockets. */
const groups = new Map()

function newGroup () {
  return { receivers: [], frames: 0, other: 0, bytes: 0, closed: 0, errors: 0, protocolErrors: 0, baseline: null }
}

/**
 * Counts the complete frames in `chunk`, carrying a partial header or payload over to the next chunk.
 * Text frames with FIN are deliveries; any other frame (close, ping, fragments) is counted apart.
 */
function parse (r, chunk) {
  const g = r.group
  g.bytes += chunk.length
  let buf = chunk
  if (r.pending !== null) {
    buf = Buffer.concat([r.pending, chunk])
    r.pending = null
  }
  const n = buf.length
  let i = 0
  let frames = 0
  if (r.skip > 0) {
    if (n < r.skip) {
      r.skip -= n
      return
    }
    i = r.skip
    r.skip = 0
    if (r.text) frames++
    else g.other++
  }
  while (i < n) {
    if (n - i < 2) break
    const b0 = buf[i]
    const b1 = buf[i + 1]
    if (b1 & 0x80) g.protocolErrors++ // a server frame must not be masked
    let len = b1 & 0x7f
    let header = 2
    if (len === 126) {
      if (n - i < 4) break
      len = buf.readUInt16BE(i + 2)
      header = 4
    } else if (len === 127) {
      if (n - i < 10) break
      len = buf.readUInt32BE(i + 2) * 0x100000000 + buf.readUInt32BE(i + 6)
      header = 10
    }
    const text = b0 === 0x81 // FIN + text opcode
    const end = i + header + len
    if (end <= n) {
      if (text) frames++
      else g.other++
      i = end
    } else {
      r.skip = end - n
      r.text = text
      i = n
    }
  }
  if (i < n) r.pending = Buffer.from(buf.subarray(i)) // a partial header, at most 9 bytes
  r.count += frames
  g.frames += frames
}

function connectOne (port, path, group, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const r = { socket, group, count: 0, skip: 0, text: false, pending: null, upgraded: false }
    let head = Buffer.alloc(0)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`handshake to ${path} timed out`))
    }, timeoutMs)
    socket.setNoDelay(true)
    socket.on('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
    socket.on('data', (chunk) => {
      if (r.upgraded) {
        parse(r, chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const at = head.indexOf(HEADER_END)
      if (at === -1) {
        if (head.length > 8192) socket.destroy(new Error('handshake response too long'))
        return
      }
      const response = head.subarray(0, at).toString('latin1')
      const rest = head.subarray(at + 4)
      clearTimeout(timer)
      const accept = /\r\nsec-websocket-accept:[ \t]*(\S+)/i.exec(response)?.[1]
      if (!response.startsWith('HTTP/1.1 101') || accept !== ACCEPT) {
        socket.destroy()
        reject(new Error(`upgrade to ${path} refused: ${response.split('\r\n')[0]}`))
        return
      }
      r.upgraded = true
      group.receivers.push(r)
      if (rest.length > 0) parse(r, rest)
      resolve()
    })
    socket.on('error', (err) => {
      group.errors++
      clearTimeout(timer)
      reject(err)
    })
    socket.on('close', () => {
      if (r.upgraded) group.closed++
    })
  })
}

/** Opens `count` receivers on ws://127.0.0.1:port/path, at most `concurrency` handshakes at a time. */
async function connect ({ group: name, port, path, count, concurrency = 100, timeoutMs = 10_000 }) {
  const group = groups.get(name) ?? newGroup()
  groups.set(name, group)
  for (let done = 0; done < count;) {
    const batch = Math.min(concurrency, count - done)
    await Promise.all(Array.from({ length: batch }, () => connectOne(port, path, group, timeoutMs)))
    done += batch
  }
  return { connected: group.receivers.length }
}

function snapshot (group) {
  return { ns: now(), frames: group.frames, cpu: process.cpuUsage() }
}

async function sampleAt (at, group) {
  const target = BigInt(at)
  const wait = Number(target - now()) / 1e6
  if (wait > 0) await sleep(wait)
  // timers round to whole ms and may fire a little early: top up (at most a few 1 ms sleeps)
  for (let i = 0; i < 5 && now() < target; i++) await sleep(1)
  return snapshot(group)
}

/**
 * Remembers every receiver's count (the baseline for `settle`), then counts the frames received in
 * [t0, t1] (absolute monotonic ns) and this process's CPU time over it.
 */
async function window ({ group: name, t0, t1 }) {
  const group = groups.get(name)
  group.baseline = group.receivers.map((r) => r.count)
  group.otherBaseline = group.other
  const a = await sampleAt(t0, group)
  const b = await sampleAt(t1, group)
  const cpu = process.cpuUsage(a.cpu)
  return {
    frames: b.frames - a.frames,
    seconds: Number(b.ns - a.ns) / 1e9,
    startNs: String(a.ns),
    endNs: String(b.ns),
    startLateMs: Number(a.ns - BigInt(t0)) / 1e6,
    cpuUs: cpu.user + cpu.system,
    cpuUserUs: cpu.user
  }
}

/** Waits (at most `timeoutMs`) until every receiver has got `perSocket` frames since the baseline. */
async function settle ({ group: name, perSocket, timeoutMs = 10_000 }) {
  const group = groups.get(name)
  const started = now()
  const deadline = started + BigInt(timeoutMs) * 1_000_000n
  let received
  while (true) {
    received = 0
    let min = Infinity
    let max = 0
    group.receivers.forEach((r, i) => {
      const got = r.count - group.baseline[i]
      received += got
      if (got < min) min = got
      if (got > max) max = got
    })
    const expected = perSocket * group.receivers.length
    const done = min >= perSocket
    if (done || now() >= deadline) {
      return {
        complete: done && max === perSocket,
        expected,
        received,
        minPerSocket: min,
        maxPerSocket: max,
        otherFrames: group.other - group.otherBaseline,
        closed: group.closed,
        errors: group.errors,
        protocolErrors: group.protocolErrors,
        settleMs: Number(now() - started) / 1e6
      }
    }
    await sleep(10)
  }
}

async function stop () {
  for (const group of groups.values()) {
    for (const r of group.receivers) r.socket.destroy()
  }
  setImmediate(() => process.exit(0))
  return true
}

serve({ connect, window, settle, stop }, Number(process.env.BENCH_MAX_LIFETIME_MS ?? 300_000))
