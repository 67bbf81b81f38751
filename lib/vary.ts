// Secondary keys (RFC 9111 §4.1): the request header values a stored response varied on, recorded
// with it, and checked before it answers another request.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CacheEntry } from './entry.js'
import type { RouteRun } from './state.js'

/**
 * Adds the route's `vary` names to the response's Vary; false when the response varies on `*`
 * (it never matches another request: not stored).
 */
export function applyVary (run: RouteRun, reply: FastifyReply): boolean {
  if (run.varyHeader !== '') reply.header('vary', mergeVary(reply.getHeader('vary'), run.varyHeader))
  const vary = reply.getHeader('vary')
  return vary === undefined || !/(^|,)\s*\*\s*(,|$)/.test(String(vary))
}

function mergeVary (current: unknown, names: string): string {
  if (current === undefined) return names
  const have = String(current)
  const listed = new Set(have.toLowerCase().split(',').map((s) => s.trim()))
  const missing = names.split(', ').filter((name) => !listed.has(name))
  return missing.length === 0 ? have : `${have}, ${missing.join(', ')}`
}

export function varyValues (vary: unknown, request: FastifyRequest): Record<string, string> | undefined {
  if (vary === undefined) return undefined
  const out: Record<string, string> = {}
  for (const raw of String(vary).split(',')) {
    const name = raw.trim().toLowerCase()
    if (name !== '') out[name] = headerText(request.headers[name])
  }
  return out
}

/** Whether an entry answers this request: the request matches what the entry varied on. */
export function varyMatches (entry: CacheEntry, request: FastifyRequest): boolean {
  if (entry.vary === undefined) return true
  for (const name in entry.vary) {
    if (entry.vary[name] !== headerText(request.headers[name])) return false
  }
  return true
}

// RFC 9111 §4.1: header lines combined into one list, whitespace around its commas not significant
function headerText (value: string | string[] | undefined): string {
  if (value === undefined) return ''
  const text = Array.isArray(value) ? value.join(',') : value
  return text.includes(',') || text.includes(' ') ? text.trim().replace(/[ \t]*,[ \t]*/g, ',') : text
}
