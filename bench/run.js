// `npm run bench [-- args]`: the benchmarks of this package (for now, bench/fanout.js), argv forwarded.
import { main } from './fanout.js'

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`bench: ${err.stack ?? err}\n`)
  process.exitCode = 1
}
