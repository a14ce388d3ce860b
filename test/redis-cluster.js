// A real 3-master Redis Cluster for the tests, from the redis-server and redis-cli on PATH: three
// servers with --cluster-enabled yes on free ports of 127.0.0.1 (persistence off, node files in a
// temporary directory), joined with `redis-cli --cluster create`, stopped after the test file.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before } from 'node:test'
import { Redis } from 'ioredis'
import { freePort, RedisServer, requireRedisServer } from './redis-server.js'

/** How long the masters wait before they call one of them failed (short, so a restart test is quick). */
const NODE_TIMEOUT = 1000

/** One master of the cluster: a redis-server with --cluster-enabled yes and its node file in `dir`. */
function clusterMaster (port, dir) {
  return new RedisServer(port, [
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir,
    '--cluster-node-timeout', String(NODE_TIMEOUT),
    // The other shards keep serving while one master is down (there are no replicas to fail over to).
    '--cluster-require-full-coverage', 'no', '--cluster-allow-reads-when-down', 'yes'
  ])
}

/** Runs redis-cli with `args`; rejects with its output when it fails. */
async function redisCli (args) {
  const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', chunk => { output += chunk })
  child.stderr.on('data', chunk => { output += chunk })
  const [code] = await once(child, 'exit')
  if (code !== 0) throw new Error(`redis-cli ${args.join(' ')} failed (${code}): ${output}`)
  return output
}

/**
 * A 3-master Redis Cluster. `nodes` are its startup nodes (`[{ host, port }]`, as ioredis's Cluster
 * takes them); `masters[i].kill()` / `restartMaster(i)` stop one master and bring it back (empty, with
 * its slots).
 */
export class RedisCluster {
  constructor () {
    this.dir = mkdtempSync(join(tmpdir(), 'wshub-cluster-'))
    this.masters = []
  }

  get nodes () {
    return this.masters.map(master => ({ host: '127.0.0.1', port: master.port }))
  }

  async start () {
    requireRedisServer()
    for (let i = 0; i < 3; i++) this.masters.push(clusterMaster(await freePort(), this.dir))
    await Promise.all(this.masters.map(master => master.start()))
    await redisCli(['--cluster', 'create', ...this.masters.map(master => `127.0.0.1:${master.port}`),
      '--cluster-replicas', '0', '--cluster-yes'])
    await this.ready()
  }

  /** Resolves once every master sees the cluster as ok, with all slots assigned. */
  async ready (ms = 10_000) {
    const deadline = Date.now() + ms
    for (const master of this.masters) {
      while (true) {
        const client = new Redis({ port: master.port, host: '127.0.0.1', retryStrategy: () => null })
        client.on('error', () => {})
        const info = await client.cluster('INFO').catch(() => '')
        client.disconnect()
        if (/cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info)) break
        if (Date.now() > deadline) throw new Error(`the cluster did not settle within ${ms} ms: ${info}`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    }
  }

  /** Kills master `i` with SIGKILL and starts it again on its port: it comes back empty, with its slots. */
  async restartMaster (i) {
    await this.masters[i].restart()
    await this.ready()
  }

  /** The index of the master that serves `key`'s slot. */
  async masterOf (key) {
    const client = new Redis({ port: this.masters[0].port, host: '127.0.0.1' })
    try {
      const slot = await client.cluster('KEYSLOT', key)
      const shards = await client.cluster('SLOTS')
      const owner = shards.find(([from, to]) => slot >= from && slot <= to)
      return this.masters.findIndex(master => master.port === owner[2][1])
    } finally {
      client.disconnect()
    }
  }

  async stop () {
    await Promise.all(this.masters.map(master => master.kill()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Starts a 3-master cluster for the current test (or suite) and stops it afterwards. */
export async function startRedisCluster (t) {
  const cluster = new RedisCluster()
  t.after(() => cluster.stop())
  await cluster.start()
  return cluster
}

/**
 * One 3-master cluster for a whole test file, stopped after the file. Calls `ready(cluster)` once it
 * is up.
 */
export function redisClusterForFile (ready) {
  let cluster = null
  before(async () => {
    cluster = new RedisCluster()
    await cluster.start()
    ready(cluster)
  })
  after(async () => { await cluster?.stop() })
}
