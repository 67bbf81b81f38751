// The decisions a caching policy makes, behind one interface the read and write paths call: may a
// response be stored and for how long (RFC 9111 §3, §4.2), may a stored one answer this request now
// (§4), and what it says about its freshness when it does.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RequestDirectives } from '../directives.js'
import type { CacheEntry, HttpMeta } from '../entry.js'
import type { RouteRun } from '../state.js'

/** What a stored entry may do for a request (see `Policy.reuse`). */
export const FRESH = 0 as const // serve it
export const STALE = 1 as const // serve it, refresh it behind the response (stale-while-revalidate)
export const FALLBACK = 2 as const // run the handler; the entry stands in if it fails (stale-if-error)
export const MISS = 3 as const // run the handler
export const VALIDATE = 4 as const // run the handler with the entry's validators; a 304 makes the entry fresh again
export type Reuse = typeof FRESH | typeof STALE | typeof FALLBACK | typeof MISS | typeof VALIDATE

/** How long a response stays fresh and may be served stale, in ms. */
export interface Freshness {
  /** Epoch ms the response counts as stored at. */
  storedAt: number
  ttl: number
  swr: number
  sie: number
  http?: HttpMeta
}

export interface Policy {
  /** What the client asks of the cache (RFC 9111 §5.2.1), when the route honours it. */
  request (request: FastifyRequest): RequestDirectives
  /** What `entry`, stored `ageMs` ago, may do for a request with these directives (null: none honoured). */
  reuse (entry: CacheEntry, ageMs: number, directives: RequestDirectives | null): Reuse
  /** Whether `entry`, stored `ageMs` ago, may stand in for a handler that fails (stale-if-error). */
  standIn (entry: CacheEntry, ageMs: number): boolean
  /**
   * Whether the handler's response may be stored, and its freshness; sets the response headers that
   * describe it. Undefined: not stored. Synchronous unless it must wait (a route's async ttl function).
   */
  storage (run: RouteRun, request: FastifyRequest, reply: FastifyReply): Freshness | undefined | Promise<Freshness | undefined>
  /**
   * The Cache-Control of a stored entry served at `age` seconds (`stale`: past its freshness); undefined:
   * the stored one goes as it is.
   */
  cacheControl (run: RouteRun, entry: CacheEntry, age: number, stale: boolean): string | undefined
}
