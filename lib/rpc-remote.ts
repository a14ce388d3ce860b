import type { BaseConnection } from './connection.js'
import {
  RpcError,
  WSHUB_ERR_CONNECTION_CLOSED,
  WSHUB_ERR_INVALID_PAYLOAD,
  WSHUB_ERR_RPC_TIMEOUT,
  WSHUB_ERR_RPC_UNAVAILABLE
} from './errors.js'
import { toJson } from './message.js'
import { checkCall, rpcErrorOf, timeoutOf, type CallOptions } from './rpc.js'

// `app.ws.call()` of a connection of another node: the call travels to the owning node in a `call`
// request (its payload this module's JSON), which makes it there with `conn.call()`, and the outcome
// (the client's result, or the error the call rejected with) comes back in the reply's payload.

/** How long `app.ws.call()` of another node's connection waits without a `timeout` of its own (plus `requestTimeout`). */
export const REMOTE_CALL_WAIT = 60_000

/** The payload of a `call` request to the node that owns the connection. */
export function encodeCall (method: string, params: unknown, options: CallOptions | undefined): Buffer {
  checkCall(method, params)
  const timeout = options?.timeout === undefined ? undefined : timeoutOf(options, 0)
  return Buffer.from(toJson({ method, params, timeout }))
}

/** Carries out another node's `call` on a local connection; resolves with the outcome for the reply. */
export function performCall (conn: BaseConnection, payload: Buffer | undefined): Promise<Buffer> {
  let call: { method: string, params: unknown, timeout?: number }
  try {
    call = JSON.parse((payload ?? Buffer.alloc(0)).toString())
  } catch {
    return Promise.resolve(outcome({ x: 'invalid', message: 'malformed call' }))
  }
  const options = call.timeout === undefined ? undefined : { timeout: call.timeout }
  return conn.call(call.method, call.params, options).then(result => outcome({ r: result }), (err: Error & { code?: unknown, data?: unknown }) => {
    if (err instanceof RpcError) return outcome({ e: { code: err.code, message: err.message, data: err.data } })
    if (err instanceof WSHUB_ERR_RPC_TIMEOUT) return outcome({ x: 'timeout', message: err.message })
    if (err instanceof WSHUB_ERR_CONNECTION_CLOSED) return outcome({ x: 'closed', message: err.message })
    if (err instanceof WSHUB_ERR_RPC_UNAVAILABLE) return outcome({ x: 'unavailable', message: err.message })
    return outcome({ x: 'invalid', message: err.message })
  })
}

function outcome (value: object): Buffer {
  return Buffer.from(JSON.stringify(value))
}

/** The result of a call on another node, or the error it rejects with, from the owner's reply. */
export function callOutcome (id: string, method: string, timeout: number | undefined, payload: Buffer): unknown {
  const value = JSON.parse(payload.toString()) as { r?: unknown, e?: unknown, x?: string, message?: string }
  if (value.x === undefined) {
    if (Object.hasOwn(value, 'e')) throw rpcErrorOf(value.e)
    return value.r ?? null
  }
  switch (value.x) {
    case 'timeout': {
      const err = new WSHUB_ERR_RPC_TIMEOUT(method, String(timeout ?? '?'))
      err.message = value.message ?? err.message
      throw err
    }
    case 'closed': throw new WSHUB_ERR_CONNECTION_CLOSED(id)
    case 'unavailable': throw new WSHUB_ERR_RPC_UNAVAILABLE(id)
    default: throw new WSHUB_ERR_INVALID_PAYLOAD(value.message ?? 'the call could not be made')
  }
}
