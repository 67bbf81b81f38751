// How the Redis store keeps a value: `g<generation> <bytes>`, stamped with the generation it was written
// under, so that moving a group's epoch makes every value of the old one unreachable at once (O(1) eviction).
// The Lua scripts (lib/stores/scripts.ts) read and write the same stamp.

/** Whether a generation's epoch is odd: its group is in the groups registry (see lib/stores/scripts.ts). */
export function registered (generation: string): boolean {
  const dot = generation.indexOf('.')
  return Number(dot === -1 ? generation : generation.slice(0, dot)) % 2 === 1
}

/**
 * The bytes of a stored value (`g<generation> <bytes>`) if it was written under the group's current
 * epoch; null when an eviction has made it unreachable, or when it is not a value of this store.
 */
export function current (raw: Buffer, generation: string): Buffer | null {
  if (raw[0] !== 0x67) return null // 'g'
  const space = raw.indexOf(0x20, 1)
  if (space === -1 || space > 40) return null
  let end = raw.indexOf(0x2e, 1) // '.'
  if (end === -1 || end > space) end = space
  const dot = generation.indexOf('.')
  const epoch = dot === -1 ? generation : generation.slice(0, dot)
  if (end - 1 !== epoch.length || raw.toString('latin1', 1, end) !== epoch) return null
  return raw.subarray(space + 1)
}

/** A value as the store keeps it in Redis: stamped with the generation it was written under. */
export const stamped = (generation: string, bytes: Buffer): Buffer => Buffer.concat([Buffer.from(`g${generation} `, 'latin1'), bytes])

/** The bytes of a value as the store keeps it in Redis, its stamp taken off (whatever its epoch). */
export const unstamped = (raw: Buffer): Buffer => raw.subarray(raw.indexOf(0x20) + 1)
