'use strict'

// npm run conformance: the HTTP caching conformance suite http-tests/cache-tests (the one behind
// cache-tests.fyi) against examples/gateway.ts, a Fastify + @fastify/reply-from gateway with the plugin
// in front, on the memory store and on Redis. A report, not a test: it exits 0 whatever the score
// (non-zero only when it could not run at all).
//
// What it does: copies the suite (read-only where CI and sessions see it) to a scratch folder, installs
// its dependencies there (cached between runs), starts the suite's origin server on 127.0.0.1, then for
// each store starts the gateway in front of it (and a throwaway redis-server for Redis), runs the
// suite's CLI (shared-cache mode), classifies every result with the suite's own test-engine/lib/results.mjs
// and prints pass / required fail / optional fail / checks / setup fail / blocked / other per test group
// and in total. Writes test/conformance/results-<mode>-<store>.json (results-off.json for CACHE=off):
// every test id, its kind and class; and CHECKLIST.md, every test with its result in each run found.
//
// Settings (environment):
//   CACHE=off            the gateway alone, no plugin (one run: there is no store)
//   POLICY               ttl (default: the plugin as it is today) or http (`policy: 'http'` on all('/*'))
//   CONFORMANCE_STORES   comma-separated stores to run: memory,redis (default both)
//   CONFORMANCE_SUITE    the cache-tests folder (default ../shared/conformance/cache-tests beside the repo)
//   CONFORMANCE_PRELOAD  the loopback-only preload of the origin (default: loopback-only.cjs beside the
//                        suite, else the copy in this folder)
//   CONFORMANCE_CACHE    where the suite's dependencies are installed once (default <tmpdir>/fastify-http-cache-conformance)
//   CONFORMANCE_OUT      where results-*.json are written (default this folder)
//   REDIS_SERVER_BIN     redis-server binary (redis-server on PATH)
// Arguments:
//   --id=<test id>       run one test (on the first store chosen) and print the suite's dump of its exchanges
//   --keep               keep the scratch folder and the logs (their path is printed)

const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { setTimeout: sleep } = require('node:timers/promises')
const { freePort, startRedisServer, killRedis } = require('../bench/common.js')
const { specOf } = require('./spec.js')
const { writeChecklist } = require('./checklist.js')

const ROOT = path.resolve(__dirname, '..', '..')
const SUITE = path.resolve(process.env.CONFORMANCE_SUITE || path.join(ROOT, '..', 'shared', 'conformance', 'cache-tests'))
const CACHE_DIR = path.resolve(process.env.CONFORMANCE_CACHE || path.join(os.tmpdir(), 'fastify-http-cache-conformance'))
const OUT = path.resolve(process.env.CONFORMANCE_OUT || __dirname)
const START_TIMEOUT_MS = 90_000
const CLI_TIMEOUT_MS = 20 * 60_000

const children = new Set()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGKILL')
    process.exit(130)
  })
}

function readConfig () {
  const args = process.argv.slice(2)
  const id = args.find((a) => a.startsWith('--id='))?.slice('--id='.length)
  const unknown = args.filter((a) => !a.startsWith('--id=') && a !== '--keep')
  if (unknown.length > 0) throw new Error(`unknown arguments: ${unknown.join(' ')} (known: --id=<test id>, --keep)`)
  const off = process.env.CACHE === 'off'
  if (process.env.CACHE !== undefined && process.env.CACHE !== '' && !off) throw new Error(`CACHE must be off or unset, got ${process.env.CACHE}`)
  const policy = process.env.POLICY || 'ttl'
  if (policy !== 'ttl' && policy !== 'http') throw new Error(`POLICY must be ttl or http, got ${policy}`)
  const stores = (process.env.CONFORMANCE_STORES || 'memory,redis').split(',').map((s) => s.trim()).filter(Boolean)
  for (const s of stores) if (s !== 'memory' && s !== 'redis') throw new Error(`CONFORMANCE_STORES: unknown store ${s} (memory, redis)`)
  if (stores.length === 0) throw new Error('CONFORMANCE_STORES names no store')
  return { id, keep: args.includes('--keep'), mode: off ? 'off' : policy, stores: off ? ['none'] : stores }
}

// ---- the suite: a writable copy, its dependencies installed once per package.json ----

function copyWritable (from, to) {
  fs.cpSync(from, to, { recursive: true, filter: (src) => path.basename(src) !== 'node_modules' })
  const walk = (p) => {
    const st = fs.lstatSync(p)
    if (st.isSymbolicLink()) return
    fs.chmodSync(p, st.mode | 0o200)
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e))
  }
  walk(to)
}

function prepareSuite (work) {
  if (!fs.existsSync(path.join(SUITE, 'test-engine', 'cli.mjs'))) {
    throw new Error(`no cache-tests suite at ${SUITE} (set CONFORMANCE_SUITE to its folder)`)
  }
  const pkg = fs.readFileSync(path.join(SUITE, 'package.json'))
  const depsDir = path.join(CACHE_DIR, `deps-${crypto.createHash('sha1').update(pkg).digest('hex').slice(0, 12)}`)
  if (!fs.existsSync(path.join(depsDir, 'node_modules', '.package-lock.json'))) {
    console.log(`installing the suite's dependencies in ${depsDir} (once)`)
    fs.rmSync(depsDir, { recursive: true, force: true })
    fs.mkdirSync(depsDir, { recursive: true })
    fs.writeFileSync(path.join(depsDir, 'package.json'), pkg)
    const r = spawnSync('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: depsDir, stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`npm install in ${depsDir} failed (status ${r.status})`)
  }
  const suite = path.join(work, 'cache-tests')
  copyWritable(SUITE, suite)
  fs.symlinkSync(path.join(depsDir, 'node_modules'), path.join(suite, 'node_modules'), 'dir')
  return suite
}

function preloadPath () {
  const candidates = [process.env.CONFORMANCE_PRELOAD, path.join(path.dirname(SUITE), 'loopback-only.cjs'), path.join(__dirname, 'loopback-only.cjs')]
  return path.resolve(candidates.find((p) => p !== undefined && p !== '' && fs.existsSync(p)))
}

// ---- processes ----

function start (name, cmd, args, options, logFile) {
  const log = fs.openSync(logFile, 'a')
  const child = spawn(cmd, args, { ...options, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  children.add(child)
  child.once('exit', () => children.delete(child))
  child.name = name
  child.logFile = logFile
  return child
}

function tail (file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

async function connects (port) {
  return await new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    sock.setTimeout(500, () => { sock.destroy(); resolve(false) })
    sock.once('error', () => resolve(false))
    sock.once('connect', () => { sock.destroy(); resolve(true) })
  })
}

async function waitListening (child, port) {
  const deadline = Date.now() + START_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${child.name} exited before listening (code ${child.exitCode}, signal ${child.signalCode}):\n${tail(child.logFile)}`)
    }
    if (await connects(port)) return
    await sleep(200)
  }
  throw new Error(`${child.name} did not listen on 127.0.0.1:${port} within ${START_TIMEOUT_MS / 1000} s:\n${tail(child.logFile)}`)
}

async function stop (child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await gone
  clearTimeout(timer)
}

async function startOrigin (suite, work) {
  const port = await freePort()
  const env = { ...process.env, npm_config_port: String(port), npm_config_protocol: 'http', npm_config_pidfile: path.join(work, 'origin.pid') }
  const child = start('cache-tests origin', process.execPath, ['-r', preloadPath(), 'test-engine/server/server.mjs'], { cwd: suite, env }, path.join(work, 'origin.log'))
  await waitListening(child, port)
  return { child, url: `http://127.0.0.1:${port}` }
}

async function startGateway ({ mode, store, upstream, work, redisUrl }) {
  const port = await freePort()
  const env = {
    ...process.env,
    UPSTREAM: upstream,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL || 'warn',
    CACHE_PREFIX: `conformance-${process.pid}`,
    TS_NODE_TRANSPILE_ONLY: process.env.TS_NODE_TRANSPILE_ONLY || 'true'
  }
  delete env.REDIS_URL
  delete env.CACHE
  delete env.POLICY
  if (mode === 'off') env.CACHE = 'off'
  else env.POLICY = mode
  if (redisUrl !== undefined) env.REDIS_URL = redisUrl
  const child = start(`gateway (${mode}, ${store})`, process.execPath, ['--require', 'ts-node/register', 'examples/gateway.ts'], { cwd: ROOT, env }, path.join(work, `gateway-${mode}-${store}.log`))
  await waitListening(child, port)
  return { child, url: `http://127.0.0.1:${port}` }
}

/** Runs the suite's CLI against `base`; resolves with its stdout (the results JSON, or a test's dump). */
async function runCli (suite, base, id, work, inherit) {
  // what `npm run cli --base=… --id=…` would set (the CLI reads npm_config_*, else the package's config)
  const env = { ...process.env, npm_config_base: base, npm_package_config_base: base, npm_config_id: id ?? '', npm_package_config_id: id ?? '' }
  const outFile = path.join(work, `cli-${Date.now()}.out`)
  const child = start('cache-tests CLI', process.execPath, ['--no-warnings', 'test-engine/cli.mjs'], { cwd: suite, env }, outFile)
  const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS)
  const [code, signal] = await new Promise((resolve) => child.once('exit', (c, s) => resolve([c, s])))
  clearTimeout(timer)
  const out = fs.readFileSync(outFile, 'utf8')
  if (inherit) process.stdout.write(out)
  if (code !== 0) throw new Error(`the CLI failed (code ${code}, signal ${signal}):\n${out.slice(-3000)}`)
  return out
}

// ---- classification, with the suite's own code ----

const CLASSES = ['pass', 'fail', 'optional_fail', 'yes', 'no', 'setup_fail', 'dependency_fail', 'harness_fail', 'retry', 'untested']
const COLUMNS = [
  ['pass', ['pass']],
  ['fail', ['fail']],
  ['optional', ['optional_fail']],
  ['check y/n', ['yes', 'no']],
  ['setup', ['setup_fail']],
  ['blocked', ['dependency_fail']],
  ['other', ['harness_fail', 'retry', 'untested']]
]

async function loadSuite (suite) {
  const tests = (await import(pathToFileURL(path.join(suite, 'tests', 'index.mjs')).href)).default
  const { determineTestResult, resultTypes } = await import(pathToFileURL(path.join(suite, 'test-engine', 'lib', 'results.mjs')).href)
  return { tests, determineTestResult, resultTypes }
}

/** Kind as the suite defines it: required (the default), optimal (scored as optional) or check. */
function kindOf (test) {
  return test.kind ?? 'required'
}

function classify ({ tests, determineTestResult, resultTypes }, results) {
  const names = new Map(Object.entries(resultTypes).map(([name, type]) => [type, name]))
  const rows = []
  for (const group of tests) {
    for (const test of group.tests) {
      if (test.browser_only === true) continue // the CLI runs in shared-cache mode: never run
      const cls = names.get(determineTestResult(tests, test.id, results))
      const raw = results[test.id]
      rows.push({
        id: test.id,
        group: group.id,
        groupName: group.name,
        name: test.name,
        kind: kindOf(test),
        spec: specOf(group, test),
        result: cls,
        detail: raw === undefined || raw === true ? undefined : Array.isArray(raw) ? raw.join(': ') : String(raw),
        dependsOn: test.depends_on
      })
    }
  }
  return rows
}

function count (rows) {
  const c = Object.fromEntries(CLASSES.map((k) => [k, 0]))
  for (const r of rows) c[r.result]++
  return c
}

function printTable (title, rows) {
  const groups = [...new Set(rows.map((r) => r.group))]
  const lines = groups.map((g) => {
    const these = rows.filter((r) => r.group === g)
    return [these[0].groupName, these]
  })
  lines.push(['TOTAL', rows])
  const width = Math.max(...lines.map(([name]) => name.length))
  const head = ['group'.padEnd(width), 'tests', ...COLUMNS.map(([h]) => h)].join('  ')
  console.log(`\n${title}`)
  console.log(head)
  for (const [name, these] of lines) {
    if (name === 'TOTAL') console.log('-'.repeat(head.length))
    const c = count(these)
    const cells = COLUMNS.map(([h, classes]) => String(classes.reduce((n, k) => n + c[k], 0)).padStart(h.length))
    console.log([name.padEnd(width), String(these.length).padStart(5), ...cells].join('  '))
  }
  const failed = rows.filter((r) => r.result === 'fail')
  console.log(`required failures (${failed.length}): ${failed.map((r) => r.id).join(', ') || 'none'}`)
  const setup = rows.filter((r) => r.result === 'setup_fail')
  if (setup.length > 0) console.log(`setup failures (${setup.length}): ${setup.map((r) => r.id).join(', ')}`)
  const other = rows.filter((r) => ['harness_fail', 'retry', 'untested'].includes(r.result))
  if (other.length > 0) console.log(`other (${other.length}): ${other.map((r) => `${r.id} (${r.result})`).join(', ')}`)
}

function suiteFingerprint () {
  const h = crypto.createHash('sha1')
  const files = fs.readdirSync(path.join(SUITE, 'tests'), { recursive: true }).filter((f) => f.endsWith('.mjs')).sort()
  for (const f of files) h.update(f).update(fs.readFileSync(path.join(SUITE, 'tests', f)))
  return h.digest('hex').slice(0, 12)
}

// ---- one run: a gateway (and its Redis) in front of the origin ----

async function runStore (cfg, store, suite, origin, work, definitions) {
  const label = `${cfg.mode}, ${store === 'none' ? 'no store' : store}`
  let redis
  let gateway
  try {
    if (store === 'redis') redis = await startRedisServer()
    gateway = await startGateway({ mode: cfg.mode, store, upstream: origin.url, work, redisUrl: redis?.url })
    if (cfg.id !== undefined) {
      console.log(`\n== ${label}: ${cfg.id} through ${gateway.url}`)
      await runCli(suite, gateway.url, cfg.id, work, true)
      return
    }
    console.log(`\n== ${label}: running the suite through ${gateway.url} (a few minutes)`)
    const started = Date.now()
    const out = await runCli(suite, gateway.url, undefined, work, false)
    const results = JSON.parse(out.slice(out.indexOf('{')))
    const rows = classify(definitions, results)
    printTable(`${label} (${Math.round((Date.now() - started) / 1000)} s)`, rows)
    const file = path.join(OUT, store === 'none' ? `results-${cfg.mode}.json` : `results-${cfg.mode}-${store}.json`)
    fs.writeFileSync(file, JSON.stringify({
      suite: 'http-tests/cache-tests',
      suiteFingerprint: suiteFingerprint(),
      date: new Date().toISOString(),
      node: process.version,
      mode: cfg.mode,
      store,
      totals: count(rows),
      tests: rows
    }, null, 2) + '\n')
    console.log(`written: ${path.relative(process.cwd(), file)}`)
    const checklist = writeChecklist(OUT)
    if (checklist !== undefined) console.log(`written: ${path.relative(process.cwd(), checklist)}`)
  } catch (err) {
    console.log(`\n== ${label}: could not run: ${err.message}`)
  } finally {
    if (gateway !== undefined) await stop(gateway.child)
    if (redis !== undefined) await killRedis(redis)
  }
}

async function main () {
  const cfg = readConfig()
  fs.mkdirSync(CACHE_DIR, { recursive: true })
  const work = fs.mkdtempSync(path.join(CACHE_DIR, 'run-'))
  let origin
  try {
    const suite = prepareSuite(work)
    const definitions = await loadSuite(suite)
    origin = await startOrigin(suite, work)
    for (const store of cfg.id === undefined ? cfg.stores : cfg.stores.slice(0, 1)) {
      await runStore(cfg, store, suite, origin, work, definitions)
    }
  } finally {
    if (origin !== undefined) await stop(origin.child)
    if (cfg.keep) console.log(`\nscratch folder and logs kept: ${work}`)
    else fs.rmSync(work, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
