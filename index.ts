import { randomBytes } from 'node:crypto'
import fp from 'fastify-plugin'
import type { Cluster, Redis } from 'ioredis'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import { adminRoutes, resolveAdmin } from './lib/admin.js'
import { createApi, createRouteFinder } from './lib/api.js'
import { createHooks, kState, type HookContext } from './lib/hooks.js'
import { KeyBuilder } from './lib/keys.js'
import { L1, subscribe } from './lib/l1.js'
import { resolveOptions, resolveRoute, resolveWriteRoute, type ResolvedOptions } from './lib/options.js'
import { Flights } from './lib/flights.js'
import { InFlight } from './lib/in-flight.js'
import { createWriteHook } from './lib/invalidation.js'
import { bindMetrics, loadPromClient } from './lib/metrics.js'
import { Stats } from './lib/stats.js'
import { MemoryStore } from './lib/stores/memory.js'
import { PendingStore } from './lib/stores/pending.js'
import { ObservedStore } from './lib/stores/observed-store.js'
import { RedisStore } from './lib/stores/redis.js'
import type { Store } from './lib/stores/store.js'
import type * as types from './lib/types.js'

const STARTUP_WAIT_MS = 2000
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

async function httpCache (fastify: FastifyInstance, options: types.HttpCacheOptions): Promise<void> {
  const opts = resolveOptions(options)
  const admin = resolveAdmin(options.admin)
  const keys = new KeyBuilder(opts.prefix)
  const stats = new Stats()
  // before any client is made: a missing prom-client or a clashing metric fails the registration cleanly
  const metrics = opts.metrics === undefined ? undefined : bindMetrics(await loadPromClient(), opts.metrics, stats)
  const own = await createStore(fastify, options.redis, keys, opts)
  const redis = own instanceof RedisStore ? own : undefined
  // the memory store is in process already: an L1 only makes sense in front of Redis
  const l1 = redis !== undefined && opts.l1 !== undefined ? new L1(opts.l1.maxBytes, opts.l1.ttlMs) : undefined
  // a Redis eviction can fail (an outage): kept and replayed before what it covers is served again.
  // Memory evictions cannot fail.
  const inner = redis === undefined
    ? own
    : new PendingStore(own, { log: fastify.log, everything: keys.namespaceStart(undefined), kept: l1 === undefined ? undefined : (what) => l1.apply(what) })
  // outermost: counts and times what the read and write paths see
  const store = new ObservedStore(inner, stats, metrics?.timer(own.name))
  const ctx: HookContext = {
    opts,
    store,
    keys,
    pending: new InFlight(),
    l1,
    locks: redis,
    flights: new Flights(),
    refreshing: new Set(),
    inject: async (url, headers) => await fastify.inject({ method: 'GET', url, headers }),
    token: randomBytes(16).toString('hex'),
    stats
  }
  const routes = createRouteFinder(routerOptions(fastify))

  // The plugin sends nothing to a client that is not ready (no offline queueing), so give a client
  // still connecting a bounded moment; a Redis down at boot must not keep the app from starting.
  if (redis !== undefined && !(await redis.waitReady(STARTUP_WAIT_MS))) {
    fastify.log.warn('fastify-http-cache: Redis not ready at startup, serving without cache until it is')
  }
  let subscription: { close: () => void } | undefined
  if (l1 !== undefined && redis !== undefined) {
    redis.invalidated = (what) => l1.apply(what)
    subscription = subscribe(redis.client, keys.channel(), l1, fastify.log)
  }

  fastify.decorateRequest(kState, null)
  fastify.decorate('cache', createApi(ctx, routes, fastify.log))

  // Only opted-in routes get hooks: every other route pays nothing.
  fastify.addHook('onRoute', function (this: FastifyInstance, route: RouteOptions) {
    const cfg = route.config?.cache
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const where = `${methods.join(',')} ${route.url}`
    const writes = methods.every((m) => WRITE_METHODS.has(m))
    if (cfg === undefined && writes && opts.autoInvalidate) {
      // autoInvalidate: every write route evicts by path unless it says config.cache: false
      route.onSend = [createWriteHook(ctx, routes, resolveWriteRoute(where, methods, {}, opts, keys)), ...asArray(route.onSend)]
      return
    }
    if (cfg === undefined || cfg === false) return
    const policy = typeof cfg === 'object' && cfg !== null && cfg.policy !== undefined ? cfg.policy : opts.policy
    // policy 'http' routes take any method (a gateway's `all('/*')`): GET and HEAD are looked up, unsafe
    // methods invalidate; a write route with its own evict/put options keeps them
    const writeOptions = typeof cfg === 'object' && cfg !== null && ('evict' in cfg || 'put' in cfg)
    if (writes && !(policy === 'http' && !writeOptions)) {
      route.onSend = [createWriteHook(ctx, routes, resolveWriteRoute(where, methods, cfg, opts, keys)), ...asArray(route.onSend)]
      return
    }
    if (policy !== 'http' && methods.some((m) => m !== 'GET' && m !== 'HEAD')) {
      throw new TypeError(`fastify-http-cache: config.cache caches GET routes and invalidates from POST, PUT, PATCH and DELETE routes; ${where} mixes them`)
    }
    const settings = resolveRoute(where, cfg, opts, keys)
    const onSend = asArray(route.onSend)
    // Fastify's own HEAD route for a GET runs the GET handler and then drops the body in its last
    // onSend hook; going before that hook lets a HEAD miss fill the GET entry too. A HEAD route the
    // user wrote may answer differently from the GET, so it only reads.
    const last = onSend.length - 1
    const autoHead = methods.length === 1 && methods[0] === 'HEAD' && last >= 0 && onSend[last].name === 'headRouteOnSendHandler'
    const hooks = createHooks(ctx, settings, methods.includes('GET') || autoHead || policy === 'http', { url: route.url, methods })
    // A HIT must not skip any check that guards the route (auth in onRequest, preParsing, preValidation or
    // preHandler, its own or its context's). Fastify settles a route's hooks only at ready: hooks added with
    // addHook() (deferred to after()), by plugins still loading, or appended by onRoute hooks that run after
    // this one all count. So where the lookup runs is decided on the route's first request, from its final
    // hooks: in onRequest (before any parsing) when it is the last onRequest hook and nothing else runs
    // before the handler, else as the last preHandler; when neither holds, the route is not read from the
    // cache at all (and a warning says why).
    const instance = this
    let place: 'early' | 'late' | 'none' | undefined
    const placeOf = (): 'early' | 'late' | 'none' => {
      if (place !== undefined) return place
      const onRequest = asArray(route.onRequest)
      const preHandler = asArray(route.preHandler)
      const context = contextHooks(instance)
      // unreadable context hooks count as guarded, and as someone else's onSend
      const count = (kind: string): number => context === undefined ? 1 : context[kind]?.length ?? 0
      const guarded = asArray(route.preParsing).length > 0 || asArray(route.preValidation).length > 0 ||
        preHandler.length > 1 || count('preParsing') + count('preValidation') + count('preHandler') > 0
      place = !guarded && onRequest[onRequest.length - 1] === early ? 'early' : preHandler[preHandler.length - 1] === late ? 'late' : 'none'
      const onSend = asArray(route.onSend)
      hooks.sendDirect(onSend.length === 1 && onSend[0] === hooks.onSend && count('onSend') === 0)
      if (place === 'none') fastify.log.warn(`fastify-http-cache: ${where} has hooks added after the cache's own (by an onRoute hook registered after the plugin), so it is not served from the cache; register fastify-http-cache after that plugin`)
      return place
    }
    function early (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      if (placeOf() === 'early') hooks.lookup(request, reply, done)
      else done()
    }
    function late (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      if (placeOf() === 'late') hooks.lookup(request, reply, done)
      else done()
    }
    route.onRequest = [...asArray(route.onRequest), early]
    route.preHandler = [...asArray(route.preHandler), late]
    // First among the route's onSend hooks, whichever plugin added its own first: the entry is the
    // handler's answer, before an encoder (@fastify/compress) or a transform, which run on HITs again
    route.onSend = [hooks.onSend, ...onSend]
    if (methods.includes('GET')) routes.add(route.url, settings)
  })

  fastify.addHook('onClose', async () => {
    subscription?.close()
    metrics?.unbind()
    await ctx.pending.drained()
    await store.close()
  })

  // opt-in JSON routes to inspect and evict (lib/admin.ts), in a context of their own under the prefix
  if (admin !== undefined) await fastify.register(adminRoutes(ctx, routes, fastify.cache, admin), { prefix: admin.prefix })
}

async function createStore (fastify: FastifyInstance, redis: types.HttpCacheOptions['redis'], keys: KeyBuilder, opts: ResolvedOptions): Promise<Store> {
  const settings = { timeout: opts.timeout, log: fastify.log, maxOrigins: opts.maxOrigins }
  if (typeof redis === 'string') {
    // Loaded only when the plugin makes a client: on Node 20, an app that had loaded ioredis and awaited
    // a plugin registration served every request ~3 µs slower, cached or not (process.nextTick got
    // slower; see the README's Benchmarks). The memory store does not pay that.
    const { Redis } = await import('ioredis')
    // our own client: no retries or offline queueing behind the plugin's back. No auto-pipelining: on a
    // local Redis it cost ~8% of HIT throughput and doubled the p99 (npm run bench)
    const client = new Redis(redis, { maxRetriesPerRequest: 1, connectTimeout: 2000 })
    client.on('error', (err) => fastify.log.debug({ err }, 'fastify-http-cache: Redis connection error'))
    return new RedisStore(client, keys, { ...settings, owned: true })
  }
  if (redis !== undefined) return new RedisStore(redis, keys, { ...settings, owned: false })
  const shared = fastify.hasDecorator('redis') ? (fastify as unknown as { redis: Redis | Cluster }).redis : undefined
  if (shared !== undefined && typeof shared.mgetBuffer === 'function') return new RedisStore(shared, keys, { ...settings, owned: false })
  return new MemoryStore(opts.memoryMaxBytes, opts.maxOrigins)
}

// The hooks of the context a route is declared in (e.g. an auth plugin's preHandler, an app's onSend).
// Fastify keeps them internally: read them where present, undefined when not readable.
function contextHooks (instance: FastifyInstance): Record<string, unknown[] | undefined> | undefined {
  const symbol = Object.getOwnPropertySymbols(instance).find((s) => s.description === 'fastify.hooks')
  return symbol === undefined ? undefined : (instance as unknown as Record<symbol, Record<string, unknown[] | undefined> | undefined>)[symbol]
}

function asArray<T> (hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]
}

// The same matching options as the app's own router, so evict(url) finds the route a GET would hit.
function routerOptions (fastify: FastifyInstance): Record<string, unknown> {
  const c = fastify.initialConfig as Record<string, unknown> & { routerOptions?: Record<string, unknown> }
  const r = c.routerOptions ?? {}
  return {
    ignoreTrailingSlash: r.ignoreTrailingSlash ?? c.ignoreTrailingSlash ?? false,
    ignoreDuplicateSlashes: r.ignoreDuplicateSlashes ?? c.ignoreDuplicateSlashes ?? false,
    caseSensitive: r.caseSensitive ?? c.caseSensitive ?? true,
    maxParamLength: r.maxParamLength ?? c.maxParamLength ?? 100
  }
}

const plugin = fp(httpCache, { fastify: '5.x', name: 'fastify-http-cache' })

// CommonJS module value with .default and a named export: require, default import and named import all work.
declare namespace httpCache {
  export type HttpCacheOptions = types.HttpCacheOptions
  export type RouteCacheOptions = types.RouteCacheOptions
  export type CacheValueOptions = types.CacheValueOptions
  export type HttpCacheApi = types.HttpCacheApi
  export type WriteCacheOptions = types.WriteCacheOptions
  export type RouteCacheConfig = types.RouteCacheConfig
  export type EvictOptions = types.EvictOptions
  export type GroupOptions = types.GroupOptions
  export type WrapOptions<A extends unknown[]> = types.WrapOptions<A>
  export type LockOptions = types.LockOptions
  export type CacheStats = types.CacheStats
  export type RouteStats = types.RouteStats
  export type MetricsOptions = types.MetricsOptions
  export type AdminOptions = types.AdminOptions
  export { httpCache as default, httpCache }
}
Object.assign(plugin, { default: plugin, httpCache: plugin })

export = httpCache
// Never runs: written for Node's CommonJS lexer, so ESM code can `import { httpCache }` too.
0 && (module.exports = { default: plugin, httpCache: plugin })
