import { test } from 'tap'
import { decodeEntry, encodeEntry, encodeTextEntry, type CacheEntry } from '../lib/entry.js'
import { etagFor } from '../lib/payload.js'

// A MISS answered with a string is encoded straight from it (lib/fill.ts): the value must be the very bytes
// encodeEntry makes from the same body as a Buffer, so every reader (other instances, older versions) reads it.
const meta: Omit<CacheEntry, 'body'> = {
  status: 200,
  headers: { 'content-type': 'application/json; charset=utf-8', 'x-list': ['a', 'b'] },
  etag: 'W/"4-abc"',
  storedAt: 1_765_000_000_123,
  ttl: 60_000,
  swr: 0,
  sie: 5000,
  vary: undefined
}

const texts: Array<[string, string]> = [
  ['empty', ''],
  ['short ASCII', '{"ok":true}'],
  ['255 bytes (bin 8 at its end)', 'x'.repeat(255)],
  ['256 bytes (bin 16)', 'y'.repeat(256)],
  ['multi-byte UTF-8', '{"name":"Zoë — 東京 🍣"}'.repeat(20)],
  ['65,535 bytes (bin 16 at its end)', 'z'.repeat(65_535)],
  ['65,536 bytes (bin 32)', 'w'.repeat(65_536)]
]

test('encodeTextEntry makes the bytes encodeEntry makes, with and without vary and tags', async (t) => {
  for (const [name, text] of texts) {
    for (const [what, vary, tags] of [['plain', undefined, undefined], ['vary', { 'accept-language': 'fr' }, undefined], ['tags', undefined, ['p:1', 'list']], ['both', { 'x-v': '1' }, ['a']]] as const) {
      const e = { ...meta, vary: vary as Record<string, string> | undefined }
      const bytes = Buffer.byteLength(text)
      const { value, body } = encodeTextEntry(e, text, bytes, tags as string[] | undefined)
      t.same(value, encodeEntry({ ...e, body: Buffer.from(text) }, tags as string[] | undefined), `${name}, ${what}: same value`)
      t.equal(body.toString(), text, `${name}, ${what}: the body view holds the text`)
      t.equal(value.buffer.byteLength, value.length, `${name}, ${what}: the value is memory of its own (a store keeps it)`)
      const back = decodeEntry(value)
      t.equal(back?.body.toString(), text, `${name}, ${what}: decodes to the text`)
      t.same(back?.tags, tags, `${name}, ${what}: tags read back`)
    }
  }
})

test('etagFor hashes a string as its UTF-8 bytes', async (t) => {
  for (const [name, text] of texts) {
    t.equal(etagFor(undefined, text, Buffer.byteLength(text)), etagFor(undefined, Buffer.from(text)), name)
  }
  t.equal(etagFor('"v1"', 'anything', 8), '"v1"', "the handler's own ETag wins")
})
