import { test } from 'tap'
import Fastify from 'fastify'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { registerError, routeError, type RouteSpec } from './helpers/app.js'

const MAX_TTL = 100 * 365 * 24 * 3600

const badOptions: Array<[string, unknown, RegExp]> = [
  ['ttl as a string', { ttl: '60' }, /option "ttl"/],
  ['ttl negative', { ttl: -1 }, /option "ttl"/],
  ['ttl not an integer', { ttl: 1.5 }, /option "ttl"/],
  ['ttl NaN', { ttl: NaN }, /option "ttl"/],
  ['ttl Infinity', { ttl: Infinity }, /option "ttl"/],
  ['ttl too big', { ttl: MAX_TTL + 1 }, /option "ttl"/],
  ['ttl null', { ttl: null }, /option "ttl"/],
  ['statusHeader with a space', { statusHeader: 'x cache' }, /option "statusHeader"/],
  ['statusHeader empty', { statusHeader: '' }, /option "statusHeader"/],
  ['statusHeader true', { statusHeader: true }, /option "statusHeader"/],
  ['statusHeader with a colon', { statusHeader: 'x-cache:' }, /option "statusHeader"/],
  ['statusHeader with a newline', { statusHeader: 'x-cache\r\nset-cookie' }, /option "statusHeader"/],
  ['maxEntrySize 0', { maxEntrySize: 0 }, /option "maxEntrySize"/],
  ['maxEntrySize negative', { maxEntrySize: -1 }, /option "maxEntrySize"/],
  ['maxEntrySize fractional', { maxEntrySize: 1.5 }, /option "maxEntrySize"/],
  ['maxEntrySize as a string', { maxEntrySize: '10mb' }, /option "maxEntrySize"/],
  ['memory as a string', { memory: 'big' }, /option "memory"/],
  ['memory as a number', { memory: 64 }, /option "memory"/],
  ['memory null', { memory: null }, /option "memory"/],
  ['memory an array', { memory: [] }, /memory/],
  ['memory.maxBytes 0', { memory: { maxBytes: 0 } }, /option "memory\.maxBytes"/],
  ['memory.maxBytes negative', { memory: { maxBytes: -5 } }, /option "memory\.maxBytes"/],
  ['memory.maxBytes as a string', { memory: { maxBytes: '64mb' } }, /option "memory\.maxBytes"/],
  ['memory.maxBytes fractional', { memory: { maxBytes: 10.5 } }, /option "memory\.maxBytes"/],
  ['memory with an unknown key', { memory: { maxbytes: 5 } }, /memory.*"maxbytes"/],
  ['unknown option tll', { tll: 60 }, /unknown option "tll"/],
  ['unknown option statusheader', { statusheader: 'x' }, /unknown option "statusheader"/],
  ['redis as a number', { redis: 42 }, /option "redis"/],
  ['redis null', { redis: null }, /option "redis"/],
  ['redis an object that is no client', { redis: { host: 'localhost' } }, /option "redis"/],
  ['redis an http URL', { redis: 'http://x' }, /option "redis"/],
  ['redis a bare host', { redis: 'localhost:6379' }, /option "redis"/],
  ['timeout 0', { timeout: 0 }, /option "timeout"/],
  ['timeout negative', { timeout: -5 }, /option "timeout"/],
  ['timeout fractional', { timeout: 2.5 }, /option "timeout"/],
  ['timeout too big', { timeout: 60_001 }, /option "timeout"/],
  ['timeout as a string', { timeout: '250' }, /option "timeout"/],
  ['clientDirectives as a string', { clientDirectives: 'yes' }, /option "clientDirectives"/],
  ['prefix with braces', { prefix: 'a{b}' }, /prefix/],
  ['prefix with an open brace', { prefix: 'a{' }, /prefix/],
  ['prefix empty', { prefix: '' }, /prefix/],
  ['prefix with a space', { prefix: 'my cache' }, /prefix/],
  ['prefix a number', { prefix: 42 }, /prefix/],
  ['prefix with a wildcard', { prefix: 'cache*' }, /prefix/],
  ['defaultGroup with braces', { defaultGroup: '{g}' }, /defaultGroup/],
  ['defaultGroup with a close brace', { defaultGroup: 'g}' }, /defaultGroup/],
  ['defaultGroup empty', { defaultGroup: '' }, /defaultGroup/],
  ['defaultGroup too long', { defaultGroup: 'g'.repeat(201) }, /defaultGroup/],
  ['keyOrigin as a string', { keyOrigin: 'yes' }, /option "keyOrigin"/],
  ['maxOrigins 0', { maxOrigins: 0 }, /option "maxOrigins"/],
  ['maxOrigins fractional', { maxOrigins: 1.5 }, /option "maxOrigins"/],
  ['l1 true', { l1: true }, /option "l1"/],
  ['l1.maxBytes 0', { l1: { maxBytes: 0 } }, /option "l1\.maxBytes"/],
  ['l1.ttl 0', { l1: { ttl: 0 } }, /option "l1\.ttl" must be at least 1 second/],
  ['l1 with an unknown key', { l1: { max: 5 } }, /l1.*"max"/],
  ['lock as a string', { lock: 'yes' }, /option "lock"/],
  ['lock.wait 0', { lock: { wait: 0 } }, /option "lock\.wait"/],
  ['lock.lease too long', { lock: { lease: 600_001 } }, /option "lock\.lease"/],
  ['lock with an unknown key', { lock: { timeout: 5 } }, /lock.*"timeout"/],
  ['staleWhileRevalidate negative', { staleWhileRevalidate: -1 }, /option "staleWhileRevalidate"/],
  ['staleIfError as a string', { staleIfError: '1h' }, /option "staleIfError"/]
]

for (const [name, options, message] of badOptions) {
  test(`register fails: ${name}`, async (t) => {
    const err = await registerError(t, options)
    t.type(err, TypeError, 'a TypeError')
    t.match((err as Error | undefined)?.message, message, 'names the option')
    t.match((err as Error | undefined)?.message, /^fastify-http-cache: /, 'says where it comes from')
  })
}

test('a bad option message gives the expected form and the value received', async (t) => {
  const ttl = await registerError(t, { ttl: -1 }) as Error
  t.match(ttl.message, /must be a whole number of seconds/)
  t.match(ttl.message, /got -1$/)
  const redis = await registerError(t, { redis: 'http://x' }) as Error
  t.match(redis.message, /redis:\/\/ URL/)
  t.match(redis.message, /got "http:\/\/x"/)
  const unknown = await registerError(t, { tll: 5 }) as Error
  t.match(unknown.message, /expected one of: .*\bttl\b/, 'lists the known options')
})

test('register accepts valid edge values', async (t) => {
  const good: HttpCacheOptions[] = [
    {},
    { ttl: 0 },
    { ttl: MAX_TTL },
    { statusHeader: false },
    { statusHeader: 'X-Hit' },
    { maxEntrySize: 1 },
    { memory: {} },
    { memory: { maxBytes: 1 } },
    { timeout: 1 },
    { timeout: 60_000 },
    { clientDirectives: false },
    { prefix: 'my-app:cache.v2' },
    { defaultGroup: 'users@v1/a+b=c' },
    { ttl: undefined, prefix: undefined },
    { keyOrigin: false, maxOrigins: 1 },
    { l1: {} },
    { l1: { maxBytes: 1, ttl: 1 } },
    { lock: true },
    { lock: false },
    { lock: { wait: 1, lease: 600_000 } },
    { staleWhileRevalidate: 0, staleIfError: MAX_TTL }
  ]
  for (const options of good) {
    t.equal(await registerError(t, options), undefined, JSON.stringify(options))
  }
})

const badRoutes: Array<[string, RouteSpec, RegExp]> = [
  ['POST route with cache: true', { method: 'POST', config: { cache: true } }, /config\.cache of POST \/r must be an object like \{ evict/],
  ['PUT route with cache: true', { method: 'PUT', config: { cache: true } }, /config\.cache of PUT \/r must be an object/],
  ['DELETE route with a ttl only', { method: 'DELETE', config: { cache: { ttl: 5 } } }, /config\.cache\.ttl and \.group of DELETE \/r only apply with put: true/],
  ['PATCH route with nothing to do', { method: 'PATCH', config: { cache: {} } }, /config\.cache of PATCH \/r does nothing/],
  ['GET and POST route', { method: ['GET', 'POST'], config: { cache: true } }, /GET,POST \/r mixes them/],
  ['write route: evict ""', { method: 'POST', config: { cache: { evict: '' } } }, /config\.cache\.evict of POST \/r must be/],
  ['write route: evict []', { method: 'POST', config: { cache: { evict: [] } } }, /option "config\.cache\.evict of POST \/r" must be a group name or a non-empty array/],
  ['write route: evict {}', { method: 'POST', config: { cache: { evict: {} } } }, /config\.cache\.evict of POST \/r" must be \{ self: true \}/],
  ['write route: evict a{b', { method: 'DELETE', config: { cache: { evict: ['ok', 'a{b'] } } }, /config\.cache\.evict of DELETE \/r must be 1-200 characters/],
  ['write route: evict.self not a boolean', { method: 'DELETE', config: { cache: { evict: { self: 'yes' } } } }, /config\.cache\.evict\.self of DELETE \/r/],
  ['write route: evict 42', { method: 'DELETE', config: { cache: { evict: 42 } } }, /config\.cache\.evict of DELETE \/r" must be a group/],
  ['write route: unknown evict key', { method: 'DELETE', config: { cache: { evict: { slef: true } } } }, /"slef"/],
  ['write route: put on POST', { method: 'POST', config: { cache: { put: true } } }, /put is for PUT and PATCH routes, not POST \/r/],
  ['write route: put with a bad ttl', { method: 'PUT', config: { cache: { put: true, ttl: -1 } } }, /config\.cache\.ttl of PUT \/r/],
  ['write route: unknown key', { method: 'PUT', config: { cache: { evcit: 'x' } } }, /"evcit"/],
  ['cache: "yes"', { config: { cache: 'yes' } }, /config\.cache of GET \/r must be true or an object/],
  ['cache: 1', { config: { cache: 1 } }, /config\.cache of GET \/r must be true or an object/],
  ['cache: null', { config: { cache: null } }, /config\.cache of GET \/r must be true or an object/],
  ['cache: an array', { config: { cache: [] } }, /config\.cache of GET \/r must be true or an object/],
  ['ttl -1', { config: { cache: { ttl: -1 } } }, /config\.cache\.ttl of GET \/r/],
  ['ttl as a string', { config: { cache: { ttl: '5' } } }, /config\.cache\.ttl of GET \/r/],
  ['ttl fractional', { config: { cache: { ttl: 0.5 } } }, /config\.cache\.ttl of GET \/r/],
  ['group with braces', { config: { cache: { group: 'a{b}' } } }, /config\.cache\.group of GET \/r/],
  ['group empty', { config: { cache: { group: '' } } }, /config\.cache\.group of GET \/r/],
  ['group with a space', { config: { cache: { group: 'a b' } } }, /config\.cache\.group of GET \/r/],
  ['private as a string', { config: { cache: { private: 'yes' } } }, /config\.cache\.private of GET \/r/],
  ['clientDirectives as a number', { config: { cache: { clientDirectives: 0 } } }, /config\.cache\.clientDirectives of GET \/r/],
  ['unknown key tll', { config: { cache: { tll: 5 } } }, /unknown config\.cache option of GET \/r: "tll"/],
  ['staleWhileRevalidate fractional', { config: { cache: { staleWhileRevalidate: 0.5 } } }, /config\.cache\.staleWhileRevalidate of GET \/r/],
  ['staleIfError negative', { config: { cache: { staleIfError: -1 } } }, /config\.cache\.staleIfError of GET \/r/],
  ['lock as a number', { config: { cache: { lock: 1 } } }, /config\.cache\.lock of GET \/r/],
  ['lock.wait as a string', { config: { cache: { lock: { wait: '1s' } } } }, /config\.cache\.lock of GET \/r\.wait/]
]

for (const [name, route, message] of badRoutes) {
  test(`route registration fails: ${name}`, async (t) => {
    const err = await routeError(t, route)
    t.type(err, TypeError, 'a TypeError')
    t.match((err as Error | undefined)?.message, message)
  })
}

test('config.cache: false is accepted on any method and does nothing', async (t) => {
  for (const method of ['GET', 'POST', 'PUT', 'DELETE'] as const) {
    t.equal(await routeError(t, { method, config: { cache: false } }), undefined, method)
  }
})

test('a HEAD route the user wrote may opt in', async (t) => {
  t.equal(await routeError(t, { method: 'HEAD', config: { cache: true } }), undefined)
  t.equal(await routeError(t, { method: ['GET', 'HEAD'], config: { cache: { ttl: 5 } } }), undefined)
})

test('routes without config.cache pay nothing', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache)
  const HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse', 'onError'] as const
  const hooks = new Map<string, Record<string, unknown[]>>()
  // runs after the plugin's own onRoute hook: sees the route as the plugin left it
  app.addHook('onRoute', (route) => {
    if (route.method !== 'GET') return
    const found: Record<string, unknown[]> = {}
    for (const name of HOOKS) {
      const value: unknown = route[name]
      if (value !== undefined) found[name] = Array.isArray(value) ? value : [value]
    }
    hooks.set(route.url, found)
  })
  const calls = { plain: 0, off: 0, cached: 0 }
  app.get('/plain', async () => ({ n: ++calls.plain }))
  app.get('/off', { config: { cache: false } }, async () => ({ n: ++calls.off }))
  app.get('/other', { config: { something: 'else' } }, async () => 'x')
  app.get('/cached', { config: { cache: true } }, async () => ({ n: ++calls.cached }))
  await app.ready()

  for (const url of ['/plain', '/off', '/other']) {
    t.strictSame(hooks.get(url), {}, `${url} has no hooks at all`)
  }
  const cached = hooks.get('/cached') ?? {}
  const count = Object.values(cached).reduce((n, list) => n + list.length, 0)
  t.equal(count, 3, '/cached gets the lookup (in onRequest and in preHandler, one of which runs) and an onSend hook')
  t.equal(cached.onSend?.length, 1)
  t.equal(cached.onRequest?.length, 1)
  t.equal(cached.preHandler?.length, 1)

  for (const url of ['/plain', '/off'] as const) {
    for (let i = 1; i <= 3; i++) {
      const res = await app.inject(url)
      t.equal(res.statusCode, 200)
      t.equal(res.headers['x-cache'], undefined, `${url} has no x-cache header`)
      t.equal(res.headers.age, undefined, `${url} has no Age header`)
      t.equal(res.headers.etag, undefined, `${url} has no ETag added`)
      t.same(res.json(), { n: i }, `${url} runs its handler every time`)
    }
    const head = await app.inject({ method: 'HEAD', url })
    t.equal(head.headers['x-cache'], undefined, `HEAD ${url} has no x-cache header`)
  }
  t.same(calls, { plain: 4, off: 4, cached: 0 }, 'HEAD ran the handlers too')

  t.equal((await app.inject('/cached')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/cached')).headers['x-cache'], 'HIT')
  t.equal(calls.cached, 1, 'the opted-in route next to them is cached')
})

test('statusHeader option: renamed, or false for none', async (t) => {
  const renamed = Fastify()
  t.teardown(() => renamed.close())
  await renamed.register(httpCache, { statusHeader: 'X-Hit' })
  renamed.get('/', { config: { cache: true } }, async () => 'x')
  t.equal((await renamed.inject('/')).headers['x-hit'], 'MISS')
  const second = await renamed.inject('/')
  t.equal(second.headers['x-hit'], 'HIT')
  t.equal(second.headers['x-cache'], undefined)

  const none = Fastify()
  t.teardown(() => none.close())
  await none.register(httpCache, { statusHeader: false })
  let n = 0
  none.get('/', { config: { cache: true } }, async () => String(++n))
  t.equal((await none.inject('/')).headers['x-cache'], undefined)
  const hit = await none.inject('/')
  t.equal(hit.headers['x-cache'], undefined)
  t.equal(hit.body, '1', 'still cached')
  t.equal(n, 1)
})
