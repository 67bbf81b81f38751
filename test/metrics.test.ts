import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import pino from 'pino'
import { Counter, Registry, register as defaultRegistry } from 'prom-client'
import httpCache from '../index.js'
import { loadPromClient } from '../lib/metrics.js'
import { keyHash } from '../lib/outcome.js'
import { backends, build, registerError } from './helpers/app.js'
import { clock } from './helpers/clock.js'

// stats(), the Prometheus metrics (prom-client) and the debug lines: what a request did, counted once.

/** The value of one series of a registry's metric, 0 when absent. */
async function value (registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) return 0
  const { values } = await metric.get()
  const found = values.find((v) => (v as { metricName?: string }).metricName === undefined || (v as { metricName?: string }).metricName === name
    ? Object.entries(labels).every(([k, l]) => v.labels[k] === l)
    : false)
  return found?.value ?? 0
}

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('stats(): totals and per route counters by outcome, evictions, the store', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      app.get('/products/:id', { config: { cache: { ttl: 10, staleWhileRevalidate: 60 } } }, async () => ({ ok: true }))
      app.get('/other', { config: { cache: true } }, async () => 'o')
      app.get('/plain', async () => 'not cached')
      await app.inject('/products/1') // miss
      await app.inject('/products/1') // hit
      await app.inject('/products/2') // miss
      await app.inject({ url: '/products/1', headers: { authorization: 'Bearer x' } }) // bypass
      await app.inject('/other') // miss
      await app.inject('/plain')
      time.advance(15_000)
      t.equal((await app.inject('/products/1')).headers['x-cache'], 'STALE')
      const size = app.cache.stats()
      if (backend.name === 'memory') t.ok((size.entries ?? 0) >= 3 && (size.bytes ?? 0) > 0, 'the memory store tells its size')
      await app.close() // the background refresh is awaited: own refreshes are not counted
      const s = app.cache.stats()
      t.match(s, { hits: 1, misses: 3, stale: 1, bypasses: 1, errors: 0, store: backend.name, breaker: 'closed' })
      t.same(s.routes['GET /products/:id'], { hits: 1, misses: 2, stale: 1, bypasses: 1 })
      t.same(s.routes['GET /other'], { hits: 0, misses: 1, stale: 0, bypasses: 0 })
      t.notOk('GET /plain' in s.routes, 'routes without config.cache are not counted')
    })

    t.test('evictions are counted by kind, one per call', async (t) => {
      const app = await build(t, backend)
      app.get('/e/:id', { config: { cache: { tags: ['t1'] } } }, async () => 'e')
      await app.inject('/e/1')
      await app.cache.evictGroup('default')
      await app.cache.evictTag('t1')
      await app.cache.evict('/e/1')
      await app.cache.delete('k')
      await app.cache.clear()
      t.same(app.cache.stats().evictions, { group: 1, tag: 1, key: 1, url: 1, clear: 1 })
    })

    t.test('Prometheus: requests, lookups and evictions in the given registry, with a prefix', async (t) => {
      const registry = new Registry()
      const app = await build(t, backend, { metrics: { registry, prefix: 'shop_' } })
      app.get('/products/:id', { config: { cache: true } }, async () => 'p')
      await app.inject('/products/1')
      await app.inject('/products/1')
      await app.inject('/products/1')
      await app.inject({ url: '/products/1', headers: { range: 'bytes=0-1' } })
      await app.cache.evictGroup('default')
      const route = { method: 'GET', route: '/products/:id' }
      t.equal(await value(registry, 'shop_http_cache_requests_total', { ...route, outcome: 'hit' }), 2)
      t.equal(await value(registry, 'shop_http_cache_requests_total', { ...route, outcome: 'miss' }), 1)
      t.equal(await value(registry, 'shop_http_cache_requests_total', { ...route, outcome: 'bypass' }), 1)
      t.equal(await value(registry, 'shop_http_cache_requests_total', { ...route, outcome: 'stale' }), 0, 'every outcome has a series')
      t.equal(await value(registry, 'shop_http_cache_evictions_total', { kind: 'group' }), 1)
      t.equal(await value(registry, 'shop_http_cache_errors_total', { op: 'lookup' }), 0)
      const text = await registry.metrics()
      t.match(text, new RegExp(`shop_http_cache_lookup_duration_seconds_count\\{store="${backend.name}"\\} 3`), 'three store lookups timed')
      t.notMatch(text, /^http_cache_/m, 'every name prefixed')
    })
  })
}

t.test('several registrations share one registry: metrics reused, counts summed, a closed one leaves', async (t) => {
  const registry = new Registry()
  const make = async (): Promise<ReturnType<typeof Fastify>> => {
    const app = Fastify()
    await app.register(httpCache, { metrics: { registry } })
    app.get('/a', { config: { cache: true } }, async () => 'a')
    t.teardown(() => app.close())
    return app
  }
  const one = await make()
  const two = await make()
  await one.inject('/a')
  await two.inject('/a')
  await two.inject('/a')
  const miss = { method: 'GET', route: '/a', outcome: 'miss' }
  t.equal(await value(registry, 'http_cache_requests_total', miss), 2)
  t.equal(await value(registry, 'http_cache_requests_total', { ...miss, outcome: 'hit' }), 1)
  await two.close()
  t.equal(await value(registry, 'http_cache_requests_total', miss), 1)
})

t.test('metrics: true uses prom-client\'s default registry', async (t) => {
  const app = Fastify()
  await app.register(httpCache, { metrics: true })
  t.teardown(() => app.close())
  app.get('/d', { config: { cache: true } }, async () => 'd')
  await app.inject('/d')
  t.ok(defaultRegistry.getSingleMetric('http_cache_requests_total') !== undefined)
  t.match(await defaultRegistry.metrics(), /http_cache_requests_total\{method="GET",route="\/d",outcome="miss"\} 1/)
})

t.test('bad metrics options and a clashing metric fail at register', async (t) => {
  t.match(await registerError(t, { metrics: 'yes' }), /option "metrics" must be a boolean or \{ registry, prefix \}/)
  t.match(await registerError(t, { metrics: { registry: {} } }), /option "metrics.registry" must be a prom-client Registry/)
  t.match(await registerError(t, { metrics: { prefix: 'no-dashes' } }), /option "metrics.prefix" must be the start of a Prometheus metric name/)
  t.match(await registerError(t, { metrics: { registy: null } }), /unknown option in metrics: "registy"/)
  const registry = new Registry()
  // eslint-disable-next-line no-new
  new Counter({ name: 'http_cache_requests_total', help: 'someone else\'s', registers: [registry] })
  t.match(await registerError(t, { metrics: { registry } }), /already has a metric "http_cache_requests_total" that is not this plugin's; give metrics.prefix/)
  t.equal(await registerError(t, { metrics: false }), undefined, 'false is off')
})

t.test('prom-client missing: a clear error', async (t) => {
  await t.rejects(loadPromClient('prom-client-that-is-not-installed'), /option "metrics" needs prom-client, an optional peer dependency: npm install prom-client/)
})

t.test('a store that fails: errors counted by operation, in stats() and in Prometheus', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  await app.register(httpCache, { redis: 'redis://127.0.0.1:1', metrics: { registry } })
  t.teardown(() => app.close())
  app.get('/x', { config: { cache: { tags: ['a'] } } }, async () => 'x')
  t.equal((await app.inject('/x')).statusCode, 200)
  await t.rejects(app.cache.evictTag('a'))
  const s = app.cache.stats()
  t.equal(s.errorsByOp.lookup, 1)
  t.equal(s.errorsByOp.evictTag, 1)
  t.equal(s.errors, 2)
  t.equal(s.misses, 1)
  t.equal(await value(registry, 'http_cache_errors_total', { op: 'lookup' }), 1)
  t.equal(await value(registry, 'http_cache_errors_total', { op: 'evictTag' }), 1)
})

t.test('debug lines: one per outcome with the route and a hash of the key, never the key', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb() } })
  const app = Fastify({ loggerInstance: pino({ level: 'debug' }, stream) })
  await app.register(httpCache)
  t.teardown(() => app.close())
  app.get('/users/:id', { config: { cache: true } }, async () => 'u')
  await app.inject('/users/secret-42')
  await app.inject('/users/secret-42')
  const ours = lines.filter((l) => typeof l.outcome === 'string')
  t.same(ours.map((l) => l.outcome), ['miss', 'hit'])
  t.equal(ours[0].route, '/users/:id')
  t.equal(ours[0].key, ours[1].key, 'one key, one hash')
  t.match(ours[0].key, /^[\w-]{16}$/)
  t.notMatch(JSON.stringify(ours), /secret-42/, 'the URL is not logged')
  t.equal(keyHash('a'), keyHash('a'))
  t.not(keyHash('a'), keyHash('b'))
})

t.test('examples/grafana-dashboard.json: every query names a metric the plugin emits', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  await app.register(httpCache, { metrics: { registry } })
  t.teardown(() => app.close())
  const emitted = new Set<string>()
  for (const m of await registry.getMetricsAsJSON()) {
    emitted.add(m.name)
    if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) emitted.add(m.name + suffix)
  }
  const dashboard = JSON.parse(readFileSync(join(__dirname, '..', 'examples', 'grafana-dashboard.json'), 'utf8'))
  const exprs: string[] = []
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk)
    else if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'expr' && typeof v === 'string') exprs.push(v)
        else walk(v)
      }
    }
  }
  walk(dashboard)
  t.ok(exprs.length >= 4, 'the dashboard has queries')
  const used = new Set<string>()
  for (const expr of exprs) {
    const names = expr.match(/\bhttp_cache_[a-z_]+/g) ?? []
    t.ok(names.length > 0, `"${expr}" names a metric`)
    for (const name of names) {
      used.add(name.replace(/_(bucket|sum|count)$/, ''))
      t.ok(emitted.has(name), `${name} is emitted`)
    }
  }
  for (const name of ['http_cache_requests_total', 'http_cache_lookup_duration_seconds', 'http_cache_evictions_total', 'http_cache_errors_total']) {
    t.ok(used.has(name), `the dashboard shows ${name}`)
  }
})
