import { Packr } from 'msgpackr'

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
const VERSION = 2
// Under policy 'http' a key holds every variant of its URL (Vary), newest first
const VARIANTS = 3

/**
 * A positional array: no field names stored per entry, and the cheapest shape to decode. The tags the
 * write carries follow as one optional last field (entries without it, older ones too, have none).
 */
export function encodeEntry (e: CacheEntry, tags?: readonly string[]): Buffer {
  const fields: unknown[] = [VERSION, e.status, e.storedAt, e.ttl, e.swr, e.sie, e.etag, e.headers, e.body, e.vary ?? null]
  if (tags !== undefined && tags.length > 0) fields.push(tags)
  return packr.pack(fields)
}

/**
 * `encodeEntry` for a body the handler answered as a string, in one allocation: the string's UTF-8
 * bytes are written once, straight into the value, and the entry's body is a view of them. The same
 * bytes as `encodeEntry({ ...e, body: Buffer.from(text) }, tags)`, with one copy of the body fewer per
 * MISS (it was copied into a Buffer, then into msgpackr's output).
 */
export function encodeTextEntry (e: Omit<CacheEntry, 'body'>, text: string, bytes: number, tags?: readonly string[]): { value: Buffer, body: Buffer } {
  const tagged = tags !== undefined && tags.length > 0
  // a fixarray of 8 (0x98), renumbered to the whole entry's 10 or 11 fields
  const head = packr.pack([VERSION, e.status, e.storedAt, e.ttl, e.swr, e.sie, e.etag, e.headers])
  const tail = packr.pack([e.vary ?? null, ...(tagged ? [tags] : [])])
  const binHead = bytes < 0x100 ? 2 : bytes < 0x10000 ? 3 : 5
  // memory of its own (not a slice of Node's shared pool): the memory store keeps it, and a kept slice would
  // hold its whole 8 KB pool slab
  const value = Buffer.allocUnsafeSlow(head.length + binHead + bytes + tail.length - 1)
  head.copy(value, 0)
  value[0] = tagged ? 0x9b : 0x9a
  let at = head.length
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
  value.write(text, at, bytes, 'utf8')
  tail.copy(value, at + bytes, 1) // past the tail's own fixarray byte
  return { value, body: value.subarray(at, at + bytes) }
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
