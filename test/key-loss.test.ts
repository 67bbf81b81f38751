import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import { DELETE_URL, EVICT_TAG } from '../lib/stores/scripts.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// Redis may lose any key the store keeps: maxmemory eviction under an allkeys-* policy, a DEL by hand.
// Losing a group's generation or a clear count must not bring back what an eviction or a clear() made
// unreachable. The first tests delete keys in a chosen order (Redis's eviction deletes them the same
// way); the last ones let Redis evict on its own, and check the warning the store logs when it may.

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
  const before = (await s.client.get(`${s.prefix}:{items}:g`))?.split(';')[0]
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
  const after = (await s.client.get(`${s.prefix}:{items}:g`))?.split(';')[0]
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

  t.test(`a clear count lost, then made again, never matches an older one${namespace === undefined ? '' : ' (a namespace\'s count)'}`, async (t) => {
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
      await clear() // leaves it absent: the next miss makes it again, past every value it held
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

// A tag eviction, or an evict(url) over many origins, fences what it evicts in O(1) and reclaims it behind
// (FENCE in lib/stores/scripts.ts). The fence is kept in the generation's own key, and its entry is
// dropped only by a reclaim that proves it removed everything: losing the keys that drive the reclaim
// (the tag's set, the job) or any key with a ttl must not bring back what the eviction fenced.

interface Catalogue {
  app: FastifyInstance
  client: Redis
  prefix: string
  version: { v: number }
  get: (url: string, host?: string) => Promise<{ cache: string, v: number }>
  cached: (url: string, host?: string) => Promise<void>
  /** Whether the value a response of `url` was stored under is still in Redis. */
  stored: (url: string, host?: string) => Promise<boolean>
}

async function catalogue (test: Test): Promise<Catalogue> {
  const client = (await (redis ??= startRedis(t))).client()
  const prefix = `kl${++prefixes}`
  const app = await started(test, client, prefix)
  const version = { v: 1 }
  app.get('/items/:id', { config: { cache: { group: 'items', ttl: 60_000, tags: () => ['all'] } } }, async () => ({ v: version.v }))
  const get = async (url: string, host = 'localhost'): Promise<{ cache: string, v: number }> => {
    const res = await app.inject({ url, headers: { host } })
    return { cache: String(res.headers['x-cache']), v: res.json().v }
  }
  const cached = async (url: string, host?: string): Promise<void> => { await until(`${url} cached`, async () => (await get(url, host)).cache === 'HIT') }
  const stored = async (url: string, host = 'localhost'): Promise<boolean> => (await client.exists(`${prefix}:{items}:e:GET:http://${host}${url}`)) === 1
  return { app, client, prefix, version, get, cached, stored }
}

async function started (test: Test, client: Redis, prefix: string): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(httpCache, { redis: client, prefix, timeout: 2000, maxOrigins: 1000 })
  test.teardown(() => app.close())
  return app
}

/** Starts another instance, which resumes the reclaims left undone, and waits until they are. */
async function resumed (test: Test, c: Catalogue): Promise<void> {
  const server = await (redis ??= startRedis(t))
  await c.client.sadd(`${c.prefix}:reclaim`, `${c.prefix}:{items}:`)
  const app = await started(test, server.client(), c.prefix)
  await app.ready()
  await until('reclaims done', async () => (await c.client.exists(`${c.prefix}:{items}:R`)) === 0)
}

/** Deletes the group's keys as Redis's eviction would: `which` of its keys that are not values. */
async function lose (c: Catalogue, which: (key: string, ttl: number) => boolean): Promise<string[]> {
  const lost: string[] = []
  for (const key of await c.client.keys(`${c.prefix}:{items}:*`)) {
    if (key.includes(':e:GET:')) continue
    if (which(key, await c.client.pttl(key))) lost.push(key)
  }
  if (lost.length > 0) await c.client.del(...lost)
  return lost.sort()
}

t.test('a tag eviction whose reclaim set, index and every key with a ttl Redis lost: what it fenced is never answered, before or after the reclaim', async (t) => {
  const c = await catalogue(t)
  const urls = ['/items/1', '/items/2', '/items/3', '/items/4']
  for (const url of urls) await c.cached(url)
  const base = `${c.prefix}:{items}:`
  // the evicting instance fences the tag and dies before reclaiming (as in test/reclaim.test.ts)
  c.version.v = 2
  await c.client.eval(EVICT_TAG, 5, base + 't:all', base + 'g', base + 'R', base + 'i', base + 'o', `${c.prefix}:invalidate`, base, 'all')
  // everything with a ttl (what a volatile-* policy may evict), and the reclaim set
  const lost = await lose(c, (key, ttl) => ttl > 0 || key.includes(':r:'))
  t.ok(lost.includes(base + 'i') && lost.some((k) => k.includes(':r:')), `lost: ${lost.join(', ')}`)
  for (const url of urls) t.ok(await c.stored(url), `${url}'s fenced value is still stored`)
  t.same(await c.get('/items/1'), { cache: 'MISS', v: 2 }, 'not answered: the fence went with nothing')
  await c.cached('/items/1')
  await resumed(t, c)
  t.ok(await c.stored('/items/2'), 'the reclaim could not find it: still stored')
  for (const url of urls.slice(1)) t.same(await c.get(url), { cache: 'MISS', v: 2 }, `${url}: the reclaim of a lost set leaves its fence entry`)
  t.same(await c.get('/items/1'), { cache: 'HIT', v: 2 }, 'what was written since is answered')
})

t.test('an evict(url) whose sweep Redis lost: the origins it fenced are never answered, before or after the sweep', async (t) => {
  const c = await catalogue(t)
  const hosts = Array.from({ length: 140 }, (_, i) => `h${i}.test`)
  for (const host of hosts) await c.get('/items/1', host)
  await until('stored', async () => (await c.client.keys(`${c.prefix}:{items}:e:*`)).length === hosts.length)
  const base = `${c.prefix}:{items}:`
  c.version.v = 2
  // past its first origins, with no time budget: the rest fenced, left to a sweep nobody runs
  const [, fenced] = await c.client.eval(DELETE_URL, 4, base + 'o', base + 'i', base + 'g', base + 'R', `${c.prefix}:invalidate`, base, base + 'e:GET:',
    '/items/1', '', 0) as [number, number]
  t.ok(fenced > 0, 'origins fenced')
  const left = []
  for (const host of hosts) if (await c.stored('/items/1', host)) left.push(host)
  t.ok(left.length > 2, `${left.length} values left to the sweep`)
  t.same(await lose(c, (key) => key.includes(':u:')), [await c.client.lrange(base + 'R', 0, -1).then((jobs) => jobs[0])], 'the job lost')
  t.same(await c.get('/items/1', left[0]), { cache: 'MISS', v: 2 }, 'not answered before the sweep')
  await resumed(t, c)
  t.ok(await c.stored('/items/1', left[1]), 'nothing swept it: still stored')
  for (const host of left.slice(1)) {
    if ((await c.get('/items/1', host)).cache !== 'MISS') t.fail(`answered under ${host}`)
  }
  t.pass('none of them answered after the sweep of a lost job')
})

/** The origins' anchor at the head of the group's fence (see ORIGINS in lib/stores/scripts.ts): k and U. */
async function anchor (c: Catalogue): Promise<{ k: number, u: number } | undefined> {
  const m = /;@(\d+):(\d*)/.exec(await c.client.get(`${c.prefix}:{items}:g`) ?? '')
  return m === null ? undefined : { k: Number(m[1]), u: m[2] === '' ? Infinity : Number(m[2]) }
}

t.test('an evict(url) in a group whose origins Redis lost, or lost and made again in part: the group goes whole; one origin written again is all there was', async (t) => {
  const c = await catalogue(t)
  const cache = async (): Promise<void> => {
    for (const [url, host] of [['/items/1', 'a.test'], ['/items/1', 'b.test'], ['/items/2', 'a.test']]) await c.cached(url, host)
  }
  await cache()
  t.equal((await anchor(c))?.k, 2, 'the anchor counts the two origins')
  c.version.v = 2
  t.same(await lose(c, (key) => key.endsWith(':o')), [`${c.prefix}:{items}:o`])
  t.equal(await c.app.cache.evict('/items/1'), true)
  t.same(await c.get('/items/1', 'b.test'), { cache: 'MISS', v: 2 }, 'the URL: no origin left to find it under, the group went')
  t.same(await c.get('/items/2', 'a.test'), { cache: 'MISS', v: 2 }, 'and every other value of the group with it')

  // made again in part: a write under one of the two origins makes the set again, with that one only
  await cache()
  t.same(await lose(c, (key) => key.endsWith(':o')), [`${c.prefix}:{items}:o`])
  // in a later second of Redis's clock, so that the write rewrites the anchor (its U moves on)
  const [second] = await c.client.time()
  await until('the next second', async () => (await c.client.time())[0] !== second)
  const before = await anchor(c)
  await c.cached('/items/3', 'a.test')
  t.same(await c.client.smembers(`${c.prefix}:{items}:o`), ['http://a.test'], 'the set names one origin')
  t.ok((await anchor(c))?.u !== before?.u, 'the anchor rewritten')
  t.equal((await anchor(c))?.k, 2, 'still counting the two origins')
  c.version.v = 3
  t.equal(await c.app.cache.evict('/items/1'), true)
  t.same(await c.get('/items/1', 'b.test'), { cache: 'MISS', v: 3 }, 'under the origin the set lost: not answered')
  t.same(await c.get('/items/2', 'a.test'), { cache: 'MISS', v: 3 }, 'the group went whole')

  // one origin: the set made again names the only one there is (the group evicted first, as those
  // misses under b.test stored again)
  await c.app.cache.evictGroup('items')
  for (const url of ['/items/1', '/items/2']) await c.cached(url, 'a.test')
  t.equal((await anchor(c))?.k, 1, 'the group\'s eviction started the anchor again')
  t.same(await lose(c, (key) => key.endsWith(':o')), [`${c.prefix}:{items}:o`])
  await c.cached('/items/3', 'a.test')
  c.version.v = 4
  t.equal(await c.app.cache.evict('/items/1'), true)
  t.same(await c.get('/items/1', 'a.test'), { cache: 'MISS', v: 4 }, 'found under the origin written again')
  t.same(await c.get('/items/2', 'a.test'), { cache: 'HIT', v: 3 }, 'the rest of the group stays')
})

t.test('an evict(url) in a group with no URL entry, or whose URL entries all expired: the group stays', async (t) => {
  const c = await catalogue(t)
  c.app.get('/short', { config: { cache: { group: 'items', ttl: 1 } } }, async () => ({ v: c.version.v }))
  await c.app.cache.set('count', 7, { group: 'items' })
  t.equal(await c.app.cache.evict('/items/1'), false, 'nothing under the URL')
  t.equal(await c.app.cache.get('count', { group: 'items' }), 7, 'no URL entry ever: the group\'s other values are served')
  t.equal(await anchor(c), undefined, 'no anchor without a URL entry')

  // two origins, whose entries expire: the set goes with them, and the anchor's U passes
  for (const host of ['a.test', 'b.test']) await c.cached('/short', host)
  const { k, u } = await anchor(c) ?? { k: 0, u: 0 }
  t.equal(k, 2, 'the anchor counts the two origins')
  await until('the entries, and the set, expired', async () => (await c.client.exists(`${c.prefix}:{items}:o`)) === 0)
  await until('the anchor\'s U passed', async () => {
    const [s, us] = await c.client.time()
    return Number(s) * 1000 + Math.floor(Number(us) / 1000) > u
  })
  t.equal(await c.app.cache.evict('/short'), false, 'the expired entries: nothing to evict')
  t.equal(await c.app.cache.get('count', { group: 'items' }), 7, 'the group stays')
  // the next write starts the anchor again from the set it finds: one origin is all there is now
  await c.cached('/items/1', 'a.test')
  t.equal((await anchor(c))?.k, 1, 'k started again')
  t.equal(await c.app.cache.evict('/items/2'), false, 'nothing under that URL')
  t.equal(await c.app.cache.get('count', { group: 'items' }), 7, 'the group stays')
  t.same(await c.get('/items/1', 'a.test'), { cache: 'HIT', v: 1 }, 'and its URL entry too')
})

t.test('under maxmemory with allkeys-random, Redis evicting any key: no response is older than the last eviction or clear() of its group', async (t) => {
  // a server of its own: its memory limit must not touch the other tests' keys
  const server = await startRedis(t)
  const admin = server.client()
  const client = server.client()
  const app = Fastify()
  await app.register(httpCache, { redis: client, prefix: 'mm', timeout: 2000 })
  t.teardown(() => app.close())
  const groups = ['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7']
  const version: Record<string, number> = Object.fromEntries(groups.map((g) => [g, 1]))
  const pad = 'x'.repeat(4000)
  for (const g of groups) app.get(`/${g}/:id`, { config: { cache: { group: g, ttl: 0 } } }, async () => ({ v: version[g], pad }))
  await app.ready()
  const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1])
  // room for about half of the 480 URLs' values (groups past the 50 keys an eviction removes itself):
  // Redis evicts all the time, whatever the key
  await admin.config('SET', 'maxmemory', String(used + 1_000_000))
  await admin.config('SET', 'maxmemory-policy', 'allkeys-random')

  // a fixed sequence (mulberry32): a failure can be replayed
  let seed = 12345
  const random = (n: number): number => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return Math.floor(((x ^ (x >>> 14)) >>> 0) / 4294967296 * n)
  }
  let hits = 0
  let stale = 0
  let evictions = 0
  let clears = 0
  let failed = 0
  for (let step = 0; step < 4000; step++) {
    const g = groups[random(groups.length)]
    const roll = random(1000)
    // an eviction may fail (OOM: Redis could not get under its limit before the script's first write);
    // the store keeps it and answers nothing it covers until it is replayed
    if (roll < 10) {
      version[g]++
      await app.cache.evictGroup(g).then(() => evictions++, () => failed++)
    } else if (roll < 12) {
      for (const other of groups) version[other]++
      await app.cache.clear().then(() => clears++, () => failed++)
    } else {
      const res = await app.inject(`/${g}/${random(60)}`)
      if (res.statusCode !== 200) t.fail(`step ${step}: status ${res.statusCode}`)
      if (res.headers['x-cache'] === 'HIT') hits++
      const v = (res.json() as { v: number }).v
      if (v !== version[g]) {
        stale++
        if (stale <= 5) t.fail(`step ${step}: /${g} answered version ${v} (${String(res.headers['x-cache'])}) after the eviction to version ${version[g]}`)
      }
    }
  }
  const evicted = Number(/evicted_keys:(\d+)/.exec(await admin.info('stats'))?.[1])
  t.equal(stale, 0, `nothing evicted or cleared was answered (${stale} of ${hits} HITs were)`)
  t.ok(evicted > 1000, `Redis evicted keys meanwhile (${evicted})`)
  t.ok(hits > 100, `and the cache still answered HITs (${hits}; ${evictions} group evictions and ${clears} clears done, ${failed} failed)`)
})

t.test('at its first connection the store warns once when Redis may evict keys, and not otherwise', async (t) => {
  const server = await startRedis(t)
  const admin = server.client()
  const warnings = async (setup: () => Promise<unknown>, options: Record<string, unknown> = {}): Promise<Array<{ policy?: string, msg: string }>> => {
    await setup()
    const logs: Array<{ level: number, policy?: string, msg: string }> = []
    const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } })
    const client = server.client(options)
    await app.register(httpCache, { redis: client, prefix: 'w', timeout: 2000 })
    await app.ready()
    await client.ping() // answered after the INFO the store sent once connected, on the same connection
    await app.close()
    return logs.filter((l) => l.level === 40 && l.msg.includes('may evict keys'))
  }
  t.same(await warnings(async () => await admin.config('SET', 'maxmemory', '0')), [], 'no memory limit: nothing is evicted')
  t.same(await warnings(async () => await admin.config('SET', 'maxmemory', '64mb', 'maxmemory-policy', 'noeviction')), [], 'noeviction')
  const seen = await warnings(async () => await admin.config('SET', 'maxmemory-policy', 'volatile-lru'))
  t.equal(seen.length, 1, 'volatile-lru: one warning')
  t.equal(seen[0]?.policy, 'volatile-lru', 'naming the policy')
  t.equal((await warnings(async () => await admin.config('SET', 'maxmemory-policy', 'allkeys-lfu'))).length, 1, 'allkeys-lfu')
  // a server that refuses INFO (as some managed ones do): nothing logged, nothing thrown
  await admin.call('ACL', 'SETUSER', 'noinfo', 'on', '>secret', '~*', '&*', '+@all', '-info')
  t.same(await warnings(async () => {}, { username: 'noinfo', password: 'secret' }), [], 'INFO refused: left alone')
  await admin.config('SET', 'maxmemory', '0')
})
