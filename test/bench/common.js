'use strict'

// Helpers shared by the benchmark scripts (run.js, server.js, evict.js, soak.js): a throwaway
// redis-server, the compiled plugin, the machine's description and a few statistics.

const { spawn, spawnSync } = require('node:child_process')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')

// HTTP_CACHE_DIST: another build of the plugin (a directory holding index.js); default dist/.
const DIST = path.resolve(process.env.HTTP_CACHE_DIST ?? path.join(__dirname, '..', '..', 'dist'))

/** The compiled plugin (npm run build), with an error that says what to do when it is missing. */
function loadPlugin (who) {
  try {
    return require(path.join(DIST, 'index.js'))
  } catch (err) {
    throw new Error(`${who}: cannot load the compiled plugin from ${DIST} (run \`npm run build\` first): ${err.message}`)
  }
}

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

// whatever happens, no redis-server started here outlives the script
const redisChildren = new Set()
process.on('exit', () => {
  for (const child of redisChildren) child.kill('SIGKILL')
})

function redisBin () {
  return process.env.REDIS_SERVER_BIN ?? 'redis-server'
}

/**
 * Starts a throwaway redis-server (no persistence) on `port` (a free one by default) and resolves once it
 * answers PING. `launch(cmd, args, options)` spawns it (run.js pins it to a CPU that way).
 */
async function startRedisServer ({ port, bin = redisBin(), extraArgs = [], launch = spawn } = {}) {
  port ??= await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', os.tmpdir(), '--daemonize', 'no', '--loglevel', 'warning', ...extraArgs]
  const child = launch(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  redisChildren.add(child)
  child.once('exit', () => redisChildren.delete(child))
  let output = ''
  const keep = (chunk) => { output = (output + chunk).slice(-4000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  let failure = null
  child.once('error', (err) => {
    failure = err.code === 'ENOENT'
      ? new Error(`${bin} (or taskset) not found: install redis-server (apt-get install redis-server) or set REDIS_SERVER_BIN`)
      : err
  })
  child.once('exit', (code, signal) => {
    failure ??= new Error(`redis-server exited during startup (code ${code}, signal ${signal}):\n${output}`)
  })
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (failure !== null) throw failure
    if (await redisPing(port)) return { port, url: `redis://127.0.0.1:${port}`, child }
    await sleep(50)
  }
  child.kill('SIGKILL')
  throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within 10 s:\n${output}`)
}

/** Stops a redis-server started above (SIGKILL: nothing to save) and waits for it to be gone. */
async function killRedis (redis) {
  const child = redis.child
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await gone
}

function redisVersion (bin = redisBin()) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  return /v=([\d.]+)/.exec(r.stdout ?? '')?.[1] ?? 'unknown'
}

/** CPU model, cores, Node and redis-server versions: printed with every table. */
function machine () {
  return {
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown CPU',
    cpus: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    redis: redisVersion()
  }
}

function describeMachine (m) {
  return `${m.cpu}, ${m.cpus} CPUs, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, redis-server ${m.redis}`
}

/** A whole number from the environment, `fallback` when unset; anything else is an error. */
function intEnv (name, fallback, min = 1) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number >= ${min}, got ${JSON.stringify(raw)}`)
  return n
}

// ---- CPU used by other processes (Linux) ------------------------------------------------------

const fs = require('node:fs')

function ticksOf (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12]) // utime + stime
  } catch {
    return 0
  }
}

function busySnapshot (pids) {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number)
    return { at: process.hrtime.bigint(), busy: line[0] + line[1] + line[2], ours: pids.reduce((n, pid) => n + ticksOf(pid), 0) }
  } catch {
    return null
  }
}

/**
 * Waits (up to `maxWait` ms) for a half second in which processes other than this one and `pids()` use at
 * most `max` of a CPU; resolves to that share (NaN where /proc is not there).
 */
async function waitQuiet ({ max = 0.15, maxWait = 30_000, pids = () => [] } = {}) {
  const start = Date.now()
  for (;;) {
    const list = [process.pid, ...pids()]
    const a = busySnapshot(list)
    await sleep(500)
    const b = busySnapshot(list)
    if (a === null || b === null) return NaN
    const ticks = (Number(b.at - a.at) / 1e9) * 100 // USER_HZ
    const foreign = Math.max(0, (b.busy - a.busy) - (b.ours - a.ours)) / ticks
    if (foreign <= max || Date.now() - start >= maxWait) return foreign
  }
}

function median (values) {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Nearest-rank percentile of an array (or typed array) sorted ascending. */
function percentileOfSorted (sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

/** Response times in ms at full resolution, in a growable Float64Array. */
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
    return percentileOfSorted(this.values.subarray(0, this.length).sort(), p)
  }

  max () {
    let m = NaN
    for (let i = 0; i < this.length; i++) if (!(this.values[i] <= m)) m = this.values[i]
    return m
  }
}

module.exports = {
  DIST,
  loadPlugin,
  freePort,
  redisPing,
  redisBin,
  startRedisServer,
  killRedis,
  redisVersion,
  machine,
  describeMachine,
  waitQuiet,
  median,
  percentileOfSorted,
  Samples,
  sleep,
  intEnv,
  ticksOf
}
