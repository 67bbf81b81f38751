'use strict'

// npm run bench: side-by-side throughput of
//   bare    a bare Fastify route returning a 1 KB JSON body as a string: the bytes a HIT sends (its ceiling)
//   object  the same route returning the object, which Fastify serializes per request (the usual handler)
//   slow    the same route behind 5 ms of async work, uncached
//   memory  the slow route cached by the plugin on its in-memory store (HITs only)
//   redis   the slow route cached by the plugin on Redis (a throwaway redis-server; HITs only)
// Each server runs in its own process pinned to one core (taskset), autocannon runs here on another.
// Runs are interleaved and repeated; the table shows medians. Settings (environment):
//   BENCH_DURATION     seconds per measured run (5)       BENCH_ROUNDS  rounds (3)
//   BENCH_CONNECTIONS  concurrent connections (50)        BENCH_WARMUP  seconds of unmeasured load per server first (2)
//   BENCH_SERVER_CPU   core of the servers (0)            BENCH_CLIENT_CPU  core of autocannon (1)
//   BENCH_REDIS_CPU    core(s) of redis-server, e.g. "1" or "0,1" (default: not pinned)
//   BENCH_PIN=0        no pinning                          REDIS_SERVER_BIN  redis-server binary (redis-server on PATH)
//   BENCH_MAX_FOREIGN  % of a CPU other processes may use during a run before it is repeated (15)
//   BENCH_RETRIES      how often such a run is repeated at most (2)
//   BENCH_QUIET_WAIT   seconds to wait before each run for other processes to calm down (30)

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { setTimeout: sleep } = require('node:timers/promises')
const autocannon = require('autocannon')
const { text: BODY_TEXT, SIZE } = require('./body.js')

const SERVERS = [
  { kind: 'bare', label: 'bare route, 1 KB JSON string', cached: false },
  { kind: 'object', label: 'bare route, object serialized per req', cached: false },
  { kind: 'slow', label: 'same + 5 ms async work, uncached', cached: false },
  { kind: 'memory', label: 'slow route cached, memory store, HIT', cached: true },
  { kind: 'redis', label: 'slow route cached, Redis store, HIT', cached: true }
]

const children = new Set()
let currentRun = null
let cleaningUp = null

function intEnv (name, fallback, min = 1) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number >= ${min}, got ${JSON.stringify(raw)}`)
  return n
}

function cpuEnv (name, fallback) {
  const raw = process.env[name] === undefined || process.env[name] === '' ? fallback : process.env[name]
  if (raw !== undefined && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(raw)) throw new Error(`${name} must be a CPU list for taskset -c (e.g. 1 or 0,1), got ${JSON.stringify(raw)}`)
  return raw
}

function readConfig () {
  return {
    duration: intEnv('BENCH_DURATION', 5),
    rounds: intEnv('BENCH_ROUNDS', 3),
    connections: intEnv('BENCH_CONNECTIONS', 50),
    warmup: intEnv('BENCH_WARMUP', 2, 0),
    maxForeign: intEnv('BENCH_MAX_FOREIGN', 15, 0) / 100,
    retries: intEnv('BENCH_RETRIES', 2, 0),
    quietWait: intEnv('BENCH_QUIET_WAIT', 30, 0),
    serverCpu: cpuEnv('BENCH_SERVER_CPU', '0'),
    clientCpu: cpuEnv('BENCH_CLIENT_CPU', '1'),
    redisCpu: cpuEnv('BENCH_REDIS_CPU', undefined),
    redisBin: process.env.REDIS_SERVER_BIN ?? 'redis-server'
  }
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

// ---- redis-server -----------------------------------------------------------------------------

async function freePort () {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

async function redisPing (port) {
  return await new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    let data = ''
    const done = (ok) => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(500, () => done(false))
    sock.once('error', () => done(false))
    sock.once('connect', () => sock.write('PING\r\n'))
    sock.on('data', (chunk) => {
      data += chunk
      if (data.includes('\r\n')) done(data.startsWith('+PONG'))
    })
  })
}

async function startRedis (cfg, pin) {
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', os.tmpdir(), '--daemonize', 'no', '--loglevel', 'warning']
  const child = launch(pin, cfg.redisCpu, cfg.redisBin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const keep = (chunk) => { output = (output + chunk).slice(-4000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  let failure = null
  child.once('error', (err) => {
    failure = err.code === 'ENOENT'
      ? new Error(`${pin && cfg.redisCpu !== undefined ? 'taskset or ' : ''}${cfg.redisBin} not found: install redis-server (apt-get install redis-server) or set REDIS_SERVER_BIN`)
      : err
  })
  child.once('exit', (code, signal) => {
    failure ??= new Error(`redis-server exited during startup (code ${code}, signal ${signal}):\n${output}`)
  })
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (failure !== null) throw failure
    if (await redisPing(port)) return { url: `redis://127.0.0.1:${port}`, child }
    await sleep(50)
  }
  throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within 10 s:\n${output}`)
}

function redisVersion (bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  return /v=([\d.]+)/.exec(r.stdout ?? '')?.[1] ?? 'unknown'
}

// ---- benchmarked servers ----------------------------------------------------------------------

async function startServer (server, cfg, pin, redisUrl) {
  const args = [path.join(__dirname, 'server.js'), server.kind]
  if (server.kind === 'redis') args.push(redisUrl)
  const child = launch(pin, cfg.serverCpu, process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  child.stdin.on('error', () => {})
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${server.label}: server did not start within 20 s`)), 20_000)
    const lines = readline.createInterface({ input: child.stdout })
    lines.on('line', (line) => {
      let msg
      try { msg = JSON.parse(line) } catch { return }
      if (typeof msg?.port === 'number') {
        clearTimeout(timer)
        resolve({ ...server, child, url: `http://127.0.0.1:${msg.port}/` })
      }
    })
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${server.label}: server exited during startup (code ${code}, signal ${signal}); see its stderr above`))
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

async function handlerRuns (server) {
  return JSON.parse((await get(new URL('/stats', server.url).href)).body).runs
}

/** Checks the body, and for the cached servers that a warmed entry is served as `x-cache: HIT`. */
async function verify (server) {
  const first = await get(server.url)
  if (first.status !== 200 || first.body !== BODY_TEXT) {
    throw new Error(`${server.label}: GET / answered ${first.status} with a ${first.body.length}-byte body, expected 200 with the ${SIZE}-byte JSON body`)
  }
  if (!server.cached) return
  let last = first
  // the entry is written after the response is sent: give the store a moment
  for (let i = 0; i < 40 && last.headers['x-cache'] !== 'HIT'; i++) {
    await sleep(50)
    last = await get(server.url)
  }
  if (last.headers['x-cache'] !== 'HIT') {
    throw new Error(`${server.label}: after warming, GET / still answers x-cache: ${JSON.stringify(last.headers['x-cache'])} ` +
      '(expected HIT). The plugin does not store or serve this response, so there are no HITs to measure; aborting.')
  }
  if (last.status !== 200 || last.body !== BODY_TEXT) {
    throw new Error(`${server.label}: the HIT answered ${last.status} with a ${last.body.length}-byte body that differs from the handler's`)
  }
}

// ---- CPU used by other processes (Linux) ------------------------------------------------------
// On a shared machine other work steals the cores from the servers; each run reports how much.

const TICKS_PER_SECOND = 100 // USER_HZ

function ticksOf (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12]) // utime + stime
  } catch {
    return 0
  }
}

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

/** Response times in ms, at autocannon's full resolution (its own histogram keeps whole ms only). */
class Samples {
  constructor () {
    this.values = new Float64Array(1 << 16)
    this.length = 0
  }

  push (v) {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2)
      grown.set(this.values)
      this.values = grown
    }
    this.values[this.length++] = v
  }

  percentile (p) {
    if (this.length === 0) return NaN
    const sorted = this.values.subarray(0, this.length).sort()
    return sorted[Math.min(this.length - 1, Math.max(0, Math.ceil((p / 100) * this.length) - 1))]
  }
}

async function load (url, duration, connections, watch = []) {
  const samples = new Samples()
  const before = cpuSnapshot(watch)
  const result = await new Promise((resolve, reject) => {
    const instance = autocannon({ url, duration, connections, pipelining: 1 }, (err, res) => {
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
    foreign: cpu.foreign,
    client: cpu.client,
    server: cpu.pids[0] ?? NaN,
    redis: cpu.pids[1] ?? NaN,
    rps: result.requests.total / result.duration,
    p50: samples.percentile(50),
    p99: samples.percentile(99),
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx
  }
}

// ---- report -----------------------------------------------------------------------------------

function median (values) {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

const int = (n) => Math.round(n).toLocaleString('en-US')
const ms = (n) => n.toFixed(2)
const pct = (n) => `${Math.round(n * 100)}%`

function table (rows, header) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells) => '| ' + cells.map((c, i) => i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(' | ') + ' |'
  const rule = '|' + widths.map((w, i) => i === 0 || i === widths.length - 1 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':').join('|') + '|'
  return [line(header), rule, ...rows.map(line)].join('\n')
}

// ---- main -------------------------------------------------------------------------------------

async function main () {
  const cfg = readConfig()
  const cpus = os.availableParallelism() // before pinning: afterwards this process sees one CPU
  const noPin = canPin(cfg)
  const pin = noPin === null
  const log = (msg) => process.stderr.write(msg + '\n')

  log(`starting redis-server and ${SERVERS.length} servers…`)
  const redis = await startRedis(cfg, pin)
  const servers = await Promise.all(SERVERS.map((s) => startServer(s, cfg, pin, redis.url)))
  // after the children are started, so they do not inherit this affinity
  if (pin) pinSelf(cfg.clientCpu)

  for (const server of servers) await verify(server)
  log('verified: bodies identical, memory and Redis entries answer x-cache: HIT')

  if (cfg.warmup > 0) {
    for (const server of servers) {
      log(`warm-up ${cfg.warmup} s: ${server.label}`)
      await load(server.url, cfg.warmup, cfg.connections)
    }
  }
  const runsBefore = await Promise.all(servers.map(handlerRuns))

  const results = new Map(servers.map((s) => [s.kind, []]))
  for (let round = 0; round < cfg.rounds; round++) {
    // rotate the order each round so no server always runs first or last
    for (let i = 0; i < servers.length; i++) {
      const server = servers[(i + round) % servers.length]
      let r
      for (let attempt = 1; ; attempt++) {
        const waited = await waitQuiet(cfg.maxForeign, cfg.quietWait * 1000)
        if (waited > 1000) log(`round ${round + 1}/${cfg.rounds}  waited ${(waited / 1000).toFixed(1)} s for other processes to calm down`)
        r = await load(server.url, cfg.duration, cfg.connections, [server.child.pid, redis.child.pid])
        // a run that shared the cores with other work says little about the server: do it again
        if (!(r.foreign > cfg.maxForeign) || attempt > cfg.retries) break
        log(`round ${round + 1}/${cfg.rounds}  ${server.label}: other processes used ${pct(r.foreign)} of a CPU, repeating the run (${attempt}/${cfg.retries})`)
      }
      results.get(server.kind).push(r)
      log(`round ${round + 1}/${cfg.rounds}  ${server.label.padEnd(38)} ${int(r.rps).padStart(7)} req/s  p50 ${ms(r.p50)} ms  p99 ${ms(r.p99)} ms` +
        (Number.isNaN(r.foreign) ? '' : `  CPU: server ${pct(r.server)}, autocannon ${pct(r.client)}${server.kind === 'redis' ? `, redis-server ${pct(r.redis)}` : ''}, others ${pct(r.foreign)}`) +
        (r.errors + r.non2xx > 0 ? `  (${r.errors} errors, ${r.non2xx} non-2xx)` : ''))
    }
  }
  const runsAfter = await Promise.all(servers.map(handlerRuns))

  const bare = median(results.get('bare').map((r) => r.rps))
  const bareP99 = median(results.get('bare').map((r) => r.p99))
  const rows = servers.map((s) => {
    const rs = results.get(s.kind)
    const rps = median(rs.map((r) => r.rps))
    const p99 = median(rs.map((r) => r.p99))
    const serverCpu = median(rs.map((r) => r.server))
    return [s.label, int(rps), (rps / bare).toFixed(2), ms(median(rs.map((r) => r.p50))), ms(p99), (p99 / bareP99).toFixed(2),
      Number.isNaN(serverCpu) ? '-' : pct(serverCpu), rs.map((r) => int(r.rps)).join(' / ')]
  })

  const cpu = os.cpus()[0]?.model?.trim() ?? 'unknown CPU'
  console.log(`\nfastify-http-cache benchmark: ${cfg.rounds} rounds × ${cfg.duration} s per server, ${cfg.connections} connections, ` +
    `${SIZE}-byte JSON body, medians`)
  console.log(`${cpu}, ${cpus} CPUs, Node ${process.version}, redis-server ${redisVersion(cfg.redisBin)}, ` +
    (pin ? `servers on CPU ${cfg.serverCpu}, autocannon on CPU ${cfg.clientCpu}, redis-server ${cfg.redisCpu === undefined ? 'not pinned' : `on CPU ${cfg.redisCpu}`}` : `pinning ${noPin}`))
  const foreign = [...results.values()].flat().map((r) => r.foreign).filter((n) => !Number.isNaN(n))
  if (foreign.length > 0) {
    const worst = Math.max(...foreign)
    console.log(`other processes used ${pct(foreign.reduce((a, b) => a + b, 0) / foreign.length)} of a CPU on average during the runs (worst run ${pct(worst)})` +
      (worst > cfg.maxForeign ? ': the machine was not quiet, treat the figures as noisy' : ''))
  }
  console.log('')
  console.log(table(rows, ['server', 'req/s', '× bare', 'p50 ms', 'p99 ms', 'p99 × bare', 'server CPU', 'req/s per round']))

  const problems = []
  servers.forEach((s, i) => {
    const rs = results.get(s.kind)
    const errors = rs.reduce((n, r) => n + r.errors, 0)
    const non2xx = rs.reduce((n, r) => n + r.non2xx, 0)
    if (errors + non2xx > 0) problems.push(`${s.label}: ${errors} errors/timeouts and ${non2xx} non-2xx responses during measurement`)
    if (s.cached && runsAfter[i] !== runsBefore[i]) {
      problems.push(`${s.label}: the handler ran ${runsAfter[i] - runsBefore[i]} times during measurement, so not every measured response was a HIT`)
    }
  })
  if (problems.length > 0) throw new Error('the figures above are not trustworthy:\n  ' + problems.join('\n  '))
  console.log('\nevery measured response of the cached servers was a HIT (their handlers did not run)')
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
