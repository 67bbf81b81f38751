import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { backends, build, cleared, type TapLike } from './helpers/app.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// Namespaces: per registration (plugin option) and per route (joined `plugin:route`, or replacing it).

/**
 * Waits until the entry key exists and its group is registered, so clear() can find it (writes are
 * fire-and-forget after the response, and register their group after the script).
 */
async function stored (redis: Redis, prefix: string, base: string, key: string): Promise<void> {
  await until(`${key} to be stored and ${base} registered`, async () =>
    (await redis.exists(key)) === 1 && (await redis.sismember(`${prefix}:groups`, base)) === 1, 2000, 5)
}

// Single-app behaviour: both stores.
for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('route namespaces: /v1/x and /v2/x in one app are separate, and evicted separately', async (t) => {
      const app = await build(t, backend)
      const calls = { v1: 0, v2: 0 }
      app.get('/v1/x', { config: { cache: { namespace: 'v1' } } }, async () => ({ v: 1, run: ++calls.v1 }))
      app.get('/v2/x', { config: { cache: { namespace: 'v2' } } }, async () => ({ v: 2, run: ++calls.v2 }))
      for (const url of ['/v1/x', '/v2/x']) t.equal((await app.inject(url)).headers['x-cache'], 'MISS', url)
      t.same((await app.inject('/v1/x')).json(), { v: 1, run: 1 })
      t.same((await app.inject('/v2/x')).json(), { v: 2, run: 1 })

      t.equal(await app.cache.evictGroup('default', { namespace: 'v1' }), 1)
      t.equal((await app.inject('/v1/x')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/v2/x')).headers['x-cache'], 'HIT', 'the same group in another namespace stays')
      t.equal(await app.cache.evictGroup('default'), 0, 'the default group outside any namespace holds neither')
      t.equal((await app.inject('/v2/x')).headers['x-cache'], 'HIT')

      t.equal(await app.cache.evict('/v2/x'), true, 'evict(url) finds the route\'s namespace')
      t.equal((await app.inject('/v2/x')).headers['x-cache'], 'MISS')
      t.same(calls, { v1: 2, v2: 2 })
    })

    t.test('clear({ namespace }) clears it and the namespaces below it, not v10 nor the rest', async (t) => {
      const app = await build(t, backend)
      const ns: Record<string, string | undefined> = { '/a': 'v1', '/b': 'v1:beta', '/c': 'v10', '/d': 'v2', '/e': undefined }
      for (const [url, namespace] of Object.entries(ns)) {
        app.get(url, { config: { cache: namespace === undefined ? true : { namespace } } }, async () => ({ url }))
      }
      for (const url of Object.keys(ns)) await app.inject(url)
      for (const url of Object.keys(ns)) t.equal((await app.inject(url)).headers['x-cache'], 'HIT', `${url} stored`)

      t.equal(await app.cache.clear({ namespace: 'v1' }), cleared(backend, 2))
      t.equal((await app.inject('/a')).headers['x-cache'], 'MISS', 'v1 cleared')
      t.equal((await app.inject('/b')).headers['x-cache'], 'MISS', 'v1:beta is below v1')
      t.equal((await app.inject('/c')).headers['x-cache'], 'HIT', 'v10 is not below v1')
      t.equal((await app.inject('/d')).headers['x-cache'], 'HIT')
      t.equal((await app.inject('/e')).headers['x-cache'], 'HIT')

      t.equal(await app.cache.clear({ namespace: 'v1:beta' }), cleared(backend, 1), 'a sub-namespace clears alone')
      t.equal((await app.inject('/a')).headers['x-cache'], 'HIT', 'its parent stays')
      t.equal((await app.inject('/b')).headers['x-cache'], 'MISS')

      await t.rejects(app.cache.clear({ namespace: 'v1 beta' }), TypeError, 'a bad namespace is refused')
    })

    t.test('write routes with a namespace evict the group in that namespace only', async (t) => {
      const app = await build(t, backend)
      let version = 1
      app.get('/v1/items', { config: { cache: { namespace: 'v1', group: 'items' } } }, async () => ({ v1: version }))
      app.get('/v2/items', { config: { cache: { namespace: 'v2', group: 'items' } } }, async () => ({ v2: version }))
      app.get('/items', { config: { cache: { group: 'items' } } }, async () => ({ root: version }))
      app.post('/v1/items', { config: { cache: { namespace: 'v1', evict: 'items' } } }, async () => { version++; return { ok: true } })
      app.post('/items', { config: { cache: { evict: 'items' } } }, async () => { version++; return { ok: true } })
      for (const url of ['/v1/items', '/v2/items', '/items']) await app.inject(url)

      t.equal((await app.inject({ method: 'POST', url: '/v1/items' })).statusCode, 200)
      const v1 = await app.inject('/v1/items')
      t.equal(v1.headers['x-cache'], 'MISS')
      t.same(v1.json(), { v1: 2 })
      t.same((await app.inject('/v2/items')).json(), { v2: 1 }, 'v2\'s items untouched')
      t.same((await app.inject('/items')).json(), { root: 1 }, 'the un-namespaced items untouched')

      await app.inject({ method: 'POST', url: '/items' })
      t.same((await app.inject('/items')).json(), { root: 3 })
      t.equal((await app.inject('/v1/items')).headers['x-cache'], 'HIT', 'a write without namespace evicts outside them')
      t.equal((await app.inject('/v2/items')).headers['x-cache'], 'HIT')
    })

    t.test('plugin namespace joined with route namespaces: clear() takes the registration\'s whole subtree', async (t) => {
      const app = await build(t, backend, { namespace: 'app' })
      app.get('/root', { config: { cache: true } }, async () => 'root')
      app.get('/v1', { config: { cache: { namespace: 'v1' } } }, async () => 'v1')
      app.post('/v1', { config: { cache: { namespace: 'v1', evict: 'default' } } }, async () => 'ok')
      for (const url of ['/root', '/v1']) await app.inject(url)

      await app.inject({ method: 'POST', url: '/v1' })
      t.equal((await app.inject('/v1')).headers['x-cache'], 'MISS', 'the write route\'s namespace is joined like the GET\'s')
      t.equal((await app.inject('/root')).headers['x-cache'], 'HIT')

      t.equal((await app.inject('/v1')).headers['x-cache'], 'HIT')
      t.equal(await app.cache.clear(), cleared(backend, 2), 'clear() takes the plugin namespace and the route namespaces below it')
      t.equal((await app.inject('/root')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/v1')).headers['x-cache'], 'MISS')
    })

    t.test('the API addresses a route namespace by the name the route config uses (join mode)', async (t) => {
      const app = await build(t, backend, { namespace: 'app' })
      app.get('/v1/products', { config: { cache: { namespace: 'v1', group: 'products' } } }, async () => 'v1')
      app.post('/v1/products', { config: { cache: { namespace: 'v1', evict: 'products' } } }, async () => 'ok')
      await app.inject('/v1/products')
      t.equal((await app.inject({ method: 'POST', url: '/v1/products' })).statusCode, 200)
      t.equal((await app.inject('/v1/products')).headers['x-cache'], 'MISS', 'the write route names it v1')
      t.equal((await app.inject('/v1/products')).headers['x-cache'], 'HIT')
      // a write route with { namespace: 'v1', evict: 'products' } evicts app:v1's products; the same
      // words given to evictGroup must name the same group
      t.equal(await app.cache.evictGroup('products', { namespace: 'v1' }), 1, 'evictGroup(group, { namespace: \'v1\' }) drops the route\'s entry')
      t.equal((await app.inject('/v1/products')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/v1/products')).headers['x-cache'], 'HIT')
      t.equal(await app.cache.evict('/v1/products'), true, 'evict(url) already does (it takes the route\'s settings)')
      await app.inject('/v1/products')
      t.equal(await app.cache.clear({ namespace: 'v1' }), cleared(backend, 1), 'clear({ namespace: \'v1\' }) clears the route namespace v1 of this registration')
      t.equal((await app.inject('/v1/products')).headers['x-cache'], 'MISS')
    })
  })
}

// Two registrations on the same Redis (same prefix), different namespaces.
t.test('redis: two apps sharing one Redis', async (t) => {
  const server: TestRedis = await startRedis(t)
  const inspect = server.client()
  let prefixes = 0

  async function make (t: TapLike, options: HttpCacheOptions): Promise<FastifyInstance> {
    const app = Fastify()
    await app.register(httpCache, { redis: server.client(), timeout: 2000, ...options })
    t.teardown(() => app.close())
    return app
  }

  async function pair (t: TapLike, options: HttpCacheOptions = {}): Promise<{ one: FastifyInstance, two: FastifyInstance, prefix: string }> {
    const prefix = options.prefix ?? `pair${++prefixes}`
    const one = await make(t, { ...options, prefix, namespace: 'app1' })
    const two = await make(t, { ...options, prefix, namespace: 'app2' })
    return { one, two, prefix }
  }

  t.test('the same URL in two namespaces: two entries, never shared; actual key names', async (t) => {
    const { one, two, prefix } = await pair(t, { prefix: 'http-cache' })
    t.equal(prefix, 'http-cache')
    const calls = { one: 0, two: 0 }
    one.get('/x', { config: { cache: true } }, async () => ({ app: 'one', run: ++calls.one }))
    two.get('/x', { config: { cache: true } }, async () => ({ app: 'two', run: ++calls.two }))

    t.equal((await one.inject('/x')).headers['x-cache'], 'MISS')
    await stored(inspect, prefix, 'http-cache:app1:{default}:', 'http-cache:app1:{default}:e:GET:http://localhost/x')
    const first = await two.inject('/x')
    t.equal(first.headers['x-cache'], 'MISS', 'app2 does not see app1\'s entry')
    t.same(first.json(), { app: 'two', run: 1 })
    await stored(inspect, prefix, 'http-cache:app2:{default}:', 'http-cache:app2:{default}:e:GET:http://localhost/x')

    t.same((await one.inject('/x')).json(), { app: 'one', run: 1 })
    t.same((await two.inject('/x')).json(), { app: 'two', run: 1 })
    t.same(calls, { one: 1, two: 1 })

    t.same((await inspect.keys('http-cache:*:e:*')).sort(), [
      'http-cache:app1:{default}:e:GET:http://localhost/x',
      'http-cache:app2:{default}:e:GET:http://localhost/x'
    ], 'entry keys: <prefix>:<namespace>:{<group>}:e:GET:<origin><url>')
    t.same((await inspect.smembers('http-cache:groups')).sort(), ['http-cache:app1:{default}:', 'http-cache:app2:{default}:'])
  })

  t.test('route namespaces in Redis key names: joined by default, replaced with routeNamespaces: "replace"', async (t) => {
    const prefix = `routes${++prefixes}`
    const joined = await make(t, { prefix, namespace: 'app1' })
    const replaced = await make(t, { prefix, namespace: 'app2', routeNamespaces: 'replace' })
    joined.get('/v1/x', { config: { cache: { namespace: 'v1' } } }, async () => 'joined v1')
    joined.get('/plain', { config: { cache: { group: 'g' } } }, async () => 'joined plain')
    replaced.get('/v1/x', { config: { cache: { namespace: 'v1' } } }, async () => 'replaced v1')
    replaced.get('/plain', { config: { cache: { group: 'g' } } }, async () => 'replaced plain')

    await joined.inject('/v1/x')
    await stored(inspect, prefix, `${prefix}:app1:v1:{default}:`, `${prefix}:app1:v1:{default}:e:GET:http://localhost/v1/x`)
    await joined.inject('/plain')
    await stored(inspect, prefix, `${prefix}:app1:{g}:`, `${prefix}:app1:{g}:e:GET:http://localhost/plain`)
    await replaced.inject('/v1/x')
    await stored(inspect, prefix, `${prefix}:v1:{default}:`, `${prefix}:v1:{default}:e:GET:http://localhost/v1/x`)
    await replaced.inject('/plain')
    await stored(inspect, prefix, `${prefix}:app2:{g}:`, `${prefix}:app2:{g}:e:GET:http://localhost/plain`)
    t.same((await inspect.keys(`${prefix}:*:e:*`)).sort(), [
      `${prefix}:app1:v1:{default}:e:GET:http://localhost/v1/x`,
      `${prefix}:app1:{g}:e:GET:http://localhost/plain`,
      `${prefix}:app2:{g}:e:GET:http://localhost/plain`,
      `${prefix}:v1:{default}:e:GET:http://localhost/v1/x`
    ], 'joined: <plugin>:<route>; replaced: <route> alone; no route namespace: the plugin\'s')

    const hit = await replaced.inject('/v1/x')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.body, 'replaced v1', 'the joined and the replaced v1 are different namespaces')
    t.equal((await joined.inject('/v1/x')).body, 'joined v1')
  })

  t.test('clear() on one app leaves the other\'s entries', async (t) => {
    const { one, two, prefix } = await pair(t)
    for (const app of [one, two]) {
      app.get('/x', { config: { cache: { group: 'pages' } } }, async () => 'x')
      app.get('/v1/y', { config: { cache: { namespace: 'v1' } } }, async () => 'y')
    }
    for (const [app, ns] of [[one, 'app1'], [two, 'app2']] as const) {
      await app.inject('/x')
      await stored(inspect, prefix, `${prefix}:${ns}:{pages}:`, `${prefix}:${ns}:{pages}:e:GET:http://localhost/x`)
      await app.inject('/v1/y')
      await stored(inspect, prefix, `${prefix}:${ns}:v1:{default}:`, `${prefix}:${ns}:v1:{default}:e:GET:http://localhost/v1/y`)
    }

    await one.cache.clear() // app1 and app1:v1
    t.equal((await one.inject('/x')).headers['x-cache'], 'MISS')
    t.equal((await one.inject('/v1/y')).headers['x-cache'], 'MISS')
    t.equal((await two.inject('/x')).headers['x-cache'], 'HIT', 'app2 keeps its entries')
    t.equal((await two.inject('/v1/y')).headers['x-cache'], 'HIT')
    t.same((await inspect.keys(`${prefix}:app2:*:e:*`)).sort(), [`${prefix}:app2:v1:{default}:e:GET:http://localhost/v1/y`, `${prefix}:app2:{pages}:e:GET:http://localhost/x`])
  })

  t.test('app1 does not clear app10 (a namespace that merely starts with the same letters)', async (t) => {
    const prefix = `ten${++prefixes}`
    const app1 = await make(t, { prefix, namespace: 'app1' })
    const app10 = await make(t, { prefix, namespace: 'app10' })
    for (const app of [app1, app10]) app.get('/x', { config: { cache: true } }, async () => 'x')
    await app1.inject('/x')
    await stored(inspect, prefix, `${prefix}:app1:{default}:`, `${prefix}:app1:{default}:e:GET:http://localhost/x`)
    await app10.inject('/x')
    await stored(inspect, prefix, `${prefix}:app10:{default}:`, `${prefix}:app10:{default}:e:GET:http://localhost/x`)
    await app1.cache.clear()
    t.equal((await app10.inject('/x')).headers['x-cache'], 'HIT')
    t.equal((await app1.inject('/x')).headers['x-cache'], 'MISS')
  })

  t.test('evictGroup in one namespace does not touch the same group name in the other', async (t) => {
    const { one, two } = await pair(t)
    let version = 1
    for (const app of [one, two]) {
      app.get('/products', { config: { cache: { group: 'products' } } }, async () => ({ version }))
      app.post('/products', { config: { cache: { evict: 'products' } } }, async () => { version++; return { ok: true } })
    }
    await one.inject('/products')
    await two.inject('/products')
    t.equal((await two.inject('/products')).headers['x-cache'], 'HIT')

    t.equal(await one.cache.evictGroup('products'), 1)
    t.equal((await one.inject('/products')).headers['x-cache'], 'MISS')
    t.equal((await two.inject('/products')).headers['x-cache'], 'HIT', 'app2\'s products stay')

    t.equal((await two.inject({ method: 'POST', url: '/products' })).statusCode, 200)
    t.same((await two.inject('/products')).json(), { version: 2 }, 'app2\'s write evicted app2\'s group')
    const one1 = await one.inject('/products')
    t.equal(one1.headers['x-cache'], 'HIT', 'and not app1\'s')
    t.same(one1.json(), { version: 1 })
  })

  t.test('application values (set/get, wrap) are per namespace too', async (t) => {
    const { one, two } = await pair(t)
    await one.cache.set('config', { from: 'one' })
    t.equal(await two.cache.get('config'), undefined)
    await two.cache.set('config', { from: 'two' })
    t.same(await one.cache.get('config'), { from: 'one' })
    t.same(await two.cache.get('config'), { from: 'two' })

    let calls = 0
    const w1 = one.cache.wrap(async () => `one-${++calls}`, { key: () => 'k' })
    const w2 = two.cache.wrap(async () => `two-${++calls}`, { key: () => 'k' })
    t.equal(await w1(), 'one-1')
    t.equal(await w2(), 'two-2')
    t.equal(await w1(), 'one-1')
    t.equal(await w2(), 'two-2')
    await one.cache.clear()
    t.equal(await one.cache.get('config'), undefined)
    t.same(await two.cache.get('config'), { from: 'two' })
    t.equal(await w2(), 'two-2')
  })
})
