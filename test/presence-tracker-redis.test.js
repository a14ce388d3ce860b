// Tracked presence on a real redis-server: one hash per room, shared by every node.
import { presenceSuite } from './presence-suite.js'
import { redisForFile } from './redis-server.js'

let url
redisForFile(server => { url = server.url })

presenceSuite('in Redis', () => ({ redis: url, heartbeat: false }))
