import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { L1, parseInvalidation } from '../lib/l1.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// The L1 tier: an in-process copy of what Redis holds, coherent across instances through the
// invalidation channel. Two instances share one Redis in every test.

let prefixes = 0

async function instances (t: { teardown: (fn: () => unknown) => void }, redis: TestRedis, options: HttpCacheOptions = {}): Promise<{ a: FastifyInstance, b: FastifyInstance, prefix: string, runs: () => number }> {
  const prefix = `l1-${++prefixes}`
  let runs = 0
  const make = async (): Promise<FastifyInstance> => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(httpCache, { redis: redis.client(), prefix, l1: { maxBytes: 1024 * 1024, ttl: 60 }, ...options })
    app.get('/items/:id', { config: { cache: { group: 'items', tags: ['catalog'] } } }, async (request) => ({ id: (request.params as { id: string }).id, run: ++runs }))
    app.get('/other', { config: { cache: { group: 'other' } } }, async () => ({ run: ++runs }))
    app.post('/items/:id', { config: { cache: { evict: { self: true } } } }, async () => ({ ok: true }))
    await app.ready()
    return app
  }
  const a = await make()
  const b = await make()
  // both subscribed: an eviction published now reaches both
  await until('both subscriptions', async () => (await redis.client().pubsub('NUMSUB', `${prefix}:invalidate`))[1] === 2)
  return { a, b, prefix, runs: () => runs }
}

/** How many reads (MGET) Redis has served since the last reset. */
async function reads (client: Redis): Promise<number> {
  const info = await client.info('commandstats')
  const m = /cmdstat_mget:calls=(\d+)/.exec(info)
  return m === null ? 0 : Number(m[1])
}

t.test('HITs after the first come from the process, not from Redis', async (t) => {
  const redis = await startRedis(t)
  const { a } = await instances(t, redis)
  await a.inject('/items/1') // MISS, stored
  t.equal((await a.inject('/items/1')).headers['x-cache'], 'HIT') // read from Redis, kept in L1
  const admin = redis.client()
  await admin.config('RESETSTAT')
  for (let i = 0; i < 50; i++) {
    const res = await a.inject('/items/1')
    t.equal(res.headers['x-cache'], 'HIT')
  }
  t.equal(await reads(admin), 0, '50 HITs, no Redis read')
})

t.test('an eviction on one instance reaches the other\'s L1 within a bounded delay', async (t) => {
  const redis = await startRedis(t)
  const { a, b } = await instances(t, redis)
  for (const app of [a, b]) {
    await app.inject('/items/1')
    await app.inject('/items/1')
    await app.inject('/other')
    await app.inject('/other')
  }
  const before = await a.inject('/items/1')
  t.equal(before.headers['x-cache'], 'HIT')

  const started = process.hrtime.bigint()
  await b.cache.evictGroup('items')
  // b refills the entry at once: a must then serve b's new copy, never its old one
  const refilled = await b.inject('/items/1')
  t.equal(refilled.headers['x-cache'], 'MISS', 'the evicting instance at once')
  await until('instance a to drop its copy', async () => (await a.inject('/items/1')).json().run !== before.json().run, 2000, 1)
  t.comment(`instance a saw the eviction after ${Number(process.hrtime.bigint() - started) / 1e6} ms`)
  t.equal((await a.inject('/other')).headers['x-cache'], 'HIT', 'other groups keep their copies')
})

t.test('evictTag, evict(url), clear() and write-route evictions reach every L1', async (t) => {
  const redis = await startRedis(t)
  const { a, b } = await instances(t, redis)
  const warm = async (): Promise<void> => {
    for (const url of ['/items/1', '/items/2', '/other']) {
      await a.inject(url)
      await a.inject(url)
    }
  }
  // an eviction took effect on a once its next read is a miss there
  const stale = async (url: string): Promise<boolean> => (await a.inject(url)).headers['x-cache'] === 'HIT'

  await warm()
  await b.cache.evictTag('catalog')
  await until('tag eviction on a', async () => !(await stale('/items/2')), 2000, 1)

  await warm()
  await b.cache.evict('/items/1')
  await until('evict(url) on a', async () => !(await stale('/items/1')), 2000, 1)

  await warm()
  await b.inject({ method: 'POST', url: '/items/2' })
  await until('write route on a', async () => !(await stale('/items/2')), 2000, 1)

  await warm()
  await b.cache.clear()
  await until('clear on a', async () => !(await stale('/other')), 2000, 1)
  t.pass('every kind of eviction reached the other instance')
})

t.test('a lost subscription turns the L1 off until it is back, then starts empty', async (t) => {
  const redis = await startRedis(t)
  const { a, prefix } = await instances(t, redis)
  const admin = redis.client()
  await a.inject('/items/1')
  await a.inject('/items/1')
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  // while it reconnects, reads go to Redis: an eviction made now is seen at once
  await admin.del(`${prefix}:{items}:e:GET:http://localhost/items/1`)
  await until('the copy to stop answering', async () => (await a.inject('/items/1')).headers['x-cache'] === 'MISS', 2000, 1)
  await until('the subscription to come back', async () => (await admin.pubsub('NUMSUB', `${prefix}:invalidate`))[1] === 2)
  await a.inject('/items/1')
  await admin.config('RESETSTAT')
  await until('L1 to serve again', async () => {
    await a.inject('/items/1')
    return (await reads(admin)) < 3
  })
})

t.test('an eviction that fails still drops this instance\'s copies (no stale read of its own write)', async (t) => {
  const redis = await startRedis(t)
  const { a } = await instances(t, redis, { timeout: 200 })
  const warm = async (): Promise<void> => {
    await a.inject('/items/1')
    await a.inject('/items/1')
    t.equal((await a.inject('/items/1')).headers['x-cache'], 'HIT')
  }
  await warm()
  const pid = redis.pid() as number
  process.kill(pid, 'SIGSTOP')
  try {
    await t.rejects(a.cache.evictGroup('items'), 'Redis hung: the eviction fails')
    t.not((await a.inject('/items/1')).headers['x-cache'], 'HIT', 'the copy is gone all the same')
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  await until('Redis back', async () => (await a.inject('/items/1')).headers['x-cache'] === 'HIT', 5000)
  process.kill(pid, 'SIGSTOP')
  try {
    await t.rejects(a.cache.evictTag('catalog'))
    t.not((await a.inject('/items/1')).headers['x-cache'], 'HIT', 'a failed tag eviction drops every copy')
  } finally {
    process.kill(pid, 'SIGCONT')
  }
})

t.test('a value read from Redis is kept as a copy of its own, not as a view of the socket read it came in', async (t) => {
  const l1 = new L1(1_000_000, 60_000)
  l1.setLive(true)
  // what ioredis hands back: a reply of a batch, a view into the whole read (here 55 KB)
  const read = Buffer.alloc(55_800, 'r')
  read.write('the value', 11_171)
  const view = read.subarray(11_171, 11_171 + 1100)
  l1.fill('k', 'g', { value: view, generation: '1' }, l1.epoch)
  const kept = l1.get('k')?.value
  t.same(kept, view, 'the same bytes')
  t.equal(kept?.buffer.byteLength, 1100, 'holding 1,100 bytes, not the 55,800 of the read')
  // a Buffer that is its own memory is kept as it is (no copy)
  const alone = Buffer.allocUnsafeSlow(3000).fill('w')
  l1.fill('w', 'g', { value: alone, generation: '1' }, l1.epoch)
  t.equal(l1.get('w')?.value, alone)
})

t.test('L1 copies are bounded by ttl and size', async (t) => {
  const l1 = new L1(2000, 60_000)
  l1.setLive(true)
  const value = Buffer.alloc(500)
  for (let i = 0; i < 10; i++) l1.fill(`k${i}`, 'g', { value, generation: '0' }, l1.epoch)
  t.ok(l1.size <= 4, `at most 2000 bytes kept (${l1.size} entries)`)
  t.ok(l1.get('k9') !== undefined, 'the newest kept')
  t.equal(l1.get('k0'), undefined, 'the oldest dropped')
  const before = l1.epoch
  l1.apply({ group: 'g' })
  t.equal(l1.size, 0, 'a group eviction drops its keys')
  l1.fill('k1', 'h', { value, generation: '0' }, l1.epoch)
  l1.apply({ all: true })
  t.equal(l1.size, 0, 'and everything goes when the groups are unknown')
  l1.fill('late', 'g', { value, generation: '0' }, before)
  t.equal(l1.get('late'), undefined, 'a read that began before an invalidation does not fill')
  l1.fill('k', 'g', { value: null, generation: '0' }, l1.epoch)
  t.equal(l1.get('k'), undefined, 'absent values are not kept')
  l1.setLive(false)
  l1.fill('k', 'g', { value, generation: '0' }, l1.epoch)
  t.equal(l1.get('k'), undefined, 'nothing kept or served while off')

  const short = new L1(10_000, 20)
  short.setLive(true)
  short.fill('k', 'g', { value, generation: '0' }, short.epoch)
  await until('the copy to expire', () => short.get('k') === undefined, 2000)

  t.same(parseInvalidation('gprefix:{g}:'), { group: 'prefix:{g}:' })
  t.same(parseInvalidation('kkey'), { key: 'key' })
  t.same(parseInvalidation('cprefix:ns:'), { all: true }, 'a clear() drops the whole tier')
  t.equal(parseInvalidation('x'), undefined)
  t.equal(parseInvalidation('zzz'), undefined)
})

t.test('l1 is ignored on the memory store, and checked at registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache, { l1: { maxBytes: 1000 } })
  app.get('/x', { config: { cache: true } }, async () => 'x')
  await app.inject('/x')
  t.equal((await app.inject('/x')).headers['x-cache'], 'HIT')
  for (const bad of [null, 'big', { maxBytes: 0 }, { ttl: 0 }, { ttl: 1.5 }, { size: 1 }]) {
    const other = Fastify()
    t.teardown(() => other.close())
    await t.rejects(async () => { await other.register(httpCache, { l1: bad as never }).ready() }, TypeError, `rejects ${JSON.stringify(bad)}`)
  }
})
