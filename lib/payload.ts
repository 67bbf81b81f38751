import { hash } from 'node:crypto'
import { Transform, pipeline, type Readable } from 'node:stream'

/**
 * The handler's own ETag, else a weak validator from the body bytes: SHA-1 cut to 120 bits (20
 * base64url characters). A validator only tells versions of one URL apart, and every entry stores
 * it: 9 bytes fewer per entry than the whole digest.
 */
export function etagFor (handlerEtag: unknown, body: Buffer | string, bytes = (body as Buffer).length): string {
  if (typeof handlerEtag === 'string') return handlerEtag
  // a string is hashed as its UTF-8 bytes, without a Buffer of them
  return weak(bytes, hash('sha1', body, 'base64url').slice(0, DIGEST_CHARS))
}

const weak = (bytes: number, chars: string): string => `W/"${bytes.toString(16)}-${chars}"`

// 120 bits are 20 base64url characters with no bits left over: any 20 of its alphabet are a canonical
// encoding of 15 bytes. Coded here in JS: Buffer's base64url is a native call that costs more than the
// work for 15 bytes, and the codec does it on every HIT (weakEtag) and MISS (digestOf).
export const DIGEST_BYTES = 15
const DIGEST_CHARS = 20
const CHAR = Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (c) => c.charCodeAt(0))
const SIXBITS = new Int8Array(128).fill(-1)
CHAR.forEach((code, bits) => { SIXBITS[code] = bits })

/** The ETag `etagFor` makes for a body of `bytes` bytes whose cut digest is `digest` (15 bytes). */
export function weakEtag (bytes: number, digest: Uint8Array): string {
  const c = CHAR
  const a = (digest[0] << 16) | (digest[1] << 8) | digest[2]
  const b = (digest[3] << 16) | (digest[4] << 8) | digest[5]
  const d = (digest[6] << 16) | (digest[7] << 8) | digest[8]
  const e = (digest[9] << 16) | (digest[10] << 8) | digest[11]
  const f = (digest[12] << 16) | (digest[13] << 8) | digest[14]
  return weak(bytes, String.fromCharCode(
    c[a >> 18], c[a >> 12 & 63], c[a >> 6 & 63], c[a & 63], c[b >> 18], c[b >> 12 & 63], c[b >> 6 & 63], c[b & 63],
    c[d >> 18], c[d >> 12 & 63], c[d >> 6 & 63], c[d & 63], c[e >> 18], c[e >> 12 & 63], c[e >> 6 & 63], c[e & 63],
    c[f >> 18], c[f >> 12 & 63], c[f >> 6 & 63], c[f & 63]))
}

/**
 * The cut digest of `etag` when it is exactly what `etagFor` makes for a body of `bytes` bytes (then
 * `weakEtag(bytes, digest)` gives `etag` back), written into `into` at `at`; else undefined (`into`
 * may have been written to). Entries store these 15 bytes, not the 26 to 33 characters.
 */
export function digestOf (etag: string, bytes: number, into = Buffer.allocUnsafe(DIGEST_BYTES), at = 0): Buffer | undefined {
  const hex = bytes.toString(16)
  let i = hex.length + 4
  if (etag.length !== i + DIGEST_CHARS + 1 || !etag.startsWith('W/"') || !etag.startsWith(hex, 3) ||
    etag.charCodeAt(i - 1) !== 0x2d || etag.charCodeAt(i + DIGEST_CHARS) !== 0x22) return undefined
  for (const end = at + DIGEST_BYTES; at < end; at += 3, i += 4) {
    // negative when any of the four is not in the alphabet
    const n = sixBits(etag.charCodeAt(i)) << 18 | sixBits(etag.charCodeAt(i + 1)) << 12 |
      sixBits(etag.charCodeAt(i + 2)) << 6 | sixBits(etag.charCodeAt(i + 3))
    if (n < 0) return undefined
    into[at] = n >> 16
    into[at + 1] = n >> 8 & 0xff
    into[at + 2] = n & 0xff
  }
  return into
}

const sixBits = (code: number): number => code < 128 ? SIXBITS[code] : -1

/** The payload as bytes, or undefined when it is a stream or another type this cache does not buffer. */
export function payloadBytes (payload: unknown): Buffer | undefined {
  if (typeof payload === 'string') return Buffer.from(payload)
  if (Buffer.isBuffer(payload)) return payload
  if (payload === null || payload === undefined) return Buffer.alloc(0)
  return undefined
}

export function isNodeStream (payload: unknown): payload is Readable {
  return payload !== null && typeof payload === 'object' && typeof (payload as Readable).pipe === 'function'
}

/**
 * Passes `source` through to the client unchanged while keeping a copy of up to `max` bytes;
 * `onComplete` gets the copy only when the stream ended normally within the bound.
 */
export function teeStream (source: Readable, max: number, onComplete: (body: Buffer) => void): Transform {
  let chunks: Buffer[] | null = []
  let size = 0
  const tee = new Transform({
    transform (chunk: Buffer | string, encoding, callback) {
      if (chunks !== null) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk
        size += buf.length
        if (size > max) chunks = null
        else chunks.push(buf)
      }
      callback(null, chunk)
    },
    flush (callback) {
      if (chunks !== null) onComplete(Buffer.concat(chunks, size))
      callback()
    }
  })
  // errors travel downstream to Fastify, which ends the response; nothing is stored then
  pipeline(source, tee, () => {})
  return tee
}
