/** What every store offers; values are opaque bytes (the entry codec lives above the store). */
export interface Store {
  readonly name: 'memory' | 'redis'
  /** The bytes under `key` (null when absent) and the group's eviction generation, in one round trip. */
  lookup (key: string, group: string): Promise<{ value: Buffer | null, generation: string }>
  /**
   * Writes `value` and indexes it in its group. With `generation`, writes only if the group was not
   * evicted since that generation was read (no stale data resurrected by a slow miss). Resolves true
   * when written.
   */
  write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string): Promise<boolean>
  /** Removes one key (and moves the group's generation on); resolves true when it existed. */
  delete (key: string, group: string): Promise<boolean>
  /** Removes every key of a group atomically; resolves to how many existed. */
  evictGroup (group: string): Promise<number>
  /** Removes every key of every group under this prefix. */
  clear (): Promise<number>
  close (): Promise<void>
}
