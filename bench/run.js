// `npm run bench [-- options]`: the benchmark suite (bench/suite.js; options listed there),
// then bench/cross-node.js when it exists. `npm run bench -- --quick` is a smoke run of a few seconds
// per scenario. Room fan-out framed once vs per member, in more detail: `node bench/fanout.js`.
import { main } from './suite.js'

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`bench: ${err.stack ?? err}\n`)
  process.exitCode = 1
}
