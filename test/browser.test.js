// A real browser: Debian's Chromium, driven by playwright-core, against the example app. Two pages join
// one room and chat through the browser's own WebSocket; an announce from POST reaches both; the test
// takes the screenshot that the README shows (docs/screenshot.png).
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startExample } from './helpers.js'
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

  await ann.screenshot({ path: new URL('../docs/screenshot.png', import.meta.url).pathname })
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

/** In CI a missing Chromium is a failure (.ci/run installs it), never a skip. */
function CI () {
  return process.env.CI === 'true'
}
