// Writes the benchmark table into README.md, between the markers `<!-- bench:start -->` and
// `<!-- bench:end -->`, from the suite's results (bench/results/bench.json by default).
//
//   node bench/readme-table.js [--in FILE] [--readme FILE] [--print] [--check]
//
// --print only prints the block; --check exits with 1 when the README's block differs from the one the
// results give (and changes nothing). Without the markers, the block is printed and the README left alone.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { readmeBlock } from './report.js'

const START = '<!-- bench:start -->'
const END = '<!-- bench:end -->'

export function main (argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      in: { type: 'string', default: fileURLToPath(new URL('./results/bench.json', import.meta.url)) },
      readme: { type: 'string', default: fileURLToPath(new URL('../README.md', import.meta.url)) },
      print: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false }
    }
  })
  const results = JSON.parse(readFileSync(values.in, 'utf8'))
  if (results.mode === 'quick') process.stderr.write(`readme-table: ${values.in} is from a --quick smoke run; its figures are not the suite's\n`)
  const block = readmeBlock(results)
  if (values.print) {
    process.stdout.write(block)
    return 0
  }
  const readme = readFileSync(values.readme, 'utf8')
  const a = readme.indexOf(START)
  const b = readme.indexOf(END)
  if (a === -1 || b === -1 || b < a) {
    process.stdout.write(block)
    process.stderr.write(`readme-table: ${values.readme} has no ${START} ... ${END} markers; printed the table instead (add the markers where it belongs)\n`)
    return 1
  }
  const updated = `${readme.slice(0, a + START.length)}\n${block}${readme.slice(b)}`
  if (values.check) {
    const same = updated === readme
    process.stderr.write(same ? 'readme-table: the README table is up to date\n' : `readme-table: the README table differs from ${values.in}\n`)
    return same ? 0 : 1
  }
  if (updated !== readme) writeFileSync(values.readme, updated)
  process.stderr.write(`readme-table: ${updated === readme ? 'already up to date' : 'updated'} ${values.readme}\n`)
  return 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exitCode = main(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`readme-table: ${err.stack ?? err}\n`)
    process.exitCode = 1
  }
}
