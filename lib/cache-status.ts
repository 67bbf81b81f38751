// The Cache-Status response field (RFC 9211): one member for this cache on every response of a cached
// route, saying what the cache did. Built from constant strings and numbers; nothing here runs unless
// the `cacheStatus` option is on.
import type { FastifyReply } from 'fastify'
import type { CacheEntry } from './entry.js'

export const CACHE_STATUS = 'cache-status'

/** Why the request went to the handler: RFC 9211 §2.2 `fwd` values. */
export type Forward = 'uri-miss' | 'vary-miss' | 'miss' | 'stale' | 'request' | 'bypass' | 'method'

/** Where the cache stepped aside (RFC 9211 §2.8 `detail`, as tokens). */
export type Detail = 'store-down' | 'too-large' | 'only-if-cached' | 'stale-if-error'

/** Remaining freshness of `entry` served `ageMs` after it was stored, in whole seconds (negative: stale). */
export function freshnessLeft (entry: CacheEntry, ageMs: number): number {
  const age = entry.http === undefined ? ageMs : entry.http.age + ageMs
  const left = (entry.ttl - age) / 1000
  // whole seconds as max-age and Age count them; a fresh entry never says 0, a stale one always < 0
  return left > 0 ? Math.ceil(left) : Math.min(-1, Math.trunc(left))
}

/** `hit`, with the entry's remaining freshness (none for an entry stored without expiry). */
export function hitMember (name: string, entry: CacheEntry, ageMs: number): string {
  if (entry.ttl === 0 && entry.http === undefined) return name + '; hit'
  return name + '; hit; ttl=' + String(freshnessLeft(entry, ageMs))
}

/**
 * The request went to the handler (`fwd`), which answered `status` (0: none). `stored`: the response is
 * being stored, with `ttl` seconds of freshness (undefined: it never expires).
 */
export function forwardMember (name: string, fwd: Forward, status: number, stored: boolean, ttl: number | undefined, detail: Detail | undefined): string {
  let member = name + '; fwd=' + fwd
  if (status > 0) member += '; fwd-status=' + String(status)
  if (stored) member += ttl === undefined ? '; stored' : '; stored; ttl=' + String(ttl)
  if (detail !== undefined) member += '; detail=' + detail
  return member
}

/** Sets our member after any a cache upstream added (RFC 9211 §2: the member closest to the client last). */
export function setCacheStatus (reply: FastifyReply, member: string): void {
  const upstream = reply.getHeader(CACHE_STATUS)
  if (upstream === undefined) reply.header(CACHE_STATUS, member)
  else reply.header(CACHE_STATUS, (Array.isArray(upstream) ? upstream.join(', ') : String(upstream)) + ', ' + member)
}

export const DEFAULT_NAME = 'fastify-http-cache'
// RFC 8941 §3.3.4 sf-token: how RFC 9211 members name their cache
const TOKEN = /^[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*$/

/** The `cacheStatus` option: the cache's name, or undefined for no Cache-Status. */
export function checkCacheStatus (name: string, value: unknown): string | undefined {
  if (value === true) return DEFAULT_NAME
  if (value === false) return undefined
  if (typeof value !== 'string' || !TOKEN.test(value)) {
    throw new TypeError(`fastify-http-cache: option "${name}" must be a boolean or a cache name (an RFC 8941 token like "my-cdn"), got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`)
  }
  return value
}
