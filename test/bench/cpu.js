'use strict'

// Server CPU per request at a fixed request rate, servers side by side:
//   npm run bench:miss   every request a MISS: the plugin against the Redis prototype (proto-miss),
//                        and builds of the plugin against each other
//   npm run bench:hit    (--hit) every request a HIT of the same URL: the memory store's HIT against a
//                        second memory server (the control), the same HIT under policy 'http', with
//                        metrics on, on the L1 tier, in an app with ioredis loaded, and the bare route
//                        (HIT_KINDS, server.js kinds; the first is the reference of the ratios)
// At saturation (npm run bench) a server's CPU share and rate both move with the machine's speed, by more
// than a change to one path; at a fixed rate each server does the same work per second, so its CPU time
// per request compares.
// Every server (server.js) runs in its own process pinned to one core (taskset) with redis-server and the
// load generator (autocannon; for MISSes every request a new URL) on the other. Each
// round loads the servers one after the other, in an order rotated per round; a ratio is the median of
// the per-round ratios (the machine drifts between rounds, less within one). Also reported: the young-
// and old-generation GC pause per request (perf_hooks, as npm run bench), and the bytes per request that
// scavenges promoted to the old generation (--trace-gc-nvp): what a MISS keeps alive past its own
// request, which full collections then pay for (README, "The MISS path, round 2").
// Settings (environment):
//   MISS_BUILDS     builds to compare: "name=dir,name=dir" (directories holding a compiled index.js, as
//                   HTTP_CACHE_DIST); default "plugin=dist" (npm run build)
//   MISS_RATE       req/s per server (2000)      MISS_DURATION  seconds per run (4)
//   MISS_ROUNDS     rounds (8)                   BENCH_SERVER_CPU / BENCH_CLIENT_CPU  cores (0 / 1)
//   HIT_KINDS       --hit: the servers, kind or name=kind (memory,control=memory,memory-http,memory-metrics,
//                   l1,memory-ioredis,bare: control is a second memory server, the noise floor of a ratio);
//                   name=kind@dir runs the kind on another build (e.g. "old=redis@/tmp/old/dist,new=redis")
//   HIT_RATE        --hit: req/s per server (10000); MISS_DURATION and MISS_ROUNDS as above

const { spawn, spawnSync } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')
const autocannon = require('autocannon')
const { startRedisServer, machine, describeMachine, median, intEnv } = require('./common.js')

const WHO = 'test/bench/cpu.js'
const HIT = process.argv.includes('--hit')
const RATE = HIT ? intEnv('HIT_RATE', 10000) : intEnv('MISS_RATE', 2000)
const WHAT = HIT ? 'HIT' : 'MISS'
const DURATION = intEnv('MISS_DURATION', 4)
const ROUNDS = intEnv('MISS_ROUNDS', 8)
const SERVER_CPU = process.env.BENCH_SERVER_CPU ?? '0'
const CLIENT_CPU = process.env.BENCH_CLIENT_CPU ?? '1'

function servers () {
  if (!HIT) return [...builds(), { name: 'proto-miss', kind: 'proto-miss' }]
  // name=kind runs a kind twice: a second memory server is the control, its ratio the noise between
  // two processes running the same code
  const spec = process.env.HIT_KINDS ?? 'memory,control=memory,memory-http,memory-metrics,l1,memory-ioredis,bare'
  return spec.split(',').map((k) => k.trim()).filter(Boolean).map((item) => {
    // kind@dir: that kind on another build (a directory holding a compiled index.js)
    const [named, dist] = item.split('@')
    const at = named.indexOf('=')
    const server = at < 0 ? { name: named, kind: named } : { name: named.slice(0, at), kind: named.slice(at + 1) }
    return dist === undefined ? server : { ...server, dist: path.resolve(dist) }
  })
}

function builds () {
  const spec = process.env.MISS_BUILDS ?? `plugin=${path.join(__dirname, '..', '..', 'dist')}`
  return spec.split(',').map((item) => {
    const at = item.indexOf('=')
    if (at < 1) throw new Error(`${WHO}: MISS_BUILDS takes name=dir pairs, got ${JSON.stringify(item)}`)
    return { name: item.slice(0, at), kind: 'miss', dist: path.resolve(item.slice(at + 1)) }
  })
}

const pinned = (cpu, cmd, args, options) => spawnSync('taskset', ['-c', cpu, 'true']).status === 0
  ? spawn('taskset', ['-c', cpu, cmd, ...args], options)
  : spawn(cmd, args, options)

async function start (server, redisUrl) {
  const env = { ...process.env }
  if (server.dist !== undefined) env.HTTP_CACHE_DIST = server.dist
  env.BENCH_PREFIX = `bench-${server.name}` // builds side by side: each with keys of its own (generations too)
  // --trace-gc-nvp: one line per collection on stdout, with the bytes each scavenge promoted
  const child = pinned(SERVER_CPU, process.execPath, ['--trace-gc-nvp', path.join(__dirname, 'server.js'), server.kind, redisUrl], { env, stdio: ['pipe', 'pipe', 'inherit'] })
  const gc = { promoted: 0 }
  child.stdin.on('error', () => {})
  const port = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${server.name} exited during startup (code ${code})`)))
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes(' gc=s ')) {
        const promoted = /\bpromoted=(\d+)/.exec(line)
        if (promoted !== null) gc.promoted += Number(promoted[1])
        return
      }
      let msg
      try { msg = JSON.parse(line) } catch { return }
      if (typeof msg.port === 'number') resolve(msg.port)
      else if (typeof msg.error === 'string') reject(new Error(`${server.name}: ${msg.error}`))
    })
  })
  return { ...server, child, gc, url: `http://127.0.0.1:${port}`, sequence: 0, runs: [] }
}

async function stats (server) {
  const res = await fetch(`${server.url}/stats`)
  return await res.json()
}

/**
 * One run at RATE: server CPU µs per response, GC pause µs per response, and whether every one was what
 * the mode measures (a MISS; a HIT: the handler did not run; the bare route: answered 2xx).
 */
async function run (server, seconds) {
  const before = await stats(server)
  const promoted = server.gc.promoted
  const result = await new Promise((resolve, reject) => {
    autocannon({
      url: `${server.url}/`,
      duration: seconds,
      connections: 50,
      overallRate: RATE,
      requests: HIT ? undefined : [{ setupRequest: (req) => ({ ...req, path: `/?n=${server.name}-${server.sequence++}` }) }]
    }, (err, res) => err ? reject(err) : resolve(res))
  })
  const after = await stats(server)
  // the server's own process.cpuUsage() in µs: finer than /proc's 10 ms ticks
  const cpu = after.cpu - before.cpu
  const n = result.requests.total
  const misses = (after.xcache.MISS ?? 0) - (before.xcache.MISS ?? 0)
  const clean = result.non2xx === 0 && result.errors === 0
  return {
    rps: n / result.duration,
    cpuUs: cpu / n,
    minorUs: (after.gc.minor.ms - before.gc.minor.ms) * 1000 / n,
    majorUs: (after.gc.major.ms - before.gc.major.ms) * 1000 / n,
    promotedB: (server.gc.promoted - promoted) / n,
    measured: clean && (!HIT ? misses >= n : server.kind === 'bare' || after.runs === before.runs)
  }
}

async function main () {
  const mach = machine()
  const redis = await startRedisServer({ launch: (cmd, args, options) => pinned(CLIENT_CPU, cmd, args, options) })
  const started = []
  try {
    for (const s of servers()) started.push(await start(s, redis.url))
    spawnSync('taskset', ['-a', '-p', '-c', CLIENT_CPU, String(process.pid)], { stdio: 'ignore' })
    for (const s of started) await run(s, 2) // warm-up (and the HIT servers' one MISS)
    for (let round = 0; round < ROUNDS; round++) {
      const line = []
      for (let i = 0; i < started.length; i++) {
        const s = started[(i + round) % started.length]
        const r = await run(s, DURATION)
        if (!r.measured) throw new Error(`${s.name}: not every response of round ${round + 1} was a ${s.kind === 'bare' ? 'response' : WHAT} answered 2xx`)
        s.runs.push(r)
        line.push(`${s.name} ${r.cpuUs.toFixed(1)} µs`)
      }
      process.stderr.write(`round ${round + 1}/${ROUNDS}: ${line.join(', ')}\n`)
    }
  } finally {
    // the servers first: none may see its Redis go away while closing
    await Promise.all(started.map(async (s) => {
      if (s.child.exitCode !== null) return
      const gone = new Promise((resolve) => s.child.once('exit', resolve))
      s.child.stdin.end()
      await gone
    }))
    redis.child.kill('SIGKILL')
  }
  // the ratios' reference: the prototype for MISSes, the first kind for HITs
  const ref = HIT ? started[0] : started[started.length - 1]
  console.log(`\nserver CPU per ${WHAT} at ${RATE} req/s (${HIT ? 'one URL' : 'every URL new'}), ${ROUNDS} rounds × ${DURATION} s, medians`)
  console.log(describeMachine(mach))
  console.log(`| server | req/s | CPU µs/${WHAT} | × ${ref.name} (median of rounds) | young-gen pause µs/${WHAT} | full GC µs/${WHAT} | promoted B/${WHAT} |`)
  console.log('|---|--:|--:|--:|--:|--:|--:|')
  for (const s of started) {
    const ratio = median(s.runs.map((r, i) => r.cpuUs / ref.runs[i].cpuUs))
    const m = (key) => median(s.runs.map((r) => r[key]))
    console.log(`| ${s.name} | ${Math.round(m('rps'))} | ${m('cpuUs').toFixed(1)} | ${ratio.toFixed(3)} | ${m('minorUs').toFixed(2)} | ${m('majorUs').toFixed(2)} | ${Math.round(m('promotedB'))} |`)
  }
  const builds = HIT ? [] : started.slice(0, -1)
  for (const a of builds) {
    for (const b of builds) {
      if (a === b) continue
      console.log(`${a.name} / ${b.name}: ${median(a.runs.map((r, i) => r.cpuUs / b.runs[i].cpuUs)).toFixed(3)} (median of per-round ratios)`)
    }
  }
}

main().catch((err) => {
  process.stderr.write(`${WHO} failed: ${err.stack ?? err}\n`)
  process.exitCode = 1
})
