import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { CLEAR } from '../lib/stores/scripts.js'
import { deferred } from './helpers/gate.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// clear() on Redis moves a clear count, O(1) whatever the groups (CLEAR in lib/stores/scripts.ts): what
// it cleared is unreachable when it resolves, and a walk behind it, recorded in Redis, reclaims the keys
// without taking what was written since.

let server: TestRedis
let r: Redis
let prefixes = 0

t.before(async () => {
  server = await startRedis(t)
  r = server.client()
})

async function make (t: Test, options: HttpCacheOptions = {}): Promise<{ app: FastifyInstance, prefix: string }> {
  const prefix = options.prefix ?? `cl${++prefixes}`
  const app = Fastify()
  await app.register(httpCache, { redis: server.client(), timeout: 5000, ...options, prefix })
  t.teardown(() => app.close())
  return { app, prefix }
}

/** Runs the store's clear script as an instance that dies right after it would: nobody walks. */
async function clearAndDie (prefix: string, start = `${prefix}:`): Promise<void> {
  await r.eval(CLEAR, 2, `${start}clear`, `${prefix}:clearing`, start, 'gone', `${prefix}:invalidate`)
}

async function fillValues (app: FastifyInstance, group: string, n: number, namespace?: string): Promise<void> {
  await Promise.all(Array.from({ length: n }, async (_, i) => await app.cache.set(`k${i}`, i, { group, namespace })))
}

t.test('clear() makes everything unreachable at once; the walk an instance left is resumed by the next one, and keeps what was written since', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'big', 120)
  await fillValues(app, 'small', 3)
  const value = (group: string, name: string): string => `${prefix}:{${group}}:v:${name}`
  await until('the groups registered', async () => await r.scard(`${prefix}:groups`) === 2)

  await clearAndDie(prefix)
  t.equal(await app.cache.get('k1', { group: 'big' }), undefined, 'unreachable at once')
  t.equal(await app.cache.get('k1', { group: 'small' }), undefined)
  t.equal(await r.exists(value('big', 'k1'), value('small', 'k1')), 2, 'nothing reclaimed yet')
  t.equal(await r.hget(`${prefix}:clearing`, `${prefix}:`), 'gone 0', 'the walk is recorded')
  await app.cache.set('k1', 'new', { group: 'big' })

  const { app: next } = await make(t, { prefix })
  await next.ready()
  await until('the walk and the reclaims done', async () => await r.exists(`${prefix}:clearing`, `${prefix}:{big}:R`, `${prefix}:{small}:R`) === 0)
  t.equal(await r.exists(value('big', 'k2'), value('small', 'k1')), 0, 'the cleared keys are reclaimed')
  t.equal(await next.cache.get('k1', { group: 'big' }), 'new', 'the value written since stays')
  t.same(await r.smembers(`${prefix}:{big}:i`), [value('big', 'k1')], 'indexed again, alone')
  t.equal(await next.cache.evictGroup('big'), 1, 'so its group\'s next eviction finds it')
  t.equal(await app.cache.get('k1', { group: 'big' }), undefined)
})

t.test('clear({ namespace }) walks its own groups and the ones below it only', async (t) => {
  const { app, prefix } = await make(t)
  for (const namespace of ['v1', 'v1:beta', 'v10', undefined]) await fillValues(app, 'g', 60, namespace)
  const key = (ns: string): string => `${prefix}:${ns}{g}:v:k7`
  await until('the groups registered', async () => await r.scard(`${prefix}:groups`) === 4)
  t.equal(await app.cache.clear({ namespace: 'v1' }), 0, 'counts nothing on the call')
  await until('reclaimed', async () => await r.exists(key('v1:'), key('v1:beta:')) === 0)
  await until('the walk done', async () => await r.exists(`${prefix}:clearing`) === 0)
  t.equal(await r.exists(key('v10:'), key('')), 2, 'the other groups keep their keys')
  t.equal(await app.cache.get('k7', { group: 'g', namespace: 'v10' }), 7)
  t.equal(await app.cache.get('k7', { group: 'g' }), 7)
  t.equal(await app.cache.get('k7', { group: 'g', namespace: 'v1:beta' }), undefined)
})

t.test('a clear() during the walk of an earlier one starts it over: what was written between them is reclaimed too', async (t) => {
  const client = server.client()
  const { app, prefix } = await make(t, { redis: client })
  await fillValues(app, 'g', 60)
  await until('the group registered', async () => await r.scard(`${prefix}:groups`) === 1)
  // hold the first walk once it has been through the groups, before it records that
  const reached = deferred()
  const go = deferred()
  const c = client as unknown as { httpCacheAdvance: (...args: unknown[]) => Promise<number> }
  const advance = c.httpCacheAdvance.bind(client)
  c.httpCacheAdvance = async (...args: unknown[]) => {
    c.httpCacheAdvance = advance
    reached.resolve()
    await go.promise
    return await advance(...args)
  }
  await app.cache.clear()
  await reached.promise
  await app.cache.set('between', 1, { group: 'g' }) // after the walk took the group's keys
  t.equal(await app.cache.get('between', { group: 'g' }), 1)
  await app.cache.clear()
  t.equal(await app.cache.get('between', { group: 'g' }), undefined, 'unreachable at once')
  go.resolve()
  await until('reclaimed by the walk started over', async () => await r.exists(`${prefix}:{g}:v:between`, `${prefix}:{g}:v:k1`) === 0)
  await until('the walk done', async () => await r.exists(`${prefix}:clearing`) === 0)
})

t.test('a clear count that is not a number: nothing stored under it, nothing served, no error', async (t) => {
  const { app, prefix } = await make(t)
  let calls = 0
  app.get('/p', { config: { cache: { group: 'g' } } }, async () => ({ calls: ++calls }))
  await r.set(`${prefix}:clear`, 'garbage')
  for (let i = 1; i <= 3; i++) {
    const res = await app.inject('/p')
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-cache'], 'MISS')
    t.same(res.json(), { calls: i })
  }
  await app.cache.set('v', 1)
  t.equal(await app.cache.get('v'), undefined)
  await r.del(`${prefix}:clear`)
  await app.inject('/p')
  await until('cached again once the count is gone', async () => (await app.inject('/p')).headers['x-cache'] === 'HIT')
})
