// Child processes of the multi-process benchmarks (cross-node.js, history.js): a server started from
// its script that prints "listening <port>", and the next IPC message of a child that has some key.
import { spawn } from 'node:child_process'

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Resolves with the first IPC message of `child` that has `key`; fails after `ms`. */
export function nextMessage (child, key, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.off('message', on); reject(new Error(`no "${key}" within ${ms} ms`)) }, ms)
    const on = message => {
      if (message[key] === undefined) return
      clearTimeout(timer)
      child.off('message', on)
      resolve(message)
    }
    child.on('message', on)
  })
}

/** Runs `node <args>` and resolves with `{ child, port }` once it prints "listening <port>" (15 s at most). */
export async function startServer (args, what) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  const deadline = Date.now() + 15_000
  while (!/listening (\d+)/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`a ${what} server did not start: ${output}`)
    await sleep(10)
  }
  return { child, port: Number(/listening (\d+)/.exec(output)[1]) }
}
