import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { EVICT_GROUP } from '../lib/stores/scripts.js'
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
  await r.eval(EVICT_GROUP, 4, base + 'i', base + 'g', base + 'o', base + 'R', `${prefix}:invalidate`, base, '')
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

t.test('evictTag over more keys than one reclaim script takes: all gone when it resolves, the rest stays', async (t) => {
  const { app, prefix } = await make(t)
  for (let i = 0; i < 600; i += 200) {
    await Promise.all(Array.from({ length: 200 }, async (_, j) => await app.cache.set(`t${i + j}`, i + j, { group: 'mixed', tags: ['hot'] })))
  }
  await app.cache.set('plain', 'stays', { group: 'mixed' })
  t.equal(await app.cache.evictTag('hot'), 600)
  t.same(await keys(`${prefix}:{mixed}:v:*`), [`${prefix}:{mixed}:v:plain`], 'no tagged key left when the call resolves')
  t.same(await r.smembers(`${prefix}:{mixed}:i`), [`${prefix}:{mixed}:v:plain`], 'and none in the index')
  t.equal(await app.cache.get('plain', { group: 'mixed' }), 'stays')
  t.equal(await r.exists(`${prefix}:{mixed}:R`), 0, 'nothing left queued')
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
