// Tracked presence on one process: in memory.
import { presenceSuite } from './presence-suite.js'

presenceSuite('in memory', () => ({}))
