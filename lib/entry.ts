import { Packr } from 'msgpackr'
import { digestOf, DIGEST_BYTES, weakEtag } from './payload.js'

export type HeaderValue = string | string[]

/** One stored response. Times are milliseconds so freshness can be judged in process, not by Redis TTLs. */
export interface CacheEntry {
  status: number
  /** End-to-end headers as the handler sent them, lower-case names, repeated ones as arrays in order. */
  headers: Record<string, HeaderValue>
  body: Buffer
  etag: string
  /** Epoch ms when stored. */
  storedAt: number
  /** Freshness lifetime in ms; 0 = fresh until evicted. */
  ttl: number
  /** After expiry: ms it may still be served while one refresh runs (RFC 5861 stale-while-revalidate). */
  swr: number
  /** After expiry: ms it may still stand in for a failed handler (RFC 5861 stale-if-error). */
  sie: number
  /** Request header values the response varied on (its `Vary` names), for secondary-key matching. */
  vary: Record<string, string> | undefined
  /** Under policy 'http': what reuse needs beyond the freshness lifetime; undefined for 'ttl' entries. */
  http?: HttpMeta
  /** Tags the entry was stored under (read back by the admin API); absent in entries stored before tags were kept. */
  tags?: string[]
}

/** RFC 9111 state of an entry stored under policy 'http'. Its `ttl` is then the freshness lifetime (0: stale at once). */
export interface HttpMeta {
  /** Corrected initial age at `storedAt`, in ms (§4.2.3). */
  age: number
  /** NO_CACHE | NO_STALE | NO_SHARE bits. */
  flags: number
}

/** no-cache: validated before every reuse (RFC 9111 §5.2.2.4). */
export const NO_CACHE = 1
/** must-revalidate, proxy-revalidate, s-maxage: never served stale, whatever the client allows (§5.2.2.2). */
export const NO_STALE = 2

/** Whether an entry `age` ms old is within its freshness lifetime (ttl 0: fresh until evicted). */
export const isFresh = (e: CacheEntry, age: number): boolean => e.http === undefined
  ? e.ttl === 0 || age < e.ttl
  : e.http.age + age < e.ttl

// An 'http' entry stays stored past its freshness this long, to be revalidated (or served stale to a
// client that allows it) instead of fetched again.
const RETAIN_MS = 3600_000

/** How long the store keeps an entry, in ms: past its freshness for as long as it may be served stale. */
export const keepFor = (e: CacheEntry): number => e.http !== undefined
  ? Math.max(0, e.ttl - e.http.age) + Math.max(e.swr, e.sie, RETAIN_MS)
  : e.ttl === 0 ? 0 : e.ttl + Math.max(e.swr, e.sie)

// Plain maps, no shared record structures: every instance (and version) can read every entry.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
// The same with a map's size in its first byte (fixmap) up to 15 keys, where msgpackr writes a map16 (3
// bytes) by default: for the entry's headers and vary
const compact = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true })
// Still read: written by older releases sharing the Redis ([2, status, storedAt, ttl, swr, sie, etag, headers, body, vary, tags?])
const VERSION_2 = 2
// Under policy 'http' a key holds every variant of its URL (Vary), newest first
const VARIANTS = 3
const VERSION = 4

/**
 * A positional array, `[4, status, storedAt, ttl, etag, headers, body, swr, sie, vary, tags]`: no field
 * names stored per entry, and the cheapest shape to decode. The fields after the body are left off from
 * the right while they hold their default (0, 0, null, no tags): most entries end with the body.
 */
export function encodeEntry (e: CacheEntry, tags?: readonly string[]): Buffer {
  return encode(e, e.body, e.body.length, tags, false).value
}

/**
 * `encodeEntry` for a body the handler answered as a string, in one allocation: the string's UTF-8
 * bytes are written once, straight into the value, and the entry's body is a view of them. The same
 * bytes as `encodeEntry({ ...e, body: Buffer.from(text) }, tags)`, with one copy of the body fewer per
 * MISS (it was copied into a Buffer, then into msgpackr's output).
 */
export function encodeTextEntry (e: Omit<CacheEntry, 'body'>, text: string, bytes: number, tags?: readonly string[]): { value: Buffer, body: Buffer } {
  const { value, at } = encode(e, text, bytes, tags, true)
  return { value, body: value.subarray(at, at + bytes) }
}

// The fields up to the ETag, written here: msgpackr packs a Buffer (the digest) slowly, and a pack call
// of its own costs more than these few bytes. Room for 1 + 1 + 3 * 9 + 17.
const front = Buffer.allocUnsafeSlow(64)

// The value, and where the body starts in it
function encode (e: Omit<CacheEntry, 'body'>, body: Buffer | string, bytes: number, tags: readonly string[] | undefined, own: boolean): { value: Buffer, at: number } {
  const rest = tailOf(e, tags)
  front[0] = 0x97 + (rest === undefined ? 0 : rest.length) // a fixarray of 7 to 11
  front[1] = VERSION
  let at = writeNumber(front, writeNumber(front, writeNumber(front, 2, e.status), e.storedAt), e.ttl)
  // the ETag etagFor made from this body: its 15 digest bytes (17 stored, not 29); the length in it is the body's
  const digest = digestOf(e.etag, bytes, front, at + 2) !== undefined
  if (digest) {
    front[at] = 0xc4
    front[at + 1] = DIGEST_BYTES
    at += 2 + DIGEST_BYTES
  }
  // an ETag kept as a string goes with the headers: [etag, headers] past its own fixarray byte
  const mid = compact.pack(digest ? e.headers : [e.etag, e.headers])
  const skip = digest ? 0 : 1
  const tail = rest === undefined ? undefined : compact.pack(rest)
  const binHead = bytes < 0x100 ? 2 : bytes < 0x10000 ? 3 : 5
  const size = at + mid.length - skip + binHead + bytes + (tail === undefined ? 0 : tail.length - 1)
  // own: memory of its own (not a slice of Node's shared pool), the value the memory store keeps as it
  // is. Else a slice (as msgpackr's output was), which that store copies.
  const value = own ? Buffer.allocUnsafeSlow(size) : Buffer.allocUnsafe(size)
  // a loop: Buffer#copy from part of a buffer makes a view of it first, dearer than these few bytes
  for (let i = 0; i < at; i++) value[i] = front[i]
  mid.copy(value, at, skip)
  at += mid.length - skip
  if (binHead === 2) {
    value[at] = 0xc4
    value[at + 1] = bytes
  } else if (binHead === 3) {
    value[at] = 0xc5
    value.writeUInt16BE(bytes, at + 1)
  } else {
    value[at] = 0xc6
    value.writeUInt32BE(bytes, at + 1)
  }
  at += binHead
  if (typeof body === 'string') value.write(body, at, bytes, 'utf8')
  else body.copy(value, at)
  tail?.copy(value, at + bytes, 1) // past the tail's own fixarray byte
  return { value, at }
}

// As msgpackr writes a number that fits 32 bits unsigned (the shortest form); any other as a float64
function writeNumber (out: Buffer, at: number, n: number): number {
  if (n >>> 0 !== n) {
    out[at] = 0xcb
    return out.writeDoubleBE(n, at + 1)
  }
  if (n < 0x80) {
    out[at] = n
    return at + 1
  }
  if (n < 0x100) {
    out[at] = 0xcc
    out[at + 1] = n
    return at + 2
  }
  if (n < 0x10000) {
    out[at] = 0xcd
    return out.writeUInt16BE(n, at + 1)
  }
  out[at] = 0xce
  return out.writeUInt32BE(n, at + 1)
}

// The fields after the body, up to the last one not at its default; undefined when there are none
function tailOf (e: Omit<CacheEntry, 'body'>, tags?: readonly string[]): unknown[] | undefined {
  if (tags !== undefined && tags.length > 0) return [e.swr, e.sie, e.vary ?? null, tags]
  if (e.vary !== undefined) return [e.swr, e.sie, e.vary]
  if (e.sie !== 0) return [e.swr, e.sie]
  return e.swr !== 0 ? [e.swr] : undefined
}

/**
 * The variants of one URL in one value: policy 'http' keys hold them all, so invalidation reaches every
 * one. The key's tags (those of its last write) follow the list as an optional field.
 */
export function encodeVariants (list: readonly CacheEntry[], tags?: readonly string[]): Buffer {
  const value: unknown[] = [VARIANTS, list.map((e) => [e.status, e.storedAt, e.ttl, e.swr, e.sie, e.etag, e.headers, e.body, e.vary ?? null, e.http?.age ?? 0, e.http?.flags ?? 0])]
  if (tags !== undefined && tags.length > 0) value.push(tags)
  return packr.pack(value)
}

// Stores that hand back the very same Buffer (memory, L1) decode it once.
const decodedList = new WeakMap<Buffer, CacheEntry[]>()

/**
 * The entries a stored value holds: one ('ttl') or every variant of a URL ('http'); undefined when the
 * bytes are not ours. `memo` as for decodeEntry.
 */
export function decodeVariants (bytes: Buffer, memo = false): CacheEntry[] | undefined {
  if (memo) {
    const known = decodedList.get(bytes)
    if (known !== undefined) return known
  }
  let a: unknown
  try {
    a = packr.unpack(bytes)
  } catch {
    return undefined
  }
  if (!Array.isArray(a)) return undefined
  let list: CacheEntry[] | undefined
  if (a[0] === VERSION) {
    const e = fromList(a)
    list = e === undefined ? undefined : [e]
  } else if (a[0] === VERSION_2) {
    const tags = a.length === 11 ? tagsOf(a.pop()) : undefined
    const e = tags === null ? undefined : fromFields(a, 1, false)
    if (e !== undefined && tags != null) e.tags = tags
    list = e === undefined ? undefined : [e]
  } else if (a[0] === VARIANTS && (a.length === 2 || a.length === 3) && Array.isArray(a[1]) && a[1].length > 0) {
    const tags = a.length === 3 ? tagsOf(a[2]) : undefined
    if (tags === null) return undefined
    list = []
    for (const f of a[1] as unknown[]) {
      const e = Array.isArray(f) ? fromFields(f, 0, true) : undefined
      if (e === undefined) return undefined
      if (tags !== undefined) e.tags = tags
      list.push(e)
    }
  }
  if (list !== undefined && memo) decodedList.set(bytes, list)
  return list
}

// A VERSION entry: the fields left off take their defaults
function fromList (a: unknown[]): CacheEntry | undefined {
  const n = a.length
  if (n < 7 || n > 11) return undefined
  const status = a[1]
  const storedAt = a[2]
  const ttl = a[3]
  const body = a[6]
  const swr = n > 7 ? a[7] : 0
  const sie = n > 8 ? a[8] : 0
  const vary = n > 9 ? a[9] : null
  const tags = n > 10 ? tagsOf(a[10]) : undefined
  if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 299 || !Buffer.isBuffer(body) ||
    !isTime(storedAt) || !isTime(ttl) || !isTime(swr) || !isTime(sie) || (vary !== null && !validVary(vary)) || tags === null) {
    return undefined
  }
  // a string, or the digest of the ETag etagFor made (rebuilt from the body's length)
  let etag = a[4]
  if (typeof etag === 'string') {
    if (!FIELD_VALUE.test(etag)) return undefined
  } else if (Buffer.isBuffer(etag) && etag.length === DIGEST_BYTES) {
    etag = weakEtag(body.length, etag)
  } else {
    return undefined
  }
  // a map: msgpackr's (a '__proto__' key comes back as '__proto_', never the object's prototype)
  const headers = a[5]
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers) || !validHeaders(headers as Record<string, unknown>)) return undefined
  const e: CacheEntry = {
    status: status as number,
    headers: headers as Record<string, HeaderValue>,
    body,
    etag: etag as string,
    storedAt: storedAt as number,
    ttl: ttl as number,
    swr: swr as number,
    sie: sie as number,
    vary: vary === null ? undefined : vary as Record<string, string>
  }
  if (tags !== undefined) e.tags = tags
  return e
}

function fromFields (a: unknown[], at: number, http: boolean): CacheEntry | undefined {
  if (a.length !== at + (http ? 11 : 9)) return undefined
  const [status, storedAt, ttl, swr, sie, etag, headers, body, vary, age, flags] = a.slice(at)
  if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > (http ? 599 : 299) ||
    !Buffer.isBuffer(body) || typeof etag !== 'string' || !FIELD_VALUE.test(etag) ||
    !isTime(storedAt) || !isTime(ttl) || !isTime(swr) || !isTime(sie) ||
    headers === null || typeof headers !== 'object' || !validHeaders(headers as Record<string, unknown>, http) ||
    (vary !== null && !validVary(vary)) || (http && (!isTime(age) || !Number.isInteger(flags)))) {
    return undefined
  }
  const e: CacheEntry = {
    status: status as number,
    headers: headers as Record<string, HeaderValue>,
    body,
    etag,
    storedAt: storedAt as number,
    ttl: ttl as number,
    swr: swr as number,
    sie: sie as number,
    vary: vary === null ? undefined : vary as Record<string, string>
  }
  if (http) e.http = { age: age as number, flags: flags as number }
  return e
}

/**
 * Decodes bytes from the store into its (first) entry; anything that is not one of our entries reads
 * as a miss (undefined). `memo`: the store returns the same Buffer on every hit, so the decoded entry
 * is kept with it.
 */
export function decodeEntry (bytes: Buffer, memo = false): CacheEntry | undefined {
  return decodeVariants(bytes, memo)?.[0]
}

// null: not a list of tag names (then the bytes are not ours)
function tagsOf (v: unknown): string[] | null {
  return Array.isArray(v) && v.every((t) => typeof t === 'string') ? v as string[] : null
}

const isTime = (n: unknown): boolean => typeof n === 'number' && n >= 0 && Number.isFinite(n)

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/**
 * Never stored: hop-by-hop (RFC 9110 §7.6.1), per-message, recomputed, or owned by this plugin. An entry
 * carrying one is not ours: replaying it would break the framing (Transfer-Encoding, Content-Length) or
 * hand one client's cookie to everyone.
 */
export const NOT_STORED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te',
  'trailer', 'proxy-authenticate', 'proxy-authorization', 'date', 'content-length', 'set-cookie', 'age',
  'cache-control', 'etag'])
/** Under policy 'http' the origin's Cache-Control, Date and Expires are part of what is replayed. */
export const NOT_STORED_HTTP = new Set([...NOT_STORED].filter((name) => name !== 'cache-control' && name !== 'date'))
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** Whether a header value is one Node sends as it is (no CR, LF or other controls). */
export const isFieldValue = (value: string): boolean => FIELD_VALUE.test(value)

// Replaying a header Node refuses would turn a HIT into a 500: such an entry is not ours.
function validHeaders (headers: Record<string, unknown>, http = false): boolean {
  for (const name in headers) {
    const value = headers[name]
    if (!TOKEN.test(name) || (http ? NOT_STORED_HTTP.has(name) : NOT_STORED.has(name))) return false
    if (typeof value === 'string') {
      if (!FIELD_VALUE.test(value)) return false
    } else if (Array.isArray(value)) {
      for (const v of value) if (typeof v !== 'string' || !FIELD_VALUE.test(v)) return false
    } else {
      return false
    }
  }
  return true
}

function validVary (vary: unknown): boolean {
  if (vary === null || typeof vary !== 'object' || Array.isArray(vary)) return false
  for (const name in vary) if (typeof (vary as Record<string, unknown>)[name] !== 'string') return false
  return true
}

/** An application value (set, wrap); its tags, when given, kept beside it for the admin API. */
export function encodeValue (value: unknown, tags?: readonly string[]): Buffer {
  return packr.pack(tags !== undefined && tags.length > 0 ? { v: 1, value, tags } : { v: 1, value })
}

export function decodeValue (bytes: Buffer): { value: unknown, tags?: unknown } | undefined {
  try {
    const d = packr.unpack(bytes)
    return d !== null && typeof d === 'object' && d.v === 1 && 'value' in d ? d : undefined
  } catch {
    return undefined
  }
}
