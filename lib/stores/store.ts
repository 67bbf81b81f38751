/**
 * What every store offers. Values are opaque bytes (the entry codec lives above the store); a group is
 * named by its key base (see lib/keys.ts), so namespaces need nothing from the stores.
 */
export interface Store {
  readonly name: 'memory' | 'redis'
  /** The bytes under `key` (null when absent) and the group's eviction generation, in one round trip. */
  lookup (key: string, group: string): Promise<{ value: Buffer | null, generation: string }>
  /**
   * Writes `value`, indexed in its group and under its tags. With `generation`, writes only if the group
   * was not evicted since that generation was read (no stale data resurrected by a slow miss).
   * Resolves true when written.
   */
  write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string, tags?: readonly string[]): Promise<boolean>
  /**
   * Records that `group` is about to hold keys carrying `tags`, so that an evictTag from now on moves the
   * group's generation. Called before the value is computed: a computation racing a tag eviction then
   * either reads the new data or is not stored.
   */
  registerTags (group: string, tags: readonly string[]): Promise<void>
  /** Removes one key (and moves the group's generation on); resolves true when it existed. */
  delete (key: string, group: string): Promise<boolean>
  /** Removes every key of a group atomically; resolves to how many existed. */
  evictGroup (group: string): Promise<number>
  /** Removes every key carrying `tag`, group by group (each group atomically); resolves to how many existed. */
  evictTag (tag: string): Promise<number>
  /** Removes every group whose base starts with `start`; resolves to how many keys existed. */
  clear (start: string): Promise<number>
  close (): Promise<void>
}
