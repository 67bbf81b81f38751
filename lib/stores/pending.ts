// Evictions that failed, kept and replayed. A write answered while Redis was down or hung has its
// eviction fail; without this, the entries it should have dropped are served as HITs once Redis is back.
// PendingStore sits in front of another store, forwards every call, and remembers each failed eviction
// (per group, tag, key, URL or clear; past a bound, one clear of everything): a lookup or write covered by
// one first replays what is pending and goes on only once nothing covers it any more. Until then the
// lookup fails (the request goes to the handler and its response is not stored). A timer replays too, so
// other instances sharing the store stop serving those entries as soon as it answers again.
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import { LRUCache } from 'lru-cache'
import { entryPrefixOf } from '../keys.js'
import { StoreUnavailableError } from '../guard.js'
import type { Health, Invalidation, Lookup, Page, Store } from './store.js'
import { originMatches } from './store.js'

export interface PendingStoreOptions {
  log: FastifyBaseLogger
  /** Group bases of everything this instance serves start with this (the prefix's; see KeyBuilder). */
  everything: string
  /** Pending evictions kept one by one; past this they collapse into one clear of everything. */
  max?: number
  /** Retry interval while something is pending, doubling after a failed replay up to maxRetryMs. */
  retryMs?: number
  maxRetryMs?: number
  /** Told what a kept eviction covers, so an in-process tier (L1) drops it too. */
  kept?: (what: Invalidation) => void
}

interface UrlEviction { group: string, rest: string, origin: string | undefined }

const MAX_KNOWN_TAGS = 10_000
const ALL: Invalidation = { all: true }

export class PendingStore implements Store {
  readonly name: Store['name']
  readonly stable: boolean
  /** Every pending eviction by its id, with the sequence number of its latest failure. */
  private readonly pending = new Map<string, number>()
  private readonly groups = new Set<string>()
  private readonly tags = new Set<string>()
  private readonly keys = new Map<string, string>()
  private readonly urls = new Map<string, UrlEviction>()
  private readonly clears = new Set<string>()
  private all = false
  private seq = 0
  /** The groups this instance registered each tag for (bounded: tags may be per entity). */
  private readonly tagged = new LRUCache<string, Set<string>>({ max: MAX_KNOWN_TAGS })
  private replaying: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private delay: number
  private readonly max: number
  private readonly retryMs: number
  private readonly maxRetryMs: number
  private closed = false
  private lastRun = -Infinity

  constructor (readonly inner: Store, private readonly opts: PendingStoreOptions) {
    this.name = inner.name
    this.stable = inner.stable
    this.max = opts.max ?? 1000
    this.retryMs = opts.retryMs ?? 50
    this.maxRetryMs = opts.maxRetryMs ?? 500
    this.delay = this.retryMs
  }

  /** How many evictions wait to be replayed (a collapsed clear counts as one). */
  get size (): number {
    return this.pending.size + (this.all ? 1 : 0)
  }

  lookup (key: string, group: string): Lookup | Promise<Lookup> {
    if (this.size === 0) return this.inner.lookup(key, group)
    if (!this.covers(key, group)) {
      // the store answers: what is pending can go now
      return Promise.resolve(this.inner.lookup(key, group)).then((f) => { this.kick(); return f })
    }
    return this.replayed().then(() => {
      if (this.covers(key, group)) throw new StoreUnavailableError('fastify-http-cache: an eviction covering this key is still pending')
      return this.inner.lookup(key, group)
    })
  }

  write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string, tags?: readonly string[], origin?: string): Promise<boolean> {
    if (this.size === 0 || !this.covers(key, group)) return this.inner.write(key, group, value, ttlMs, generation, tags, origin)
    // the replay moves the group's generation: a response computed before it is then not stored
    return this.replayed().then(() => {
      if (this.covers(key, group)) throw new StoreUnavailableError('fastify-http-cache: an eviction covering this key is still pending')
      return this.inner.write(key, group, value, ttlMs, generation, tags, origin)
    })
  }

  async registerTags (group: string, tags: readonly string[]): Promise<void> {
    for (const tag of tags) {
      const groups = this.tagged.get(tag)
      if (groups === undefined) this.tagged.set(tag, new Set([group]))
      else groups.add(group)
    }
    await this.inner.registerTags(group, tags)
  }

  async delete (key: string, group: string): Promise<boolean> {
    return await this.kept(`k ${key}`, () => this.keys.set(key, group), this.inner.delete(key, group), { key })
  }

  async deleteUrl (group: string, rest: string, origin?: string): Promise<number> {
    const id = `u ${group} ${origin ?? '*'} ${rest}`
    return await this.kept(id, () => this.urls.set(id, { group, rest, origin }), this.inner.deleteUrl(group, rest, origin), { group })
  }

  async evictGroup (group: string): Promise<number> {
    return await this.kept(`g ${group}`, () => this.groups.add(group), this.inner.evictGroup(group), { group })
  }

  async evictTag (tag: string): Promise<number> {
    return await this.kept(`t ${tag}`, () => this.tags.add(tag), this.inner.evictTag(tag), ALL)
  }

  async clear (start: string): Promise<number> {
    return await this.kept(`c ${start}`, () => this.clears.add(start), this.inner.clear(start), ALL)
  }

  get breaker (): 'closed' | 'open' | 'half-open' | undefined {
    return this.inner.breaker
  }

  usage (): { entries: number, bytes: number } | undefined {
    return this.inner.usage?.()
  }

  // the admin API's reads: nothing to keep
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
    this.closed = true
    clearTimeout(this.timer)
    this.timer = undefined
    // one last try: other instances would serve what is pending until its ttl
    if (this.size > 0) await this.replay()
    if (this.size > 0) this.opts.log.error({ pending: this.size }, 'fastify-http-cache: closing with evictions that could not be replayed; other instances may serve those entries until their ttl')
    await this.inner.close()
  }

  /** Replays what is pending now (one run at a time); resolves when it is over, whatever it achieved. */
  async replay (): Promise<void> {
    this.replaying ??= this.run().finally(() => { this.replaying = undefined })
    await this.replaying
  }

  /**
   * A replay for a lookup or write that needs one: a run already under way began before the call, maybe
   * before the store answered again, so one more follows it while something is still pending.
   */
  private async replayed (): Promise<void> {
    const earlier = this.replaying
    await this.replay()
    if (earlier !== undefined && this.size > 0) await this.replay()
  }

  /** Whether a pending eviction covers `key` of `group` (a pending tag may cover any group). */
  private covers (key: string, group: string): boolean {
    if (this.all || this.tags.size > 0 || this.groups.has(group) || this.keys.has(key)) return true
    for (const start of this.clears) if (group.startsWith(start)) return true
    if (this.urls.size === 0) return false
    const prefix = entryPrefixOf(group)
    if (!key.startsWith(prefix)) return false
    for (const u of this.urls.values()) {
      // the key is <prefix><origin><rest>; anything else ending in rest is covered too (a miss, not harm)
      if (u.group === group && key.endsWith(u.rest) && key.length >= prefix.length + u.rest.length &&
        originMatches(u.origin, key.slice(prefix.length, key.length - u.rest.length))) return true
    }
    return false
  }

  /** Forwards an eviction; when it fails, keeps it (`add`) before the caller sees the failure. */
  private async kept<T> (id: string, add: () => unknown, call: Promise<T>, covered: Invalidation): Promise<T> {
    try {
      return await call
    } catch (err) {
      this.keep(id, add)
      this.opts.kept?.(this.all ? ALL : covered)
      throw err
    }
  }

  private keep (id: string, add: () => unknown): void {
    const seq = ++this.seq
    if (this.all) {
      // a clear of everything covers it
    } else if (!this.pending.has(id) && this.pending.size >= this.max) {
      this.collapse()
    } else {
      add()
      this.pending.set(id, seq)
    }
    this.delay = this.retryMs
    this.arm()
  }

  private collapse (): void {
    this.opts.log.warn({ pending: this.pending.size }, 'fastify-http-cache: too many failed evictions to keep one by one; everything this instance serves will be cleared once the store answers')
    this.pending.clear()
    this.groups.clear()
    this.tags.clear()
    this.keys.clear()
    this.urls.clear()
    this.clears.clear()
    this.all = true
  }

  /** Starts a replay when something is pending and none ran lately (no one waits for it). */
  private kick (): void {
    if (this.size > 0 && this.replaying === undefined && performance.now() - this.lastRun >= this.retryMs) this.replay().catch(() => {})
  }

  private arm (): void {
    if (this.timer !== undefined || this.closed) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.replay().catch(() => {})
    }, this.delay)
    this.timer.unref()
  }

  private async run (): Promise<void> {
    this.lastRun = performance.now()
    const before = this.size
    if (this.all) {
      const all = this.seq
      try {
        await this.clearEverything()
        // a failure kept while this ran collapsed again: keep it
        if (this.seq === all) this.all = false
      } catch {}
    }
    const jobs: Array<Promise<void>> = []
    for (const [id, seq] of this.pending) {
      const job = this.replayOne(id)
      if (job === undefined) continue
      jobs.push(job.then(() => {
        // kept again while it ran: the newer failure may postdate this replay, so it stays
        if (this.pending.get(id) === seq) this.drop(id)
      }, () => {}))
    }
    await Promise.all(jobs)
    const after = this.size
    if (after < before) this.opts.log.info({ replayed: before - after, pending: after }, 'fastify-http-cache: failed evictions replayed')
    if (after === 0) {
      this.delay = this.retryMs
      return
    }
    if (after === before) this.delay = Math.min(this.delay * 2, this.maxRetryMs)
    this.arm()
  }

  private replayOne (id: string): Promise<unknown> | undefined {
    const what = id.slice(2)
    switch (id[0]) {
      case 'g': return this.inner.evictGroup(what)
      case 't': return this.untagging(what)
      case 'c': return this.inner.clear(what)
      case 'k': return this.inner.delete(what, this.keys.get(what) as string)
      default: {
        const u = this.urls.get(id) as UrlEviction
        return this.inner.deleteUrl(u.group, u.rest, u.origin)
      }
    }
  }

  private drop (id: string): void {
    this.pending.delete(id)
    const what = id.slice(2)
    switch (id[0]) {
      case 'g': this.groups.delete(what); break
      case 't': this.tags.delete(what); break
      case 'c': this.clears.delete(what); break
      case 'k': this.keys.delete(what); break
      default: this.urls.delete(id)
    }
  }

  // A tag eviction that failed may have taken groups out of the tag's registry without evicting them:
  // the groups this instance registered the tag for are evicted whole.
  private async untagging (tag: string): Promise<void> {
    await this.inner.evictTag(tag)
    await this.evictAll([...this.tagged.get(tag) ?? []])
  }

  private async evictAll (groups: string[]): Promise<void> {
    const results = await Promise.allSettled(groups.map(async (g) => await this.inner.evictGroup(g)))
    for (const r of results) if (r.status === 'rejected') throw r.reason
  }

  // (a clear that failed took nothing out of the groups registry: see CLEAR in lib/stores/scripts.ts)
  private async clearEverything (): Promise<void> {
    await this.inner.clear(this.opts.everything)
  }
}
