import { parse } from '@tusbar/cache-control'
import type { FastifyRequest } from 'fastify'

/** A refresh requested by this plugin (stale-while-revalidate): skip the read, store the response. */
export const REFRESH: RequestDirectives = Object.freeze({ bypass: false, refresh: true, maxAge: null, validate: false, maxStale: null, minFresh: null, onlyIfCached: false })

/** What the client asked of the cache (RFC 9111 §5.2.1). */
export interface RequestDirectives {
  /** no-store: neither read nor write. */
  bypass: boolean
  /** no-cache / max-age=0 / Pragma: no-cache: skip the read, store the fresh response. */
  refresh: boolean
  /** max-age=N: entries older than N seconds are misses. */
  maxAge: number | null
  /** Policy 'http': no-cache (or Pragma: no-cache): a stored response is validated before it is used. */
  validate: boolean
  /** Policy 'http': max-stale[=N] in seconds (Infinity: any staleness), min-fresh=N, only-if-cached. */
  maxStale: number | null
  minFresh: number | null
  onlyIfCached: boolean
}

export const NONE: RequestDirectives = Object.freeze({ bypass: false, refresh: false, maxAge: null, validate: false, maxStale: null, minFresh: null, onlyIfCached: false })

export function requestDirectives (req: FastifyRequest): RequestDirectives {
  const cc = req.headers['cache-control']
  if (cc === undefined && req.headers.pragma === undefined) return NONE
  if (cc === undefined) {
    // Pragma counts only when Cache-Control is absent (RFC 9111 §5.4)
    const pragma = req.headers.pragma
    return typeof pragma === 'string' && /(^|,)\s*no-cache\s*(,|$)/i.test(pragma)
      ? { ...NONE, refresh: true }
      : NONE
  }
  const d = parse(cc)
  if (d.noStore === true) return { ...NONE, bypass: true }
  if (d.noCache === true || d.maxAge === 0) return { ...NONE, refresh: true }
  return d.maxAge !== null ? { ...NONE, maxAge: d.maxAge } : NONE
}

/** What a handler's own Cache-Control says about storing its response. */
export interface ResponseDirectives {
  /** no-store, or private on a shared route: not stored. */
  forbid: boolean
  /** stale-while-revalidate / stale-if-error in seconds, when the handler set them. */
  swr: number | null
  sie: number | null
}

const NOTHING: ResponseDirectives = Object.freeze({ forbid: false, swr: null, sie: null })

export function responseDirectives (cacheControl: unknown, routeIsPrivate: boolean): ResponseDirectives {
  if (cacheControl === undefined) return NOTHING
  const d = parse(Array.isArray(cacheControl) ? cacheControl.join(', ') : String(cacheControl))
  return {
    forbid: d.noStore === true || (d.private === true && !routeIsPrivate),
    swr: d.staleWhileRevalidate,
    sie: d.staleIfError
  }
}

/** The Cache-Control this plugin sends with a cached response (the stale windows in seconds). */
export function cacheControlFor (ttlSeconds: number, remainingSeconds: number, isPrivate: boolean, swr: number, sie: number): string {
  let cc = isPrivate ? 'private, ' : ''
  cc += ttlSeconds === 0 ? 'no-cache' : `max-age=${remainingSeconds}`
  if (swr > 0) cc += `, stale-while-revalidate=${swr}`
  if (sie > 0) cc += `, stale-if-error=${sie}`
  return cc
}
