import t from 'tap'
import { Readable } from 'node:stream'
import { backends, build, cleared } from './helpers/app.js'

// The HTTP behaviour of the cache, run against both stores.
for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('MISS runs the handler and stores; HIT replays without running it', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/item', { config: { cache: { ttl: 30 } } }, async () => ({ calls: ++calls }))

      const miss = await app.inject('/item')
      t.equal(miss.statusCode, 200)
      t.equal(miss.headers['x-cache'], 'MISS')
      t.equal(miss.headers['cache-control'], 'max-age=30')
      t.match(miss.headers.etag, /^W\/"/)
      t.same(miss.json(), { calls: 1 })

      const hit = await app.inject('/item')
      t.equal(hit.statusCode, 200)
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.headers.age, '0')
      t.match(hit.headers['cache-control'], /^max-age=(29|30)$/)
      t.equal(hit.headers.etag, miss.headers.etag)
      t.equal(hit.headers['content-type'], 'application/json; charset=utf-8')
      t.equal(hit.headers['content-length'], String(miss.body.length))
      t.equal(hit.body, miss.body)
      t.equal(calls, 1)
    })

    t.test('routes without config.cache are untouched', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/plain', async () => ({ calls: ++calls }))
      app.get('/off', { config: { cache: false } }, async () => ({ calls: ++calls }))
      for (const url of ['/plain', '/plain', '/off', '/off']) {
        const res = await app.inject(url)
        t.equal(res.headers['x-cache'], undefined)
        t.equal(res.headers.etag, undefined)
        t.equal(res.headers['cache-control'], undefined)
      }
      t.equal(calls, 4)
    })

    t.test('header fidelity: end-to-end headers replayed exactly, hop-by-hop and per-message ones never stored', async (t) => {
      const app = await build(t, backend)
      app.get('/doc', { config: { cache: true } }, async (req, reply) => {
        reply.code(203)
        reply.header('content-type', 'application/vnd.api+json; charset=utf-8')
        reply.header('content-disposition', 'attachment; filename="report.json"')
        reply.header('last-modified', 'Tue, 01 Sep 2026 10:00:00 GMT')
        reply.header('link', ['</a>; rel="next"', '</b>; rel="prev"', '</c>; rel="first"'])
        reply.header('x-custom', 'kept')
        reply.header('connection', 'x-hop')
        reply.header('x-hop', 'dropped because Connection names it')
        reply.header('keep-alive', 'timeout=5')
        reply.header('upgrade', 'h2c')
        reply.header('date', 'Mon, 01 Jan 2001 00:00:00 GMT')
        return '{"data":1}'
      })
      await app.inject('/doc')
      const hit = await app.inject('/doc')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.statusCode, 203)
      t.equal(hit.headers['content-type'], 'application/vnd.api+json; charset=utf-8')
      t.equal(hit.headers['content-disposition'], 'attachment; filename="report.json"')
      t.equal(hit.headers['last-modified'], 'Tue, 01 Sep 2026 10:00:00 GMT')
      t.same(hit.headers.link, ['</a>; rel="next"', '</b>; rel="prev"', '</c>; rel="first"'])
      t.equal(hit.headers['x-custom'], 'kept')
      t.equal(hit.headers['x-hop'], undefined)
      t.equal(hit.headers['keep-alive'], undefined)
      t.equal(hit.headers.upgrade, undefined)
      t.not(hit.headers.date, 'Mon, 01 Jan 2001 00:00:00 GMT')
      t.equal(hit.body, '{"data":1}')
    })

    t.test('query normalization: order-insensitive, repeated values ordered, encodings distinct', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/q', { config: { cache: true } }, async (req) => ({ calls: ++calls, query: req.query }))

      t.equal((await app.inject('/q?a=1&b=2')).headers['x-cache'], 'MISS')
      const swapped = await app.inject('/q?b=2&a=1')
      t.equal(swapped.headers['x-cache'], 'HIT')
      t.same(swapped.json().query, { a: '1', b: '2' })

      const encoded = await app.inject('/q?a=1%26b%3D2')
      t.equal(encoded.headers['x-cache'], 'MISS')
      t.same(encoded.json().query, { a: '1&b=2' })

      t.equal((await app.inject('/q?tag=a&tag=b')).headers['x-cache'], 'MISS')
      const reversed = await app.inject('/q?tag=b&tag=a')
      t.equal(reversed.headers['x-cache'], 'MISS')
      t.same(reversed.json().query, { tag: ['b', 'a'] })
      t.equal((await app.inject('/q?tag=a&tag=b')).headers['x-cache'], 'HIT')

      t.equal((await app.inject('/q?s=a+b')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/q?s=a%20b')).headers['x-cache'], 'HIT')
      const bad = await app.inject('/q?bad=%zz')
      t.equal(bad.statusCode, 200)
      t.equal(calls, 6)
    })

    t.test('paths that differ only by separators never share an entry', async (t) => {
      const app = await build(t, backend)
      app.get('/p/*', { config: { cache: true } }, async (req) => ({ url: req.url }))
      t.same((await app.inject('/p/a:b')).json(), { url: '/p/a:b' })
      const other = await app.inject('/p/a/b')
      t.equal(other.headers['x-cache'], 'MISS')
      t.same(other.json(), { url: '/p/a/b' })
      t.same((await app.inject('/p/a:b')).json(), { url: '/p/a:b' })
    })

    t.test('HEAD is answered from the GET entry, without a body', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/h', { config: { cache: true } }, async () => ({ calls: ++calls, pad: 'x'.repeat(100) }))

      const headMiss = await app.inject({ method: 'HEAD', url: '/h' })
      t.equal(headMiss.headers['x-cache'], 'MISS')
      t.equal(headMiss.body, '')
      t.match(headMiss.headers.etag, /^W\//)

      const get = await app.inject('/h')
      t.equal(get.headers['x-cache'], 'HIT', 'a HEAD miss fills the GET entry')
      const head = await app.inject({ method: 'HEAD', url: '/h' })
      t.equal(head.statusCode, 200)
      t.equal(head.headers['x-cache'], 'HIT')
      t.equal(head.body, '')
      t.equal(head.headers['content-length'], String(get.body.length))
      t.equal(head.headers['content-type'], 'application/json; charset=utf-8')
      t.equal(head.headers.etag, get.headers.etag)
      t.equal(calls, 1)
    })

    t.test('streams are teed to the client and stored; oversize streams are served, not stored', async (t) => {
      const app = await build(t, backend, { maxEntrySize: 1000 })
      let calls = 0
      const chunks = (n: number): Readable => Readable.from(Array.from({ length: n }, (_, i) => Buffer.from(`chunk-${i};`)))
      app.get('/stream', { config: { cache: true } }, async (req, reply) => {
        calls++
        reply.header('content-type', 'text/plain')
        return reply.send(chunks(10))
      })
      app.get('/big-stream', { config: { cache: true } }, async (req, reply) => {
        calls++
        reply.header('content-type', 'text/plain')
        return reply.send(chunks(200))
      })
      const expected = Array.from({ length: 10 }, (_, i) => `chunk-${i};`).join('')
      const miss = await app.inject('/stream')
      t.equal(miss.headers['x-cache'], 'MISS')
      t.equal(miss.body, expected)
      const hit = await app.inject('/stream')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.body, expected)
      t.equal(hit.headers['content-type'], 'text/plain')
      t.match(hit.headers.etag, /^W\//)

      const bigExpected = Array.from({ length: 200 }, (_, i) => `chunk-${i};`).join('')
      t.equal((await app.inject('/big-stream')).body, bigExpected)
      const again = await app.inject('/big-stream')
      t.equal(again.headers['x-cache'], 'MISS')
      t.equal(again.body, bigExpected)
      t.equal(calls, 3)
    })

    t.test('a stream that fails midway is not stored', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/broken', { config: { cache: true } }, async (req, reply) => {
        calls++
        const s = new Readable({ read () {} })
        s.push('partial')
        setImmediate(() => s.destroy(new Error('disk gone')))
        return reply.send(s)
      })
      await app.inject('/broken').catch(() => {})
      await app.inject('/broken').catch(() => {})
      t.equal(calls, 2)
    })

    t.test('oversize bodies are served but not stored', async (t) => {
      const app = await build(t, backend, { maxEntrySize: 100 })
      let calls = 0
      app.get('/big', { config: { cache: true } }, async () => { calls++; return 'y'.repeat(101) })
      app.get('/fits', { config: { cache: true } }, async () => { calls++; return 'y'.repeat(100) })
      t.equal((await app.inject('/big')).body.length, 101)
      const again = await app.inject('/big')
      t.equal(again.headers['x-cache'], 'MISS')
      t.equal(again.body.length, 101)
      await app.inject('/fits')
      t.equal((await app.inject('/fits')).headers['x-cache'], 'HIT')
      t.equal(calls, 3)
    })

    t.test('If-None-Match: weak comparison, lists and * answer 304 on a HIT', async (t) => {
      const app = await build(t, backend)
      app.get('/tagged', { config: { cache: { ttl: 50 } } }, async (req, reply) => {
        reply.header('etag', '"v1"')
        reply.header('vary', 'accept-language')
        reply.header('content-location', '/tagged')
        reply.header('x-custom', 'body metadata')
        return { version: 1 }
      })
      const first = await app.inject('/tagged')
      t.equal(first.headers.etag, '"v1"', 'the handler ETag is kept')

      for (const inm of ['"v1"', 'W/"v1"', '"nope", W/"v1"', '*']) {
        const res = await app.inject({ url: '/tagged', headers: { 'if-none-match': inm } })
        t.equal(res.statusCode, 304, `If-None-Match: ${inm}`)
        t.equal(res.body, '')
        t.equal(res.headers['x-cache'], 'HIT')
        t.equal(res.headers.etag, '"v1"')
        t.match(res.headers['cache-control'], /^max-age=\d+$/)
        t.equal(res.headers.vary, 'accept-language')
        t.equal(res.headers['content-location'], '/tagged')
        t.equal(res.headers.age, '0')
        t.equal(res.headers['content-type'], undefined)
        t.equal(res.headers['content-length'], undefined)
        t.equal(res.headers['x-custom'], undefined)
      }
      for (const inm of ['"v2"', 'W/"v2", "v3"', 'garbage', '', '"v1']) {
        const res = await app.inject({ url: '/tagged', headers: { 'if-none-match': inm } })
        t.equal(res.statusCode, 200, `If-None-Match: ${JSON.stringify(inm)}`)
        t.same(res.json(), { version: 1 })
      }
    })

    t.test('If-None-Match on a MISS whose fresh response matches answers 304 and still stores', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      let n = 0
      app.get('/gen', { config: { cache: true } }, async () => { n++; return 'generated' })
      app.get('/fresh', { config: { cache: true } }, async (req, reply) => {
        calls++
        reply.header('etag', '"same"')
        return 'content'
      })
      const miss = await app.inject({ url: '/fresh', headers: { 'if-none-match': '"same"' } })
      t.equal(miss.statusCode, 304)
      t.equal(miss.headers['x-cache'], 'MISS')
      t.equal(miss.body, '')
      t.equal(miss.headers['content-type'], undefined)
      t.equal(miss.headers.etag, '"same"')
      const hit = await app.inject('/fresh')
      t.equal(hit.statusCode, 200)
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.body, 'content')
      t.equal(calls, 1)

      // the generated weak ETag matches on a MISS too
      const etag = (await app.inject('/gen')).headers.etag as string
      await app.cache.evict('/gen')
      const again = await app.inject({ url: '/gen', headers: { 'if-none-match': etag } })
      t.equal(again.statusCode, 304)
      t.equal(again.headers['x-cache'], 'MISS')
      t.equal(n, 2)
    })

    t.test('If-Modified-Since against the stored Last-Modified; If-None-Match takes precedence', async (t) => {
      const app = await build(t, backend)
      app.get('/dated', { config: { cache: true } }, async (req, reply) => {
        reply.header('last-modified', 'Tue, 01 Sep 2026 10:00:00 GMT')
        return 'dated'
      })
      await app.inject('/dated')
      const same = await app.inject({ url: '/dated', headers: { 'if-modified-since': 'Tue, 01 Sep 2026 10:00:00 GMT' } })
      t.equal(same.statusCode, 304)
      const later = await app.inject({ url: '/dated', headers: { 'if-modified-since': 'Wed, 02 Sep 2026 10:00:00 GMT' } })
      t.equal(later.statusCode, 304)
      const earlier = await app.inject({ url: '/dated', headers: { 'if-modified-since': 'Mon, 31 Aug 2026 10:00:00 GMT' } })
      t.equal(earlier.statusCode, 200)
      t.equal(earlier.body, 'dated')
      const garbage = await app.inject({ url: '/dated', headers: { 'if-modified-since': 'not a date' } })
      t.equal(garbage.statusCode, 200)
      const both = await app.inject({ url: '/dated', headers: { 'if-none-match': '"other"', 'if-modified-since': 'Wed, 02 Sep 2026 10:00:00 GMT' } })
      t.equal(both.statusCode, 200, 'a non-matching If-None-Match wins over a matching If-Modified-Since')
    })

    t.test('client Cache-Control: no-store bypasses; no-cache, max-age=0 and Pragma refresh', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/d', { config: { cache: true } }, async () => ({ calls: ++calls }))

      const bypass = await app.inject({ url: '/d', headers: { 'cache-control': 'no-store' } })
      t.equal(bypass.headers['x-cache'], 'BYPASS')
      t.equal(bypass.headers.etag, undefined)
      t.equal((await app.inject('/d')).headers['x-cache'], 'MISS', 'no-store wrote nothing')
      t.same((await app.inject('/d')).json(), { calls: 2 })

      for (const headers of [{ 'cache-control': 'no-cache' }, { 'cache-control': 'max-age=0' }, { pragma: 'no-cache' }]) {
        const before = calls
        const refreshed = await app.inject({ url: '/d', headers })
        t.equal(refreshed.headers['x-cache'], 'MISS', JSON.stringify(headers))
        t.same(refreshed.json(), { calls: before + 1 })
        const after = await app.inject('/d')
        t.equal(after.headers['x-cache'], 'HIT')
        t.same(after.json(), { calls: before + 1 }, 'the refreshed response was stored')
      }
      const pragmaIgnored = await app.inject({ url: '/d', headers: { pragma: 'no-cache', 'cache-control': 'max-age=600' } })
      t.equal(pragmaIgnored.headers['x-cache'], 'HIT', 'Pragma only counts without Cache-Control')
      const garbage = await app.inject({ url: '/d', headers: { 'cache-control': ',,=;max-age=abc, foo="' } })
      t.equal(garbage.headers['x-cache'], 'HIT')
      const huge = await app.inject({ url: '/d', headers: { 'cache-control': 'max-age=99999999999' } })
      t.equal(huge.headers['x-cache'], 'HIT')
    })

    t.test('client max-age=N treats an entry older than N seconds as a miss', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/aged', { config: { cache: { ttl: 60 } } }, async () => ({ calls: ++calls }))
      await app.inject('/aged')
      t.equal((await app.inject({ url: '/aged', headers: { 'cache-control': 'max-age=1' } })).headers['x-cache'], 'HIT')
      await new Promise((resolve) => setTimeout(resolve, 1100))
      const old = await app.inject({ url: '/aged', headers: { 'cache-control': 'max-age=1' } })
      t.equal(old.headers['x-cache'], 'MISS')
      t.same(old.json(), { calls: 2 })
      const hit = await app.inject({ url: '/aged', headers: { 'cache-control': 'max-age=1' } })
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.headers.age, '0')
    })

    t.test('clientDirectives: false (plugin or route) ignores client refreshes', async (t) => {
      const app = await build(t, backend, { clientDirectives: false })
      let calls = 0
      app.get('/locked', { config: { cache: true } }, async () => ({ calls: ++calls }))
      app.get('/open', { config: { cache: { clientDirectives: true } } }, async () => ({ calls: ++calls }))
      await app.inject('/locked')
      for (const headers of [{ 'cache-control': 'no-cache' }, { 'cache-control': 'no-store' }, { pragma: 'no-cache' }]) {
        t.equal((await app.inject({ url: '/locked', headers })).headers['x-cache'], 'HIT')
      }
      await app.inject('/open')
      t.equal((await app.inject({ url: '/open', headers: { 'cache-control': 'no-cache' } })).headers['x-cache'], 'MISS')
      t.equal(calls, 3)
    })

    t.test('never stored: Set-Cookie, handler no-store/private, Vary *, errors, non-2xx, 206', async (t) => {
      const app = await build(t, backend)
      const calls: Record<string, number> = {}
      const route = (url: string, handler: (req: any, reply: any) => Promise<unknown>): void => {
        app.get(url, { config: { cache: true } }, async (req, reply) => {
          calls[url] = (calls[url] ?? 0) + 1
          return await handler(req, reply)
        })
      }
      route('/cookie', async (req, reply) => { reply.header('set-cookie', 'sid=1'); return 'x' })
      route('/no-store', async (req, reply) => { reply.header('cache-control', 'no-store'); return 'x' })
      route('/private', async (req, reply) => { reply.header('cache-control', 'private, max-age=10'); return 'x' })
      route('/vary-star', async (req, reply) => { reply.header('vary', '*'); return 'x' })
      route('/throws', async () => { throw new Error('boom') })
      route('/404', async (req, reply) => reply.code(404).send({ missing: true }))
      route('/redirect', async (req, reply) => reply.redirect('/elsewhere'))
      route('/partial', async (req, reply) => reply.code(206).send('part'))
      for (const url of Object.keys(calls).length === 0 ? ['/cookie', '/no-store', '/private', '/vary-star', '/throws', '/404', '/redirect', '/partial'] : []) {
        const first = await app.inject(url)
        const second = await app.inject(url)
        t.equal(second.headers['x-cache'], 'MISS', url)
        t.equal(second.statusCode, first.statusCode, url)
        t.equal(calls[url], 2, `${url} ran its handler twice`)
      }
      const cookie = await app.inject('/cookie')
      t.equal(cookie.headers['set-cookie'], 'sid=1')
      t.equal((await app.inject('/no-store')).headers['cache-control'], 'no-store', 'the handler Cache-Control passes through')
      t.equal((await app.inject('/throws')).statusCode, 500)
    })

    t.test('private routes store the response and mark it Cache-Control: private', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/mine', { config: { cache: { ttl: 20, private: true } } }, async (req, reply) => {
        calls++
        reply.header('cache-control', 'private')
        return 'profile'
      })
      t.equal((await app.inject('/mine')).headers['cache-control'], 'private, max-age=20')
      const hit = await app.inject('/mine')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.match(hit.headers['cache-control'], /^private, max-age=(19|20)$/)
      t.equal(calls, 1)
    })

    t.test('ttl 0 never expires and asks clients to revalidate', async (t) => {
      const app = await build(t, backend, { ttl: 0 })
      let calls = 0
      app.get('/forever', { config: { cache: true } }, async () => ({ calls: ++calls }))
      t.equal((await app.inject('/forever')).headers['cache-control'], 'no-cache')
      const hit = await app.inject('/forever')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.headers['cache-control'], 'no-cache')
      const revalidated = await app.inject({ url: '/forever', headers: { 'if-none-match': hit.headers.etag as string } })
      t.equal(revalidated.statusCode, 304)
      t.equal(calls, 1)
    })

    t.test('entries expire after their ttl', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/short', { config: { cache: { ttl: 1 } } }, async () => ({ calls: ++calls }))
      await app.inject('/short')
      t.equal((await app.inject('/short')).headers['x-cache'], 'HIT')
      await new Promise((resolve) => setTimeout(resolve, 1100))
      const expired = await app.inject('/short')
      t.equal(expired.headers['x-cache'], 'MISS')
      t.same(expired.json(), { calls: 2 })
    })

    t.test('Range and Authorization requests bypass the cache', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/r', { config: { cache: true } }, async () => ({ calls: ++calls }))
      await app.inject('/r')
      const ranged = await app.inject({ url: '/r', headers: { range: 'bytes=0-3' } })
      t.equal(ranged.headers['x-cache'], 'BYPASS')
      const authed = await app.inject({ url: '/r', headers: { authorization: 'Bearer secret' } })
      t.equal(authed.headers['x-cache'], 'BYPASS')
      t.same(authed.json(), { calls: 3 })
      t.same((await app.inject('/r')).json(), { calls: 1 }, 'the authorized response was not stored')
    })

    t.test('a HIT never skips the route\'s own preHandler/preValidation checks (auth ordering)', async (t) => {
      const app = await build(t, backend)
      let checks = 0
      let calls = 0
      const auth = async (req: any, reply: any): Promise<void> => {
        checks++
        if (req.headers['x-api-key'] !== 'good') await reply.code(401).send({ error: 'unauthorized' })
      }
      app.get('/secret', { preHandler: auth, config: { cache: true } }, async () => ({ calls: ++calls }))
      app.get('/validated', { preValidation: auth, config: { cache: true } }, async () => ({ calls: ++calls }))
      for (const url of ['/secret', '/validated']) {
        t.equal((await app.inject({ url, headers: { 'x-api-key': 'good' } })).headers['x-cache'], 'MISS')
        const hit = await app.inject({ url, headers: { 'x-api-key': 'good' } })
        t.equal(hit.headers['x-cache'], 'HIT', `${url} still caches`)
        const denied = await app.inject(url)
        t.equal(denied.statusCode, 401, `${url} denies a request without the key although the entry is warm`)
        t.same(denied.json(), { error: 'unauthorized' })
        t.equal(denied.headers['x-cache'], undefined)
      }
      t.equal(checks, 6, 'the check ran on every request')
      t.equal(calls, 2, 'HITs still skip the handler')
    })

    t.test('responses with Vary are only served to requests with the same header values', async (t) => {
      const app = await build(t, backend)
      app.get('/lang', { config: { cache: true } }, async (req, reply) => {
        reply.header('vary', 'Accept-Language')
        return { lang: req.headers['accept-language'] ?? 'none' }
      })
      t.same((await app.inject({ url: '/lang', headers: { 'accept-language': 'fr' } })).json(), { lang: 'fr' })
      const fr = await app.inject({ url: '/lang', headers: { 'accept-language': 'fr' } })
      t.equal(fr.headers['x-cache'], 'HIT')
      t.equal(fr.headers.vary, 'Accept-Language')
      const en = await app.inject({ url: '/lang', headers: { 'accept-language': 'en' } })
      t.equal(en.headers['x-cache'], 'MISS')
      t.same(en.json(), { lang: 'en' })
      t.same((await app.inject('/lang')).json(), { lang: 'none' })
    })

    t.test('statusHeader: a custom name, or none', async (t) => {
      const named = await build(t, backend, { statusHeader: 'X-Edge-Cache' })
      named.get('/n', { config: { cache: true } }, async () => 'n')
      await named.inject('/n')
      t.equal((await named.inject('/n')).headers['x-edge-cache'], 'HIT')

      const silent = await build(t, backend, { statusHeader: false })
      silent.get('/s', { config: { cache: true } }, async () => 's')
      await silent.inject('/s')
      const hit = await silent.inject('/s')
      t.equal(hit.headers['x-cache'], undefined)
      t.equal(hit.headers.age, '0', 'still a HIT')
    })

    t.test('bodies of every kind: serialized JSON with a schema, Buffer, empty 204', async (t) => {
      const app = await build(t, backend)
      app.get('/schema', {
        config: { cache: true },
        schema: { response: { 200: { type: 'object', properties: { keep: { type: 'string' } } } } }
      }, async () => ({ keep: 'yes', drop: 'no' }))
      app.get('/buffer', { config: { cache: true } }, async (req, reply) => {
        reply.header('content-type', 'application/octet-stream')
        return Buffer.from([0, 1, 2, 255])
      })
      app.get('/empty', { config: { cache: true } }, async (req, reply) => reply.code(204).send())
      for (const url of ['/schema', '/buffer', '/empty']) await app.inject(url)

      const schema = await app.inject('/schema')
      t.equal(schema.headers['x-cache'], 'HIT')
      t.same(schema.json(), { keep: 'yes' })
      const buffer = await app.inject('/buffer')
      t.equal(buffer.headers['x-cache'], 'HIT')
      t.same([...buffer.rawPayload], [0, 1, 2, 255])
      const empty = await app.inject('/empty')
      t.equal(empty.headers['x-cache'], 'HIT')
      t.equal(empty.statusCode, 204)
      t.equal(empty.body, '')
    })

    t.test('groups: evictGroup from a write handler drops exactly that group', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/products/:id', { config: { cache: { group: 'products' } } }, async (req) => ({ calls: ++calls }))
      app.get('/users/:id', { config: { cache: { group: 'users' } } }, async () => ({ calls: ++calls }))
      app.post('/products', async () => ({ evicted: await app.cache.evictGroup('products') }))
      for (const url of ['/products/1', '/products/2', '/products/3?x=1', '/users/1']) await app.inject(url)

      const res = await app.inject({ method: 'POST', url: '/products' })
      t.same(res.json(), { evicted: 3 })
      t.equal((await app.inject('/products/1')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/users/1')).headers['x-cache'], 'HIT')
      t.equal(await app.cache.evictGroup('products'), 1)
      t.equal(await app.cache.evictGroup('nothing-here'), 0)
    })

    t.test('evict(url) drops the entry a GET of that URL would hit, whatever the query order', async (t) => {
      const app = await build(t, backend)
      app.get('/items/:id', { config: { cache: { group: 'items' } } }, async (req) => ({ url: req.url }))
      await app.inject('/items/1?a=1&b=2')
      await app.inject('/items/2')
      t.equal(await app.cache.evict('/items/1?b=2&a=1'), true)
      t.equal(await app.cache.evict('/items/1?b=2&a=1'), false)
      t.equal((await app.inject('/items/1?a=1&b=2')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/items/2')).headers['x-cache'], 'HIT')
      t.equal(await app.cache.evict('/items/2', { group: 'wrong' }), false)
      await t.rejects(app.cache.evict('no-slash'), TypeError)
      await t.rejects(app.cache.evictGroup('a{b}'), TypeError)
    })

    t.test('application values: get/set/has/delete, groups and clear', async (t) => {
      const app = await build(t, backend)
      t.equal(app.cache.storeName, backend.name)
      await app.cache.set('user:1', { name: 'Ada', tags: ['x'], at: 1 })
      t.same(await app.cache.get('user:1'), { name: 'Ada', tags: ['x'], at: 1 })
      t.equal(await app.cache.has('user:1'), true)
      t.equal(await app.cache.get('missing'), undefined)
      t.equal(await app.cache.has('missing'), false)
      await app.cache.set('undef', undefined)
      t.equal(await app.cache.has('undef'), true, 'a stored undefined is still present')
      await app.cache.set('n', 42, { ttl: 10, group: 'numbers' })
      t.equal(await app.cache.get('n'), undefined, 'values live in their group')
      t.equal(await app.cache.get('n', { group: 'numbers' }), 42)
      t.equal(await app.cache.evictGroup('numbers'), 1)
      t.equal(await app.cache.get('n', { group: 'numbers' }), undefined)
      t.equal(await app.cache.delete('user:1'), true)
      t.equal(await app.cache.delete('user:1'), false)
      await t.rejects(app.cache.set('', 1), TypeError)
      await t.rejects(app.cache.set('k', 1, { ttl: -1 }), TypeError)

      app.get('/c', { config: { cache: { group: 'g1' } } }, async () => 'c')
      await app.inject('/c')
      await app.cache.set('a', 1)
      t.equal(await app.cache.clear(), cleared(backend, 3))
      t.equal((await app.inject('/c')).headers['x-cache'], 'MISS')
      t.equal(await app.cache.has('a'), false)
    })
  })
}
