// Living with the other plugins of the app. Headers that their hooks set on the reply before the lookup
// (@fastify/cors, @fastify/helmet, a request id, rate-limit counters) belong to each request, not to the
// stored response: they are left out of the entry and of what it varies on, so on a HIT the same hooks
// set them for the request at hand (a CORS answer is never another client's). Vary still goes downstream
// whole. Encoders (@fastify/compress) run after the cache's onSend, so the entry holds the identity body
// and each client gets its own encoding; only a body the handler encoded itself is stored encoded, and
// then the entry varies on Accept-Encoding.
import type { FastifyReply } from 'fastify'
import type { HeaderValue } from './entry.js'

/** The reply's headers as the hooks before the handler left them; undefined when there are none. */
export function hookHeaders (reply: FastifyReply): Record<string, unknown> | undefined {
  const headers = reply.getHeaders() // a copy
  return Object.keys(headers).length === 0 ? undefined : headers
}

/**
 * What an entry keeps of a response's end-to-end `headers`: those the hooks set before the handler, with
 * the value they had then, are left out; the Vary names they contributed too, unless the route varies on
 * them itself (`routeVary`). An encoded body makes the entry vary on Accept-Encoding (downstream too).
 * Returns the stored Vary value (undefined: none).
 */
export function ownHeaders (reply: FastifyReply, headers: Record<string, HeaderValue>, before: Record<string, unknown> | undefined, routeVary: readonly string[]): string | undefined {
  if (before !== undefined) {
    for (const name in before) {
      if (name !== 'vary' && name in headers && sameValue(headers[name], before[name])) delete headers[name]
    }
  }
  let vary = headers.vary === undefined ? undefined : String(headers.vary)
  if (vary !== undefined && before?.vary !== undefined) {
    const theirs = new Set(varyNames(before.vary))
    for (const name of routeVary) theirs.delete(name)
    vary = varyTokens(vary).filter((token) => !theirs.has(token.toLowerCase())).join(', ')
  }
  const encoding = headers['content-encoding']
  if (encoding !== undefined && String(encoding).toLowerCase() !== 'identity') {
    vary = mergeVary(vary, 'Accept-Encoding')
    reply.header('vary', mergeVary(reply.getHeader('vary'), 'Accept-Encoding'))
  }
  if (vary === undefined || vary === '') {
    delete headers.vary
    return undefined
  }
  headers.vary = vary
  return vary
}

/**
 * Sets a stored entry's headers on the reply; its Vary joins the one the hooks already set (CORS's
 * `Origin`) instead of replacing it.
 */
export function replay (reply: FastifyReply, headers: Record<string, HeaderValue>): void {
  for (const name in headers) {
    if (name === 'vary') reply.header('vary', mergeVary(reply.getHeader('vary'), headers.vary as string))
    else reply.header(name, headers[name])
  }
}

/** `current` with the names of `more` it lacks appended (names compared case-insensitively). */
export function mergeVary (current: unknown, more: string): string {
  if (current === undefined || current === '') return more
  const have = String(current)
  const listed = new Set(varyNames(have))
  const missing = varyTokens(more).filter((token) => !listed.has(token.toLowerCase()))
  return missing.length === 0 ? have : `${have}, ${missing.join(', ')}`
}

function varyTokens (value: unknown): string[] {
  const text = Array.isArray(value) ? value.join(',') : String(value)
  return text.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

function varyNames (value: unknown): string[] {
  return varyTokens(value).map((s) => s.toLowerCase())
}

function sameValue (stored: HeaderValue, before: unknown): boolean {
  if (Array.isArray(stored)) return Array.isArray(before) && before.length === stored.length && before.every((v, i) => String(v) === stored[i])
  return !Array.isArray(before) && String(before) === stored
}
