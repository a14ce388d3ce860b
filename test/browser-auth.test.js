// A real browser (Debian's Chromium through playwright-core) and the advice of the README's "Browsers and
// authentication": a page reads the 4xxx close code of a socket that was accepted and then closed, but
// only 1006 for a handshake a hook refused.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import Fastify from 'fastify'
import wsHub, { WebSocketHandler } from '../dist/lib/index.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const missing = existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM}: install it with "apt-get install -y chromium" (.ci/run does)`
const skip = process.env.CI === 'true' ? false : missing

test('a page reads the 4xxx code of an accepted-then-closed socket, and only 1006 for a refused handshake', { skip }, async t => {
  assert.ok(!missing, missing || '')
  const app = Fastify()
  t.after(() => app.close())
  await app.register(wsHub)
  // The pattern of "Browsers and authentication": connect() runs after the upgrade, so its close reaches the page.
  app.wsRoute('/inbox', class InboxSocket extends WebSocketHandler {
    async connect () {
      if (this.query.token !== 'good') return this.close(4401, 'Unauthorized')
      await this.accept()
      await this.send('welcome')
    }
  })
  app.wsRoute('/hooked', async () => {}, { preValidation: async (request, reply) => reply.code(401).send() })
  app.get('/', async (request, reply) => reply.type('text/html').send('<!doctype html><title>auth</title>'))
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
  t.after(() => browser.close())
  const page = await browser.newPage()
  await page.goto(base)
  const outcome = (path) => page.evaluate((url) => new Promise(resolve => {
    const socket = new WebSocket(url)
    let first = null
    socket.onmessage = (event) => { first = event.data; socket.close(1000) }
    socket.onclose = (event) => resolve({ code: event.code, reason: event.reason, first })
  }), base.replace('http', 'ws') + path)
  assert.deepEqual(await outcome('/inbox?token=bad'), { code: 4401, reason: 'Unauthorized', first: null })
  assert.deepEqual(await outcome('/inbox?token=good'), { code: 1000, reason: '', first: 'welcome' })
  assert.deepEqual(await outcome('/hooked'), { code: 1006, reason: '', first: null })
})
