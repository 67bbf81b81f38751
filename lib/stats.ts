// Counters of one plugin registration since it started: what `fastify.cache.stats()` returns and what
// the Prometheus metrics read when scraped. Plain numbers bumped in place: a request costs no allocation.
import type { Store } from './stores/store.js'
import type { CacheStats, EvictionKind, RouteStats as Counters, StoreOp } from './types.js'

export type { Counters, EvictionKind, StoreOp }

export type OutcomeName = 'hit' | 'miss' | 'stale' | 'bypass'

/** Upper bounds of the lookup histogram, in seconds: a memory lookup takes microseconds, a Redis one a round trip, a failing one up to `timeout`. */
export const LOOKUP_BUCKETS = [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

export const newCounters = (): Counters => ({ hits: 0, misses: 0, stale: 0, bypasses: 0 })

export class Stats {
  readonly totals = newCounters()
  /** Keyed `'<METHOD> <route url>'`, e.g. `'GET /products/:id'`. */
  readonly routes = new Map<string, Counters>()
  readonly evictions: Record<EvictionKind, number> = { group: 0, tag: 0, key: 0, url: 0, clear: 0 }
  readonly errors: Record<StoreOp, number> = { lookup: 0, write: 0, registerTags: 0, delete: 0, deleteUrl: 0, evictGroup: 0, evictTag: 0, clear: 0 }

  /** Timed store lookups (metrics on): counts per bucket of LOOKUP_BUCKETS (the last: above them all). */
  readonly lookups = { store: '', counts: new Float64Array(LOOKUP_BUCKETS.length + 1), sum: 0, count: 0 }

  /** One lookup's duration: a few comparisons and three additions, no allocation. */
  observeLookup (seconds: number): void {
    const l = this.lookups
    let i = 0
    while (i < LOOKUP_BUCKETS.length && seconds > LOOKUP_BUCKETS[i]) i++
    l.counts[i]++
    l.sum += seconds
    l.count++
  }

  /** The counters of one route and method, made once (at route registration, or a method's first request). */
  route (method: string, url: string): Counters {
    const name = method + ' ' + url
    let c = this.routes.get(name)
    if (c === undefined) this.routes.set(name, c = newCounters())
    return c
  }

  /** A copy for `fastify.cache.stats()`. */
  snapshot (store: Store): CacheStats {
    let errors = 0
    for (const op in this.errors) errors += this.errors[op as StoreOp]
    const routes: Record<string, Counters> = {}
    for (const [name, c] of this.routes) routes[name] = { ...c }
    const usage = store.usage?.()
    return {
      ...this.totals,
      errors,
      routes,
      evictions: { ...this.evictions },
      errorsByOp: { ...this.errors },
      store: store.name,
      breaker: store.breaker ?? 'closed',
      ...(usage === undefined ? {} : { entries: usage.entries, bytes: usage.bytes })
    }
  }
}
