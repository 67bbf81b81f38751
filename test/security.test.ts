// Hardening: what a hostile or careless client, proxy or neighbour can do to the cache, run against both
// stores (memory and a real throwaway redis-server). Auth ordering (a HIT never skips a check the route's
// hooks would make), Authorization (RFC 9111 §3.5), cache poisoning through Host / X-Forwarded-* /
// Forwarded, hostile request input (huge or broken URLs, NUL/CRLF, garbage directives and validators),
// bad group/tag names, and foreign values at the keys the plugin reads.
import t from 'tap'
import net from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Packr } from 'msgpackr'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { backends, routeError, type Backend, type TapLike } from './helpers/app.js'
import { until } from './helpers/until.js'

let opened = 0

/** An app with the plugin on `backend`, built with Fastify options of the test's choosing (trustProxy). */
async function open (t: TapLike, backend: Backend, options: HttpCacheOptions = {}, server: FastifyServerOptions = {}): Promise<{ app: FastifyInstance, redis: Redis | undefined, prefix: string }> {
  const base = await backend.options(t)
  const prefix = `sec${++opened}`
  const app = Fastify(server)
  t.teardown(() => app.close())
  await app.register(httpCache, { ...base, prefix, ...options })
  return { app, redis: base.redis as Redis | undefined, prefix }
}

/** Entry keys of a prefix (Redis only), once `n` of them exist: the plugin writes after responding. */
async function entryKeys (redis: Redis, prefix: string, n?: number): Promise<string[]> {
  const list = async (): Promise<string[]> => (await redis.keys(`${prefix}:*`)).filter((k) => k.includes(':e:GET:')).sort()
  if (n !== undefined) await until(`${n} entries under ${prefix}`, async () => (await list()).length === n)
  return await list()
}

/** Every key of a prefix (Redis only). */
async function allKeys (redis: Redis, prefix: string): Promise<string[]> {
  return (await redis.keys(`${prefix}:*`)).sort()
}

const API_KEY = 'k-123'

// ---------------------------------------------------------------------------------------------------
// 1. Auth ordering: wherever the check lives, a HIT is served only after it passed.

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>
type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
interface AuthVariant {
  name: string
  /** Why the variant currently fails (a bug in lib/, described in the report). */
  todo?: string
  /** The plugin may refuse to cache the route instead (it cannot put its lookup after the check). */
  mayNotCache?: true
  setup: (app: FastifyInstance, auth: Hook, handler: Handler) => void | Promise<void>
}

const cached = { config: { cache: true } }

const AUTH_VARIANTS: AuthVariant[] = [
  { name: 'the route\'s own onRequest', setup: (app, auth, h) => { app.get('/secret', { onRequest: auth, ...cached }, h) } },
  { name: 'the route\'s own preValidation', setup: (app, auth, h) => { app.get('/secret', { preValidation: auth, ...cached }, h) } },
  { name: 'the route\'s own preHandler', setup: (app, auth, h) => { app.get('/secret', { preHandler: auth, ...cached }, h) } },
  { name: 'the route\'s own preHandler list, check last', setup: (app, auth, h) => { app.get('/secret', { preHandler: [async () => {}, auth], ...cached }, h) } },
  {
    name: 'a root onRequest hook',
    setup: (app, auth, h) => {
      app.addHook('onRequest', auth)
      app.get('/secret', cached, h)
    }
  },
  {
    name: 'a root preHandler hook added before the routes',
    setup: (app, auth, h) => {
      app.addHook('preHandler', auth)
      app.get('/secret', cached, h)
    }
  },
  {
    name: 'a preValidation hook of an encapsulated plugin',
    setup: async (app, auth, h) => {
      await app.register(async (child) => {
        child.addHook('preValidation', auth)
        child.get('/secret', cached, h)
      })
    }
  },
  {
    name: 'a preHandler hook of an awaited fastify-plugin auth plugin',
    setup: async (app, auth, h) => {
      await app.register(fp(async (instance) => { instance.addHook('preHandler', auth) }))
      app.get('/secret', cached, h)
    }
  },
  {
    name: 'the route\'s own preParsing',
    setup: (app, auth, h) => {
      app.get('/secret', { preParsing: async (request, reply, payload) => { await auth(request, reply); return payload }, ...cached }, h)
    }
  },
  {
    name: 'a root preHandler hook added after the route',
    setup: (app, auth, h) => {
      app.get('/secret', cached, h)
      app.addHook('preHandler', auth)
    }
  },
  {
    name: 'an auth plugin (fastify-plugin) registered without await before the routes',
    setup: (app, auth, h) => {
      app.register(fp(async (instance) => { instance.addHook('preHandler', auth) }))
      app.get('/secret', cached, h)
    }
  },
  {
    name: 'an encapsulated plugin adding its preValidation hook after its route',
    setup: async (app, auth, h) => {
      await app.register(async (child) => {
        child.get('/secret', cached, h)
        child.addHook('preValidation', auth)
      })
    }
  },
  {
    name: 'a preHandler added by another plugin\'s onRoute hook (registered after the cache)',
    mayNotCache: true,
    setup: (app, auth, h) => {
      app.addHook('onRoute', (route: RouteOptions) => {
        if (route.config?.cache !== undefined) route.preHandler = [...arrayOf(route.preHandler), auth]
      })
      app.get('/secret', cached, h)
    }
  },
  {
    name: 'an onRequest added by another plugin\'s onRoute hook (registered after the cache)',
    setup: (app, auth, h) => {
      app.addHook('onRoute', (route: RouteOptions) => {
        if (route.config?.cache !== undefined) route.onRequest = [...arrayOf(route.onRequest), auth]
      })
      app.get('/secret', cached, h)
    }
  }
]

function arrayOf<T> (v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v]
}

// ---------------------------------------------------------------------------------------------------
// 3. Poisoning: a handler that builds links from what Fastify resolves and from raw forwarding headers.

function reflect (request: FastifyRequest): Record<string, unknown> {
  const h = request.headers
  return {
    link: `${request.protocol}://${request.host}${request.url}`,
    forwardedHost: h['x-forwarded-host'] ?? null,
    forwardedProto: h['x-forwarded-proto'] ?? null,
    forwardedPort: h['x-forwarded-port'] ?? null,
    forwardedPrefix: h['x-forwarded-prefix'] ?? null,
    originalUrl: h['x-original-url'] ?? null,
    rewriteUrl: h['x-rewrite-url'] ?? null,
    forwarded: h.forwarded ?? null
  }
}

const GOOD_HOST = 'good.example'
const ATTACKS: Record<string, Record<string, string>> = {
  host: { host: 'evil.example' },
  'x-forwarded-host': { 'x-forwarded-host': 'evil.example' },
  'x-forwarded-proto': { 'x-forwarded-proto': 'evil' },
  'x-forwarded-port': { 'x-forwarded-port': '6666' },
  'x-forwarded-prefix': { 'x-forwarded-prefix': '/evil' },
  'x-original-url': { 'x-original-url': '/evil' },
  'x-rewrite-url': { 'x-rewrite-url': '/evil' },
  'forwarded host': { forwarded: 'for=192.0.2.1;host=evil.example' },
  'forwarded proto': { forwarded: 'for=192.0.2.1;proto=evil' }
}

// ---------------------------------------------------------------------------------------------------
// 4. Raw HTTP: what Node's parser and the app answer to bytes inject() would not send.

async function raw (port: number, data: string): Promise<string> {
  return await new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let out = ''
    const done = (): void => {
      socket.destroy()
      resolve(out)
    }
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { out += chunk })
    socket.on('end', done)
    socket.on('close', done)
    socket.on('error', done) // a reset after the 400 is fine
    socket.setTimeout(3000, done)
    socket.write(data, 'latin1')
  })
}

/** Status line and body of a raw response (Connection: close requests only). */
function parse (response: string): { status: number, headers: string, body: string } {
  const end = response.indexOf('\r\n\r\n')
  const head = end === -1 ? response : response.slice(0, end)
  return { status: Number(head.split(' ')[1]), headers: head.toLowerCase(), body: end === -1 ? '' : response.slice(end + 4) }
}

// Entries as lib/entry.ts encodes them: [version, status, storedAt, ttl, swr, sie, etag, headers, body, vary]
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
const foreignEntry = (patch: Partial<Record<'status' | 'etag' | 'headers' | 'body' | 'version', unknown>> = {}): Buffer =>
  packr.pack([patch.version ?? 2, patch.status ?? 200, Date.now(), 60_000, 0, 0, patch.etag ?? 'W/"foreign"',
    patch.headers ?? { 'content-type': 'text/plain' }, patch.body ?? Buffer.from('FOREIGN'), null])

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    // -------------------------------------------------------------------------------------------------
    t.test('auth ordering: a warm entry is never served to a request the route\'s hooks reject', async (t) => {
      for (const variant of AUTH_VARIANTS) {
        t.test(variant.name, variant.todo === undefined ? {} : { todo: variant.todo }, async (t) => {
          const { app } = await open(t, backend)
          let checks = 0
          let calls = 0
          const auth: Hook = async (request, reply) => {
            checks++
            if (request.headers['x-api-key'] !== API_KEY) await reply.code(401).send({ error: 'unauthorized' })
          }
          await variant.setup(app, auth, async () => ({ secret: 'for key holders', calls: ++calls }))
          await app.ready()
          const key = { 'x-api-key': API_KEY }

          const warm = await app.inject({ url: '/secret', headers: key })
          t.equal(warm.statusCode, 200)
          t.same(warm.json(), { secret: 'for key holders', calls: 1 })
          const hit = await app.inject({ url: '/secret', headers: key })
          // a route the plugin cannot guard is served uncached (x-cache absent), never unguarded
          const caching = variant.mayNotCache === undefined || hit.headers['x-cache'] !== undefined
          if (caching) {
            t.equal(warm.headers['x-cache'], 'MISS')
            t.equal(hit.headers['x-cache'], 'HIT', 'authorized requests are HITs')
            t.equal(hit.body, warm.body)
          }

          const anonymous = await app.inject('/secret')
          t.equal(anonymous.statusCode, 401, 'no key: 401 although the entry is warm')
          t.same(anonymous.json(), { error: 'unauthorized' })
          t.not(anonymous.headers['x-cache'], 'HIT')
          const wrong = await app.inject({ url: '/secret', headers: { 'x-api-key': 'guess', 'if-none-match': String(hit.headers.etag ?? '*') } })
          t.equal(wrong.statusCode, 401, 'a wrong key with the entry\'s ETag gets 401, not 304')
          t.equal(wrong.headers.etag, undefined)
          const head = await app.inject({ method: 'HEAD', url: '/secret' })
          t.equal(head.statusCode, 401, 'HEAD is checked too')
          t.not(head.headers['x-cache'], 'HIT')

          const again = await app.inject({ url: '/secret', headers: key })
          t.equal(checks, 6, 'the check ran on every request')
          if (caching) {
            t.equal(again.headers['x-cache'], 'HIT')
            t.same(again.json(), { secret: 'for key holders', calls: 1 })
            t.equal(calls, 1, 'the handler ran once')
          } else {
            t.same(again.json(), { secret: 'for key holders', calls: 3 }, 'not cached at all')
          }
        })
      }
    })

    // -------------------------------------------------------------------------------------------------
    t.test('Authorization: neither served from nor stored in the cache', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      app.get('/doc', cached, async (request) => ({ calls: ++calls, as: request.headers.authorization ?? 'anonymous' }))

      const cold = await app.inject({ url: '/doc', headers: { authorization: 'Bearer alice' } })
      t.equal(cold.headers['x-cache'], 'BYPASS')
      t.same(cold.json(), { calls: 1, as: 'Bearer alice' })
      t.equal(cold.headers.etag, undefined)
      if (redis !== undefined) t.same(await allKeys(redis, prefix), [], 'nothing written to Redis')

      const anonymous = await app.inject('/doc')
      t.equal(anonymous.headers['x-cache'], 'MISS', 'the authorized response was not stored')
      t.same(anonymous.json(), { calls: 2, as: 'anonymous' })

      for (const authorization of ['Bearer alice', 'Basic Ym9iOnNlY3JldA==', '']) {
        const res = await app.inject({ url: '/doc', headers: { authorization, 'if-none-match': String(anonymous.headers.etag) } })
        t.equal(res.headers['x-cache'], 'BYPASS', `Authorization: ${JSON.stringify(authorization)}`)
        t.equal(res.statusCode, 200, 'not a 304 from the anonymous entry')
        t.equal(res.json().as, authorization, 'the handler answered')
      }
      t.equal(calls, 5)
      const hit = await app.inject('/doc')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.same(hit.json(), { calls: 2, as: 'anonymous' }, 'the anonymous entry was not replaced by an authorized answer')
      if (redis !== undefined) t.equal((await entryKeys(redis, prefix, 1)).length, 1)
    })

    t.test('Authorization with varyBy: per-user entries marked private, never crossing users', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      const users: Record<string, string> = { 'Bearer tok-a': 'alice', 'Bearer tok-b': 'bob' }
      const userOf = new WeakMap<FastifyRequest, string>()
      let checks = 0
      let calls = 0
      app.get('/me', {
        preHandler: async (request, reply) => {
          checks++
          const user = users[String(request.headers.authorization)]
          if (user === undefined) return await reply.code(401).send({ error: 'unauthorized' })
          userOf.set(request, user)
        },
        config: { cache: { varyBy: (request: FastifyRequest) => userOf.get(request) as string } }
      }, async (request) => ({ user: userOf.get(request), calls: ++calls }))
      const as = (token: string): { url: string, headers: Record<string, string> } => ({ url: '/me', headers: { authorization: token } })

      const a1 = await app.inject(as('Bearer tok-a'))
      t.equal(a1.headers['x-cache'], 'MISS')
      t.equal(a1.headers['cache-control'], 'private, max-age=60')
      t.same(a1.json(), { user: 'alice', calls: 1 })
      const a2 = await app.inject(as('Bearer tok-a'))
      t.equal(a2.headers['x-cache'], 'HIT')
      t.match(a2.headers['cache-control'], /^private, max-age=\d+$/)
      t.same(a2.json(), { user: 'alice', calls: 1 })

      const b1 = await app.inject(as('Bearer tok-b'))
      t.equal(b1.headers['x-cache'], 'MISS', 'alice\'s entry never answers bob')
      t.same(b1.json(), { user: 'bob', calls: 2 })
      const b2 = await app.inject({ ...as('Bearer tok-b'), headers: { authorization: 'Bearer tok-b', 'if-none-match': String(a2.headers.etag) } })
      t.equal(b2.statusCode, 200, 'alice\'s ETag does not validate bob\'s entry')
      t.same(b2.json(), { user: 'bob', calls: 2 })
      t.equal(b2.headers['x-cache'], 'HIT')
      t.same((await app.inject(as('Bearer tok-a'))).json(), { user: 'alice', calls: 1 })

      for (const headers of [{}, { authorization: 'Bearer forged' }]) {
        const denied = await app.inject({ url: '/me', headers })
        t.equal(denied.statusCode, 401)
        t.same(denied.json(), { error: 'unauthorized' })
      }
      t.equal(checks, 7)
      t.equal(calls, 2)
      if (redis !== undefined) {
        const keys = await entryKeys(redis, prefix, 2)
        t.match(keys, [/ u:alice$/, / u:bob$/], 'one entry per user')
      }
      t.equal(await app.cache.evict('/me', { varyBy: 'alice' }), true)
      t.equal((await app.inject(as('Bearer tok-a'))).headers['x-cache'], 'MISS')
      t.equal((await app.inject(as('Bearer tok-b'))).headers['x-cache'], 'HIT')
    })

    t.test('varyBy that finds no user bypasses instead of sharing an entry', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      app.get('/mine', { config: { cache: { varyBy: (request: FastifyRequest) => request.headers['x-user'] as string } } },
        async (request) => ({ user: request.headers['x-user'] ?? null, calls: ++calls }))
      for (let i = 0; i < 2; i++) {
        const res = await app.inject('/mine')
        t.equal(res.headers['x-cache'], 'BYPASS')
        t.same(res.json(), { user: null, calls: i + 1 })
      }
      if (redis !== undefined) t.same(await entryKeys(redis, prefix), [])
      await app.inject({ url: '/mine', headers: { 'x-user': 'u1' } })
      const hit = await app.inject({ url: '/mine', headers: { 'x-user': 'u1' } })
      t.equal(hit.headers['x-cache'], 'HIT')
      t.same((await app.inject('/mine')).json(), { user: null, calls: 4 }, 'no user never gets u1\'s entry')
    })

    // -------------------------------------------------------------------------------------------------
    for (const trustProxy of [false, true]) {
      t.test(`poisoning: forged Host and forwarding headers get entries of their own (trustProxy: ${trustProxy})`, async (t) => {
        const { app, redis, prefix } = await open(t, backend, {}, { trustProxy })
        let calls = 0
        app.get('/p/:case', cached, async (request) => { calls++; return reflect(request) })
        // the same app, uncached: what a normal request must get
        app.get('/clean/:case', async (request) => reflect(request))
        const normal = { host: GOOD_HOST }

        for (const [name, forged] of Object.entries(ATTACKS)) {
          const url = `/p/${encodeURIComponent(name)}`
          const before = calls
          const attack = await app.inject({ url, headers: { ...normal, ...forged } })
          t.equal(attack.statusCode, 200, name)
          t.equal(attack.headers['x-cache'], 'MISS', name)
          t.match(attack.body, /evil|6666/, `${name}: the handler reflects the forged value`)

          const victim = await app.inject({ url, headers: normal })
          t.equal(victim.headers['x-cache'], 'MISS', `${name}: a normal request does not get the attacker's entry`)
          t.notMatch(victim.body, /evil|6666/, name)
          const clean = await app.inject({ url: `/clean/${encodeURIComponent(name)}`, headers: normal })
          t.same(victim.json(), { ...clean.json(), link: `http://${GOOD_HOST}${url}` }, `${name}: the normal body`)
          const victimAgain = await app.inject({ url, headers: normal })
          t.equal(victimAgain.headers['x-cache'], 'HIT', name)
          t.equal(victimAgain.body, victim.body, name)
          const attackAgain = await app.inject({ url, headers: { ...normal, ...forged } })
          t.equal(attackAgain.headers['x-cache'], 'HIT', `${name}: the attacker gets only their own entry`)
          t.equal(attackAgain.body, attack.body, name)
          t.equal(calls, before + 2, name)
        }
        if (redis !== undefined) {
          const keys = await entryKeys(redis, prefix, 2 * Object.keys(ATTACKS).length)
          t.ok(keys.some((k) => k.includes('x-forwarded-host=evil.example')), 'forwarding headers are in the keys')
        }
      })
    }

    t.test('poisoning: a proxy sending the same forwarding headers on every request still gets HITs', async (t) => {
      const { app } = await open(t, backend, {}, { trustProxy: true })
      let calls = 0
      app.get('/page', cached, async (request) => { calls++; return reflect(request) })
      const viaProxy = (client: string): Record<string, string> => ({
        host: 'app.internal:3000',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': GOOD_HOST,
        'x-forwarded-for': client,
        forwarded: `for=${client};proto=https;host=${GOOD_HOST}`
      })
      const first = await app.inject({ url: '/page', headers: viaProxy('192.0.2.1') })
      t.equal(first.headers['x-cache'], 'MISS')
      t.equal(first.json().link, `https://${GOOD_HOST}/page`)
      for (const client of ['192.0.2.1', '192.0.2.2', '198.51.100.7']) {
        const res = await app.inject({ url: '/page', headers: viaProxy(client) })
        t.equal(res.headers['x-cache'], 'HIT', `client ${client}: for= and X-Forwarded-For do not split the cache`)
        t.equal(res.body, first.body)
      }
      const direct = await app.inject({ url: '/page', headers: { host: 'app.internal:3000' } })
      t.equal(direct.headers['x-cache'], 'MISS', 'a request that bypassed the proxy does not share its entry')
      t.equal(direct.json().link, 'http://app.internal:3000/page')
      t.equal(calls, 2)
    })

    t.test('poisoning: evict(path) drops every origin\'s entry, evict(absolute URL) only that origin\'s', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      app.get('/e', cached, async (request) => { calls++; return reflect(request) })
      const origins: Array<Record<string, string>> = [
        { host: 'a.example' },
        { host: 'other.example' },
        { host: 'other.example', 'x-forwarded-host': 'cdn.example' },
        { host: 'other.example.evil' },
        { host: 'OTHER.example' }
      ]
      const state = async (): Promise<string[]> => {
        const out: string[] = []
        for (const headers of origins) out.push(String((await app.inject({ url: '/e', headers })).headers['x-cache']))
        return out
      }
      t.same(await state(), ['MISS', 'MISS', 'MISS', 'MISS', 'HIT'], 'host names are case-insensitive')
      if (redis !== undefined) t.equal((await entryKeys(redis, prefix, 4)).length, 4)
      t.equal(await app.cache.evict('http://other.example/e'), true)
      t.same(await state(), ['HIT', 'MISS', 'MISS', 'HIT', 'HIT'], 'other.example and its forwarded variant only')
      t.equal(await app.cache.evict('/e'), true)
      t.same(await state(), ['MISS', 'MISS', 'MISS', 'MISS', 'HIT'], 'every origin')
      t.equal(await app.cache.evict('http://nowhere.example/e'), false)
      t.equal(calls, 4 + 2 + 4)
      await t.rejects(app.cache.evict('javascript:alert(1)'), TypeError)
      await t.rejects(app.cache.evict('http://[bad/e'), TypeError)
    })

    t.test('poisoning: maxOrigins bounds the origins stored per group; others are served, not stored', async (t) => {
      const { app, redis, prefix } = await open(t, backend, { maxOrigins: 2 })
      let calls = 0
      app.get('/m', cached, async (request) => ({ host: request.host, calls: ++calls }))
      const get = async (host: string): Promise<{ cache: unknown, body: unknown }> => {
        const res = await app.inject({ url: '/m', headers: { host } })
        return { cache: res.headers['x-cache'], body: res.json() }
      }
      t.same(await get('a.example'), { cache: 'MISS', body: { host: 'a.example', calls: 1 } })
      t.same(await get('b.example'), { cache: 'MISS', body: { host: 'b.example', calls: 2 } })
      if (redis !== undefined) await entryKeys(redis, prefix, 2)
      t.same(await get('c.example'), { cache: 'MISS', body: { host: 'c.example', calls: 3 } })
      t.same(await get('c.example'), { cache: 'MISS', body: { host: 'c.example', calls: 4 } }, 'a third origin is not stored')
      t.same(await get('a.example'), { cache: 'HIT', body: { host: 'a.example', calls: 1 } })
      t.same(await get('b.example'), { cache: 'HIT', body: { host: 'b.example', calls: 2 } })
      if (redis !== undefined) {
        t.equal((await entryKeys(redis, prefix)).length, 2)
        t.equal(await redis.scard(`${prefix}:{default}:o`), 2)
      }
    })

    t.test('keyOrigin: false shares one entry across hosts (the documented trade-off)', async (t) => {
      const { app, redis, prefix } = await open(t, backend, { keyOrigin: false })
      let calls = 0
      app.get('/shared', cached, async (request) => ({ host: request.host, calls: ++calls }))
      t.same((await app.inject({ url: '/shared', headers: { host: 'a.example' } })).json(), { host: 'a.example', calls: 1 })
      const other = await app.inject({ url: '/shared', headers: { host: 'b.example', 'x-forwarded-host': 'c.example' } })
      t.equal(other.headers['x-cache'], 'HIT')
      t.same(other.json(), { host: 'a.example', calls: 1 })
      if (redis !== undefined) t.match(await entryKeys(redis, prefix, 1), [/:e:GET:\/shared$/])
    })

    t.test('keyOrigin: false: evict(url) and evict: { self: true } still drop the shared entry', async (t) => {
      const { app } = await open(t, backend, { keyOrigin: false })
      let calls = 0
      app.get('/shared', cached, async () => ({ calls: ++calls }))
      app.delete('/shared', { config: { cache: { evict: { self: true } } } }, async () => ({ deleted: true }))
      const state = async (): Promise<unknown> => (await app.inject({ url: '/shared', headers: { host: 'b.example' } })).headers['x-cache']
      await app.inject('/shared')
      t.equal(await state(), 'HIT')
      t.equal(await app.cache.evict('http://b.example/shared'), true, 'an absolute URL evicts the shared entry')
      t.equal(await state(), 'MISS')
      t.equal(await app.cache.evict('/shared'), true, 'a path evicts it')
      t.equal(await state(), 'MISS')
      t.equal((await app.inject({ method: 'DELETE', url: '/shared' })).statusCode, 200)
      t.equal(await state(), 'MISS', 'a write with evict: { self: true } evicts it')
      t.equal(calls, 4)
    })

    // -------------------------------------------------------------------------------------------------
    t.test('hostile input: huge and broken URLs get a correct response or a clear 4xx, under the right key', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      app.get('/q', cached, async (request) => ({ calls: ++calls, query: request.query }))
      app.get('/q/:p', cached, async (request) => ({ calls: ++calls, p: (request.params as { p: string }).p }))
      app.get('/raw', async (request) => ({ query: request.query })) // the uncached truth
      const expect = async (query: string): Promise<unknown> => (await app.inject(`/raw${query}`)).json().query
      const check = async (query: string, cache: string, what: string): Promise<void> => {
        const res = await app.inject(`/q${query}`)
        t.equal(res.statusCode, 200, what)
        t.equal(res.headers['x-cache'], cache, what)
        t.same(res.json().query, await expect(query), `${what}: the body of this very query`)
      }

      const long = '?a=' + 'b'.repeat(8192)
      await check(long, 'MISS', '8 KB query')
      await check(long, 'HIT', '8 KB query again')
      await check(long.slice(0, -1) + 'c', 'MISS', '8 KB query, last byte changed')

      const params = Array.from({ length: 5000 }, (_, i) => `p${i}=${i}`)
      await check('?' + params.join('&'), 'MISS', '5000 parameters')
      await check('?' + [...params].reverse().join('&'), 'HIT', '5000 parameters reordered')
      await check('?' + [...params.slice(0, -1), 'p4999=x'].join('&'), 'MISS', '5000 parameters, one value changed')

      await check('?a=%zz&b=%', 'MISS', 'invalid escapes')
      await check('?a=%zz&b=%', 'HIT', 'invalid escapes again')
      await check('?a=%25zz&b=%25', 'MISS', 'the valid encoding of the same text is another key')
      await check('?a=%E0%A4%A', 'MISS', 'truncated UTF-8 in the query')
      await check('?a=%00', 'MISS', 'NUL in the query')
      await check('?a=%0D%0ASet-Cookie:%20pwned=1', 'MISS', 'CRLF in the query')
      const crlf = await app.inject('/q?a=%0D%0ASet-Cookie:%20pwned=1')
      t.equal(crlf.headers['x-cache'], 'HIT')
      t.equal(crlf.headers['set-cookie'], undefined)

      for (let i = 0; i < 2; i++) {
        const bad = await app.inject('/q/%E0%A4%A')
        t.equal(bad.statusCode, 400, 'a path that does not decode is a 400')
        t.equal(bad.json().code, 'FST_ERR_BAD_URL')
        t.not(bad.headers['x-cache'], 'HIT')
      }
      const nul = await app.inject('/q/a%00b')
      t.equal(nul.statusCode, 200)
      t.same(nul.json(), { calls, p: 'a\u0000b' })
      t.same((await app.inject('/q/a%00b')).json(), nul.json())
      t.equal((await app.inject('/q/ab')).headers['x-cache'], 'MISS', 'NUL does not vanish from the key')
      if (redis !== undefined) {
        const keys = await entryKeys(redis, prefix, 11)
        t.ok(keys.some((k) => k.length > 8192), 'the 8 KB query is in its key')
        t.notOk(keys.some((k) => k.includes('%E0%A4%A') && k.includes('/q/')), 'the 400 was not stored')
      }
    })

    t.test('hostile input: NUL and CRLF in header values reaching the app', async (t) => {
      const { app } = await open(t, backend)
      let calls = 0
      app.get('/v', { config: { cache: { vary: ['x-h'] } } }, async (request) => ({ h: request.headers['x-h'] ?? null, calls: ++calls }))
      for (const value of ['a\r\nSet-Cookie: pwned=1', 'a\u0000b', 'a']) {
        const res = await app.inject({ url: '/v', headers: { 'x-h': value } })
        t.equal(res.statusCode, 200, JSON.stringify(value))
        t.equal(res.headers['x-cache'], 'MISS', `${JSON.stringify(value)} has an entry of its own`)
        t.equal(res.json().h, value)
        t.equal(res.headers['set-cookie'], undefined)
        const hit = await app.inject({ url: '/v', headers: { 'x-h': value } })
        t.equal(hit.headers['x-cache'], 'HIT')
        t.equal(hit.json().h, value)
      }
      t.equal(calls, 3)
    })

    t.test('hostile input: raw requests with CRLF / NUL get 400 from Node\'s parser and the app stays up', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      app.get('/x', cached, async (request) => ({ host: request.host, url: request.url, calls: ++calls }))
      await app.listen({ port: 0, host: '127.0.0.1' })
      const port = (app.server.address() as net.AddressInfo).port
      const normal = async (): Promise<{ status: number, headers: string, body: string }> =>
        parse(await raw(port, `GET /x HTTP/1.1\r\nHost: ${GOOD_HOST}\r\nConnection: close\r\n\r\n`))

      const first = await normal()
      t.equal(first.status, 200)
      t.match(first.headers, /x-cache: miss/)
      const hostile: Record<string, string> = {
        'CR LF in the request target': `GET /x\r\nSet-Cookie: pwned=1 HTTP/1.1\r\nHost: ${GOOD_HOST}\r\n\r\n`,
        'NUL in the request target': `GET /x\u0000evil HTTP/1.1\r\nHost: ${GOOD_HOST}\r\n\r\n`,
        'space in the request target': `GET /x evil HTTP/1.1\r\nHost: ${GOOD_HOST}\r\n\r\n`,
        'NUL in a header value': `GET /x HTTP/1.1\r\nHost: ${GOOD_HOST}\r\nX-Forwarded-Host: evil\u0000.example\r\n\r\n`,
        'bare CR in a header value': `GET /x HTTP/1.1\r\nHost: ${GOOD_HOST}\r\nX-Forwarded-Host: evil\r.example\r\n\r\n`,
        'NUL in the Host': 'GET /x HTTP/1.1\r\nHost: evil\u0000.example\r\n\r\n',
        'header name with a space': `GET /x HTTP/1.1\r\nHost: ${GOOD_HOST}\r\nX Forwarded Host: evil.example\r\n\r\n`,
        'obsolete line folding': `GET /x HTTP/1.1\r\nHost: ${GOOD_HOST}\r\nX-Forwarded-Host: a\r\n evil.example\r\n\r\n`,
        'Content-Length and Transfer-Encoding': `GET /x HTTP/1.1\r\nHost: ${GOOD_HOST}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`
      }
      for (const [what, request] of Object.entries(hostile)) {
        const res = parse(await raw(port, request))
        if (what === 'CR LF in the request target') {
          // llhttp reads `GET /x` as a request line of its own and the rest as headers: a plain GET /x
          t.equal(res.status, 200, what)
          t.equal(res.body, first.body, `${what}: the entry of /x, nothing else`)
          t.notMatch(res.headers, /set-cookie/, what)
        } else {
          t.equal(res.status, 400, what)
          t.notMatch(res.headers, /x-cache/, `${what}: never reached the cache`)
        }
        const after = await normal()
        t.equal(after.status, 200, `${what}: the app is still up`)
        t.match(after.headers, /x-cache: hit/, what)
        t.equal(after.body, first.body, what)
      }

      // absolute-form target naming another host: Host decides the origin, the target is the path key
      const absolute = parse(await raw(port, `GET http://evil.example/x HTTP/1.1\r\nHost: ${GOOD_HOST}\r\nConnection: close\r\n\r\n`))
      t.ok(absolute.status === 200 || (absolute.status >= 400 && absolute.status < 500), `absolute-form: ${absolute.status}`)
      const after = await normal()
      t.match(after.headers, /x-cache: hit/)
      t.equal(after.body, first.body)
      t.ok(calls <= 2)
      if (redis !== undefined) {
        const keys = await entryKeys(redis, prefix)
        t.ok(keys.includes(`${prefix}:{default}:e:GET:http://${GOOD_HOST}/x`))
        for (const k of keys) t.notOk(/pwned|[\r\n]/.test(k) || k.includes('\u0000'), `no entry under a hostile key: ${k}`)
      }
    })

    t.test('hostile input: garbage Cache-Control / Pragma on requests', async (t) => {
      const { app } = await open(t, backend)
      let calls = 0
      app.get('/cc', cached, async () => ({ calls: ++calls }))
      await app.inject('/cc')
      const ignored = ['max-age=abc', 'max-age=-1', 'max-age=1e3', 'max-age="5"', 'max-age=', ','.repeat(4096),
        ',,=;max-age=abc, foo="', 'max-age=99999999999', 'max-age=' + '9'.repeat(400), 'no-store=', 'x'.repeat(4096)]
      for (const cc of ignored) {
        const res = await app.inject({ url: '/cc', headers: { 'cache-control': cc } })
        t.equal(res.statusCode, 200, JSON.stringify(cc.slice(0, 40)))
        t.same(res.json(), { calls: 1 })
        t.equal(res.headers['x-cache'], 'HIT', `${JSON.stringify(cc.slice(0, 40))} is ignored`)
      }
      const refresh = await app.inject({ url: '/cc', headers: { 'cache-control': 'no-cache=' } })
      t.equal(refresh.statusCode, 200)
      t.same(refresh.json(), { calls: 2 }, 'no-cache= reads as no-cache: a refresh')
      const pragma = await app.inject({ url: '/cc', headers: { pragma: 'x'.repeat(4096) + ',,,' } })
      t.equal(pragma.headers['x-cache'], 'HIT')
      t.same(pragma.json(), { calls: 2 })
    })

    t.test('hostile input: garbage If-None-Match', async (t) => {
      const { app } = await open(t, backend)
      app.get('/inm', cached, async () => 'body')
      const etag = String((await app.inject('/inm')).headers.etag)
      const many = Array.from({ length: 1000 }, (_, i) => `"e${i}"`)
      const answers: Array<[string, number]> = [
        ['"unterminated', 200], ['W/', 200], ['W/W/W/', 200], [',,,', 200], ['"', 200], ['W/' + '"'.repeat(4096), 200],
        [many.join(', '), 200], [[...many, etag].join(', '), 304], ['*', 304], [`"x", ${etag}`, 304]
      ]
      for (const [inm, status] of answers) {
        const res = await app.inject({ url: '/inm', headers: { 'if-none-match': inm } })
        t.equal(res.statusCode, status, `If-None-Match: ${JSON.stringify(inm.slice(0, 30))}`)
        t.equal(res.headers['x-cache'], 'HIT')
        t.equal(res.body, status === 200 ? 'body' : '')
      }
    })

    t.test('hostile input: garbage If-Modified-Since is ignored', async (t) => {
      const { app } = await open(t, backend)
      app.get('/ims', cached, async (request, reply) => {
        reply.header('last-modified', 'Tue, 01 Sep 2026 10:00:00 GMT')
        return 'dated'
      })
      await app.inject('/ims')
      for (const ims of ['not a date', '', 'Tue, 01 Sep 2026 10:00:00 GMT, Wed, 02 Sep 2026 10:00:00 GMT', '0', 'x'.repeat(4096)]) {
        const res = await app.inject({ url: '/ims', headers: { 'if-modified-since': ims } })
        t.equal(res.statusCode, 200, `If-Modified-Since: ${JSON.stringify(ims.slice(0, 40))}`)
        t.equal(res.body, 'dated')
      }
      t.equal((await app.inject({ url: '/ims', headers: { 'if-modified-since': 'Wed, 02 Sep 2026 10:00:00 GMT' } })).statusCode, 304, 'a valid later date still validates')
    })

    t.test('hostile input: If-Modified-Since that is not an HTTP-date (5-digit year) is ignored (RFC 9110 §13.1.3)', {
    }, async (t) => {
      const { app } = await open(t, backend)
      app.get('/ims', cached, async (request, reply) => {
        reply.header('last-modified', 'Tue, 01 Sep 2026 10:00:00 GMT')
        return 'dated'
      })
      await app.inject('/ims')
      for (const ims of ['Sat, 01 Jan 99999 00:00:00 GMT', '99999', '2030']) {
        const res = await app.inject({ url: '/ims', headers: { 'if-modified-since': ims } })
        t.equal(res.statusCode, 200, `If-Modified-Since: ${JSON.stringify(ims)}`)
        t.equal(res.body, 'dated')
      }
    })

    // -------------------------------------------------------------------------------------------------
    t.test('names: groups and tags with braces, wildcards, spaces or newlines are TypeErrors; colons are fine', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      const bad = ['a{b', 'a}b', '{x}', '*', 'a*', 'a b', 'a\nb', 'a\r\nb', '', 'x'.repeat(201)]
      const rule = /1-200 characters of letters, digits/
      for (const name of bad) {
        const what = JSON.stringify(name.slice(0, 20))
        await t.rejects(app.cache.evictGroup(name), { name: 'TypeError', message: rule }, `evictGroup(${what})`)
        await t.rejects(app.cache.evictTag(name), { name: 'TypeError', message: rule }, `evictTag(${what})`)
        await t.rejects(app.cache.evict('/n', { group: name }), TypeError, `evict({ group: ${what} })`)
        await t.rejects(app.cache.set('k', 1, { tags: [name] }), TypeError, `set({ tags: [${what}] })`)
        await t.rejects(app.cache.clear({ namespace: name }), TypeError, `clear({ namespace: ${what} })`)
        for (const cache of [{ group: name }, { tags: [name] }, { namespace: name }]) {
          const err = await routeError(t, { config: { cache } })
          t.type(err, TypeError, `route ${JSON.stringify(cache).slice(0, 40)}`)
          t.match((err as Error).message, rule)
        }
        t.type(await routeError(t, { method: 'POST', config: { cache: { evict: name } } }), TypeError, `write route evict: ${what}`)
      }
      t.throws(() => app.cache.wrap(async () => 1, { key: () => 'k', group: 'a b' }), TypeError, 'wrap() with a bad group')

      let calls = 0
      app.get('/badtag', { config: { cache: { tags: () => ['ok', 'not ok'] } } }, async () => ({ calls: ++calls }))
      app.get('/t/:id', { config: { cache: { group: 'tenant:1', tags: (r: FastifyRequest) => [`product:${(r.params as { id: string }).id}`] } } }, async () => ({ calls: ++calls }))
      app.get('/u', { config: { cache: { group: 'tenant' } } }, async () => ({ calls: ++calls }))

      // a tag function answering a bad name: served, not stored, no 500
      for (let i = 1; i <= 2; i++) {
        const res = await app.inject('/badtag')
        t.equal(res.statusCode, 200)
        t.equal(res.headers['x-cache'], 'MISS')
        t.same(res.json(), { calls: i })
      }

      // colons are allowed, and a group named a:b is not the group a
      await app.inject('/t/1')
      await app.inject('/t/2')
      await app.inject('/u')
      if (redis !== undefined) t.ok((await entryKeys(redis, prefix, 3)).some((k) => k.startsWith(`${prefix}:{tenant:1}:e:GET:`)))
      t.equal(await app.cache.evictTag('product:1'), 1)
      t.equal((await app.inject('/t/1')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/t/2')).headers['x-cache'], 'HIT')
      t.equal(await app.cache.evictGroup('tenant:1'), 2)
      t.equal((await app.inject('/u')).headers['x-cache'], 'HIT', 'group tenant untouched')
    })

    // -------------------------------------------------------------------------------------------------
    t.test('foreign values at the entry key read as a MISS and are replaced', { skip: backend.name === 'memory' ? 'Redis only: nothing else writes to the memory store' : false }, async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      if (redis === undefined) return
      let calls = 0
      app.get('/f', cached, async () => ({ calls: ++calls }))
      t.equal((await app.inject('/f')).headers['x-cache'], 'MISS')
      const [key] = await entryKeys(redis, prefix, 1)
      t.match(key, /:e:GET:http:\/\/localhost(:80)?\/f$/)

      const foreign: Record<string, () => Promise<unknown>> = {
        'garbage bytes': async () => await redis.set(key, Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x0d, 0x0a])),
        'empty string': async () => await redis.set(key, ''),
        'msgpack of something else': async () => await redis.set(key, packr.pack({ hello: 'world' })),
        'msgpack array of another version': async () => await redis.set(key, foreignEntry({ version: 1 })),
        'a hash': async () => { await redis.del(key); await redis.hset(key, 'status', '200') },
        'a list': async () => { await redis.del(key); await redis.rpush(key, 'a', 'b') },
        'a set': async () => { await redis.del(key); await redis.sadd(key, 'a') },
        'an entry with CRLF in a header value': async () => await redis.set(key, foreignEntry({ headers: { 'x-evil': 'a\r\nSet-Cookie: pwned=1' } })),
        'an entry with a header name that is not a token': async () => await redis.set(key, foreignEntry({ headers: { 'x evil\r\n': 'a' } })),
        'an entry with CRLF in its ETag': async () => await redis.set(key, foreignEntry({ etag: '"a"\r\nSet-Cookie: pwned=1' })),
        'an entry with status 500': async () => await redis.set(key, foreignEntry({ status: 500 })),
        'an entry with a string body': async () => await redis.set(key, foreignEntry({ body: 'FOREIGN' })),
        'an entry with a non-string header value': async () => await redis.set(key, foreignEntry({ headers: { 'x-n': { a: 1 } } }))
      }
      for (const [what, put] of Object.entries(foreign)) {
        await put()
        const before = calls
        const res = await app.inject('/f')
        t.equal(res.statusCode, 200, what)
        t.equal(res.headers['x-cache'], 'MISS', `${what}: a MISS`)
        t.same(res.json(), { calls: before + 1 }, `${what}: the handler answered`)
        t.equal(res.headers['set-cookie'], undefined, what)
        await until(`${what} replaced`, async () => (await redis.type(key)) === 'string' && (await redis.getBuffer(key))?.[0] !== 0xc1)
        const hit = await app.inject('/f')
        t.equal(hit.headers['x-cache'], 'HIT', `${what}: replaced by a good entry`)
        t.same(hit.json(), { calls: before + 1 }, what)
      }
      // a foreign value at the group's generation key: lookups and writes fail, requests do not
      await redis.del(`${prefix}:{default}:g`)
      await redis.hset(`${prefix}:{default}:g`, 'x', '1')
      await redis.set(key, 'garbage')
      for (let i = 0; i < 2; i++) {
        const res = await app.inject('/f')
        t.equal(res.statusCode, 200, 'a foreign generation key does not fail requests')
        t.type(res.json().calls, 'number')
      }
    })

    t.test('foreign entries carrying headers the plugin never stores read as a MISS', {
      skip: backend.name === 'memory' ? 'Redis only: nothing else writes to the memory store' : false,
    }, async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      if (redis === undefined) return
      let calls = 0
      app.get('/f', cached, async () => ({ calls: ++calls }))
      await app.inject('/f')
      const [key] = await entryKeys(redis, prefix, 1)
      for (const headers of [{ 'set-cookie': 'session=attacker' }, { 'transfer-encoding': 'chunked' }, { connection: 'close' }, { 'content-length': '999' }]) {
        const foreign = foreignEntry({ headers })
        await redis.set(key, foreign)
        const res = await app.inject('/f')
        t.equal(res.headers['x-cache'], 'MISS', JSON.stringify(headers))
        t.equal(res.headers['set-cookie'], undefined)
        t.equal(res.headers['transfer-encoding'], undefined)
        // the MISS stores its own entry behind its response: the next foreign one goes in after it
        await until('the MISS to replace it', async () => (await redis.getBuffer(key))?.equals(foreign) === false)
      }
    })
  })
}
