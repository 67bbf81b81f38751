'use strict'

// npm run bench:evict: what a group eviction costs, and how big an entry is in Redis.
//   1. Group eviction: a throwaway redis-server holds OTHER unrelated keys (200,000, then 1,000,000; loaded
//      with DEBUG POPULATE, or pipelined MSET where DEBUG is not allowed); a group is filled with 10,000
//      values through the plugin (fastify.cache.set(key, 1 KB, { group }), 500 in flight at a time) and
//      fastify.cache.evictGroup(group) is timed. Fill and evict are repeated; medians. The eviction must
//      take < 50 ms and not depend on the number of other keys.
//   2. Storage per entry: N responses of the 1 KB JSON route are cached through HTTP (app.inject), then
//      every entry key is measured: STRLEN of the value, MEMORY USAGE of the key, against the body and
//      header bytes the response carried. Overhead = STRLEN - body - header bytes; target <= 64 bytes.
// Results are printed and merged into test/bench/results.json (under "evict"), where npm run bench lists them.
// Settings (environment):
//   EVICT_ENTRIES   entries per group (10000)          EVICT_OTHERS   other key counts (200000,1000000)
//   EVICT_REPEAT    fill+evict repetitions (7)          STORAGE_ENTRIES  entries for the storage figure (1000)
//   BENCH_MAX_FOREIGN  % of a CPU other processes may use before a timed eviction (15)
//   BENCH_QUIET_WAIT   seconds to wait at most for that before each timed eviction (30)
//   BENCH_RESULTS   results file (test/bench/results.json)
//   HTTP_CACHE_DIST directory of the compiled plugin (dist/)   REDIS_SERVER_BIN  redis-server binary

const fs = require('node:fs')
const path = require('node:path')
const Fastify = require('fastify')
const { Redis } = require('ioredis')
const { body: BODY, text: BODY_TEXT, SIZE } = require('./body.js')
const { loadPlugin, startRedisServer, killRedis, machine, describeMachine, median, redisVersion, waitQuiet, intEnv } = require('./common.js')

const WHO = 'test/bench/evict.js'
const RESULTS = path.resolve(process.env.BENCH_RESULTS ?? path.join(__dirname, 'results.json'))
const GROUP = 'evict-bench'
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

/** Microseconds Redis spent in script calls since the last CONFIG RESETSTAT. */
async function scriptUsec (redis) {
  const info = await redis.info('commandstats')
  let usec = 0
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval|fcall):calls=\d+,usec=(\d+)/gm)) usec += Number(m[1])
  return usec
}

// The floor Redis itself sets: the same number of keys (same value size and TTL) removed by one script
// in batches of 500 UNLINKs, as the plugin's eviction script does, without any index or generation.
const UNLINK_ALL = `
for i = 1, #ARGV, 500 do
  redis.call('UNLINK', unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return #ARGV
`

async function measureFloor (redis, entries, r, quiet) {
  const keys = []
  const value = Buffer.alloc(SIZE + 100, 'x')
  for (let i = 0; i < entries; i += 1000) {
    const pipe = redis.pipeline()
    for (let k = i; k < Math.min(entries, i + 1000); k++) {
      keys.push(`floor:${r}:${k}`)
      pipe.set(keys[k], value, 'PX', 3_600_000)
    }
    await pipe.exec()
  }
  await waitQuiet(quiet)
  await redis.config('RESETSTAT')
  const start = process.hrtime.bigint()
  await redis.eval(UNLINK_ALL, 0, ...keys)
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  return { ms, serverMs: (await scriptUsec(redis)) / 1000 }
}

async function measureEviction (app, redis, others, entries, repeat, quiet) {
  await redis.flushall('SYNC')
  const t0 = Date.now()
  const how = await loadOthers(redis, others)
  const loaded = await redis.dbsize()
  if (loaded !== others) throw new Error(`${WHO}: loaded ${loaded} other keys, expected ${others}`)
  log(`  ${int(others)} other keys loaded with ${how} in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  const runs = []
  for (let r = 0; r < repeat; r++) {
    await inBatches(entries, (i) => app.cache.set(`item:${r}:${i}`, BODY_TEXT, { group: GROUP, ttl: 3600 }))
    const before = await redis.dbsize()
    if (before < others + entries) throw new Error(`${WHO}: after filling, Redis holds ${before} keys, expected at least ${others + entries}`)
    // a few ms of work: another process taking the core for a moment would be most of the figure
    const foreign = await waitQuiet(quiet)
    await redis.config('RESETSTAT')
    const start = process.hrtime.bigint()
    const n = await app.cache.evictGroup(GROUP)
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    const serverMs = (await scriptUsec(redis)) / 1000
    if (n !== entries) throw new Error(`${WHO}: evictGroup answered ${n}, expected ${entries}`)
    const after = await redis.dbsize()
    if (after > others + 2) throw new Error(`${WHO}: after the eviction Redis still holds ${after} keys (${others} others)`)
    const floor = await measureFloor(redis, entries, r, quiet)
    runs.push({ ms, serverMs, floorMs: floor.serverMs, othersCpu: foreign })
    log(`  ${int(others)} others, run ${r + 1}/${repeat}: evictGroup of ${int(n)} entries ${ms.toFixed(2)} ms (script ${serverMs.toFixed(2)} ms in Redis; ` +
      `a bare UNLINK of as many keys ${floor.serverMs.toFixed(2)} ms)${foreign > quiet.max ? ` — other processes used ${Math.round(foreign * 100)}% of a CPU just before` : ''}`)
  }
  return {
    others,
    entries,
    loadedWith: how,
    runs,
    ms: median(runs.map((r) => r.ms)),
    serverMs: median(runs.map((r) => r.serverMs)),
    floorMs: median(runs.map((r) => r.floorMs))
  }
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
    const { pack, unpack } = require('msgpackr')
    const value = unpack(bytes)
    const fields = Array.isArray(value) ? value : value !== null && typeof value === 'object' ? Object.values(value) : []
    const etagField = fields.find((v) => v === etag)
    const etagBytes = etagField === undefined ? undefined : pack(etagField).length
    const show = (v) => {
      const size = pack(v).length
      if (Buffer.isBuffer(v) || v instanceof Uint8Array) return `${size} (bytes)`
      if (typeof v === 'string') return `${size} (${JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v)})`
      if (v !== null && typeof v === 'object') return `${size} (${Array.isArray(v) ? 'array' : 'map'})`
      return `${size} (${JSON.stringify(v)})`
    }
    const layout = Array.isArray(value)
      ? value.map(show).join(', ')
      : value !== null && typeof value === 'object' ? Object.entries(value).map(([k, v]) => `${k}: ${show(v)}`).join(', ') : show(value)
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

async function main () {
  const entries = intEnv('EVICT_ENTRIES', 10_000)
  const othersList = listEnv('EVICT_OTHERS', [200_000, 1_000_000])
  const repeat = intEnv('EVICT_REPEAT', 7)
  const storageEntries = intEnv('STORAGE_ENTRIES', 1000)
  const quiet = { max: intEnv('BENCH_MAX_FOREIGN', 15, 0) / 100, maxWait: intEnv('BENCH_QUIET_WAIT', 30, 0) * 1000, pids: () => [redisServer.child.pid] }
  const mach = machine()
  const httpCache = loadPlugin(WHO)

  // DEBUG POPULATE needs the debug command enabled (Redis 7 refuses it by default)
  const major = Number(redisVersion().split('.')[0])
  const redisServer = await startRedisServer({ extraArgs: major >= 7 ? ['--enable-debug-command', 'yes'] : [] })
  const redis = new Redis(redisServer.url)
  // generous timeout: the point is to measure the eviction, not to cut it short
  const app = Fastify({ logger: { level: 'warn', stream: process.stderr } })
  try {
    await app.register(httpCache, { redis: redisServer.url, timeout: 60_000 })
    app.get('/item/:id', { config: { cache: { group: 'storage', ttl: 3600 } } }, async () => BODY)
    await app.ready()

    log(`group eviction: ${int(entries)} entries, ${repeat} runs per size`)
    const groups = []
    for (const others of othersList) groups.push(await measureEviction(app, redis, others, entries, repeat, quiet))
    log(`storage: ${int(storageEntries)} entries of the ${SIZE}-byte route through HTTP`)
    const storage = await measureStorage(app, redis, storageEntries)

    const small = groups.find((g) => g.others === 200_000) ?? groups[0]
    const large = groups.find((g) => g.others === 1_000_000) ?? groups[groups.length - 1]
    const ratio = large.ms / small.ms
    const targets = [
      {
        name: `group eviction of ${int(entries)} entries with ${int(small.others)} other keys < 50 ms`,
        value: small.ms,
        met: small.ms < 50,
        text: `${small.ms.toFixed(2)} ms (median of ${repeat}; ${small.serverMs.toFixed(2)} ms of it in Redis's script)`
      },
      {
        name: `group eviction independent of other keys (${int(large.others)} vs ${int(small.others)}: ratio <= 1.5)`,
        value: ratio,
        met: groups.length > 1 && ratio <= 1.5,
        text: groups.length > 1 ? `${ratio.toFixed(2)}× (${large.ms.toFixed(2)} vs ${small.ms.toFixed(2)} ms)` : 'only one size measured'
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
    const result = { at: new Date().toISOString(), machine: mach, settings: { entries, repeat, storageEntries }, groups, ratio, storage, targets }
    mergeResults(result)

    console.log(`\nfastify-http-cache group eviction and storage, ${describeMachine(mach)}\n`)
    console.log('| other keys in Redis | group entries | evictGroup ms (median) | in Redis script ms | bare UNLINK of as many keys, ms | runs (ms) |')
    console.log('|--------------------:|--------------:|-----------------------:|-------------------:|--------------------------------:|-----------|')
    for (const g of groups) {
      console.log(`| ${int(g.others).padStart(19)} | ${int(g.entries).padStart(13)} | ${g.ms.toFixed(2).padStart(22)} | ${g.serverMs.toFixed(2).padStart(18)} | ` +
        `${g.floorMs.toFixed(2).padStart(31)} | ${g.runs.map((r) => r.ms.toFixed(1)).join(' / ')} |`)
    }
    if (groups.length > 1) {
      console.log(`\nratio ${int(large.others)} / ${int(small.others)} other keys: evictGroup ${ratio.toFixed(2)}, bare UNLINK of as many keys ${(large.floorMs / small.floorMs).toFixed(2)} ` +
        '(what Redis itself pays per key in a bigger keyspace: memory, not the plugin\'s algorithm)')
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
    await app.close().catch(() => {})
    redis.disconnect()
    await killRedis(redisServer)
  }
}

main().catch((err) => {
  process.stderr.write(`\nbench:evict failed: ${err.stack ?? err}\n`)
  process.exitCode = 1
})
