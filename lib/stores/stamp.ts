// How the Redis store keeps a value: `g<generation>[,tag…] <bytes>`, stamped with the generation it was
// written under and the tags it carries, so that moving a group's epoch makes every value of the old one
// unreachable at once, and a tag eviction every value of the tag, a URL eviction over many origins the
// URL's (O(1) evictions; see FENCE in lib/stores/scripts.ts). The Lua scripts read and write the same stamp.
// A generation as the store hands it out is `E[.n]/c`: c, the clears of the group's namespaces so far,
// makes a clear() unreachable at once too (see CLEAR in lib/stores/scripts.ts).
import { entryPrefixOf } from '../keys.js'

/** Whether a generation's epoch is odd: its group is in the groups registry (see lib/stores/scripts.ts). */
export function registered (generation: string): boolean {
  return Number(epochOf(generation)) % 2 === 1
}

/** The epoch E of a generation `E[.n][/c]`. */
function epochOf (generation: string): string {
  let end = 0
  while (end < generation.length && generation.charCodeAt(end) >= 0x30 && generation.charCodeAt(end) <= 0x39) end++
  return end === generation.length ? generation : generation.slice(0, end)
}

const SPACE = 0x20
const DOT = 0x2e
const COMMA = 0x2c
const SLASH = 0x2f

/**
 * The bytes of a stored value if it was written under the group's current epoch and no partial eviction
 * since fences it (`fence`: the group's fence, null when it has none; `key` and `base`: the value's key and
 * its group's base, which URL evictions are fenced by); null when an eviction has made it unreachable, or
 * when it is not a value of this store.
 */
export function current (raw: Buffer, generation: string, fence: Buffer | null = null, key = '', base = ''): Buffer | null {
  if (raw[0] !== 0x67) return null // 'g'
  const space = raw.indexOf(SPACE, 1)
  if (space === -1) return null
  const end = digits(raw, 1)
  const epoch = epochOf(generation)
  if (end - 1 !== epoch.length || raw.toString('latin1', 1, end) !== epoch) return null
  let n = end
  if (raw[n] === DOT) n = digits(raw, n + 1)
  // the clears it was written after: the group's own, exactly (none on either side: '')
  const slash = generation.indexOf('/')
  let tags = n
  if (raw[n] === SLASH) {
    tags = digits(raw, n + 1)
    if (slash === -1 || tags - n !== generation.length - slash || raw.toString('latin1', n, tags) !== generation.slice(slash)) return null
  } else if (slash !== -1) return null
  if (tags !== space && raw[tags] !== COMMA) return null
  if (fence !== null) {
    const written = n === end ? 0 : Number(raw.toString('latin1', end + 1, n))
    if (fenced(fence.toString('latin1'), epoch, written, raw.toString('latin1', tags, space) + ',', key, entryPrefixOf(base))) return null
  }
  return raw.subarray(space + 1)
}

/** Where the run of ASCII digits starting at `i` ends. */
function digits (raw: Buffer, i: number): number {
  while (raw[i] >= 0x30 && raw[i] <= 0x39) i++
  return i
}

const COUNT = /^\d+$/

/**
 * Whether a value written at `<epoch>.<written>`, carrying `carried` (',a,b,'), under `key` is fenced by an
 * entry of the fence (see FENCE in lib/stores/scripts.ts) evicted after it was written (n' > written): a
 * tag entry `;<epoch>.<n'>,<tag>` naming one of its tags, or a URL entry
 * `;<epoch>.<n'>~<length of O>~<length of R>~<O><R>` matching its key. What is not an entry is skipped.
 */
function fenced (fence: string, epoch: string, written: number, carried: string, key: string, prefix: string): boolean {
  let i = fence.indexOf(';')
  while (i !== -1) {
    let j = i + 1
    while (j < fence.length && fence[j] !== ',' && fence[j] !== '~' && fence[j] !== ';') j++
    let next = j
    let hit = false
    if (fence[j] === ',') {
      next = fence.indexOf(';', j)
      if (next === -1) next = fence.length
      hit = carried.includes(fence.slice(j, next) + ',')
    } else if (fence[j] === '~') {
      const a = fence.indexOf('~', j + 1)
      const b = a === -1 ? -1 : fence.indexOf('~', a + 1)
      const lo = fence.slice(j + 1, a)
      const lr = fence.slice(a + 1, b)
      // not an entry this store wrote: what follows is read from the next ';' (fencing more is safe)
      if (b !== -1 && COUNT.test(lo) && COUNT.test(lr)) {
        const o = b + 1 + Number(lo)
        next = o + Number(lr)
        hit = urlMatches(key, prefix, text(fence.slice(b + 1, o)), text(fence.slice(o, next)))
      }
    }
    if (hit) {
      const dot = fence.indexOf('.', i)
      if (dot !== -1 && dot < j && fence.slice(i + 1, dot) === epoch && Number(fence.slice(dot + 1, j)) > written) return true
    }
    i = fence.indexOf(';', next)
  }
  return false
}

const BEYOND_ASCII = /[\u0080-\u00ff]/

/** Text of the fence (bytes read as latin1: its lengths count bytes) as the JavaScript string Redis got as UTF-8. */
const text = (bytes: string): string => BEYOND_ASCII.test(bytes) ? Buffer.from(bytes, 'latin1').toString('utf8') : bytes

/**
 * Whether `key` is `<prefix><an origin><rest>` with that origin `origin` or `origin;…` ('': any). An origin
 * (`scheme://host[;…]`) holds no `/` after its scheme, so `/a/x` is never read as an entry of `/x`.
 */
function urlMatches (key: string, prefix: string, origin: string, rest: string): boolean {
  if (key.length < prefix.length + rest.length || !key.startsWith(prefix) || !key.endsWith(rest)) return false
  const o = key.slice(prefix.length, key.length - rest.length)
  const scheme = o.indexOf('://')
  if (scheme <= 0 || o.includes('/', scheme + 3)) return false
  return origin === '' || o === origin || o.startsWith(origin + ';')
}

/**
 * The clears of a group as its generation carries them: '/<sum of the counts from replies[from] on>'; while
 * a count is absent (never made, or lost), '/?<the counts, '' for an absent one, joined by ','>', which no
 * value carries (as `cleared` in lib/stores/scripts.ts writes it).
 */
export function cleared (replies: Array<Buffer | null>, from: number): string {
  let sum = 0
  let absent = false
  for (let i = from; i < replies.length; i++) {
    const count = replies[i]
    if (count === null) absent = true
    else sum += Number(count.toString())
  }
  if (!absent) return '/' + String(sum)
  let seen = ''
  for (let i = from; i < replies.length; i++) seen += (i === from ? '' : ',') + (replies[i]?.toString() ?? '')
  return '/?' + seen
}

/** A value as the store keeps it in Redis: stamped with the generation it was written under (and its tags). */
export const stamped = (generation: string, bytes: Buffer, tags: readonly string[] = []): Buffer =>
  Buffer.concat([Buffer.from(`g${generation}${tagsHead(tags)} `, 'latin1'), bytes])

/** The tags as a stamp carries them: ',a,b' ('' for none). */
export const tagsHead = (tags: readonly string[]): string => tags.length === 0 ? '' : ',' + tags.join(',')

/** The bytes of a value as the store keeps it in Redis, its stamp taken off (whatever its epoch). */
export const unstamped = (raw: Buffer): Buffer => raw.subarray(raw.indexOf(0x20) + 1)
