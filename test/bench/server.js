'use strict'

// One benchmarked server, run by test/bench/run.js in its own process (pinned to its own core).
//   node test/bench/server.js <kind> [redis-url]
// Kinds (every one answers GET / with the same 1 KB JSON body, see body.js):
//   bare             Fastify, the body as a ready string: the bytes a HIT sends (the ceiling of any HIT)
//   object           Fastify, the body as an object serialized per request (the usual handler)
//   slow             Fastify, the object after 5 ms of async work, uncached (also "slow-q" in run.js)
//   memory           the slow route cached by this plugin, in-memory store
//   memory-ioredis   the same in an app that has loaded ioredis and connected a client of its own (as any app
//                    using Redis for something else), still caching on the memory store             (needs the URL)
//   memory-http      the memory HIT under policy: 'http' (the handler's Cache-Control: max-age=3600 says how long)
//   memory-metrics   the memory HIT with metrics on (a prom-client registry of its own)
//   memory-status    the memory HIT with cacheStatus on (RFC 9211 Cache-Status)
//   redis            the slow route cached by this plugin on Redis                          (needs the URL)
//   l1               the same with the in-process tier l1: { maxBytes: 64 MiB, ttl: 60 }     (needs the URL)
//   miss             the slow route cached by this plugin on Redis, loaded with unique URLs (every request a
//                    MISS that stores); counts the x-cache value of every response        (needs the URL)
//   apicache-memory  Express 4 + apicache, memory store, the slow route cached
//   apicache-redis   Express 4 + apicache on Redis (node-redis 3, the client apicache drives) (needs the URL)
//   lcache           Fastify 5 + fastify-lcache, the slow route cached
//   uncached         the bare route in an app with this plugin registered on Redis, the route not cached (needs the URL)
//   ioredis          the bare route in an app with @fastify/redis registered, no cache plugin              (needs the URL)
//   proto-map        the reference prototype: the slow route behind an onRequest hook that answers
//                    from an in-process Map (msgpackr-decoded {status, headers, body}, plus x-cache), and an
//                    onSend hook that fills it. No freshness, no ETag/304, no Cache-Control, no eviction:
//                    a floor for what any HIT costs, not a peer
//   proto-redis      the same prototype on Redis: onRequest -> GET -> msgpackr -> reply.send            (needs the URL)
//   proto-miss       proto-redis loaded with unique URLs: GET finds nothing, the handler runs, SET stores (needs the URL)
// GET /stats answers {"runs": <handler runs>, "xcache": {...}, "gc": {...}, "cpu": µs} so the parent can tell
// HITs from MISSes; gc: {minor: {count, ms}, major: {count, ms}}, the pauses of young- and old-generation
// collections so far (perf_hooks GC entries); cpu: the process's CPU time so far.
// Prints one JSON line {"port": n} on stdout once listening, or {"error": "..."} when it cannot start;
// exits when stdin closes (the parent went away) or on SIGTERM/SIGINT.

const { setTimeout: sleep } = require('node:timers/promises')
const { body, text } = require('./body.js')
const { loadPlugin } = require('./common.js')

const SLOW_MS = 5
const TTL = 3600 // long enough that no entry expires during a run: every measured request is a HIT
const L1 = { maxBytes: 64 * 1024 * 1024, ttl: 60 }
// the origin's validator of the memory-http kind
const ETAG = `"${require('node:crypto').createHash('sha1').update(text).digest('base64url').slice(0, 20)}"`
const KINDS = ['bare', 'object', 'slow', 'memory', 'memory-ioredis', 'memory-http', 'memory-metrics', 'memory-status', 'redis', 'l1', 'miss', 'apicache-memory', 'apicache-redis', 'lcache', 'uncached', 'ioredis', 'proto-map', 'proto-redis', 'proto-miss']
const NEEDS_REDIS = new Set(['memory-ioredis', 'redis', 'l1', 'miss', 'apicache-redis', 'uncached', 'ioredis', 'proto-redis', 'proto-miss'])
const WHO = 'test/bench/server.js'

class Usage extends Error {}

const stats = { runs: 0, xcache: {}, gc: { minor: { count: 0, ms: 0 }, major: { count: 0, ms: 0 } } }

// Young-generation (scavenge) and full collections, counted as they end: the parent reports pause per request.
function observeGc () {
  const { PerformanceObserver, constants } = require('node:perf_hooks')
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = e.detail?.kind ?? e.kind
      const into = kind === constants.NODE_PERFORMANCE_GC_MINOR ? stats.gc.minor : kind === constants.NODE_PERFORMANCE_GC_MAJOR ? stats.gc.major : undefined
      if (into === undefined) continue
      into.count++
      into.ms += e.duration
    }
  }).observe({ entryTypes: ['gc'] })
}

async function slowWork () {
  stats.runs++
  await sleep(SLOW_MS)
}

async function fastifyServer (kind, redisUrl) {
  const Fastify = require('fastify')
  // warnings (e.g. from the plugin) go to stderr: stdout carries the port line
  const app = Fastify({ logger: { level: 'warn', stream: process.stderr } })

  if (kind === 'memory-ioredis') {
    // an ioredis client the app uses for something else (not decorated as fastify.redis, which the
    // plugin would cache on), connected before the plugin registers
    const { Redis } = require('ioredis')
    const other = new Redis(redisUrl)
    other.on('error', (err) => process.stderr.write(`${WHO}: redis client: ${err.message}\n`))
    app.addHook('onClose', async () => { other.disconnect() })
    await other.ping()
  }
  if (kind.startsWith('memory') || kind === 'redis' || kind === 'l1' || kind === 'miss' || kind === 'uncached') {
    const httpCache = loadPlugin(WHO)
    // miss: a prefix of its own, so its entries share nothing with the redis server's on the same Redis
    const options = kind.startsWith('memory') ? {} : kind === 'miss' ? { redis: redisUrl, prefix: 'bench-miss' } : { redis: redisUrl }
    // BENCH_PREFIX: a prefix of its own (builds of the plugin side by side on one Redis)
    if (options.redis !== undefined && process.env.BENCH_PREFIX !== undefined) options.prefix = process.env.BENCH_PREFIX
    if (kind === 'l1') options.l1 = L1
    if (kind === 'memory-http') options.policy = 'http'
    if (kind === 'memory-metrics') options.metrics = { registry: new (require('prom-client').Registry)() }
    if (kind === 'memory-status') options.cacheStatus = true
    await app.register(httpCache, options)
  } else if (kind === 'ioredis') {
    // what any app using Redis loads: the baseline of the uncached kind
    await app.register(require('@fastify/redis'), { url: redisUrl })
  } else if (kind === 'lcache') {
    // fastify-lcache 2.x (declares fastify >= 4.10); its hooks are global, so /stats is excluded
    const lcache = require('fastify-lcache')
    await app.register(lcache.default ?? lcache, { ttlInMinutes: TTL / 60, excludeRoutes: ['/stats'] })
  }

  if (kind === 'miss' || kind === 'proto-miss') {
    // which answer each response was: the parent checks that every measured request was a MISS
    app.addHook('onResponse', async (request, reply) => {
      const v = String(reply.getHeader('x-cache') ?? 'none')
      stats.xcache[v] = (stats.xcache[v] ?? 0) + 1
    })
  }

  // cpu: this process's CPU time so far in µs (process.cpuUsage: finer than /proc's 10 ms ticks)
  app.get('/stats', async () => {
    const { user, system } = process.cpuUsage()
    return { ...stats, cpu: user + system }
  })

  if (kind === 'bare' || kind === 'uncached' || kind === 'ioredis') {
    app.get('/', async (request, reply) => {
      stats.runs++
      reply.type('application/json; charset=utf-8')
      return text
    })
  } else if (kind === 'object') {
    app.get('/', async () => {
      stats.runs++
      return body
    })
  } else if (kind.startsWith('proto-')) {
    app.get('/', prototypeHooks(app, kind, redisUrl), async () => {
      await slowWork()
      return body
    })
  } else {
    // under policy 'http' the response's Cache-Control says how long, the same TTL as the others'
    const config = kind === 'slow' || kind === 'lcache' ? {} : { cache: kind === 'memory-http' ? {} : { ttl: kind === 'miss' ? 600 : TTL } }
    app.get('/', { config }, async (request, reply) => {
      await slowWork()
      // and its ETag: the HIT then sends the headers the 'ttl' policy's does
      if (kind === 'memory-http') reply.header('cache-control', `max-age=${TTL}`).header('etag', ETAG)
      return body
    })
  }

  await app.listen({ host: '127.0.0.1', port: 0 })
  return { port: app.server.address().port, close: () => app.close() }
}

// The minimal prototypes (proto-map, proto-redis, proto-miss): the route options adding their hooks.
function prototypeHooks (app, kind, redisUrl) {
  const { pack, unpack } = require('msgpackr')
  let get, set
  if (kind === 'proto-map') {
    const map = new Map()
    get = (key) => map.get(key)
    set = (key, value) => { map.set(key, value) }
  } else {
    const { Redis } = require('ioredis')
    const client = new Redis(redisUrl)
    client.on('error', (err) => process.stderr.write(`${WHO}: redis client: ${err.message}\n`))
    app.addHook('onClose', async () => { client.disconnect() })
    get = (key) => client.getBuffer(key)
    set = (key, value) => { client.set(key, value, 'PX', (kind === 'proto-miss' ? 600 : TTL) * 1000).catch(() => {}) }
  }
  const hits = new WeakSet()
  const answer = (request, reply, done, found) => {
    if (found == null) return done()
    const entry = unpack(found)
    hits.add(request)
    for (const name in entry.headers) reply.header(name, entry.headers[name])
    reply.header('x-cache', 'HIT')
    reply.code(entry.status).send(entry.body)
  }
  return {
    // keys of their own: apicache keeps its entries on the same Redis under the bare URL
    onRequest (request, reply, done) {
      const found = get('proto:' + request.url)
      if (found instanceof Promise) found.then((f) => answer(request, reply, done, f), done)
      else answer(request, reply, done, found)
    },
    onSend (request, reply, payload, done) {
      if (!hits.has(request)) {
        reply.header('x-cache', 'MISS')
        const headers = { 'content-type': reply.getHeader('content-type') }
        set('proto:' + request.url, pack({ status: reply.statusCode, headers, body: Buffer.from(payload) }))
      }
      done(null, payload)
    }
  }
}

async function expressServer (kind, redisUrl) {
  const express = require('express')
  const apicache = require('apicache')
  let redisClient
  if (kind === 'apicache-redis') {
    // apicache 1.x drives the callback API of node-redis 3 (hgetall(key, cb), client.connected)
    const redis = require('redis')
    redisClient = redis.createClient({ url: redisUrl })
    await new Promise((resolve, reject) => {
      redisClient.once('ready', resolve)
      redisClient.once('error', reject)
    })
    redisClient.on('error', (err) => process.stderr.write(`${WHO}: redis client: ${err.message}\n`))
  }
  const cache = apicache.newInstance(redisClient === undefined ? {} : { redisClient }).middleware

  const app = express()
  app.get('/stats', (req, res) => res.json(stats))
  app.get('/', cache(`${TTL} seconds`), (req, res, next) => {
    slowWork().then(() => {
      res.type('application/json; charset=utf-8')
      res.send(text)
    }, next)
  })

  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
  })
  return {
    port: server.address().port,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      redisClient?.quit()
    }
  }
}

async function main () {
  const [kind, redisUrl] = process.argv.slice(2)
  if (!KINDS.includes(kind)) throw new Usage(`${WHO}: unknown kind ${JSON.stringify(kind)} (expected ${KINDS.join(', ')})`)
  if (NEEDS_REDIS.has(kind) && redisUrl === undefined) throw new Usage(`${WHO}: the ${kind} kind needs a redis:// URL`)

  observeGc()
  const server = kind.startsWith('apicache-') ? await expressServer(kind, redisUrl) : await fastifyServer(kind, redisUrl)

  let closing = false
  const close = () => {
    if (closing) return
    closing = true
    const force = setTimeout(() => process.exit(0), 2000)
    force.unref()
    server.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.on('SIGTERM', close)
  process.on('SIGINT', close)
  process.stdin.on('end', close)
  process.stdin.on('error', close)
  process.stdin.resume()

  process.stdout.write(JSON.stringify({ port: server.port }) + '\n')
}

main().catch((err) => {
  // the parent reports this line as the reason the server was not measured
  process.stdout.write(JSON.stringify({ error: err.message ?? String(err) }) + '\n')
  if (!(err instanceof Usage)) process.stderr.write(`${err.stack ?? err}\n`)
  process.exit(1)
})
