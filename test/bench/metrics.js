'use strict'

// npm run bench:metrics: what Cache-Status and the Prometheus metrics cost a HIT, in process.
// --callgrind counts instructions instead (valgrind; slow: minutes per run on a busy machine).
// Four apps on the memory store (the cheapest HIT, so the one where any overhead shows most), the same
// cached route in each: metrics and cacheStatus off, cacheStatus on, metrics on (a registry of its own),
// both on. Each round runs a batch of HITs through app.inject() on every app, in a shuffled order, and
// takes the process's CPU time per HIT (process.cpuUsage: less sensitive than wall time to other
// processes on a shared machine). Reported: the median CPU µs per HIT of each app and the median of the
// per-round ratios to "off". Target: metrics on, both on, and policy 'http' (the route's freshness from
// the response's Cache-Control instead of its ttl) each < 1.03 × off.
// Results are printed and merged into test/bench/results.json (under "metrics").
// Settings (environment):
//   METRICS_BATCH   HITs per app per round (10000)     METRICS_ROUNDS  rounds (21)
//   BENCH_RESULTS   results file (test/bench/results.json)   HTTP_CACHE_DIST  compiled plugin (dist/)

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const Fastify = require('fastify')
const { Registry } = require('prom-client')
const { text: BODY_TEXT } = require('./body.js')
const { loadPlugin, machine, describeMachine, median, intEnv } = require('./common.js')

const WHO = 'test/bench/metrics.js'
const RESULTS = path.resolve(process.env.BENCH_RESULTS ?? path.join(__dirname, 'results.json'))
const BATCH = intEnv('METRICS_BATCH', 10000)
const ROUNDS = intEnv('METRICS_ROUNDS', 21)
const TARGET = 1.03

const VARIANTS = [
  { id: 'off', label: 'metrics and cacheStatus off', options: () => ({}) },
  { id: 'cacheStatus', label: 'cacheStatus: true', options: () => ({ cacheStatus: true }) },
  { id: 'metrics', label: 'metrics: { registry }', options: () => ({ metrics: { registry: new Registry() } }) },
  { id: 'both', label: 'both on', options: () => ({ cacheStatus: true, metrics: { registry: new Registry() } }) },
  { id: 'http', label: "policy: 'http'", options: () => ({ policy: 'http' }), http: true }
]

async function makeApp (plugin, options, http = false) {
  const app = Fastify()
  await app.register(plugin, options)
  // under 'http' the origin's Cache-Control says how long: the same hour as the other apps' ttl
  app.get('/item/:id', { config: { cache: http ? {} : { ttl: 3600 } } }, async (request, reply) => {
    if (http) reply.header('cache-control', 'max-age=3600')
    return BODY_TEXT
  })
  await app.ready()
  const first = await app.inject('/item/1')
  const hit = await app.inject('/item/1')
  if (first.headers['x-cache'] !== 'MISS' || hit.headers['x-cache'] !== 'HIT') throw new Error(`${WHO}: the route does not answer MISS then HIT`)
  return app
}

/** CPU µs per HIT over one batch. */
async function batch (app) {
  // each batch starts with a clean heap: garbage of the previous app's batch is not billed to this one
  if (typeof global.gc === 'function') global.gc()
  const start = process.cpuUsage()
  let last
  for (let i = 0; i < BATCH; i++) last = await app.inject('/item/1')
  const used = process.cpuUsage(start)
  if (last.headers['x-cache'] !== 'HIT') throw new Error(`${WHO}: a measured request was not a HIT`)
  return (used.user + used.system) / BATCH
}

function shuffle (list) {
  const a = [...list]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

// METRICS_ONLY=<id>: one app only, METRICS_BATCH HITs after a warm-up, nothing printed (run under
// callgrind by --callgrind below)
async function only (id) {
  const v = VARIANTS.find((x) => x.id === id)
  if (v === undefined) throw new Error(`${WHO}: METRICS_ONLY must be one of ${VARIANTS.map((x) => x.id).join(', ')}`)
  const app = await makeApp(loadPlugin(WHO), v.options(), v.http)
  for (let i = 0; i < 500; i++) await app.inject('/item/1')
  await batch(app)
  await app.close()
}

async function main () {
  if (process.env.METRICS_ONLY !== undefined) return await only(process.env.METRICS_ONLY)
  if (process.argv.includes('--callgrind')) return callgrind()
  const plugin = loadPlugin(WHO)
  // a fresh app per batch: Fastify keeps ~11 KB per app.inject() (measured without this plugin too), so
  // one app cannot take millions of them
  const measure = async (v) => {
    const app = await makeApp(plugin, v.options(), v.http)
    try {
      return await batch(app)
    } finally {
      await app.close()
    }
  }
  // warm-up: every code path compiled before anything is measured
  for (const v of VARIANTS) await measure(v)
  const samples = Object.fromEntries(VARIANTS.map((v) => [v.id, []]))
  const ratios = Object.fromEntries(VARIANTS.map((v) => [v.id, []]))
  for (let r = 0; r < ROUNDS; r++) {
    const round = {}
    for (const v of shuffle(VARIANTS)) round[v.id] = await measure(v)
    for (const v of VARIANTS) {
      samples[v.id].push(round[v.id])
      ratios[v.id].push(round[v.id] / round.off)
    }
    process.stderr.write(`round ${r + 1}/${ROUNDS}: ${VARIANTS.map((v) => `${v.id} ${round[v.id].toFixed(2)} µs`).join(', ')}\n`)
  }

  const added = await parts()
  const m = machine()
  // other processes only ever add time: the fastest batch is the closest to the code's own cost
  const best = Object.fromEntries(VARIANTS.map((v) => [v.id, Math.min(...samples[v.id])]))
  const rows = VARIANTS.map((v) => ({ id: v.id, label: v.label, cpuUsPerHit: median(samples[v.id]), ratio: median(ratios[v.id]), bestUsPerHit: best[v.id], bestRatio: best[v.id] / best.off }))
  console.log(`\nHIT cost in process (app.inject, memory store), ${ROUNDS} rounds × ${BATCH} HITs per app`)
  console.log(describeMachine(m))
  console.log('app                           median µs/HIT  ratio (median of rounds)   fastest µs/HIT  ratio of fastest')
  for (const row of rows) console.log(`${row.label.padEnd(30)}${row.cpuUsPerHit.toFixed(2).padStart(13)}  ${row.ratio.toFixed(4).padStart(24)}   ${row.bestUsPerHit.toFixed(2).padStart(14)}  ${row.bestRatio.toFixed(4).padStart(16)}`)
  const targets = ['metrics', 'both', 'http'].map((id) => {
    const row = rows.find((x) => x.id === id)
    const met = row.ratio < TARGET
    return { name: `HIT cost with ${row.label}`, met, text: `${row.label}: ${((row.ratio - 1) * 100).toFixed(2)}% over off, median of rounds; fastest batches ${((row.bestRatio - 1) * 100).toFixed(2)}% (target < ${((TARGET - 1) * 100).toFixed(0)}%)` }
  })
  console.log('\nthe added work alone, fastest of 7 rounds of 1,000,000 calls (CPU ns per call):')
  for (const [name, ns] of Object.entries(added)) console.log(`  ${name.padEnd(24)}${ns.toFixed(1).padStart(8)}`)
  for (const target of targets) console.log(`${target.met ? 'met    ' : 'NOT MET'} ${target.text}`)

  let previous = {}
  try { previous = JSON.parse(fs.readFileSync(RESULTS, 'utf8')) } catch {}
  previous.metrics = { at: new Date().toISOString(), machine: m, batch: BATCH, rounds: ROUNDS, rows, added, targets }
  fs.writeFileSync(RESULTS, JSON.stringify(previous, null, 2) + '\n')
}

// The added work alone, per HIT: a memory lookup through the observed store (timed into the histogram)
// against the bare store, and building and setting the Cache-Status member. Fastest of rounds, ns.
async function parts () {
  const { DIST } = require('./common.js')
  const { MemoryStore } = require(path.join(DIST, 'lib/stores/memory.js'))
  const { ObservedStore } = require(path.join(DIST, 'lib/stores/observed-store.js'))
  const { Stats } = require(path.join(DIST, 'lib/stats.js'))
  const { bindMetrics, loadPromClient } = require(path.join(DIST, 'lib/metrics.js'))
  const { hitMember, setCacheStatus } = require(path.join(DIST, 'lib/cache-status.js'))
  const memory = new MemoryStore(1 << 20)
  await memory.write('k', 'g', Buffer.alloc(1000), 0)
  const stats = new Stats()
  const bound = bindMetrics(await loadPromClient(), { registry: new Registry(), prefix: '' }, stats)
  const plain = new ObservedStore(memory, stats, undefined)
  const timed = new ObservedStore(memory, stats, bound.timer('memory'))
  const entry = { ttl: 3600_000, http: undefined }
  const headers = new Map()
  const reply = { getHeader: (n) => headers.get(n), header: (n, v) => headers.set(n, v) }
  const N = 1_000_000
  const cases = {
    'store.lookup': () => memory.lookup('k', 'g'),
    'observed, metrics off': () => plain.lookup('k', 'g'),
    'observed, metrics on': () => timed.lookup('k', 'g'),
    'Cache-Status member': () => { headers.clear(); setCacheStatus(reply, hitMember('fastify-http-cache', entry, 1234)) }
  }
  const best = {}
  for (let r = 0; r < 7; r++) {
    for (const [name, fn] of Object.entries(cases)) {
      const start = process.cpuUsage()
      for (let i = 0; i < N; i++) fn()
      const used = process.cpuUsage(start)
      const ns = (used.user + used.system) * 1000 / N
      best[name] = Math.min(best[name] ?? Infinity, ns)
    }
  }
  return best
}

// --callgrind: instructions per HIT, which other processes on the machine do not change. Each app runs
// in its own process under valgrind twice, with N and 2N HITs; the difference divided by N is the cost
// of one HIT without the process's start-up and warm-up.
function callgrind () {
  const n = intEnv('METRICS_CALLGRIND_HITS', 1000)
  const run = (id, hits) => {
    const out = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', process.execPath, '--expose-gc', __filename], {
      env: { ...process.env, METRICS_ONLY: id, METRICS_BATCH: String(hits) },
      encoding: 'utf8'
    })
    const m = /Collected : (\d+)/.exec(out.stderr)
    if (out.status !== 0 || m === null) throw new Error(`${WHO}: valgrind run of ${id} failed: ${out.stderr.slice(-2000)}`)
    return Number(m[1])
  }
  const rows = []
  for (const v of VARIANTS) {
    const per = (run(v.id, 2 * n) - run(v.id, n)) / n
    rows.push({ id: v.id, label: v.label, instructionsPerHit: Math.round(per) })
    process.stderr.write(`${v.id}: ${Math.round(per)} instructions per HIT\n`)
  }
  const off = rows[0].instructionsPerHit
  console.log(`\nHIT cost in instructions (callgrind, app.inject, memory store), (2×${n} − ${n} HITs) / ${n}`)
  console.log('app                           instr/HIT   ratio to off')
  for (const row of rows) {
    row.ratio = row.instructionsPerHit / off
    console.log(`${row.label.padEnd(30)}${String(row.instructionsPerHit).padStart(10)}   ${row.ratio.toFixed(4)}`)
  }
  let previous = {}
  try { previous = JSON.parse(fs.readFileSync(RESULTS, 'utf8')) } catch {}
  previous.metricsInstructions = { at: new Date().toISOString(), hits: n, rows }
  fs.writeFileSync(RESULTS, JSON.stringify(previous, null, 2) + '\n')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
