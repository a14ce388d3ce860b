// The fan-out publish loop of the server children (fanout-server.js, server.js): publishes in bursts,
// measures the server's CPU time over a window, and waits for slow sockets instead of buffering without
// bound.
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises'
import { now } from './ipc.js'

const OPEN = 1

/**
 * Waits until the underlying TCP sockets of `sockets` have flushed (their 'drain'), at most `ms`.
 * Resolves true, or false on the timeout. No busy waiting: the wait must not show up as server CPU.
 */
function waitDrain (sockets, ms) {
  return new Promise((resolve) => {
    const waiting = []
    let left = 0
    let settled = false
    const finish = (ok) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      for (const [raw, listener] of waiting) raw.removeListener('drain', listener)
      resolve(ok)
    }
    const timer = setTimeout(finish, ms, false)
    const onDrain = () => { if (--left === 0) finish(true) }
    for (const socket of sockets) {
      const raw = socket._socket
      if (raw != null && raw.writableNeedDrain) {
        left++
        raw.once('drain', onDrain)
        waiting.push([raw, onDrain])
      }
    }
    // bytes held above the TCP socket (ws sender, Socket.IO's write buffer): poll gently
    if (left === 0) setTimeout(finish, 1, true)
  })
}

/**
 * Publishes with `variant.publish()` (one message to every member; may return a promise) in bursts
 * from `start` until `t1` (absolute monotonic ns, as strings), measuring [t0, t1]: after each burst,
 * yields to the event loop (setImmediate) or, when a member has more than `limit` bytes buffered, waits
 * for those sockets to drain. `variant.sockets()` lists the members: objects with `bufferedAmount`,
 * `readyState` and `_socket` (the net.Socket), as ws WebSockets have.
 */
export async function publishRun (variant, { start, t0, t1, limit, burstDeliveries, drainTimeoutMs }) {
  const sockets = [...variant.sockets()]
  const members = sockets.length
  if (members === 0) throw new Error('no members')
  const perBurst = Math.max(1, Math.round(burstDeliveries / members))
  const T0 = BigInt(t0)
  const T1 = BigInt(t1)

  globalThis.gc?.()
  const wait = Number(BigInt(start) - now()) / 1e6
  if (wait > 0) await sleep(wait)

  let published = 0
  let bursts = 0
  let drainWaits = 0
  let drainTimeouts = 0
  let maxBuffered = 0
  let mark = null
  while (true) {
    const t = now()
    if (mark === null && t >= T0) mark = { ns: t, cpu: process.cpuUsage(), published, drainWaits }
    if (t >= T1) break
    for (let i = 0; i < perBurst; i++) {
      const pending = variant.publish()
      if (pending !== undefined) await pending
      published++
    }
    bursts++
    let over = null
    for (const socket of sockets) {
      const buffered = socket.bufferedAmount
      if (buffered > maxBuffered) maxBuffered = buffered
      if (buffered > limit) (over ??= []).push(socket)
    }
    if (over !== null) {
      drainWaits++
      if (!await waitDrain(over, drainTimeoutMs)) drainTimeouts++
    } else {
      await immediate()
    }
  }
  const end = now()
  const cpu = process.cpuUsage(mark.cpu)
  const messages = published - mark.published
  const seconds = Number(end - mark.ns) / 1e9
  return {
    members,
    perBurst,
    published,
    bursts,
    drainWaits,
    drainTimeouts,
    maxBuffered,
    window: {
      startNs: String(mark.ns),
      endNs: String(end),
      seconds,
      messages,
      writes: messages * members,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      userPct: cpu.user / 1e4 / seconds,
      drainWaits: drainWaits - mark.drainWaits
    },
    openAfter: sockets.filter((s) => s.readyState === OPEN).length
  }
}
