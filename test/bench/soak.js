'use strict'

// npm run soak: mixed load against the built plugin on a throwaway redis-server that is killed and
// stopped underneath it. Nothing may fail: a cache outage must be invisible to clients except in latency.
//   - a Fastify app (its own process, node --expose-gc) with cached GET routes in two groups (alpha, beta;
//     one with a 1 s ttl) and POST routes that evict a group (config: { cache: { evict: 'alpha' } })
//   - SOAK_CONCURRENCY (20) client loops over keep-alive HTTP, 0.5% of requests evicting writes (SOAK_WRITE_PERCENT),
//     0.05% a POST /clear that calls fastify.cache.clear() (SOAK_CLEAR_PERCENT): a write to every group, whose
//     groups a walk then evicts behind the call
//   - a second instance of the app on the same Redis, read by SOAK_CONCURRENCY / 2 loops of GETs only: it
//     never hears of the writes but through Redis
//   - every ~15 s (a quarter of the run when it is shorter) Redis is SIGKILLed and started again on the
//     same port; once, instead, it is SIGSTOPped for ~1 s and SIGCONTed
// Stale HITs (a HIT computed before a write to its group that had answered before the read was sent) are
// counted on both: the writer must serve none (an eviction that failed is replayed before it serves what it
// covers); the second instance none later than 1 s after Redis is back.
// Prints requests served, errors (any non-2xx or socket error: must be 0, else exit code 1), latency
// p50/p99/max, the hit ratio, per phase between faults too, and the server's heap used (after gc()) before
// and after the run. SOAK_SECONDS (60) sets the length; SOAK_L1=1 adds the in-process tier
// (l1: { maxBytes: 64 MiB, ttl: 60 }); HTTP_CACHE_DIST the plugin build (dist/).

const { spawn } = require('node:child_process')
const http = require('node:http')
const readline = require('node:readline')
const { startRedisServer, killRedis, loadPlugin, freePort, machine, describeMachine, percentileOfSorted, sleep, intEnv } = require('./common.js')

const WHO = 'test/bench/soak.js'
const IDS = 50 // URLs per route

// ---- the server (child process) ---------------------------------------------------------------

async function serve (redisPort) {
  if (typeof global.gc !== 'function') throw new Error(`${WHO}: the server needs node --expose-gc`)
  const Fastify = require('fastify')
  const httpCache = loadPlugin(WHO)
  // the plugin's log lines, counted by level; the first few warnings and errors are kept to be shown
  const logs = { counts: {}, first: [] }
  const stream = {
    write (line) {
      let level = 'unknown'
      try {
        const msg = JSON.parse(line)
        level = msg.level >= 50 ? 'error' : msg.level >= 40 ? 'warn' : 'info'
        if (msg.level >= 40 && logs.first.length < 8) logs.first.push(`${level}: ${msg.msg}${msg.err?.message !== undefined ? ` (${msg.err.message})` : ''}`)
      } catch {}
      logs.counts[level] = (logs.counts[level] ?? 0) + 1
    }
  }
  const app = Fastify({ logger: { level: 'warn', stream } })
  const options = { redis: `redis://127.0.0.1:${redisPort}`, timeout: 100 }
  if (process.env.SOAK_L1 === '1') options.l1 = { maxBytes: 64 * 1024 * 1024, ttl: 60 }
  await app.register(httpCache, options)
  const runs = { get: 0, post: 0, clear: 0 }
  const work = async () => { await sleep(1) }
  const item = (group) => async (request) => {
    runs.get++
    await work()
    return { group, id: request.params.id, at: Date.now(), pad: 'x'.repeat(400) }
  }
  const list = (group) => async () => {
    runs.get++
    await work()
    return { group, at: Date.now(), items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `${group}-${i}` })) }
  }
  app.get('/alpha/:id', { config: { cache: { group: 'alpha', ttl: 60 } } }, item('alpha'))
  app.get('/alpha', { config: { cache: { group: 'alpha', ttl: 60 } } }, list('alpha'))
  app.get('/beta/:id', { config: { cache: { group: 'beta', ttl: 60 } } }, item('beta'))
  app.get('/beta-short/:id', { config: { cache: { group: 'beta', ttl: 1 } } }, item('beta'))
  // answered whether or not the clear reached Redis: a failed one is kept and replayed, and until then this
  // instance serves nothing it covers (as for the routes' evictions, which answer all the same)
  app.post('/clear', async () => {
    runs.post++
    runs.clear++
    await app.cache.clear().catch(() => {})
    return { ok: true }
  })
  for (const group of ['alpha', 'beta']) {
    app.post(`/${group}`, { config: { cache: { evict: group } } }, async (request) => {
      runs.post++
      await work()
      return { ok: true, group, got: request.body ?? null }
    })
  }
  app.get('/soak/stats', async () => ({ runs, logs }))
  app.get('/soak/heap', async () => {
    // twice: the first pass can leave work (weak refs, finalizers) for the second
    global.gc()
    global.gc()
    return process.memoryUsage()
  })
  process.stdin.on('end', () => app.close().then(() => process.exit(0), () => process.exit(1)))
  process.stdin.resume()
  await app.listen({ host: '127.0.0.1', port: 0 })
  process.stdout.write(JSON.stringify({ port: app.server.address().port }) + '\n')
}

// ---- the load (parent process) ----------------------------------------------------------------

class Recorder {
  constructor () {
    this.latencies = []
    this.count = 0
    this.errors = 0
    this.errorSamples = []
    this.xcache = {}
    this.kinds = { GET: 0, POST: 0 }
    this.max = { ms: 0, at: 0, what: '' }
    this.firstHit = NaN
    this.stale = 0
    this.staleSamples = []
  }

  /** A HIT computed before a write to its group started, read after that write had answered. */
  recordStale (what, at, age) {
    this.stale++
    if (this.staleSamples.length < 5) this.staleSamples.push(`${(at / 1000).toFixed(1)} s ${what}: computed ${age} ms before a write to its group that had already answered`)
  }

  record (what, ms, at, status, xcache, err) {
    this.count++
    this.latencies.push(ms)
    if (ms > this.max.ms) this.max = { ms, at, what }
    const kind = what.split(' ')[0]
    this.kinds[kind] = (this.kinds[kind] ?? 0) + 1
    if (err !== undefined || status < 200 || status > 299) {
      this.errors++
      if (this.errorSamples.length < 10) this.errorSamples.push(`${(at / 1000).toFixed(1)} s ${what}: ${err?.message ?? `status ${status}`}`)
      return
    }
    if (kind === 'GET') this.xcache[xcache ?? 'none'] = (this.xcache[xcache ?? 'none'] ?? 0) + 1
    if (xcache === 'HIT' && Number.isNaN(this.firstHit)) this.firstHit = at
  }

  summary () {
    const sorted = Float64Array.from(this.latencies).sort()
    const hits = this.xcache.HIT ?? 0
    const misses = this.xcache.MISS ?? 0
    return {
      requests: this.count,
      kinds: this.kinds,
      errors: this.errors,
      p50: percentileOfSorted(sorted, 50),
      p99: percentileOfSorted(sorted, 99),
      max: this.max,
      xcache: this.xcache,
      hitRatio: hits + misses === 0 ? NaN : hits / (hits + misses),
      firstHit: this.firstHit,
      stale: this.stale
    }
  }
}

function request (agent, port, method, url, body) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint()
    const done = (status, xcache, err, text) => resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, status, xcache, err, text })
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request({ host: '127.0.0.1', port, method, path: url, agent, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => done(res.statusCode, res.headers['x-cache'], undefined, text))
      res.on('error', (err) => done(0, undefined, err))
    })
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')))
    req.on('error', (err) => done(0, undefined, err))
    req.end(payload)
  })
}

function pick (writePercent, clearPercent) {
  const r = Math.random() * 100
  if (r < clearPercent) return ['POST', '/clear']
  const group = Math.random() < 0.5 ? 'alpha' : 'beta'
  if (r < clearPercent + writePercent) return ['POST', `/${group}`, { n: Math.floor(Math.random() * 1000) }]
  const id = Math.floor(Math.random() * IDS)
  const routes = [`/alpha/${id}`, `/alpha/${id}`, '/alpha', `/beta/${id}`, `/beta/${id}`, `/beta-short/${id}`]
  return ['GET', routes[Math.floor(Math.random() * routes.length)]]
}

/**
 * `concurrency` loops of requests until `until()` says stop; every answer goes to `record`, every HIT that
 * predates a write its client could know of to `stale` (the write's eviction did not happen).
 */
async function runLoad ({ port, concurrency, writePercent, clearPercent = 0, until, record, stale, t0, written = { alpha: 0, beta: 0 } }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  // per group: the latest start (epoch ms) of a write that has answered 2xx (shared by the instances' loads)
  const loop = async () => {
    while (!until()) {
      const [method, url, body] = pick(writePercent, clearPercent)
      const group = url === '/clear' ? undefined : url.startsWith('/alpha') ? 'alpha' : 'beta'
      const knownWrite = written[group]
      const sent = Date.now()
      const r = await request(agent, port, method, url, body)
      const at = Date.now() - t0
      record(`${method} ${url}`, r.ms, at, r.status, r.xcache, r.err)
      if (r.err !== undefined || r.status < 200 || r.status > 299) continue
      if (method === 'POST') {
        // a clear() is a write to every group
        for (const g of group === undefined ? ['alpha', 'beta'] : [group]) written[g] = Math.max(written[g], sent)
      } else if (r.xcache === 'HIT' && stale !== undefined) {
        // computed (handler ran) before a write that had answered before this read was sent
        const computed = JSON.parse(r.text).at
        if (computed + 1 < knownWrite) stale(`${method} ${url}`, at, knownWrite - computed)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  agent.destroy()
}

async function getJson (port, url) {
  const agent = new http.Agent({ keepAlive: false })
  const r = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url, agent }, (res) => {
      let b = ''
      res.setEncoding('utf8')
      res.on('data', (c) => { b += c })
      res.on('end', () => resolve(b))
    }).on('error', reject)
  })
  return JSON.parse(r)
}

async function startServer (redisPort) {
  const child = spawn(process.execPath, ['--expose-gc', __filename, '--server', String(redisPort)], { stdio: ['pipe', 'pipe', 'inherit'] })
  child.stdin.on('error', () => {})
  const port = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const msg = JSON.parse(line)
        if (typeof msg.port === 'number') resolve(msg.port)
      } catch {}
    })
    child.once('exit', (code) => reject(new Error(`${WHO}: the server exited during startup (code ${code}); see its stderr above`)))
  })
  return { child, port }
}

const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`
const fmt = (n) => Number.isNaN(n) ? '-' : n.toFixed(2)

async function main () {
  const seconds = intEnv('SOAK_SECONDS', 60)
  const concurrency = intEnv('SOAK_CONCURRENCY', 20)
  const writePercent = Number(process.env.SOAK_WRITE_PERCENT ?? 0.5)
  if (!(writePercent >= 0 && writePercent <= 100)) throw new Error(`SOAK_WRITE_PERCENT must be a number from 0 to 100, got ${JSON.stringify(process.env.SOAK_WRITE_PERCENT)}`)
  const clearPercent = Number(process.env.SOAK_CLEAR_PERCENT ?? 0.05)
  if (!(clearPercent >= 0 && clearPercent <= 100)) throw new Error(`SOAK_CLEAR_PERCENT must be a number from 0 to 100, got ${JSON.stringify(process.env.SOAK_CLEAR_PERCENT)}`)
  const every = Math.min(15, seconds / 4) * 1000
  const log = (msg) => process.stderr.write(msg + '\n')

  const redisPort = await freePort()
  let redis = await startRedisServer({ port: redisPort })
  const server = await startServer(redisPort)
  const second = await startServer(redisPort)
  const readers = Math.max(1, Math.floor(concurrency / 2))
  const stopAll = async () => {
    for (const { child } of [server, second]) {
      child.stdin.end()
      await new Promise((resolve) => child.exitCode !== null ? resolve() : child.once('exit', resolve))
    }
    await killRedis(redis)
  }
  try {
    // warm-up: code paths compiled and caches filled before the first heap figure
    log(`warm-up 3 s, then ${seconds} s of load with ${concurrency} clients on the writer and ${readers} on the second instance; Redis on port ${redisPort}`)
    let t0 = Date.now()
    const warm = new Recorder()
    await Promise.all([
      runLoad({ port: server.port, concurrency, writePercent, until: () => Date.now() - t0 > 3000, record: (...a) => warm.record(...a), t0 }),
      runLoad({ port: second.port, concurrency: readers, writePercent: 0, until: () => Date.now() - t0 > 3000, record: () => {}, t0 })
    ])
    const heapBefore = (await getJson(server.port, '/soak/heap')).heapUsed
    const statsBefore = await getJson(server.port, '/soak/stats')

    const total = new Recorder()
    const phases = [{ name: 'no fault yet', from: 0, rec: new Recorder() }]
    const faults = []
    t0 = Date.now()
    let done = false
    const record = (what, ms, at, status, xcache, err) => {
      total.record(what, ms, at, status, xcache, err)
      const phase = phases[phases.length - 1]
      phase.rec.record(what, ms, at, status, xcache, err)
      if (xcache === 'HIT' && phase.ended !== undefined && at >= phase.ended && phase.firstHit === undefined) phase.firstHit = at - phase.ended
    }
    const stale = (what, at, age) => {
      total.recordStale(what, at, age)
      const phase = phases[phases.length - 1]
      phase.rec.recordStale(what, at, age)
      if (phase.ended === undefined || at < phase.ended) phase.staleDuring = (phase.staleDuring ?? 0) + 1
    }
    const written = { alpha: 0, beta: 0 }
    const load = runLoad({ port: server.port, concurrency, writePercent, clearPercent, until: () => done, record, stale, t0, written })
    // the second instance: its stale HITs by how long after Redis was back they were served
    const other = new Recorder()
    const staleOther = (what, at, age) => {
      other.recordStale(what, at, age)
      const phase = phases[phases.length - 1]
      phase.staleOther = (phase.staleOther ?? 0) + 1
      if (phase.ended !== undefined && at >= phase.ended) phase.lateOther = Math.max(phase.lateOther ?? 0, at - phase.ended)
      else phase.staleOtherDuring = (phase.staleOtherDuring ?? 0) + 1
    }
    const recordOther = (what, ms, at, status, xcache, err) => {
      other.record(what, ms, at, status, xcache, err)
      const phase = phases[phases.length - 1]
      phase.otherErrors = (phase.otherErrors ?? 0) + (err !== undefined || status < 200 || status > 299 ? 1 : 0)
    }
    const loadOther = runLoad({ port: second.port, concurrency: readers, writePercent: 0, until: () => done, record: recordOther, stale: staleOther, t0, written })

    // the faults, one every `every` ms: kill and restart, once stop and continue instead (the second)
    let stopped = false
    for (let k = 1; k * every < seconds * 1000; k++) {
      await sleep(Math.max(0, t0 + k * every - Date.now()))
      const at = Date.now() - t0
      const stop = !stopped && k === 2
      // the phase starts with the fault: what happens during it counts there
      phases.push({ name: stop ? 'SIGSTOP 1 s, SIGCONT, after' : 'SIGKILL, restart, after', from: at, rec: new Recorder() })
      if (stop) {
        stopped = true
        redis.child.kill('SIGSTOP')
        await sleep(1000)
        redis.child.kill('SIGCONT')
        phases[phases.length - 1].ended = Date.now() - t0
        faults.push(`${(at / 1000).toFixed(1)} s: SIGSTOP for 1 s, then SIGCONT`)
      } else {
        await killRedis(redis)
        const down = Date.now()
        await sleep(500) // an outage a client can notice, not just a blip
        redis = await startRedisServer({ port: redisPort })
        phases[phases.length - 1].ended = Date.now() - t0
        faults.push(`${(at / 1000).toFixed(1)} s: SIGKILL, started again on the same port after ${Date.now() - down} ms (empty)`)
      }
      log(faults[faults.length - 1])
    }
    await sleep(Math.max(0, t0 + seconds * 1000 - Date.now()))
    done = true
    await Promise.all([load, loadOther])
    const elapsed = (Date.now() - t0) / 1000
    await sleep(500) // writes the plugin makes after answering
    const heapAfter = (await getJson(server.port, '/soak/heap')).heapUsed
    const stats = await getJson(server.port, '/soak/stats')

    const s = total.summary()
    const so = other.summary()
    const m = machine()
    console.log(`\nfastify-http-cache soak: ${seconds} s, ${concurrency} concurrent clients (keep-alive), ${writePercent}% evicting writes, ${clearPercent}% clear(), Redis timeout 100 ms` +
      (process.env.SOAK_L1 === '1' ? ', L1 tier on' : ''))
    console.log(describeMachine(m))
    console.log('\nfaults:')
    for (const f of faults) console.log(`  ${f}`)
    console.log('\n| phase | from s | requests | errors | stale HITs (during the fault) | hit ratio | first HIT once Redis is back, ms | p50 ms | p99 ms | max ms | second instance: errors, stale HITs (during), latest after Redis back ms |')
    console.log('|-------|-------:|---------:|-------:|------------------------------:|----------:|---------------------------------:|-------:|-------:|-------:|-------------------------------------------------------------------------:|')
    for (const p of phases) {
      const ps = p.rec.summary()
      const back = p.ended === undefined ? '-' : p.firstHit === undefined ? 'none' : String(p.firstHit)
      console.log(`| ${p.name} | ${(p.from / 1000).toFixed(1)} | ${ps.requests} | ${ps.errors} | ${ps.stale} (${p.staleDuring ?? 0}) | ` +
        `${Number.isNaN(ps.hitRatio) ? '-' : (ps.hitRatio * 100).toFixed(1) + '%'} | ${back} | ${fmt(ps.p50)} | ${fmt(ps.p99)} | ${fmt(ps.max.ms)} | ` +
        `${p.otherErrors ?? 0}, ${p.staleOther ?? 0} (${p.staleOtherDuring ?? 0}), ${p.lateOther === undefined ? '-' : p.lateOther} |`)
    }
    console.log(`\nrequests served: ${s.requests} (${Math.round(s.requests / elapsed)}/s; GET ${s.kinds.GET ?? 0}, POST ${s.kinds.POST ?? 0})`)
    console.log(`errors (non-2xx or socket errors): ${s.errors}`)
    for (const e of total.errorSamples) console.log(`  ${e}`)
    console.log(`latency: p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)} ms, max ${fmt(s.max.ms)} ms (${s.max.what} at ${(s.max.at / 1000).toFixed(1)} s)`)
    console.log(`stale HITs on the writer (served after a write to their group had answered, computed before it started): ${s.stale} (goal 0)`)
    for (const e of total.staleSamples) console.log(`  ${e}`)
    const late = Math.max(0, ...phases.map((p) => p.lateOther ?? 0))
    const lateCount = phases.reduce((n, p) => n + (p.staleOther ?? 0) - (p.staleOtherDuring ?? 0), 0)
    console.log(`second instance: ${so.requests} GETs, errors ${so.errors}, hit ratio ${(so.hitRatio * 100).toFixed(1)}%, stale HITs ${so.stale} ` +
      `(${lateCount} once Redis was back, the latest ${lateCount === 0 ? '-' : late} ms after; goal: none later than 1000 ms)`)
    for (const e of other.staleSamples) console.log(`  ${e}`)
    for (const e of other.errorSamples) console.log(`  ${e}`)
    console.log(`hit ratio of GETs: ${(s.hitRatio * 100).toFixed(1)}% (${Object.entries(s.xcache).map(([k, v]) => `${k} ${v}`).join(', ')})`)
    console.log(`handler runs: GET ${stats.runs.get - statsBefore.runs.get}, POST ${stats.runs.post - statsBefore.runs.post} (of them clear() ${stats.runs.clear - statsBefore.runs.clear})`)
    console.log(`server heap used after gc(): before ${mb(heapBefore)}, after ${mb(heapAfter)} (${heapAfter >= heapBefore ? '+' : ''}${mb(heapAfter - heapBefore)})`)
    console.log(`server log lines (whole run): ${Object.entries(stats.logs.counts).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`)
    for (const line of stats.logs.first) console.log(`  ${line}`)
    if (s.errors + so.errors > 0) {
      console.log(`\nFAILED: ${s.errors + so.errors} requests failed; a Redis outage must never fail a request`)
      process.exitCode = 1
    } else {
      console.log('\nno request failed')
    }
  } finally {
    await stopAll()
  }
}

if (process.argv[2] === '--server') {
  serve(Number(process.argv[3])).catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`)
    process.exit(1)
  })
} else {
  main().catch((err) => {
    process.stderr.write(`\nsoak failed: ${err.stack ?? err}\n`)
    process.exitCode = 1
  })
}
