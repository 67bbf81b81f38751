// What is specific to the Redis store, against a real throwaway redis-server (no mocks): the keys,
// TTLs, index and registry a MISS leaves behind, eviction, application values, corrupt entries,
// Redis stopped or hung mid-test, @fastify/redis, client lifecycle and stale-write protection.
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRedis from '@fastify/redis'
import type { Redis } from 'ioredis'
import { pack, unpack } from 'msgpackr'
import httpCache from '../index.js'
import { decodeEntry, encodeEntry, type CacheEntry } from '../lib/entry.js'
import { stamped, unstamped } from '../lib/stores/stamp.js'
import { RedisStore } from '../lib/stores/redis.js'
import { KeyBuilder } from '../lib/keys.js'
import pino from 'pino'
import { startRedis } from './helpers/redis.js'
import { deferred } from './helpers/gate.js'
import { until } from './helpers/until.js'

type Test = Parameters<Parameters<typeof test>[0]>[0]
type Options = NonNullable<Parameters<typeof httpCache>[1]>

// A generous bound on Redis calls where the test is not about failures: on a loaded CI machine the
// default 250 ms can expire, open the circuit breaker and turn an expected HIT into a MISS.
const CALM = 2000

/** A Fastify app with the plugin; closed when the test ends even if an assertion throws first. */
async function build (t: Test, options: Options): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(httpCache, { timeout: CALM, ...options })
  return app
}

/** Rejects when `p` takes longer than `ms`: a hang becomes a failed assertion, not a stuck suite. */
async function bounded<T> (what: string, p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, limit])
  } finally {
    clearTimeout(timer)
  }
}

async function keysMatching (client: Redis, pattern: string): Promise<string[]> {
  const out: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    out.push(...batch)
  } while (cursor !== '0')
  return out.sort()
}

/** The plugin writes after the response is sent: wait until the key is there. */
async function stored (client: Redis, key: string): Promise<void> {
  await until(`${key} to be stored`, async () => (await client.exists(key)) === 1)
}

// An eviction makes keys unreachable at once and reclaims them behind it: waits until they are gone.
async function reclaimed (client: Redis, pattern: string, left: string[] = []): Promise<void> {
  await until(`${pattern} reclaimed`, async () => JSON.stringify(await keysMatching(client, pattern)) === JSON.stringify(left))
}

// app.inject requests come from light-my-request's default Host: their entries are keyed by this origin
const ORIGIN = 'http://localhost'
const E = (group: string, url: string, prefix = 'http-cache'): string => `${prefix}:{${group}}:e:GET:${ORIGIN}${url}`
const I = (group: string, prefix = 'http-cache'): string => `${prefix}:{${group}}:i`
const O = (group: string, prefix = 'http-cache'): string => `${prefix}:{${group}}:o`

test('a MISS leaves the entry, the group index and the group registry in Redis', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client(), ttl: 30 })
  const calls: Record<string, number> = {}
  const count = (name: string): number => (calls[name] = (calls[name] ?? 0) + 1)
  app.get('/plain', { config: { cache: true } }, async () => ({ n: count('plain') }))
  app.get('/grouped/:id', { config: { cache: { ttl: 10, group: 'g' } } }, async (req) => ({ id: (req.params as { id: string }).id, n: count('grouped') }))
  app.get('/forever', { config: { cache: { ttl: 0, group: 'eternal' } } }, async () => ({ n: count('forever') }))

  await t.test('default group, TTL from the plugin option, query sorted in the key', async (t) => {
    const res = await app.inject('/plain?b=2&a=1')
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-cache'], 'MISS')
    const key = E('default', '/plain?a=1&b=2')
    await stored(r, key)
    const pttl = await r.pttl(key)
    t.ok(pttl > 0 && pttl <= 30_000, `PTTL ${pttl} in (0, 30000]`)
    t.equal(await r.sismember(I('default'), key), 1, 'entry key is in the group index')
    const [indexAt, entryAt] = [await r.pexpiretime(I('default')), await r.pexpiretime(key)]
    t.ok(indexAt >= entryAt, `the index (expires at ${indexAt}) outlives the entry (${entryAt})`)
    t.same(await r.smembers(O('default')), [ORIGIN], 'the origin is recorded for the group')
    const originsAt = await r.pexpiretime(O('default'))
    t.ok(originsAt >= entryAt, `the origins set (expires at ${originsAt}) outlives the entry (${entryAt})`)
    await until('registry to list the group', async () => (await r.sismember('http-cache:groups', 'http-cache:{default}:')) === 1)

    const again = await app.inject('/plain?a=1&b=2')
    t.equal(again.headers['x-cache'], 'HIT', 'the other parameter order shares the entry')
    t.equal(again.body, res.body)
    t.equal(calls.plain, 1)
  })

  await t.test('route group in the hash tag, route TTL', async (t) => {
    await app.inject('/grouped/7')
    const key = E('g', '/grouped/7')
    await stored(r, key)
    const pttl = await r.pttl(key)
    t.ok(pttl > 0 && pttl <= 10_000, `PTTL ${pttl} in (0, 10000]`)
    t.equal(await r.exists(E('default', '/grouped/7')), 0, 'not under the default group')
    t.same(await r.smembers(I('g')), [key])
    await until('registry to list g', async () => (await r.sismember('http-cache:groups', 'http-cache:{g}:')) === 1)
  })

  await t.test('ttl 0: the entry and its index never expire', async (t) => {
    await app.inject('/forever')
    const key = E('eternal', '/forever')
    await stored(r, key)
    t.equal(await r.pttl(key), -1)
    t.equal(await r.pttl(I('eternal')), -1)
    t.equal(await r.pttl(O('eternal')), -1, 'nor its origins set')
    t.equal(await r.sismember(I('eternal'), key), 1)
    t.equal((await app.inject('/forever')).headers['x-cache'], 'HIT')
    t.equal(calls.forever, 1)
  })

  await app.close()
})

test('the group index never expires before one of its entries', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client() })
  app.get('/short', { config: { cache: { ttl: 10, group: 'mix' } } }, async () => 'short')
  app.get('/long', { config: { cache: { ttl: 30, group: 'mix' } } }, async () => 'long')
  app.get('/forever', { config: { cache: { ttl: 0, group: 'mix' } } }, async () => 'forever')

  await app.inject('/short')
  await stored(r, E('mix', '/short'))
  await app.inject('/long')
  await stored(r, E('mix', '/long'))
  const longTtl = await r.pttl(E('mix', '/long'))
  t.ok(longTtl > 10_000 && longTtl <= 30_000, `long entry PTTL ${longTtl}`)
  // absolute expiry times (ms), so the comparison does not depend on when each was read
  const indexAt = await r.pexpiretime(I('mix'))
  const longAt = await r.pexpiretime(E('mix', '/long'))
  const shortAt = await r.pexpiretime(E('mix', '/short'))
  t.ok(indexAt >= longAt && indexAt >= shortAt, `index expires at ${indexAt}, entries at ${shortAt} and ${longAt}`)

  await app.inject('/forever')
  await stored(r, E('mix', '/forever'))
  t.equal(await r.pttl(I('mix')), -1, 'a ttl 0 member makes the index persistent')
  await app.inject('/short?again=1')
  await stored(r, E('mix', '/short?again=1'))
  t.equal(await r.pttl(I('mix')), -1, 'a later finite write does not put an expiry back on it')
  t.equal(await app.cache.evictGroup('mix'), 4)
  await app.close()
})

test('custom prefix', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client(), prefix: 'shop-cache' })
  app.get('/p', { config: { cache: { group: 'catalog' } } }, async () => 'p')
  app.get('/q', { config: { cache: true } }, async () => 'q')

  await app.inject('/p')
  await app.inject('/q')
  await stored(r, E('catalog', '/p', 'shop-cache'))
  await stored(r, E('default', '/q', 'shop-cache'))
  t.equal(await r.sismember(I('catalog', 'shop-cache'), E('catalog', '/p', 'shop-cache')), 1)
  await until('registry under the prefix', async () => (await r.smembers('shop-cache:groups')).length === 2)
  t.same((await r.smembers('shop-cache:groups')).sort(), ['shop-cache:{catalog}:', 'shop-cache:{default}:'])
  t.same(await keysMatching(r, 'http-cache*'), [], 'nothing under the default prefix')

  await app.cache.set('v', 1)
  t.equal(await r.exists('shop-cache:{default}:v:v'), 1, 'application values use the prefix too')
  t.equal(await app.cache.evictGroup('catalog'), 1)
  await reclaimed(r, 'shop-cache:{catalog}:*', ['shop-cache:{catalog}:g'])
  t.equal(await r.exists(E('catalog', '/p', 'shop-cache')), 0)
  await app.close()
})

test('the stored entry decodes and holds only end-to-end headers', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client(), ttl: 30 })
  const BODY = 'hello, cache'
  let n = 0
  app.get('/doc', { config: { cache: true } }, async (_req, reply) => {
    n++
    reply.header('content-type', 'text/plain; charset=utf-8')
    reply.header('x-custom', 'kept')
    reply.header('link', ['</a.css>; rel=preload', '</b.js>; rel=preload'])
    reply.header('content-disposition', 'inline; filename="doc.txt"')
    reply.header('last-modified', 'Tue, 01 Jul 2025 10:00:00 GMT')
    reply.header('keep-alive', 'timeout=5')
    reply.header('connection', 'x-hop')
    reply.header('x-hop', 'named by Connection')
    reply.header('upgrade', 'h2c')
    reply.header('date', 'Thu, 01 Jan 1970 00:00:00 GMT')
    reply.header('content-length', String(Buffer.byteLength(BODY)))
    return BODY
  })
  app.get('/created', { config: { cache: true } }, async (_req, reply) => {
    reply.code(201).header('etag', '"v42"')
    return { created: true }
  })
  app.get('/cookie', { config: { cache: true } }, async (_req, reply) => {
    n++
    reply.header('set-cookie', 'session=abc')
    return 'personal'
  })

  const before = Date.now()
  const res = await app.inject('/doc')
  t.equal(res.statusCode, 200)
  t.equal(res.body, BODY)
  await stored(r, E('default', '/doc'))
  const raw = unstamped(await r.getBuffer(E('default', '/doc')) as Buffer)
  t.ok(raw !== null)
  const entry = decodeEntry(raw as Buffer)
  if (entry === undefined) throw new Error('stored entry does not decode')
  const fields = unpack(raw as Buffer) as unknown[]
  t.ok(Array.isArray(fields) && fields.length === 7, 'stored as a positional array of 7 fields (the defaults after the body left off)')
  t.equal(fields[0], 4, 'led by the format version')
  t.ok(Buffer.isBuffer(fields[4]) && (fields[4] as Buffer).length === 15, 'the ETag the plugin made kept as its 15 digest bytes')
  t.equal(entry.status, 200)
  t.equal(entry.body.toString(), BODY)
  t.equal(entry.etag, res.headers.etag, 'the ETag sent with the MISS')
  t.match(entry.etag, /^W\/"/, 'a weak ETag computed from the body')
  t.equal(entry.ttl, 30_000)
  t.equal(entry.swr, 0, 'no stale-while-revalidate')
  t.equal(entry.sie, 0, 'no stale-if-error')
  t.equal(entry.vary, undefined, 'the response varied on nothing')
  t.ok(entry.storedAt >= before && entry.storedAt <= Date.now(), 'storedAt is the write time in ms')
  t.same(entry.headers, {
    'content-type': 'text/plain; charset=utf-8',
    'x-custom': 'kept',
    link: ['</a.css>; rel=preload', '</b.js>; rel=preload'],
    'content-disposition': 'inline; filename="doc.txt"',
    'last-modified': 'Tue, 01 Jul 2025 10:00:00 GMT'
  }, 'no hop-by-hop, Connection-named, Date, Content-Length, x-cache, ETag or Cache-Control header')

  const hit = await app.inject('/doc')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.body, BODY)
  t.equal(hit.headers['x-custom'], 'kept')
  t.equal(hit.headers['x-hop'], undefined)
  t.equal(n, 1)

  const created = await app.inject('/created')
  t.equal(created.statusCode, 201)
  await stored(r, E('default', '/created'))
  const createdEntry = decodeEntry(unstamped((await r.getBuffer(E('default', '/created'))) as Buffer))
  t.equal(createdEntry?.status, 201)
  t.equal(createdEntry?.etag, '"v42"', "the handler's own ETag is kept")
  t.same(JSON.parse(createdEntry?.body.toString() ?? 'null'), { created: true })
  const createdHit = await app.inject('/created')
  t.equal(createdHit.headers['x-cache'], 'HIT')
  t.equal(createdHit.statusCode, 201)

  // a response with Set-Cookie is never written
  n = 0
  t.equal((await app.inject('/cookie')).headers['set-cookie'], 'session=abc')
  t.equal((await app.inject('/cookie')).headers['x-cache'], 'MISS')
  t.equal(n, 2)
  t.equal(await r.exists(E('default', '/cookie')), 0)
  await app.close()
})

test('evictGroup removes exactly the group, really, and the next GET is a MISS', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client() })
  let gCalls = 0
  let hCalls = 0
  app.get('/g/:id', { config: { cache: { group: 'g' } } }, async (req) => ({ id: (req.params as { id: string }).id, n: ++gCalls }))
  app.get('/h/:id', { config: { cache: { group: 'h' } } }, async () => ({ n: ++hCalls }))

  const urls = ['/g/1', '/g/2', '/g/3?x=1']
  for (const url of urls) t.equal((await app.inject(url)).headers['x-cache'], 'MISS')
  await app.inject('/h/1')
  for (const url of urls) await stored(r, E('g', url))
  await stored(r, E('h', '/h/1'))
  t.equal(await r.scard(I('g')), 3)
  t.same(await r.smembers(O('g')), [ORIGIN])

  t.equal(await app.cache.evictGroup('g'), 3, 'the number of entries removed')
  await reclaimed(r, 'http-cache:{g}:*', ['http-cache:{g}:g'])
  await reclaimed(r, 'http-cache:reclaim')
  for (const url of urls) t.equal(await r.exists(E('g', url)), 0, `${url} gone from Redis`)
  t.equal(await r.exists(I('g')), 0, 'the index is gone')
  t.equal(await r.exists(O('g')), 0, 'the origins set is gone')
  t.same(await keysMatching(r, 'http-cache:{g}:*'), ['http-cache:{g}:g'], 'nothing left of the group but its generation')
  t.equal(await r.exists(E('h', '/h/1')), 1, 'other groups untouched')
  t.equal(await r.sismember(I('h'), E('h', '/h/1')), 1)

  const after = await app.inject('/g/1')
  t.equal(after.headers['x-cache'], 'MISS')
  t.equal(after.json().n, 4, 'the handler ran again')
  t.equal(gCalls, 4)
  t.equal((await app.inject('/g/1')).headers['x-cache'], 'HIT', 'and the fresh response is cached again')
  t.equal((await app.inject('/h/1')).headers['x-cache'], 'HIT')
  t.equal(hCalls, 1)

  t.equal(await app.cache.evictGroup('never-used'), 0)
  await t.rejects(app.cache.evictGroup('{bad}'), TypeError, 'a group that would break the hash tag is refused')
  await app.close()
})

test('evictGroup of a large group (more keys than one UNLINK batch)', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client(), timeout: 10_000 })
  await app.ready()
  const N = 1234
  for (let i = 0; i < N; i += 100) {
    const batch: Array<Promise<void>> = []
    for (let j = i; j < Math.min(i + 100, N); j++) batch.push(app.cache.set(`k${j}`, j, { group: 'big' }))
    await Promise.all(batch)
  }
  t.equal(await r.scard(I('big')), N)
  t.equal(await app.cache.evictGroup('big'), N)
  t.equal(await app.cache.get('k7', { group: 'big' }), undefined, 'unreachable at once')
  await reclaimed(r, 'http-cache:{big}:*', ['http-cache:{big}:g'])
  t.same(await keysMatching(r, 'http-cache:{big}:v:*'), [])
  t.equal(await r.exists(I('big')), 0)
  await app.close()
})

test('evict(url) drops only that entry and finds the route group by itself', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client() })
  let calls = 0
  app.get('/products/:id', { config: { cache: { group: 'products' } } }, async (req) => ({ id: (req.params as { id: string }).id, n: ++calls }))
  app.get('/other', { config: { cache: true } }, async () => 'other')

  for (const url of ['/products/1', '/products/2', '/products/3?b=2&a=1', '/other']) await app.inject(url)
  await stored(r, E('products', '/products/1'))
  await stored(r, E('products', '/products/2'))
  await stored(r, E('products', '/products/3?a=1&b=2'))
  await stored(r, E('default', '/other'))

  t.equal(await app.cache.evict('/products/1'), true)
  t.equal(await r.exists(E('products', '/products/1')), 0, 'gone from Redis')
  t.equal(await r.sismember(I('products'), E('products', '/products/1')), 0, 'and from the index')
  t.equal(await r.exists(E('products', '/products/2')), 1, 'siblings stay')
  t.equal(await r.exists(E('default', '/other')), 1)
  t.equal(await app.cache.evict('/products/1'), false, 'nothing left to evict')

  t.equal(await app.cache.evict('/products/3?a=1&b=2'), true, 'the URL is normalized like a request')
  t.equal(await r.exists(E('products', '/products/3?a=1&b=2')), 0)

  const res = await app.inject('/products/1')
  t.equal(res.headers['x-cache'], 'MISS')
  t.equal(res.json().n, 4, 'the handler ran again')
  t.equal((await app.inject('/products/2')).headers['x-cache'], 'HIT')
  t.equal((await app.inject('/other')).headers['x-cache'], 'HIT')
  t.equal(calls, 4)
  await app.close()
})

test('clear() removes what the plugin stored under its prefix and nothing else', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client() })
  let calls = 0
  app.get('/a/:id', { config: { cache: { group: 'a' } } }, async () => ({ n: ++calls }))
  app.get('/d', { config: { cache: true } }, async () => ({ n: ++calls }))

  await r.set('not-ours', 'keep me')
  await r.set('http-cache-lookalike:x', 'keep me too')
  await r.sadd('someone:{a}:i', 'x')
  for (const url of ['/a/1', '/a/2', '/d']) await app.inject(url)
  await app.cache.set('value', { x: 1 })
  await app.cache.set('value', 2, { group: 'b' })
  await stored(r, E('a', '/a/1'))
  await stored(r, E('a', '/a/2'))
  await stored(r, E('default', '/d'))
  await until('registry', async () => (await r.scard('http-cache:groups')) === 3)

  t.equal(await app.cache.clear(), 0, 'counts nothing on the call: three entries and two values are reclaimed behind it')
  t.equal(await app.cache.has('value'), false, 'unreachable at once')
  const rest = (keys: string[]): string[] => keys.filter((k) => !k.endsWith(':g')).sort()
  // groups of up to 50 keys are reclaimed by the walk itself
  await until('reclaimed', async () => (await keysMatching(r, 'http-cache:*')).every((k) => !/:[ev]:|:i$|:R$|:reclaim$|:clearing$/.test(k)))
  // the next walk unregisters the groups that held nothing since the last one, dropping their origins
  t.equal(await app.cache.clear(), 0)
  await until('unregistered', async () => rest(await keysMatching(r, 'http-cache:*')).length === 1)
  const left = await keysMatching(r, 'http-cache:*')
  t.same(rest(left), ['http-cache:clear'], `only eviction generations and the clear count remain: ${left.join(', ')}`)
  t.equal(await r.get('not-ours'), 'keep me')
  t.equal(await r.get('http-cache-lookalike:x'), 'keep me too')
  t.equal(await r.sismember('someone:{a}:i', 'x'), 1)
  t.equal((await app.inject('/d')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/d')).headers['x-cache'], 'HIT')
  t.equal(calls, 4)
  await app.close()
})

test('clear()\'s walk over more groups than one script takes: every group reclaimed, none skipped', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client() })
  // 100 groups of 40 values (each reclaimed by the walk's own script: a few make a script spend its
  // budget, so the walk sends the rest of a batch again), 30 of 60 (handed to the reclaimer), and a group
  // in a namespace (its clear counts are two, where the others' are one)
  const groups: Array<[string, number]> = []
  for (let i = 0; i < 100; i++) groups.push([`s${i}`, 40])
  for (let i = 0; i < 30; i++) groups.push([`l${i}`, 60])
  for (const [group, n] of groups) {
    await Promise.all(Array.from({ length: n }, async (_, j) => await app.cache.set(`k${j}`, j, { group })))
  }
  await app.cache.set('nv', 1, { group: 'other', namespace: 'v2' })
  t.equal(await r.scard('http-cache:groups'), 131)
  t.equal((await keysMatching(r, 'http-cache:*{other}*:v:*')).length, 1)
  // one value of s1 carries an epoch past its group's, as one written after the clear would: the walk keeps it
  const epoch = Number((await r.get('http-cache:{s1}:g'))?.split(/[.;]/)[0])
  const raw = await r.getBuffer('http-cache:{s1}:v:k0')
  t.ok(raw !== null && epoch > 0)
  await r.set('http-cache:{s1}:v:k0', stamped(String(epoch + 2), unstamped(raw as Buffer)))

  await app.cache.clear()
  await until('the walk and its reclaims done', async () =>
    await r.exists('http-cache:clearing') === 0 && (await keysMatching(r, 'http-cache:{[sl]*')).every((k) => !/:[v]:|:i$|:R$|r:/.test(k) || k.startsWith('http-cache:{s1}:')), 20_000)
  t.same((await keysMatching(r, 'http-cache:{[sl]*:v:*')), ['http-cache:{s1}:v:k0'], 'no value of a walked group is left but the one written since')
  t.same(await r.smembers('http-cache:{s1}:i'), ['http-cache:{s1}:v:k0'], 'which its index alone still names')
  const idle = (await keysMatching(r, 'http-cache:{[sl]*:x')).map((k) => k.slice('http-cache:{'.length, -'}:x'.length)).sort()
  t.same(idle, groups.filter(([g, n]) => n === 40 && g !== 's1').map(([g]) => g).sort(), 'each group the walk emptied itself is marked idle')
  t.equal(await app.cache.has('nv', { group: 'other', namespace: 'v2' }), false, 'a clear of the prefix reaches every namespace')
  await until('the namespace\'s group walked too', async () => (await keysMatching(r, 'http-cache:*{other}*:v:*')).length === 0)

  // the next walk unregisters the groups it finds marked and still empty, not those written since the mark
  await app.cache.set('again', 1, { group: 's0' })
  // and s2, marked, holds a value the next walk keeps: the walk takes its mark off
  await app.cache.set('k0', 1, { group: 's2' })
  t.equal(await r.exists('http-cache:{s2}:x'), 1)
  const later = Number((await r.get('http-cache:{s2}:g'))?.split(/[.;]/)[0])
  await r.set('http-cache:{s2}:v:k0', stamped(String(later + 2), unstamped(await r.getBuffer('http-cache:{s2}:v:k0') as Buffer)))
  await app.cache.clear()
  await until('the second walk done', async () => await r.exists('http-cache:clearing') === 0)
  await until('the groups that held nothing since the first walk unregistered', async () =>
    (await r.smembers('http-cache:groups')).filter((g) => /^http-cache:\{s/.test(g)).length === 3)
  t.same((await r.smembers('http-cache:groups')).filter((g) => /^http-cache:\{s/.test(g)).sort(), ['http-cache:{s0}:', 'http-cache:{s1}:', 'http-cache:{s2}:'], 'the groups written since stay registered')
  t.equal(await r.exists('http-cache:{s2}:x'), 0, 'a group holding a key it kept is not marked')
  t.equal(await r.exists('http-cache:{s0}:x'), 1, 'one it emptied is')
  t.equal((await r.smembers('http-cache:groups')).filter((g) => /^http-cache:\{l/.test(g)).length, 30, 'the groups reclaimed behind the walk were marked idle by the second walk, not unregistered')
})

test('application values: set/get/has/delete, ttl and groups', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client(), ttl: 30 })
  await app.ready()
  const c = app.cache

  const obj = { a: 1, s: 'text', nested: { list: [1, 'two', null, true] } }
  await c.set('obj', obj)
  t.same(await c.get('obj'), obj)
  t.equal(await r.exists('http-cache:{default}:v:obj'), 1)

  const buf = Buffer.from([0, 1, 2, 254, 255])
  await c.set('buf', buf)
  const back = await c.get<Buffer>('buf')
  t.ok(Buffer.isBuffer(back), 'a Buffer comes back as a Buffer')
  t.ok(back !== undefined && buf.equals(back))

  await c.set('num', 42)
  t.equal(await c.get('num'), 42)
  await c.set('zero', 0)
  t.equal(await c.get('zero'), 0)
  t.equal(await c.has('zero'), true, 'a falsy value is still present')
  await c.set('nil', null)
  t.equal(await c.has('nil'), true)
  t.equal(await c.get('nil'), null)

  t.equal(await c.has('missing'), false)
  t.equal(await c.get('missing'), undefined)
  t.equal(await c.delete('num'), true)
  t.equal(await c.has('num'), false)
  t.equal(await r.exists('http-cache:{default}:v:num'), 0)
  t.equal(await c.delete('num'), false)

  // ttl
  const defaultTtl = await r.pttl('http-cache:{default}:v:obj')
  t.ok(defaultTtl > 0 && defaultTtl <= 30_000, `plugin ttl applies: PTTL ${defaultTtl}`)
  await c.set('short', 'x', { ttl: 5 })
  const shortTtl = await r.pttl('http-cache:{default}:v:short')
  t.ok(shortTtl > 0 && shortTtl <= 5000, `ttl 5 -> PTTL ${shortTtl}`)
  await c.set('forever', 'x', { ttl: 0 })
  t.equal(await r.pttl('http-cache:{default}:v:forever'), -1)
  await t.rejects(c.set('bad', 1, { ttl: -1 }), TypeError)
  await t.rejects(c.set('', 1), TypeError)

  // groups
  await c.set('gv', 'in g', { group: 'g' })
  t.equal(await r.exists('http-cache:{g}:v:gv'), 1)
  t.equal(await r.sismember(I('g'), 'http-cache:{g}:v:gv'), 1)
  t.equal(await r.sismember('http-cache:groups', 'http-cache:{g}:'), 1)
  t.equal(await c.get('gv'), undefined, 'another group is another namespace')
  t.equal(await c.get('gv', { group: 'g' }), 'in g')
  await c.set('gv2', 2, { group: 'g' })
  t.equal(await c.evictGroup('g'), 2)
  t.equal(await c.get('gv', { group: 'g' }), undefined)
  t.equal(await c.has('gv2', { group: 'g' }), false)
  t.equal(await r.exists('http-cache:{g}:v:gv'), 0)
  t.same(await c.get('obj'), obj, 'the default group is untouched')

  // a value that is not ours reads as absent
  await r.set('http-cache:{default}:v:junk', 'not msgpack of ours')
  t.equal(await c.get('junk'), undefined)
  t.equal(await c.has('junk'), false)
  await app.close()
})

test('corrupt entries are misses and get replaced', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: redis.client() })
  let calls = 0
  app.get('/c/:name', { config: { cache: true } }, async (req) => {
    calls++
    return `fresh ${(req.params as { name: string }).name}`
  })
  await app.ready()

  const good: CacheEntry = {
    status: 200,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body: Buffer.from('from the entry'),
    etag: '"e"',
    storedAt: Date.now(),
    ttl: 60_000,
    swr: 0,
    sie: 0,
    vary: undefined
  }
  // bad field values in the entry layout
  const bad = (e: unknown): Buffer => encodeEntry(e as CacheEntry)
  // the fields of `good` as stored (a positional array led by the format version)
  const fields = unpack(encodeEntry(good)) as unknown[]
  const layout = (change: (fields: unknown[]) => unknown[]): Buffer => pack(change([...fields]))
  const cases: Record<string, Buffer | (() => Promise<unknown>)> = {
    garbage: Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x37, 0xde, 0xad]),
    empty: Buffer.alloc(0),
    text: Buffer.from('hello world'),
    truncated: encodeEntry(good).subarray(0, 20),
    'wrong shape': layout((f) => { f[8] = 'a string, not bytes'; return f }),
    array: pack([1, 2, 3]),
    'an object (the previous layout)': pack({ v: 1, status: 200, headers: good.headers, body: good.body, etag: good.etag, storedAt: good.storedAt, ttl: good.ttl }),
    'a field missing': layout((f) => f.slice(0, 6)),
    'future version': layout((f) => { f[0] = 3; return f }),
    'non-2xx status': bad({ ...good, status: 500 }),
    'header value with CRLF': bad({ ...good, headers: { 'x-evil': 'a\r\nSet-Cookie: owned=1' } }),
    'header name with a space': bad({ ...good, headers: { 'bad name': 'x' } }),
    'header value not a string': bad({ ...good, headers: { 'x-n': 5 } }),
    'null headers': bad({ ...good, headers: null }),
    'a Redis list, not a string': async () => await r.rpush(E('default', '/c/list'), 'a', 'b')
  }

  // what the store writes a value under: the group's generation and its clear count
  const written = async (): Promise<string> => `${(await r.get('http-cache:{default}:g'))?.split(';')[0] ?? '0'}/${await r.get('http-cache:clear') ?? ''}`
  for (const [name, corrupt] of Object.entries(cases)) {
    await t.test(name, async (t) => {
      const slug = name === 'a Redis list, not a string' ? 'list' : name.replace(/\W+/g, '-')
      const url = `/c/${slug}`
      const key = E('default', url)
      // stamped with the group's generation, so the bytes themselves are what the lookup judges
      if (typeof corrupt === 'function') await corrupt()
      else await r.set(key, stamped(await written(), corrupt))
      const before = calls
      const res = await app.inject(url)
      t.equal(res.statusCode, 200)
      t.equal(res.headers['x-cache'], 'MISS')
      t.equal(res.body, `fresh ${slug}`)
      t.equal(res.headers['x-evil'], undefined)
      t.equal(res.headers['set-cookie'], undefined)
      t.equal(calls, before + 1, 'the handler ran')
      const hit = await app.inject(url)
      t.equal(hit.headers['x-cache'], 'HIT', 'replaced by a good entry')
      t.equal(hit.body, `fresh ${slug}`)
      t.equal(calls, before + 1)
      const entry = decodeEntry(unstamped((await r.getBuffer(key)) as Buffer))
      t.equal(entry?.body.toString(), `fresh ${slug}`)
      t.equal(await r.sismember(I('default'), key), 1)
    })
  }

  await t.test('a valid entry written by hand is served (control)', async (t) => {
    await r.set(E('default', '/c/handmade'), stamped(await written(), encodeEntry(good)))
    const before = calls
    const res = await app.inject('/c/handmade')
    t.equal(res.headers['x-cache'], 'HIT')
    t.equal(res.body, 'from the entry')
    t.equal(calls, before)
  })
  await app.close()
})

test('Redis stopped mid-test (user client, default ioredis options): requests still answer, caching resumes', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client()
  const app = await build(t, { redis: client })
  let calls = 0
  app.get('/r', { config: { cache: true } }, async () => { calls++; return 'payload' })

  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
  t.equal(calls, 1)

  await redis.stop()
  for (let i = 0; i < 6; i++) {
    const res = await bounded(`GET #${i} with Redis down`, app.inject('/r'))
    t.equal(res.statusCode, 200)
    t.equal(res.body, 'payload')
    t.equal(res.headers['x-cache'], 'MISS')
  }
  t.equal(calls, 7, 'the handler answered every request')
  t.equal(await bounded('cache.get with Redis down', app.cache.get('anything')), undefined, 'reads degrade to absent')
  await t.rejects(bounded('evictGroup with Redis down', app.cache.evictGroup('default')), 'a failed eviction is reported, not swallowed')

  await redis.start()
  await until('the client to reconnect', () => client.status === 'ready', 15_000)
  await until('caching to resume', async () => {
    const res = await app.inject('/r?after=restart')
    t.equal(res.statusCode, 200)
    t.equal(res.body, 'payload')
    return res.headers['x-cache'] === 'HIT'
  }, 10_000)
  t.equal(await client.exists(E('default', '/r?after=restart')), 1, 'written to the restarted Redis')
  await app.close()
  t.equal(await client.ping(), 'PONG', 'the user client is left open')
})

test('Redis stopped mid-test (redis URL option): requests still answer, caching resumes, close quits the client', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = await build(t, { redis: `${redis.url}?connectionName=fhc-owned` })
  let calls = 0
  app.get('/u', { config: { cache: true } }, async () => { calls++; return 'payload' })
  await app.ready()
  t.equal(app.cache.storeName, 'redis')
  const owned = async (): Promise<boolean> => (await r.client('LIST') as string).includes('name=fhc-owned')
  t.ok(await owned(), 'the plugin connected its own client at ready')

  t.equal((await app.inject('/u')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/u')).headers['x-cache'], 'HIT')
  t.equal(calls, 1)

  await redis.stop()
  for (let i = 0; i < 6; i++) {
    const res = await bounded(`GET #${i} with Redis down`, app.inject('/u'))
    t.equal(res.statusCode, 200)
    t.equal(res.body, 'payload')
    t.equal(res.headers['x-cache'], 'MISS')
  }
  t.equal(calls, 7)

  await redis.start()
  await until('the inspection client to reconnect', () => r.status === 'ready', 15_000)
  await until('caching to resume', async () => {
    const res = await app.inject('/u?after=restart')
    t.equal(res.statusCode, 200)
    t.equal(res.body, 'payload')
    return res.headers['x-cache'] === 'HIT'
  }, 15_000)
  t.equal(await r.exists(E('default', '/u?after=restart')), 1)

  await app.close()
  await until('the plugin-owned client to disconnect', async () => !(await owned()))
  t.pass('app.close() closed the client the plugin created')
})

test('Redis hung (SIGSTOP) mid-test: requests are not stalled, caching resumes after SIGCONT', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client()
  const app = await build(t, { redis: client, timeout: 500 })
  let calls = 0
  app.get('/h', { config: { cache: true } }, async () => { calls++; return 'payload' })
  t.equal((await app.inject('/h')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/h')).headers['x-cache'], 'HIT')

  const pid = redis.pid()
  if (pid === undefined) throw new Error('no redis-server pid')
  process.kill(pid, 'SIGSTOP')
  try {
    for (let i = 0; i < 5; i++) {
      const res = await bounded(`GET #${i} with Redis hung`, app.inject('/h'))
      t.equal(res.statusCode, 200)
      t.equal(res.body, 'payload')
      t.equal(res.headers['x-cache'], 'MISS')
    }
    t.equal(calls, 6)
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  await until('caching to resume', async () => {
    const res = await app.inject('/h?after=sigcont')
    t.equal(res.body, 'payload')
    return res.headers['x-cache'] === 'HIT'
  }, 10_000)
  await app.close()
})

test('@fastify/redis: the plugin uses fastify.redis when no redis option is given', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(fastifyRedis, { url: redis.url })
  await app.register(httpCache, { timeout: CALM })
  let calls = 0
  app.get('/fr', { config: { cache: true } }, async () => ({ n: ++calls }))
  await app.ready()
  t.equal(app.cache.storeName, 'redis')

  t.equal((await app.inject('/fr')).headers['x-cache'], 'MISS')
  await stored(r, E('default', '/fr'))
  t.equal((await app.inject('/fr')).headers['x-cache'], 'HIT')
  t.equal(calls, 1)
  await app.cache.set('shared', 'yes')
  t.equal(await r.exists('http-cache:{default}:v:shared'), 1)
  await t.resolves(app.close(), '@fastify/redis closes its client, the plugin does not close it twice')
})

test('@fastify/redis with a user client: neither plugin closes it', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client()
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(fastifyRedis, { client })
  await app.register(httpCache, { timeout: CALM })
  app.get('/x', { config: { cache: true } }, async () => 'x')
  await app.ready()
  t.equal(app.cache.storeName, 'redis')
  await app.inject('/x')
  await stored(client, E('default', '/x'))
  await app.close()
  t.equal(client.status, 'ready')
  t.equal(await client.ping(), 'PONG')
})

test('a client handed to the plugin is not closed by app.close()', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client()
  const app = await build(t, { redis: client })
  app.get('/x', { config: { cache: true } }, async () => 'x')
  await app.inject('/x')
  await app.close()
  t.equal(await client.ping(), 'PONG')
  t.equal(await client.exists(E('default', '/x')), 1, 'pending writes were flushed before close')
})

test('no stale resurrection: a miss in flight during an eviction does not store its old response', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client()
  const app = await build(t, { redis: client })
  let version = 1
  let calls = 0
  let entered = deferred()
  let gate = deferred()
  app.get('/s', { config: { cache: { group: 'stale' } } }, async () => {
    calls++
    const v = version // the handler reads its data...
    entered.resolve()
    await gate.promise // ...and is slow to answer
    return `v${v}`
  })
  app.get('/other', { config: { cache: { group: 'other' } } }, async () => {
    entered.resolve()
    await gate.promise
    return 'other'
  })
  await app.ready()

  // Resolves once every command the plugin already sent on its connection has been answered
  // (one connection answers in order), so an absent key means the write was refused, not late.
  const settled = async (): Promise<void> => { await client.ping() }

  const round = async (t: Test, evict: () => Promise<unknown>, label: string): Promise<void> => {
    entered = deferred()
    gate = deferred()
    const inflight = app.inject('/s')
    await entered.promise // looked up (a MISS), handler paused
    version++ // the data changes...
    await evict() // ...and the cache is told so, while the old response is still on its way
    gate.resolve()
    const res = await inflight
    t.equal(res.headers['x-cache'], 'MISS')
    t.equal(res.body, `v${version - 1}`, 'the in-flight request answers what it read')
    await settled()
    t.equal(await client.exists(E('stale', '/s')), 0, `${label}: the old response was not stored`)

    const next = await app.inject('/s')
    t.equal(next.headers['x-cache'], 'MISS', `${label}: the next GET is a MISS again`)
    t.equal(next.body, `v${version}`, 'and gets the new data')
    const hit = await app.inject('/s')
    t.equal(hit.headers['x-cache'], 'HIT')
    t.equal(hit.body, `v${version}`)
  }

  await t.test('evictGroup, first use of the group', async (t) => {
    await round(t, async () => await app.cache.evictGroup('stale'), 'evictGroup')
    t.equal(calls, 2)
  })
  await t.test('evictGroup while an older entry existed', async (t) => {
    t.equal(await app.cache.evictGroup('stale'), 1)
    await round(t, async () => await app.cache.evictGroup('stale'), 'evictGroup again')
  })
  await t.test('evict(url)', async (t) => {
    await app.cache.evictGroup('stale')
    await round(t, async () => await app.cache.evict('/s'), 'evict')
  })
  await t.test('clear()', async (t) => {
    await app.cache.evictGroup('stale')
    await round(t, async () => await app.cache.clear(), 'clear')
  })
  await t.test('evicting another group does not block the write (control)', async (t) => {
    entered = deferred()
    gate = deferred()
    const inflight = app.inject('/other')
    await entered.promise
    await app.cache.evictGroup('stale')
    gate.resolve()
    t.equal((await inflight).headers['x-cache'], 'MISS')
    await settled()
    t.equal(await client.exists(E('other', '/other')), 1)
    t.equal((await app.inject('/other')).headers['x-cache'], 'HIT')
  })
  await app.close()
})

test('a lazyConnect client is connected by the plugin at ready', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client({ lazyConnect: true })
  t.equal(client.status, 'wait')
  const app = await build(t, { redis: client })
  let calls = 0
  app.get('/lazy', { config: { cache: true } }, async () => ({ n: ++calls }))
  await app.ready()
  t.equal(client.status, 'ready')
  t.equal((await app.inject('/lazy')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/lazy')).headers['x-cache'], 'HIT')
  t.equal(calls, 1)
  t.equal(await client.exists(E('default', '/lazy')), 1)
  await app.close()
})

test('a RESP2 client works the same', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client({ protocol: 2 })
  const app = await build(t, { redis: client })
  let calls = 0
  app.get('/r2/:id', { config: { cache: { group: 'r2' } } }, async () => ({ n: ++calls }))
  t.equal((await app.inject('/r2/1')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/r2/1')).headers['x-cache'], 'HIT')
  await app.inject('/r2/2')
  await stored(client, E('r2', '/r2/2'))
  await app.cache.set('v', { a: [1, 2] }, { group: 'r2' })
  t.same(await app.cache.get('v', { group: 'r2' }), { a: [1, 2] })
  t.equal(await app.cache.evictGroup('r2'), 3)
  t.equal((await app.inject('/r2/1')).headers['x-cache'], 'MISS')
  t.equal(calls, 3)
  await app.close()
})

test('Redis down at boot: the app starts, serves, and caches once Redis is up', async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  for (const lazyConnect of [false, true]) {
    await t.test(`lazyConnect: ${lazyConnect}`, async (t) => {
      const client = redis.client({ lazyConnect })
      const app = Fastify()
      t.teardown(async () => { await app.close() })
      let calls = 0
      await bounded('register and ready with Redis down', (async () => {
        await app.register(httpCache, { redis: client, timeout: CALM })
        app.get('/boot', { config: { cache: true } }, async () => { calls++; return 'boot' })
        await app.ready()
      })(), 10_000)
      const res = await bounded('GET with Redis down', app.inject('/boot'))
      t.equal(res.statusCode, 200)
      t.equal(res.body, 'boot')
      t.equal(res.headers['x-cache'], 'MISS')
      t.equal(calls, 1)

      await redis.start()
      await until('caching to start', async () => (await app.inject('/boot')).headers['x-cache'] === 'HIT', 15_000)
      t.equal(await client.exists(E('default', '/boot')), 1)
      await app.close()
      await redis.stop()
    })
  }
})

test('app.close() with a plugin-owned client completes while Redis is stopped', async (t) => {
  const redis = await startRedis(t)
  const app = await build(t, { redis: redis.url })
  app.get('/c', { config: { cache: true } }, async () => 'c')
  t.equal((await app.inject('/c')).headers['x-cache'], 'MISS')
  await redis.stop()
  await bounded('app.close() with Redis stopped', app.close())
  t.pass('closed')
})

test('app.close() with a plugin-owned client completes while Redis is hung (SIGSTOP)', async (t) => {
  const redis = await startRedis(t)
  const app = await build(t, { redis: redis.url, timeout: 500 })
  app.get('/c', { config: { cache: true } }, async () => 'c')
  t.equal((await app.inject('/c')).headers['x-cache'], 'MISS')
  const pid = redis.pid()
  if (pid === undefined) throw new Error('no redis-server pid')
  process.kill(pid, 'SIGSTOP')
  const closing = app.close()
  try {
    await t.resolves(bounded('app.close() with Redis hung', closing), 'close is bounded like every other Redis call')
  } finally {
    process.kill(pid, 'SIGCONT')
    await closing
  }
})

test('clear()\'s walk racing the first write to a group it unregisters: neither evicted nor unregistered, a later clear() finds it', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client()
  const app = await build(t, { redis: client })
  let calls = 0
  app.get('/a/:id', { config: { cache: { ttl: 0, group: 'a' } } }, async () => ({ n: ++calls }))
  await app.ready()
  await app.inject('/a/1')
  await stored(client, E('a', '/a/1'))
  await until('registry to list a', async () => (await client.sismember('http-cache:groups', 'http-cache:{a}:')) === 1)
  // a group that has indexed nothing since the last clear()'s walk, which the next walk unregisters
  await app.cache.evictGroup('a')
  await app.cache.clear()
  await until('the first walk done', async () => await client.exists('http-cache:clearing') === 0)
  t.equal(await client.exists('http-cache:{a}:x'), 1, 'the group is marked idle')

  // Hold the walk's registry update (SREM) until a request has refilled the group it unregisters:
  // the interleaving a busy app sees when clear() runs under traffic.
  const sremCalled = deferred()
  const sremGate = deferred()
  const srem = client.srem.bind(client)
  const held = async (...args: Parameters<typeof srem>): Promise<number> => {
    sremCalled.resolve()
    await sremGate.promise
    return await srem(...args)
  }
  Object.assign(client, { srem: held })
  const clearing = app.cache.clear()
  await sremCalled.promise // behind the call: the walk
  Object.assign(client, { srem })
  t.equal((await app.inject('/a/2')).headers['x-cache'], 'MISS', 'a request refills the group meanwhile')
  await stored(client, E('a', '/a/2'))
  // one connection answers in order: after two more round trips the registry SADD that follows
  // the first write of a group has been sent and answered
  await client.ping()
  await client.ping()
  sremGate.resolve()
  await clearing
  await until('the walk done', async () => await client.exists('http-cache:clearing') === 0)
  t.equal(await client.sismember('http-cache:groups', 'http-cache:{a}:'), 1, 'the group written meanwhile is registered back')
  t.equal((await app.inject('/a/2')).headers['x-cache'], 'HIT', 'and what was written since the clear is not evicted by its walk')

  await app.cache.clear()
  await until('a second clear() to remove the entry written during the first, and the index', async () =>
    await client.exists(E('a', '/a/2'), I('a')) === 0)
  t.equal((await app.inject('/a/2')).headers['x-cache'], 'MISS')
  await app.close()
})

test('a write goes to Redis at the end of its loop turn, behind the lookups of that turn', async (t) => {
  const redis = await startRedis(t)
  const monitor = await redis.client().monitor()
  const seen: string[] = []
  monitor.on('monitor', (_time: string, args: string[]) => { seen.push(String(args[0]).toLowerCase()) })
  const client = redis.client()
  await client.ping()
  const keys = new KeyBuilder('order')
  const store = new RedisStore(client, keys, { timeout: CALM, log: pino({ level: 'silent' }), owned: false, maxOrigins: 100 })
  t.teardown(async () => { await store.close() })
  const base = keys.base('g')
  const key = keys.entry(base, 'http://localhost', '/written')
  const { generation } = await store.lookup(key, base)
  const value = encodeEntry({ status: 200, headers: {}, body: Buffer.from('x'), etag: '', storedAt: Date.now(), ttl: 60_000, swr: 0, sie: 0, vary: undefined })
  // MONITOR lines arrive after the commands' replies: start from a marker seen
  await client.echo('mark')
  await until('MONITOR to catch up', () => seen.includes('echo'))
  seen.length = 0
  // in one turn: a MISS's write, then another request's lookup (as onSend and onRequest interleave)
  const written = store.write(key, base, value, 60_000, generation)
  const looked = store.lookup(keys.entry(base, 'http://localhost', '/other'), base)
  t.equal(await written, true)
  await looked
  await until('MONITOR to show both commands', () => seen.includes('mget') && seen.some((c) => c.startsWith('eval')))
  t.ok(seen.indexOf('mget') < seen.findIndex((c) => c.startsWith('eval')), `the lookup first: ${seen.join(' ')}`)
  t.equal((await store.lookup(key, base)).value === null, false, 'and the write is in')
  monitor.disconnect()
})
