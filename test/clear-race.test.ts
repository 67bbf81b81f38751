import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Cluster } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { backends, type Backend } from './helpers/app.js'
import { startCluster } from './helpers/cluster.js'
import { startFaultProxy } from './helpers/fault-proxy.js'
import { gate } from './helpers/gate.js'
import { startRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// clear() racing a miss: a group's first miss may be in flight (its answer being computed, or its write
// on the wire after the response left) while clear() runs. A clear() must either find the group or make
// that write refuse; otherwise an entry from before the clear stays (regression: issue 12).

type Make = (options?: HttpCacheOptions) => Promise<FastifyInstance>

function raceTests (t: Test, make: Make): void {
  for (const [what, namespace, clear] of [
    ['clear()', undefined, {}],
    ['clear({ namespace })', 'v2', { namespace: 'v2' }]
  ] as const) {
    t.test(`${what} while a group's first miss computes its answer: that answer is not stored`, async (t) => {
      const app = await make({ namespace: 'shop' })
      let value = 'old'
      const g = gate()
      app.get('/race', { config: { cache: { group: 'race', ttl: 0, namespace } } }, async () => {
        const seen = value
        await g.pauseFirst()
        return { value: seen }
      })
      const slow = app.inject('/race') // misses, reads 'old', then waits
      await g.entered
      value = 'new'
      await app.cache.clear(clear)
      g.release()
      t.same((await slow).json(), { value: 'old' }, 'the slow request still gets its answer')
      const next = await app.inject('/race')
      t.equal(next.headers['x-cache'], 'MISS', 'its answer from before the clear was not stored')
      t.same(next.json(), { value: 'new' })
      t.equal((await app.inject('/race')).headers['x-cache'], 'HIT', 'the group caches again')
    })
  }

  t.test('a clear() of another namespace leaves the race alone', async (t) => {
    const app = await make({ namespace: 'shop' })
    app.get('/v1', { config: { cache: { group: 'race', namespace: 'v1' } } }, async () => 'v1')
    t.equal((await app.inject('/v1')).headers['x-cache'], 'MISS')
    await untilHit(app, '/v1')
    t.equal(await app.cache.clear({ namespace: 'v2' }), 0)
    t.equal((await app.inject('/v1')).headers['x-cache'], 'HIT')
    await app.cache.clear({ namespace: 'v1' })
    t.equal((await app.inject('/v1')).headers['x-cache'], 'MISS')
  })
}

/** Entries are written behind the response: asks until one is served (bounded by until's own limit). */
async function untilHit (app: FastifyInstance, url: string): Promise<void> {
  await until(`${url} cached`, async () => (await app.inject(url)).headers['x-cache'] === 'HIT')
}

for (const backend of backends(t) as Backend[]) {
  t.test(backend.name, async (t) => {
    raceTests(t, async (options = {}) => {
      const app = Fastify()
      await app.register(httpCache, { ...(await backend.options(t)), ...options })
      t.teardown(() => app.close())
      return app
    })
  })
}

t.test('Redis: clear() right after a MISS response was sent, its write still on the wire', async (t) => {
  const redis = await startRedis(t)
  const proxy = await startFaultProxy(t, redis)
  const prefix = 'wire'
  // the reader talks to Redis through a proxy that can hold its bytes; the clearing instance directly
  const reader = Fastify()
  await reader.register(httpCache, { redis: `redis://${proxy.host}:${proxy.port}`, prefix, timeout: 5000 })
  t.teardown(() => reader.close())
  const other = Fastify()
  await other.register(httpCache, { redis: redis.client(), prefix })
  t.teardown(() => other.close())
  let value = 'old'
  const g = gate()
  reader.get('/race', { config: { cache: { group: 'race', ttl: 0 } } }, async () => {
    const seen = value
    await g.pauseFirst()
    return { value: seen }
  })
  await reader.ready()

  const slow = reader.inject('/race')
  await g.entered // the lookup is done; what the miss writes next stays on the wire
  proxy.pause()
  g.release()
  const res = await slow
  t.equal(res.headers['x-cache'], 'MISS')
  t.same(res.json(), { value: 'old' }, 'the response left before its entry was written')
  value = 'new'
  await other.cache.clear()
  proxy.resume()
  // the reader's next lookup travels behind the held write on the same connection
  const next = await reader.inject('/race')
  t.equal(next.headers['x-cache'], 'MISS', 'the write that was in flight during clear() did not land')
  t.same(next.json(), { value: 'new' })
  await untilHit(reader, '/race')
})

t.test('Cluster', async (t) => {
  const cluster = await startCluster(t, { masters: 3, replicasPerMaster: 0 })
  const client: Cluster = cluster.client()
  let prefixes = 0
  raceTests(t, async (options = {}) => {
    const app = Fastify()
    await app.register(httpCache, { redis: client, prefix: `cr${++prefixes}`, timeout: 2000, ...options })
    t.teardown(() => app.close())
    return app
  })
})
