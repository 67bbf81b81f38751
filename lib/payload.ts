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
  return `W/"${bytes.toString(16)}-${hash('sha1', body, 'base64url').slice(0, 20)}"`
}

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
