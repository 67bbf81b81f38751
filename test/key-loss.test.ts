import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// Redis may lose any key the store keeps: maxmemory eviction under an allkeys-* policy, a DEL by hand.
// Losing a group's generation or a clear count must not bring back what an eviction or a clear() made
// unreachable. The deletions here stand for Redis's own: its eviction deletes keys the same way.

let redis: Promise<TestRedis> | undefined
let prefixes = 0

interface Shop {
  app: FastifyInstance
  client: Redis
  prefix: string
  /** The data's version: what the handler answers now. */
  version: { v: number }
  /** GET `url`: the X-Cache header and the version answered. */
  get: (url: string) => Promise<{ cache: string, v: number }>
  /** Asks until `url` is served from the cache (entries are written behind the response). */
  cached: (url: string) => Promise<void>
}

async function shop (test: Test, namespace?: string): Promise<Shop> {
  const server = await (redis ??= startRedis(t)) // one server for the file
  const client = server.client()
  const prefix = `kl${++prefixes}`
  const app = Fastify()
  await app.register(httpCache, { redis: client, prefix, timeout: 2000 })
  const version = { v: 1 }
  app.get('/items/:id', { config: { cache: { group: 'items', ttl: 0, namespace } } }, async () => ({ v: version.v }))
  test.teardown(() => app.close())
  const get = async (url: string): Promise<{ cache: string, v: number }> => {
    const res = await app.inject(url)
    return { cache: String(res.headers['x-cache']), v: res.json().v }
  }
  const cached = async (url: string): Promise<void> => { await until(`${url} cached`, async () => (await get(url)).cache === 'HIT') }
  return { app, client, prefix, version, get, cached }
}

t.test('a generation lost after an eviction brings back none of the evicted values', async (t) => {
  const s = await shop(t)
  const urls = ['/items/1', '/items/2', '/items/3']
  for (const url of urls) await s.cached(url)
  const before = await s.client.get(`${s.prefix}:{items}:g`)
  t.ok(before, 'the generation is where the test looks')
  // the index lost first: the eviction finds nothing to reclaim, the values stay under the old epoch
  await s.client.del(`${s.prefix}:{items}:i`)
  s.version.v = 2
  await s.app.cache.evictGroup('items')
  for (const url of urls) t.equal(await s.client.exists(`${s.prefix}:{items}:e:GET:http://localhost${url}`), 1, `${url}'s old value is still stored`)
  t.same(await s.get('/items/1'), { cache: 'MISS', v: 2 })
  await s.cached('/items/1')
  // then the generation: its next miss makes it again
  await s.client.del(`${s.prefix}:{items}:g`)
  for (const url of urls) {
    t.same(await s.get(url), { cache: 'MISS', v: 2 }, `${url}: not an evicted value`)
    await s.cached(url)
    t.same(await s.get(url), { cache: 'HIT', v: 2 }, `${url}: cached again`)
  }
  const after = await s.client.get(`${s.prefix}:{items}:g`)
  t.ok(BigInt(after ?? '0') > BigInt(before ?? '0'), `the epoch made again (${String(after)}) is past the lost one (${String(before)})`)
})

for (const namespace of [undefined, 'v1']) {
  const start = (prefix: string): string => namespace === undefined ? `${prefix}:` : `${prefix}:${namespace}:`
  t.test(`a clear count lost after a clear() brings back none of the cleared values${namespace === undefined ? '' : ' (a namespace\'s count)'}`, async (t) => {
    const s = await shop(t, namespace)
    const urls = ['/items/1', '/items/2']
    for (const url of urls) await s.cached(url)
    // the groups registry lost first: the walk behind clear() does not find the group, its values stay
    await s.client.del(`${s.prefix}:groups`)
    s.version.v = 2
    await s.app.cache.clear(namespace === undefined ? {} : { namespace })
    t.same(await s.get('/items/1'), { cache: 'MISS', v: 2 })
    await s.cached('/items/1')
    await s.client.del(`${start(s.prefix)}clear`)
    t.same(await s.get('/items/2'), { cache: 'MISS', v: 2 }, 'a lost count is not read as "never cleared"')
    await s.cached('/items/2')
    t.same(await s.get('/items/1'), { cache: 'MISS', v: 2 }, 'what was written under the lost count is not answered either')
    await s.cached('/items/1')
  })

  t.test(`a clear count lost, then moved by clear() again, never matches an older one${namespace === undefined ? '' : ' (a namespace\'s count)'}`, async (t) => {
    const s = await shop(t, namespace)
    const urls = ['/items/1', '/items/2']
    const clear = async (): Promise<void> => { await s.app.cache.clear(namespace === undefined ? {} : { namespace }) }
    const count = `${start(s.prefix)}clear`
    for (const url of urls) await s.cached(url)
    const held = await s.client.get(count)
    for (let round = 1; round <= 3; round++) {
      s.version.v++
      await s.client.del(`${s.prefix}:groups`) // the walks behind the clears find nothing: every value stays
      await clear()
      await s.client.del(count)
      await clear() // makes the count again: past every value it held, not from nothing
      for (const url of urls) {
        t.same(await s.get(url), { cache: 'MISS', v: s.version.v }, `${url}, round ${round}: nothing from before the clears`)
        await s.cached(url)
      }
    }
    t.ok(BigInt(await s.client.get(count) ?? '0') > BigInt(held ?? '0'), 'the count moved past every value it held')
  })
}

t.test('a value stamped without clears (as releases before December 2026 wrote them) is not answered while the count is absent', async (t) => {
  const s = await shop(t)
  await s.cached('/items/1')
  const key = `${s.prefix}:{items}:e:GET:http://localhost/items/1`
  const raw = await s.client.getBuffer(key) as Buffer
  const slash = raw.indexOf('/')
  const space = raw.indexOf(' ')
  t.ok(slash > 0 && slash < space, 'the stamp carries the clear count')
  // the same value as the earlier releases stamped it before any clear(): no count, none in Redis
  await s.client.set(key, Buffer.concat([raw.subarray(0, slash), raw.subarray(space)]))
  await s.client.del(`${s.prefix}:clear`)
  s.version.v = 2
  t.same(await s.get('/items/1'), { cache: 'MISS', v: 2 }, 'a lost count does not read as "never cleared"')
  await s.cached('/items/1')
})
