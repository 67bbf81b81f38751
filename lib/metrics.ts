// Prometheus metrics through prom-client (an optional peer dependency, loaded only when asked for).
// Every value is read from the registration's Stats when the registry is scraped: a request pays a few
// additions for them (a prom-client observe() per lookup cost ~10 times the lookup it timed).
// Registrations sharing a registry share the metrics: each adds its Stats to the ones a metric sums.
import type * as Prom from 'prom-client'
import type { LookupTimer } from './stores/observed-store.js'
import { LOOKUP_BUCKETS, type OutcomeName, type Stats } from './stats.js'
import type { MetricsRegistry } from './types.js'

export interface MetricsSettings {
  /** undefined: prom-client's default registry. */
  registry: MetricsRegistry | undefined
  prefix: string
}

type PromClient = Pick<typeof Prom, 'Counter' | 'Histogram' | 'register'>

// Symbol.for: a second copy of the plugin in the same app recognises the metrics as its own
const kSources = Symbol.for('fastify-http-cache.metric-sources')

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
  const lookupsName = `${p}http_cache_lookup_duration_seconds`
  const lookups = shared(lookupsName, (sources) => {
    // a prom-client Histogram (its registry, its formats) whose values are the Stats' buckets
    class LookupHistogram extends prom.Histogram {
      override async get (): Promise<Prom.MetricObjectWithValues<Prom.MetricValueWithName<string>>> {
        const byStore = new Map<string, { counts: number[], sum: number, count: number }>()
        for (const s of sources) {
          const l = s.lookups
          if (l.store === '') continue
          let total = byStore.get(l.store)
          if (total === undefined) byStore.set(l.store, total = { counts: new Array<number>(l.counts.length).fill(0), sum: 0, count: 0 })
          for (let i = 0; i < l.counts.length; i++) total.counts[i] += l.counts[i]
          total.sum += l.sum
          total.count += l.count
        }
        const values: Array<Prom.MetricValueWithName<string>> = []
        for (const [store, total] of byStore) {
          let cumulative = 0
          for (let i = 0; i < LOOKUP_BUCKETS.length; i++) {
            cumulative += total.counts[i]
            values.push({ metricName: lookupsName + '_bucket', labels: { le: LOOKUP_BUCKETS[i], store }, value: cumulative })
          }
          values.push({ metricName: lookupsName + '_bucket', labels: { le: '+Inf', store }, value: total.count })
          values.push({ metricName: lookupsName + '_sum', labels: { store }, value: total.sum })
          values.push({ metricName: lookupsName + '_count', labels: { store }, value: total.count })
        }
        return { name: lookupsName, help: 'Duration of store lookups in seconds', type: 'histogram' as unknown as Prom.MetricType, values, aggregator: 'sum', collect: () => {} }
      }

      // what the registry's text output reads
      async getForPromString (): Promise<Prom.MetricObjectWithValues<Prom.MetricValueWithName<string>>> {
        return await this.get()
      }
    }
    return new LookupHistogram({ name: lookupsName, help: 'Duration of store lookups in seconds', labelNames: ['store'], buckets: LOOKUP_BUCKETS, registers: [registry] })
  })
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
      stats.lookups.store = store
      return (seconds) => stats.observeLookup(seconds)
    },
    unbind: () => { for (const m of owned) m[kSources].delete(stats) }
  }
}
