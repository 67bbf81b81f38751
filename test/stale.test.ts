import t from 'tap'
import { backends, build } from './helpers/app.js'
import { deferred } from './helpers/gate.js'
import { until } from './helpers/until.js'
import { clock } from './helpers/clock.js'

// Stale serving (RFC 5861): stale-while-revalidate and stale-if-error, from route options or the
// handler's own Cache-Control. Freshness is judged with Date.now(), which the tests move forward.

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('staleWhileRevalidate: an expired entry is served at once as STALE while one refresh runs behind it', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      let version = 1
      let runs = 0
      app.get('/feed', { config: { cache: { ttl: 10, staleWhileRevalidate: 60 } } }, async () => { runs++; return { version } })
      const first = await app.inject('/feed')
      t.equal(first.headers['cache-control'], 'max-age=10, stale-while-revalidate=60', 'downstream caches are told too')

      version = 2
      time.advance(15_000)
      const stale = await app.inject('/feed')
      t.equal(stale.headers['x-cache'], 'STALE')
      t.same(stale.json(), { version: 1 }, 'the expired entry, without waiting for the handler')
      t.equal(stale.headers.age, '15')
      t.match(stale.headers['cache-control'], /^max-age=0, stale-while-revalidate=60/)
      await until('the background refresh to store version 2', async () => (await app.inject('/feed')).json().version === 2)
      t.equal(runs, 2, 'one refresh')
      const fresh = await app.inject('/feed')
      t.equal(fresh.headers['x-cache'], 'HIT')
      t.same(fresh.json(), { version: 2 })
    })

    t.test('one refresh at a time, however many requests see the stale entry', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      const release = deferred()
      let runs = 0
      app.get('/feed', { config: { cache: { ttl: 10, staleWhileRevalidate: 60 } } }, async () => {
        if (++runs === 2) await release.promise
        return { run: runs }
      })
      await app.inject('/feed')
      time.advance(11_000)
      const all = await Promise.all(Array.from({ length: 20 }, async () => await app.inject('/feed')))
      t.ok(all.every((r) => r.headers['x-cache'] === 'STALE' && r.json().run === 1), 'all 20 served stale at once')
      await until('the refresh to start', () => runs === 2)
      t.equal(runs, 2, 'a single refresh for 20 stale reads')
      release.resolve()
      await until('the refreshed entry', async () => (await app.inject('/feed')).headers['x-cache'] === 'HIT')
      t.equal(runs, 2)
    })

    t.test('past the stale window, or when the client asks for fresher, it is a plain miss', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      let runs = 0
      app.get('/feed', { config: { cache: { ttl: 10, staleWhileRevalidate: 5 } } }, async () => ({ run: ++runs }))
      await app.inject('/feed')
      time.advance(12_000)
      const strict = await app.inject({ url: '/feed', headers: { 'cache-control': 'max-age=5' } })
      t.equal(strict.headers['x-cache'], 'MISS', 'max-age=5 refuses a 12 s old response')
      time.advance(20_000)
      const late = await app.inject('/feed')
      t.equal(late.headers['x-cache'], 'MISS')
      t.equal(late.json().run, 3)
    })

    t.test('a handler\'s own Cache-Control stale-while-revalidate is honoured', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      let runs = 0
      app.get('/own', { config: { cache: { ttl: 10 } } }, async (request, reply) => {
        reply.header('cache-control', 'max-age=999, stale-while-revalidate=30')
        return { run: ++runs }
      })
      const first = await app.inject('/own')
      t.equal(first.headers['cache-control'], 'max-age=10, stale-while-revalidate=30', 'the route\'s ttl, the handler\'s stale window')
      time.advance(20_000)
      const stale = await app.inject('/own')
      t.equal(stale.headers['x-cache'], 'STALE')
      t.same(stale.json(), { run: 1 })
      await until('the refresh', () => runs === 2)
    })

    t.test('the refresh runs through the route\'s hooks with the original request headers', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      const keys: Array<string | undefined> = []
      app.get('/guarded', {
        preHandler: async (request, reply) => {
          keys.push(request.headers['x-api-key'] as string | undefined)
          if (request.headers['x-api-key'] !== 'k') await reply.code(401).send({ error: 'no key' })
        },
        config: { cache: { ttl: 10, staleWhileRevalidate: 60 } }
      }, async () => ({ ok: true }))
      await app.inject({ url: '/guarded', headers: { 'x-api-key': 'k' } })
      time.advance(11_000)
      t.equal((await app.inject({ url: '/guarded', headers: { 'x-api-key': 'k' } })).headers['x-cache'], 'STALE')
      await until('the refresh', () => keys.length === 3)
      t.same(keys, ['k', 'k', 'k'], 'the auth hook saw the key on the refresh too')
      t.equal((await app.inject('/guarded')).statusCode, 401, 'and still guards the stale and fresh entry')
    })

    t.test('a forged refresh header is just a header', async (t) => {
      const app = await build(t, backend)
      let runs = 0
      app.get('/x', { config: { cache: true } }, async () => ({ run: ++runs }))
      await app.inject('/x')
      const forged = await app.inject({ url: '/x', headers: { 'x-http-cache-revalidate': 'guess' } })
      t.equal(forged.headers['x-cache'], 'HIT', 'it does not force a miss')
      t.equal(runs, 1)
    })

    t.test('staleIfError: an expired entry stands in for a handler that throws or answers 5xx', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      let mode: 'ok' | 'throw' | '503' = 'ok'
      app.get('/rates', { config: { cache: { ttl: 10, staleIfError: 300 } } }, async (request, reply) => {
        if (mode === 'throw') throw new Error('upstream down')
        if (mode === '503') return await reply.code(503).send({ error: 'busy' })
        reply.header('content-type', 'application/json; charset=utf-8')
        reply.header('x-source', 'rates-api')
        return { usd: 1.1 }
      })
      t.equal((await app.inject('/rates')).headers['cache-control'], 'max-age=10, stale-if-error=300')
      time.advance(20_000)
      mode = 'throw'
      const thrown = await app.inject('/rates')
      t.equal(thrown.statusCode, 200)
      t.equal(thrown.headers['x-cache'], 'STALE')
      t.same(thrown.json(), { usd: 1.1 })
      t.equal(thrown.headers['x-source'], 'rates-api', 'the stored headers')
      t.equal(thrown.headers['content-length'], String(thrown.rawPayload.length))
      t.equal(thrown.headers.age, '20')
      mode = '503'
      const busy = await app.inject('/rates')
      t.equal(busy.statusCode, 200)
      t.equal(busy.headers['x-cache'], 'STALE')
      mode = 'ok'
      const back = await app.inject('/rates')
      t.equal(back.headers['x-cache'], 'MISS', 'a working handler refreshes it')
      time.advance(400_000)
      mode = 'throw'
      t.equal((await app.inject('/rates')).statusCode, 500, 'past the window the error goes through')
    })

    t.test('staleIfError does not hide 4xx answers, and a no-cache client gets the error', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      let status = 200
      app.get('/item', { config: { cache: { ttl: 10, staleIfError: 300 } } }, async (request, reply) => await reply.code(status).send({ status }))
      await app.inject('/item')
      time.advance(20_000)
      status = 404
      t.equal((await app.inject('/item')).statusCode, 404, 'a 404 is an answer, not an error')
      status = 500
      t.equal((await app.inject({ url: '/item', headers: { 'cache-control': 'no-cache' } })).statusCode, 500)
    })

    t.test('a handler\'s own stale-if-error is honoured', async (t) => {
      const time = clock(t)
      const app = await build(t, backend)
      let fail = false
      app.get('/own', { config: { cache: { ttl: 10 } } }, async (request, reply) => {
        if (fail) throw new Error('boom')
        reply.header('cache-control', 'public, stale-if-error=60')
        return { ok: true }
      })
      await app.inject('/own')
      time.advance(30_000)
      fail = true
      const res = await app.inject('/own')
      t.equal(res.statusCode, 200)
      t.equal(res.headers['x-cache'], 'STALE')
    })
  })
}
