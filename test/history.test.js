// Room history and recovery on one process: history in memory.
import { historySuite } from './history-suite.js'

historySuite('in memory', history => ({ history }))
