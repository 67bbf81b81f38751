// How the Redis store keeps a value: `g<generation>[,tag…] <bytes>`, stamped with the generation it was
// written under and the tags it carries, so that moving a group's epoch makes every value of the old one
// unreachable at once, and a tag eviction every value of the tag (O(1) evictions; see FENCE in
// lib/stores/scripts.ts). The Lua scripts read and write the same stamp.

/** Whether a generation's epoch is odd: its group is in the groups registry (see lib/stores/scripts.ts). */
export function registered (generation: string): boolean {
  const dot = generation.indexOf('.')
  return Number(dot === -1 ? generation : generation.slice(0, dot)) % 2 === 1
}

const SPACE = 0x20
const DOT = 0x2e
const COMMA = 0x2c

/**
 * The bytes of a stored value if it was written under the group's current epoch and no tag eviction
 * since fences it (`fence`: the group's fence, null when it has none); null when an eviction has made
 * it unreachable, or when it is not a value of this store.
 */
export function current (raw: Buffer, generation: string, fence: Buffer | null = null): Buffer | null {
  if (raw[0] !== 0x67) return null // 'g'
  const space = raw.indexOf(SPACE, 1)
  if (space === -1) return null
  const end = digits(raw, 1)
  const dot = generation.indexOf('.')
  const epoch = dot === -1 ? generation : generation.slice(0, dot)
  if (end - 1 !== epoch.length || raw.toString('latin1', 1, end) !== epoch) return null
  let tags = end
  if (raw[tags] === DOT) tags = digits(raw, tags + 1)
  if (tags !== space && raw[tags] !== COMMA) return null
  if (fence !== null && tags !== space && fenced(fence.toString('latin1'), epoch, raw.toString('latin1', end, tags), raw.toString('latin1', tags, space))) return null
  return raw.subarray(space + 1)
}

/** Where the run of ASCII digits starting at `i` ends. */
function digits (raw: Buffer, i: number): number {
  while (raw[i] >= 0x30 && raw[i] <= 0x39) i++
  return i
}

/**
 * Whether a value stamped `<epoch><n> <tags>` (n: '' or '.<n>'; tags: ',a,b') carries a tag the fence
 * (`;<epoch>.<n'>,<tag>…`) evicted after it was written (n' > n).
 */
function fenced (fence: string, epoch: string, n: string, tags: string): boolean {
  const written = n === '' ? 0 : Number(n.slice(1))
  const carried = tags + ','
  for (const entry of fence.split(';')) {
    const dot = entry.indexOf('.')
    const comma = entry.indexOf(',', dot)
    if (dot === -1 || comma === -1 || entry.slice(0, dot) !== epoch) continue
    if (Number(entry.slice(dot + 1, comma)) > written && carried.includes(entry.slice(comma) + ',')) return true
  }
  return false
}

/** A value as the store keeps it in Redis: stamped with the generation it was written under (and its tags). */
export const stamped = (generation: string, bytes: Buffer, tags: readonly string[] = []): Buffer =>
  Buffer.concat([Buffer.from(`g${generation}${tagsHead(tags)} `, 'latin1'), bytes])

/** The tags as a stamp carries them: ',a,b' ('' for none). */
export const tagsHead = (tags: readonly string[]): string => tags.length === 0 ? '' : ',' + tags.join(',')

/** The bytes of a value as the store keeps it in Redis, its stamp taken off (whatever its epoch). */
export const unstamped = (raw: Buffer): Buffer => raw.subarray(raw.indexOf(0x20) + 1)
