import { LRUCache } from 'lru-cache'
import { entryPrefixOf } from '../keys.js'
import { originMatches, ownBytes, type Health, type Lookup, type Page, type Store } from './store.js'

const MAX_TAGS = 100_000
// admin listings in progress: a cursor older than this, or beyond this many, is forgotten
const CURSOR_TTL_MS = 10 * 60 * 1000
const MAX_CURSORS = 256

interface Slot { value: Buffer, group: string, tags: readonly string[] | undefined }

/**
 * One walk of a group's index: a live Set iterator visits every key present throughout exactly once,
 * whatever is added or removed meanwhile. `ahead` is read one key early, so the last page says so.
 */
interface Walk { group: string, iter: Iterator<string>, ahead: IteratorResult<string> }
/** A cursor: where in a walk a page starts, and that page once made (asking again gives it again). */
interface Mark { walk: Walk, keys: string[] | undefined, next: string | null }

/** Embedded store: a byte-bounded LRU (lru-cache) with per-group indexes, tag indexes and generations. */
export class MemoryStore implements Store {
  readonly name = 'memory'
  readonly stable = true
  private readonly lru: LRUCache<string, Slot>
  private readonly groups = new Map<string, Set<string>>()
  private readonly tags = new Map<string, Set<string>>()
  private readonly generations = new Map<string, number>()
  private readonly origins = new Map<string, Set<string>>()
  // groups that registered each tag; bounded, oldest first out: a forgotten registration only weakens a
  // rare race. A plain Map: lru-cache preallocates `max` slots (over 1 MB) for a table usually empty.
  private readonly tagGroups = new Map<string, Set<string>>()
  private cursors: LRUCache<string, Mark> | undefined
  private cursorIds = 0

  constructor (maxBytes: number, private readonly maxOrigins = Infinity) {
    this.lru = new LRUCache<string, Slot>({
      maxSize: maxBytes,
      // key and bookkeeping count too, or many tiny entries would outgrow the bound
      sizeCalculation: (slot, key) => slot.value.length + key.length + 64,
      dispose: (slot, key, reason) => {
        if (reason !== 'set') this.unindex(slot, key)
      }
    })
  }

  lookup (key: string, group: string): Lookup {
    const slot = this.lru.get(key)
    if (slot !== undefined) return { value: slot.value, generation: this.generation(group) }
    // a miss makes its group known to clear(), which then moves its generation even before it holds keys
    if (!this.generations.has(group)) this.generations.set(group, 0)
    return { value: null, generation: this.generation(group) }
  }

  async write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string, tags?: readonly string[], origin?: string): Promise<boolean> {
    if (generation !== undefined && generation !== this.generation(group)) return false
    if (origin !== undefined) {
      let known = this.origins.get(group)
      if (known === undefined) this.origins.set(group, known = new Set())
      if (!known.has(origin)) {
        if (known.size >= this.maxOrigins) return false
        known.add(origin)
      }
    }
    const old = this.lru.get(key)
    const slot = { value: ownBytes(value), group, tags }
    this.lru.set(key, slot, ttlMs > 0 ? { ttl: ttlMs } : undefined)
    if (old !== undefined) this.unindex(old, key) // replaced: its tags may differ
    if (!this.lru.has(key)) return false // larger than the whole store: lru-cache refused it
    add(this.groups, group, key)
    for (const tag of tags ?? []) add(this.tags, tag, key)
    return true
  }

  async registerTags (group: string, tags: readonly string[]): Promise<void> {
    for (const tag of tags) {
      let groups = this.tagGroups.get(tag)
      if (groups === undefined) {
        if (this.tagGroups.size >= MAX_TAGS) this.tagGroups.delete(this.tagGroups.keys().next().value as string)
        this.tagGroups.set(tag, groups = new Set())
      }
      groups.add(group)
    }
  }

  async delete (key: string, group: string): Promise<boolean> {
    this.bump(group)
    const existed = this.lru.has(key)
    this.lru.delete(key)
    return existed
  }

  async deleteUrl (group: string, rest: string, origin?: string): Promise<number> {
    this.bump(group)
    const keys = new Set<string>()
    for (const o of this.origins.get(group) ?? []) {
      if (originMatches(origin, o)) keys.add(entryPrefixOf(group) + o + rest)
    }
    return this.drop(keys)
  }

  async evictGroup (group: string): Promise<number> {
    this.bump(group)
    this.origins.delete(group)
    return this.drop(this.groups.get(group))
  }

  async evictTag (tag: string): Promise<number> {
    for (const group of this.tagGroups.get(tag) ?? []) this.bump(group)
    this.tagGroups.delete(tag)
    return this.drop(this.tags.get(tag))
  }

  async clear (start: string): Promise<number> {
    let n = 0
    // the groups holding keys, and those a miss may be about to write to
    for (const group of new Set([...this.groups.keys(), ...this.generations.keys()])) {
      if (group.startsWith(start)) n += await this.evictGroup(group)
    }
    return n
  }

  async close (): Promise<void> {
    this.lru.clear()
  }

  usage (): { entries: number, bytes: number } {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize }
  }

  async entries (group: string, cursor: string | undefined, limit: number): Promise<Page> {
    // made on first use: most apps never list
    const cursors = this.cursors ??= new LRUCache<string, Mark>({ max: MAX_CURSORS, ttl: CURSOR_TTL_MS })
    let mark: Mark | undefined
    if (cursor === undefined) {
      const iter = (this.groups.get(group) ?? new Set<string>()).values()
      mark = { walk: { group, iter, ahead: iter.next() }, keys: undefined, next: null }
    } else {
      mark = cursors.get(cursor)
      if (mark === undefined || mark.walk.group !== group) throw new TypeError('fastify-http-cache: unknown or expired cursor')
    }
    if (mark.keys === undefined) {
      const walk = mark.walk
      const keys: string[] = []
      while (walk.ahead.done !== true && keys.length < limit) {
        const key = walk.ahead.value
        walk.ahead = walk.iter.next()
        if (this.lru.has(key)) keys.push(key)
      }
      mark.keys = keys
      if (walk.ahead.done !== true) {
        mark.next = `m${++this.cursorIds}`
        cursors.set(mark.next, { walk, keys: undefined, next: null })
      }
    }
    const items = []
    for (const key of mark.keys) {
      const slot = this.lru.peek(key) // not a use: listing leaves the LRU order alone
      if (slot !== undefined) items.push({ key, value: slot.value })
    }
    return { items, cursor: mark.next }
  }

  async listOrigins (group: string): Promise<string[]> {
    return [...this.origins.get(group) ?? []]
  }

  async health (): Promise<Health> {
    return { ok: true, latencyMs: 0, breaker: null }
  }

  private drop (keys: Set<string> | undefined): number {
    let n = 0
    for (const key of [...keys ?? []]) {
      if (this.lru.has(key)) n++
      this.lru.delete(key) // dispose unindexes it
    }
    return n
  }

  private generation (group: string): string {
    return String(this.generations.get(group) ?? 0)
  }

  private bump (group: string): void {
    this.generations.set(group, (this.generations.get(group) ?? 0) + 1)
  }

  private unindex (slot: Slot, key: string): void {
    remove(this.groups, slot.group, key)
    for (const tag of slot.tags ?? []) remove(this.tags, tag, key)
  }
}

function add (map: Map<string, Set<string>>, name: string, key: string): void {
  let set = map.get(name)
  if (set === undefined) map.set(name, set = new Set())
  set.add(key)
}

function remove (map: Map<string, Set<string>>, name: string, key: string): void {
  const set = map.get(name)
  if (set === undefined) return
  set.delete(key)
  if (set.size === 0) map.delete(name)
}
