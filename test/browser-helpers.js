// What the browser tests share: Debian's Chromium driven by playwright-core, and the example page's actions.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const missing = existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM}: install it with "apt-get install -y chromium" (.ci/run does)`

/** Launches headless Chromium with a fresh profile and no background networking. */
export async function launch (t) {
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
export async function joinAs (page, base, nick, room) {
  await page.goto(base)
  await page.fill('#nick', nick)
  await page.fill('#room', room)
  await page.click('#join-button')
  await page.waitForFunction(() => !document.querySelector('#text').disabled, null, { timeout: 10_000 })
}

/** Sends a chat line from a page. */
export async function say (page, text) {
  await page.fill('#text', text)
  await page.click('#send')
}

export const logText = page => page.textContent('#log')
/** In CI a missing Chromium is a failure (.ci/run installs it), never a skip. */
export function CI () {
  return process.env.CI === 'true'
}
