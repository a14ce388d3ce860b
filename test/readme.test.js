// Every code sample in the README compiles against the package's published types, so none can rot.
// A ```ts or ```js block is type-checked (by TypeScript 7, the native compiler: the type tests cover the
// declared version too) with the project's strict settings plus noImplicitOverride, as a
// careful user would compile it. A sample imports every name it takes from a package; one that does not
// build its own `app` gets one (Fastify with the hub registered), and the few functions of the user's own
// that fragments refer to are declared. Blocks in other languages (sh, text, mermaid) are prose.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { test } from 'node:test'

const root = new URL('../', import.meta.url)
const dir = new URL('.readme-check/', root)

const APP = `import readmeFastify from 'fastify'
import readmeWsHub from 'fastify-ws-hub'
const app = readmeFastify({ logger: true })
await app.register(readmeWsHub)
`
const HELPERS = `declare function authenticate (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply): Promise<void>
declare function rateLimitByIp (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply): Promise<void>
declare const handler: (conn: import('fastify-ws-hub').Connection) => Promise<void>
declare const QuerySchema: object
export {}
`

/** The ```ts and ```js blocks of a Markdown text, with the line each starts on. */
export function codeBlocks (markdown) {
  const blocks = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|js|typescript|javascript)\s*$/.exec(lines[i])
    if (!open) continue
    const start = i + 1
    while (i + 1 < lines.length && lines[i + 1] !== '```') i++
    blocks.push({ line: start, code: lines.slice(start, i + 1).join('\n') })
    i++
  }
  return blocks
}

test('every ts/js code sample in the README type-checks against the package', () => {
  const blocks = codeBlocks(readFileSync(new URL('README.md', root), 'utf8'))
  assert.ok(blocks.length >= 5, `found ${blocks.length} code samples`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir)
  const files = blocks.map(({ line, code }) => {
    const name = `readme-line-${line}.mts`
    const ownApp = /^(const|let) app\b/m.test(code)
    writeFileSync(new URL(name, dir), (ownApp ? '' : APP) + HELPERS + code + '\n')
    return name
  })
  writeFileSync(new URL('tsconfig.json', dir), JSON.stringify({
    extends: '../tsconfig.json',
    compilerOptions: { noEmit: true, noImplicitOverride: true, noUnusedLocals: false, noUnusedParameters: false, declaration: false, declarationMap: false, sourceMap: false, rootDir: '..' },
    include: files
  }))
  let output = ''
  try {
    execFileSync(process.execPath, [new URL('node_modules/typescript-7/bin/tsc', root).pathname, '-p', new URL('tsconfig.json', dir).pathname], {
      cwd: root.pathname, encoding: 'utf8'
    })
  } catch (err) {
    output = String(err.stdout) + String(err.stderr)
  }
  // Errors point at readme-line-N.mts(row,col): N is the README line where the sample starts.
  assert.equal(output, '', `README samples do not compile:\n${output}`)
  rmSync(dir, { recursive: true, force: true })
})
