import { LRUCache } from 'lru-cache'
import type { Store } from './store.js'

interface Slot { value: Buffer, group: string }

/** Embedded store: a byte-bounded LRU (lru-cache) with per-group indexes and generations. */
export class MemoryStore implements Store {
  readonly name = 'memory'
  private readonly lru: LRUCache<string, Slot>
  private readonly groups = new Map<string, Set<string>>()
  private readonly generations = new Map<string, number>()

  constructor (maxBytes: number) {
    this.lru = new LRUCache<string, Slot>({
      maxSize: maxBytes,
      // key and bookkeeping count too, or many tiny entries would outgrow the bound
      sizeCalculation: (slot, key) => slot.value.length + key.length + 64,
      dispose: (slot, key, reason) => {
        if (reason !== 'set') this.unindex(slot.group, key)
      }
    })
  }

  async lookup (key: string, group: string): Promise<{ value: Buffer | null, generation: string }> {
    return { value: this.lru.get(key)?.value ?? null, generation: String(this.generations.get(group) ?? 0) }
  }

  async write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string): Promise<boolean> {
    if (generation !== undefined && generation !== String(this.generations.get(group) ?? 0)) return false
    this.lru.set(key, { value, group }, ttlMs > 0 ? { ttl: ttlMs } : undefined)
    if (!this.lru.has(key)) { // larger than the whole store: lru-cache refused it (and dropped any old value)
      this.unindex(group, key)
      return false
    }
    let index = this.groups.get(group)
    if (index === undefined) this.groups.set(group, index = new Set())
    index.add(key)
    return true
  }

  async delete (key: string, group: string): Promise<boolean> {
    this.bump(group)
    const existed = this.lru.has(key)
    this.lru.delete(key)
    return existed
  }

  async evictGroup (group: string): Promise<number> {
    this.bump(group)
    const index = this.groups.get(group)
    if (index === undefined) return 0
    this.groups.delete(group)
    let n = 0
    for (const key of index) {
      if (this.lru.has(key)) n++
      this.lru.delete(key)
    }
    return n
  }

  async clear (): Promise<number> {
    let n = 0
    for (const group of [...this.groups.keys()]) n += await this.evictGroup(group)
    return n
  }

  async close (): Promise<void> {
    this.lru.clear()
  }

  private bump (group: string): void {
    this.generations.set(group, (this.generations.get(group) ?? 0) + 1)
  }

  private unindex (group: string, key: string): void {
    const index = this.groups.get(group)
    if (index === undefined) return
    index.delete(key)
    if (index.size === 0) this.groups.delete(group)
  }
}
