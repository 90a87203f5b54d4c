// Scores http-cache-tests result files with the suite's own classification
// (`determineTestResult`, the code behind the cache-tests.fyi results page),
// over the same test list the suite's CLI runs. Nothing is re-implemented
// here: this only tallies what the suite's function returns.
//
// Two layouts are understood:
// - the npm package (0.4.5): lib/display.mjs; tests/index.mjs plus
//   tests/surrogate-control.mjs (the CLI adds that suite);
// - the GitHub repository (test-engine/): test-engine/lib/results.mjs;
//   tests/index.mjs.
//
// usage: node score.mjs <suite-dir> [--reference] <name>=<results.json> ...
// --reference also scores the suite's own published results (results/,
// listed in results/index.mjs), proxies and CDNs only, each under the name
// "ref:<name> <version>".
// prints one JSON object:
//   { "<name>": { "required": {"total", "pass", "fail", ...},
//                 "optional": {...}, "check": {...},
//                 "tests": { "<test id>": "<kind>:<outcome>" } }, ... }
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const [suiteDir, ...args] = process.argv.slice(2)
const files = args.filter(a => a !== '--reference')
if (args.includes('--reference')) {
  const index = (await import(pathToFileURL(path.join(suiteDir, 'results/index.mjs')).href)).default
  for (const item of index) {
    if (item.type === 'browser') continue
    files.push(`ref:${item.name} ${item.version}=${path.join(suiteDir, 'results', item.file)}`)
  }
}
if (!suiteDir || files.length === 0) {
  console.error('usage: node score.mjs <suite-dir> <name>=<results.json> ...')
  process.exit(2)
}
const load = rel => import(pathToFileURL(path.join(suiteDir, rel)).href)
const engine = fs.existsSync(path.join(suiteDir, 'test-engine/lib/results.mjs'))
let determineTestResult
const tests = (await load('tests/index.mjs')).default
if (engine) {
  determineTestResult = (await load('test-engine/lib/results.mjs')).determineTestResult
} else {
  determineTestResult = (await load('lib/display.mjs')).determineTestResult
  tests.push((await load('tests/surrogate-control.mjs')).default)
}

// The suite's result types, keyed by their text symbol (index 2).
const OUTCOMES = {
  '✅': 'pass',
  '⛔️': 'fail',
  '⚠️': 'optional_fail',
  Y: 'yes',
  N: 'no',
  '🔹': 'setup_fail',
  '⁉️': 'harness_fail',
  '⚪️': 'dependency_fail',
  '↻': 'retry',
  '-': 'untested'
}

const out = {}
for (const arg of files) {
  const eq = arg.indexOf('=')
  const name = arg.slice(0, eq)
  const results = JSON.parse(fs.readFileSync(arg.slice(eq + 1), 'utf8'))
  const score = { required: {}, optional: {}, check: {}, tests: {} }
  for (const suite of tests) {
    for (const test of suite.tests) {
      if (test.browser_only === true) continue // the CLI does not run these
      const kind = test.kind === undefined ? 'required' : (test.kind === 'optimal' ? 'optional' : test.kind)
      const symbol = determineTestResult(tests, test.id, results)[2]
      const outcome = OUTCOMES[symbol] || `unknown(${symbol})`
      const bucket = score[kind]
      bucket.total = (bucket.total || 0) + 1
      bucket[outcome] = (bucket[outcome] || 0) + 1
      score.tests[test.id] = `${kind}:${outcome}`
    }
  }
  out[name] = score
}
console.log(JSON.stringify(out, null, 2))
