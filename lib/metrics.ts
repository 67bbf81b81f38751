// Prometheus metrics through prom-client (an optional peer dependency, loaded only when asked for).
// Request, eviction and error counts are read from the registration's Stats when the registry is
// scraped, so a request pays nothing for them; lookups are timed into a prom-client histogram.
// Registrations sharing a registry share the metrics: each adds its Stats to the ones a metric sums.
import type * as Prom from 'prom-client'
import type { LookupTimer } from './stores/observed-store.js'
import type { OutcomeName, Stats } from './stats.js'
import type { MetricsRegistry } from './types.js'

export interface MetricsSettings {
  /** undefined: prom-client's default registry. */
  registry: MetricsRegistry | undefined
  prefix: string
}

type PromClient = Pick<typeof Prom, 'Counter' | 'Histogram' | 'register'>

// Symbol.for: a second copy of the plugin in the same app recognises the metrics as its own
const kSources = Symbol.for('fastify-http-cache.metric-sources')

/** Seconds; a memory lookup takes microseconds, a Redis one a round trip, a failing one up to `timeout`. */
const LOOKUP_BUCKETS = [0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

const OUTCOMES: Array<[OutcomeName, 'hits' | 'misses' | 'stale' | 'bypasses']> = [['hit', 'hits'], ['miss', 'misses'], ['stale', 'stale'], ['bypass', 'bypasses']]

const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

export function checkMetrics (name: string, value: unknown): MetricsSettings | undefined {
  if (value === false) return undefined
  if (value === true) return { registry: undefined, prefix: '' }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`fastify-http-cache: option "${name}" must be a boolean or { registry, prefix }, got ${Array.isArray(value) ? 'an array' : String(value)}`)
  }
  const { registry, prefix, ...rest } = value as { registry?: unknown, prefix?: unknown }
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw new TypeError(`fastify-http-cache: unknown option in ${name}: "${unknown[0]}" (expected one of: registry, prefix)`)
  if (registry !== undefined && (registry === null || typeof (registry as MetricsRegistry).getSingleMetric !== 'function' || typeof (registry as MetricsRegistry).registerMetric !== 'function')) {
    throw new TypeError(`fastify-http-cache: option "${name}.registry" must be a prom-client Registry`)
  }
  if (prefix !== undefined && (typeof prefix !== 'string' || (prefix !== '' && !METRIC_PREFIX.test(prefix)))) {
    throw new TypeError(`fastify-http-cache: option "${name}.prefix" must be the start of a Prometheus metric name (letters, digits, _ and :, e.g. "myapp_"), got ${JSON.stringify(prefix)}`)
  }
  return { registry: registry as MetricsRegistry | undefined, prefix: prefix ?? '' }
}

/** prom-client, or a clear error when the app asked for metrics without installing it. */
export async function loadPromClient (id = 'prom-client'): Promise<PromClient> {
  let mod: PromClient & { default?: PromClient }
  try {
    mod = await import(id)
  } catch (err) {
    throw new Error('fastify-http-cache: option "metrics" needs prom-client, an optional peer dependency: npm install prom-client', { cause: err })
  }
  return typeof mod.Counter === 'function' ? mod : mod.default as PromClient
}

export interface BoundMetrics {
  /** Times lookups of a store into `http_cache_lookup_duration_seconds{store}`. */
  timer: (store: string) => LookupTimer
  /** Stops counting this registration (its Stats leave the sums). */
  unbind: () => void
}

type Owned<M> = M & { [kSources]: Set<Stats> }

export function bindMetrics (prom: PromClient, settings: MetricsSettings, stats: Stats): BoundMetrics {
  const registry = (settings.registry ?? prom.register) as Prom.Registry
  const p = settings.prefix
  // one metric per name and registry, made by whichever registration comes first
  function shared<M extends object> (name: string, make: (sources: Set<Stats>) => M): Owned<M> {
    const existing = registry.getSingleMetric(name) as Owned<M> | undefined
    if (existing !== undefined) {
      if (existing[kSources] instanceof Set) return existing
      throw new TypeError(`fastify-http-cache: the metrics registry already has a metric "${name}" that is not this plugin's; give metrics.prefix`)
    }
    const sources = new Set<Stats>()
    return Object.assign(make(sources), { [kSources]: sources })
  }

  const requests = shared(`${p}http_cache_requests_total`, (sources) => new prom.Counter({
    name: `${p}http_cache_requests_total`,
    help: 'Requests to cached routes by outcome (hit, miss, stale, bypass)',
    labelNames: ['method', 'route', 'outcome'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of sources) {
        for (const [name, c] of s.routes) {
          const space = name.indexOf(' ')
          const method = name.slice(0, space)
          const route = name.slice(space + 1)
          for (const [outcome, field] of OUTCOMES) this.inc({ method, route, outcome }, c[field])
        }
      }
    }
  }))
  const lookups = shared(`${p}http_cache_lookup_duration_seconds`, () => new prom.Histogram({
    name: `${p}http_cache_lookup_duration_seconds`,
    help: 'Duration of store lookups in seconds',
    labelNames: ['store'],
    buckets: LOOKUP_BUCKETS,
    registers: [registry]
  }))
  const evictions = shared(`${p}http_cache_evictions_total`, (sources) => new prom.Counter({
    name: `${p}http_cache_evictions_total`,
    help: 'Eviction calls by kind (group, tag, key, url, clear)',
    labelNames: ['kind'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of sources) for (const kind in s.evictions) this.inc({ kind }, s.evictions[kind as keyof Stats['evictions']])
    }
  }))
  const errors = shared(`${p}http_cache_errors_total`, (sources) => new prom.Counter({
    name: `${p}http_cache_errors_total`,
    help: 'Store calls that failed or timed out, by operation',
    labelNames: ['op'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of sources) for (const op in s.errors) this.inc({ op }, s.errors[op as keyof Stats['errors']])
    }
  }))
  const owned = [requests, lookups, evictions, errors]
  for (const m of owned) m[kSources].add(stats)
  return {
    timer (store) {
      const child = lookups.labels(store)
      return (seconds) => child.observe(seconds)
    },
    unbind: () => { for (const m of owned) m[kSources].delete(stats) }
  }
}
