// The load generator child of the benchmarks (bench/run.js, bench/fanout.js): many lean WebSocket
// clients in one process. Each is a raw TCP socket that does the HTTP upgrade itself and parses the
// server's frames minimally, so the client side costs far less per message than the server (a `ws`
// client would cost as much and hide the differences between servers).
//
// Two protocols: plain WebSocket ('ws'), and Socket.IO 4 over a raw WebSocket ('sio'): the upgrade is
// `GET /socket.io/?EIO=4&transport=websocket`, the server sends the engine.io open packet `0{...}`, the
// client connects the default namespace with `40` and waits for `40{...}`; events are text frames
// `42["event",payload]`, and the client answers engine.io pings `2` with `3`. WebSocket pings (the
// fastify-ws-hub heartbeat) are answered with pongs, so that no server drops an idle client.
//
// Client frames must be masked: every frame this client sends is built once, with a fixed mask key,
// and then written as is (the server unmasks it like any other).
//
// Commands (see ipc.js): connect, window, settle (fan-out), echo, setup (connection churn), close, stop.
import { createHash } from 'node:crypto'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { now, serve } from './ipc.js'

const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
const HEADER_END = Buffer.from('\r\n\r\n')
const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d])
// frames up to this payload size are parsed whole (kept until complete); larger ones are skipped over
const SMALL = 1024

/** A masked client frame (FIN set) with `opcode` and `payload`. */
export function maskedFrame (opcode, payload) {
  const data = Buffer.from(payload)
  const len = data.length
  const header = len < 126 ? 2 : len < 65536 ? 4 : 10
  const frame = Buffer.alloc(header + 4 + len)
  frame[0] = 0x80 | opcode
  if (len < 126) {
    frame[1] = 0x80 | len
  } else if (len < 65536) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(len, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(len), 2)
  }
  MASK.copy(frame, header)
  for (let i = 0; i < len; i++) frame[header + 4 + i] = data[i] ^ MASK[i & 3]
  return frame
}

const SIO_PONG = maskedFrame(0x1, '3')
const CLOSE_NORMAL = maskedFrame(0x8, Buffer.from([0x03, 0xe8])) // close frame, code 1000
const SIO_CONNECT = maskedFrame(0x1, '40')

/** The Socket.IO text of an event: `42["event",payload]`. */
export const sioEvent = (event, payload) => `42${JSON.stringify([event, payload])}`

/** A latency histogram: 10 us buckets up to 2 s (and one bucket above). */
class Histogram {
  constructor () {
    this.counts = new Uint32Array(200_001)
    this.n = 0
    this.sum = 0
    this.max = 0
  }

  record (ms) {
    let b = Math.round(ms * 100)
    if (b > 200_000) b = 200_000
    else if (b < 0) b = 0
    this.counts[b]++
    this.n++
    this.sum += ms
    if (ms > this.max) this.max = ms
  }

  percentile (p) {
    if (this.n === 0) return null
    const target = Math.max(1, Math.ceil(p * this.n))
    let acc = 0
    for (let b = 0; b < this.counts.length; b++) {
      acc += this.counts[b]
      if (acc >= target) return b / 100
    }
    return this.max
  }

  summary () {
    return {
      samples: this.n,
      p50Ms: this.percentile(0.5),
      p90Ms: this.percentile(0.9),
      p99Ms: this.percentile(0.99),
      p999Ms: this.percentile(0.999),
      maxMs: this.n === 0 ? null : this.max,
      meanMs: this.n === 0 ? null : this.sum / this.n
    }
  }
}

const destroy = (socket) => socket.destroy()

/** Groups of clients by name: cumulative counters and the sockets. */
const groups = new Map()

function newGroup (name, protocol) {
  return {
    name,
    protocol,
    receivers: [],
    frames: 0, // text frames that are messages (deliveries, echo replies)
    other: 0, // any other frame but pings
    pings: 0,
    bytes: 0,
    closed: 0,
    closeFrames: 0,
    errors: 0,
    protocolErrors: 0,
    baseline: null,
    otherBaseline: 0,
    echo: null // the echo state while an echo run is on (see `echo`)
  }
}

/** What to do with the frames of a client that has not finished its handshake (Socket.IO only). */
function handshakeFrame (r, b0, buf, start, end) {
  if (b0 !== 0x81 || end === start) {
    r.group.other++
    return
  }
  const c0 = buf[start]
  if (c0 === 0x30) { // '0{...}': the engine.io open packet; connect the default namespace
    r.socket.write(SIO_CONNECT)
  } else if (c0 === 0x34 && end - start >= 2 && buf[start + 1] === 0x30) { // '40{...}': connected
    r.ready = true
    const onReady = r.onReady
    r.onReady = null
    onReady?.()
  } else if (c0 === 0x32 && end - start === 1) { // '2': ping
    r.socket.write(SIO_PONG)
    r.group.pings++
  } else if (c0 === 0x34 && end - start >= 2 && buf[start + 1] === 0x34) { // '44{...}': connect refused
    r.socket.destroy(new Error(`socket.io namespace connect refused: ${buf.toString('utf8', start, end)}`))
  } else {
    r.group.other++
  }
}

/** A control or unexpected frame of a ready client. */
function otherFrame (r, b0, buf, start, end) {
  const g = r.group
  if (b0 === 0x89) { // ping: pong with its payload
    r.socket.write(maskedFrame(0xa, buf.subarray(start, end)))
    g.pings++
  } else if (b0 === 0x88) {
    g.closeFrames++
  } else {
    g.other++
  }
}

/**
 * Parses the frames in `chunk`, carrying a partial frame over to the next chunk. Text frames with FIN
 * are messages: counted (fan-out), or checked and answered (echo). Small frames are parsed whole, so a
 * Socket.IO ping `2` is always told from a message; large ones are skipped over and counted.
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
    if (r.skipOp === 0x81 && r.ready) frames++
    else g.other++
  }
  const e = g.echo
  let replies = 0
  let t = 0
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
    const start = i + header
    const end = start + len
    if (end > n) {
      if (len > SMALL) {
        r.skip = end - n
        r.skipOp = b0
        i = n
      }
      break
    }
    if (b0 !== 0x81 || !r.ready) {
      if (r.ready) otherFrame(r, b0, buf, start, end)
      else handshakeFrame(r, b0, buf, start, end)
    } else if (r.sio && len === 1 && buf[start] === 0x32) { // engine.io ping
      r.socket.write(SIO_PONG)
      g.pings++
    } else if (e === null) {
      frames++
    } else if (len === e.replyLen && buf.compare(e.reply, 0, len, start, end) === 0) {
      if (t === 0) t = performance.now()
      if (e.recording) e.hist.record(t - r.ring[r.head])
      r.head = (r.head + 1) & e.ringMask
      r.outstanding--
      replies++
    } else {
      e.bad++
    }
    i = end
  }
  if (i < n) r.pending = Buffer.from(buf.subarray(i)) // a partial small frame (copied)
  if (frames > 0) {
    r.count += frames
    g.frames += frames
  }
  if (replies > 0) {
    r.count += replies
    g.frames += replies
    if (e.sending) {
      // as many new messages as came back, in one write
      r.socket.write(e.frames.subarray(0, replies * e.frameLen))
      for (let k = 0; k < replies; k++) {
        r.ring[r.tail] = t
        r.tail = (r.tail + 1) & e.ringMask
      }
      r.outstanding += replies
      e.sent += replies
    }
  }
}

/** The upgrade request's path for a protocol ('sio': the engine.io endpoint, `query` appended). */
function pathFor (protocol, path) {
  if (protocol !== 'sio') return path
  const q = path.indexOf('?')
  return `/socket.io/?EIO=4&transport=websocket${q === -1 ? '' : `&${path.slice(q + 1)}`}`
}

/**
 * Opens one client on 127.0.0.1:port and resolves with it once the handshake is done (the 101 for
 * 'ws'; the 101, the open packet and the namespace connect for 'sio'). `track` adds it to its group.
 */
function connectOne (port, path, group, timeoutMs, track = true) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const sio = group.protocol === 'sio'
    const r = {
      socket,
      group,
      sio,
      ready: false,
      onReady: null,
      count: 0,
      skip: 0,
      skipOp: 0,
      pending: null,
      upgraded: false,
      ring: null,
      head: 0,
      tail: 0,
      outstanding: 0
    }
    let head = Buffer.alloc(0)
    let settled = false
    const finish = (err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err !== undefined) {
        socket.destroy()
        reject(err)
        return
      }
      if (track) group.receivers.push(r)
      resolve(r)
    }
    const timer = setTimeout(() => finish(new Error(`handshake to ${path} timed out`)), timeoutMs)
    socket.setNoDelay(true)
    socket.on('connect', () => {
      socket.write(`GET ${pathFor(group.protocol, path)} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
    socket.on('data', (chunk) => {
      if (r.upgraded) {
        parse(r, chunk)
        return
      }
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk])
      const at = head.indexOf(HEADER_END)
      if (at === -1) {
        if (head.length > 8192) finish(new Error('handshake response too long'))
        return
      }
      const response = head.subarray(0, at).toString('latin1')
      const rest = head.subarray(at + 4)
      head = null
      const accept = /\r\nsec-websocket-accept:[ \t]*(\S+)/i.exec(response)?.[1]
      if (!response.startsWith('HTTP/1.1 101') || accept !== ACCEPT) {
        finish(new Error(`upgrade to ${path} refused: ${response.split('\r\n')[0]}`))
        return
      }
      r.upgraded = true
      if (sio) r.onReady = () => finish()
      else r.ready = true
      if (rest.length > 0) parse(r, rest)
      if (!sio) finish()
    })
    socket.on('error', (err) => {
      group.errors++
      finish(err)
    })
    socket.on('close', () => {
      if (r.upgraded) group.closed++
      finish(new Error(`connection to ${path} closed during the handshake`))
    })
  })
}

/** Opens `count` clients in group `name`, at most `concurrency` handshakes at a time. */
async function connect ({ group: name, protocol = 'ws', port, path, count, concurrency = 100, timeoutMs = 10_000 }) {
  const group = groups.get(name) ?? newGroup(name, protocol)
  groups.set(name, group)
  for (let done = 0; done < count;) {
    const batch = Math.min(concurrency, count - done)
    await Promise.all(Array.from({ length: batch }, () => connectOne(port, path, group, timeoutMs)))
    done += batch
  }
  return { connected: group.receivers.length }
}

/** Closes every client of a group at once (a TCP reset: no TIME_WAIT left behind) and forgets it. */
async function close ({ group: name }) {
  const group = groups.get(name)
  if (group === undefined) return { closed: 0 }
  for (const r of group.receivers) r.socket.resetAndDestroy()
  groups.delete(name)
  return { closed: group.receivers.length }
}

function snapshot (group) {
  return { ns: now(), frames: group === null ? 0 : group.frames, cpu: process.cpuUsage() }
}

/** A snapshot at the absolute monotonic time `at` (ns, as a string); `then` runs right after it. */
async function sampleAt (at, group, then) {
  const target = BigInt(at)
  const wait = Number(target - now()) / 1e6
  if (wait > 0) await sleep(wait)
  // timers round to whole ms and may fire a little early: top up (at most a few 1 ms sleeps)
  for (let i = 0; i < 5 && now() < target; i++) await sleep(1)
  const s = snapshot(group)
  then?.()
  return s
}

function windowOf (a, b, t0) {
  const cpu = process.cpuUsage(a.cpu)
  const seconds = Number(b.ns - a.ns) / 1e9
  return {
    frames: b.frames - a.frames,
    seconds,
    startNs: String(a.ns),
    endNs: String(b.ns),
    startLateMs: Number(a.ns - BigInt(t0)) / 1e6,
    cpuUs: cpu.user + cpu.system,
    cpuUserUs: cpu.user,
    userPct: cpu.user / 1e4 / seconds,
    cpuPct: (cpu.user + cpu.system) / 1e4 / seconds
  }
}

/**
 * Fan-out: remembers every client's count (the baseline for `settle`), then counts the messages
 * received in [t0, t1] (absolute monotonic ns) and this process's CPU time over it.
 */
async function window ({ group: name, t0, t1 }) {
  const group = groups.get(name)
  group.baseline = group.receivers.map((r) => r.count)
  group.otherBaseline = group.other
  const a = await sampleAt(t0, group)
  const b = await sampleAt(t1, group)
  return windowOf(a, b, t0)
}

/** Fan-out: waits (at most `timeoutMs`) until every client has got `perSocket` messages since the baseline. */
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
        complete: done && max === perSocket && group.closed === 0,
        expected,
        received,
        minPerSocket: min,
        maxPerSocket: max,
        otherFrames: group.other - group.otherBaseline,
        closed: group.closed,
        errors: group.errors,
        protocolErrors: group.protocolErrors,
        pingsAnswered: group.pings,
        settleMs: Number(now() - started) / 1e6
      }
    }
    await sleep(10)
  }
}

/**
 * Echo: from `start`, every client of the group keeps `inflight` messages of `text` in flight (a reply
 * sends the next one); the replies must be the same bytes. Counts the replies in [t0, t1] and their
 * round-trip times, stops sending at t1 and waits (at most `drainTimeoutMs`) for the last replies.
 * With `message` and `reply`, the client sends `message` and expects `reply` instead (a request and its
 * response: a JSON-RPC call, a Socket.IO event with an acknowledgement).
 */
async function echo ({ group: name, start, t0, t1, inflight, text, message, reply, drainTimeoutMs = 5000 }) {
  const group = groups.get(name)
  if (group === undefined || group.receivers.length === 0) throw new Error(`no clients in group ${name}`)
  if ((inflight & (inflight - 1)) !== 0 || inflight < 1 || inflight > 64) throw new Error('inflight must be a power of 2 in [1, 64]')
  const payload = message ?? (group.protocol === 'sio' ? sioEvent('m', text) : text)
  const expected = reply ?? payload
  const frame = maskedFrame(0x1, payload)
  const e = {
    reply: Buffer.from(expected),
    replyLen: Buffer.byteLength(expected),
    frames: Buffer.concat(Array.from({ length: inflight }, () => frame)),
    frameLen: frame.length,
    ringMask: inflight - 1,
    sending: false,
    recording: false,
    sent: 0,
    bad: 0,
    hist: new Histogram()
  }
  for (const r of group.receivers) {
    r.ring = new Float64Array(inflight)
    r.head = 0
    r.tail = 0
    r.outstanding = 0
  }
  const errorsBefore = group.errors
  const closedBefore = group.closed
  group.echo = e

  const wait = Number(BigInt(start) - now()) / 1e6
  if (wait > 0) await sleep(wait)
  e.sending = true
  const t = performance.now()
  for (const r of group.receivers) {
    r.socket.write(e.frames)
    r.ring.fill(t)
    r.outstanding = inflight
  }
  e.sent += inflight * group.receivers.length

  const a = await sampleAt(t0, group, () => { e.recording = true })
  const b = await sampleAt(t1, group, () => {
    e.recording = false
    e.sending = false
  })
  const drainStart = now()
  let unanswered = 0
  for (let i = 0; i < drainTimeoutMs / 5; i++) {
    unanswered = 0
    for (const r of group.receivers) unanswered += r.outstanding
    if (unanswered === 0) break
    await sleep(5)
  }
  group.echo = null
  return {
    ...windowOf(a, b, t0),
    replies: b.frames - a.frames,
    sent: e.sent,
    unanswered,
    bad: e.bad,
    errors: group.errors - errorsBefore,
    closed: group.closed - closedBefore,
    protocolErrors: group.protocolErrors,
    pingsAnswered: group.pings,
    drainMs: Number(now() - drainStart) / 1e6,
    latency: e.hist.summary()
  }
}

/**
 * Connection setup: from `start`, `concurrency` clients at a time open a connection, do the handshake
 * (for 'sio' up to the namespace connect), then close it normally and start the next. Counts the handshakes
 * completed in [t0, t1] and their times; stops at t1 and lets the handshakes under way finish.
 */
async function setup ({ port, path, protocol = 'ws', concurrency, start, t0, t1, timeoutMs = 10_000 }) {
  const group = newGroup('setup', protocol)
  const hist = new Histogram()
  let completed = 0
  let failed = 0
  let running = false
  let recording = false
  const failures = []
  const counter = { get frames () { return completed } }

  const slot = async () => {
    while (running) {
      const t = performance.now()
      let r
      try {
        r = await connectOne(port, path, group, timeoutMs, false)
      } catch (err) {
        failed++
        if (failures.length < 5) failures.push(err.message)
        if (failed >= 100) running = false
        continue
      }
      completed++
      if (recording) hist.record(performance.now() - t)
      // a normal close, as a client that is done sends it: a close frame; the server answers with its
      // own and closes the TCP connection first, so TIME_WAIT is on its side and this side's ports are
      // not used up (a reset would cost every server an ECONNRESET error with a stack trace instead)
      r.socket.write(CLOSE_NORMAL)
      setTimeout(destroy, 5000, r.socket).unref()
    }
  }

  const wait = Number(BigInt(start) - now()) / 1e6
  if (wait > 0) await sleep(wait)
  running = true
  const slots = Array.from({ length: concurrency }, slot)
  const a = await sampleAt(t0, counter, () => { recording = true })
  const b = await sampleAt(t1, counter, () => {
    recording = false
    running = false
  })
  await Promise.all(slots)
  return {
    ...windowOf(a, b, t0),
    connects: b.frames - a.frames,
    completed,
    failed,
    failures,
    protocolErrors: group.protocolErrors,
    latency: hist.summary()
  }
}

async function stop () {
  for (const group of groups.values()) {
    for (const r of group.receivers) r.socket.resetAndDestroy()
  }
  setImmediate(() => process.exit(0))
  return true
}

serve({ connect, window, settle, echo, setup, close, stop }, Number(process.env.BENCH_MAX_LIFETIME_MS ?? 300_000))
