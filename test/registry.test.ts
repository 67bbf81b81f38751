// The tag registries in Redis: found by evictTag, and never left behind for good.
import { test } from 'tap'
import Fastify from 'fastify'
import httpCache from '../index.js'
import { startRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

test('a tag registry lives as long as the tag sets it points to, and no longer', async (t) => {
  const redis = await startRedis(t)
  const r = redis.client()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache, { redis: redis.client(), timeout: 2000 })
  let fail = false
  app.get('/short/:id', { config: { cache: { ttl: 5, tags: (req: any) => [`s:${req.params.id}`] } } }, async (req, reply) => {
    if (fail) return await reply.code(500).send()
    return 'short'
  })
  app.get('/forever', { config: { cache: { ttl: 0, tags: ['f'] } } }, async () => 'forever')
  app.get('/long', { config: { cache: { ttl: 3600, tags: ['mixed'] } } }, async () => 'long')
  app.get('/brief', { config: { cache: { ttl: 2, tags: ['mixed'] } } }, async () => 'brief')

  await app.inject('/short/1')
  await r.ping() // the plugin's writes went out on its own connection; let them land
  await until('redis', async () => (await r.exists('http-cache:{default}:t:s:1')) === 1)
  const tagSet = await r.pttl('http-cache:{default}:t:s:1')
  t.ok(tagSet > 0 && tagSet <= 5000, `the tag set expires with its entry (${tagSet} ms)`)
  const registry = await r.pttl('http-cache:tag:{s:1}')
  t.ok(registry > 0 && registry <= 10 * 60 * 1000, `the registry expires too (${registry} ms)`)
  t.same(await r.smembers('http-cache:tag:{s:1}'), ['http-cache:{default}:'])

  fail = true
  await app.inject('/short/2')
  const orphan = await r.pttl('http-cache:tag:{s:2}')
  t.ok(orphan > 0 && orphan <= 10 * 60 * 1000, `a registration whose response was not stored expires (${orphan} ms)`)

  await app.inject('/forever')
  await until('redis', async () => (await r.exists('http-cache:{default}:t:f')) === 1)
  await until('redis', async () => (await r.pttl('http-cache:tag:{f}')) === -1)
  t.equal(await r.pttl('http-cache:{default}:t:f'), -1, 'a ttl-0 entry keeps its tag set')
  t.equal(await r.pttl('http-cache:tag:{f}'), -1, 'and the registry')

  await app.inject('/long')
  await app.inject('/brief')
  await until('redis', async () => (await r.exists('http-cache:{default}:e:GET:http://localhost/brief')) === 1)
  await r.ping()
  const mixed = await r.pttl('http-cache:tag:{mixed}')
  t.ok(mixed > 3000 * 1000, `a shorter entry does not shorten the registry (${mixed} ms)`)

  t.equal(await app.cache.evictTag('mixed'), 2)
  t.equal(await app.cache.evictTag('f'), 1)
})
