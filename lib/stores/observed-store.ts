// A store seen from outside: forwards every Store call to the real store, counts eviction calls and
// failed calls (lib/stats.ts) and, when metrics are on, times lookups. Answers are passed on unchanged.
import { performance } from 'node:perf_hooks'
import type { Stats, StoreOp } from '../stats.js'
import type { Health, Lookup, Page, Store } from './store.js'

/** Takes one lookup's duration in seconds (the Prometheus histogram). */
export type LookupTimer = (seconds: number) => void

export class ObservedStore implements Store {
  readonly name: 'memory' | 'redis'
  readonly stable: boolean
  // bound once: counting a failed lookup allocates nothing per request
  private readonly lookupFailed: (err: unknown) => never
  private readonly writeFailed: (err: unknown) => never

  constructor (readonly inner: Store, private readonly stats: Stats, private readonly timer: LookupTimer | undefined) {
    this.name = inner.name
    this.stable = inner.stable
    this.lookupFailed = (err) => this.failed('lookup', err)
    this.writeFailed = (err) => this.failed('write', err)
  }

  get breaker (): 'closed' | 'open' | 'half-open' | undefined {
    return this.inner.breaker
  }

  usage (): { entries: number, bytes: number } | undefined {
    return this.inner.usage?.()
  }

  lookup (key: string, group: string): Lookup | Promise<Lookup> {
    const timer = this.timer
    const start = timer === undefined ? 0 : performance.now()
    let found: Lookup | Promise<Lookup>
    try {
      found = this.inner.lookup(key, group)
    } catch (err) {
      if (timer !== undefined) timer((performance.now() - start) / 1000)
      return this.failed('lookup', err)
    }
    if (typeof (found as Promise<Lookup>).then !== 'function') {
      if (timer !== undefined) timer((performance.now() - start) / 1000)
      return found
    }
    if (timer === undefined) return (found as Promise<Lookup>).then(undefined, this.lookupFailed)
    return (found as Promise<Lookup>).then((f) => {
      timer((performance.now() - start) / 1000)
      return f
    }, (err: unknown) => {
      timer((performance.now() - start) / 1000)
      return this.failed('lookup', err)
    })
  }

  write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string, tags?: readonly string[], origin?: string): Promise<boolean> {
    return this.inner.write(key, group, value, ttlMs, generation, tags, origin).then(undefined, this.writeFailed)
  }

  async registerTags (group: string, tags: readonly string[]): Promise<void> {
    await this.inner.registerTags(group, tags).catch((err: unknown) => this.failed('registerTags', err))
  }

  async delete (key: string, group: string): Promise<boolean> {
    this.stats.evictions.key++
    return await this.inner.delete(key, group).catch((err: unknown) => this.failed('delete', err))
  }

  async deleteUrl (group: string, rest: string, origin?: string): Promise<number> {
    this.stats.evictions.url++
    return await this.inner.deleteUrl(group, rest, origin).catch((err: unknown) => this.failed('deleteUrl', err))
  }

  async evictGroup (group: string): Promise<number> {
    this.stats.evictions.group++
    return await this.inner.evictGroup(group).catch((err: unknown) => this.failed('evictGroup', err))
  }

  async evictTag (tag: string): Promise<number> {
    this.stats.evictions.tag++
    return await this.inner.evictTag(tag).catch((err: unknown) => this.failed('evictTag', err))
  }

  async clear (start: string): Promise<number> {
    this.stats.evictions.clear++
    return await this.inner.clear(start).catch((err: unknown) => this.failed('clear', err))
  }

  // the admin API's reads: not counted among the cache's lookups
  async entries (group: string, cursor: string | undefined, limit: number): Promise<Page> {
    return await this.inner.entries(group, cursor, limit)
  }

  async listOrigins (group: string): Promise<string[]> {
    return await this.inner.listOrigins(group)
  }

  async health (): Promise<Health> {
    return await this.inner.health()
  }

  async close (): Promise<void> {
    await this.inner.close()
  }

  private failed (op: StoreOp, err: unknown): never {
    this.stats.errors[op]++
    throw err
  }
}
