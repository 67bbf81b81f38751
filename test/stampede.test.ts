import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { backends, build } from './helpers/app.js'
import { deferred } from './helpers/gate.js'
import { startRedis, type TapLike, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// Concurrent misses of one key run the handler once: in one process always, across instances with lock.

interface Counted { app: FastifyInstance, arrived: () => number }

/** Counts requests that reached the app (an onRequest hook ahead of the plugin's lookup). */
function counted (app: FastifyInstance): Counted {
  let n = 0
  app.addHook('onRequest', async () => { n++ })
  return { app, arrived: () => n }
}

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('100 concurrent misses of one key run the handler once; the others get its response as a HIT', async (t) => {
      const app = await build(t, backend)
      const { arrived } = counted(app)
      const release = deferred()
      let runs = 0
      app.get('/report', { config: { cache: { ttl: 60 } } }, async () => {
        runs++
        await release.promise
        return { report: 'expensive', run: runs }
      })
      const responses = Promise.all(Array.from({ length: 100 }, async () => await app.inject('/report')))
      await until('all 100 requests to arrive', () => arrived() === 100)
      await sleep(200) // every lookup done: the handler would have run again by now if it were going to
      t.equal(runs, 1, 'one run while the leader is busy')
      release.resolve()
      const all = await responses
      t.ok(all.every((r) => r.statusCode === 200 && r.json().run === 1), 'everyone got the one response')
      t.equal(all.filter((r) => r.headers['x-cache'] === 'MISS').length, 1)
      t.equal(all.filter((r) => r.headers['x-cache'] === 'HIT').length, 99)
      t.equal(runs, 1)
      t.equal((await app.inject('/report')).headers['x-cache'], 'HIT', 'and it was stored')
    })

    t.test('a request that reads the group after an eviction never joins a run from before it', async (t) => {
      const app = await build(t, backend)
      const release = deferred()
      let version = 1
      let runs = 0
      app.get('/price', { config: { cache: { group: 'prices' } } }, async () => {
        const seen = version
        if (++runs === 1) await release.promise
        return { version: seen }
      })
      const first = app.inject('/price')
      await until('the first run to start', () => runs === 1)
      version = 2
      await app.cache.evictGroup('prices')
      const second = await app.inject('/price')
      t.same(second.json(), { version: 2 }, 'fresh data, not the run that started before the eviction')
      release.resolve()
      t.same((await first).json(), { version: 1 })
      t.same((await app.inject('/price')).json(), { version: 2 }, 'the older run was not stored over it')
    })

    t.test('when the leader fails, the waiting requests run the handler themselves', async (t) => {
      const app = await build(t, backend)
      const { arrived } = counted(app)
      const release = deferred()
      let runs = 0
      app.get('/flaky', { config: { cache: true } }, async () => {
        if (++runs === 1) {
          await release.promise
          throw new Error('database timeout')
        }
        return { ok: true }
      })
      const responses = Promise.all(Array.from({ length: 10 }, async () => await app.inject('/flaky')))
      await until('all requests to arrive', () => arrived() === 10)
      await sleep(100)
      release.resolve()
      const all = await responses
      t.equal(all.filter((r) => r.statusCode === 500).length, 1, 'only the leader saw its error')
      t.ok(all.filter((r) => r.statusCode === 200).every((r) => r.json().ok === true))
      t.equal(all.filter((r) => r.statusCode === 200).length, 9)
    })

    t.test('responses that vary on a request header are not handed to followers that differ', async (t) => {
      const app = await build(t, backend)
      const { arrived } = counted(app)
      const release = deferred()
      let runs = 0
      app.get('/greeting', { config: { cache: true } }, async (request, reply) => {
        runs++
        await release.promise
        reply.header('vary', 'accept-language')
        return { lang: request.headers['accept-language'] }
      })
      const en = Array.from({ length: 3 }, async () => await app.inject({ url: '/greeting', headers: { 'accept-language': 'en' } }))
      const fr = app.inject({ url: '/greeting', headers: { 'accept-language': 'fr' } })
      await until('all requests to arrive', () => arrived() === 4)
      await sleep(100)
      release.resolve()
      for (const r of await Promise.all(en)) t.same(r.json(), { lang: 'en' })
      t.same((await fr).json(), { lang: 'fr' }, 'the French request ran the handler for itself')
      t.ok(runs >= 2)
    })

    t.test('a hijacked leader response does not leave followers waiting', async (t) => {
      const app = await build(t, backend)
      const { arrived } = counted(app)
      const release = deferred()
      let runs = 0
      app.get('/raw', { config: { cache: true } }, async (request, reply) => {
        runs++
        if (runs === 1) {
          await release.promise
          reply.hijack()
          reply.raw.end('raw')
          return reply
        }
        return 'handled'
      })
      const leader = app.inject('/raw')
      await until('the leader to run', () => runs === 1)
      const follower = app.inject('/raw')
      await until('the follower to arrive', () => arrived() === 2)
      await sleep(50)
      release.resolve()
      t.equal((await leader).body, 'raw')
      t.equal((await follower).body, 'handled', 'ran the handler as soon as the leader\'s connection closed')
    })

    t.test('a leader hijacked before any follower came is not waited for', async (t) => {
      const app = await build(t, backend)
      let runs = 0
      app.get('/raw', { config: { cache: true } }, async (request, reply) => {
        runs++
        if (runs > 1) return 'handled'
        reply.hijack() // its flight is never landed from onSend, and no follower watches its response
        reply.raw.end('raw')
        return reply
      })
      t.equal((await app.inject('/raw')).body, 'raw')
      const follower = app.inject('/raw')
      t.equal(await Promise.race([follower.then((r) => r.body), sleep(2000, 'still waiting')]), 'handled', 'ran the handler at once')
      t.equal(runs, 2)
    })

    t.test('a leader whose client went away is not waited for by the requests that come after', async (t) => {
      const app = await build(t, backend)
      const release = deferred()
      let runs = 0
      let gone = false
      app.get('/slow', { config: { cache: true } }, async (request) => {
        runs++
        if (runs > 1) return 'handled'
        request.raw.once('close', () => { gone = true })
        await release.promise
        return 'late'
      })
      await app.listen({ port: 0, host: '127.0.0.1' })
      const { port } = app.server.address() as AddressInfo
      const leader = request({ port, host: '127.0.0.1', path: '/slow' })
      leader.on('error', () => {})
      leader.end()
      await until('the leader to run', () => runs === 1)
      leader.destroy()
      await until('the server to see the client go', () => gone)
      // the same key as the leader's (an inject would send another Host)
      const follower = app.inject({ url: '/slow', headers: { host: `127.0.0.1:${port}` } })
      t.equal(await Promise.race([follower.then((r) => r.body), sleep(2000, 'still waiting')]), 'handled', 'ran the handler at once')
      release.resolve()
      t.equal(runs, 2)
    })
  })
}

t.test('Redis: a lookup that crosses the leader\'s write (read before it, answered after the leader sent) joins the run', async (t) => {
  const redis = await startRedis(t)
  const admin = redis.client()
  const app = Fastify()
  t.teardown(() => app.close())
  // ahead of the plugin's lookup: Redis holds the second request's lookup, and the leader's write behind it
  app.addHook('onRequest', async (request) => {
    if (request.headers['x-second'] !== undefined) await admin.call('client', 'pause', '500', 'all')
  })
  await app.register(httpCache, { redis: redis.client(), prefix: 'cross', timeout: 5000 })
  const release = deferred()
  let runs = 0
  app.get('/report', { config: { cache: { ttl: 60 } } }, async () => {
    runs++
    await release.promise
    return { run: runs }
  })
  const first = app.inject('/report')
  await until('the leader to run', () => runs === 1)
  const second = app.inject({ url: '/report', headers: { 'x-second': '1' } })
  await sleep(100) // its lookup sent and held
  release.resolve()
  t.same((await first).json(), { run: 1 })
  const crossed = await second
  t.same(crossed.json(), { run: 1 }, 'the leader\'s response, though its lookup read Redis before the write')
  t.equal(crossed.headers['x-cache'], 'HIT')
  t.equal(runs, 1, 'the handler ran once')
  t.equal((await app.inject('/report')).headers['x-cache'], 'HIT', 'and it was stored')
})

t.test('Redis: a request after the leader was sent, its write still under way, is not handed that entry when it asks for a new one', async (t) => {
  const redis = await startRedis(t)
  const admin = redis.client()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache, { redis: redis.client(), prefix: 'after', timeout: 5000 })
  const release = deferred()
  let runs = 0
  app.get('/report', { config: { cache: { ttl: 60 } } }, async () => {
    if (++runs === 1) await release.promise
    return { run: runs }
  })
  const first = app.inject('/report')
  await until('the leader to run', () => runs === 1)
  // Redis holds the leader's write; its response goes out all the same
  await admin.call('client', 'pause', '500', 'all')
  release.resolve()
  t.same((await first).json(), { run: 1 })
  const fresh = await app.inject({ url: '/report', headers: { 'cache-control': 'no-cache' } })
  t.same(fresh.json(), { run: 2 }, 'the handler ran for the no-cache request')
  t.equal(runs, 2)
  t.same((await app.inject('/report')).json(), { run: 2 }, 'and its response was stored')
})

// Two instances sharing one Redis (and prefix), each with the routes `declare` adds.
async function instances (t: TapLike, redis: TestRedis, options: HttpCacheOptions, declare: (app: FastifyInstance) => void): Promise<FastifyInstance[]> {
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(httpCache, { redis: redis.client(), ...options })
    declare(app)
    apps.push(app)
  }
  return apps
}

t.test('lock: two instances sharing a Redis run the handler once for 100 concurrent misses', async (t) => {
  const redis = await startRedis(t)
  const release = deferred()
  let runs = 0
  const apps = (await instances(t, redis, { prefix: 'lock1', lock: { wait: 20_000 } }, (app) => {
    app.get('/catalog', { config: { cache: { ttl: 60 } } }, async () => {
      runs++
      await release.promise
      return { catalog: 'big', run: runs }
    })
  })).map(counted)
  const responses = Promise.all(Array.from({ length: 100 }, async (_, i) => await apps[i % 2].app.inject('/catalog')))
  await until('all 100 requests to arrive', () => apps[0].arrived() + apps[1].arrived() === 100)
  await sleep(300)
  t.equal(runs, 1, 'one run across both instances while it is busy')
  t.equal(await redis.client().exists('lock1:{default}:e:GET:http://localhost/catalog lock'), 1, 'the lock is in Redis, in the group\'s slot')
  release.resolve()
  const all = await responses
  t.ok(all.every((r) => r.statusCode === 200 && r.json().run === 1), 'all 100 got the one response')
  t.equal(runs, 1)
  t.equal(all.filter((r) => r.headers['x-cache'] === 'MISS').length, 1)
  await until('the lock to be released', async () => (await redis.client().keys('lock1:*lock')).length === 0)
})

t.test('lock: the wait is bounded; then the handler runs anyway', async (t) => {
  const redis = await startRedis(t)
  const release = deferred()
  let runs = 0
  const apps = await instances(t, redis, { prefix: 'lock2' }, (app) => {
    app.get('/slow', { config: { cache: { lock: { wait: 200, lease: 60_000 } } } }, async () => {
      const run = ++runs
      if (run === 1) await release.promise
      return { run }
    })
  })
  const first = apps[0].inject('/slow')
  await until('the first run to start', () => runs === 1)
  const second = await apps[1].inject('/slow')
  t.same(second.json(), { run: 2 }, 'instance 2 gave up waiting and ran the handler')
  release.resolve()
  t.same((await first).json(), { run: 1 })
})

t.test('lock: a lock left behind by a crashed instance delays a miss by the wait at most', async (t) => {
  const redis = await startRedis(t)
  const app = Fastify()
  t.teardown(() => app.close())
  const client = redis.client()
  await app.register(httpCache, { redis: client, prefix: 'lock3', lock: true })
  let runs = 0
  app.get('/x', { config: { cache: true } }, async () => ({ run: ++runs }))
  // a lock nobody will release (its holder died): SET NX keeps failing
  await client.set('lock3:{default}:e:GET:http://localhost/x lock', 'someone else', 'PX', 60_000)
  const started = Date.now()
  const res = await app.inject('/x')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { run: 1 })
  t.comment(`answered after ${Date.now() - started} ms with the lock held elsewhere (default wait 3000 ms)`)
})
