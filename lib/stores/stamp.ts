// How the Redis store keeps a value: `h<generation>[,tag…] <bytes>`, stamped with the generation it was
// written under and the tags it carries, so that moving a group's epoch makes every value of the old one
// unreachable at once, and a tag eviction every value of the tag, a URL eviction over many origins the
// URL's (O(1) evictions; see FENCE in lib/stores/scripts.ts). The Lua scripts read and write the same stamp.
// A generation as the store hands it out is `E[.n]/c`: c, the clears of the group's namespaces so far,
// makes a clear() unreachable at once too (see CLEAR in lib/stores/scripts.ts).
// A stamp writes E, n and c in base 36 (`hzdprywhb91/mxd8wp2v `, 21 bytes where the decimal took 32);
// the generation key keeps them in decimal. Releases before 9 December 2026 stamped `g…` in decimal:
// lookups still read those.
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
const DECIMAL = 0x67 // 'g'
const BASE36 = 0x68 // 'h'

/**
 * The bytes of a stored value if it was written under the group's current epoch and no partial eviction
 * since fences it (`fence`: the group's fence, null when it has none; `key` and `base`: the value's key and
 * its group's base, which URL evictions are fenced by); null when an eviction has made it unreachable, or
 * when it is not a value of this store.
 */
export function current (raw: Buffer, generation: string, fence: Buffer | null = null, key = '', base = ''): Buffer | null {
  const radix = raw[0] === BASE36 ? 36 : raw[0] === DECIMAL ? 10 : 0
  if (radix === 0) return null
  const space = raw.indexOf(SPACE, 1)
  if (space === -1) return null
  const end = digits(raw, 1, radix)
  const epoch = epochOf(generation)
  if (numberAt(raw, 1, end, radix) !== decimal(epoch, 0)) return null
  let n = end
  if (raw[n] === DOT) {
    n = digits(raw, n + 1, radix)
    if (n === end + 1) return null
  }
  // the clears it was written after: the group's own, exactly (none on either side)
  const slash = generation.indexOf('/')
  let tags = n
  if (raw[n] === SLASH) {
    tags = digits(raw, n + 1, radix)
    if (slash === -1 || numberAt(raw, n + 1, tags, radix) !== decimal(generation, slash + 1)) return null
  } else if (slash !== -1) return null
  if (tags !== space && raw[tags] !== COMMA) return null
  if (fence !== null) {
    // (past 2^53 it is not exact: fenced, as if written before every entry)
    const written = n === end ? 0 : numberAt(raw, end + 1, n, radix)
    if (Number.isNaN(written) || fenced(fence.toString('latin1'), epoch, written, raw.toString('latin1', tags, space) + ',', key, entryPrefixOf(base))) return null
  }
  return raw.subarray(space + 1)
}

/** Where the run of digits (0-9, and a-z in base 36) starting at `i` ends. */
function digits (raw: Buffer, i: number, radix: number): number {
  const last = radix === 36 ? 0x7a : 0x39
  while ((raw[i] >= 0x30 && raw[i] <= 0x39) || (raw[i] >= 0x61 && raw[i] <= last)) i++
  return i
}

/** The number the digits raw[from, to) write; NaN when there are none, or past 2^53 (not exact). */
function numberAt (raw: Buffer, from: number, to: number, radix: number): number {
  if (to === from) return NaN
  let x = 0
  for (let i = from; i < to; i++) x = x * radix + (raw[i] <= 0x39 ? raw[i] - 0x30 : raw[i] - 0x57)
  return Number.isSafeInteger(x) ? x : NaN
}

/** The decimal number text[from…] writes; NaN when it is not one ('?…': a clear count absent). */
function decimal (text: string, from: number): number {
  if (from === text.length) return NaN
  let x = 0
  for (let i = from; i < text.length; i++) {
    const d = text.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) return NaN
    x = x * 10 + d
  }
  return Number.isSafeInteger(x) ? x : NaN
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

/**
 * The stamp a value written under `generation` (`E[.n]/c`, as a lookup hands it out) carries, without its
 * tags: `h`, then the numbers in base 36. '' when a clear count is absent (the write script makes it).
 */
export function stampOf (generation: string): string {
  const slash = generation.indexOf('/')
  const c = slash === -1 ? NaN : decimal(generation, slash + 1)
  if (Number.isNaN(c)) return ''
  const dot = generation.indexOf('.')
  const e = decimal(generation.slice(0, dot === -1 ? slash : dot), 0)
  const n = dot === -1 ? 0 : decimal(generation.slice(dot + 1, slash), 0)
  if (Number.isNaN(e) || Number.isNaN(n)) return ''
  return 'h' + e.toString(36) + (n > 0 ? '.' + n.toString(36) : '') + '/' + c.toString(36)
}

/** A value as the WRITE script stamps it (`h`, the generation `E[.n][/c]` in base 36, its tags). */
export function stamped (generation: string, bytes: Buffer, tags: readonly string[] = []): Buffer {
  const b36 = generation.replace(/\d+/g, (d) => Number(d).toString(36))
  return Buffer.concat([Buffer.from(`h${b36}${tagsHead(tags)} `, 'latin1'), bytes])
}

/** The tags as a stamp carries them: ',a,b' ('' for none). */
export const tagsHead = (tags: readonly string[]): string => tags.length === 0 ? '' : ',' + tags.join(',')

/** The bytes of a value as the store keeps it in Redis, its stamp taken off (whatever its epoch). */
export const unstamped = (raw: Buffer): Buffer => raw.subarray(raw.indexOf(0x20) + 1)
