import { WSHUB_ERR_INVALID_PAYLOAD } from './errors.js'

/** Whether a server may send `code` in a close frame (RFC 6455 section 7.4; as ws's `isValidStatusCode`). */
export function isValidCloseCode (code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) && (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999))
}

/**
 * Checks a close code and reason as a server sends them: the `WSHUB_ERR_INVALID_PAYLOAD` to reject
 * with, or null when both are fine (a reason is a string of at most 123 bytes).
 */
export function closeError (code: unknown, reason: unknown): Error | null {
  if (!isValidCloseCode(code)) return new WSHUB_ERR_INVALID_PAYLOAD(`${code} is not a close code a server may send`)
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    return new WSHUB_ERR_INVALID_PAYLOAD('a close reason is a string of at most 123 bytes')
  }
  return null
}
