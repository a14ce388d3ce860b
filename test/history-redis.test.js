// Room history and recovery on a real redis-server: one Redis stream per room.
import { historySuite } from './history-suite.js'
import { redisForFile } from './redis-server.js'

let url
redisForFile(server => { url = server.url })

historySuite('in Redis', history => ({ history, redis: url, heartbeat: false }))
