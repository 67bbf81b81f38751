import t from 'tap'
import { backends, build } from './helpers/app.js'

// Key builders: vary headers, per-user varyBy, custom keys, and evict() fed the same inputs.
for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('vary: the listed request headers select an entry and come back in Vary', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/greeting', { config: { cache: { vary: ['Accept-Language'] } } }, async (req) => {
        calls++
        return { lang: req.headers['accept-language'] ?? 'none' }
      })
      app.get('/both', { config: { cache: { vary: ['x-tenant'] } } }, async (req, reply) => {
        reply.header('vary', 'Accept-Encoding')
        return 'both'
      })
      const fr = { 'accept-language': 'fr' }
      const en = { 'accept-language': 'en' }
      const first = await app.inject({ url: '/greeting', headers: fr })
      t.equal(first.headers.vary, 'accept-language')
      t.same((await app.inject({ url: '/greeting', headers: en })).json(), { lang: 'en' })
      const frHit = await app.inject({ url: '/greeting', headers: fr })
      t.equal(frHit.headers['x-cache'], 'HIT')
      t.same(frHit.json(), { lang: 'fr' })
      t.equal(frHit.headers.vary, 'accept-language')
      t.equal((await app.inject({ url: '/greeting', headers: en })).headers['x-cache'], 'HIT', 'both variants live side by side')
      t.same((await app.inject('/greeting')).json(), { lang: 'none' })
      t.equal(calls, 3)

      t.equal((await app.inject('/both')).headers.vary, 'Accept-Encoding, x-tenant', 'merged with the handler\'s Vary')

      t.equal(await app.cache.evict('/greeting', { headers: { 'Accept-Language': 'fr' } }), true)
      t.equal((await app.inject({ url: '/greeting', headers: fr })).headers['x-cache'], 'MISS')
      t.equal((await app.inject({ url: '/greeting', headers: en })).headers['x-cache'], 'HIT', 'evict() dropped one variant only')
    })

    t.test('varyBy: per-user entries, marked private; Authorization allowed on such routes', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      const user = (req: any): string => String(req.headers.authorization ?? 'anonymous').replace('Bearer ', '')
      app.get('/me', { config: { cache: { varyBy: user, ttl: 30 } } }, async (req) => ({ user: user(req), calls: ++calls }))
      const alice = { authorization: 'Bearer alice' }
      const bob = { authorization: 'Bearer bob' }
      const a1 = await app.inject({ url: '/me', headers: alice })
      t.equal(a1.headers['x-cache'], 'MISS')
      t.equal(a1.headers['cache-control'], 'private, max-age=30')
      const b1 = await app.inject({ url: '/me', headers: bob })
      t.same(b1.json(), { user: 'bob', calls: 2 }, 'bob never gets alice\'s entry')
      const a2 = await app.inject({ url: '/me', headers: alice })
      t.equal(a2.headers['x-cache'], 'HIT')
      t.same(a2.json(), { user: 'alice', calls: 1 })
      t.match(a2.headers['cache-control'], /^private, max-age=/)

      t.equal(await app.cache.evict('/me', { varyBy: 'alice' }), true)
      t.equal((await app.inject({ url: '/me', headers: alice })).headers['x-cache'], 'MISS')
      t.equal((await app.inject({ url: '/me', headers: bob })).headers['x-cache'], 'HIT')
    })

    t.test('varyBy or a key builder that fails or answers no usable value: served, not cached', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/by-throws', { config: { cache: { varyBy: () => { throw new Error('no user') } } } }, async () => ({ calls: ++calls }))
      app.get('/by-nothing', { config: { cache: { varyBy: (() => undefined) as any } } }, async () => ({ calls: ++calls }))
      app.get('/key-empty', { config: { cache: { key: () => '' } } }, async () => ({ calls: ++calls }))
      for (const url of ['/by-throws', '/by-nothing', '/key-empty']) {
        for (let i = 0; i < 2; i++) {
          const res = await app.inject(url)
          t.equal(res.statusCode, 200, url)
          t.equal(res.headers['x-cache'], 'BYPASS', url)
        }
      }
      t.equal(calls, 6)
    })

    t.test('varyBy may answer a number (a user id)', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/mine', { config: { cache: { varyBy: (req: any) => Number(req.headers['x-user']) } } }, async (req) => ({ user: req.headers['x-user'], calls: ++calls }))
      await app.inject({ url: '/mine', headers: { 'x-user': '7' } })
      t.same((await app.inject({ url: '/mine', headers: { 'x-user': '8' } })).json(), { user: '8', calls: 2 })
      const hit = await app.inject({ url: '/mine', headers: { 'x-user': '7' } })
      t.equal(hit.headers['x-cache'], 'HIT')
      t.same(hit.json(), { user: '7', calls: 1 })
      t.equal(await app.cache.evict('/mine', { varyBy: 7 }), true)
      t.equal((await app.inject({ url: '/mine', headers: { 'x-user': '7' } })).headers['x-cache'], 'MISS')
    })

    t.test('key builder: replaces the URL in the key; evict() takes the key it returns', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/search', {
        config: { cache: { group: 'search', key: async (req: any) => `q=${String(req.query.q ?? '').toLowerCase()}` } }
      }, async (req: any) => ({ q: req.query.q, calls: ++calls }))
      await app.inject('/search?q=Cats&utm_source=x')
      const same = await app.inject('/search?q=cats')
      t.equal(same.headers['x-cache'], 'HIT', 'whatever the key builder ignores shares the entry')
      t.same(same.json(), { q: 'Cats', calls: 1 })
      t.equal((await app.inject('/search?q=dogs')).headers['x-cache'], 'MISS')

      t.equal(await app.cache.evict('/search', { key: 'q=cats' }), true)
      t.equal((await app.inject('/search?q=CATS')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/search?q=dogs')).headers['x-cache'], 'HIT')
      await t.rejects(app.cache.evict('/search'), TypeError, 'a key-built route needs the key')
    })

    t.test('write routes drop the writer\'s own variant with evict: { self: true }', async (t) => {
      const app = await build(t, backend)
      const user = (req: any): string => String(req.headers['x-user'])
      let version = 1
      app.get('/prefs', { config: { cache: { varyBy: user } } }, async (req) => ({ user: user(req), version }))
      app.put('/prefs', { config: { cache: { evict: { self: true } } } }, async () => { version++; return { ok: true } })
      await app.inject({ url: '/prefs', headers: { 'x-user': 'a' } })
      await app.inject({ url: '/prefs', headers: { 'x-user': 'b' } })
      await app.inject({ method: 'PUT', url: '/prefs', headers: { 'x-user': 'a' } })
      t.same((await app.inject({ url: '/prefs', headers: { 'x-user': 'a' } })).json(), { user: 'a', version: 2 })
      t.equal((await app.inject({ url: '/prefs', headers: { 'x-user': 'b' } })).headers['x-cache'], 'HIT')
    })
  })
}
