// A hand-made WebSocket client over a raw TCP socket, for what the ws client refuses to send: oversized
// or invalid frames, bad fragment sequences, bad close codes, and peers that never read or answer.
import { once } from 'node:events'
import { createConnection } from 'node:net'

/**
 * Builds one client frame (masked unless `masked: false`).
 * @param {{ fin?: boolean, rsv?: number, opcode: number, payload?: Buffer | string, masked?: boolean, length?: number }} frame
 */
export function frame ({ fin = true, rsv = 0, opcode, payload = Buffer.alloc(0), masked = true, length }) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload)
  const size = length ?? data.length
  const header = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)]
  const maskBit = masked ? 0x80 : 0
  if (size < 126) {
    header.push(maskBit | size)
  } else if (size < 65536) {
    header.push(maskBit | 126, size >> 8, size & 0xff)
  } else {
    header.push(maskBit | 127, 0, 0, 0, 0, (size >>> 24) & 0xff, (size >>> 16) & 0xff, (size >>> 8) & 0xff, size & 0xff)
  }
  if (!masked) return Buffer.concat([Buffer.from(header), data])
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78])
  const body = Buffer.from(data)
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3]
  return Buffer.concat([Buffer.from(header), mask, body])
}

/** A close frame's payload: a 2-byte code and a reason. */
export function closePayload (code, reason = '') {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code, 0)
  payload.write(reason, 2)
  return payload
}

/**
 * Opens a raw WebSocket connection. `closed` resolves with the close code of the server's close frame
 * (or 1006 when the TCP connection ended without one); `frames` collects the server's data frames.
 */
export async function rawConnect (port, path = '/', { headers = {} } = {}) {
  const socket = createConnection({ host: '127.0.0.1', port })
  socket.setNoDelay(true)
  await once(socket, 'connect')
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`)
  let buffer = Buffer.alloc(0)
  let upgraded = false
  let status = 0
  let closeCode = null
  const frames = []
  let resolveHandshake
  const handshake = new Promise(resolve => { resolveHandshake = resolve })
  const closed = new Promise(resolve => {
    socket.on('close', () => {
      resolveHandshake(status)
      resolve(closeCode ?? 1006)
    })
  })
  socket.on('error', () => {})
  socket.on('data', chunk => {
    buffer = Buffer.concat([buffer, chunk])
    if (!upgraded) {
      const end = buffer.indexOf('\r\n\r\n')
      if (end === -1) return
      status = Number(/^HTTP\/1\.1 (\d+)/.exec(buffer.subarray(0, end).toString())[1])
      upgraded = status === 101
      buffer = buffer.subarray(end + 4)
      resolveHandshake(status)
      if (!upgraded) return
    }
    // Server frames are not masked.
    while (buffer.length >= 2) {
      let length = buffer[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffer.length < 4) return
        length = buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffer.length < 10) return
        length = Number(buffer.readBigUInt64BE(2))
        offset = 10
      }
      if (buffer.length < offset + length) return
      const opcode = buffer[0] & 0x0f
      const payload = buffer.subarray(offset, offset + length)
      buffer = buffer.subarray(offset + length)
      if (opcode === 0x8) {
        closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
        socket.end()
      } else {
        frames.push({ opcode, payload })
      }
    }
  })
  return { socket, handshake, closed, frames, send: data => socket.write(data) }
}
