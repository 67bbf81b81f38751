import { Packr } from 'msgpackr'

export type HeaderValue = string | string[]

/** One stored response. Times are milliseconds so freshness can be judged in process, not by Redis TTLs. */
export interface CacheEntry {
  v: 1
  status: number
  /** End-to-end headers as the handler sent them, lower-case names, repeated ones as arrays in order. */
  headers: Record<string, HeaderValue>
  body: Buffer
  etag: string
  /** Epoch ms when stored. */
  storedAt: number
  /** Freshness lifetime in ms; 0 = fresh until evicted. */
  ttl: number
  /** Request header values the response varied on (its `Vary` names), for secondary-key matching. */
  vary?: Record<string, string>
}

// Plain maps, no shared record structures: every instance (and version) can read every entry.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

export function encodeEntry (entry: CacheEntry): Buffer {
  return packr.pack(entry)
}

/** Decodes bytes from the store; anything that is not one of our entries reads as a miss (undefined). */
export function decodeEntry (bytes: Buffer): CacheEntry | undefined {
  let e: CacheEntry
  try {
    e = packr.unpack(bytes)
  } catch {
    return undefined
  }
  if (e === null || typeof e !== 'object' || e.v !== 1 ||
    !Number.isInteger(e.status) || e.status < 200 || e.status > 299 ||
    !Buffer.isBuffer(e.body) || typeof e.etag !== 'string' ||
    typeof e.storedAt !== 'number' || typeof e.ttl !== 'number' ||
    e.headers === null || typeof e.headers !== 'object' || !validHeaders(e.headers) ||
    (e.vary !== undefined && (e.vary === null || typeof e.vary !== 'object'))) {
    return undefined
  }
  return e
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

// Replaying a header Node refuses would turn a HIT into a 500: such an entry is not ours.
function validHeaders (headers: Record<string, unknown>): boolean {
  for (const name in headers) {
    const value = headers[name]
    if (!TOKEN.test(name)) return false
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
