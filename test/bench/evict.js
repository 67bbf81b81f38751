'use strict'

// npm run bench:evict: what evictions cost Redis as another client sees it, and how big an entry is in Redis.
//   1. Evictions: a throwaway redis-server holds OTHER unrelated keys (EVICT_OTHERS; DEBUG POPULATE, or
//      pipelined MSET where DEBUG is not allowed). A group of N 1 KB values (10,000 / 100,000 / 1,000,000) is
//      registered through the plugin (fastify.cache.set) and filled in bulk by a script writing what the
//      store writes (values stamped with the group's generation, the group's index); then
//      fastify.cache.evictGroup(group) is timed on the caller's side, and the reclaim of the keys behind it
//      until none is left. Meanwhile another client (a process of its own at a raised priority, its own
//      connection) sends a PING every millisecond: its worst and p99 round trip during the eviction and the
//      whole reclaim, beside the same client's on the idle Redis just before. Keys per second reclaimed say
//      how fast memory comes back; the SLOWLOG (threshold 0) gives the longest script, and how many ran past
//      2 ms beside a control script that does nothing for as long; INFO commandstats Redis's whole time in
//      scripts, and process.cpuUsage() this process's (the app's side of the reclaim). The same for evictTag over EVICT_TAG_ENTRIES,
//      evict(url) of one URL stored under EVICT_URL_ORIGINS origins (one 1 KB entry each), and clear() over
//      EVICT_CLEAR_GROUPS groups of one value each.
//   2. Storage per entry: N responses of the 1 KB JSON route are cached through HTTP (app.inject), then
//      every entry key is measured: STRLEN of the value, MEMORY USAGE of the key, against the body and
//      header bytes the response carried. Overhead = STRLEN - body - header bytes; target <= 64 bytes.
// Results are printed and merged into test/bench/results.json (under "evict"), where npm run bench lists them.
// Settings (environment):
//   EVICT_SIZES     group sizes (10000,100000,1000000)   EVICT_OTHERS   other keys in Redis (200000)
//   EVICT_TAG_ENTRIES  tagged entries for evictTag (100000; 0 = skip)   STORAGE_ENTRIES  entries for the storage figure (1000)
//   EVICT_URL_ORIGINS  origins of the URL evict(url) evicts (10000,100000; 0 = skip)
//   EVICT_CLEAR_GROUPS groups clear() evicts (10000,100000; 0 = skip)
//   EVICT_IDLE_MS   how long the other client measures the idle Redis before each eviction (3000)
//   EVICT_REDIS_CPU  CPU of redis-server (the last one)   EVICT_APP_CPU  CPUs of this process (the others)
//   BENCH_PIN=0     no pinning (taskset)
//   BENCH_MAX_FOREIGN  % of a CPU other processes may use before a timed eviction (15)
//   BENCH_QUIET_WAIT   seconds to wait at most for that before each timed eviction (30)
//   BENCH_RESULTS   results file (test/bench/results.json)
//   HTTP_CACHE_DIST directory of the compiled plugin (dist/)   REDIS_SERVER_BIN  redis-server binary

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const Fastify = require('fastify')
const { Redis } = require('ioredis')
const { body: BODY, text: BODY_TEXT, SIZE } = require('./body.js')
const { loadPlugin, startRedisServer, killRedis, machine, describeMachine, percentileOfSorted, redisVersion, waitQuiet, intEnv } = require('./common.js')

const WHO = 'test/bench/evict.js'
const RESULTS = path.resolve(process.env.BENCH_RESULTS ?? path.join(__dirname, 'results.json'))
const IN_FLIGHT = 500

function listEnv (name, fallback) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const list = raw.split(',').map(Number)
  if (list.some((n) => !Number.isInteger(n) || n < 0)) throw new Error(`${name} must be comma-separated whole numbers, got ${JSON.stringify(raw)}`)
  return list
}

const int = (n) => Math.round(n).toLocaleString('en-US')
const log = (msg) => process.stderr.write(msg + '\n')

/** Loads `n` unrelated keys (other:<i>, ~64-byte values) as fast as the server allows. */
async function loadOthers (redis, n) {
  if (n === 0) return 'none'
  try {
    await redis.call('DEBUG', 'POPULATE', String(n), 'other', '64')
    return 'DEBUG POPULATE'
  } catch {
    // DEBUG disabled (enable-debug-command no): pipelined MSET, 1,000 keys a command
    const value = 'v'.repeat(64)
    for (let i = 0; i < n;) {
      const pipe = redis.pipeline()
      for (let c = 0; c < 50 && i < n; c++) {
        const args = []
        for (let k = 0; k < 1000 && i < n; k++, i++) args.push(`other:${i}`, value)
        pipe.mset(...args)
      }
      await pipe.exec()
    }
    return 'pipelined MSET'
  }
}

/** Runs `fn(i)` for i < n with at most IN_FLIGHT calls pending. */
async function inBatches (n, fn) {
  for (let start = 0; start < n; start += IN_FLIGHT) {
    const batch = []
    for (let i = start; i < Math.min(n, start + IN_FLIGHT); i++) batch.push(fn(i))
    await Promise.all(batch)
  }
}

// What the store writes for a value, in bulk: KEYS index, tag set ('' = none); ARGV key prefix, from,
// to, the value as the store wrote one (stamped), ttl ms. (The layout of lib/stores/scripts.ts WRITE,
// without its checks.)
const FILL = `
local value = ARGV[4]
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
  local key = ARGV[1] .. i
  redis.call('SET', key, value, 'PX', ARGV[5])
  redis.call('SADD', KEYS[1], key)
  if KEYS[2] ~= '' then redis.call('SADD', KEYS[2], key) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if KEYS[2] ~= '' then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
return 1
`

// One URL's entries under origins http://h<from>.test … http://h<to>.test, as the store writes them:
// KEYS index, origins; ARGV entry prefix, rest of the key, from, to, the entry as the store wrote one
// (stamped), ttl ms.
const FILL_URL = `
local value = ARGV[5]
for i = tonumber(ARGV[3]), tonumber(ARGV[4]) do
  local origin = 'http://h' .. i .. '.test'
  local key = ARGV[1] .. origin .. ARGV[2]
  redis.call('SET', key, value, 'PX', ARGV[6])
  redis.call('SADD', KEYS[1], key)
  redis.call('SADD', KEYS[2], origin)
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
`

/** The URL /url/<n> of group url-<n> stored under n origins: the first through HTTP, the rest in bulk. */
async function fillUrl (app, redis, n) {
  const group = `url-${n}`
  const base = `http-cache:{${group}}:`
  const entry = (i) => `${base}e:GET:http://h${i}.test/url/${n}`
  const first = await app.inject({ url: `/url/${n}`, headers: { host: 'h0.test' } })
  if (first.headers['x-cache'] !== 'MISS') throw new Error(`${WHO}: the first GET /url/${n} answered x-cache: ${first.headers['x-cache']}`)
  while (await redis.exists(entry(0)) === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  const value = await redis.getBuffer(entry(0))
  for (let i = 1; i < n; i += 10_000) {
    await redis.eval(FILL_URL, 2, base + 'i', base + 'o', `${base}e:GET:`, `/url/${n}`, i, Math.min(n - 1, i + 9_999), value, 3_600_000)
  }
  const indexed = await redis.scard(base + 'i')
  const origins = await redis.scard(base + 'o')
  if (indexed !== n || origins !== n) throw new Error(`${WHO}: the group indexes ${indexed} keys under ${origins} origins, expected ${n}`)
  return { group, entry }
}

/** n groups of one value each, set through the plugin (each registered as a real write does). */
async function fillGroups (app, n) {
  await inBatches(n, async (i) => await app.cache.set('item', BODY_TEXT, { group: `clear-${i}`, ttl: 3600 }))
}

async function fill (app, redis, group, n, tag) {
  const base = `http-cache:{${group}}:`
  // one value through the plugin registers the group (and the tag) as a real write does
  await app.cache.set('item:first', BODY_TEXT, { group, ttl: 3600, tags: tag === undefined ? [] : [tag] })
  // the others stamped as it was (generation, clears, tag)
  const value = await redis.getBuffer(base + 'v:item:first')
  for (let i = 0; i < n - 1; i += 10_000) {
    await redis.eval(FILL, 2, base + 'i', tag === undefined ? '' : `${base}t:${tag}`, `${base}v:item:`, i, Math.min(n - 2, i + 9_999), value, 3_600_000)
  }
  const indexed = await redis.scard(base + 'i')
  if (indexed !== n) throw new Error(`${WHO}: the group indexes ${indexed} keys, expected ${n}`)
}

const PINGER = `
const { Redis } = require(process.argv[1])
const redis = new Redis(process.argv[2])
let on = false
let times = []
process.on('message', (m) => {
  if (m === 'start') { times = []; on = true; tick() }
  if (m === 'stop') { on = false; process.send(times) }
  if (m === 'quit') { redis.disconnect(); process.exit(0) }
})
process.on('disconnect', () => process.exit(0)) // the bench went away
function tick () {
  if (!on) return
  const t0 = process.hrtime.bigint()
  redis.ping().then(() => {
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    setTimeout(tick, 1)
  })
}
`

/**
 * Another client: a PING every millisecond on its own connection, in a process of its own, at a higher
 * priority (nice -15, when allowed) where it shares a CPU with this process: a client elsewhere does not
 * wait for this process's JavaScript (clear() keeps it busy) to read its reply. Not real-time: Node at
 * FIFO priority on one core spins waiting for its own helper threads.
 */
function startPinger (url) {
  const args = ['-e', PINGER, require.resolve('ioredis'), url]
  const raised = spawnSync('nice', ['-n', '-15', 'true'], { stdio: 'ignore' }).status === 0
  const child = raised
    ? spawn('nice', ['-n', '-15', process.execPath, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const next = () => new Promise((resolve) => child.once('message', resolve))
  return {
    priority: raised ? 'raised (nice -15)' : 'normal',
    start: () => child.send('start'),
    stop: async () => { const p = next(); child.send('stop'); return summarize(await p) },
    quit: () => child.send('quit')
  }
}

function summarize (times) {
  const sorted = [...times].sort((a, b) => a - b)
  // the round trips over the 5 ms target: on a VM an idle Redis has some too (see the idle window)
  const first = sorted.findIndex((t) => t > 5)
  return { pings: sorted.length, worst: sorted[sorted.length - 1] ?? 0, p99: percentileOfSorted(sorted, 99), median: percentileOfSorted(sorted, 50), over5: first === -1 ? 0 : sorted.length - first }
}

async function reclaimDone (redis, group) {
  while (await redis.llen(`http-cache:{${group}}:R`) > 0) await new Promise((resolve) => setTimeout(resolve, 5))
}

async function everyReclaimDone (redis) {
  // clear()'s walk behind the call is recorded until done; the groups it queued are recorded in the reclaim
  // registry before it records its progress, and dropped when done
  while (await redis.exists('http-cache:clearing') > 0) await new Promise((resolve) => setTimeout(resolve, 5))
  while (await redis.scard('http-cache:reclaim') > 0) await new Promise((resolve) => setTimeout(resolve, 5))
}

/** The share of scripts that ran past 2 ms. */
const share = (scripts) => `${(100 * scripts.over2ms / Math.max(1, scripts.calls)).toFixed(2)}%`
/** PINGs over 5 ms per second of a window `ms` long. */
const rate = (pings, ms) => (pings.over5 / (ms / 1000)).toFixed(2)

const LABEL = { group: 'evictGroup', tag: 'evictTag', url: 'evict(url)', clear: 'clear()' }
const UNIT = { group: 'entries', tag: 'entries', url: 'origins', clear: 'groups' }

/** What one kind of eviction is measured on: set up, called, checked. */
async function prepare (app, redis, n, kind) {
  if (kind === 'url') {
    const { group, entry } = await fillUrl(app, redis, n)
    const last = (await app.inject({ url: `/url/${n}`, headers: { host: `h${n - 1}.test` } })).headers['x-cache']
    if (last !== 'HIT') throw new Error(`${WHO}: an entry stored in bulk is not served (x-cache: ${last})`)
    return {
      group,
      evict: async () => await app.cache.evict(`/url/${n}`),
      expected: true,
      // the last origin is the likeliest to have been fenced, not removed, when the call resolved
      served: async () => (await app.inject({ url: `/url/${n}`, headers: { host: `h${n - 1}.test` } })).headers['x-cache'] !== 'MISS',
      done: async () => await reclaimDone(redis, group),
      left: async () => await redis.exists(entry(0), entry(1), entry(Math.floor(n / 2)))
    }
  }
  if (kind === 'clear') {
    await fillGroups(app, n)
    const last = `clear-${n - 1}`
    if (await app.cache.get('item', { group: last }) === undefined) throw new Error(`${WHO}: the value set through the plugin is not served`)
    return {
      group: last,
      evict: async () => await app.cache.clear(),
      expected: 0, // it counts nothing on the call
      served: async () => await app.cache.get('item', { group: 'clear-0' }) !== undefined || await app.cache.get('item', { group: last }) !== undefined,
      done: async () => await everyReclaimDone(redis),
      left: async () => await redis.exists('http-cache:{clear-0}:v:item', `http-cache:{${last}}:v:item`)
    }
  }
  const group = `${kind}-${n}`
  const tag = kind === 'tag' ? `tag-${n}` : undefined
  await fill(app, redis, group, n, tag)
  if (await app.cache.get('item:first', { group }) === undefined) throw new Error(`${WHO}: the value set through the plugin is not served`)
  if (await app.cache.get('item:0', { group }) === undefined) throw new Error(`${WHO}: a value stored in bulk is not served`)
  return {
    group,
    evict: async () => kind === 'tag' ? await app.cache.evictTag(tag) : await app.cache.evictGroup(group),
    expected: n,
    served: async () => await app.cache.get('item:first', { group }) !== undefined || await app.cache.get('item:0', { group }) !== undefined,
    done: async () => await reclaimDone(redis, group),
    left: async () => await redis.exists(`http-cache:{${group}}:v:item:0`, `http-cache:{${group}}:v:item:first`)
  }
}

async function measureGroup (app, redis, pinger, n, quiet, kind, idleMs) {
  const run = await prepare(app, redis, n, kind)
  const memBefore = await usedMemory(redis)
  const foreign = await waitQuiet(quiet)
  pinger.start()
  await new Promise((resolve) => setTimeout(resolve, idleMs))
  const idle = await pinger.stop()
  const control = await controlScripts(redis, idleMs)
  await redis.config('RESETSTAT')
  await redis.slowlog('RESET')
  pinger.start()
  const cpuBefore = process.cpuUsage()
  const start = process.hrtime.bigint()
  const evicted = await run.evict()
  const callMs = Number(process.hrtime.bigint() - start) / 1e6
  if (await run.served()) throw new Error(`${WHO}: a value is still served after the ${LABEL[kind]} resolved`)
  await run.done()
  const totalMs = Number(process.hrtime.bigint() - start) / 1e6
  // this process's CPU over the call and the reclaim behind it (the app's side of the work, and the polls for its end)
  const cpu = process.cpuUsage(cpuBefore)
  const during = await pinger.stop()
  const scripts = await scriptStats(redis)
  if (typeof run.expected === 'function' ? !run.expected(evicted) : evicted !== run.expected) throw new Error(`${WHO}: ${LABEL[kind]} answered ${evicted} (${int(n)} ${UNIT[kind]})`)
  if (await run.left() !== 0) throw new Error(`${WHO}: keys ${LABEL[kind]} evicted are still in Redis after the reclaim`)
  const memAfter = await usedMemory(redis)
  const row = { kind, entries: n, callMs, reclaimMs: totalMs, keysPerSecond: n / (totalMs / 1000), idle, during, scripts, control, memFreedMB: (memBefore - memAfter) / 1e6, othersCpu: foreign, appCpuMs: (cpu.user + cpu.system) / 1000 }
  log(`  ${LABEL[kind]} of ${int(n)} ${UNIT[kind]}: call ${callMs.toFixed(2)} ms, all reclaimed after ${totalMs.toFixed(0)} ms (${int(row.keysPerSecond)} keys/s, ${row.memFreedMB.toFixed(0)} MB freed); ` +
    `other client's PING worst ${during.worst.toFixed(2)} ms, p99 ${during.p99.toFixed(2)} ms (idle Redis just before: ${idle.worst.toFixed(2)} / ${idle.p99.toFixed(2)}); ` +
    `PINGs over 5 ms: ${during.over5} of ${int(during.pings)} (${rate(during, totalMs)}/s; idle: ${idle.over5} of ${int(idle.pings)}, ${rate(idle, idleMs)}/s); ` +
    `Redis's time in scripts ${(scripts.usec / 1000).toFixed(0)} ms (${(scripts.usec / n).toFixed(1)} µs per key), this process's CPU ${row.appCpuMs.toFixed(0)} ms; ` +
    `longest script ${scripts.maxUsec === undefined ? '?' : (scripts.maxUsec / 1000).toFixed(2) + ' ms'} (${scripts.slowest}) of ${scripts.calls}, ${(scripts.meanUsec / 1000).toFixed(2)} ms on average, ` +
    `${scripts.over2ms} over 2 ms (${share(scripts)}; a ${SPIN_USEC / 1000} ms control script run back to back just before: ${control.over2ms} of ${control.calls}, ${share(control)})` +
    `${foreign > quiet.max ? ` — other processes used ${Math.round(foreign * 100)}% of a CPU just before` : ''}`)
  return row
}

// The control: a script that holds Redis for a reclaim script's budget (0.75 ms), doing nothing.
// Whatever makes it run past 2 ms is the machine, not the script.
const SPIN = `local t = redis.call('TIME')
local stop = t[1] * 1000000 + t[2] + tonumber(ARGV[1])
repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= stop
return 1`
const SPIN_USEC = 750

/** Runs the control script back to back for `ms`, and says how long each took (the SLOWLOG). */
async function controlScripts (redis, ms) {
  await redis.config('RESETSTAT')
  await redis.slowlog('RESET')
  const end = Date.now() + ms
  while (Date.now() < end) await redis.eval(SPIN, 0, SPIN_USEC)
  return await scriptStats(redis)
}

/** Script calls since the last CONFIG RESETSTAT, and the slowest one in the SLOWLOG (threshold 0). */
async function scriptStats (redis) {
  const info = await redis.info('commandstats')
  let calls = 0
  let usec = 0
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval|fcall):calls=(\d+),usec=(\d+)/gm)) { calls += Number(m[1]); usec += Number(m[2]) }
  let maxUsec
  let slowest
  // a stall of the VM lands in whichever script runs then: how many went past 2 ms says more than the longest
  let over2ms = 0
  for (const entry of await redis.slowlog('GET', 1_000_000)) {
    const cmd = String(entry[3]?.[0] ?? '').toLowerCase()
    if (cmd !== 'evalsha' && cmd !== 'eval') continue
    if (Number(entry[2]) > 2000) over2ms++
    if (Number(entry[2]) > (maxUsec ?? -1)) {
      maxUsec = Number(entry[2])
      slowest = entry[3].slice(2, 4).map(String).join(' ')
    }
  }
  return { calls, usec, meanUsec: calls === 0 ? 0 : usec / calls, maxUsec, slowest, over2ms }
}

// Headers a stored entry does not keep (recomputed, per message, or the plugin's own on every answer).
const NOT_STORED = new Set(['content-length', 'date', 'connection', 'keep-alive', 'transfer-encoding', 'x-cache', 'cache-control', 'etag', 'age', 'expires'])

async function measureStorage (app, redis, n) {
  await redis.flushall('SYNC')
  const memBefore = await usedMemory(redis)
  const first = await app.inject({ method: 'GET', url: '/item/0' })
  if (first.statusCode !== 200 || first.body !== BODY_TEXT) throw new Error(`${WHO}: GET /item/0 answered ${first.statusCode} with a ${first.body.length}-byte body`)
  if (first.headers['x-cache'] !== 'MISS') throw new Error(`${WHO}: GET /item/0 answered x-cache: ${first.headers['x-cache']}, expected MISS`)
  // the header bytes the entry has to keep: the response's end-to-end headers, as name + value
  const kept = Object.entries(first.headers).filter(([name]) => !NOT_STORED.has(name))
  const headerBytes = kept.reduce((sum, [name, value]) => sum + name.length + String(value).length, 0)
  await inBatches(n - 1, (i) => app.inject({ method: 'GET', url: `/item/${i + 1}` }))

  // entries are written after the response is sent: wait for all of them
  let entryKeys = []
  for (let tries = 0; tries < 100; tries++) {
    entryKeys = (await allKeys(redis)).filter((k) => k.includes('/item/'))
    if (entryKeys.length >= n) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  if (entryKeys.length !== n) throw new Error(`${WHO}: ${entryKeys.length} entry keys in Redis after ${n} MISSes, expected ${n}`)
  const again = await app.inject({ method: 'GET', url: '/item/0' })
  if (again.headers['x-cache'] !== 'HIT' || again.body !== BODY_TEXT) throw new Error(`${WHO}: a stored entry is not served as a HIT with the same body`)

  const pipe = redis.pipeline()
  for (const k of entryKeys) pipe.strlen(k).memory('USAGE', k, 'SAMPLES', '0')
  const replies = await pipe.exec()
  let strlen = 0
  let usage = 0
  for (let i = 0; i < replies.length; i += 2) {
    strlen += replies[i][1]
    usage += replies[i + 1][1]
  }
  const keyBytes = entryKeys.reduce((s, k) => s + Buffer.byteLength(k), 0) / n
  // everything else the plugin keeps for them (index, generation, registries), per entry
  const otherKeys = (await allKeys(redis)).filter((k) => !k.includes('/item/'))
  let bookkeeping = 0
  for (const k of otherKeys) bookkeeping += Number(await redis.memory('USAGE', k, 'SAMPLES', '0')) || 0
  const memAfter = await usedMemory(redis)
  const avgStrlen = strlen / n
  const { layout, etagBytes } = describeValue(await redis.getBuffer(entryKeys[0]), first.headers.etag)
  return {
    entries: n,
    bodyBytes: SIZE,
    headers: Object.fromEntries(kept),
    headerBytes,
    strlen: avgStrlen,
    overhead: avgStrlen - SIZE - headerBytes,
    memoryUsage: usage / n,
    keyBytes,
    bookkeepingPerEntry: bookkeeping / n,
    usedMemoryPerEntry: (memAfter - memBefore) / n,
    layout,
    etag: first.headers.etag,
    etagBytes
  }
}

/**
 * Where a stored value's bytes go, field by field, and how many of them the stored ETag takes (diagnostic:
 * the codec is the plugin's business; msgpack is what it uses today).
 */
function describeValue (bytes, etag) {
  try {
    const { Packr, unpack } = require('msgpackr')
    // maps sized as the plugin writes them (a fixmap up to 15 keys)
    const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true })
    const pack = (v) => packr.pack(v)
    // the store's stamp (h<generation> , or g<…> before December 2026) comes first
    const stamped = bytes[0] === 0x67 || bytes[0] === 0x68
    const stamp = stamped ? bytes.subarray(0, bytes.indexOf(0x20) + 1).toString('latin1') : ''
    const value = unpack(bytes.subarray(stamp.length))
    const fields = Array.isArray(value) ? value : value !== null && typeof value === 'object' ? Object.values(value) : []
    // the ETag as text, or (the plugin's own W/"<length>-<digest>") its digest as bytes
    const digest = /-([\w-]+)"$/.exec(etag ?? '')?.[1]
    const etagField = fields.find((v) => v === etag || ((Buffer.isBuffer(v) || v instanceof Uint8Array) && digest !== undefined && Buffer.from(v).toString('base64url') === digest))
    const etagBytes = etagField === undefined ? undefined : pack(etagField).length
    const show = (v) => {
      const size = pack(v).length
      if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `${size} (bytes)`
      if (typeof v === 'string') return `${size} (${JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v)})`
      if (v !== null && typeof v === 'object') return `${size} (${Array.isArray(v) ? 'array' : 'map'})`
      return `${size} (${JSON.stringify(v)})`
    }
    const layout = (stamped ? `stamp ${stamp.length} (${JSON.stringify(stamp)}), ` : '') + (Array.isArray(value)
      ? `array header ${pack(value).length - value.reduce((sum, v) => sum + pack(v).length, 0)}, ` + value.map(show).join(', ')
      : value !== null && typeof value === 'object' ? Object.entries(value).map(([k, v]) => `${k}: ${show(v)}`).join(', ') : show(value))
    return { layout, etagBytes }
  } catch {
    return { layout: undefined, etagBytes: undefined }
  }
}

async function allKeys (redis) {
  const out = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000)
    cursor = next
    out.push(...keys)
  } while (cursor !== '0')
  return out
}

async function usedMemory (redis) {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1])
}

function mergeResults (evict) {
  let all = {}
  try {
    all = JSON.parse(fs.readFileSync(RESULTS, 'utf8'))
  } catch {}
  all.evict = evict
  fs.writeFileSync(RESULTS, JSON.stringify(all, null, 2) + '\n')
}

/**
 * Redis on a core of its own, as in production: sharing two cores with this process, its scripts are
 * preempted mid-run and their SLOWLOG times count the wait (0.43% of a 1,000,000-key reclaim's scripts past
 * 2 ms, against 0.03-0.09% pinned). Null when pinning is off or not possible.
 */
function pinning () {
  const cpus = os.availableParallelism()
  if (process.env.BENCH_PIN === '0' || cpus < 2) return null
  const redis = process.env.EVICT_REDIS_CPU || String(cpus - 1)
  const app = process.env.EVICT_APP_CPU || (cpus === 2 ? '0' : `0-${cpus - 2}`)
  for (const cpu of [redis, app]) if (spawnSync('taskset', ['-c', cpu, 'true'], { stdio: 'ignore' }).status !== 0) return null
  return { redis, app }
}

async function main () {
  const sizes = listEnv('EVICT_SIZES', [10_000, 100_000, 1_000_000])
  const others = intEnv('EVICT_OTHERS', 200_000, 0)
  const tagEntries = intEnv('EVICT_TAG_ENTRIES', 100_000, 0)
  const urlOrigins = listEnv('EVICT_URL_ORIGINS', [10_000, 100_000]).filter((n) => n > 1)
  const clearGroups = listEnv('EVICT_CLEAR_GROUPS', [10_000, 100_000]).filter((n) => n > 1)
  const storageEntries = intEnv('STORAGE_ENTRIES', 1000)
  const idleMs = intEnv('EVICT_IDLE_MS', 3000)
  const quiet = { max: intEnv('BENCH_MAX_FOREIGN', 15, 0) / 100, maxWait: intEnv('BENCH_QUIET_WAIT', 30, 0) * 1000, pids: () => [redisServer.child.pid] }
  const mach = machine()
  const httpCache = loadPlugin(WHO)

  // DEBUG POPULATE needs the debug command enabled (Redis 7 refuses it by default); the SLOWLOG keeps
  // every command, so the longest script is known
  const major = Number(redisVersion().split('.')[0])
  const pin = pinning()
  const redisServer = await startRedisServer({
    extraArgs: [...(major >= 7 ? ['--enable-debug-command', 'yes'] : []), '--slowlog-log-slower-than', '0', '--slowlog-max-len', '1000000'],
    launch: (cmd, args, options) => pin === null ? spawn(cmd, args, options) : spawn('taskset', ['-c', pin.redis, cmd, ...args], options)
  })
  // every thread of this process (the app and its reclaimer) off Redis's core; the other client's
  // process, started next, inherits that
  if (pin !== null) spawnSync('taskset', ['-a', '-p', '-c', pin.app, String(process.pid)], { stdio: 'ignore' })
  log(pin === null ? 'not pinned: Redis shares the CPUs with this process' : `redis-server on CPU ${pin.redis}, this process on CPU ${pin.app}`)
  const redis = new Redis(redisServer.url)
  const pinger = startPinger(redisServer.url)
  log(`the other client runs at ${pinger.priority} priority`)
  // generous timeout: the point is to measure the eviction, not to cut it short
  const app = Fastify({ logger: { level: 'warn', stream: process.stderr } })
  try {
    await app.register(httpCache, { redis: redisServer.url, timeout: 60_000, maxOrigins: Math.max(100, ...urlOrigins) })
    app.get('/item/:id', { config: { cache: { group: 'storage', ttl: 3600 } } }, async () => BODY)
    for (const n of urlOrigins) app.get(`/url/${n}`, { config: { cache: { group: `url-${n}`, ttl: 3600 } } }, async () => BODY)
    await app.ready()

    const t0 = Date.now()
    const how = await loadOthers(redis, others)
    log(`${int(others)} other keys loaded with ${how} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    const rows = []
    for (const n of sizes) rows.push(await measureGroup(app, redis, pinger, n, quiet, 'group', idleMs))
    if (tagEntries > 0) rows.push(await measureGroup(app, redis, pinger, tagEntries, quiet, 'tag', idleMs))
    for (const n of urlOrigins) rows.push(await measureGroup(app, redis, pinger, n, quiet, 'url', idleMs))
    for (const n of clearGroups) rows.push(await measureGroup(app, redis, pinger, n, quiet, 'clear', idleMs))
    log(`storage: ${int(storageEntries)} entries of the ${SIZE}-byte route through HTTP`)
    const storage = await measureStorage(app, redis, storageEntries)

    const groups = rows.filter((r) => r.kind === 'group')
    const largest = groups[groups.length - 1]
    const smallest = groups[0]
    const worst = Math.max(...rows.map((r) => r.during.worst))
    const longest = Math.max(...rows.map((r) => r.scripts.maxUsec ?? 0)) / 1000
    const targets = [
      {
        name: 'evictGroup costs O(1) on the caller\'s path (largest / smallest group call time <= 3)',
        value: largest.callMs / smallest.callMs,
        met: largest.callMs / smallest.callMs <= 3,
        text: `${largest.callMs.toFixed(2)} ms for ${int(largest.entries)} entries, ${smallest.callMs.toFixed(2)} ms for ${int(smallest.entries)}`
      },
      ...rows.filter((r) => r.kind === 'tag' || r.kind === 'url').map((row) => ({
        name: `${LABEL[row.kind]} of ${int(row.entries)} ${row.kind === 'tag' ? 'entries' : UNIT[row.kind]} costs O(1) on the caller's path (its call time / the smallest group's <= 3)`,
        value: row.callMs / smallest.callMs,
        met: row.callMs / smallest.callMs <= 3,
        text: `${row.callMs.toFixed(2)} ms for ${int(row.entries)} ${row.kind === 'tag' ? 'tagged entries' : 'origins'}, ${smallest.callMs.toFixed(2)} ms for a group of ${int(smallest.entries)}`
      })),
      {
        name: 'each script of an eviction and its reclaim holds Redis <= 2 ms',
        value: longest,
        met: longest <= 2,
        text: `longest ${longest.toFixed(2)} ms (SLOWLOG); ${rows.map((r) => `${LABEL[r.kind]} of ${int(r.entries)}: ${share(r.scripts)} over 2 ms (control ${share(r.control)})`).join(', ')}`
      },
      {
        name: `another client's PING during any eviction and its reclaim <= 5 ms (${int(largest.entries)}-entry group included)`,
        value: worst,
        met: worst <= 5,
        text: `worst ${worst.toFixed(2)} ms; p99 ${Math.max(...rows.map((r) => r.during.p99)).toFixed(2)} ms; the same client's worst on the idle Redis just before: ${Math.max(...rows.map((r) => r.idle.worst)).toFixed(2)} ms; ` +
          `PINGs over 5 ms per second, during / idle: ${rows.map((r) => `${rate(r.during, r.reclaimMs)} / ${rate(r.idle, idleMs)}`).join(', ')}`
      },
      {
        name: 'Redis value per entry <= body + headers + 64 bytes',
        value: storage.overhead,
        met: storage.overhead <= 64,
        text: `STRLEN ${storage.strlen.toFixed(0)} B = body ${SIZE} + headers ${storage.headerBytes} + ${storage.overhead.toFixed(0)} B overhead` +
          (storage.etagBytes === undefined ? '' : `, ${storage.etagBytes} B of it the ETag the plugin computed (${storage.overhead - storage.etagBytes} B without it)`) +
          ` (MEMORY USAGE of the key ${storage.memoryUsage.toFixed(0)} B with its ${storage.keyBytes.toFixed(0)}-byte name)`
      }
    ]
    const result = { at: new Date().toISOString(), machine: mach, settings: { sizes, others, tagEntries, urlOrigins, clearGroups, storageEntries, idleMs, pin, pinger: pinger.priority }, rows, storage, targets }
    mergeResults(result)

    console.log(`\nfastify-http-cache evictions and storage, ${describeMachine(mach)}; ${int(others)} other keys in Redis\n`)
    console.log('| eviction | entries | call ms | all reclaimed after, ms | keys/s reclaimed | scripts | longest script ms | scripts over 2 ms (control) | other client PING worst / p99 ms | same, idle Redis just before | PINGs over 5 ms per s (idle) |')
    console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
    for (const r of rows) {
      console.log(`| ${LABEL[r.kind]} | ${int(r.entries)}${r.kind === 'url' || r.kind === 'clear' ? ' ' + UNIT[r.kind] : ''} | ${r.callMs.toFixed(2)} | ${r.reclaimMs.toFixed(0)} | ${int(r.keysPerSecond)} | ${r.scripts.calls} | ` +
        `${r.scripts.maxUsec === undefined ? '?' : (r.scripts.maxUsec / 1000).toFixed(2)} | ${share(r.scripts)} (${share(r.control)}) | ${r.during.worst.toFixed(2)} / ${r.during.p99.toFixed(2)} | ${r.idle.worst.toFixed(2)} / ${r.idle.p99.toFixed(2)} | ${rate(r.during, r.reclaimMs)} (${rate(r.idle, idleMs)}) |`)
    }
    console.log(`\nstorage per entry (${int(storage.entries)} entries of GET /item/:id, ${SIZE}-byte body):`)
    console.log(`  headers kept: ${Object.entries(storage.headers).map(([k, v]) => `${k}: ${v}`).join('; ')} = ${storage.headerBytes} bytes (name + value)`)
    console.log(`  STRLEN of the value      ${storage.strlen.toFixed(1)} bytes  (overhead over body + headers: ${storage.overhead.toFixed(1)} bytes)`)
    if (storage.layout !== undefined) console.log(`  the value's msgpack fields, bytes each: ${storage.layout}`)
    console.log(`  MEMORY USAGE of the key  ${storage.memoryUsage.toFixed(1)} bytes  (key name ${storage.keyBytes.toFixed(1)} bytes)`)
    console.log(`  index and other bookkeeping keys: ${storage.bookkeepingPerEntry.toFixed(1)} bytes per entry; used_memory grew ${storage.usedMemoryPerEntry.toFixed(1)} bytes per entry`)
    console.log('\ntargets:')
    for (const t of targets) console.log(`  ${(t.met ? 'met' : 'NOT MET').padEnd(8)} ${t.name}: ${t.text}`)
    console.log(`\nresults: ${path.relative(process.cwd(), RESULTS)} (under "evict")`)
  } finally {
    pinger.quit()
    await app.close().catch(() => {})
    redis.disconnect()
    await killRedis(redisServer)
  }
}

main().catch((err) => {
  process.stderr.write(`\nbench:evict failed: ${err.stack ?? err}\n`)
  process.exitCode = 1
})
