// A real browser (Chromium via playwright-core) against two example processes on one Redis behind a
// small load balancer: the process a page is on is killed with SIGKILL while another page keeps writing;
// the page reconnects to the other process, recovers what it missed, and shows who is here. This test
// takes the screenshot that the README shows (docs/screenshot.png).
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createConnection, createServer } from 'node:net'
import { test } from 'node:test'
import { CI, joinAs, launch, missing, say } from './browser-helpers.js'
import { startExample } from './helpers.js'
import { startRedis } from './redis-server.js'

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
  const env = { REDIS_URL: redis.url, NODE_TTL: '1000' }
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
  // Bob's page writes lines from/to, as fast as its form takes them, a few ms apart.
  const write = (from, to) => bob.evaluate(async ([from, to]) => {
    for (let i = from; i <= to; i++) {
      document.querySelector('#text').value = `line ${i}`
      document.querySelector('#say').requestSubmit()
      await new Promise(resolve => setTimeout(resolve, 15))
    }
  }, [from, to])
  await write(1, 7)
  // Every status the page shows from now on.
  await ann.evaluate(() => {
    window.statuses = []
    new window.MutationObserver(() => window.statuses.push(document.querySelector('#status').textContent))
      .observe(document.querySelector('#status'), { childList: true, characterData: true, subtree: true })
  })
  one.child.kill('SIGKILL')
  await write(8, 18)
  await waitFor(ann, () => window.statuses.includes('reconnecting...'), null, 10_000)
  await write(19, lines)
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
