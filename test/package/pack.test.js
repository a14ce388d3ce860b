// What a user installs: the project is copied without its build output (as a fresh clone is), packed
// (prepack builds it), and the tarball installed into a new strict TypeScript app with skipLibCheck off
// and the TypeBox type provider. The app compiles a file that uses the public API and runs it once.
// npm reads the packages from its local cache first (--prefer-offline), at the versions this project
// has installed, so the install is quick and rarely needs the network. It runs apart from the unit tests
// (`npm run test:pack`, part of `npm test`) because packing builds the project: it takes longer than the
// unit tests' per-file timeout on a busy machine.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url).pathname

function installedVersion (name) {
  return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version
}

const APP = `import { once } from 'node:events'
import Fastify from 'fastify'
import { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import WebSocket from 'ws'
import wsHub, { WebSocketHandler, WSHUB_ERR_INVALID_OPTION, type Connection } from 'fastify-ws-hub'

class EchoSocket extends WebSocketHandler<{ Params: { room: string } }> {
  override async connect (params: { room: string }): Promise<void> {
    await this.accept()
    await this.join(params.room)
  }

  override async receive (data: string | Buffer): Promise<void> {
    await this.send(data)
  }
}

const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
await app.register(wsHub, { heartbeat: false })
app.wsRoute('/echo/:room', EchoSocket)
app.wsRoute('/typed', async (conn) => {
  const count: number = conn.query.count
  await conn.send({ count, n: app.ws.size })
}, { schema: { querystring: Type.Object({ count: Type.Number() }) } })
app.get('/stats', async () => app.ws.stats())

const address = await app.listen({ port: 0, host: '127.0.0.1' })
const url = address.replace('http', 'ws')

const echo = new WebSocket(url + '/echo/lobby')
await new Promise((resolve) => echo.once('open', resolve))
echo.send('hello')
const [reply] = await once(echo, 'message') as [Buffer]
if (reply.toString() !== 'hello') throw new Error('echo: ' + reply.toString())
const conn: Connection | undefined = app.ws.get<Connection>('nobody')
if (conn !== undefined) throw new Error('get')
if (await app.ws.roomSize('lobby') !== 1) throw new Error('roomSize')

const typed = new WebSocket(url + '/typed?count=3')
const [json] = await once(typed, 'message') as [Buffer]
if (JSON.parse(json.toString()).count !== 3) throw new Error('typed: ' + json.toString())

if (!(new WSHUB_ERR_INVALID_OPTION('x', 'y') instanceof Error)) throw new Error('errors')
echo.close()
typed.close()
await app.close()
console.log('ok')
`

const step = (name, started) => console.log(`# ${name}: ${Date.now() - started} ms`)

test('a packed fresh clone installs into a strict TypeScript app, compiles without skipLibCheck and runs', { timeout: 240_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'wshub-pack-'))
  t.after(() => rmSync(work, { recursive: true, force: true }))

  // A fresh clone: the sources and the package files, no dist/.
  const clone = join(work, 'clone')
  for (const entry of ['package.json', 'lib', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE']) {
    cpSync(join(root, entry), join(clone, entry), { recursive: true })
  }
  symlinkSync(join(root, 'node_modules'), join(clone, 'node_modules'), 'dir')
  let started = Date.now()
  const { stdout: packed } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: clone })
  step('npm pack (builds)', started)
  const [{ filename, files }] = JSON.parse(packed.slice(packed.indexOf('[')))
  const paths = new Set(files.map(file => file.path))
  for (const path of ['LICENSE', 'README.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/route.d.ts']) {
    assert.ok(paths.has(path), `the tarball holds ${path}`)
  }
  // Every source map and declaration map points at a file that is in the tarball.
  const maps = [...paths].filter(path => path.endsWith('.map'))
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(join(clone, map), 'utf8'))
    for (const source of sources) {
      const resolved = join(map, '..', source)
      assert.ok(paths.has(resolved), `${map} points at ${resolved}, which is shipped`)
    }
  }
  assert.ok(!paths.has('test/package/pack.test.js') && ![...paths].some(path => path.startsWith('node_modules/')))

  const app = join(work, 'app')
  writeFileSync(join(work, 'package.json'), '{}') // keeps npm from looking further up
  const dependencies = { 'fastify-ws-hub': `file:../${filename}` }
  for (const name of ['fastify', '@fastify/type-provider-typebox', 'typebox', 'ws']) {
    dependencies[name] = installedVersion(name)
  }
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies }))
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noImplicitOverride: true,
      skipLibCheck: false,
      // Node's types from this project (every TypeScript app on Node has @types/node); nothing else of it.
      types: ['node'],
      typeRoots: [join(root, 'node_modules/@types')],
      outDir: 'out'
    },
    files: ['app.ts']
  }))
  writeFileSync(join(app, 'app.ts'), APP)
  started = Date.now()
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: app })
  step('npm install', started)
  started = Date.now()
  assert.ok(!existsSync(join(app, 'node_modules/prom-client')), 'prom-client is optional: not installed for this app')

  // Compiles under strict without skipLibCheck: every shipped .d.ts is checked, and nothing but this
  // package and fastify (with what they bring) had to be installed for it.
  // With the newest TypeScript (7, the native compiler: seconds, not a minute); the declared one checks
  // the same .d.ts files in `npm run test:types` (types/tsconfig.dist.json).
  await run(process.execPath, [join(root, 'node_modules/typescript-7/bin/tsc'), '-p', app], { cwd: app }).catch(err => {
    assert.fail(`the app does not compile:\n${err.stdout}${err.stderr}`)
  })
  step('tsc', started)
  const { stdout } = await run(process.execPath, [join(app, 'out/app.js')], { cwd: app, timeout: 30_000 })
  assert.equal(stdout.trim(), 'ok')
})
