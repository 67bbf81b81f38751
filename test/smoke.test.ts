import { test } from 'tap'
import Fastify from 'fastify'
import httpCache from '../index.js'
import { startRedis } from './helpers/redis.js'

test('smoke', async (t) => {
  const redis = await startRedis(t)
  const app = Fastify()
  await app.register(httpCache, { redis: redis.client() })
  let n = 0
  app.get('/x', { config: { cache: true } }, async () => ({ n: ++n }))
  t.equal((await app.inject('/x')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/x')).headers['x-cache'], 'HIT')
  t.equal(n, 1)
  await app.close()
})
