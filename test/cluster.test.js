// The cross-node suite (cluster-suite.js) on one real redis-server.
import { Redis } from 'ioredis'
import { clusterSuite } from './cluster-suite.js'
import { startRedis } from './redis-server.js'

clusterSuite({
  async start () {
    const cleanups = []
    const server = await startRedis({ after: fn => cleanups.push(fn) })
    const client = new Redis(server.url)
    return {
      env: { REDIS_URL: server.url },
      inspect: client,
      async stop () {
        client.disconnect()
        for (const fn of cleanups) await fn()
      }
    }
  }
})
