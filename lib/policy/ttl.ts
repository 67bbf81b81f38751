// policy: 'ttl' — the route decides. Its ttl (or expires) sets freshness, the handler's Cache-Control
// only forbids storing (no-store, private) or sets the stale windows, and what goes downstream is the
// cache's own Cache-Control, counting down.
import { cacheControlFor, requestDirectives, responseDirectives, type ResponseDirectives } from '../directives.js'
import { isFresh } from '../entry.js'
import { httpDate } from '../expiry.js'
import { ttlFor } from '../options.js'
import { applyVary } from '../vary.js'
import { FALLBACK, FRESH, MISS, STALE, type Freshness, type Policy } from './policy.js'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RouteRun } from '../state.js'

export const ttlPolicy: Policy = {
  request: requestDirectives,

  reuse (entry, age, directives) {
    const maxAge = directives?.maxAge
    const acceptable = maxAge == null || age <= maxAge * 1000
    if (isFresh(entry, age)) return acceptable ? FRESH : MISS
    // RFC 5861: answer now with the expired entry, refresh it behind this response
    if (age < entry.ttl + entry.swr && acceptable) return STALE
    return age < entry.ttl + entry.sie ? FALLBACK : MISS
  },

  standIn (entry, age) {
    return age < entry.ttl + entry.sie
  },

  storage (run, request, reply) {
    const { route, isPrivate } = run
    const status = reply.statusCode
    if (status < 200 || status > 299 || status === 206) return undefined
    if (reply.hasHeader('set-cookie')) return undefined
    if (!applyVary(run, reply)) return undefined
    const own = responseDirectives(reply.getHeader('cache-control'), isPrivate)
    if (own.forbid) return undefined

    const now = Date.now()
    let ttl: number | Promise<number | undefined>
    try {
      ttl = ttlFor(route, request, run.ctx.opts.clock, now)
    } catch (err) {
      return ttlFailed(request, err)
    }
    if (typeof ttl === 'number') return freshness(run, reply, own, ttl, now)
    return ttl.then((t) => {
      if (t !== undefined) return freshness(run, reply, own, t, now)
      request.log.warn('fastify-http-cache: the ttl function returned no whole number of seconds, response not cached')
      return undefined
    }, (err: unknown) => ttlFailed(request, err))
  },

  cacheControl (run, entry, age, stale) {
    const ttl = entry.ttl / 1000
    return cacheControlFor(ttl, stale ? 0 : Math.max(0, Math.ceil(ttl - age)), run.isPrivate, entry.swr / 1000, entry.sie / 1000)
  }
}

function ttlFailed (request: FastifyRequest, err: unknown): undefined {
  request.log.warn({ err }, 'fastify-http-cache: ttl function failed, response not cached')
  return undefined
}

/** Freshness of a response stored now for `ttl` seconds; sets the Cache-Control (and Expires) it goes out with. */
function freshness (run: RouteRun, reply: FastifyReply, own: ResponseDirectives, ttl: number, now: number): Freshness {
  const { route, isPrivate } = run
  // the handler's own stale directives win over the route's
  const swr = own.swr ?? route.staleWhileRevalidate
  const sie = own.sie ?? route.staleIfError
  reply.header('cache-control', cacheControlFor(ttl, ttl, isPrivate, swr, sie))
  if (route.expires !== undefined) reply.header('expires', httpDate(now + ttl * 1000))
  return { storedAt: now, ttl: ttl * 1000, swr: swr * 1000, sie: sie * 1000 }
}
