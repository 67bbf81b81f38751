// Conditional requests, both ways: a client's conditional GET answered 304 from an entry, and the
// cache's own validation of a stale entry (its validators sent to the handler in place of the client's).
import fresh from 'fresh'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import type { CacheEntry } from './entry.js'
import type { RequestState } from './state.js'

/**
 * Whether a conditional GET can be answered 304 (RFC 9110 §13.1): If-None-Match with weak comparison,
 * lists and `*`, else If-Modified-Since against Last-Modified. Delegates to `fresh` (jshttp, Express).
 */
export function notModified (req: IncomingHttpHeaders, etag: string, lastModified: unknown): boolean {
  const ims = req['if-modified-since']
  if (req['if-none-match'] === undefined) {
    // RFC 9110 §13.1.3: an If-Modified-Since that is not an HTTP-date is ignored (fresh() takes
    // anything Date.parse() reads, like `99999` or a five-digit year)
    if (ims === undefined || !HTTP_DATE.test(ims)) return false
  }
  return fresh(req, { etag, 'last-modified': typeof lastModified === 'string' ? lastModified : undefined })
}

// IMF-fixdate, obsolete RFC 850 and asctime dates (RFC 9110 §5.6.7), four-digit years only
export const HTTP_DATE = /^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT|(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \d{2}-(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{2} \d{2}:\d{2}:\d{2} GMT|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2} \d{4})$/

/** Headers a 304 carries (RFC 9110 §15.4.5): those that would describe the 200, not its body. */
export const NOT_MODIFIED_HEADERS = ['cache-control', 'content-location', 'etag', 'expires', 'vary'] as const

// RFC 9111 §4.3.1: a stale entry is validated with its own validators (reply-from forwards the raw
// headers, so both copies carry them); the client's own conditional headers are set aside meanwhile.
export function sendValidators (request: FastifyRequest, state: RequestState, entry: CacheEntry): void {
  const headers = request.headers
  const raw = request.raw.headers
  state.conditional = { inm: headers['if-none-match'], ims: headers['if-modified-since'] }
  const lastModified = entry.headers['last-modified']
  for (const h of [headers, raw]) {
    delete h['if-none-match']
    delete h['if-modified-since']
    if (entry.etag !== '') h['if-none-match'] = entry.etag
    if (typeof lastModified === 'string') h['if-modified-since'] = lastModified
  }
}

/** Puts the client's own conditional headers back once the handler has answered. */
export function restoreConditional (request: FastifyRequest, state: RequestState): void {
  const saved = state.conditional
  if (saved === undefined) return
  state.conditional = undefined
  for (const h of [request.headers, request.raw.headers]) {
    delete h['if-none-match']
    delete h['if-modified-since']
    if (saved.inm !== undefined) h['if-none-match'] = saved.inm as string
    if (saved.ims !== undefined) h['if-modified-since'] = saved.ims as string
  }
}
