// The tracked-presence tests, run on one process (in memory) and on a real redis-server by
// presence.test.js and presence-tracker-redis.test.js.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { build, connect, until } from './helpers.js'

/**
 * /p/<room>?key=<key>&name=<name>[&join=1] tracks the key (and joins the room when asked), then says
 * "tracked". A message "untrack" untracks, "rename <name>" tracks again with a new meta.
 */
export function presenceRoute (app) {
  app.wsRoute('/p/:room', async conn => {
    const { room } = conn.params
    if (conn.query.join === '1') await conn.join(room)
    await conn.track(room, conn.query.key, { name: conn.query.name })
    await conn.send('tracked')
    for await (const message of conn) {
      const [verb, arg] = String(message).split(' ')
      if (verb === 'untrack') await conn.untrack(room, conn.query.key)
      if (verb === 'rename') await conn.track(room, conn.query.key, { name: arg })
      await conn.send('done')
    }
  })
}

/** Applies a diff to a presence state as a client would: leaves first (by id), then joins. */
export function apply (state, { joins, leaves }) {
  const next = structuredClone(state)
  for (const [key, entries] of Object.entries(leaves)) {
    next[key] = (next[key] ?? []).filter(entry => !entries.some(left => left.id === entry.id))
    if (next[key].length === 0) delete next[key]
  }
  for (const [key, entries] of Object.entries(joins)) next[key] = [...(next[key] ?? []), ...entries]
  return next
}

/** A presence state with each key's entries in id order, to compare states. */
export function sorted (state) {
  const out = {}
  for (const key of Object.keys(state).sort()) out[key] = [...state[key]].sort((a, b) => a.id.localeCompare(b.id))
  return out
}

/**
 * @param {string} name - what the suite runs on
 * @param {() => object} options - the registration options
 */
export function presenceSuite (name, options) {
  test(`${name}: two tabs of one key are two entries; untrack, re-track and close give joins and leaves`, async t => {
    const diffs = []
    const app = await build(t, presenceRoute, options())
    app.ws.on('presence', diff => diffs.push(diff))
    const watcher = await connect(t, app, '/p/lobby?key=watch&name=W&join=1')
    assert.equal(await watcher.next(), 'tracked')
    const before = await app.ws.presence('lobby')
    const tab1 = await connect(t, app, '/p/lobby?key=ann&name=Ann')
    assert.equal(await tab1.next(), 'tracked')
    const tab2 = await connect(t, app, '/p/lobby?key=ann&name=Ann')
    assert.equal(await tab2.next(), 'tracked')
    let state = await app.ws.presence('lobby')
    assert.equal(state.ann.length, 2)
    assert.deepEqual(state.ann.map(entry => entry.meta), [{ name: 'Ann' }, { name: 'Ann' }])
    assert.ok(state.ann.every(entry => typeof entry.id === 'string'))

    tab1.send('rename Annie')
    assert.equal(await tab1.next(), 'done')
    state = await app.ws.presence('lobby')
    assert.deepEqual(state.ann.map(entry => entry.meta.name).sort(), ['Ann', 'Annie'])
    const rename = diffs.at(-1)
    assert.equal(rename.room, 'lobby')
    assert.deepEqual(rename.joins.ann.map(entry => entry.meta), [{ name: 'Annie' }])
    assert.deepEqual(rename.leaves.ann.map(entry => entry.meta), [{ name: 'Ann' }])

    tab1.send('untrack')
    assert.equal(await tab1.next(), 'done')
    assert.equal((await app.ws.presence('lobby')).ann.length, 1)
    tab2.ws.close()
    await until(async () => (await app.ws.presence('lobby')).ann === undefined, 3000, 'the closed tab to leave')
    await until(() => diffs.length === 6, 3000, 'six diffs')
    // Applied in order to the earlier presence, the diffs give the current one.
    let replayed = before
    for (const diff of diffs.slice(1)) replayed = apply(replayed, diff)
    assert.deepEqual(sorted(replayed), sorted(await app.ws.presence('lobby')))
    // Untracking what is not tracked changes nothing.
    tab1.send('untrack')
    assert.equal(await tab1.next(), 'done')
    assert.equal(diffs.length, 6)
  })

  test(`${name}: 'presence' is emitted only on a node with a member of the room; off() stops it`, async t => {
    const diffs = []
    const listener = diff => diffs.push(diff)
    const app = await build(t, presenceRoute, options())
    app.ws.on('presence', listener)
    const lone = await connect(t, app, '/p/empty?key=a&name=A')
    assert.equal(await lone.next(), 'tracked')
    assert.deepEqual(Object.keys(await app.ws.presence('empty')), ['a'])
    const member = await connect(t, app, '/p/full?key=b&name=B&join=1')
    assert.equal(await member.next(), 'tracked')
    await until(() => diffs.length === 1)
    assert.equal(diffs[0].room, 'full')
    app.ws.off('presence', listener)
    member.send('rename C')
    assert.equal(await member.next(), 'done')
    assert.equal(diffs.length, 1)
  })

  test(`${name}: bad keys, metas, rooms and events are refused`, async t => {
    let conn
    const app = await build(t, a => a.wsRoute('/x', async c => { conn = c; await c.send('hi') }), options())
    const client = await connect(t, app, '/x')
    await client.next()
    await assert.rejects(conn.track('r', '', {}), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    await assert.rejects(conn.track('r', 5, {}), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    await assert.rejects(conn.track('r', 'k', [1]), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    await assert.rejects(conn.track('r', 'k', 'text'), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    const cycle = {}
    cycle.self = cycle
    await assert.rejects(conn.track('r', 'k', cycle), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    await assert.rejects(conn.track('', 'k', {}), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(conn.untrack('', 'k'), { code: 'WSHUB_ERR_INVALID_ROOM' })
    await assert.rejects(conn.untrack('r', ''), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    await assert.rejects(app.ws.presence(''), { code: 'WSHUB_ERR_INVALID_ROOM' })
    assert.throws(() => app.ws.on('joined', () => {}), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    assert.throws(() => app.ws.on('presence', 'nope'), { code: 'WSHUB_ERR_INVALID_ARGUMENT' })
    // A meta may be left out ({}), and a listener that throws is logged, not fatal.
    app.ws.on('presence', () => { throw new Error('listener bug') })
    await conn.join('r')
    await conn.track('r', 'k')
    assert.deepEqual((await app.ws.presence('r')).k.map(entry => entry.meta), [{}])
    await until(() => app.logLines.some(line => line.msg === 'fastify-ws-hub: a presence listener threw'))
    await conn.close()
    await assert.rejects(conn.track('r', 'k', {}), { code: 'WSHUB_ERR_CONNECTION_CLOSED' })
  })
}
