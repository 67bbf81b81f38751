// policy: 'http' — the response decides, as RFC 9111 has a shared cache do: its Cache-Control (or an
// RFC 9213 targeted field), Expires, Date and Age set freshness, its validators let a stale entry be
// revalidated, and the request's own directives are honoured. Each function cites the section it follows.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { deltaSeconds, fieldNames, MAX_DELTA, parseCacheControl, parseTargeted, type Directives } from '../cache-control.js'
import { HTTP_DATE } from '../conditional.js'
import { NONE, type RequestDirectives } from '../directives.js'
import { NO_CACHE, NO_STALE, type CacheEntry, type HttpMeta } from '../entry.js'
import { kState, type RouteRun } from '../state.js'
import { applyVary } from '../vary.js'
import { FRESH, STALE, VALIDATE, type Freshness, type Policy, type Reuse } from './policy.js'

/** Statuses a cache may store without explicit freshness (RFC 9110 §15.1). */
const HEURISTIC = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])

/** Statuses RFC 9110 defines (the ones `must-understand` lets through a `no-store`, §5.2.2.3). */
const UNDERSTOOD = new Set([200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 305, 307, 308, 400, 401, 402, 403, 404,
  405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505])

/** A header's value as Fastify holds it on the reply (or as an entry stores it). */
export type HeaderSource = (name: string) => unknown

/** What the response says about caching it: the targeted field when one is valid, else Cache-Control (RFC 9213 §2.1). */
function responseCacheControl (targeted: readonly string[], get: HeaderSource): { cc: Directives, targeted: boolean } {
  for (const name of targeted) {
    const d = parseTargeted(get(name))
    if (d !== undefined && d.size > 0) return { cc: d, targeted: true }
  }
  return { cc: parseCacheControl(get('cache-control')), targeted: false }
}

/** The first value of a header that may have been sent more than once. */
function first (value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  return Array.isArray(value) ? (value.length === 0 ? undefined : String(value[0])) : String(value)
}

/** An HTTP-date in ms (RFC 9110 §5.6.7), else undefined. */
export function parseHttpDate (value: unknown): number | undefined {
  const v = first(value)?.trim()
  if (v === undefined || !HTTP_DATE.test(v)) return undefined
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : t
}

/** Age (RFC 9111 §5.1): delta-seconds; the first member counts; anything else is ignored (0). */
function ageValue (value: unknown): number {
  const v = first(value)?.split(',')[0].trim()
  if (v === undefined || !/^\d+$/.test(v)) return 0
  return Math.min(Number(v), MAX_DELTA)
}

/**
 * Freshness lifetime in ms (RFC 9111 §4.2.1): s-maxage (a shared cache), then max-age, then
 * Expires − Date; undefined when the response gives none. An Expires that is not a date means "already
 * expired" (§5.3).
 */
function explicitLifetime (cc: Directives, targeted: boolean, get: HeaderSource, date: number): number | undefined {
  const shared = deltaSeconds(cc, 's-maxage')
  if (shared !== undefined) return shared * 1000
  const maxAge = deltaSeconds(cc, 'max-age')
  if (maxAge !== undefined) return maxAge * 1000
  // a targeted field replaces Expires too
  if (targeted) return undefined
  const expires = get('expires')
  if (expires === undefined) return undefined
  const at = parseHttpDate(expires)
  return at === undefined ? 0 : Math.max(0, at - date)
}

/**
 * Corrected initial age (RFC 9111 §4.2.3): the larger of the apparent age (response time − Date) and the
 * Age the response came with plus the time it took to arrive.
 */
function initialAge (get: HeaderSource, date: number, requestTime: number, responseTime: number): number {
  const apparent = Math.max(0, responseTime - date)
  const corrected = ageValue(get('age')) * 1000 + Math.max(0, responseTime - requestTime)
  return Math.max(apparent, corrected)
}

/**
 * Whether (and how) a response may be stored (RFC 9111 §3, §3.5), and its freshness (§4.2). `get` reads
 * the response's headers; undefined: not stored.
 */
export function httpFreshness (run: RouteRun, status: number, get: HeaderSource, authorized: boolean, requestTime: number, responseTime: number): Freshness | undefined {
  const { route } = run
  if (status < 200 || status > 599 || status === 206 || status === 304) return undefined
  const { cc, targeted } = responseCacheControl(route.targeted, get)
  // must-understand: a cache that knows the status may ignore no-store (§5.2.2.3)
  if (cc.has('must-understand') ? !UNDERSTOOD.has(status) : cc.has('no-store')) return undefined
  // a shared cache stores no private response (qualified private="..." read as the unqualified form)
  if (cc.has('private')) return undefined
  const shareable = cc.has('public') || cc.has('s-maxage')
  if (authorized && !shareable && !cc.has('must-revalidate')) return undefined
  // one client's cookie is never replayed to another unless the origin says the response is shared
  if (get('set-cookie') !== undefined && !shareable) return undefined

  const date = parseHttpDate(get('date')) ?? responseTime
  const explicit = explicitLifetime(cc, targeted, get, date)
  const validator = typeof get('etag') === 'string' || get('last-modified') !== undefined
  let lifetime = explicit ?? 0
  if (explicit === undefined) {
    if (!HEURISTIC.has(status) && !cc.has('public')) return undefined
    const lastModified = parseHttpDate(get('last-modified'))
    // §4.2.2: a fraction of the time since Last-Modified, only where no explicit freshness is given
    if (route.heuristic > 0 && lastModified !== undefined && lastModified < date) lifetime = Math.floor((date - lastModified) * route.heuristic)
  }
  // stored only if it can be reused: fresh for a while, or with a validator to revalidate it with
  if (lifetime === 0 && !validator) return undefined
  const noCache = fieldNames(cc, 'no-cache') !== undefined
  if (noCache && !validator) return undefined
  let flags = noCache ? NO_CACHE : 0
  if (cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('s-maxage')) flags |= NO_STALE
  const http: HttpMeta = { age: initialAge(get, date, requestTime, responseTime), flags }
  const swr = deltaSeconds(cc, 'stale-while-revalidate') ?? route.staleWhileRevalidate
  const sie = deltaSeconds(cc, 'stale-if-error') ?? route.staleIfError
  return { storedAt: responseTime, ttl: lifetime, swr: swr * 1000, sie: sie * 1000, http }
}

/** The request's directives (RFC 9111 §5.2.1), Pragma only without Cache-Control (§5.4). */
export function httpRequestDirectives (request: FastifyRequest): RequestDirectives {
  const headers = request.headers
  const raw = headers['cache-control']
  if (raw === undefined) {
    const pragma = headers.pragma
    return pragma !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(String(pragma)) ? { ...NONE, validate: true } : NONE
  }
  const d = parseCacheControl(raw)
  if (d.size === 0) return NONE
  const maxStale = d.get('max-stale')
  return {
    bypass: d.has('no-store'),
    refresh: false,
    maxAge: deltaSeconds(d, 'max-age') ?? null,
    validate: d.has('no-cache'),
    maxStale: maxStale === undefined ? null : maxStale === true ? Infinity : deltaSeconds(d, 'max-stale') ?? null,
    minFresh: deltaSeconds(d, 'min-fresh') ?? null,
    onlyIfCached: d.has('only-if-cached')
  }
}

export const httpPolicy: Policy = {
  /**
   * §4.2: fresh while its current age (corrected initial age plus resident time) is below its lifetime,
   * within what the request allows (max-age, min-fresh, max-stale, §5.2.1); no-cache (§5.2.2.4) and a
   * request's no-cache send it to validation; must-revalidate, proxy-revalidate and s-maxage never let it
   * be served stale (§5.2.2.2, §5.2.2.8, §5.2.2.10).
   */
  reuse (entry: CacheEntry, resident: number, d: RequestDirectives | null): Reuse {
    const meta = entry.http as HttpMeta
    const age = meta.age + resident
    const lifetime = entry.ttl
    if ((meta.flags & NO_CACHE) !== 0 || d?.validate === true) return VALIDATE
    if (d != null && d.maxAge !== null && age > d.maxAge * 1000) return VALIDATE
    if (d != null && d.minFresh !== null && lifetime - age < d.minFresh * 1000) return VALIDATE
    if (age < lifetime) return FRESH
    if ((meta.flags & NO_STALE) !== 0) return VALIDATE
    const stale = age - lifetime
    if (d != null && d.maxStale !== null && stale <= d.maxStale * 1000) return FRESH
    if (stale < entry.swr && d?.maxAge == null) return STALE
    return VALIDATE
  },

  // stale-if-error (RFC 5861 §4), never past must-revalidate and its kin
  standIn (entry: CacheEntry, resident: number) {
    const meta = entry.http as HttpMeta
    return (meta.flags & NO_STALE) === 0 && meta.age + resident - entry.ttl < entry.sie
  },

  request: httpRequestDirectives,

  storage (run: RouteRun, request: FastifyRequest, reply: FastifyReply) {
    // only a GET's response is the representation a GET (or HEAD) is answered with
    if (request.method !== 'GET') return undefined
    if (!applyVary(run, reply)) return undefined
    const state = request[kState]
    const requestTime = state?.requestTime ?? Date.now()
    return httpFreshness(run, reply.statusCode, (name) => reply.getHeader(name), request.headers.authorization !== undefined, requestTime, Date.now())
  },

  // the origin's own Cache-Control is replayed as stored
  cacheControl () {
    return undefined
  }
}
