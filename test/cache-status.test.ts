import t from 'tap'
import Fastify from 'fastify'
import httpCache from '../index.js'
import { backends, build, registerError } from './helpers/app.js'
import { clock } from './helpers/clock.js'
import { startGateway, startUpstream } from './helpers/upstream.js'

// Cache-Status (RFC 9211): one member for this cache on every response of a cached route.

const NAME = 'fastify-http-cache'

t.test('cacheStatus: off by default, a boolean or a token naming the cache', async (t) => {
  const app = Fastify()
  await app.register(httpCache)
  app.get('/a', { config: { cache: true } }, async () => 'a')
  t.equal((await app.inject('/a')).headers['cache-status'], undefined)
  t.match(await registerError(t, { cacheStatus: 'two words' }), /option "cacheStatus" must be a boolean or a cache name/)
  t.match(await registerError(t, { cacheStatus: 1 }), /option "cacheStatus" must be/)
  const named = Fastify()
  await named.register(httpCache, { cacheStatus: 'edge-1' })
  named.get('/a', { config: { cache: true } }, async () => 'a')
  t.equal((await named.inject('/a')).headers['cache-status'], 'edge-1; fwd=uri-miss; fwd-status=200; stored; ttl=60')
  t.equal((await named.inject('/a')).headers['cache-status'], 'edge-1; hit; ttl=60')
})

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('policy ttl: miss stored, hit with its ttl, x-cache unchanged', async (t) => {
      const app = await build(t, backend, { cacheStatus: true })
      app.get('/p/:id', { config: { cache: { ttl: 30 } } }, async () => ({ ok: true }))
      const miss = await app.inject('/p/1')
      t.equal(miss.headers['cache-status'], `${NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=30`)
      t.equal(miss.headers['x-cache'], 'MISS')
      const hit = await app.inject('/p/1')
      t.equal(hit.headers['cache-status'], `${NAME}; hit; ttl=30`)
      t.equal(hit.headers['x-cache'], 'HIT')
      const notModified = await app.inject({ url: '/p/1', headers: { 'if-none-match': String(hit.headers.etag) } })
      t.equal(notModified.statusCode, 304)
      t.equal(notModified.headers['cache-status'], `${NAME}; hit; ttl=30`)
    })

    t.test('a ttl of 0 (never expires) gives no ttl parameter', async (t) => {
      const app = await build(t, backend, { cacheStatus: true })
      app.get('/forever', { config: { cache: { ttl: 0 } } }, async () => 'x')
      t.equal((await app.inject('/forever')).headers['cache-status'], `${NAME}; fwd=uri-miss; fwd-status=200; stored`)
      t.equal((await app.inject('/forever')).headers['cache-status'], `${NAME}; hit`)
    })

    t.test('client directives: fwd=request; Authorization, Range and no-store: fwd=bypass', async (t) => {
      const app = await build(t, backend, { cacheStatus: true })
      let runs = 0
      app.get('/d', { config: { cache: { ttl: 30 } } }, async () => { runs++; return 'd' })
      await app.inject('/d')
      const refreshed = await app.inject({ url: '/d', headers: { 'cache-control': 'no-cache' } })
      t.equal(refreshed.headers['cache-status'], `${NAME}; fwd=request; fwd-status=200; stored; ttl=30`)
      for (const headers of [{ authorization: 'Bearer x' }, { range: 'bytes=0-1' }, { 'cache-control': 'no-store' }]) {
        const res = await app.inject({ url: '/d', headers })
        t.equal(res.headers['cache-status'], `${NAME}; fwd=bypass; fwd-status=${res.statusCode}`, Object.keys(headers)[0])
      }
      t.equal(runs, 5, 'every one of them ran the handler')
    })

    t.test('expired: stale-while-revalidate is a hit with a negative ttl, an expired entry is fwd=stale', async (t) => {
      const time = clock(t)
      const app = await build(t, backend, { cacheStatus: true })
      app.get('/swr', { config: { cache: { ttl: 10, staleWhileRevalidate: 60 } } }, async () => 'swr')
      app.get('/old', { config: { cache: { ttl: 10 } } }, async () => 'old')
      await app.inject('/swr')
      await app.inject('/old')
      time.advance(15_000)
      t.equal((await app.inject('/swr')).headers['cache-status'], `${NAME}; hit; ttl=-5`)
      t.equal((await app.inject('/old')).headers['cache-status'], `${NAME}; fwd=stale; fwd-status=200; stored; ttl=10`)
    })

    t.test('stale-if-error: the expired entry answers a failing handler', async (t) => {
      const time = clock(t)
      const app = await build(t, backend, { cacheStatus: true })
      let fail = false
      app.get('/sie', { config: { cache: { ttl: 10, staleIfError: 60 } } }, async (_req, reply) => fail ? reply.code(503).send('down') : 'up')
      await app.inject('/sie')
      time.advance(15_000)
      fail = true
      const res = await app.inject('/sie')
      t.equal(res.body, 'up')
      t.equal(res.headers['cache-status'], `${NAME}; fwd=stale; fwd-status=503; detail=stale-if-error`)
    })

    t.test('a body over maxEntrySize: detail=too-large, not stored', async (t) => {
      const app = await build(t, backend, { cacheStatus: true, maxEntrySize: 10 })
      app.get('/big', { config: { cache: true } }, async () => 'x'.repeat(100))
      t.equal((await app.inject('/big')).headers['cache-status'], `${NAME}; fwd=uri-miss; fwd-status=200; detail=too-large`)
      t.equal((await app.inject('/big')).headers['x-cache'], 'MISS')
    })

    t.test('a response not storable (no-store from the handler) carries no "stored"', async (t) => {
      const app = await build(t, backend, { cacheStatus: true })
      app.get('/ns', { config: { cache: true } }, async (_req, reply) => reply.header('cache-control', 'no-store').send('x'))
      t.equal((await app.inject('/ns')).headers['cache-status'], `${NAME}; fwd=uri-miss; fwd-status=200`)
    })

    t.test('policy http behind a gateway: the origin\'s member stays in front, never stored as ours', async (t) => {
      const upstream = await startUpstream(t)
      upstream.on('/page', () => ({ headers: { 'cache-control': 'max-age=60', 'cache-status': 'origin-cdn; hit' }, body: 'page' }))
      upstream.on('/tag', ({ headers }) => headers['if-none-match'] === '"v1"'
        ? { status: 304, headers: { etag: '"v1"', 'cache-control': 'max-age=0' } }
        : { headers: { etag: '"v1"', 'cache-control': 'max-age=0' }, body: 'tag' })
      upstream.on('/form', () => ({ body: 'ok' }))
      const app = await startGateway(t, backend, upstream, { cacheStatus: true })
      // the ttl counts the time the response took to arrive (RFC 9111 §4.2.3): 60 or a little less
      const ttl = (value: unknown, pattern: RegExp): number => Number(pattern.exec(String(value))?.[1])
      const miss = await app.inject('/page')
      const stored = ttl(miss.headers['cache-status'], new RegExp(`^origin-cdn; hit, ${NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=(\\d+)$`))
      t.ok(stored > 50 && stored <= 60, `stored with ttl ${stored}`)
      const hit = await app.inject('/page')
      const left = ttl(hit.headers['cache-status'], new RegExp(`^origin-cdn; hit, ${NAME}; hit; ttl=(\\d+)$`))
      t.ok(left > 50 && left <= 60, `hit with ttl ${left}, ours once, after the origin's`)
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(upstream.count('/page'), 1)

      t.equal((await app.inject('/tag')).headers['cache-status'], `${NAME}; fwd=uri-miss; fwd-status=200; stored; ttl=-1`, 'max-age=0: stored already stale')
      const revalidated = await app.inject('/tag')
      t.equal(revalidated.headers['x-cache'], 'REVALIDATED')
      t.equal(revalidated.headers['cache-status'], `${NAME}; fwd=stale; fwd-status=304; stored; ttl=-1`)

      t.equal((await app.inject({ method: 'POST', url: '/form' })).headers['cache-status'], `${NAME}; fwd=method; fwd-status=200`)
      t.equal((await app.inject({ url: '/page', headers: { authorization: 'Basic eA==' } })).headers['cache-status'], `origin-cdn; hit, ${NAME}; fwd=bypass; fwd-status=200`)
      const onlyIfCached = await app.inject({ url: '/nothing', headers: { 'cache-control': 'only-if-cached' } })
      t.equal(onlyIfCached.statusCode, 504)
      t.equal(onlyIfCached.headers['cache-status'], `${NAME}; detail=only-if-cached`)
    })
  })
}

t.test('a store that does not answer: fwd=miss with detail=store-down', async (t) => {
  const app = Fastify()
  // nothing listens on port 1: the client never becomes ready
  await app.register(httpCache, { redis: 'redis://127.0.0.1:1', cacheStatus: true })
  t.teardown(() => app.close())
  app.get('/x', { config: { cache: true } }, async () => 'x')
  const res = await app.inject('/x')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-status'], `${NAME}; fwd=miss; fwd-status=200; detail=store-down`)
  t.ok(app.cache.stats().errorsByOp.lookup >= 1, 'counted as a failed lookup')
})
