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
}

/** Whether an entry `age` ms old is within its freshness lifetime (ttl 0: fresh until evicted). */
export const isFresh = (e: CacheEntry, age: number): boolean => e.ttl === 0 || age < e.ttl

/** How long the store keeps an entry, in ms: past its freshness for as long as it may be served stale. */
export const keepFor = (e: CacheEntry): number => e.ttl === 0 ? 0 : e.ttl + Math.max(e.swr, e.sie)

// Plain maps, no shared record structures: every instance (and version) can read every entry.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
const VERSION = 2

// Stores that hand back the very same Buffer (memory, L1) decode it once.
const decoded = new WeakMap<Buffer, CacheEntry>()

/** A positional array: no field names stored per entry, and the cheapest shape to decode. */
export function encodeEntry (e: CacheEntry): Buffer {
  return packr.pack([VERSION, e.status, e.storedAt, e.ttl, e.swr, e.sie, e.etag, e.headers, e.body, e.vary ?? null])
}

/**
 * Decodes bytes from the store; anything that is not one of our entries reads as a miss (undefined).
 * `memo`: the store returns the same Buffer on every hit, so the decoded entry is kept with it.
 */
export function decodeEntry (bytes: Buffer, memo = false): CacheEntry | undefined {
  if (memo) {
    const known = decoded.get(bytes)
    if (known !== undefined) return known
  }
  let a: unknown[]
  try {
    a = packr.unpack(bytes)
  } catch {
    return undefined
  }
  if (!Array.isArray(a) || a.length !== 10 || a[0] !== VERSION) return undefined
  const [, status, storedAt, ttl, swr, sie, etag, headers, body, vary] = a
  if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 299 ||
    !Buffer.isBuffer(body) || typeof etag !== 'string' || !FIELD_VALUE.test(etag) ||
    !isTime(storedAt) || !isTime(ttl) || !isTime(swr) || !isTime(sie) ||
    headers === null || typeof headers !== 'object' || !validHeaders(headers as Record<string, unknown>) ||
    (vary !== null && !validVary(vary))) {
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
  if (memo) decoded.set(bytes, e)
  return e
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
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

// Replaying a header Node refuses would turn a HIT into a 500: such an entry is not ours.
function validHeaders (headers: Record<string, unknown>): boolean {
  for (const name in headers) {
    const value = headers[name]
    if (!TOKEN.test(name) || NOT_STORED.has(name)) return false
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

export function encodeValue (value: unknown): Buffer {
  return packr.pack({ v: 1, value })
}

export function decodeValue (bytes: Buffer): { value: unknown } | undefined {
  try {
    const d = packr.unpack(bytes)
    return d !== null && typeof d === 'object' && d.v === 1 && 'value' in d ? d : undefined
  } catch {
    return undefined
  }
}
