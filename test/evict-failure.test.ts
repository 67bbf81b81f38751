import t, { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { startFaultProxy } from './helpers/fault-proxy.js'
import { startRedis, type TapLike, type TestRedis } from './helpers/redis.js'

type Test = Parameters<Parameters<typeof test>[0]>[0]
import { until } from './helpers/until.js'

// Evictions that fail (lib/stores/pending.ts), on a real Redis. Two ways to make one fail:
//  - a group whose generation key holds a non-number: every eviction script of that group starts with
//    INCR on it, so Redis answers each with an error (nothing removed) while lookups and writes still
//    work. Setting it back to a number lets the store evict again: the test decides when.
//  - an outage through the fault proxy (a hung link that trips the breaker), as in production.
// The memory store needs nothing of this: its evictions cannot fail.

let server: TestRedis
let prefixes = 0
t.before(async () => { server = await startRedis(t) })

interface Rig {
  app: FastifyInstance
  redis: Redis
  prefix: string
  /** The data's version per group (what a write changes). */
  version: Record<string, number>
  calls: Record<string, number>
  get: (url: string, target?: FastifyInstance) => Promise<{ cache: string, v: number }>
  /**
   * Makes every eviction of `group` fail (true) or work again (false): its generation made garbage (no
   * entry of the group is reachable meanwhile), or with `index`, its key index made a string (single-key
   * and URL evictions fail, lookups of the group's other keys still hit).
   */
  breakEvictions: (group: string, broken: boolean, how?: 'generation' | 'index') => Promise<void>
  /** Makes every clear() fail (true) or work again (false): the prefix's clear count made a hash. */
  breakClears: (broken: boolean) => Promise<void>
  logs: Array<{ level: number, msg: string }>
}

/** Routes /alpha/:id (tagged 'tag-a') and /beta/:id; write routes evicting each group. */
function routes (app: FastifyInstance, version: Record<string, number>, calls: Record<string, number>): void {
  for (const group of ['alpha', 'beta']) {
    const tags = group === 'alpha' ? (): string[] => ['tag-a'] : undefined
    app.get(`/${group}/:id`, { config: { cache: { group, ttl: 300, tags } } }, async () => {
      calls[group]++
      return { v: version[group] }
    })
    app.post(`/${group}`, { config: { cache: { evict: group } } }, async () => {
      version[group]++
      return { ok: true }
    })
  }
}

async function rig (t: Test, options: HttpCacheOptions = {}, redis?: Redis): Promise<Rig> {
  const prefix = `ef${++prefixes}`
  const client = redis ?? server.client()
  const logs: Array<{ level: number, msg: string }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.register(httpCache, { redis: client, prefix, timeout: 2000, ...options })
  const version = { alpha: 1, beta: 1 }
  const calls = { alpha: 0, beta: 0 }
  routes(app, version, calls)
  const admin = server.client()
  const saved = new Map<string, string[]>()
  return {
    app,
    redis: admin,
    prefix,
    version,
    calls,
    async get (url, target = app) {
      const res = await target.inject(url)
      t.equal(res.statusCode, 200, `${url} answers`)
      return { cache: String(res.headers['x-cache']), v: res.json().v }
    },
    async breakEvictions (group, broken, how = 'generation') {
      if (how === 'generation') {
        await admin.set(`${prefix}:{${group}}:g`, broken ? 'broken' : '1000')
        return
      }
      const index = `${prefix}:{${group}}:i`
      if (broken) {
        saved.set(index, await admin.smembers(index))
        await admin.set(index, 'broken')
      } else {
        await admin.del(index)
        const members = saved.get(index) ?? []
        if (members.length > 0) await admin.sadd(index, ...members)
      }
    },
    async breakClears (broken) {
      if (broken) await admin.multi().del(`${prefix}:clear`).hset(`${prefix}:clear`, 'broken', '1').exec()
      else await admin.del(`${prefix}:clear`)
    },
    logs
  }
}

/** A second instance sharing the Redis and the prefix of `r`, with the same routes and data. */
async function second (t: TapLike, r: Rig, client: Redis): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache, { redis: client, prefix: r.prefix, timeout: 2000 })
  routes(app, r.version, { alpha: 0, beta: 0 })
  await app.ready()
  return app
}

t.test('a failed evictGroup: its group goes to the handler, unstored, until the eviction is replayed; then cached again', async (t) => {
  const r = await rig(t)
  await r.get('/alpha/1')
  await r.get('/beta/1')
  t.equal((await r.get('/alpha/1')).cache, 'HIT')
  const entry = (await r.redis.keys(`${r.prefix}:{alpha}:e:*`))[0]
  const stored = await r.redis.getBuffer(entry)

  await r.breakEvictions('alpha', true)
  await t.rejects(r.app.cache.evictGroup('alpha'), 'the API call rejects')
  r.version.alpha++
  for (let i = 0; i < 3; i++) t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 2 }, 'covered: the handler answers')
  t.equal(r.calls.alpha, 4)
  t.same(await r.redis.getBuffer(entry), stored, 'their responses were not stored')
  t.same(await r.get('/beta/1'), { cache: 'HIT', v: 1 }, 'another group is served as before')

  await r.breakEvictions('alpha', false)
  t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 2 }, 'the first lookup once the store evicts again replays first')
  // one eviction moves the epoch 1000 to 1002; the miss after it registers the group again (odd)
  t.equal((await r.redis.get(`${r.prefix}:{alpha}:g`))?.split(';')[0], '1003', 'replayed once')
  t.same(await r.get('/alpha/1'), { cache: 'HIT', v: 2 }, 'and the group is cached again')
})

t.test('a write route whose eviction fails: 2xx and logged by default, 503 with onEvictError: \'fail\'; never a stale read after', async (t) => {
  for (const mode of ['ignore', 'fail'] as const) {
    const r = await rig(t, mode === 'ignore' ? {} : { onEvictError: mode })
    await r.get('/alpha/1')
    await r.breakEvictions('alpha', true)
    const res = await r.app.inject({ method: 'POST', url: '/alpha' })
    if (mode === 'ignore') {
      t.equal(res.statusCode, 200, 'ignore: the write answers its own response')
    } else {
      t.equal(res.statusCode, 503, 'fail: the write answers 503')
      t.equal(res.json().code, 'FST_HTTP_CACHE_EVICTION_FAILED')
      t.match(res.headers['content-type'], /^application\/json/)
    }
    t.ok(r.logs.some((l) => l.level === 50 && /invalidation after a write failed/.test(l.msg)), `${mode}: the failure is logged`)
    t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 2 }, `${mode}: the next read is not the stale entry`)
    await r.breakEvictions('alpha', false)
    t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 2 })
    t.same(await r.get('/alpha/1'), { cache: 'HIT', v: 2 })
  }
})

t.test('a failed evictTag covers every group until replayed; the replay reaches groups the failed run took out of the tag\'s registry', async (t) => {
  const r = await rig(t)
  await r.get('/alpha/1')
  await r.get('/beta/1')
  await r.breakEvictions('alpha', true)
  await t.rejects(r.app.cache.evictTag('tag-a'))
  t.equal(await r.redis.scard(`${r.prefix}:tag:{tag-a}`), 0, 'the failed run had unregistered the group')
  r.version.alpha++
  t.equal((await r.get('/beta/1')).cache, 'MISS', 'which groups a tag reaches is unknown meanwhile: none is served')
  t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 2 })
  await r.breakEvictions('alpha', false)
  t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 2 }, 'the tagged entry is gone after the replay')
  t.same(await r.get('/alpha/1'), { cache: 'HIT', v: 2 })
  t.same(await r.get('/beta/1'), { cache: 'HIT', v: 1 }, 'the untagged group was not evicted')
})

t.test('a failed evict(url) covers that URL only; a failed delete(key) that key only', async (t) => {
  const r = await rig(t)
  await r.get('/alpha/1')
  await r.get('/alpha/2')
  await r.app.cache.set('k', 'old', { group: 'alpha' })
  await r.app.cache.set('other', 'kept', { group: 'alpha' })
  await r.breakEvictions('alpha', true, 'index')
  t.equal(await r.app.cache.evict('/alpha/2').catch(() => 'rejected'), 'rejected')
  t.equal(await r.app.cache.delete('k', { group: 'alpha' }).catch(() => 'rejected'), 'rejected')
  r.version.alpha++
  t.same(await r.get('/alpha/2'), { cache: 'MISS', v: 2 })
  t.same(await r.get('/alpha/1'), { cache: 'HIT', v: 1 }, 'another URL of the group is still served')
  t.equal(await r.app.cache.get('k', { group: 'alpha' }), undefined, 'the deleted value reads as absent')
  t.equal(await r.app.cache.get('other', { group: 'alpha' }), 'kept')
  await t.rejects(r.app.cache.set('k', 'new', { group: 'alpha' }), 'a write under a pending eviction rejects')

  await r.breakEvictions('alpha', false, 'index')
  t.same(await r.get('/alpha/2'), { cache: 'MISS', v: 2 })
  t.same(await r.get('/alpha/2'), { cache: 'HIT', v: 2 })
  t.same(await r.get('/alpha/1'), { cache: 'HIT', v: 1 }, 'the replay evicted the URL only')
  t.equal(await r.app.cache.get('k', { group: 'alpha' }), undefined, 'the value was deleted by the replay')
  await r.app.cache.set('k', 'new', { group: 'alpha' })
  t.equal(await r.app.cache.get('k', { group: 'alpha' }), 'new')
})

t.test('clear() that failed: what it covers is not served meanwhile, and it is replayed', async (t) => {
  const r = await rig(t)
  await r.get('/alpha/1')
  await r.get('/beta/1')
  await r.breakClears(true)
  await t.rejects(r.app.cache.clear())
  r.version.alpha++
  r.version.beta++
  t.same(await r.get('/beta/1'), { cache: 'MISS', v: 2 })
  t.same(await r.get('/beta/1'), { cache: 'MISS', v: 2 }, 'nor stored')
  await r.breakClears(false)
  t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 2 })
  t.same(await r.get('/beta/1'), { cache: 'MISS', v: 2 })
  t.same(await r.get('/beta/1'), { cache: 'HIT', v: 2 })
})

t.test('a lookup that comes while a replay is failing gets a replay of its own once that one is over', async (t) => {
  const r = await rig(t)
  await r.get('/alpha/1')
  await until('the entry is stored', async () => (await r.get('/alpha/1')).cache === 'HIT')
  await r.breakEvictions('alpha', true)
  await t.rejects(r.app.cache.evictGroup('alpha'))
  r.version.alpha++
  // Redis holds what comes next: the replay the first request starts runs its eviction while it still
  // fails, and the repair is queued behind it; the second request comes while that replay is under way
  await r.redis.call('client', 'pause', '150', 'all')
  const first = r.get('/alpha/1')
  await sleep(20)
  const repaired = r.breakEvictions('alpha', false)
  await sleep(20)
  const second = r.get('/alpha/1')
  t.same(await first, { cache: 'MISS', v: 2 }, 'its replay failed: the handler answers, nothing stored')
  await repaired
  t.same(await second, { cache: 'MISS', v: 2 })
  t.same(await r.get('/alpha/1'), { cache: 'HIT', v: 2 }, 'the second request replayed again once the failing run was over, and stored its response')
})

t.test('past 1000 pending evictions they collapse into one clear of everything, replayed like the others', async (t) => {
  const r = await rig(t)
  await r.get('/alpha/1')
  await r.get('/beta/1')
  await r.breakEvictions('alpha', true)
  await r.breakClears(true) // so that the clear of everything fails too, until both work again
  const failed = await Promise.all(Array.from({ length: 1001 }, async (_, i) => await r.app.cache.delete(`k${i}`, { group: 'alpha' }).then(() => 0, () => 1)))
  t.equal(failed.reduce((a: number, b) => a + b, 0), 1001)
  t.ok(r.logs.some((l) => l.level === 40 && /too many failed evictions/.test(l.msg)), 'the collapse is logged')
  await t.rejects(r.app.cache.evictGroup('alpha'), 'a failure after the collapse is covered by it')
  r.version.beta++
  t.same(await r.get('/beta/1'), { cache: 'MISS', v: 2 }, 'everything is covered')
  t.same(await r.get('/beta/1'), { cache: 'MISS', v: 2 }, 'and not stored')
  await r.breakEvictions('alpha', false)
  await r.breakClears(false)
  t.same(await r.get('/beta/1'), { cache: 'MISS', v: 2 }, 'the clear of everything was replayed')
  t.same(await r.get('/beta/1'), { cache: 'HIT', v: 2 })
  t.same(await r.get('/alpha/1'), { cache: 'MISS', v: 1 })
})

t.test('policy \'http\': an unsafe request whose invalidation fails answers 503 with onEvictError: \'fail\'', async (t) => {
  const r = await rig(t, { onEvictError: 'fail' })
  let n = 0
  r.app.route({
    method: ['GET', 'POST'],
    url: '/h',
    config: { cache: { policy: 'http', group: 'alpha' } },
    handler: async (req, reply) => {
      reply.header('cache-control', 'max-age=300')
      return req.method === 'GET' ? { n: ++n } : { posted: true }
    }
  })
  t.equal((await r.app.inject('/h')).headers['x-cache'], 'MISS')
  t.equal((await r.app.inject('/h')).headers['x-cache'], 'HIT')
  await r.breakEvictions('alpha', true)
  const res = await r.app.inject({ method: 'POST', url: '/h' })
  t.equal(res.statusCode, 503)
  t.ok(r.logs.some((l) => /invalidation after an unsafe request failed/.test(l.msg)))
  t.equal((await r.app.inject('/h')).headers['x-cache'], 'MISS', 'the URL is not served from the cache meanwhile')
})

t.test('closing with an eviction pending: one last replay, logged when it fails too', async (t) => {
  const r = await rig(t)
  await r.get('/alpha/1')
  await r.breakEvictions('alpha', true)
  await t.rejects(r.app.cache.evictGroup('alpha'))
  await r.app.close()
  t.ok(r.logs.some((l) => l.level === 50 && /closing with evictions that could not be replayed/.test(l.msg)))

  const s = await rig(t)
  await s.get('/alpha/1')
  await s.breakEvictions('alpha', true)
  await t.rejects(s.app.cache.evictGroup('alpha'))
  await s.breakEvictions('alpha', false)
  await s.app.close()
  // the keys are reclaimed in the background; what counts is that nothing of the group is served
  const other = await second(t, s, server.client())
  t.same(await s.get('/alpha/1', other), { cache: 'MISS', v: 1 }, 'replayed on close')
})

// The soak's case: Redis hangs (SIGSTOP) long enough for the breaker to open, so the write's eviction
// is never sent. Once Redis answers again, the writing instance never serves the old entry, and a second
// instance sharing the Redis stops serving it as soon as the writer has replayed, without any request
// reaching the writer.
t.test('an outage: the eviction replayed once Redis answers, before the writer serves a HIT; a second instance follows', async (t) => {
  const proxy = await startFaultProxy(t, server)
  const client = server.client({ host: proxy.host, port: proxy.port })
  const r = await rig(t, { timeout: 100 }, client)
  const other = await second(t, r, server.client())
  // asked again until stored: a call through the proxy may outlast the 100 ms timeout on a loaded machine
  await until('the entry is stored', async () => {
    await r.get('/alpha/1')
    return (await r.redis.keys(`${r.prefix}:{alpha}:e:*`)).length === 1
  })
  t.same(await r.get('/alpha/1', other), { cache: 'HIT', v: 1 }, 'the second instance has it cached')

  proxy.pause()
  // the lookups time out until the breaker opens; the write's eviction then fails without being sent
  for (let i = 0; i < 3; i++) await r.get('/beta/1')
  t.equal((await r.app.inject({ method: 'POST', url: '/alpha' })).statusCode, 200)
  t.equal(r.version.alpha, 2)
  proxy.reset()

  const answers: Array<{ cache: string, v: number }> = []
  await until('the writer caches /alpha/1 again', async () => {
    const a = await r.get('/alpha/1')
    answers.push(a)
    return a.cache === 'HIT'
  }, 10_000, 20)
  t.same(answers.filter((a) => a.v !== 2), [], `the writer never served the old entry (${answers.length} reads)`)
  t.same(await r.get('/alpha/1', other), { cache: 'HIT', v: 2 }, 'the second instance reads the new entry')
})

t.test('an outage with no request to the writer: its timer replays, and the second instance stops serving the old entry', async (t) => {
  const proxy = await startFaultProxy(t, server)
  const client = server.client({ host: proxy.host, port: proxy.port })
  const r = await rig(t, { timeout: 100 }, client)
  const other = await second(t, r, server.client())
  await until('the entry is stored', async () => {
    await r.get('/alpha/1', other)
    return (await r.redis.keys(`${r.prefix}:{alpha}:e:*`)).length === 1
  })
  proxy.pause()
  for (let i = 0; i < 3; i++) await r.get('/beta/1')
  t.equal((await r.app.inject({ method: 'POST', url: '/alpha' })).statusCode, 200)
  t.same(await r.get('/alpha/1', other), { cache: 'HIT', v: 1 }, 'the second instance still serves the entry (it cannot know)')
  proxy.reset()
  await until('the entry is evicted', async () => (await r.redis.keys(`${r.prefix}:{alpha}:e:*`)).length === 0, 10_000, 20)
  t.same(await r.get('/alpha/1', other), { cache: 'MISS', v: 2 })
})

t.test('L1: a kept eviction drops the tier\'s copies too, and other instances\' tiers on the replay', async (t) => {
  const r = await rig(t, { l1: { ttl: 60 } })
  const other = Fastify()
  t.teardown(() => other.close())
  await other.register(httpCache, { redis: server.client(), prefix: r.prefix, timeout: 2000, l1: { ttl: 60 } })
  routes(other, r.version, { alpha: 0, beta: 0 })
  await until('both tiers are live', async () => {
    await r.get('/beta/1')
    await r.get('/beta/1', other)
    return (await r.get('/beta/1')).cache === 'HIT' && (await r.get('/beta/1', other)).cache === 'HIT'
  })
  await r.breakClears(true)
  await t.rejects(r.app.cache.clear())
  r.version.beta++
  t.same(await r.get('/beta/1'), { cache: 'MISS', v: 2 }, 'the writer\'s tier dropped its copy')
  await r.breakClears(false)
  await until('replayed', async () => (await r.redis.keys(`${r.prefix}:{beta}:e:*`)).length === 0)
  t.same(await r.get('/beta/1', other), { cache: 'MISS', v: 2 }, 'the other tier dropped its copy on the replay')
})

t.test('onEvictError must be \'ignore\' or \'fail\'', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(httpCache, { onEvictError: 'retry' as 'fail' }) }, /onEvictError/)
})

// The writer's replay waits for its breaker: a connection that came back is probed at once, so the
// evictions it failed reach Redis (and other instances stop serving what they cover) without waiting out
// the cooldown.
t.test('a connection that drops and comes back is probed at once, not after the breaker\'s cooldown', async (t) => {
  const proxy = await startFaultProxy(t, server)
  const client = server.client({ host: proxy.host, port: proxy.port })
  const r = await rig(t, { timeout: 100 }, client)
  await r.get('/alpha/1')
  await until('the entry is stored', async () => (await r.redis.keys(`${r.prefix}:{alpha}:e:*`)).length === 1)
  proxy.refuse()
  proxy.cut()
  await until('the client sees the drop', () => client.status !== 'ready')
  for (let i = 0; i < 3; i++) t.equal((await r.get('/alpha/1')).cache, 'MISS')
  t.ok(r.logs.some((l) => /Redis failing/.test(l.msg)), 'the breaker opened')
  proxy.refuse(false)
  await until('the client is back', () => client.status === 'ready')
  t.equal((await r.get('/alpha/1')).cache, 'HIT', 'the first request once it is back was let through')
})
