// Meta-tests over lib/errors.ts (as fastify's test/internals/errors.test.js): every error is coded,
// the count is pinned, and every code is documented in the README.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import * as errors from '../dist/lib/errors.js'

const coded = Object.entries(errors).filter(([key]) => key.startsWith('WSHUB_ERR_'))

test('the number of errors is pinned (a new one needs docs and tests)', () => {
  assert.equal(coded.length, 20)
})

test('each error\'s key equals its code, and it builds a FastifyError with a status code', () => {
  for (const [key, Err] of coded) {
    const err = new Err('a', 'b')
    assert.equal(err.code, key)
    assert.equal(err.name, 'FastifyError')
    assert.ok(err instanceof Error)
    assert.ok(err instanceof Err)
    assert.equal(typeof err.statusCode, 'number')
    assert.ok(!err.message.includes('%s'), `${key} fills its placeholders: ${err.message}`)
  }
})

test('every code is documented in the README', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  for (const [key] of coded) assert.ok(readme.includes(`\`${key}\``), `${key} is missing from the README`)
  assert.ok(readme.includes('`WebSocketDisconnect`'))
})

test('WebSocketDisconnect carries code and reason', () => {
  const err = new errors.WebSocketDisconnect(1001, 'going away')
  assert.equal(err.name, 'WebSocketDisconnect')
  assert.equal(err.code, 1001)
  assert.equal(err.reason, 'going away')
  assert.equal(err.message, 'WebSocket closed with code 1001: going away')
  assert.equal(new errors.WebSocketDisconnect(1000).message, 'WebSocket closed with code 1000')
  assert.equal(new errors.WebSocketDisconnect(1000).reason, '')
})

test('RpcError carries a JSON-RPC code, message and data', () => {
  const err = new errors.RpcError(4001, 'Not allowed', { why: 'x' })
  assert.ok(err instanceof Error)
  assert.equal(err.name, 'RpcError')
  assert.equal(err.code, 4001)
  assert.equal(err.message, 'Not allowed')
  assert.deepEqual(err.data, { why: 'x' })
  assert.equal(new errors.RpcError(1, 'x').data, undefined)
})

test('CloseCode names the codes the hub uses', () => {
  assert.deepEqual(errors.CloseCode, {
    NORMAL: 1000,
    GOING_AWAY: 1001,
    UNSUPPORTED_DATA: 1003,
    NO_STATUS: 1005,
    ABNORMAL: 1006,
    INVALID_PAYLOAD: 1007,
    POLICY_VIOLATION: 1008,
    MESSAGE_TOO_BIG: 1009,
    INTERNAL_ERROR: 1011,
    TRY_AGAIN_LATER: 1013
  })
  assert.ok(Object.isFrozen(errors.CloseCode))
})
