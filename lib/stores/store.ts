/** What a lookup finds: the bytes under a key (null when absent) and its group's eviction generation. */
export interface Lookup { value: Buffer | null, generation: string }

/** An eviction, as the stores report it to an in-process tier (L1) and publish it to other instances. */
export type Invalidation = { group: string } | { key: string } | { all: true }

/** One stored key and its bytes, as the admin API lists them. */
export interface StoredItem { key: string, value: Buffer }

/** A page of a group's keys; `cursor` continues it, null at the end. */
export interface Page { items: StoredItem[], cursor: string | null }

/** A circuit breaker's state: closed (calls go through), open (skipped), half-open (one probe let through). */
export type Breaker = 'closed' | 'open' | 'half-open'

/** Whether the store answers now, how long it took in ms, and its breaker (null: a store without one). */
export interface Health { ok: boolean, latencyMs: number, breaker: Breaker | null }

/**
 * What every store offers. Values are opaque bytes (the entry codec lives above the store); a group is
 * named by its key base (see lib/keys.ts), so namespaces need nothing from the stores.
 */
export interface Store {
  readonly name: 'memory' | 'redis'
  /** Whether lookups hand back the same Buffer while a key is unchanged (then decoding is memoized). */
  readonly stable: boolean
  /** The value and the group's generation in one round trip; synchronous when the store is in process. */
  lookup (key: string, group: string): Lookup | Promise<Lookup>
  /**
   * Writes `value`, indexed in its group and under its tags. With `generation`, writes only if the group
   * was not evicted since that generation was read (no stale data resurrected by a slow miss). With
   * `origin`, records it among the group's origins (see `deleteUrl`), refusing the write when the group
   * already has `maxOrigins` others. Resolves true when written.
   */
  write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string, tags?: readonly string[], origin?: string): Promise<boolean>
  /**
   * Records that `group` is about to hold keys carrying `tags`, so that an evictTag from now on moves the
   * group's generation. Called before the value is computed: a computation racing a tag eviction then
   * either reads the new data or is not stored.
   */
  registerTags (group: string, tags: readonly string[]): Promise<void>
  /** Removes one key (and moves the group's generation on); resolves true when it existed. */
  delete (key: string, group: string): Promise<boolean>
  /**
   * Removes `<entry prefix of group><origin><rest>` for every origin the group recorded, or only those
   * equal to `origin` or starting with `origin;` when given. Resolves to how many existed (a store that
   * fences the origins past a first batch instead of looking at each, like Redis, counts those origins).
   */
  deleteUrl (group: string, rest: string, origin?: string): Promise<number>
  /** Removes every key of a group atomically; resolves to how many existed. */
  evictGroup (group: string): Promise<number>
  /**
   * Removes every key carrying `tag`, group by group (each group atomically); resolves to how many keys
   * the tag indexed (a store that does not look at each, like Redis, counts expired or evicted ones too).
   */
  evictTag (tag: string): Promise<number>
  /**
   * Removes every group whose base starts with `start`; resolves to how many keys it removed on the call
   * (a store that makes them unreachable at once and reclaims them behind it, like Redis, counts 0).
   */
  clear (start: string): Promise<number>
  close (): Promise<void>
  /** The circuit breaker in front of the store, where it has one (the worst of a Cluster's nodes). */
  readonly breaker?: 'closed' | 'open' | 'half-open'
  /** Entries and bytes held, where the store can tell. */
  usage? (): { entries: number, bytes: number } | undefined
  // For the admin API (lib/admin.ts): reads through the group's own indexes, never a keyspace scan.
  /**
   * Up to `limit` live keys of a group with their bytes, from `cursor` (undefined: the start); a key
   * present throughout a walk is listed exactly once. Throws a TypeError for a cursor it did not make.
   */
  entries (group: string, cursor: string | undefined, limit: number): Promise<Page>
  /** The origins the group recorded its entries under (see `deleteUrl`). */
  listOrigins (group: string): Promise<string[]>
  /** Pings the store (bounded by the timeout); never rejects. */
  health (): Promise<Health>
}

/** The entry keys of `origins` matching `origin` (all of them when undefined). */
export function originMatches (origin: string | undefined, candidate: string): boolean {
  return origin === undefined || candidate === origin || candidate.startsWith(origin + ';')
}

/**
 * Bytes a store or tier keeps, as memory of their own: a Buffer that is a view of a larger one (a Redis
 * reply inside its socket read, 55 KB for a batch of 50 replies of 1 KB; msgpackr's output inside its
 * 8 KB working buffer) would hold all of it for as long as it is kept, past any byte bound.
 */
export function ownBytes (value: Buffer): Buffer {
  if (value.byteOffset === 0 && value.buffer.byteLength === value.length) return value
  const copy = Buffer.allocUnsafeSlow(value.length)
  value.copy(copy)
  return copy
}
