import fresh from 'fresh'
import type { IncomingHttpHeaders } from 'node:http'

/**
 * Whether a conditional GET can be answered 304 (RFC 9110 §13.1): If-None-Match with weak comparison,
 * lists and `*`, else If-Modified-Since against Last-Modified. Delegates to `fresh` (jshttp, Express).
 */
export function notModified (req: IncomingHttpHeaders, etag: string, lastModified: unknown): boolean {
  if (req['if-none-match'] === undefined && req['if-modified-since'] === undefined) return false
  return fresh(req, { etag, 'last-modified': typeof lastModified === 'string' ? lastModified : undefined })
}

/** Headers a 304 carries (RFC 9110 §15.4.5): those that would describe the 200, not its body. */
export const NOT_MODIFIED_HEADERS = ['cache-control', 'content-location', 'etag', 'expires', 'vary'] as const
