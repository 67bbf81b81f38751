import type { FastifyReply, FastifyRequest } from 'fastify'
import type { HttpCacheOptions, RouteCacheOptions, WriteCacheOptions } from './types.js'
import { assertName, type KeyBuilder } from './keys.js'
import { checkCacheStatus } from './cache-status.js'
import { checkMetrics, type MetricsSettings } from './metrics.js'
import { assertExpires, assertTimezone, createExpiryClock, type Expires, type ExpiryClock } from './expiry.js'

export interface ResolvedOptions {
  prefix: string
  ttl: number
  statusHeader: string | false
  maxEntrySize: number
  memoryMaxBytes: number
  clientDirectives: boolean
  timeout: number
  defaultGroup: string
  namespace: string | undefined
  routeNamespaces: 'join' | 'replace'
  autoInvalidate: boolean
  clock: ExpiryClock
  /** Key entries by origin (scheme, host, forwarding headers). */
  keyOrigin: boolean
  /** Origins one group may hold entries for. */
  maxOrigins: number
  /** In-process tier in front of Redis. */
  l1: { maxBytes: number, ttlMs: number } | undefined
  /** Route defaults. */
  lock: LockSettings | null
  staleWhileRevalidate: number
  staleIfError: number
  policy: CachePolicy
  /** Heuristic freshness as a fraction of the time since Last-Modified (0: off). */
  heuristic: number
  /** RFC 9213 targeted field names, lower-case, in priority order. */
  targeted: string[]
  /** What a write whose eviction failed answers: its own response ('ignore') or a 503 ('fail'). */
  onEvictError: 'ignore' | 'fail'
  /** Name of this cache's Cache-Status member (RFC 9211); undefined: no Cache-Status. */
  cacheStatus: string | undefined
  /** Prometheus metrics: where they go; undefined: none. */
  metrics: MetricsSettings | undefined
}

export type CachePolicy = 'ttl' | 'http'

/** Cross-instance stampede lock: how long to wait for another instance's run, how long a lock holds (ms). */
export interface LockSettings { wait: number, lease: number }

export type TagSource = (request: FastifyRequest, reply: FastifyReply) => string[] | Promise<string[]>
export type RequestTagSource = (request: FastifyRequest) => string[] | Promise<string[]>

/** What a route's `config.cache` resolves to, once, at route registration. */
export interface RouteSettings {
  ttl: number | ((request: FastifyRequest) => number | Promise<number>)
  expires: Expires | undefined
  group: string
  namespace: string | undefined
  /** Key base of the route's group in its namespace. */
  base: string
  private: boolean
  clientDirectives: boolean
  tags: RequestTagSource | undefined
  key: ((request: FastifyRequest) => string | Promise<string>) | undefined
  /** Lower-case header names, sorted. */
  vary: string[]
  varyBy: ((request: FastifyRequest) => string | number | Promise<string | number>) | undefined
  /** Index entries by path so writes to the path or its children evict them. */
  byPath: boolean
  /** Seconds an expired entry may be served while it is refreshed / when the handler fails. */
  staleWhileRevalidate: number
  staleIfError: number
  lock: LockSettings | null
  /** Who decides freshness: the route ('ttl') or the response's headers, as RFC 9111 says ('http'). */
  policy: CachePolicy
  heuristic: number
  targeted: string[]
}

/** What a write route's `config.cache` resolves to. */
export interface WriteSettings {
  /** Key bases of the groups to evict. */
  groups: string[]
  self: boolean
  /** Write-through; ttl/group undefined = those of the GET route on the same URL. */
  put: { ttl: number | undefined, group: string | undefined } | null
  tags: TagSource | undefined
  namespace: string | undefined
  byPath: boolean
}

const PLUGIN_KEYS = new Set(['redis', 'prefix', 'ttl', 'statusHeader', 'maxEntrySize', 'memory', 'clientDirectives', 'timeout',
  'defaultGroup', 'namespace', 'routeNamespaces', 'autoInvalidate', 'timezone', 'keyOrigin', 'maxOrigins', 'l1', 'lock',
  'staleWhileRevalidate', 'staleIfError', 'policy', 'heuristic', 'targeted', 'onEvictError',
  'admin']) // admin: checked by lib/admin.ts
PLUGIN_KEYS.add('cacheStatus').add('metrics')
const ROUTE_KEYS = new Set(['ttl', 'expires', 'group', 'private', 'clientDirectives', 'tags', 'key', 'vary', 'varyBy', 'namespace', 'autoInvalidate',
  'lock', 'staleWhileRevalidate', 'staleIfError', 'policy', 'heuristic', 'targeted'])
const LOCK_WAIT_MS = 3000
const LOCK_LEASE_MS = 10_000
const WRITE_KEYS = new Set(['evict', 'put', 'ttl', 'group', 'tags', 'namespace', 'autoInvalidate'])
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const MAX_TTL = 100 * 365 * 24 * 3600 // beyond this a ttl is a unit mistake, not an intent

function fail (name: string, expected: string, value: unknown): never {
  throw new TypeError(`fastify-http-cache: option "${name}" must be ${expected}, got ${describe(value)}`)
}

function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`
}

function checkUnknown (where: string, value: object, allowed: Set<string>): void {
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) {
      throw new TypeError(`fastify-http-cache: unknown ${where} "${key}" (expected one of: ${[...allowed].join(', ')})`)
    }
  }
}

export function checkTtl (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TTL) {
    fail(name, `a whole number of seconds from 0 (never expires) to ${MAX_TTL}`, value)
  }
  return value
}

function checkBool (name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(name, 'a boolean', value)
  return value
}

function checkSize (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) fail(name, 'a positive whole number of bytes', value)
  return value
}

export function resolveOptions (opts: HttpCacheOptions): ResolvedOptions {
  if (opts === null || typeof opts !== 'object') fail('options', 'an object', opts)
  checkUnknown('option', opts, PLUGIN_KEYS)
  const o: ResolvedOptions = {
    prefix: 'http-cache',
    ttl: 60,
    statusHeader: 'x-cache',
    maxEntrySize: 10 * 1024 * 1024,
    memoryMaxBytes: 64 * 1024 * 1024,
    clientDirectives: true,
    timeout: 250,
    defaultGroup: 'default',
    namespace: undefined,
    routeNamespaces: 'join',
    autoInvalidate: false,
    clock: createExpiryClock('UTC'),
    keyOrigin: true,
    maxOrigins: 100,
    l1: undefined,
    lock: null,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    policy: 'ttl',
    heuristic: 0,
    targeted: [],
    onEvictError: 'ignore',
    cacheStatus: undefined,
    metrics: undefined
  }
  if (opts.prefix !== undefined) o.prefix = assertName('prefix', opts.prefix)
  if (opts.ttl !== undefined) o.ttl = checkTtl('ttl', opts.ttl)
  if (opts.statusHeader !== undefined) {
    const h = opts.statusHeader
    if (h !== false && (typeof h !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h))) {
      fail('statusHeader', 'a header name (RFC 9110 token) or false', h)
    }
    o.statusHeader = h === false ? false : h.toLowerCase()
  }
  if (opts.maxEntrySize !== undefined) o.maxEntrySize = checkSize('maxEntrySize', opts.maxEntrySize)
  if (opts.memory !== undefined) {
    if (opts.memory === null || typeof opts.memory !== 'object' || Array.isArray(opts.memory)) fail('memory', 'an object like { maxBytes }', opts.memory)
    checkUnknown('option in memory:', opts.memory, new Set(['maxBytes']))
    if (opts.memory.maxBytes !== undefined) o.memoryMaxBytes = checkSize('memory.maxBytes', opts.memory.maxBytes)
  }
  if (opts.clientDirectives !== undefined) o.clientDirectives = checkBool('clientDirectives', opts.clientDirectives)
  if (opts.timeout !== undefined) {
    const t = opts.timeout
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 60_000) fail('timeout', 'a whole number of milliseconds from 1 to 60000', t)
    o.timeout = t
  }
  if (opts.defaultGroup !== undefined) o.defaultGroup = assertName('defaultGroup', opts.defaultGroup)
  if (opts.namespace !== undefined) o.namespace = assertName('option "namespace"', opts.namespace)
  if (opts.routeNamespaces !== undefined) {
    if (opts.routeNamespaces !== 'join' && opts.routeNamespaces !== 'replace') fail('routeNamespaces', '"join" or "replace"', opts.routeNamespaces)
    o.routeNamespaces = opts.routeNamespaces
  }
  if (opts.autoInvalidate !== undefined) o.autoInvalidate = checkBool('autoInvalidate', opts.autoInvalidate)
  if (opts.timezone !== undefined) o.clock = createExpiryClock(assertTimezone('option "timezone"', opts.timezone))
  if (opts.keyOrigin !== undefined) o.keyOrigin = checkBool('keyOrigin', opts.keyOrigin)
  if (opts.maxOrigins !== undefined) o.maxOrigins = checkCount('maxOrigins', opts.maxOrigins)
  if (opts.l1 !== undefined) {
    const l1 = opts.l1
    if (l1 === null || typeof l1 !== 'object' || Array.isArray(l1)) fail('l1', 'an object like { maxBytes, ttl }', l1)
    checkUnknown('option in l1:', l1, new Set(['maxBytes', 'ttl']))
    const ttl = l1.ttl === undefined ? 10 : checkTtl('l1.ttl', l1.ttl)
    if (ttl === 0) fail('l1.ttl', 'at least 1 second (it bounds how long a copy outlives a lost invalidation)', ttl)
    o.l1 = { maxBytes: l1.maxBytes === undefined ? 32 * 1024 * 1024 : checkSize('l1.maxBytes', l1.maxBytes), ttlMs: ttl * 1000 }
  }
  if (opts.lock !== undefined) o.lock = checkLock('lock', opts.lock, null)
  if (opts.staleWhileRevalidate !== undefined) o.staleWhileRevalidate = checkTtl('staleWhileRevalidate', opts.staleWhileRevalidate)
  if (opts.staleIfError !== undefined) o.staleIfError = checkTtl('staleIfError', opts.staleIfError)
  if (opts.policy !== undefined) o.policy = checkPolicy('policy', opts.policy)
  if (opts.heuristic !== undefined) o.heuristic = checkHeuristic('heuristic', opts.heuristic)
  if (opts.targeted !== undefined) o.targeted = checkTargeted('targeted', opts.targeted)
  if (opts.onEvictError !== undefined) {
    if (opts.onEvictError !== 'ignore' && opts.onEvictError !== 'fail') fail('onEvictError', '"ignore" or "fail"', opts.onEvictError)
    o.onEvictError = opts.onEvictError
  }
  if (opts.cacheStatus !== undefined) o.cacheStatus = checkCacheStatus('cacheStatus', opts.cacheStatus)
  if (opts.metrics !== undefined) o.metrics = checkMetrics('metrics', opts.metrics)
  const r = opts.redis
  if (r !== undefined && typeof r !== 'string' && (r === null || typeof r !== 'object' || typeof (r as { mgetBuffer?: unknown }).mgetBuffer !== 'function')) {
    fail('redis', 'an ioredis Redis or Cluster instance or a redis:// URL', r)
  }
  if (typeof r === 'string' && !/^rediss?:\/\//.test(r)) fail('redis', 'an ioredis Redis or Cluster instance or a redis:// URL', r)
  return o
}

function checkPolicy (name: string, value: unknown): CachePolicy {
  if (value !== 'ttl' && value !== 'http') fail(name, '"ttl" or "http"', value)
  return value
}

function checkHeuristic (name: string, value: unknown): number {
  if (value === false) return 0
  if (typeof value !== 'number' || !(value > 0 && value <= 1)) fail(name, 'false or a fraction of the time since Last-Modified, above 0 and at most 1 (e.g. 0.1)', value)
  return value
}

function checkTargeted (name: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((h) => typeof h !== 'string' || !HEADER_NAME.test(h))) fail(name, 'an array of response header names like ["CDN-Cache-Control"]', value)
  return [...new Set(value.map((h: string) => h.toLowerCase()))]
}

function checkCount (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) fail(name, 'a whole number from 1', value)
  return value
}

function checkLock (name: string, value: unknown, fallback: LockSettings | null): LockSettings | null {
  if (value === false) return null
  if (value === true) return fallback ?? { wait: LOCK_WAIT_MS, lease: LOCK_LEASE_MS }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(name, 'a boolean or { wait, lease } in milliseconds', value)
  checkUnknown(`option in ${name}:`, value, new Set(['wait', 'lease']))
  const ms = (field: 'wait' | 'lease', dflt: number): number => {
    const v = (value as Record<string, unknown>)[field]
    if (v === undefined) return dflt
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 600_000) fail(`${name}.${field}`, 'a whole number of milliseconds from 1 to 600000', v)
    return v
  }
  return { wait: ms('wait', fallback?.wait ?? LOCK_WAIT_MS), lease: ms('lease', fallback?.lease ?? LOCK_LEASE_MS) }
}

function checkFunction<T> (name: string, value: unknown): T {
  if (typeof value !== 'function') fail(name, 'a function', value)
  return value as T
}

function tagSource<T extends TagSource | RequestTagSource> (name: string, value: unknown): T {
  if (typeof value === 'function') return value as T
  if (!Array.isArray(value)) fail(name, 'an array of tags or a function returning one', value)
  const tags = value.map((tag: unknown) => assertName(name, tag))
  return (() => [...tags]) as unknown as T
}

/** The namespace a route's keys live in. */
export function routeNamespace (what: string, value: unknown, o: ResolvedOptions): string | undefined {
  if (value === undefined) return o.namespace
  const ns = assertName(what, value)
  return o.routeNamespaces === 'replace' || o.namespace === undefined ? ns : `${o.namespace}:${ns}`
}

export function resolveRoute (where: string, value: unknown, o: ResolvedOptions, keys: KeyBuilder): RouteSettings {
  const s: RouteSettings = {
    ttl: o.ttl,
    expires: undefined,
    group: o.defaultGroup,
    namespace: o.namespace,
    base: '',
    private: false,
    clientDirectives: o.clientDirectives,
    tags: undefined,
    key: undefined,
    vary: [],
    varyBy: undefined,
    byPath: o.autoInvalidate,
    staleWhileRevalidate: o.staleWhileRevalidate,
    staleIfError: o.staleIfError,
    lock: o.lock,
    policy: o.policy,
    heuristic: o.heuristic,
    targeted: o.targeted
  }
  if (value !== true) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new TypeError(`fastify-http-cache: config.cache of ${where} must be true or an object like { ttl, group, private }, got ${describe(value)}`)
    }
    const v = value as RouteCacheOptions
    const name = (option: string): string => `config.cache.${option} of ${where}`
    checkUnknown(`config.cache option of ${where}:`, v, ROUTE_KEYS)
    if (v.ttl !== undefined) s.ttl = typeof v.ttl === 'function' ? v.ttl : checkTtl(name('ttl'), v.ttl)
    if (v.expires !== undefined) {
      if (v.ttl !== undefined) throw new TypeError(`fastify-http-cache: config.cache of ${where} takes ttl or expires, not both`)
      s.expires = assertExpires(`option "${name('expires')}"`, v.expires)
    }
    if (v.group !== undefined) s.group = assertName(name('group'), v.group)
    if (v.private !== undefined) s.private = checkBool(name('private'), v.private)
    if (v.clientDirectives !== undefined) s.clientDirectives = checkBool(name('clientDirectives'), v.clientDirectives)
    if (v.tags !== undefined) s.tags = tagSource<RequestTagSource>(name('tags'), v.tags)
    if (v.key !== undefined) s.key = checkFunction(name('key'), v.key)
    if (v.varyBy !== undefined) s.varyBy = checkFunction(name('varyBy'), v.varyBy)
    if (v.vary !== undefined) {
      if (!Array.isArray(v.vary) || v.vary.some((h) => typeof h !== 'string' || !HEADER_NAME.test(h))) {
        fail(name('vary'), 'an array of request header names', v.vary)
      }
      s.vary = [...new Set(v.vary.map((h) => h.toLowerCase()))].sort()
    }
    s.namespace = routeNamespace(name('namespace'), v.namespace, o)
    if (v.autoInvalidate !== undefined) s.byPath = o.autoInvalidate && checkBool(name('autoInvalidate'), v.autoInvalidate)
    if (v.staleWhileRevalidate !== undefined) s.staleWhileRevalidate = checkTtl(name('staleWhileRevalidate'), v.staleWhileRevalidate)
    if (v.staleIfError !== undefined) s.staleIfError = checkTtl(name('staleIfError'), v.staleIfError)
    if (v.lock !== undefined) s.lock = checkLock(name('lock'), v.lock, o.lock)
    if (v.policy !== undefined) s.policy = checkPolicy(name('policy'), v.policy)
    if (v.heuristic !== undefined) s.heuristic = checkHeuristic(name('heuristic'), v.heuristic)
    if (v.targeted !== undefined) s.targeted = checkTargeted(name('targeted'), v.targeted)
    // under 'http' the response's own headers set freshness
    if (s.policy === 'http' && (v.ttl !== undefined || v.expires !== undefined)) {
      throw new TypeError(`fastify-http-cache: config.cache of ${where} has policy "http": freshness comes from the response's headers, so it takes no ttl or expires`)
    }
  }
  s.base = keys.base(s.group, s.namespace)
  return s
}

/**
 * The TTL of one response, in seconds; undefined when a TTL function answered something unusable.
 * Synchronous unless the route's ttl is a function (every MISS computes it).
 */
export function ttlFor (s: RouteSettings, request: FastifyRequest, clock: ExpiryClock, now: number): number | Promise<number | undefined> {
  if (s.expires !== undefined) return Math.max(1, Math.ceil((clock.expiresAt(s.expires, now) - now) / 1000))
  if (typeof s.ttl === 'number') return s.ttl
  const fn = s.ttl
  return (async () => {
    const ttl = await fn(request)
    return Number.isInteger(ttl) && ttl >= 0 && ttl <= MAX_TTL ? ttl : undefined
  })()
}

export function resolveWriteRoute (where: string, methods: string[], value: unknown, o: ResolvedOptions, keys: KeyBuilder): WriteSettings {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`fastify-http-cache: config.cache of ${where} must be an object like { evict: 'group' } or { put: true }, got ${describe(value)}`)
  }
  const v = value as WriteCacheOptions
  checkUnknown(`config.cache option of ${where}:`, v, WRITE_KEYS)
  const namespace = routeNamespace(`config.cache.namespace of ${where}`, v.namespace, o)
  const s: WriteSettings = { groups: [], self: false, put: null, tags: undefined, namespace, byPath: o.autoInvalidate }
  if (v.tags !== undefined) s.tags = tagSource<TagSource>(`config.cache.tags of ${where}`, v.tags)
  if (v.autoInvalidate !== undefined) s.byPath = o.autoInvalidate && checkBool(`config.cache.autoInvalidate of ${where}`, v.autoInvalidate)
  const evict = v.evict
  const groups = (list: unknown, name: string): string[] => {
    const arr = typeof list === 'string' ? [list] : list
    if (!Array.isArray(arr) || arr.length === 0) fail(name, 'a group name or a non-empty array of group names', list)
    return arr.map((g: unknown) => keys.base(assertName(name, g), namespace))
  }
  if (evict !== undefined) {
    if (typeof evict === 'string' || Array.isArray(evict)) {
      s.groups = groups(evict, `config.cache.evict of ${where}`)
    } else if (evict !== null && typeof evict === 'object') {
      checkUnknown(`config.cache.evict option of ${where}:`, evict, new Set(['self', 'groups']))
      if (evict.self !== undefined) s.self = checkBool(`config.cache.evict.self of ${where}`, evict.self)
      if (evict.groups !== undefined) s.groups = groups(evict.groups, `config.cache.evict.groups of ${where}`)
      if (!s.self && s.groups.length === 0) fail(`config.cache.evict of ${where}`, '{ self: true } and/or { groups }', evict)
    } else {
      fail(`config.cache.evict of ${where}`, 'a group, an array of groups or { self, groups }', evict)
    }
  }
  if (v.put !== undefined && checkBool(`config.cache.put of ${where}`, v.put)) {
    if (methods.some((m) => m !== 'PUT' && m !== 'PATCH')) {
      throw new TypeError(`fastify-http-cache: config.cache.put is for PUT and PATCH routes, not ${where}`)
    }
    s.put = {
      ttl: v.ttl === undefined ? undefined : checkTtl(`config.cache.ttl of ${where}`, v.ttl),
      group: v.group === undefined ? undefined : assertName(`config.cache.group of ${where}`, v.group)
    }
  } else if (v.ttl !== undefined || v.group !== undefined) {
    throw new TypeError(`fastify-http-cache: config.cache.ttl and .group of ${where} only apply with put: true`)
  }
  if (s.groups.length === 0 && !s.self && s.put === null && s.tags === undefined && !s.byPath) {
    throw new TypeError(`fastify-http-cache: config.cache of ${where} does nothing: give evict, tags and/or put`)
  }
  return s
}
