import Fastify, { type RouteShorthandOptions } from 'fastify'
import { Redis } from 'ioredis'
import { expectAssignable, expectError, expectNotAssignable, expectType } from 'tsd'
import httpCache, { httpCache as named } from '..'

const app = Fastify()

// default import, named import and .default are the same plugin
expectType<typeof httpCache>(named)
expectType<typeof httpCache>(httpCache.default)
expectType<typeof httpCache>(httpCache.httpCache)

// registration
app.register(httpCache)
app.register(httpCache, {})
app.register(httpCache, { ttl: 60, prefix: 'x', redis: new Redis(), statusHeader: false, memory: { maxBytes: 1 } })
app.register(httpCache, { redis: 'redis://localhost:6379', statusHeader: 'x-hit', maxEntrySize: 1024, clientDirectives: false, timeout: 100, defaultGroup: 'g' })
app.register(named, { ttl: 0 })
expectError(app.register(httpCache, { ttl: 'x' }))
expectError(app.register(httpCache, { statusHeader: true }))
expectError(app.register(httpCache, { redis: 42 }))
expectError(app.register(httpCache, { memory: { maxBytes: '1mb' } }))
expectError(app.register(httpCache, { tll: 60 }))

// option types through the namespace
expectAssignable<httpCache.HttpCacheOptions>({ ttl: 60, prefix: 'x', redis: new Redis(), statusHeader: false, memory: { maxBytes: 1 } })
expectAssignable<httpCache.HttpCacheOptions>({})
expectNotAssignable<httpCache.HttpCacheOptions>({ ttl: 'x' })
expectNotAssignable<httpCache.HttpCacheOptions>({ statusHeader: true })
expectAssignable<httpCache.RouteCacheOptions>({ ttl: 5, group: 'g', private: true, clientDirectives: false })
expectAssignable<httpCache.RouteCacheOptions>({})
expectNotAssignable<httpCache.RouteCacheOptions>({ ttl: 'x' })
expectNotAssignable<httpCache.RouteCacheOptions>({ private: 'yes' })
expectAssignable<httpCache.CacheValueOptions>({ ttl: 5, group: 'g' })
expectAssignable<httpCache.HttpCacheApi>(app.cache)

// route opt-in
app.get('/a', { config: { cache: true } }, async () => 'a')
app.get('/b', { config: { cache: false } }, async () => 'b')
app.get('/c', { config: { cache: { ttl: 5, group: 'g', private: true } } }, async () => 'c')
app.route({ method: 'GET', url: '/d', config: { cache: { ttl: 0 } }, handler: async () => 'd' })
app.get('/e', async () => 'e')
// standards mode: any methods, the response's headers decide
app.all('/*', { config: { cache: { policy: 'http', group: 'gw', heuristic: 0.1, targeted: ['CDN-Cache-Control'] } } }, async () => 'f')
expectAssignable<httpCache.HttpCacheOptions>({ policy: 'http', heuristic: false, targeted: [] })
expectNotAssignable<httpCache.HttpCacheOptions>({ policy: 'rfc' })
expectNotAssignable<httpCache.HttpCacheOptions>({ heuristic: true })
expectError(app.get('/x', { config: { cache: { policy: 'strict' } } }, async () => 'x'))
expectError(app.get('/x', { config: { cache: { ttl: 'x' } } }, async () => 'x'))
expectError(app.get('/x', { config: { cache: { group: 5 } } }, async () => 'x'))
expectError(app.get('/x', { config: { cache: { private: 'yes' } } }, async () => 'x'))
// Fastify infers its ContextConfig type parameter from an inline `config`, so an inline
// `cache: 'yes'` or unknown key `{ tll: 5 }` intersects instead of failing (the plugin rejects both
// at registration). Route options typed as Fastify's own types catch them at compile time:
expectError<RouteShorthandOptions>({ config: { cache: 'yes' } })
expectError<RouteShorthandOptions>({ config: { cache: { tll: 5 } } })
expectAssignable<RouteShorthandOptions>({ config: { cache: { ttl: 5, group: 'g', private: true } } })
expectAssignable<RouteShorthandOptions>({ config: { cache: true } })

// fastify.cache
expectType<Promise<number>>(app.cache.evictGroup('g'))
expectType<Promise<boolean>>(app.cache.evict('/a'))
expectType<Promise<boolean>>(app.cache.evict('/a', { group: 'g' }))
expectType<Promise<{ a: number } | undefined>>(app.cache.get<{ a: number }>('k'))
expectType<Promise<unknown>>(app.cache.get('k', { group: 'g' }))
expectType<Promise<void>>(app.cache.set('k', { a: 1 }, { ttl: 5, group: 'g' }))
expectType<Promise<boolean>>(app.cache.has('k'))
expectType<Promise<boolean>>(app.cache.delete('k', { group: 'g' }))
expectType<Promise<number>>(app.cache.clear())
expectType<'memory' | 'redis'>(app.cache.storeName)
expectError(app.cache.evictGroup(5))
expectError(app.cache.set('k', 1, { ttl: 'x' }))
expectError(app.cache.evict('/a', { grp: 'g' }))

// invalidation: write routes, tags, key builders, dynamic ttl, namespaces
app.post('/w1', { config: { cache: { evict: 'products' } } }, async () => 'w')
app.put('/w2/:id', { config: { cache: { evict: { self: true, groups: ['lists'] }, put: true, ttl: 30 } } }, async () => 'w')
app.delete('/w3', { config: { cache: { tags: (req) => [`product:${req.url}`], namespace: 'v2', autoInvalidate: false } } }, async () => 'w')
expectError<RouteShorthandOptions>({ config: { cache: { evict: 5 } } })
app.get('/f', {
  config: {
    cache: {
      ttl: async (req) => req.url.length,
      tags: (req) => [req.routeOptions.url ?? 'none'],
      vary: ['accept-language'],
      varyBy: (req) => req.ip,
      key: async (req) => req.url,
      namespace: 'v1',
      autoInvalidate: false
    }
  }
}, async () => 'f')
app.get('/g', { config: { cache: { expires: 'endOfDay' } } }, async () => 'g')
expectError(app.get('/g2', { config: { cache: { expires: 'tomorrow' } } }, async () => 'g'))
expectAssignable<httpCache.HttpCacheOptions>({ namespace: 'app', routeNamespaces: 'replace', autoInvalidate: true, timezone: 'Europe/Paris' })
expectNotAssignable<httpCache.HttpCacheOptions>({ routeNamespaces: 'merge' })
expectAssignable<httpCache.HttpCacheOptions>({ onEvictError: 'fail' })
expectAssignable<httpCache.HttpCacheOptions>({ onEvictError: 'ignore' })
expectNotAssignable<httpCache.HttpCacheOptions>({ onEvictError: 'retry' })
expectType<Promise<number>>(app.cache.evictTag('product:1'))
expectType<Promise<number>>(app.cache.evictGroup('g', { namespace: 'v1' }))
expectType<Promise<boolean>>(app.cache.evict('/f', { headers: { 'accept-language': 'fr' }, varyBy: 'u1', key: 'k', namespace: 'v1' }))
expectType<Promise<number>>(app.cache.clear({ namespace: 'v1' }))
const loadUser = app.cache.wrap(async (id: number) => ({ id }), { key: (id) => `user:${id}`, ttl: 60, tags: (id) => [`user:${id}`] })
expectType<(id: number) => Promise<{ id: number }>>(loadUser)
expectError(app.cache.wrap(async (id: number) => id, { key: (id: string) => id }))

// hardening and performance options
expectAssignable<httpCache.HttpCacheOptions>({
  l1: { maxBytes: 1024, ttl: 5 }, lock: { wait: 100, lease: 1000 }, keyOrigin: false, maxOrigins: 10, staleWhileRevalidate: 5, staleIfError: 60
})
expectAssignable<httpCache.HttpCacheOptions>({ lock: true })
expectNotAssignable<httpCache.HttpCacheOptions>({ l1: { size: 5 } })
expectNotAssignable<httpCache.HttpCacheOptions>({ lock: 'yes' })
app.get('/stale', { config: { cache: { ttl: 10, staleWhileRevalidate: 30, staleIfError: 600, lock: { wait: 500 } } } }, async () => 's')
expectError(app.get('/x', { config: { cache: { staleWhileRevalidate: 'long' } } }, async () => 'x'))
expectError(app.get('/x', { config: { cache: { lock: { wait: 'long' } } } }, async () => 'x'))
expectAssignable<httpCache.LockOptions>({ wait: 1, lease: 2 })

// Cache-Status and metrics
app.register(httpCache, { cacheStatus: true })
app.register(httpCache, { cacheStatus: 'edge' })
expectError(app.register(httpCache, { cacheStatus: 1 }))
app.register(httpCache, { metrics: true })
app.register(httpCache, { metrics: { prefix: 'shop_' } })
app.register(httpCache, { metrics: { registry: { getSingleMetric: () => undefined, registerMetric: () => {} }, prefix: 'x_' } })
expectError(app.register(httpCache, { metrics: 'yes' }))
expectError(app.register(httpCache, { metrics: { prefix: 1 } }))
expectError(app.register(httpCache, { metrics: { registy: {} } }))
const stats = app.cache.stats()
expectType<httpCache.CacheStats>(stats)
expectType<number>(stats.hits)
expectType<number>(stats.bypasses)
expectType<httpCache.RouteStats | undefined>(stats.routes['GET /a'] as httpCache.RouteStats | undefined)
expectType<'closed' | 'open' | 'half-open'>(stats.breaker)
expectType<number | undefined>(stats.bytes)
expectError(stats.hits = 'x')
// admin API: an auth hook (callback or async, one or several), or insecure
app.register(httpCache, { admin: { prefix: '/_cache', preHandler: (_request, _reply, done) => done() } })
app.register(httpCache, { admin: { preHandler: async (request, reply) => { if (request.headers.authorization === undefined) await reply.code(401).send() } } })
app.register(httpCache, { admin: { preHandler: [(_request, _reply, done) => done(), async () => {}] } })
app.register(httpCache, { admin: { insecure: true } })
expectAssignable<httpCache.AdminOptions>({ prefix: '/ops', insecure: false })
expectError(app.register(httpCache, { admin: { preHandler: 'auth' } }))
expectError(app.register(httpCache, { admin: { prefix: 5 } }))
expectError(app.register(httpCache, { admin: { insecure: 'yes' } }))
expectError(app.register(httpCache, { admin: true }))
