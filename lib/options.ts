import type { HttpCacheOptions, RouteCacheOptions, WriteCacheOptions } from './types.js'
import { assertName } from './keys.js'

export interface ResolvedOptions {
  prefix: string
  ttl: number
  statusHeader: string | false
  maxEntrySize: number
  memoryMaxBytes: number
  clientDirectives: boolean
  timeout: number
  defaultGroup: string
}

/** What a route's `config.cache` resolves to, once, at route registration. */
export interface RouteSettings {
  ttl: number
  group: string
  private: boolean
  clientDirectives: boolean
}

const PLUGIN_KEYS = new Set(['redis', 'prefix', 'ttl', 'statusHeader', 'maxEntrySize', 'memory', 'clientDirectives', 'timeout', 'defaultGroup'])
const ROUTE_KEYS = new Set(['ttl', 'group', 'private', 'clientDirectives'])
const WRITE_KEYS = new Set(['evict', 'put', 'ttl', 'group'])

/** What a write route's `config.cache` resolves to. */
export interface WriteSettings {
  groups: string[]
  self: boolean
  /** Write-through; ttl/group undefined = those of the GET route on the same URL. */
  put: { ttl: number | undefined, group: string | undefined } | null
}
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
    defaultGroup: 'default'
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
  const r = opts.redis
  if (r !== undefined && typeof r !== 'string' && (r === null || typeof r !== 'object' || typeof (r as { mgetBuffer?: unknown }).mgetBuffer !== 'function')) {
    fail('redis', 'an ioredis Redis or Cluster instance or a redis:// URL', r)
  }
  if (typeof r === 'string' && !/^rediss?:\/\//.test(r)) fail('redis', 'an ioredis Redis or Cluster instance or a redis:// URL', r)
  return o
}

export function resolveRoute (where: string, value: unknown, o: ResolvedOptions): RouteSettings {
  const s: RouteSettings = { ttl: o.ttl, group: o.defaultGroup, private: false, clientDirectives: o.clientDirectives }
  if (value === true) return s
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`fastify-http-cache: config.cache of ${where} must be true or an object like { ttl, group, private }, got ${describe(value)}`)
  }
  const v = value as RouteCacheOptions
  checkUnknown(`config.cache option of ${where}:`, v, ROUTE_KEYS)
  if (v.ttl !== undefined) s.ttl = checkTtl(`config.cache.ttl of ${where}`, v.ttl)
  if (v.group !== undefined) s.group = assertName(`config.cache.group of ${where}`, v.group)
  if (v.private !== undefined) s.private = checkBool(`config.cache.private of ${where}`, v.private)
  if (v.clientDirectives !== undefined) s.clientDirectives = checkBool(`config.cache.clientDirectives of ${where}`, v.clientDirectives)
  return s
}

export function resolveWriteRoute (where: string, methods: string[], value: unknown): WriteSettings {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`fastify-http-cache: config.cache of ${where} must be an object like { evict: 'group' } or { put: true }, got ${describe(value)}`)
  }
  const v = value as WriteCacheOptions
  checkUnknown(`config.cache option of ${where}:`, v, WRITE_KEYS)
  const s: WriteSettings = { groups: [], self: false, put: null }
  const evict = v.evict
  const groups = (list: unknown, name: string): string[] => {
    const arr = typeof list === 'string' ? [list] : list
    if (!Array.isArray(arr) || arr.length === 0) fail(name, 'a group name or a non-empty array of group names', list)
    return arr.map((g: unknown) => assertName(name, g))
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
  if (s.groups.length === 0 && !s.self && s.put === null) {
    throw new TypeError(`fastify-http-cache: config.cache of ${where} does nothing: give evict and/or put`)
  }
  return s
}
