// A real browser: Debian's Chromium, driven by playwright-core, against the example app. Two pages join
// one room and chat through a reconnecting WebSocket; an announce from POST reaches both; a page whose
// process is killed recovers on the other process, and that test takes the screenshot that the README
// shows (docs/screenshot.png).
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { sleep, startExample } from './helpers.js'
import { startRedis } from './redis-server.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const missing = existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM}: install it with "apt-get install -y chromium" (.ci/run does)`

/** Launches headless Chromium with a fresh profile and no background networking. */
async function launch (t) {
  const { chromium } = await import('playwright-core')
  const profile = mkdtempSync(join(tmpdir(), 'wshub-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 900, height: 620 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'
    ]
  })
  t.after(async () => {
    await context.close()
    rmSync(profile, { recursive: true, force: true })
  })
  return context
}

/** Joins `room` as `nick` on a page of the example, and waits for the welcome. */
async function joinAs (page, base, nick, room) {
  await page.goto(base)
  await page.fill('#nick', nick)
  await page.fill('#room', room)
  await page.click('#join-button')
  await page.waitForFunction(() => !document.querySelector('#text').disabled, null, { timeout: 10_000 })
}

/** Sends a chat line from a page. */
async function say (page, text) {
  await page.fill('#text', text)
  await page.click('#send')
}

const logText = page => page.textContent('#log')

test('two browser pages chat in one room, and an announce from POST reaches both', { skip: CI() ? false : missing }, async t => {
  assert.ok(!missing, missing || '')
  const { base } = await startExample(t)
  const context = await launch(t)
  const ann = await context.newPage()
  const bob = await context.newPage()
  const errors = []
  for (const page of [ann, bob]) page.on('pageerror', err => errors.push(err.message))

  await joinAs(ann, base, 'ann', 'general')
  await joinAs(bob, base, 'bob', 'general')
  await ann.waitForFunction(() => document.querySelector('#log').textContent.includes('bob joined · 2 here'), null, { timeout: 10_000 })
  assert.match(await ann.textContent('#status'), /ann in general · 2 here/)

  await say(ann, 'hi bob, from a real browser')
  await say(bob, 'hello ann')
  for (const page of [ann, bob]) {
    await page.waitForFunction(() => document.querySelector('#log').textContent.includes('bob: hello ann'), null, { timeout: 10_000 })
    const log = await logText(page)
    assert.ok(log.indexOf('ann: hi bob, from a real browser') < log.indexOf('bob: hello ann'), 'both pages see the same order')
  }
  // "say" is a JSON-RPC call: its reply marks the sender's own line as delivered, on the sender's page only.
  await ann.waitForFunction(() => [...document.querySelectorAll('#log p')].some(p =>
    p.textContent.startsWith('ann: hi bob') && p.querySelector('.delivered')?.textContent.includes('delivered to 2')), null, { timeout: 10_000 })
  await bob.waitForFunction(() => [...document.querySelectorAll('#log p')].some(p =>
    p.textContent.startsWith('bob: hello ann') && p.querySelector('.delivered') !== null), null, { timeout: 10_000 })
  assert.equal(await bob.evaluate(() => document.querySelectorAll('#log .delivered').length), 1, 'only the sender\'s own line is marked')

  const res = await fetch(`${base}/rooms/general/announce`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'Deploy at 17:00' })
  })
  assert.equal(res.status, 202)
  for (const page of [ann, bob]) {
    await page.waitForFunction(() => document.querySelector('#log').textContent.includes('Deploy at 17:00'), null, { timeout: 10_000 })
  }
  // The lobby feed (a function handler) keeps the live member count in the side panel.
  await ann.waitForFunction(() => document.querySelector('#rooms').textContent.includes('general2'), null, { timeout: 10_000 })

  assert.deepEqual(errors, [], 'no script error on the pages')

  await bob.close()
  await ann.waitForFunction(() => document.querySelector('#log').textContent.includes('bob left · 1 here'), null, { timeout: 10_000 })
})

test('with Redis, two pages on two app processes chat in one room', { skip: CI() ? false : missing }, async t => {
  assert.ok(!missing, missing || '')
  const redis = await startRedis(t)
  const one = await startExample(t, { REDIS_URL: redis.url })
  const two = await startExample(t, { REDIS_URL: redis.url })
  assert.notEqual(one.base, two.base)
  const context = await launch(t)
  const ann = await context.newPage()
  const bob = await context.newPage()
  await joinAs(ann, one.base, 'ann', 'cluster')
  await joinAs(bob, two.base, 'bob', 'cluster')
  // The member count is cluster-wide: each page sees 2 in the room, though each process holds one.
  await ann.waitForFunction(() => document.querySelector('#log').textContent.includes('bob joined · 2 here'), null, { timeout: 10_000 })
  await say(ann, 'hello from process one')
  await say(bob, 'hello from process two')
  for (const page of [ann, bob]) {
    await page.waitForFunction(() => {
      const log = document.querySelector('#log').textContent
      return log.includes('ann: hello from process one') && log.includes('bob: hello from process two')
    }, null, { timeout: 10_000 })
  }
  await ann.waitForFunction(() => document.querySelector('#log .delivered')?.textContent.includes('delivered to 2'), null, { timeout: 10_000 })
  // An announce sent to one process reaches the page on the other.
  const res = await fetch(`${one.base}/rooms/cluster/announce`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'through Redis' })
  })
  assert.deepEqual(await res.json(), { room: 'cluster', members: 2 })
  await bob.waitForFunction(() => document.querySelector('#log').textContent.includes('through Redis'), null, { timeout: 10_000 })
})

/**
 * A TCP load balancer in front of app processes, as a user would have one: each new connection goes to
 * the first backend that accepts it, so when a process dies its pages reconnect to the next one.
 */
async function balancer (t, ports) {
  const sockets = new Set()
  const server = createServer(client => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    const tryBackend = i => {
      if (i === ports.length) return client.destroy()
      const backend = createConnection({ host: '127.0.0.1', port: ports[i] })
      backend.once('error', () => tryBackend(i + 1))
      backend.once('connect', () => {
        backend.removeAllListeners('error')
        backend.on('error', () => client.destroy())
        backend.on('close', () => client.destroy())
        client.on('close', () => backend.destroy())
        client.pipe(backend).pipe(client)
      })
    }
    tryBackend(0)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return `http://127.0.0.1:${server.address().port}`
}

/** page.waitForFunction, failing with what the page shows. */
async function waitFor (page, fn, arg, timeout) {
  try {
    await page.waitForFunction(fn, arg, { timeout })
  } catch (err) {
    const shown = await page.evaluate(() => ({
      status: document.querySelector('#status').textContent,
      members: [...document.querySelectorAll('#members li')].map(li => li.textContent),
      log: [...document.querySelectorAll('#log p')].slice(-5).map(p => p.textContent)
    }))
    throw new Error(`${err.message}: waiting for ${fn}; the page shows ${JSON.stringify(shown)}`)
  }
}

const portOf = base => Number(new URL(base).port)

test('a page whose process is killed reconnects to the other one, shows every message once and in order, and who is here', { skip: CI() ? false : missing, timeout: 120_000 }, async t => {
  assert.ok(!missing, missing || '')
  const redis = await startRedis(t)
  const env = { REDIS_URL: redis.url, NODE_TTL: '1500' }
  const one = await startExample(t, env)
  const two = await startExample(t, env)
  const front = await balancer(t, [portOf(one.base), portOf(two.base)])
  const context = await launch(t)
  const ann = await context.newPage()
  const bob = await context.newPage()
  const annAgain = await context.newPage()
  const errors = []
  for (const page of [ann, bob, annAgain]) page.on('pageerror', err => errors.push(err.message))
  await joinAs(ann, front, 'ann', 'resilient') // through the balancer: on process one
  await joinAs(bob, two.base, 'bob', 'resilient')
  await joinAs(annAgain, two.base, 'ann', 'resilient') // a second tab of ann
  const members = page => page.$$eval('#members li', items => items.map(li => li.textContent))
  // Two tabs of one person are one name.
  await waitFor(bob, () => document.querySelectorAll('#members li').length === 2, null, 10_000)
  assert.deepEqual(await members(bob), ['ann', 'bob (you)'])
  await waitFor(ann, () => document.querySelectorAll('#members li').length === 2, null, 10_000)

  await say(ann, 'ann before the crash')
  await waitFor(ann, () => document.querySelector('#log .mine')?.textContent.includes('ann before the crash'), null, 10_000)
  const lines = 30
  for (let i = 1; i <= lines; i++) {
    if (i === 8) {
      // Every status the page shows from now on.
      await ann.evaluate(() => {
        window.statuses = []
        new window.MutationObserver(() => window.statuses.push(document.querySelector('#status').textContent))
          .observe(document.querySelector('#status'), { childList: true, characterData: true, subtree: true })
      })
      one.child.kill('SIGKILL')
      await waitFor(ann, () => window.statuses.includes('reconnecting...'), null, 10_000)
    }
    await say(bob, `line ${i}`)
    await sleep(30)
  }
  // Back, on process two, with everything it missed.
  await waitFor(ann, n => document.querySelector('#log').textContent.includes(`bob: line ${n}`), lines, 20_000)
  const log = await ann.$$eval('#log p', ps => ps.map(p => p.textContent))
  const said = log.filter(text => /^bob: line \d+$/.test(text))
  assert.deepEqual(said, Array.from({ length: lines }, (_, i) => `bob: line ${i + 1}`), 'every line once, in order')
  assert.equal(log.filter(text => text.startsWith('ann: ann before the crash')).length, 1)
  assert.doesNotMatch(log.join('\n'), /may be missing/)
  // The dead process's entry of ann has left; ann is still here through her other tab and this page.
  await waitFor(ann, () => document.querySelectorAll('#members li').length === 2, null, 10_000)
  assert.deepEqual(await members(ann), ['ann (you)', 'bob'])
  assert.equal(await ann.textContent('#status'), 'ann in resilient · 2 here')
  await say(ann, 'ann is back')
  await waitFor(ann, () => document.querySelector('#log .mine:last-child')?.textContent.includes('ann is back'), null, 10_000)
  await ann.screenshot({ path: new URL('../docs/screenshot.png', import.meta.url).pathname })
  assert.deepEqual(errors, [], 'no script error on the pages')
})

/** In CI a missing Chromium is a failure (.ci/run installs it), never a skip. */
function CI () {
  return process.env.CI === 'true'
}
