import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type InjectOptions } from 'fastify'
import httpCache from '../index.js'
import { build as buildExample } from '../examples/admin.js'
import { decodeEntry, decodeValue, decodeVariants, encodeEntry, encodeValue, encodeVariants, type CacheEntry } from '../lib/entry.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { backends, cleared, registerError } from './helpers/app.js'
import { startRedis } from './helpers/redis.js'
import { stall } from './helpers/stall.js'
import { until } from './helpers/until.js'

// The opt-in admin API on both stores: what register accepts, the auth hook before everything,
// listings that page through a group's index exactly once, entry metadata, evictions, errors.

const AUTH = { authorization: 'Bearer s3cret' }
let denied = 0
async function auth (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.headers.authorization !== AUTH.authorization) {
    denied++
    await reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'token required' })
  }
}

let prefixes = 0
async function open (t: Test, options: HttpCacheOptions, admin: HttpCacheOptions['admin'] = { preHandler: auth }): Promise<{ app: FastifyInstance, calls: Map<string, number>, admin: (o: InjectOptions | string) => Promise<{ status: number, json: any, headers: Record<string, unknown> }> }> {
  const app = Fastify()
  await app.register(httpCache, { ...options, prefix: `adm${++prefixes}`, admin })
  const calls = new Map<string, number>()
  const count = (name: string): void => { calls.set(name, (calls.get(name) ?? 0) + 1) }
  app.get<{ Params: { id: string } }>('/products/:id', { config: { cache: { group: 'products', tags: (r) => ['catalog', `p:${(r.params as { id: string }).id}`] } } }, async (request) => {
    count('product')
    return { id: request.params.id }
  })
  app.get('/langs', { config: { cache: { group: 'langs', vary: ['accept-language'] } } }, async (request) => {
    count('langs')
    return { lang: request.headers['accept-language'] ?? 'none' }
  })
  app.get('/std', { config: { cache: { group: 'std', policy: 'http' } } }, async (_request, reply) => {
    count('std')
    return await reply.header('cache-control', 'max-age=60').header('vary', 'accept').send({ accept: _request.headers.accept ?? '' })
  })
  app.get('/keyed', { config: { cache: { group: 'keyed', key: (r) => `k-${String(r.headers['x-k'])}` } } }, async () => {
    count('keyed')
    return { keyed: true }
  })
  app.get('/plain', { config: { cache: true } }, async () => 'plain')
  await app.ready()
  t.teardown(() => app.close())
  return {
    app,
    calls,
    admin: async (o) => {
      const opts: InjectOptions = typeof o === 'string' ? { url: o } : o
      const res = await app.inject({ ...opts, headers: { ...AUTH, ...opts.headers } })
      return { status: res.statusCode, json: res.headers['content-type']?.toString().startsWith('application/json') === true ? res.json() : res.body, headers: res.headers }
    }
  }
}

/** GETs `url` until it is served from the cache (its write has landed). */
async function cached (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<void> {
  await until(`${url} to be cached`, async () => (await app.inject({ url, headers })).headers['x-cache'] === 'HIT')
}

/** Every entry of a group, page by page; fails on a page over `limit`. */
async function walk (t: Test, admin: (o: string) => Promise<{ status: number, json: any }>, group: string, limit: number, between?: (page: number) => Promise<void>): Promise<{ keys: string[], pages: number }> {
  const keys: string[] = []
  let cursor: string | null = ''
  let pages = 0
  while (cursor !== null) {
    const res = await admin(`/_cache/groups/${group}/entries?limit=${limit}${cursor === '' ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)
    t.equal(res.status, 200)
    t.ok(res.json.entries.length <= limit, `page ${pages} holds at most ${limit}`)
    keys.push(...res.json.entries.map((e: { key: string }) => e.key))
    cursor = res.json.cursor
    pages++
    if (pages > 1000) throw new Error('no end')
    if (between !== undefined && cursor !== null) await between(pages)
  }
  return { keys, pages }
}

t.test('register: admin needs a preHandler unless insecure', async (t) => {
  const hook = async (): Promise<void> => {}
  const fails = async (admin: unknown, pattern: RegExp): Promise<void> => {
    const err = await registerError(t, { admin })
    t.type(err, TypeError)
    t.match((err as Error).message, pattern)
  }
  await fails({}, /needs a preHandler.*insecure: true/)
  await fails({ prefix: '/ops' }, /needs a preHandler/)
  await fails({ preHandler: [] }, /needs a preHandler/)
  await fails({ preHandler: 'admin' }, /preHandler" must be a hook function or an array/)
  await fails({ preHandler: [hook, 5] }, /preHandler" must be a hook function or an array/)
  await fails({ preHandler: hook, prefix: 'ops' }, /admin.prefix" must be a path/)
  await fails({ preHandler: hook, prefix: '/ops/' }, /admin.prefix" must be a path/)
  await fails({ preHandler: hook, insecure: 'yes' }, /admin.insecure" must be a boolean/)
  await fails({ preHandler: hook, prehandler: hook }, /unknown option in admin: "prehandler"/)
  await fails(true, /option "admin" must be an object/)

  // insecure: mounted unguarded; an array of hooks runs in order
  const app = Fastify()
  await app.register(httpCache, { admin: { insecure: true, prefix: '/ops/cache' } })
  t.teardown(() => app.close())
  t.equal((await app.inject('/ops/cache/health')).statusCode, 200)
  t.equal((await app.inject('/_cache/health')).statusCode, 404)

  const order: string[] = []
  const app2 = Fastify()
  await app2.register(httpCache, {
    admin: {
      preHandler: [
        (_request: FastifyRequest, _reply: FastifyReply, done: () => void) => { order.push('first'); done() },
        async (_request: FastifyRequest, reply: FastifyReply) => { order.push('second'); await reply.code(403).send({ no: true }) }
      ]
    }
  })
  t.teardown(() => app2.close())
  const res = await app2.inject('/_cache/stats')
  t.equal(res.statusCode, 403)
  t.same(order, ['first', 'second'])

  // no admin option: no routes
  const app3 = Fastify()
  await app3.register(httpCache, {})
  t.teardown(() => app3.close())
  t.equal((await app3.inject('/_cache/health')).statusCode, 404)
})

t.test('entry codec: tags ride along, entries stored before them still decode', async (t) => {
  const e: CacheEntry = { status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from('x'), etag: '"x"', storedAt: 1, ttl: 1000, swr: 0, sie: 0, vary: undefined }
  t.same(decodeEntry(encodeEntry(e))?.tags, undefined, 'an untagged entry (the old layout) decodes')
  t.equal(decodeEntry(encodeEntry(e))?.body.toString(), 'x')
  t.same(decodeEntry(encodeEntry(e, ['a', 'b']))?.tags, ['a', 'b'])
  t.same(decodeEntry(encodeEntry(e, ['a']))?.body.toString(), 'x')
  const http = { ...e, http: { age: 0, flags: 0 } }
  t.equal(decodeVariants(encodeVariants([http, http]))?.length, 2)
  t.same(decodeVariants(encodeVariants([http, http], ['t']))?.map((v) => v.tags), [['t'], ['t']])
  t.same(decodeValue(encodeValue(5)), { v: 1, value: 5 })
  t.same(decodeValue(encodeValue(5, ['t']))?.tags, ['t'])
  // a last field that is not a tag list: not ours
  const { pack, unpack } = await import('msgpackr')
  const fields = unpack(encodeEntry(e)) as unknown[]
  t.equal(decodeEntry(pack([...fields, [1, 2]])), undefined)
  t.equal(decodeVariants(pack([3, (unpack(encodeVariants([http])) as unknown[])[1], 'x'])), undefined)
})

for (const backend of backends(t)) {
  t.test(`${backend.name}: admin API`, async (t) => {
    const base = await backend.options(t)

    await t.test('the preHandler runs first: no token gets its 401 on every route, whatever the input', async (t) => {
      const { app, calls } = await open(t, base)
      await cached(app, '/products/1')
      const before = denied
      const requests: InjectOptions[] = [
        { url: '/_cache/stats' },
        { url: '/_cache/health' },
        { url: '/_cache/groups/products/entries' },
        { url: '/_cache/groups/bad%20group/entries?limit=0&cursor=nope' },
        { url: '/_cache/entry?url=/products/1' },
        { url: '/_cache/entry' },
        { url: '/_cache/entry?url=nope&url=twice' },
        { method: 'DELETE', url: '/_cache/groups/products' },
        { method: 'DELETE', url: '/_cache/tags/catalog' },
        { method: 'DELETE', url: '/_cache/tags/%7Bbad%7D' },
        { method: 'DELETE', url: '/_cache/entry?url=/products/1' },
        { method: 'POST', url: '/_cache/clear' },
        { method: 'POST', url: '/_cache/clear', headers: { 'content-type': 'application/json' }, payload: '{not json' },
        { method: 'DELETE', url: '/_cache/groups/products', headers: { 'content-type': 'application/xml' }, payload: '<x/>' }
      ]
      for (const r of requests) {
        const res = await app.inject(r)
        t.equal(res.statusCode, 401, `${r.method ?? 'GET'} ${r.url}`)
        t.equal(res.json().message, 'token required')
        t.equal(res.headers['cache-control'], 'no-store')
      }
      t.equal(denied - before, requests.length)
      const hit = await app.inject('/products/1')
      t.equal(hit.headers['x-cache'], 'HIT', 'nothing was evicted')
      t.equal(calls.get('product'), 1)
    })

    await t.test('stats and health', async (t) => {
      const { admin } = await open(t, base)
      const stats = await admin('/_cache/stats')
      t.equal(stats.status, 200)
      t.equal(stats.json.store, backend.name)
      const health = await admin('/_cache/health')
      t.equal(health.status, 200)
      t.equal(health.json.store, backend.name)
      t.equal(health.json.ok, true)
      t.type(health.json.latencyMs, 'number')
      t.equal(health.json.breaker, backend.name === 'redis' ? 'closed' : null)
      t.equal(health.headers['cache-control'], 'no-store')
      t.equal(health.headers['x-cache'], undefined, 'admin routes are not cached')
    })

    await t.test('a group is listed page by page, every entry once, cursor null at the end', async (t) => {
      const { app, admin } = await open(t, base)
      for (let i = 0; i < 3; i++) await cached(app, `/products/${i}?q=${i}`)
      // values share the group; 300 keys make a Redis index a hash table (SSCAN in batches)
      await Promise.all(Array.from({ length: 297 }, async (_, i) => await app.cache.set(`v${i}`, i, { group: 'products', tags: ['vals'] })))
      await app.cache.set('elsewhere', 1, { group: 'other' })
      for (const limit of [1000, 7, 50, 1]) {
        const { keys, pages } = await walk(t, admin, 'products', limit)
        t.equal(keys.length, 300, `limit ${limit}: every key`)
        t.equal(new Set(keys).size, 300, `limit ${limit}: each once`)
        t.ok(pages >= Math.ceil(300 / limit), `limit ${limit}: ${pages} pages`)
      }
      const first = await admin('/_cache/groups/products/entries?limit=1000')
      const product = first.json.entries.find((e: { key: string }) => e.key.includes('/products/1?q=1'))
      t.match(product, { url: 'http://localhost/products/1?q=1', status: 200, ttl: 60, tags: ['catalog', 'p:1'] })
      t.ok(product.size > 0)
      t.ok(Math.abs(product.storedAt - Date.now()) < 60_000)
      const value = first.json.entries.find((e: { key: string }) => e.key.endsWith('v:v5'))
      t.match(value, { url: null, status: null, storedAt: null, ttl: null, tags: ['vals'] })
      t.notOk(first.json.entries.some((e: { key: string }) => e.key.includes('elsewhere')), 'only the group asked for')
      t.same((await admin('/_cache/groups/nothing-here/entries')).json, { entries: [], cursor: null })
      // a small group (one SSCAN batch on Redis) split over pages
      for (let i = 0; i < 5; i++) await app.cache.set(`s${i}`, i, { group: 'small' })
      const small = await walk(t, admin, 'small', 2)
      t.equal(small.keys.length, 5)
      t.equal(new Set(small.keys).size, 5)
      // Redis keeps a hash table run whole for the next page: how many pages depends on its bucket layout
      t.ok(small.pages >= 3 && small.pages <= 5, `${small.pages} pages`)
      // asking for the same cursor again gives the same page
      const p1 = await admin('/_cache/groups/small/entries?limit=2')
      const again = async (): Promise<string[]> => (await admin(`/_cache/groups/small/entries?limit=2&cursor=${encodeURIComponent(p1.json.cursor)}`)).json.entries.map((e: { key: string }) => e.key)
      t.same(await again(), await again())
    })

    await t.test('keys present throughout a walk are listed once while others come and go', async (t) => {
      const { app, admin } = await open(t, base)
      await Promise.all(Array.from({ length: 200 }, async (_, i) => await app.cache.set(`k${i}`, i, { group: 'busy' })))
      let added = 0
      const { keys } = await walk(t, admin, 'busy', 15, async (page) => {
        // drop one key that is still to come or already listed, and add new ones
        await app.cache.delete(`k${199 - page}`, { group: 'busy' })
        await app.cache.set(`new${added++}`, 1, { group: 'busy' })
      })
      const stable = Array.from({ length: 200 }, (_, i) => i).filter((i) => i < 199 - 30 || i > 199).map((i) => `k${i}`)
      for (const name of stable) t.equal(keys.filter((k) => k.endsWith(`v:${name}`)).length, 1, name)
      t.equal(new Set(keys).size, keys.length, 'no key twice')
    })

    await t.test('entry?url= shows the entry a GET would hit', async (t) => {
      const { app, admin } = await open(t, base)
      await cached(app, '/products/7?b=2&a=1')
      const byPath = await admin('/_cache/entry?url=' + encodeURIComponent('/products/7?a=1&b=2'))
      t.equal(byPath.status, 200)
      t.match(byPath.json, { url: 'http://localhost/products/7?a=1&b=2', status: 200, ttl: 60, tags: ['catalog', 'p:7'] })
      t.equal(byPath.json.variants, undefined)
      const absolute = await admin('/_cache/entry?url=' + encodeURIComponent('http://localhost/products/7?b=2&a=1'))
      t.equal(absolute.status, 200)
      t.equal(absolute.json.key, byPath.json.key)
      t.equal((await admin('/_cache/entry?url=' + encodeURIComponent('http://elsewhere.example/products/7?a=1&b=2'))).status, 404, 'another origin')
      const none = await admin('/_cache/entry?url=/products/8')
      t.equal(none.status, 404)
      t.equal(none.json.error, 'Not Found')
      // a path under the origins the group recorded, plain ones first
      await cached(app, '/products/9', { 'x-forwarded-host': 'proxy.example' })
      const forwarded = await admin('/_cache/entry?url=/products/9')
      t.equal(forwarded.status, 200)
      t.match(forwarded.json.key, /x-forwarded-host=proxy\.example/)
      await cached(app, '/products/9')
      t.notMatch((await admin('/_cache/entry?url=/products/9')).json.key, /x-forwarded-host/)

      // vary: the header values as header.<name>
      await cached(app, '/langs', { 'accept-language': 'fr' })
      t.equal((await admin('/_cache/entry?url=/langs')).status, 404, 'no entry for a request without the header')
      t.equal((await admin('/_cache/entry?url=/langs&header.Accept-Language=fr')).status, 200)

      // policy 'http': one key holds the variants
      await cached(app, '/std', { accept: 'text/a' })
      await cached(app, '/std', { accept: 'text/b' })
      const std = await admin('/_cache/entry?url=/std')
      t.equal(std.status, 200)
      t.equal(std.json.variants.length, 2)
      t.same(std.json.variants.map((v: { vary: Record<string, string> }) => v.vary.accept).sort(), ['text/a', 'text/b'])
      t.equal(std.json.ttl, 60)

      // a key builder: the key it returns
      await cached(app, '/keyed', { 'x-k': 'one' })
      const keyed = await admin('/_cache/entry?url=/keyed')
      t.equal(keyed.status, 400)
      t.match(keyed.json.message, /key function: give key=/)
      const found = await admin('/_cache/entry?url=/keyed&key=k-one')
      t.equal(found.status, 200)
      t.equal(found.json.url, null)

      // a URL no cached route matches: the default group
      await app.cache.set('x', 1)
      t.equal((await admin('/_cache/entry?url=/not-a-route')).status, 404)
    })

    await t.test('evictions answer { evicted } and the next GET misses', async (t) => {
      const { app, admin, calls } = await open(t, base)
      for (const id of [1, 2, 3]) await cached(app, `/products/${id}`)
      const one = await admin({ method: 'DELETE', url: '/_cache/entry?url=/products/1' })
      t.same([one.status, one.json], [200, { evicted: true }])
      t.same((await admin({ method: 'DELETE', url: '/_cache/entry?url=/products/1' })).json, { evicted: false })
      t.equal((await app.inject('/products/1')).headers['x-cache'], 'MISS')
      t.same((await admin({ method: 'DELETE', url: '/_cache/tags/p:2' })).json, { evicted: 1 })
      t.equal((await app.inject('/products/2')).headers['x-cache'], 'MISS')
      await cached(app, '/products/1')
      await cached(app, '/products/2')
      t.same((await admin({ method: 'DELETE', url: '/_cache/groups/products' })).json, { evicted: 3 })
      t.equal((await app.inject('/products/3')).headers['x-cache'], 'MISS')
      await cached(app, '/products/3')
      await cached(app, '/plain')
      const answer = await admin({ method: 'POST', url: '/_cache/clear', headers: { 'content-type': 'application/json' }, payload: '{"ignored":' })
      t.equal(answer.status, 200)
      t.same(answer.json, { evicted: cleared(backend, 2) }, 'the memory store counts; Redis counts nothing on the call')
      t.equal((await app.inject('/plain')).headers['x-cache'], 'MISS')
      const before = calls.get('product')
      t.equal((await app.inject('/products/3')).headers['x-cache'], 'MISS')
      t.equal(calls.get('product'), (before ?? 0) + 1)
    })

    await t.test('bad input: a 400 with a JSON error, never a 500', async (t) => {
      const { admin } = await open(t, base)
      const bad: Array<InjectOptions | string> = [
        '/_cache/groups/products/entries?limit=0',
        '/_cache/groups/products/entries?limit=1001',
        '/_cache/groups/products/entries?limit=abc',
        '/_cache/groups/products/entries?cursor=not-a-cursor',
        `/_cache/groups/products/entries?cursor=${Buffer.from('["x","y"]').toString('base64url')}`,
        '/_cache/groups/products/entries?limit=1&limit=2',
        '/_cache/groups/a%20b/entries',
        '/_cache/entry',
        '/_cache/entry?url=relative',
        '/_cache/entry?url=http%3A%2F%2F%5B%3A%3A1',
        '/_cache/entry?url=/products/1&header.x=a&header.x=b',
        { method: 'DELETE', url: '/_cache/entry' },
        { method: 'DELETE', url: '/_cache/entry?url=/keyed' },
        { method: 'DELETE', url: '/_cache/tags/a%7Bb' },
        { method: 'DELETE', url: '/_cache/groups/a%20b' },
        { method: 'POST', url: '/_cache/clear?namespace=a%20b' }
      ]
      for (const r of bad) {
        const res = await admin(r)
        t.equal(res.status, 400, typeof r === 'string' ? r : `${r.method ?? ''} ${r.url}`)
        t.equal(res.json.error, 'Bad Request')
        t.type(res.json.message, 'string')
        t.notMatch(res.json.message, /^fastify-http-cache/)
      }
    })
  })
}

t.test('redis: health during a stall of the process past the timeout, Redis answering meanwhile, says ok', async (t) => {
  const redis = await startRedis(t)
  const { admin } = await open(t, { redis: redis.client(), timeout: 100 })
  t.equal((await admin('/_cache/health')).status, 200)
  // Redis holds the ping for 60 ms and answers it while this process is busy for three timeouts
  await redis.client().call('client', 'pause', '60', 'all')
  const health = admin('/_cache/health')
  await sleep(20)
  await stall(300)
  t.match(await health, { status: 200, json: { ok: true, breaker: 'closed' } }, 'the answer that came during the stall counts')
})

t.test('redis: a store outage answers 503, health says so, and the API comes back', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client({ maxRetriesPerRequest: 1, enableOfflineQueue: false })
  const { app, admin } = await open(t, { redis: client, timeout: 300 })
  await cached(app, '/products/1')
  await redis.stop()
  await until('the client to notice', () => client.status !== 'ready')
  const down: Array<InjectOptions | string> = [
    '/_cache/groups/products/entries',
    '/_cache/entry?url=/products/1',
    { method: 'DELETE', url: '/_cache/groups/products' },
    { method: 'DELETE', url: '/_cache/tags/catalog' },
    { method: 'DELETE', url: '/_cache/entry?url=/products/1' },
    { method: 'POST', url: '/_cache/clear' }
  ]
  for (const r of down) {
    const res = await admin(r)
    t.equal(res.status, 503, typeof r === 'string' ? r : `${r.method ?? ''} ${r.url}`)
    t.same(res.json, { statusCode: 503, error: 'Service Unavailable', message: 'the cache store did not answer' })
  }
  const health = await admin('/_cache/health')
  t.equal(health.status, 503)
  t.match(health.json, { store: 'redis', ok: false, breaker: 'open' })
  t.equal((await admin('/_cache/stats')).status, 200, 'stats need no store')
  await redis.start()
  await until('the client to reconnect', () => client.status === 'ready', 15_000)
  await until('health to recover', async () => (await admin('/_cache/health')).status === 200, 15_000)
  await until('listing to work', async () => (await admin('/_cache/groups/products/entries')).status === 200, 15_000)
})

t.test('admin routes are never cached nor autoInvalidate writes, also under policy http', async (t) => {
  const { app, admin } = await open(t, { autoInvalidate: true, policy: 'http' })
  await app.cache.set('a', 1, { group: 'g' })
  for (let i = 0; i < 2; i++) {
    const res = await admin('/_cache/groups/g/entries')
    t.equal(res.headers['x-cache'], undefined)
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal(res.json.entries.length, 1)
  }
  t.same((await admin({ method: 'POST', url: '/_cache/clear' })).json, { evicted: 1 })
  t.same((await admin('/_cache/groups/g/entries')).json, { entries: [], cursor: null })
})

t.test('examples/admin.ts answers as its comments say, in memory and on Redis', async (t) => {
  const redis = await startRedis(t)
  for (const url of [undefined, redis.url]) {
    const app = await buildExample(url)
    t.teardown(() => app.close())
    t.equal(app.cache.storeName, url === undefined ? 'memory' : 'redis')
    await cached(app, '/products/1')
    await cached(app, '/products/2')
    const T = { authorization: 'Bearer secret' }
    t.equal((await app.inject('/_cache/health')).statusCode, 401)
    t.equal((await app.inject({ url: '/_cache/health', headers: T })).json().ok, true)
    const page = (await app.inject({ url: '/_cache/groups/products/entries?limit=1', headers: T })).json()
    t.equal(page.entries.length, 1)
    t.type(page.cursor, 'string')
    t.same((await app.inject({ url: '/_cache/entry?url=/products/1', headers: T })).json().tags, ['product:1'])
    t.same((await app.inject({ method: 'DELETE', url: '/_cache/entry?url=/products/1', headers: T })).json(), { evicted: true })
    t.same((await app.inject({ method: 'DELETE', url: '/_cache/tags/product:2', headers: T })).json(), { evicted: 1 })
    await app.close()
  }
})
