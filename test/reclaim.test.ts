import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { EVICT_GROUP, EVICT_TAG } from '../lib/stores/scripts.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// Evictions on Redis make a group's keys unreachable in O(1) and reclaim them behind (lib/stores/scripts.ts):
// what is evicted is never served again, and what is left to reclaim is finished by someone.

let server: TestRedis
let r: Redis
let prefixes = 0

t.before(async () => {
  server = await startRedis(t)
  r = server.client()
})

async function make (t: Test, options: HttpCacheOptions = {}): Promise<{ app: FastifyInstance, prefix: string }> {
  const prefix = options.prefix ?? `rc${++prefixes}`
  const app = Fastify()
  await app.register(httpCache, { redis: server.client(), timeout: 5000, ...options, prefix })
  t.teardown(() => app.close())
  return { app, prefix }
}

async function keys (pattern: string): Promise<string[]> {
  return (await r.keys(pattern)).sort()
}

/** Runs the store's eviction script as an instance that dies right after it would: nobody reclaims. */
async function evictAndDie (prefix: string, group: string): Promise<void> {
  const base = `${prefix}:{${group}}:`
  await r.eval(EVICT_GROUP, 5, base + 'i', base + 'g', base + 'o', base + 'R', base + 'f', `${prefix}:invalidate`, base, '')
}

/** Runs the store's tag eviction script for one group as an instance that dies right after it would. */
async function evictTagAndDie (prefix: string, group: string, tag: string): Promise<number> {
  const base = `${prefix}:{${group}}:`
  return await r.eval(EVICT_TAG, 4, base + 't:' + tag, base + 'g', base + 'R', base + 'f', `${prefix}:invalidate`, base, tag) as number
}

async function fillValues (app: FastifyInstance, group: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, n - i) }, async (_, j) => await app.cache.set(`k${i + j}`, i + j, { group })))
  }
}

t.test('a value stamped with a generation from before the eviction is never served, even written back after it', async (t) => {
  const { app, prefix } = await make(t)
  let calls = 0
  app.get('/p', { config: { cache: { group: 'g', ttl: 0 } } }, async () => ({ calls: ++calls }))
  t.equal((await app.inject('/p')).headers['x-cache'], 'MISS')
  const key = `${prefix}:{g}:e:GET:http://localhost/p`
  await until('stored', async () => (await r.exists(key)) === 1)
  const old = await r.getBuffer(key) as Buffer
  t.equal((await app.inject('/p')).headers['x-cache'], 'HIT')

  t.equal(await app.cache.evictGroup('g'), 1)
  await until('reclaimed', async () => (await r.exists(key, `${prefix}:{g}:R`)) === 0)
  // what a key not reclaimed yet holds, or what a writer that skipped the generation check would write
  await r.set(key, old)
  const res = await app.inject('/p')
  t.equal(res.headers['x-cache'], 'MISS', 'the old value is unreachable')
  t.same(res.json(), { calls: 2 }, 'the handler answered')
  await until('replaced', async () => !(await r.getBuffer(key) as Buffer).equals(old))
  t.equal((await app.inject('/p')).headers['x-cache'], 'HIT', 'the new entry is served')
  t.equal(await app.cache.get('missing', { group: 'g' }), undefined)
})

t.test('keys written after an eviction survive its reclaim; the evicted ones are gone', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'big', 1500)
  t.equal(await app.cache.evictGroup('big'), 1500)
  t.equal(await app.cache.get('k1', { group: 'big' }), undefined, 'unreachable at once')
  await app.cache.set('k2', 'new', { group: 'big' })
  await until('reclaimed', async () => (await r.llen(`${prefix}:{big}:R`)) === 0)
  t.same(await keys(`${prefix}:{big}:v:*`), [`${prefix}:{big}:v:k2`], 'only the value written since is left')
  t.equal(await app.cache.get('k2', { group: 'big' }), 'new')
  t.same(await r.smembers(`${prefix}:{big}:i`), [`${prefix}:{big}:v:k2`])
  await until('unqueued', async () => (await r.exists(`${prefix}:reclaim`)) === 0)
})

t.test('a reclaim an instance left unfinished is resumed by another instance when it starts', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'orphan', 300)
  await evictAndDie(prefix, 'orphan')
  await r.sadd(`${prefix}:reclaim`, `${prefix}:{orphan}:`)
  t.equal(await app.cache.get('k1', { group: 'orphan' }), undefined, 'unreachable at once')
  t.equal((await keys(`${prefix}:{orphan}:v:*`)).length, 300, 'nobody reclaimed them (the evicting instance died)')
  await make(t, { prefix }) // another instance starts
  await until('resumed', async () => (await keys(`${prefix}:{orphan}:*`)).join() === `${prefix}:{orphan}:g`)
  t.pass('every key reclaimed by the instance that started')
})

t.test('a reclaim left unfinished is resumed by the group\'s next eviction', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'again', 200)
  await evictAndDie(prefix, 'again') // not recorded in <prefix>:reclaim either
  await app.cache.set('late', 1, { group: 'again' })
  t.equal((await keys(`${prefix}:{again}:v:*`)).length, 201)
  t.equal(await app.cache.evictGroup('again'), 1)
  await until('both reclaimed', async () => (await keys(`${prefix}:{again}:*`)).join() === `${prefix}:{again}:g`)
  t.pass('the earlier eviction\'s keys went with the later one\'s')
})

t.test('evictTag over more keys than one reclaim script takes: unreachable when it resolves, reclaimed behind it, the rest stays', async (t) => {
  const { app, prefix } = await make(t)
  for (let i = 0; i < 600; i += 200) {
    await Promise.all(Array.from({ length: 200 }, async (_, j) => await app.cache.set(`t${i + j}`, i + j, { group: 'mixed', tags: ['hot'] })))
  }
  await app.cache.set('plain', 'stays', { group: 'mixed' })
  t.equal(await app.cache.evictTag('hot'), 600)
  t.equal(await app.cache.get('t1', { group: 'mixed' }), undefined, 'unreachable at once')
  t.equal(await app.cache.get('plain', { group: 'mixed' }), 'stays')
  await until('reclaimed', async () => (await r.exists(`${prefix}:{mixed}:R`, `${prefix}:{mixed}:f`)) === 0)
  t.same(await keys(`${prefix}:{mixed}:v:*`), [`${prefix}:{mixed}:v:plain`], 'no tagged key left once reclaimed')
  t.same(await r.smembers(`${prefix}:{mixed}:i`), [`${prefix}:{mixed}:v:plain`], 'and none in the index')
  t.equal(await app.cache.get('plain', { group: 'mixed' }), 'stays')
  await until('unqueued', async () => (await r.exists(`${prefix}:reclaim`)) === 0)
})

t.test('a tag eviction fences the tag\'s values at once, before any reclaim: the rest of the group and what is written since are served', async (t) => {
  const { app, prefix } = await make(t, { admin: { insecure: true } })
  const group = 'fenced'
  await app.cache.set('a', 'a1', { group, tags: ['hot'] })
  await app.cache.set('b', 'b1', { group, tags: ['cold', 'hot'] })
  await app.cache.set('c', 'c1', { group, tags: ['hotter', 'ho'] })
  await app.cache.set('d', 'd1', { group })
  t.equal(await evictTagAndDie(prefix, group, 'hot'), 2)
  const value = (name: string): string => `${prefix}:{${group}}:v:${name}`
  t.equal(await r.exists(value('a'), value('b')), 2, 'nobody reclaimed them (the evicting instance died)')
  t.equal(await app.cache.get('a', { group }), undefined, 'a value carrying the tag is unreachable')
  t.equal(await app.cache.get('b', { group }), undefined, 'among other tags too')
  t.equal(await app.cache.get('c', { group }), 'c1', 'tags that only share a prefix with it are not fenced')
  t.equal(await app.cache.get('d', { group }), 'd1', 'untagged values are not fenced')
  const listed = await app.inject(`/_cache/groups/${group}/entries`)
  t.same(listed.json().entries.map((e: { key: string }) => e.key).sort(), [value('c'), value('d')], 'the admin listing skips fenced values')

  await app.cache.set('a', 'a2', { group, tags: ['hot'] })
  t.equal(await app.cache.get('a', { group }), 'a2', 'a value written since the eviction is served')
  t.equal(await evictTagAndDie(prefix, group, 'cold'), 1)
  t.match(await r.get(`${prefix}:{${group}}:f`), /^;\d+\.\d+,hot;\d+\.\d+,cold$/, 'the fence holds both evictions')
  t.equal(await app.cache.get('a', { group }), 'a2', 'another tag\'s eviction does not fence it')

  await r.sadd(`${prefix}:reclaim`, `${prefix}:{${group}}:`)
  await make(t, { prefix }) // another instance starts and resumes the reclaims
  await until('reclaimed', async () => (await r.exists(`${prefix}:{${group}}:R`, `${prefix}:{${group}}:f`)) === 0)
  t.same(await keys(`${prefix}:{${group}}:v:*`), [value('a'), value('c'), value('d')], 'the fenced keys are gone, the one written since stays')
  t.equal(await app.cache.get('a', { group }), 'a2')
})

t.test('a fence lives as long as the tag set it fenced, and goes with the group\'s next eviction', async (t) => {
  const { app, prefix } = await make(t)
  const fence = `${prefix}:{short}:f`
  await app.cache.set('x', 1, { group: 'short', tags: ['t'], ttl: 100 })
  await app.cache.set('y', 1, { group: 'short', tags: ['t'], ttl: 50 })
  await evictTagAndDie(prefix, 'short', 't')
  const ttl = await r.pttl(fence)
  t.ok(ttl > 90_000 && ttl <= 100_000, `as long as the longest value carrying the tag (${ttl} ms)`)
  await app.cache.set('z', 1, { group: 'short', tags: ['u'], ttl: 0 })
  await evictTagAndDie(prefix, 'short', 'u')
  t.equal(await r.pttl(fence), -1, 'for good once it fences a value kept for good')
  t.equal(await app.cache.evictGroup('short'), 0, 'the keys the tag evictions took are not counted again')
  t.equal(await r.exists(fence), 0, 'the new epoch makes it moot')
})

t.test('evict(url) under more origins than one script takes', async (t) => {
  const { app, prefix } = await make(t, { maxOrigins: 1000 })
  let calls = 0
  app.get('/u', { config: { cache: { group: 'hosts' } } }, async () => ({ calls: ++calls }))
  const hosts = Array.from({ length: 450 }, (_, i) => `h${i}.test`)
  for (const host of hosts) await app.inject({ url: '/u', headers: { host } })
  await until('stored', async () => (await keys(`${prefix}:{hosts}:e:*`)).length === hosts.length)
  t.equal(await r.scard(`${prefix}:{hosts}:o`), hosts.length)
  t.equal(await app.cache.evict('/u'), true)
  t.same(await keys(`${prefix}:{hosts}:e:*`), [], 'the URL is gone under every origin')
  t.equal((await app.inject({ url: '/u', headers: { host: 'h7.test' } })).headers['x-cache'], 'MISS')
})
