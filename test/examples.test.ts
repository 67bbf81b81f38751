// Every example the README lists starts with its command's settings and answers as its comments say.
import t, { test } from 'tap'
import { runExample } from './helpers/example.js'
import { startRedis } from './helpers/redis.js'

// each example is a fresh Node process compiling TypeScript: slower than the other files on a busy machine
t.setTimeout(900_000)

const get = async (url: string, init?: RequestInit): Promise<{ status: number, cache: string | null, body: any }> => {
  const res = await fetch(url, init)
  const text = await res.text()
  return { status: res.status, cache: res.headers.get('x-cache'), body: text === '' ? undefined : JSON.parse(text) }
}

test('basic: MISS, HIT, evictGroup', async (t) => {
  const { urls: [base] } = await runExample(t, 'basic.ts')
  const first = await get(`${base}/report`)
  t.equal(first.cache, 'MISS')
  const second = await get(`${base}/report`)
  t.equal(second.cache, 'HIT')
  t.same(second.body, first.body)
  t.same((await get(`${base}/report/refresh`, { method: 'POST' })).body, { evicted: 1 })
  const third = await get(`${base}/report`)
  t.equal(third.cache, 'MISS')
  t.equal(third.body.runs, 2)
})

for (const store of ['memory', 'redis']) {
  test(`app (CRUD invalidation) on ${store}`, async (t) => {
    const env: Record<string, string> = store === 'redis' ? { REDIS_URL: (await startRedis(t)).url } : {}
    const { urls: [base], output } = await runExample(t, 'app.ts', env)
    t.match(output(), `fastify-http-cache store: ${store}`)
    t.equal((await get(`${base}/products/1`)).cache, 'MISS')
    t.equal((await get(`${base}/products/1`)).cache, 'HIT')
    const put = await get(`${base}/products/1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Armchair', category: 'home', price: 120 })
    })
    t.equal(put.status, 200)
    const after = await get(`${base}/products/1`)
    t.equal(after.cache, 'HIT', 'written through')
    t.equal(after.body.name, 'Armchair')
    const patch = await get(`${base}/products/1`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ price: 99 })
    })
    t.equal(patch.status, 200)
    const patched = await get(`${base}/products/1`)
    t.equal(patched.cache, 'MISS', 'evicted by the PATCH')
    t.equal(patched.body.price, 99)
  })
}

test('redis: two instances share entries and evictions, on the redis-server the example starts', async (t) => {
  const { urls: [a, b] } = await runExample(t, 'redis.ts', { REDIS_URL: '' }, 2)
  const first = await get(`${a}/stock/1`)
  t.equal(first.cache, 'MISS')
  const shared = await get(`${b}/stock/1`)
  t.equal(shared.cache, 'HIT', 'B serves what A stored')
  t.equal(shared.body.servedBy, 'A')
  await get(`${b}/stock/1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ count: 7 }) })
  const after = await get(`${a}/stock/1`)
  t.equal(after.cache, 'MISS', "B's write evicted A's L1 and Redis entry")
  t.equal(after.body.count, 7)
})

for (const policy of ['ttl', 'http']) {
  test(`gateway (${policy} policy) on memory`, async (t) => {
    // the demo origin listens first, then the gateway
    const { urls: [, gateway] } = await runExample(t, 'gateway.ts', { POLICY: policy }, 2)
    t.equal((await get(`${gateway}/articles`)).cache, 'MISS')
    t.equal((await get(`${gateway}/articles`)).cache, 'HIT')
  })
}

test('metrics: Cache-Status on responses, the counters on /metrics', async (t) => {
  const { urls: [base] } = await runExample(t, 'metrics.ts')
  const miss = await fetch(`${base}/products/1`)
  t.match(miss.headers.get('cache-status'), /^fastify-http-cache; fwd=uri-miss/)
  const hit = await fetch(`${base}/products/1`)
  t.match(hit.headers.get('cache-status'), /^fastify-http-cache; hit; ttl=\d+$/)
  const text = await (await fetch(`${base}/metrics`)).text()
  t.match(text, /http_cache_requests_total\{[^}]*outcome="hit"[^}]*\} 1/)
  t.match(text, /http_cache_lookup_duration_seconds_bucket/)
})
