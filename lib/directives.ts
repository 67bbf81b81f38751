import { parse } from '@tusbar/cache-control'
import type { FastifyRequest } from 'fastify'

/** What the client asked of the cache (RFC 9111 §5.2.1). */
export interface RequestDirectives {
  /** no-store: neither read nor write. */
  bypass: boolean
  /** no-cache / max-age=0 / Pragma: no-cache: skip the read, store the fresh response. */
  refresh: boolean
  /** max-age=N: entries older than N seconds are misses. */
  maxAge: number | null
}

const NONE: RequestDirectives = Object.freeze({ bypass: false, refresh: false, maxAge: null })

export function requestDirectives (req: FastifyRequest): RequestDirectives {
  const cc = req.headers['cache-control']
  if (cc === undefined) {
    // Pragma counts only when Cache-Control is absent (RFC 9111 §5.4)
    const pragma = req.headers.pragma
    return typeof pragma === 'string' && /(^|,)\s*no-cache\s*(,|$)/i.test(pragma)
      ? { bypass: false, refresh: true, maxAge: null }
      : NONE
  }
  const d = parse(cc)
  if (d.noStore === true) return { bypass: true, refresh: false, maxAge: null }
  if (d.noCache === true || d.maxAge === 0) return { bypass: false, refresh: true, maxAge: null }
  return d.maxAge !== null ? { bypass: false, refresh: false, maxAge: d.maxAge } : NONE
}

/** Whether a handler's own Cache-Control makes its response unstorable (no-store, or private on a shared route). */
export function responseForbidsStore (cacheControl: unknown, routeIsPrivate: boolean): boolean {
  if (cacheControl === undefined) return false
  const d = parse(Array.isArray(cacheControl) ? cacheControl.join(', ') : String(cacheControl))
  return d.noStore === true || (d.private === true && !routeIsPrivate)
}

/** The Cache-Control this plugin sends with a cached response. */
export function cacheControlFor (ttlSeconds: number, remainingSeconds: number, isPrivate: boolean): string {
  const scope = isPrivate ? 'private, ' : ''
  return ttlSeconds === 0 ? `${scope}no-cache` : `${scope}max-age=${remainingSeconds}`
}
