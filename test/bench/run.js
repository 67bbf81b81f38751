'use strict'

// npm run bench: side-by-side throughput and latency of (see server.js for each kind)
//   bare             a bare Fastify route returning the 1 KB JSON body as a string: the bytes a HIT sends
//   object           the same route returning the object, serialized per request (the usual handler)
//   slow             the same route behind 5 ms of async work, uncached
//   slow-q           the slow route, uncached, every request with a unique query string (?n=<counter>)
//   memory           the slow route cached by the plugin on its in-memory store (HITs only)
//   memory-ioredis   the same in an app that loaded ioredis for a client of its own, memory store (HITs only)
//   memory-http      the memory HIT under policy: 'http' (freshness from the handler's Cache-Control)
//   memory-metrics   the memory HIT with metrics on (prom-client)
//   redis            the slow route cached by the plugin on Redis (a throwaway redis-server; HITs only)
//   l1               the same with the plugin's in-process tier, l1: { maxBytes: 64 MiB, ttl: 60 } (HITs only)
//   miss             the slow route cached on Redis, every request a unique URL: a MISS that stores.
//                    miss / slow-q is the cost of the MISS path.
//   apicache-memory  Express 4 + apicache, memory (HITs only)
//   apicache-redis   Express 4 + apicache on Redis through node-redis 3 (HITs only)
//   lcache           Fastify 5 + fastify-lcache (HITs only)
//   ioredis          the bare route in an app with @fastify/redis registered (what an app using Redis loads)
//   uncached         the bare route in an app with this plugin registered on Redis, the route without
//                    config.cache: uncached / ioredis is what the plugin costs routes it does not cache
//   proto-map        the issue's reference prototypes, measured here beside the plugin: an onRequest hook
//   proto-redis      answering from a Map, or from Redis GET + msgpackr, with nothing else a cache needs
//   proto-miss       (server.js); proto-miss is proto-redis where every request misses and stores
// Each server runs in its own process pinned to one core (taskset), autocannon runs here on another.
// A server that cannot start (e.g. an option the plugin does not know yet) or does not serve what it
// must is reported as not measured, with the reason, and the others are measured all the same.
// Runs are interleaved and repeated; the table shows medians. Settings (environment):
//   BENCH_DURATION     seconds per measured run (5)       BENCH_ROUNDS  rounds (3)
//   BENCH_CONNECTIONS  concurrent connections (50)        BENCH_WARMUP  seconds of unmeasured load per server first (2)
//   BENCH_SERVERS      comma-separated ids to run (all); bare always runs
//   BENCH_LATENCY_RATE req/s of the latency runs at the same load (default: 30% of the bare route's
//                      median req/s in the rounds above, in thousands; 0: none): an open-loop load
//                      (open-loop.js), so the p99 targets compare HITs and the bare route doing the
//                      same work per second, not each at its own saturation. 30% is where the 20,000
//                      req/s of earlier runs stood on a machine whose bare route made 65,000: a fixed
//                      rate puts a slower machine's servers near saturation, where the p99 is its stalls
//   BENCH_LATENCY_ROUNDS  rounds of those runs (5: a p99 is the median of the rounds', robust to two runs
//                      hit by a stall of the machine)
//   BENCH_WRK          the HIT servers at saturation again, loaded by wrk (a load generator written in C):
//                      "auto" (default) when wrk is on PATH, 1 (required), 0 (off). At 30,000 req/s
//                      autocannon uses most of its own core, so the ratios between the fastest servers
//                      are partly its limit; wrk's rounds are the cross-check (BENCH_ROUNDS of them)
//   BENCH_SERVER_CPU   core of the servers (0)            BENCH_CLIENT_CPU  core of autocannon (1)
//   BENCH_REDIS_CPU    core(s) of redis-server, e.g. "1" or "0,1" (default: not pinned)
//   BENCH_PIN=0        no pinning                          REDIS_SERVER_BIN  redis-server binary (redis-server on PATH)
//   BENCH_MAX_FOREIGN  % of a CPU other processes may use during a run before it is repeated (15)
//   BENCH_RETRIES      how often such a run is repeated at most (2)
//   BENCH_QUIET_WAIT   seconds to wait before each run for other processes to calm down (30)
//   BENCH_RESULTS      where to write the results (test/bench/results.json)
//   BENCH_CHART        where to write the chart made from them (docs/bench.svg)
//   HTTP_CACHE_DIST    directory of the compiled plugin to measure (dist/)

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const autocannon = require('autocannon')
const { text: BODY_TEXT, SIZE } = require('./body.js')
const { startRedisServer, machine, describeMachine, median, Samples, sleep, redisBin, intEnv, ticksOf } = require('./common.js')
const { writeChart } = require('./chart.js')
const { openLoop } = require('./open-loop.js')

const RESULTS = path.resolve(process.env.BENCH_RESULTS ?? path.join(__dirname, 'results.json'))
const CHART = process.env.BENCH_CHART === undefined ? undefined : path.resolve(process.env.BENCH_CHART)

function versionOf (pkg) {
  try {
    return require(`${pkg}/package.json`).version
  } catch {
    return '?'
  }
}

// check: 'none' (nothing cached), 'hit' (every measured request must be a HIT: handler runs do not grow),
// 'miss' (every measured request must run the handler and store). xcache: answers carry x-cache.
// unique: every request gets its own query string.
const SERVERS = [
  { id: 'bare', kind: 'bare', label: 'bare route, 1 KB JSON string', check: 'none' },
  { id: 'object', kind: 'object', label: 'bare route, object serialized per req', check: 'none' },
  { id: 'slow', kind: 'slow', label: 'same + 5 ms async work, uncached', check: 'none' },
  { id: 'slow-q', kind: 'slow', label: 'same, uncached, unique query per req', check: 'none', unique: true },
  { id: 'memory', kind: 'memory', label: 'slow route cached, memory store, HIT', check: 'hit', xcache: true },
  { id: 'memory-ioredis', kind: 'memory-ioredis', label: 'same, app with an ioredis client, memory HIT', check: 'hit', xcache: true, redis: true },
  { id: 'memory-http', kind: 'memory-http', label: "same, policy: 'http', memory HIT", check: 'hit', xcache: true },
  { id: 'memory-metrics', kind: 'memory-metrics', label: 'same, metrics on, memory HIT', check: 'hit', xcache: true },
  { id: 'redis', kind: 'redis', label: 'slow route cached, Redis store, HIT', check: 'hit', xcache: true, redis: true },
  { id: 'l1', kind: 'l1', label: 'slow route cached, Redis + L1, HIT', check: 'hit', xcache: true, redis: true },
  { id: 'miss', kind: 'miss', label: 'slow route cached, Redis, every req MISS', check: 'miss', xcache: true, redis: true, unique: true },
  { id: 'apicache-memory', kind: 'apicache-memory', label: `apicache ${versionOf('apicache')} (Express ${versionOf('express')}), memory, HIT`, check: 'hit' },
  { id: 'apicache-redis', kind: 'apicache-redis', label: `apicache ${versionOf('apicache')} (Express), Redis, HIT`, check: 'hit', redis: true },
  { id: 'ioredis', kind: 'ioredis', label: 'bare route, app with @fastify/redis', check: 'none', redis: true },
  { id: 'uncached', kind: 'uncached', label: 'bare route, app with this plugin (Redis), not cached', check: 'none', redis: true },
  { id: 'lcache', kind: 'lcache', label: `fastify-lcache ${versionOf('fastify-lcache')} (Fastify ${versionOf('fastify')}), HIT`, check: 'hit' },
  { id: 'proto-map', kind: 'proto-map', label: "issue's prototype, in-process Map, HIT", check: 'hit', xcache: true },
  { id: 'proto-redis', kind: 'proto-redis', label: "issue's prototype, Redis GET, HIT", check: 'hit', xcache: true, redis: true },
  { id: 'proto-miss', kind: 'proto-miss', label: "issue's prototype, Redis, every req MISS", check: 'miss', xcache: true, redis: true, unique: true }
]

const children = new Set()
let currentRun = null
let cleaningUp = null
let redisChild = null // stopped last, so no server sees its Redis go away while closing

function cpuEnv (name, fallback) {
  const raw = process.env[name] === undefined || process.env[name] === '' ? fallback : process.env[name]
  if (raw !== undefined && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(raw)) throw new Error(`${name} must be a CPU list for taskset -c (e.g. 1 or 0,1), got ${JSON.stringify(raw)}`)
  return raw
}

function readConfig () {
  const known = SERVERS.map((s) => s.id)
  let only = null
  if (process.env.BENCH_SERVERS !== undefined && process.env.BENCH_SERVERS !== '') {
    only = new Set(['bare', ...process.env.BENCH_SERVERS.split(',').map((s) => s.trim()).filter(Boolean)])
    for (const id of only) if (!known.includes(id)) throw new Error(`BENCH_SERVERS: unknown server ${JSON.stringify(id)} (known: ${known.join(', ')})`)
  }
  return {
    duration: intEnv('BENCH_DURATION', 5),
    rounds: intEnv('BENCH_ROUNDS', 3),
    connections: intEnv('BENCH_CONNECTIONS', 50),
    warmup: intEnv('BENCH_WARMUP', 2, 0),
    maxForeign: intEnv('BENCH_MAX_FOREIGN', 15, 0) / 100,
    retries: intEnv('BENCH_RETRIES', 2, 0),
    quietWait: intEnv('BENCH_QUIET_WAIT', 30, 0),
    latencyRate: process.env.BENCH_LATENCY_RATE === undefined || process.env.BENCH_LATENCY_RATE === '' ? 'auto' : intEnv('BENCH_LATENCY_RATE', 0, 0),
    latencyRounds: intEnv('BENCH_LATENCY_ROUNDS', 5),
    wrk: wrkSetting(),
    serverCpu: cpuEnv('BENCH_SERVER_CPU', '0'),
    clientCpu: cpuEnv('BENCH_CLIENT_CPU', '1'),
    redisCpu: cpuEnv('BENCH_REDIS_CPU', undefined),
    redisBin: redisBin(),
    servers: SERVERS.filter((s) => only === null || only.has(s.id))
  }
}

function wrkSetting () {
  const raw = process.env.BENCH_WRK ?? 'auto'
  if (!['auto', '0', '1'].includes(raw)) throw new Error(`BENCH_WRK must be auto, 0 or 1, got ${JSON.stringify(raw)}`)
  if (raw === '0') return false
  const found = spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined
  if (raw === '1' && !found) throw new Error('BENCH_WRK=1 but wrk is not on PATH (apt-get install wrk)')
  return found
}

// ---- pinning ----------------------------------------------------------------------------------

function canPin (cfg) {
  if (process.env.BENCH_PIN === '0') return 'off (BENCH_PIN=0)'
  if (os.availableParallelism() < 2) return 'off (fewer than 2 CPUs)'
  for (const cpu of [cfg.serverCpu, cfg.clientCpu, cfg.redisCpu]) {
    if (cpu === undefined) continue
    const r = spawnSync('taskset', ['-c', cpu, 'true'], { stdio: 'ignore' })
    if (r.error !== undefined) return 'off (taskset not found)'
    if (r.status !== 0) return `off (taskset -c ${cpu} failed: CPU not available to this process)`
  }
  return null
}

/** Spawns `cmd`, under `taskset -c cpu` when pinning is on and a CPU is given. */
function launch (pin, cpu, cmd, args, options) {
  const child = pin && cpu !== undefined
    ? spawn('taskset', ['-c', cpu, cmd, ...args], options)
    : spawn(cmd, args, options)
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function pinSelf (cpu) {
  // -a: every thread of this process (main, libuv pool, V8 helpers), not only the main thread
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpu, String(process.pid)], { stdio: 'ignore' })
  if (r.status !== 0) throw new Error(`taskset could not pin the load generator to CPU ${cpu}`)
}

// ---- benchmarked servers ----------------------------------------------------------------------

/** Resolves to the running server, or rejects with the reason it could not start (its own words). */
async function startServer (server, cfg, pin, redisUrl) {
  const args = [path.join(__dirname, 'server.js'), server.kind]
  if (server.redis) args.push(redisUrl)
  const child = launch(pin, cfg.serverCpu, process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  child.stdin.on('error', () => {})
  // its stderr goes to ours, line by line with its id
  readline.createInterface({ input: child.stderr }).on('line', (line) => process.stderr.write(`[${server.id}] ${line}\n`))
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('did not start within 20 s')), 20_000)
    let reason = null
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let msg
      try { msg = JSON.parse(line) } catch { return }
      if (typeof msg?.error === 'string') reason = msg.error
      if (typeof msg?.port === 'number') {
        clearTimeout(timer)
        resolve({ ...server, child, url: `http://127.0.0.1:${msg.port}/`, sequence: 0 })
      }
    })
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      // stdout may still hold the error line: read it before giving up
      setImmediate(() => reject(new Error(reason ?? `exited during startup (code ${code}, signal ${signal}); see its stderr above`)))
    })
  })
}

async function get (url) {
  return await new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }))
    })
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${url} timed out`)))
    req.once('error', reject)
  })
}

/** {runs: handler runs, xcache: {HIT: n, MISS: n} (the miss server only)} */
async function serverStats (server) {
  return JSON.parse((await get(new URL('/stats', server.url).href)).body)
}

function expectBody (server, res, what) {
  if (res.status !== 200 || res.body !== BODY_TEXT) {
    throw new Error(`${what} answered ${res.status} with a ${res.body.length}-byte body, expected 200 with the ${SIZE}-byte JSON body`)
  }
}

/**
 * Checks that a server answers the same bytes as the bare route and behaves as its row claims: a cached
 * server serves a warmed entry without running its handler (and says x-cache: HIT when it is this plugin),
 * the miss server runs its handler on a new URL, stores the answer and serves it as a HIT afterwards.
 */
async function verify (server) {
  if (server.check === 'miss') {
    const url = new URL(`/?n=verify-${process.pid}`, server.url).href
    const before = (await serverStats(server)).runs
    const first = await get(url)
    expectBody(server, first, `GET ${url}`)
    if (first.headers['x-cache'] !== 'MISS') throw new Error(`a new URL answered x-cache: ${JSON.stringify(first.headers['x-cache'])}, expected MISS`)
    if ((await serverStats(server)).runs !== before + 1) throw new Error('a MISS did not run the handler once')
    await untilHit(server, url)
    return
  }
  const url = server.unique ? new URL('/?n=verify', server.url).href : server.url
  expectBody(server, await get(url), `GET ${url}`)
  if (server.check === 'hit') await untilHit(server, url)
}

/** Waits until GET `url` is served from the cache: the handler does not run (and x-cache says HIT). */
async function untilHit (server, url) {
  let last
  // the entry is written after the response is sent: give the store a moment
  for (let i = 0; i < 40; i++) {
    const before = (await serverStats(server)).runs
    last = await get(url)
    const after = (await serverStats(server)).runs
    if (after === before && (!server.xcache || last.headers['x-cache'] === 'HIT')) {
      expectBody(server, last, 'the HIT')
      return
    }
    await sleep(50)
  }
  throw new Error(`after warming, GET ${url} still runs the handler (x-cache: ${JSON.stringify(last.headers['x-cache'])}): ` +
    'nothing is stored or served from the cache, so there are no HITs to measure')
}

// ---- CPU used by other processes (Linux) ------------------------------------------------------
// On a shared machine other work steals the cores from the servers; each run reports how much.

const TICKS_PER_SECOND = 100 // USER_HZ

function cpuSnapshot (pids) {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number)
    let ours = ticksOf(process.pid)
    for (const child of children) ours += ticksOf(child.pid)
    return { at: process.hrtime.bigint(), busy: line[0] + line[1] + line[2], ours, self: ticksOf(process.pid), pids: pids.map(ticksOf) }
  } catch {
    return null
  }
}

/**
 * Shares of one CPU used between two snapshots: by processes other than this benchmark, by this
 * process (autocannon) and by each watched pid (the server under load, redis-server).
 */
function cpuShares (a, b) {
  if (a === null || b === null) return { foreign: NaN, client: NaN, pids: [] }
  const ticks = (Number(b.at - a.at) / 1e9) * TICKS_PER_SECOND
  return {
    foreign: Math.max(0, (b.busy - a.busy) - (b.ours - a.ours)) / ticks,
    client: (b.self - a.self) / ticks,
    pids: b.pids.map((t, i) => (t - a.pids[i]) / ticks)
  }
}

/** Waits (up to `maxWait` ms) for a half second in which other processes use at most `max` of a CPU. */
async function waitQuiet (max, maxWait) {
  const start = Date.now()
  for (;;) {
    const a = cpuSnapshot([])
    await sleep(500)
    const foreign = cpuShares(a, cpuSnapshot([])).foreign
    if (!(foreign > max) || Date.now() - start >= maxWait) return Date.now() - start
  }
}

// ---- load -------------------------------------------------------------------------------------

async function load (server, duration, connections, watch = []) {
  const samples = new Samples()
  const before = cpuSnapshot(watch)
  const options = { url: server.url, duration, connections, pipelining: 1 }
  if (server.unique) {
    // every request its own URL: for the miss server a MISS that stores, for slow-q the same work uncached
    // (each such server counts from 0: slow-q and miss see the same URLs, none of them twice)
    options.requests = [{ setupRequest: (req) => ({ ...req, path: `/?n=${server.sequence++}` }) }]
  }
  const result = await new Promise((resolve, reject) => {
    const instance = autocannon(options, (err, res) => {
      currentRun = null
      if (err) reject(err)
      else resolve(res)
    })
    currentRun = instance
    instance.on('response', (client, statusCode, bytes, ms) => {
      if (statusCode >= 200 && statusCode < 300) samples.push(ms)
    })
  })
  const cpu = cpuShares(before, cpuSnapshot(watch))
  return {
    rps: result.requests.total / result.duration,
    // percentiles of every 2xx response time at full resolution (autocannon's own histogram, kept as
    // acP50/acP99, rounds to whole ms)
    p50: samples.percentile(50),
    p99: samples.percentile(99),
    acP50: result.latency.p50,
    acP99: result.latency.p99,
    ok: samples.length,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    foreign: cpu.foreign,
    client: cpu.client,
    server: cpu.pids[0] ?? NaN,
    redis: cpu.pids[1] ?? NaN
  }
}

/** Open-loop load at cfg.latencyRate (see open-loop.js), with the same CPU accounting as load(). */
async function atSameLoad (server, cfg, watch) {
  const before = cpuSnapshot(watch)
  const r = await openLoop(server.url, { rate: cfg.latencyRate, duration: cfg.duration, connections: cfg.connections })
  const cpu = cpuShares(before, cpuSnapshot(watch))
  return { ...r, foreign: cpu.foreign, client: cpu.client, server: cpu.pids[0] ?? NaN, redis: cpu.pids[1] ?? NaN }
}

// The servers measured again at saturation by wrk: one URL each (no per-request URLs), no MISS rows
const WRK_IDS = new Set(['bare', 'memory', 'memory-ioredis', 'memory-http', 'memory-metrics', 'redis', 'l1', 'proto-map', 'proto-redis'])

/** wrk at saturation (the CPU of this process's affinity: the client's core), parsed into a run. */
async function wrkLoad (server, cfg, pin) {
  const child = launch(pin, cfg.clientCpu, 'wrk', ['-t1', `-c${cfg.connections}`, `-d${cfg.duration}s`, '--latency', server.url], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk) => { out += chunk })
  const code = await new Promise((resolve) => child.once('exit', resolve))
  const total = /(\d+) requests in ([\d.]+)(m?s)/.exec(out)
  if (code !== 0 || total === null) throw new Error(`wrk failed on ${server.id} (exit ${code}): ${out.slice(-500)}`)
  const seconds = Number(total[2]) / (total[3] === 'ms' ? 1000 : 1)
  const at = (p) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out)
    return m === null ? NaN : Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]]
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  return {
    rps: Number(total[1]) / seconds,
    p50: at(50),
    p99: at(99),
    ok: Number(total[1]) - non2xx,
    errors: socket === null ? 0 : socket.slice(1).reduce((n, x) => n + Number(x), 0),
    non2xx,
    foreign: NaN // not accounted: wrk is a child that has exited by the second snapshot
  }
}

// ---- report -----------------------------------------------------------------------------------

const int = (n) => Number.isNaN(n) ? '-' : Math.round(n).toLocaleString('en-US')
const ms = (n) => Number.isNaN(n) ? '-' : n.toFixed(2)
const pct = (n) => Number.isNaN(n) ? '-' : `${Math.round(n * 100)}%`
const ratio = (n) => Number.isNaN(n) ? '-' : n.toFixed(2)

function table (rows, header) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => '| ' + cells.map((c, i) => i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(' | ') + ' |'
  const rule = '|' + widths.map((w, i) => i === 0 || i === widths.length - 1 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':').join('|') + '|'
  return [line(header), rule, ...rows.map(line)].join('\n')
}

// The servers whose p99 the issue bounds, measured again at one request rate, and the Redis prototype:
// what one Redis round trip per HIT costs the tail on this machine, whoever makes it
const LATENCY_IDS = ['bare', 'memory', 'redis', 'l1', 'proto-redis']

function sameLoad (runs, bareRuns, rate) {
  const p99 = median(runs.map((r) => r.p99))
  return {
    rate,
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99,
    p99Ratio: bareRuns === undefined ? NaN : pairedRatio(runs, bareRuns, 'p99'),
    serverCpu: median(runs.map((r) => r.server))
  }
}

// The machine's speed drifts over minutes (a VM): a ratio is the median of the ratios of each round,
// whose servers ran one after the other, not the ratio of medians taken in different rounds.
function pairedRatio (a, b, key = 'rps') {
  const n = Math.min(a.length, b.length)
  if (n === 0) return NaN
  return median(Array.from({ length: n }, (_, i) => a[i][key] / b[i][key]))
}

/** Medians of one server's runs, and its ratios to the bare route. */
function summarize (server, runs, bare) {
  const rps = median(runs.map((r) => r.rps))
  const p99 = median(runs.map((r) => r.p99))
  return {
    id: server.id,
    label: server.label,
    rps,
    p50: median(runs.map((r) => r.p50)),
    p99,
    rpsRatio: bare === undefined ? NaN : pairedRatio(runs, bare.rounds),
    p99Ratio: bare === undefined ? NaN : pairedRatio(runs, bare.rounds, 'p99'),
    serverCpu: median(runs.map((r) => r.server)),
    redisCpu: server.redis ? median(runs.map((r) => r.redis)) : undefined,
    rounds: runs
  }
}

/** Collection pauses of the server (perf_hooks GC entries, see server.js) per measured response, in µs. */
function gcPerRequest (before, after, runs) {
  if (before === undefined || after === undefined) return undefined
  const n = runs.reduce((sum, r) => sum + r.ok + r.non2xx, 0)
  if (n === 0) return undefined
  const minor = after.minor.count - before.minor.count
  return {
    minorUs: (after.minor.ms - before.minor.ms) * 1000 / n,
    minorCount: minor,
    minorAvgMs: minor === 0 ? 0 : (after.minor.ms - before.minor.ms) / minor,
    majorUs: (after.major.ms - before.major.ms) * 1000 / n,
    majorCount: after.major.count - before.major.count
  }
}

/** Server CPU per response, in µs (the server's share of a CPU over its req/s). */
const cpuPerRequest = (s) => s.serverCpu / s.rps * 1e6

/** The issue's throughput and latency targets, each met / not met with its figure. */
function targets (byId) {
  const out = []
  const fig = (id) => byId.get(id)
  const add = (name, ids, compute) => {
    const missing = ids.filter((id) => fig(id) === undefined || fig(id).failed !== undefined)
    if (missing.length > 0) {
      out.push({ name, met: null, text: `not measured (${missing.map((id) => fig(id)?.failed !== undefined ? `${id} failed` : `${id} not run`).join(', ')})` })
      return
    }
    const { value, met, text } = compute(...ids.map(fig))
    out.push({ name, value, met, text })
  }
  // a ratio of two servers' req/s, and the same from wrk's rounds when both had them (the load generator
  // is then not the limit)
  const rel = (name, a, b, min) => {
    add(name, [a, b], (x, y) => {
      const v = pairedRatio(x.rounds, y.rounds)
      return { value: v, met: v >= min, text: `${v.toFixed(2)}× (${int(x.rps)} vs ${int(y.rps)} req/s; target >= ${min.toFixed(2)}×)` }
    })
    if (fig(a)?.wrk === undefined || fig(b)?.wrk === undefined) return
    const v = pairedRatio(fig(a).wrk.rounds, fig(b).wrk.rounds)
    out.push({ name: `${name} (wrk)`, value: v, met: v >= min, text: `${v.toFixed(2)}× (${int(fig(a).wrk.rps)} vs ${int(fig(b).wrk.rps)} req/s; target >= ${min.toFixed(2)}×)` })
  }
  rel('memory HIT >= 0.90× bare', 'memory', 'bare', 0.90)
  rel('memory HIT >= 1.15× fastify-lcache', 'memory', 'lcache', 1.15)
  rel('Redis HIT >= 0.70× bare', 'redis', 'bare', 0.70)
  rel('Redis HIT >= 4× apicache + Redis', 'redis', 'apicache-redis', 4)
  rel('L1 HIT >= 0.90× bare', 'l1', 'bare', 0.90)
  rel('L1 HIT >= 0.97× memory HIT', 'l1', 'memory', 0.97)
  rel('memory HIT in an app with ioredis loaded >= the L1 HIT', 'memory-ioredis', 'l1', 1)
  rel('Redis HIT >= 1.05× the Redis prototype', 'redis', 'proto-redis', 1.05)
  rel("HIT under policy 'http' >= 0.97× the memory HIT (at most 3% more)", 'memory-http', 'memory', 0.97)
  rel('HIT with metrics on >= 0.97× the memory HIT (at most 3% more)', 'memory-metrics', 'memory', 0.97)
  add('server CPU per MISS <= 1.15× the Redis prototype (miss vs proto-miss)', ['miss', 'proto-miss'], (m, p) => {
    const v = cpuPerRequest(m) / cpuPerRequest(p)
    return { value: v, met: v <= 1.15, text: `${v.toFixed(2)}× (${cpuPerRequest(m).toFixed(1)} vs ${cpuPerRequest(p).toFixed(1)} µs per request)` }
  })
  add("MISS throughput loss <= the Redis prototype's + 5 points (vs slow-q)", ['miss', 'proto-miss', 'slow-q'], (m, p, q) => {
    const lm = 1 - pairedRatio(m.rounds, q.rounds)
    const lp = 1 - pairedRatio(p.rounds, q.rounds)
    return { value: lm - lp, met: lm <= lp + 0.05, text: `${(lm * 100).toFixed(1)}% vs the prototype's ${(lp * 100).toFixed(1)}%` }
  })
  add('MISS overhead <= 5% (miss vs slow-q)', ['miss', 'slow-q'], (m, s) => {
    const v = 1 - pairedRatio(m.rounds, s.rounds)
    return {
      value: v,
      met: v <= 0.05,
      text: `${(v * 100).toFixed(1)}% fewer req/s (${int(m.rps)} vs ${int(s.rps)}), p50 ${ms(m.p50)} vs ${ms(s.p50)} ms, p99 ${ms(m.p99)} vs ${ms(s.p99)} ms`
    }
  })
  add('routes without config.cache unchanged (uncached vs ioredis, within 3% run-to-run noise)', ['uncached', 'ioredis'], (u, i) => {
    const v = pairedRatio(u.rounds, i.rounds)
    return { value: v, met: v >= 0.97, text: `${v.toFixed(2)}× (${int(u.rps)} vs ${int(i.rps)} req/s; ${pairedRatio(u.rounds, fig('bare').rounds).toFixed(2)}× the bare route of an app without Redis)` }
  })
  for (const id of ['memory', 'redis', 'l1']) {
    add(`p99 of a HIT (${id}) <= 1.5× bare p99 at the same load`, [id, 'bare'], (h, b) => {
      const saturated = `at saturation ${pairedRatio(h.rounds, b.rounds, 'p99').toFixed(2)}× (${ms(h.p99)} vs ${ms(b.p99)} ms at ${int(h.rps)} vs ${int(b.rps)} req/s)`
      if (h.sameLoad === undefined || b.sameLoad === undefined) {
        const v = pairedRatio(h.rounds, b.rounds, 'p99')
        return { value: v, met: v <= 1.5, text: `${saturated}; no same-load runs (BENCH_LATENCY_RATE=0)` }
      }
      const v = h.sameLoad.p99Ratio
      const proto = id === 'redis' ? fig('proto-redis')?.sameLoad : undefined
      const beside = proto === undefined ? '' : `; the Redis prototype ${proto.p99Ratio.toFixed(2)}× (${ms(proto.p99)} ms) in the same runs`
      return { value: v, met: v <= 1.5, text: `${v.toFixed(2)}× (${ms(h.sameLoad.p99)} vs ${ms(b.sameLoad.p99)} ms at ${int(h.sameLoad.rate)} req/s)${beside}; ${saturated}` }
    })
  }
  return out
}

/**
 * The issue's prototypes on this machine: what its targets were derived from (on its machine the Map one
 * made 0.91× bare, the Redis one 0.67–0.73×), and the plugin beside each.
 */
function references (byId) {
  const out = []
  const pair = (name, a, b, issue) => {
    const x = byId.get(a)
    const y = byId.get(b)
    if (x === undefined || y === undefined || x.failed !== undefined || y.failed !== undefined) return
    out.push({ name, value: pairedRatio(x.rounds, y.rounds), text: `${pairedRatio(x.rounds, y.rounds).toFixed(2)}× (${int(x.rps)} vs ${int(y.rps)} req/s)${issue === undefined ? '' : `; the issue measured ${issue}`}` })
  }
  pair("issue's Map prototype vs bare", 'proto-map', 'bare', '0.91×')
  pair("issue's Redis prototype vs bare", 'proto-redis', 'bare', '0.67–0.73×')
  pair('memory HIT vs the Map prototype', 'memory', 'proto-map')
  pair('L1 HIT vs the Map prototype', 'l1', 'proto-map')
  pair('Redis HIT vs the Redis prototype', 'redis', 'proto-redis')
  const miss = byId.get('proto-miss')
  const slowQ = byId.get('slow-q')
  if (miss?.rounds !== undefined && slowQ?.rounds !== undefined) {
    const v = 1 - pairedRatio(miss.rounds, slowQ.rounds)
    out.push({ name: "MISS overhead of the issue's Redis prototype (proto-miss vs slow-q)", value: v, text: `${(v * 100).toFixed(1)}% fewer req/s (${int(miss.rps)} vs ${int(slowQ.rps)})` })
  }
  return out
}

/** The eviction and storage targets, as npm run bench:evict last measured them (kept in results.json). */
function evictTargets (evict) {
  if (evict === undefined) {
    return [{ name: 'group eviction and storage targets', met: null, text: 'not measured here: run npm run bench:evict (its figures are then listed by every bench run)' }]
  }
  return (evict.targets ?? []).map((t) => ({ ...t, text: `${t.text} (npm run bench:evict, ${evict.at})` }))
}

/** The HIT cost of cacheStatus and metrics, as npm run bench:metrics last measured it (kept in results.json). */
function metricsTargets (metrics) {
  if (metrics === undefined) {
    return [{ name: 'HIT cost of metrics', met: null, text: 'not measured here: run npm run bench:metrics (its figures are then listed by every bench run)' }]
  }
  return (metrics.targets ?? []).map((t) => ({ ...t, text: `${t.text} (npm run bench:metrics, ${metrics.at})` }))
}

function printTargets (list) {
  console.log('\ntargets:')
  for (const t of list) {
    const mark = t.met === null ? 'not measured' : t.met ? 'met' : 'NOT MET'
    console.log(`  ${mark.padEnd(12)} ${t.name}: ${t.text}`)
  }
}

function readPrevious () {
  try {
    return JSON.parse(fs.readFileSync(RESULTS, 'utf8'))
  } catch {
    return {}
  }
}

// ---- main -------------------------------------------------------------------------------------

async function main () {
  const cfg = readConfig()
  const mach = machine() // before pinning: afterwards this process sees one CPU
  const noPin = canPin(cfg)
  const pin = noPin === null
  const log = (msg) => process.stderr.write(msg + '\n')

  log(`starting redis-server and ${cfg.servers.length} servers…`)
  const redis = await startRedisServer({ bin: cfg.redisBin, launch: (cmd, args, options) => launch(pin, cfg.redisCpu, cmd, args, options) })
  redisChild = redis.child
  const started = await Promise.allSettled(cfg.servers.map((s) => startServer(s, cfg, pin, redis.url)))
  // after the children are started, so they do not inherit this affinity
  if (pin) pinSelf(cfg.clientCpu)

  const failed = new Map() // id -> reason
  const servers = []
  for (let i = 0; i < cfg.servers.length; i++) {
    const s = cfg.servers[i]
    const r = started[i]
    if (r.status === 'rejected') {
      failed.set(s.id, `did not start: ${r.reason.message}`)
      continue
    }
    try {
      await verify(r.value)
      servers.push(r.value)
    } catch (err) {
      failed.set(s.id, `failed its check: ${err.message}`)
      r.value.child.stdin.end()
    }
  }
  for (const [id, reason] of failed) log(`NOT MEASURED ${id}: ${reason}`)
  if (!servers.some((s) => s.id === 'bare')) throw new Error(`the bare route is the reference of every ratio and could not be measured: ${failed.get('bare')}`)
  log(`verified ${servers.map((s) => s.id).join(', ')}: bodies identical to the bare route's, cached servers serve HITs without running their handler`)

  if (cfg.warmup > 0) {
    for (const server of servers) {
      log(`warm-up ${cfg.warmup} s: ${server.label}`)
      await load(server, cfg.warmup, cfg.connections)
    }
  }
  const statsBefore = await Promise.all(servers.map(serverStats))
  const firstMeasured = new Map(servers.map((s) => [s.id, s.sequence]))

  const results = new Map(servers.map((s) => [s.id, []]))
  for (let round = 0; round < cfg.rounds; round++) {
    // rotate the order each round so no server always runs first or last
    for (let i = 0; i < servers.length; i++) {
      const server = servers[(i + round) % servers.length]
      let r
      for (let attempt = 1; ; attempt++) {
        const waited = await waitQuiet(cfg.maxForeign, cfg.quietWait * 1000)
        if (waited > 1000) log(`round ${round + 1}/${cfg.rounds}  waited ${(waited / 1000).toFixed(1)} s for other processes to calm down`)
        r = await load(server, cfg.duration, cfg.connections, [server.child.pid, redis.child.pid])
        // a run that shared the cores with other work says little about the server: do it again
        if (!(r.foreign > cfg.maxForeign) || attempt > cfg.retries) break
        log(`round ${round + 1}/${cfg.rounds}  ${server.id}: other processes used ${pct(r.foreign)} of a CPU, repeating the run (${attempt}/${cfg.retries})`)
      }
      results.get(server.id).push(r)
      log(`round ${round + 1}/${cfg.rounds}  ${server.id.padEnd(16)} ${int(r.rps).padStart(7)} req/s  p50 ${ms(r.p50)} ms  p99 ${ms(r.p99)} ms` +
        (Number.isNaN(r.foreign) ? '' : `  CPU: server ${pct(r.server)}, autocannon ${pct(r.client)}${server.redis ? `, redis-server ${pct(r.redis)}` : ''}, others ${pct(r.foreign)}`) +
        (r.errors + r.non2xx > 0 ? `  (${r.errors} errors, ${r.non2xx} non-2xx)` : ''))
    }
  }
  // Latency at the same load: the bare route and the HITs at one request rate each sustains, so a p99
  // compares the same work per second (at saturation each server would run at its own rate)
  const atRate = new Map()
  if (cfg.latencyRate === 'auto') cfg.latencyRate = Math.max(1000, Math.floor(median(results.get('bare').map((r) => r.rps)) * 0.3 / 1000) * 1000)
  const latencyServers = cfg.latencyRate > 0 ? servers.filter((s) => LATENCY_IDS.includes(s.id)) : []
  for (let round = 0; round < cfg.latencyRounds && latencyServers.length > 0; round++) {
    for (let i = 0; i < latencyServers.length; i++) {
      const server = latencyServers[(i + round) % latencyServers.length]
      await waitQuiet(cfg.maxForeign, cfg.quietWait * 1000)
      const r = await atSameLoad(server, cfg, [server.child.pid, redis.child.pid])
      if (!atRate.has(server.id)) atRate.set(server.id, [])
      atRate.get(server.id).push(r)
      log(`same load ${round + 1}/${cfg.latencyRounds}  ${server.id.padEnd(8)} ${int(r.rps).padStart(7)} req/s (asked ${int(cfg.latencyRate)})  p50 ${ms(r.p50)} ms  p99 ${ms(r.p99)} ms`)
    }
  }
  for (const [id, rs] of atRate) results.set(id + '@rate', rs) // counted by the checks below
  const wrkServers = cfg.wrk ? servers.filter((s) => WRK_IDS.has(s.id)) : []
  for (let round = 0; round < cfg.rounds && wrkServers.length > 0; round++) {
    for (let i = 0; i < wrkServers.length; i++) {
      const server = wrkServers[(i + round) % wrkServers.length]
      await waitQuiet(cfg.maxForeign, cfg.quietWait * 1000)
      const r = await wrkLoad(server, cfg, pin)
      if (!results.has(server.id + '@wrk')) results.set(server.id + '@wrk', [])
      results.get(server.id + '@wrk').push(r)
      log(`wrk ${round + 1}/${cfg.rounds}  ${server.id.padEnd(16)} ${int(r.rps).padStart(7)} req/s  p50 ${ms(r.p50)} ms  p99 ${ms(r.p99)} ms`)
    }
  }
  const statsAfter = await Promise.all(servers.map(serverStats))

  // did every measured request do what the row says?
  const problems = new Map()
  for (let i = 0; i < servers.length; i++) {
    const s = servers[i]
    const rs = [...results.get(s.id), ...(results.get(s.id + '@rate') ?? []), ...(results.get(s.id + '@wrk') ?? [])]
    const errors = rs.reduce((n, r) => n + r.errors, 0)
    const non2xx = rs.reduce((n, r) => n + r.non2xx, 0)
    const ok = rs.reduce((n, r) => n + r.ok, 0)
    const runs = statsAfter[i].runs - statsBefore[i].runs
    const why = []
    if (errors + non2xx > 0) why.push(`${errors} errors/timeouts and ${non2xx} non-2xx responses during measurement`)
    if (s.check === 'hit' && runs !== 0) why.push(`the handler ran ${runs} times during measurement, so not every measured response was a HIT`)
    if (s.check === 'miss') {
      const hits = (statsAfter[i].xcache.HIT ?? 0) - (statsBefore[i].xcache.HIT ?? 0)
      const misses = (statsAfter[i].xcache.MISS ?? 0) - (statsBefore[i].xcache.MISS ?? 0)
      if (hits > 0) why.push(`${hits} measured responses were HITs`)
      if (misses < ok) why.push(`only ${misses} of ${ok} measured responses said x-cache: MISS`)
      if (runs < ok) why.push(`the handler ran ${runs} times for ${ok} responses: not every measured request was a MISS`)
      // the measured misses stored their answers: one of them is a HIT now (one of the last round: the
      // miss route keeps entries for 10 minutes)
      const sample = new URL(`/?n=${Math.max(firstMeasured.get(s.id), s.sequence - 1000)}`, s.url).href
      const again = await get(sample)
      if (again.headers['x-cache'] !== 'HIT') why.push(`a URL requested during measurement is not stored (GET ${sample} answered x-cache: ${JSON.stringify(again.headers['x-cache'])})`)
    }
    if (why.length > 0) problems.set(s.id, why.join('; '))
  }

  const bare = summarize(servers.find((s) => s.id === 'bare'), results.get('bare'))
  const rows = []
  const summaries = []
  for (const s of cfg.servers) {
    if (failed.has(s.id)) {
      summaries.push({ id: s.id, label: s.label, failed: failed.get(s.id) })
      continue
    }
    const sum = summarize(s, results.get(s.id), bare)
    if (atRate.has(s.id)) sum.sameLoad = sameLoad(atRate.get(s.id), atRate.get('bare'), cfg.latencyRate)
    const byWrk = results.get(s.id + '@wrk')
    if (byWrk !== undefined) sum.wrk = { rps: median(byWrk.map((r) => r.rps)), p99: median(byWrk.map((r) => r.p99)), rpsRatio: pairedRatio(byWrk, results.get('bare@wrk') ?? []), rounds: byWrk }
    if (problems.has(s.id)) sum.problem = problems.get(s.id)
    const i = servers.findIndex((x) => x.id === s.id)
    sum.gc = gcPerRequest(statsBefore[i].gc, statsAfter[i].gc, [...results.get(s.id), ...(results.get(s.id + '@rate') ?? []), ...(results.get(s.id + '@wrk') ?? [])])
    summaries.push(sum)
    rows.push([s.label + (problems.has(s.id) ? ' (!)' : ''), int(sum.rps), ratio(sum.rpsRatio), ms(sum.p50), ms(sum.p99), ratio(sum.p99Ratio),
      pct(sum.serverCpu), sum.rounds.map((r) => int(r.rps)).join(' / ')])
  }
  for (const s of summaries) if (s.failed !== undefined) rows.push([s.label, '-', '-', '-', '-', '-', '-', 'not measured (see below)'])

  const previous = readPrevious()
  const byId = new Map(summaries.map((s) => [s.id, s]))
  const runTargets = targets(byId)
  const refs = references(byId)
  const foreign = [...results.values()].flat().map((r) => r.foreign).filter((n) => !Number.isNaN(n))
  const out = {
    at: new Date().toISOString(),
    machine: mach,
    settings: {
      duration: cfg.duration,
      rounds: cfg.rounds,
      connections: cfg.connections,
      warmup: cfg.warmup,
      bodyBytes: SIZE,
      latencyRate: cfg.latencyRate,
      latencyRounds: cfg.latencyRounds,
      pinning: pin ? { servers: cfg.serverCpu, autocannon: cfg.clientCpu, redis: cfg.redisCpu ?? null } : noPin,
      othersCpuAverage: foreign.length > 0 ? foreign.reduce((a, b) => a + b, 0) / foreign.length : null,
      othersCpuWorst: foreign.length > 0 ? Math.max(...foreign) : null
    },
    servers: summaries,
    targets: runTargets,
    references: refs,
    evict: previous.evict, // kept from npm run bench:evict
    metrics: previous.metrics // kept from npm run bench:metrics
  }
  fs.writeFileSync(RESULTS, JSON.stringify(out, null, 2) + '\n')
  const chart = writeChart(out, CHART)

  console.log(`\nfastify-http-cache benchmark: ${cfg.rounds} rounds × ${cfg.duration} s per server, ${cfg.connections} connections, ` +
    `${SIZE}-byte JSON body, medians`)
  console.log(`${describeMachine(mach)}, ` +
    (pin ? `servers on CPU ${cfg.serverCpu}, autocannon on CPU ${cfg.clientCpu}, redis-server ${cfg.redisCpu === undefined ? 'not pinned' : `on CPU ${cfg.redisCpu}`}` : `pinning ${noPin}`))
  if (foreign.length > 0) {
    const worst = Math.max(...foreign)
    console.log(`other processes used ${pct(out.settings.othersCpuAverage)} of a CPU on average during the runs (worst run ${pct(worst)})` +
      (worst > cfg.maxForeign ? ': the machine was not quiet, treat the figures as noisy' : ''))
  }
  console.log('')
  console.log(table(rows, ['server', 'req/s', '× bare', 'p50 ms', 'p99 ms', 'p99 × bare', 'server CPU', 'req/s per round']))
  const latencyRows = summaries.filter((s) => s.sameLoad !== undefined).map((s) => [s.label, int(s.sameLoad.rps), ms(s.sameLoad.p50), ms(s.sameLoad.p99), ratio(s.sameLoad.p99Ratio), pct(s.sameLoad.serverCpu)])
  if (latencyRows.length > 0) {
    console.log(`\nlatency at the same load: ${int(cfg.latencyRate)} req/s asked of each (open loop), medians of ${cfg.latencyRounds} runs`)
    console.log(table(latencyRows, ['server', 'req/s', 'p50 ms', 'p99 ms', 'p99 × bare', 'server CPU']))
  }
  const wrkRows = summaries.filter((s) => s.wrk !== undefined).map((s) => [s.label, int(s.wrk.rps), ratio(s.wrk.rpsRatio), ms(s.wrk.p99), s.wrk.rounds.map((r) => int(r.rps)).join(' / ')])
  if (wrkRows.length > 0) {
    const clientShare = median(summaries.filter((s) => s.wrk !== undefined && s.rounds !== undefined).flatMap((s) => s.rounds.map((r) => r.client)).filter((n) => !Number.isNaN(n)))
    console.log(`\nthe HIT servers at saturation loaded by wrk (autocannon used ${pct(clientShare)} of its core in their rounds above), medians of ${cfg.rounds} rounds`)
    console.log(table(wrkRows, ['server', 'req/s', '× bare', 'p99 ms', 'req/s per round']))
  }
  const gcRows = summaries.filter((s) => s.gc !== undefined).map((s) => [s.label, ms(s.gc.minorUs), String(s.gc.minorCount), ms(s.gc.minorAvgMs), ms(s.gc.majorUs), String(s.gc.majorCount), ms(cpuPerRequest(s))])
  if (gcRows.length > 0) {
    console.log('\ngarbage collection in the server per measured response (perf_hooks GC entries, every run of the server)')
    console.log(table(gcRows, ['server', 'young-gen pause µs/req', 'scavenges', 'ms each', 'full GC µs/req', 'full GCs', 'server CPU µs/req']))
  }
  for (const s of summaries) if (s.failed !== undefined) console.log(`\nnot measured: ${s.id} (${s.label}): ${s.failed}`)
  printTargets([...runTargets, ...evictTargets(previous.evict), ...metricsTargets(previous.metrics)])
  if (refs.length > 0) {
    console.log("\nthe issue's prototypes, measured beside the plugin (not targets):")
    for (const r of refs) console.log(`  ${r.name}: ${r.text}`)
  }
  console.log(`\nresults: ${path.relative(process.cwd(), RESULTS)}, chart: ${path.relative(process.cwd(), chart)}`)

  if (problems.size > 0) {
    throw new Error('the figures of these rows are not trustworthy:\n  ' + [...problems].map(([id, why]) => `${id}: ${why}`).join('\n  '))
  }
  console.log('every measured response of the cached servers was a HIT (their handlers did not run); every one of the miss server ran its handler and stored')
  if (failed.size > 0) {
    process.stderr.write(`\n${failed.size} server(s) not measured: ${[...failed.keys()].join(', ')}\n`)
    process.exitCode = 1
  }
}

// ---- cleanup ----------------------------------------------------------------------------------

async function stopChild (child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.stdin?.end()
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

async function cleanup () {
  cleaningUp ??= (async () => {
    currentRun?.stop()
    await Promise.all([...children].filter((c) => c !== redisChild).map(stopChild))
    await Promise.all([...children].map(stopChild))
  })()
  await cleaningUp
}

// last resort if we exit some other way: nothing may outlive the benchmark
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping servers and redis-server\n`)
    cleanup().finally(() => process.exit(130))
  })
}

main().then(
  () => cleanup(),
  async (err) => {
    process.stderr.write(`\nbench failed: ${err.message}\n`)
    process.exitCode = 1
    await cleanup()
  }
)
