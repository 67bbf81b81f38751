import type { Cluster, Redis } from 'ioredis'
import type { FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify'

/** Plugin options, given once to `register`. */
export interface HttpCacheOptions {
  /** ioredis client (standalone or Cluster) or a redis:// URL. Omitted: `fastify.redis`, else memory. */
  redis?: Redis | Cluster | string
  /** Prefix of every key this plugin writes. Default `http-cache`. */
  prefix?: string
  /** Default TTL in seconds for routes that give none; 0 = never expires. Default 60. */
  ttl?: number
  /** Name of the HIT/MISS/BYPASS response header, or false for none. Default `x-cache`. */
  statusHeader?: string | false
  /** Largest body stored, in bytes; larger responses are served but not stored. Default 10 MiB. */
  maxEntrySize?: number
  /** Bounds of the in-memory store (used when no Redis is configured). */
  memory?: { maxBytes?: number }
  /** Honour the client's Cache-Control / Pragma request directives. Default true. */
  clientDirectives?: boolean
  /** Upper bound in ms of every Redis call made by the plugin. Default 250. */
  timeout?: number
  /** Group of routes and values that name none. Default `default`. */
  defaultGroup?: string
  /** Namespace of this registration's keys: two apps or API versions sharing a Redis never collide. */
  namespace?: string
  /** How a route's `namespace` combines with the plugin's: joined `plugin:route` (default) or replacing it. */
  routeNamespaces?: 'join' | 'replace'
  /** A successful write evicts cached GETs of its path and of every parent path. Default false. */
  autoInvalidate?: boolean
  /**
   * A write (a write route, or an unsafe request under `policy: 'http'`) whose eviction failed: `'ignore'`
   * (default) answers its own response and logs the failure, `'fail'` answers 503. Either way the eviction
   * is kept and replayed once the store answers, and what it covers is not served until then.
   */
  onEvictError?: 'ignore' | 'fail'
  /** IANA time zone or `±HH:MM` UTC offset of `expires: 'endOfDay' | 'endOfWeek'`. Default `UTC`. */
  timezone?: string
  /**
   * Key entries by origin: scheme and host as Fastify resolves them, plus any X-Forwarded-Host/-Proto/
   * -Port/-Prefix, X-Original-URL, X-Rewrite-URL or Forwarded host/proto a request carries, so a response
   * built from those headers never answers a request without them (cache poisoning). Default true.
   */
  keyOrigin?: boolean
  /** Origins one group may hold entries for; responses for further origins are not stored. Default 100. */
  maxOrigins?: number
  /**
   * In-process tier in front of Redis: entries read from Redis are kept here (LRU of `maxBytes`, default
   * 32 MiB) for at most `ttl` seconds (default 10), dropped on every instance when evicted anywhere.
   */
  l1?: { maxBytes?: number, ttl?: number }
  /** Default of the routes' `lock`. Default false. */
  lock?: boolean | LockOptions
  /** Default of the routes' `staleWhileRevalidate`, in seconds. Default 0. */
  staleWhileRevalidate?: number
  /** Default of the routes' `staleIfError`, in seconds. Default 0. */
  staleIfError?: number
  /**
   * Who decides freshness. `'ttl'` (default): the route's `ttl`, and the cache's own Cache-Control goes
   * downstream. `'http'`: the response's headers, as an RFC 9111 shared cache (gateways, handlers that
   * send their own Cache-Control); such routes may take any method and unsafe ones invalidate.
   */
  policy?: 'ttl' | 'http'
  /**
   * Under `policy: 'http'`: heuristic freshness (RFC 9111 §4.2.2) as a fraction of the time since
   * Last-Modified, for heuristically cacheable statuses without explicit freshness. Default false.
   */
  heuristic?: false | number
  /**
   * Under `policy: 'http'`: RFC 9213 targeted fields in priority order, e.g. `['CDN-Cache-Control']`; the
   * first valid one present replaces Cache-Control and Expires for this cache's decisions. Default [].
   */
  targeted?: string[]
  /**
   * Add an RFC 9211 `Cache-Status` member to every response of a cached route: `true` names this cache
   * `fastify-http-cache`, a string names it. Default false.
   */
  cacheStatus?: boolean | string
  /**
   * Prometheus metrics through prom-client (an optional peer dependency): `true` for prom-client's default
   * registry, or `{ registry, prefix }`. Default false.
   */
  metrics?: boolean | MetricsOptions
  /** Opt-in admin API: JSON routes under `prefix` to inspect the cache and evict from it (see the README). */
  admin?: AdminOptions
}

/** A route's preHandler as Fastify takes it: callback (with `done`) or async. */
export type AdminHook = (this: ThisParameterType<preHandlerHookHandler>, ...args: Parameters<preHandlerHookHandler>) => void | Promise<unknown>

/** The admin API's routes and what guards them. */
export interface AdminOptions {
  /** Where the routes are mounted. Default `/_cache`. */
  prefix?: string
  /** Auth hook(s) run before every admin route and before any input check; required unless `insecure`. */
  preHandler?: AdminHook | AdminHook[]
  /** Mount the routes with no preHandler (a private network, tests). Default false. */
  insecure?: boolean
}

/** Cross-instance stampede lock. */
export interface LockOptions {
  /** Longest wait for another instance's run before running the handler anyway, in ms. Default 3000. */
  wait?: number
  /** How long a lock holds if its holder never releases it, in ms. Default 10000. */
  lease?: number
}

/** Per-route options: `config: { cache: true | RouteCacheOptions }`. */
export interface RouteCacheOptions {
  /** TTL in seconds (0 = never expires), or a function of the request. Default: the plugin's `ttl`. */
  ttl?: number | ((request: FastifyRequest) => number | Promise<number>)
  /** Expire at the end of the day or week in the plugin's `timezone` (instead of `ttl`). */
  expires?: 'endOfDay' | 'endOfWeek'
  /** Eviction group the entry belongs to (a Redis hash tag: one slot per group). */
  group?: string
  /** Emit `Cache-Control: private` so shared caches downstream do not store the response. */
  private?: boolean
  /** Override the plugin's `clientDirectives` for this route. */
  clientDirectives?: boolean
  /**
   * Tags (surrogate keys) of the entry, evicted across groups by `fastify.cache.evictTag(tag)`. A function
   * is called with the request when the lookup misses, before the handler runs.
   */
  tags?: string[] | ((request: FastifyRequest) => string[] | Promise<string[]>)
  /** Custom key builder: replaces the URL in the key. */
  key?: (request: FastifyRequest) => string | Promise<string>
  /** Request headers that select a variant: part of the key, and sent back in `Vary`. */
  vary?: string[]
  /** Per-user (or per-tenant) entries, e.g. `(req) => req.user.id`; implies `Cache-Control: private`. */
  varyBy?: (request: FastifyRequest) => string | number | Promise<string | number>
  /** Namespace of this route's keys (combined with the plugin's per `routeNamespaces`). */
  namespace?: string
  /** false: writes to this path or its children do not evict this route's entries (autoInvalidate). */
  autoInvalidate?: boolean
  /**
   * Seconds an expired entry is still served (`x-cache: STALE`) while one background refresh runs
   * (RFC 5861). A handler's own `Cache-Control: stale-while-revalidate=N` wins.
   */
  staleWhileRevalidate?: number
  /** Seconds an expired entry stands in for a handler that throws or answers 5xx (RFC 5861). */
  staleIfError?: number
  /**
   * Concurrent misses of one key always run the handler once per process; `lock: true` also makes
   * instances sharing a Redis wait for one another (bounded, then the handler runs anyway).
   */
  lock?: boolean | LockOptions
  /** Override the plugin's `policy` for this route (`'http'` takes no `ttl` or `expires`). */
  policy?: 'ttl' | 'http'
  /** Override the plugin's `heuristic` for this route. */
  heuristic?: false | number
  /** Override the plugin's `targeted` for this route. */
  targeted?: string[]
}

/** Options of a write route (POST, PUT, PATCH, DELETE): `config: { cache: WriteCacheOptions }`. */
export interface WriteCacheOptions {
  /**
   * What a successful (2xx) response invalidates, before it is released to the client: a group, a list
   * of groups, or `{ self: true }` for the entry of the GET on the same URL (with `groups` too if wanted).
   */
  evict?: string | string[] | { self?: boolean, groups?: string | string[] }
  /** PUT/PATCH write-through: the 2xx response body becomes the entry of the GET on the same URL. */
  put?: boolean
  /** With `put`: TTL of the stored entry in seconds (default: the GET route's, else the plugin's). */
  ttl?: number
  /** With `put`: group of the stored entry (default: the GET route's, else the default group). */
  group?: string
  /** Tags evicted after a successful write (across groups). */
  tags?: string[] | ((request: FastifyRequest, reply: FastifyReply) => string[] | Promise<string[]>)
  /** Namespace the named groups live in (combined with the plugin's per `routeNamespaces`). */
  namespace?: string
  /** false: this write does not evict by path even when the plugin's `autoInvalidate` is on. */
  autoInvalidate?: boolean
}

export interface CacheValueOptions {
  /** Seconds; 0 = never expires. Default: the plugin's `ttl`. */
  ttl?: number
  /** Group the value belongs to, so `evictGroup` drops it with the routes of that group. */
  group?: string
  /** Tags, so `evictTag` drops it with the routes carrying them. */
  tags?: string[]
}

/** Where a group lives: the plugin's namespace unless another is given. */
export interface GroupOptions {
  group?: string
  namespace?: string
}

/** Inputs a route keys on, so `evict()` drops exactly the entry a GET would hit. */
export interface EvictOptions extends GroupOptions {
  /** Request header values of the route's `vary` headers. */
  headers?: Record<string, string | string[] | undefined>
  /** The value the route's `varyBy` would return. */
  varyBy?: string | number
  /** For routes with a `key` builder: the key it would return (the URL then only finds the route). */
  key?: string
}

export interface WrapOptions<A extends unknown[]> {
  /** Key of one call's result, from its arguments. */
  key: (...args: A) => string
  ttl?: number
  group?: string
  namespace?: string
  tags?: string[] | ((...args: A) => string[])
}

/** `fastify.cache` */
export interface HttpCacheApi {
  /** Drops every entry and value of a group; resolves to the number removed. */
  evictGroup (group: string, options?: { namespace?: string }): Promise<number>
  /** Drops every entry and value carrying a tag, in every group; resolves to how many the tag indexed (on Redis, expired ones not yet dropped included). */
  evictTag (tag: string): Promise<number>
  /** Drops the entry a GET of `url` would hit (group, namespace and key inputs taken from the matching route). */
  evict (url: string, options?: EvictOptions): Promise<boolean>
  /** Reads an application value stored with `set`. */
  get<T = unknown> (key: string, options?: GroupOptions): Promise<T | undefined>
  /** Stores an application value (msgpack-encoded). */
  set (key: string, value: unknown, options?: CacheValueOptions & { namespace?: string }): Promise<void>
  has (key: string, options?: GroupOptions): Promise<boolean>
  delete (key: string, options?: GroupOptions): Promise<boolean>
  /**
   * Memoizes an async function in the same store (evicted by the same groups and tags as routes);
   * concurrent calls with the same key run `fn` once.
   */
  wrap<A extends unknown[], R> (fn: (...args: A) => Promise<R>, options: WrapOptions<A>): (...args: A) => Promise<R>
  /**
   * Drops everything in this registration's namespace (never FLUSHDB). Resolves to the number of entries
   * the memory store removed; on Redis to 0: it makes them unreachable in O(1) and reclaims them behind the call.
   */
  clear (options?: { namespace?: string }): Promise<number>
  /** Which store serves this instance. */
  readonly storeName: 'memory' | 'redis'
  /** Requests by outcome (in total and per route), evictions and store errors since this instance started. */
  stats (): CacheStats
}

/** `config.cache`: read options on GET routes, write options on POST/PUT/PATCH/DELETE routes (checked at registration). */
export type RouteCacheConfig = Omit<RouteCacheOptions, 'tags'> & Omit<WriteCacheOptions, 'ttl'>

declare module 'fastify' {
  interface FastifyInstance {
    cache: HttpCacheApi
  }
  interface FastifyContextConfig {
    cache?: boolean | RouteCacheConfig
  }
}

/** Requests of one route (or of all of them) by outcome. */
export interface RouteStats {
  /** Answered from a fresh entry. */
  hits: number
  /** Went to the handler (revalidations included). */
  misses: number
  /** Answered from an expired entry (stale-while-revalidate, stale-if-error). */
  stale: number
  /** Neither read nor stored (Authorization, Range, `no-store`, unsafe methods under `policy: 'http'`). */
  bypasses: number
}

export type EvictionKind = 'group' | 'tag' | 'key' | 'url' | 'clear'

/** Store operations, as `http_cache_errors_total{op}` names them. */
export type StoreOp = 'lookup' | 'write' | 'registerTags' | 'delete' | 'deleteUrl' | 'evictGroup' | 'evictTag' | 'clear'

/** `fastify.cache.stats()`: this instance's counters since it started. */
export interface CacheStats extends RouteStats {
  /** Store calls that failed or timed out. */
  errors: number
  /** Keyed `'<METHOD> <route url>'`, e.g. `'GET /products/:id'`. */
  routes: Record<string, RouteStats>
  /** Eviction calls by kind. */
  evictions: Record<EvictionKind, number>
  errorsByOp: Record<StoreOp, number>
  store: 'memory' | 'redis'
  /** The Redis circuit breaker: `open` while calls are skipped, `half-open` while one probes again. */
  breaker: 'closed' | 'open' | 'half-open'
  /** Entries and bytes held, where the store can tell (memory). */
  entries?: number
  bytes?: number
}

/** The part of a prom-client `Registry` the plugin uses (prom-client's types are not required). */
export interface MetricsRegistry {
  getSingleMetric (name: string): unknown
  registerMetric (metric: any): void
}

/** `metrics`: where the Prometheus metrics go. */
export interface MetricsOptions {
  /** Default: prom-client's default registry. */
  registry?: MetricsRegistry
  /** Put in front of every metric name, e.g. `myapp_`. */
  prefix?: string
}
