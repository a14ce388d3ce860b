// The hub on a real 3-master Redis Cluster (test/redis-cluster.js): the cross-node suite of
// cluster-suite.js, run on the cluster exactly as on one redis-server. What only a cluster has is in
// redis-cluster-keys.test.js.
import { after, describe } from 'node:test'
import { Cluster, Redis } from 'ioredis'
import { clusterSuite } from './cluster-suite.js'
import { RedisCluster } from './redis-cluster.js'

let cluster = null

/** One client per master, to look into each. */
function masterClients () {
  return cluster.masters.map(master => new Redis({ port: master.port, host: '127.0.0.1' }))
}

describe('on a 3-master Redis Cluster', () => {
  clusterSuite({
    async start () {
      cluster = new RedisCluster()
      await cluster.start()
      const masters = masterClients()
      const client = new Cluster(cluster.nodes)
      return {
        env: { REDIS_CLUSTER: JSON.stringify(cluster.nodes) },
        inspect: {
          keys: async pattern => (await Promise.all(masters.map(master => master.keys(pattern)))).flat(),
          zscore: (key, member) => client.zscore(key, member)
        },
        async stop () {
          for (const master of masters) master.disconnect()
          client.disconnect()
        }
      }
    }
  })
  // After the suite's own after hook (its nodes).
  after(() => cluster?.stop())
})
