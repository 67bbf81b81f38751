import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import compress from '@fastify/compress'
import cors from '@fastify/cors'
import etag from '@fastify/etag'
import helmet from '@fastify/helmet'
import proxy from '@fastify/http-proxy'
import replyFrom from '@fastify/reply-from'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { backends, type Backend, type TapLike } from './helpers/app.js'
import { startUpstream } from './helpers/upstream.js'

// The cache next to the plugins every Fastify app has, registered in the same app, before and after it.

type Plugin = [unknown, Record<string, unknown>]
const ORDERS = ['plugins first', 'cache first'] as const
type Order = typeof ORDERS[number]

async function appWith (t: TapLike, backend: Backend, order: Order, plugins: Plugin[], options: HttpCacheOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  const cache = async (): Promise<void> => { await app.register(httpCache, { ...(await backend.options(t)), ...options }) }
  if (order === 'cache first') await cache()
  for (const [plugin, opts] of plugins) await app.register(plugin as FastifyPluginAsync, opts)
  if (order === 'plugins first') await cache()
  return app
}

// compress's default threshold is 1 KiB: bodies below it go uncompressed
const TEXT = 'lorem ipsum dolor sit amet '.repeat(100)
const DECODE: Record<string, (b: Buffer) => Buffer> = {
  gzip: zlib.gunzipSync,
  br: zlib.brotliDecompressSync,
  deflate: zlib.inflateSync
}

function decoded (res: { headers: Record<string, unknown>, rawPayload: Buffer }): string {
  const encoding = res.headers['content-encoding'] as string | undefined
  return (encoding === undefined ? res.rawPayload : DECODE[encoding](res.rawPayload)).toString()
}

const hasVary = (res: { headers: Record<string, unknown> }, name: string): boolean =>
  String(res.headers.vary ?? '').toLowerCase().split(',').map((s) => s.trim()).includes(name.toLowerCase())

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    for (const order of ORDERS) {
      t.test(`@fastify/compress, ${order}`, async (t) => {
        for (const policy of ['ttl', 'http'] as const) {
          t.test(`one entry per URL, each client its own encoding (policy ${policy})`, async (t) => {
            const app = await appWith(t, backend, order, [[compress, {}]])
            const runs: Record<string, number> = {}
            const cache = policy === 'ttl' ? { ttl: 30 } : { policy }
            const cc = (reply: { header: (n: string, v: string) => unknown }): void => { if (policy === 'http') reply.header('cache-control', 'max-age=30') }
            const bodies: Record<string, string> = {
              '/string': TEXT,
              '/buffer': TEXT,
              '/object': JSON.stringify({ text: TEXT }),
              '/stream': TEXT
            }
            app.get('/string', { config: { cache } }, async (req, reply) => { runs.string = (runs.string ?? 0) + 1; cc(reply); reply.type('text/plain'); return TEXT })
            app.get('/buffer', { config: { cache } }, async (req, reply) => { runs.buffer = (runs.buffer ?? 0) + 1; cc(reply); reply.type('text/plain'); return Buffer.from(TEXT) })
            app.get('/object', { config: { cache } }, async (req, reply) => { runs.object = (runs.object ?? 0) + 1; cc(reply); return { text: TEXT } })
            app.get('/stream', { config: { cache } }, (req, reply) => {
              runs.stream = (runs.stream ?? 0) + 1
              cc(reply)
              reply.type('text/plain').send(Readable.from([TEXT.slice(0, 1000), TEXT.slice(1000)]))
            })
            for (const url of Object.keys(bodies)) {
              const seen: string[] = []
              for (const accept of ['gzip', 'br', undefined, 'deflate', 'gzip', 'identity', undefined, 'br']) {
                const res = await app.inject({ url, headers: accept === undefined ? {} : { 'accept-encoding': accept } })
                seen.push(String(res.headers['x-cache']))
                t.equal(res.statusCode, 200, `${url} ${accept ?? 'none'}`)
                const want = accept === undefined || accept === 'identity' ? undefined : accept
                t.equal(res.headers['content-encoding'], want, `${url}: ${accept ?? 'no Accept-Encoding'} gets ${want ?? 'identity'}`)
                t.equal(decoded(res), bodies[url], `${url} ${accept ?? 'none'}: the body`)
                if (want !== undefined) t.ok(hasVary(res, 'accept-encoding'), `${url} ${accept}: Vary: Accept-Encoding`)
              }
              t.same(seen, ['MISS', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT'], `${url}: one entry for every encoding`)
            }
            t.same(runs, { string: 1, buffer: 1, object: 1, stream: 1 }, 'each handler ran once')
          })
        }

        t.test('a body the handler encoded itself is stored encoded, for the clients that accept it only', async (t) => {
          const app = await appWith(t, backend, order, [[compress, {}]])
          let runs = 0
          app.get('/pre', { config: { cache: { ttl: 30 } } }, async (req, reply) => {
            runs++
            const gzip = String(req.headers['accept-encoding'] ?? '').includes('gzip')
            reply.type('text/plain')
            if (!gzip) return TEXT
            reply.header('content-encoding', 'gzip')
            return zlib.gzipSync(TEXT)
          })
          const a = await app.inject({ url: '/pre', headers: { 'accept-encoding': 'gzip' } })
          t.equal(a.headers['content-encoding'], 'gzip')
          t.ok(hasVary(a, 'accept-encoding'))
          t.equal(decoded(a), TEXT)
          const b = await app.inject({ url: '/pre', headers: { 'accept-encoding': 'gzip' } })
          t.equal(b.headers['x-cache'], 'HIT')
          t.equal(decoded(b), TEXT)
          const plain = await app.inject('/pre')
          t.equal(plain.headers['x-cache'], 'MISS', 'a client without gzip does not get the gzip entry')
          t.equal(plain.headers['content-encoding'], undefined)
          t.equal(plain.body, TEXT)
          t.equal(runs, 2)
        })
      })

      t.test(`@fastify/cors, ${order}`, async (t) => {
        const A = 'https://a.example'
        const B = 'https://b.example'
        for (const [label, opts] of [['an origin list', { origin: [A, B], credentials: true, exposedHeaders: ['x-total'] }], ['origin: true', { origin: true }]] as const) {
          for (const policy of ['ttl', 'http'] as const) {
            t.test(`${label}: one entry per URL, every HIT with its own request's CORS headers (policy ${policy})`, async (t) => {
              const app = await appWith(t, backend, order, [[cors, opts]])
              let runs = 0
              app.get('/c', { config: { cache: policy === 'ttl' ? { ttl: 30 } : { policy } } }, async (req, reply) => {
                runs++
                if (policy === 'http') reply.header('cache-control', 'max-age=30')
                return { ok: true }
              })
              const seen: string[] = []
              for (const origin of [A, B, 'https://evil.example', undefined, A, B]) {
                const res = await app.inject({ url: '/c', headers: origin === undefined ? {} : { origin } })
                seen.push(String(res.headers['x-cache']))
                t.equal(res.body, '{"ok":true}')
                t.ok(hasVary(res, 'origin'), `${origin ?? 'no origin'}: Vary: Origin goes downstream`)
                const allowed = label === 'origin: true' ? origin : origin === A || origin === B ? origin : undefined
                t.equal(res.headers['access-control-allow-origin'], allowed, `${origin ?? 'no origin'}: its own Access-Control-Allow-Origin`)
                if (label === 'an origin list') t.equal(res.headers['access-control-expose-headers'], 'x-total')
              }
              t.same(seen, ['MISS', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT'], 'one entry, whatever the Origin')
              t.equal(runs, 1)
            })
          }
        }

        t.test('a route varying on Origin itself keeps its entries per origin', async (t) => {
          const app = await appWith(t, backend, order, [[cors, { origin: true }]])
          let runs = 0
          app.get('/v', { config: { cache: { ttl: 30, vary: ['origin'] } } }, async (req) => { runs++; return `for ${String(req.headers.origin)}` })
          t.equal((await app.inject({ url: '/v', headers: { origin: A } })).body, `for ${A}`)
          const b = await app.inject({ url: '/v', headers: { origin: B } })
          t.equal(b.headers['x-cache'], 'MISS')
          t.equal(b.body, `for ${B}`)
          const a = await app.inject({ url: '/v', headers: { origin: A } })
          t.equal(a.headers['x-cache'], 'HIT')
          t.equal(a.body, `for ${A}`)
          t.equal(a.headers['access-control-allow-origin'], A)
          t.equal(runs, 2)
        })
      })

      t.test(`@fastify/etag, ${order}`, async (t) => {
        const app = await appWith(t, backend, order, [[etag, {}], [compress, {}]])
        let runs = 0
        app.get('/e', { config: { cache: { ttl: 30 } } }, async (req, reply) => { runs++; reply.type('text/plain'); return TEXT })
        const miss = await app.inject('/e')
        const tag = miss.headers.etag
        t.type(tag, 'string')
        const hit = await app.inject({ url: '/e', headers: { 'accept-encoding': 'gzip' } })
        t.equal(hit.headers['x-cache'], 'HIT')
        t.equal(hit.headers.etag, tag, 'one ETag, MISS and HIT')
        t.equal(decoded(hit), TEXT)
        const cond = await app.inject({ url: '/e', headers: { 'if-none-match': tag as string } })
        t.equal(cond.statusCode, 304)
        t.equal(cond.headers.etag, tag)
        t.equal(cond.body, '')
        const other = await app.inject({ url: '/e', headers: { 'if-none-match': '"other"' } })
        t.equal(other.statusCode, 200)
        t.equal(other.body, TEXT)
        t.equal(runs, 1)
      })

      t.test(`@fastify/helmet, ${order}`, async (t) => {
        const app = await appWith(t, backend, order, [[helmet, {}]])
        let runs = 0
        app.get('/h', { config: { cache: { ttl: 30 } } }, async () => { runs++; return 'ok' })
        const miss = await app.inject('/h')
        const hit = await app.inject('/h')
        t.equal(hit.headers['x-cache'], 'HIT')
        const theirs = (h: Record<string, unknown>): Record<string, unknown> => {
          const out: Record<string, unknown> = {}
          for (const name of ['content-security-policy', 'cross-origin-opener-policy', 'cross-origin-resource-policy', 'origin-agent-cluster',
            'referrer-policy', 'strict-transport-security', 'x-content-type-options', 'x-dns-prefetch-control', 'x-download-options',
            'x-frame-options', 'x-permitted-cross-domain-policies', 'x-xss-protection']) out[name] = h[name]
          return out
        }
        t.ok(miss.headers['content-security-policy'])
        t.same(theirs(hit.headers), theirs(miss.headers), 'the same helmet headers on the HIT')
        t.equal(runs, 1)
      })
    }

    t.test('a header a hook sets per request (a request id) is that request\'s on every HIT', async (t) => {
      const app = Fastify({ genReqId: (() => { let n = 0; return () => `req-${++n}` })() })
      t.teardown(() => app.close())
      app.addHook('onRequest', async (req, reply) => { reply.header('x-request-id', req.id) })
      await app.register(httpCache, await backend.options(t))
      app.get('/id', { config: { cache: { ttl: 30 } } }, async () => 'ok')
      t.equal((await app.inject('/id')).headers['x-request-id'], 'req-1')
      const hit = await app.inject('/id')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.headers['x-request-id'], 'req-2')
    })

    t.test('a header the handler changes from what a hook set is the handler\'s, and stored', async (t) => {
      const app = Fastify()
      t.teardown(() => app.close())
      app.addHook('onRequest', async (req, reply) => { reply.header('x-owner', 'hook').header('link', ['</a>; rel=a', '</b>; rel=b']) })
      await app.register(httpCache, await backend.options(t))
      let runs = 0
      app.get('/own', { config: { cache: { ttl: 30 } } }, async (req, reply) => {
        runs++
        reply.header('x-owner', 'handler')
        return 'ok'
      })
      t.equal((await app.inject('/own')).headers['x-owner'], 'handler')
      const hit = await app.inject('/own')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.headers['x-owner'], 'handler', 'replayed from the entry')
      t.same(hit.headers.link, ['</a>; rel=a', '</b>; rel=b'], 'the hook\'s own, once')
      t.equal(runs, 1)
    })

    t.test('handlers: async and callback, return and reply.send, JSON-schema serialization', async (t) => {
      const app = Fastify()
      t.teardown(() => app.close())
      await app.register(httpCache, await backend.options(t))
      await app.register(compress, {})
      const runs: Record<string, number> = {}
      const count = (name: string): void => { runs[name] = (runs[name] ?? 0) + 1 }
      const schema = { response: { 200: { type: 'object', properties: { id: { type: 'integer' }, name: { type: 'string' } } } } }
      const cache = { ttl: 30 }
      app.get('/return', { schema, config: { cache } }, async () => { count('return'); return { id: 1, name: 'a', secret: 'x' } })
      app.get('/send', { schema, config: { cache } }, async (req, reply) => { count('send'); return reply.send({ id: 2, name: 'b', secret: 'x' }) })
      app.get('/callback', { schema, config: { cache } }, (req, reply) => { count('callback'); reply.send({ id: 3, name: 'c', secret: 'x' }) })
      app.get('/later', { schema, config: { cache } }, (req, reply) => { count('later'); setImmediate(() => reply.send({ id: 4, name: 'd', secret: 'x' })) })
      const want: Record<string, string> = { '/return': '{"id":1,"name":"a"}', '/send': '{"id":2,"name":"b"}', '/callback': '{"id":3,"name":"c"}', '/later': '{"id":4,"name":"d"}' }
      for (const url of Object.keys(want)) {
        for (const label of ['MISS', 'HIT', 'HIT']) {
          const res = await app.inject(url)
          t.equal(res.headers['x-cache'], label, url)
          t.equal(res.body, want[url], `${url}: serialized by the schema (no secret)`)
          t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
        }
      }
      t.same(runs, { return: 1, send: 1, callback: 1, later: 1 })
    })

    t.test('@fastify/http-proxy and @fastify/reply-from routes, with cors and compress', async (t) => {
      for (const order of ORDERS) {
        t.test(order, async (t) => {
          const upstream = await startUpstream(t)
          upstream.on('/api/doc', () => ({ headers: { 'cache-control': 'max-age=30' }, body: TEXT }))
          upstream.on('/from/doc', () => ({ headers: { 'cache-control': 'max-age=30' }, body: TEXT }))
          const app = await appWith(t, backend, order, [[cors, { origin: ['https://a.example'] }], [compress, {}]])
          // proxy routes are declared when @fastify/http-proxy loads: after the cache, so it sees them
          await app.register(proxy, { upstream: upstream.url, prefix: '/api', rewritePrefix: '/api', config: { cache: { policy: 'http', group: 'api' } } })
          await app.register(async (app) => {
            await app.register(replyFrom, { base: upstream.url })
            app.get('/from/*', { config: { cache: { ttl: 30, group: 'from' } } }, (req, reply) => { reply.from(req.url) })
          })
          for (const url of ['/api/doc', '/from/doc']) {
            const seen: string[] = []
            for (const [accept, origin] of [['gzip', 'https://a.example'], [undefined, undefined], ['br', 'https://b.example'], ['gzip', 'https://a.example']]) {
              const headers: Record<string, string> = {}
              if (accept !== undefined) headers['accept-encoding'] = accept
              if (origin !== undefined) headers.origin = origin
              const res = await app.inject({ url, headers })
              seen.push(String(res.headers['x-cache']))
              t.equal(res.statusCode, 200)
              t.equal(res.headers['content-encoding'], accept, `${url} ${accept ?? 'none'}`)
              t.equal(decoded(res), TEXT)
              t.equal(res.headers['access-control-allow-origin'], origin === 'https://a.example' ? origin : undefined)
            }
            t.same(seen, ['MISS', 'HIT', 'HIT', 'HIT'], url)
            t.equal(upstream.count(url), 1, `${url}: the origin saw one request`)
          }
        })
      }
    })
  })
}
