// What the read and write paths of a cached route share: the plugin's context, the route's settings
// made ready for requests, and the state one request carries from its lookup to its onSend.
import type { IncomingHttpHeaders } from 'node:http'
import type { RawReplyDefaultExpression } from 'fastify'
import type { Detail, Forward } from './cache-status.js'
import type { Flights } from './flights.js'
import type { InFlight } from './in-flight.js'
import type { Counters, Stats } from './stats.js'
import type { CacheEntry } from './entry.js'
import type { KeyBuilder } from './keys.js'
import type { L1 } from './l1.js'
import type { ResolvedOptions, RouteSettings } from './options.js'
import type { Policy } from './policy/policy.js'
import type { Store } from './stores/store.js'
import type { RedisStore } from './stores/redis.js'

export const kState = Symbol('fastify-http-cache.state')

/**
 * One handler run that concurrent misses of the same key (and generation) wait for: the followers'
 * callbacks, made by the first one (most runs have none). `next`: the chain of lib/flights.ts.
 */
export interface Flight {
  key: string
  generation: string
  /** The leader's response while the flight is registered: watched from the first follower on. */
  res: RawReplyDefaultExpression | undefined
  waiters: Array<(entry: CacheEntry | undefined) => void> | undefined
  /**
   * The leader's entry once sent, while its write is under way: a lookup that read the store before
   * the write went in gets it here instead of running the handler again.
   */
  entry: CacheEntry | undefined
  /** Its number among the flights sent with an entry (Flights.sent), once sent. */
  sent: number
  next: Flight | undefined
}

export interface RequestState {
  key: string
  /** Origin part of the key (undefined for routes with a key builder). */
  origin: string | undefined
  /** Tags of the entry, registered in the store before the handler ran. */
  tags: string[]
  /** Generation of the group read with the lookup; undefined when the lookup failed (then never write). */
  generation: string | undefined
  hit: boolean
  bypass: boolean
  /** An expired entry still allowed to stand in for a failing handler (stale-if-error). */
  stale: CacheEntry | undefined
  /** The run this request leads, and once it is sent with an entry, until that entry's write is over. */
  flight: Flight | undefined
  /** Flights.sent when the lookup started: only a flight sent after it may hold what the lookup missed. */
  asked: number
  /** Token of the cross-instance lock this request holds. */
  lock: string | undefined
  /** A background refresh of this instance: nobody waits for its response, so it waits for its write. */
  own: boolean
  /** Policy 'http': when the lookup ran (the request time of RFC 9111 §4.2.3). */
  requestTime: number
  /** Policy 'http': the stored entry the handler was asked to validate (its validators sent along). */
  validating: CacheEntry | undefined
  /** The client's own conditional headers, set aside while the entry's validators stand in for them. */
  conditional: { inm: string | string[] | undefined, ims: string | string[] | undefined } | undefined
  /** Policy 'http': the other variants stored under the key (Vary), kept when this response is stored. */
  variants: CacheEntry[] | undefined
  /** The reply's headers set by other plugins' hooks before the handler: not stored (lib/coexist.ts). */
  before: Record<string, unknown> | undefined
  /** Policy 'http': an unsafe method, whose success invalidates its URL (RFC 9111 §4.4). */
  unsafe: boolean
  /** Why the request reaches the handler, and where the cache stepped aside (Cache-Status, stats). */
  fwd: Forward
  detail: Detail | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    [kState]: RequestState | null
  }
}

export function newState (key: string, origin: string | undefined, own: boolean): RequestState {
  const state: RequestState = {
    key,
    origin,
    tags: [],
    generation: undefined,
    hit: false,
    bypass: false,
    stale: undefined,
    flight: undefined,
    asked: 0,
    lock: undefined,
    own,
    requestTime: 0,
    validating: undefined,
    conditional: undefined,
    variants: undefined,
    before: undefined,
    unsafe: false,
    fwd: 'uri-miss',
    detail: undefined
  }
  return state
}

/** The plugin's side of every cached route. */
export interface HookContext {
  opts: ResolvedOptions
  store: Store
  keys: KeyBuilder
  /** Writes and refreshes in flight, awaited on close. */
  pending: InFlight
  l1: L1 | undefined
  /** Where cross-instance locks are taken (Redis stores only). */
  locks: RedisStore | undefined
  /** Runs under way, by key and generation. */
  flights: Flights
  /** Keys being refreshed in the background by this instance. */
  refreshing: Set<string>
  /** Runs a GET through the app (fastify.inject), for background refreshes. */
  inject: (url: string, headers: IncomingHttpHeaders) => Promise<{ statusCode: number }>
  /** Secret of this instance's background refreshes. */
  token: string
  /** Outcome, eviction and error counters (stats(), metrics). */
  stats: Stats
}

/** One cached route, ready for requests: its settings and what is derived from them once. */
export interface RouteRun {
  ctx: HookContext
  route: RouteSettings
  policy: Policy
  /** Policy 'http' (any method, keys as sent, variants side by side). */
  http: boolean
  /** Whether this route's misses are stored (GET, and Fastify's own HEAD route of a GET). */
  stores: boolean
  statusHeader: string | false
  /** Per-user entries must not land in shared caches downstream. */
  isPrivate: boolean
  /** The route's `vary` names as a header value ('' when none). */
  varyHeader: string
  /** Keyed by URL and vary headers only (no key builder, no varyBy): keys are built synchronously. */
  simpleKey: boolean
  locks: RedisStore | undefined
  lockTokens: number
  /** Set once the route's final hooks are known (its first request): HITs may skip Fastify's send path. */
  direct: boolean
  /** Fastify's header table symbol on replies (null: not found, use getHeaders()). */
  kHeaders: symbol | null | undefined
  /** The route's URL pattern, and its outcome counters by method. */
  url: string
  counters: Map<string, Counters>
  /** Name of this cache's Cache-Status member; undefined: none. */
  cacheStatus: string | undefined
}

export const GO = 0 as const // the request goes on to the handler
export const SERVED = 1 as const // answered from the cache
export type Outcome = typeof GO | typeof SERVED

export const isPromise = <T>(v: T | Promise<T>): v is Promise<T> => typeof (v as Promise<T>)?.then === 'function'
