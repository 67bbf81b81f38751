import { hash } from 'node:crypto'
import { test } from 'tap'
import { Packr } from 'msgpackr'
import { decodeEntry, decodeVariants, encodeEntry, encodeTextEntry, encodeVariants, type CacheEntry } from '../lib/entry.js'
import { digestOf, etagFor, weakEtag } from '../lib/payload.js'

// msgpackr as lib/entry.ts configures it (and as releases before VERSION 4 wrote their entries)
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

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

// The tail after the body in each of its lengths: none, swr, swr + sie, + vary, + tags
const shapes: Array<[string, Partial<CacheEntry>, string[] | undefined]> = [
  ['plain', { sie: 0 }, undefined],
  ['swr', { swr: 1000, sie: 0 }, undefined],
  ['sie', {}, undefined],
  ['vary', { vary: { 'accept-language': 'fr' } }, undefined],
  ['tags', { sie: 0 }, ['p:1', 'list']],
  ['vary and tags', { swr: 5, vary: { 'x-v': '1' } }, ['a']]
]

test('encodeTextEntry makes the bytes encodeEntry makes, in every shape', async (t) => {
  for (const [name, text] of texts) {
    const bytes = Buffer.byteLength(text)
    for (const [etagWhat, etag] of [['handler ETag', meta.etag], ['plugin ETag', etagFor(undefined, text, bytes)]]) {
      for (const [what, patch, tags] of shapes) {
        const label = `${name}, ${etagWhat}, ${what}`
        const e = { ...meta, ...patch, etag }
        const { value, body } = encodeTextEntry(e, text, bytes, tags)
        t.same(value, encodeEntry({ ...e, body: Buffer.from(text) }, tags), `${label}: same value`)
        t.equal(body.toString(), text, `${label}: the body view holds the text`)
        t.equal(value.buffer.byteLength, value.length, `${label}: the value is memory of its own (a store keeps it)`)
        const back = decodeEntry(value)
        t.equal(back?.body.toString(), text, `${label}: decodes to the text`)
        t.equal(back?.etag, etag, `${label}: the ETag read back`)
        t.same(back?.tags, tags, `${label}: tags read back`)
      }
    }
  }
})

test('etagFor hashes a string as its UTF-8 bytes', async (t) => {
  for (const [name, text] of texts) {
    t.equal(etagFor(undefined, text, Buffer.byteLength(text)), etagFor(undefined, Buffer.from(text)), name)
  }
  t.equal(etagFor('"v1"', 'anything', 8), '"v1"', "the handler's own ETag wins")
})

test('digestOf and weakEtag: the plugin ETag and its 15 bytes, both ways', async (t) => {
  for (let size = 0; size < 3000; size += 97) {
    const body = Buffer.alloc(size, size % 251)
    const etag = etagFor(undefined, body)
    // the format etagFor had before the codec shared it
    t.equal(etag, `W/"${size.toString(16)}-${hash('sha1', body, 'base64url').slice(0, 20)}"`)
    const digest = digestOf(etag, size)
    t.equal(digest?.length, 15)
    t.same(digest, hash('sha1', body, 'buffer').subarray(0, 15), 'the digest cut to 15 bytes')
    t.equal(weakEtag(size, digest as Buffer), etag, `${size} bytes: rebuilt exactly`)
    t.equal(weakEtag(size, digest as Buffer), `W/"${size.toString(16)}-${(digest as Buffer).toString('base64url')}"`)
  }
  // any 20 characters of the alphabet are a canonical encoding (120 bits, none left over)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  for (let i = 0; i < 200; i++) {
    const chars = Array.from({ length: 20 }, (_, j) => alphabet[(i * 31 + j * j * 7 + j) % 64]).join('')
    t.equal(Buffer.from(chars, 'base64url').toString('base64url'), chars)
    const etag = `W/"1f-${chars}"`
    t.equal(weakEtag(31, digestOf(etag, 31) as Buffer), etag)
  }
  const chars = 'iKfNe_royUIn_DXYT7H1'
  t.ok(digestOf(`W/"400-${chars}"`, 1024))
  const into = Buffer.alloc(20)
  t.equal(digestOf(`W/"400-${chars}"`, 1024, into, 3), into, 'written where asked')
  t.same(into.subarray(3, 18), Buffer.from(chars, 'base64url'))
  for (const etag of [
    `W/"3ff-${chars}"`, // another length
    `W/"0400-${chars}"`, // a leading zero
    `W/"400-${chars.slice(1)}"`, // 19 characters
    `W/"400-${chars}A"`, // 21
    `W/"400-${chars.slice(1)}+"`, // base64, not base64url
    `W/"400-${chars.slice(1)}="`,
    `W/"400-${chars.slice(1)}é"`,
    `W/"400-${chars.slice(1)}\u0141"`, // past 0xff
    `"400-${chars}"`, // strong
    `W/'400-${chars}'`,
    `W/"400_${chars}"`,
    `W/"400-${chars}`,
    `w/"400-${chars}"`
  ]) {
    t.equal(digestOf(etag, 1024), undefined, etag)
  }
  t.ok(digestOf(`W/"3ff-${chars}"`, 1023))
  t.equal(digestOf(`W/"3FF-${chars}"`, 1023), undefined, 'upper-case hex')
})

// The example of the change: 1,024 bytes of body, one header, the plugin's own ETag
const example: CacheEntry = {
  status: 200,
  headers: { 'content-type': 'application/json; charset=utf-8' },
  body: Buffer.alloc(1024, 'x'),
  etag: 'W/"400-iKfNe_royUIn_DXYT7H1"',
  storedAt: 1_765_000_000_123,
  ttl: 3_600_000,
  swr: 0,
  sie: 0,
  vary: undefined
}

// The layout of VERSION 2, as releases before VERSION 4 wrote it
const version2 = (e: CacheEntry, tags?: string[]): Buffer =>
  packr.pack([2, e.status, e.storedAt, e.ttl, e.swr, e.sie, e.etag, e.headers, e.body, e.vary ?? null, ...(tags === undefined ? [] : [tags])])

test('a stored entry is 17 bytes smaller', async (t) => {
  const before = version2(example).length
  t.equal(before, 1125, 'VERSION 2')
  const value = encodeEntry(example)
  t.comment(`example entry: ${before} bytes before, ${value.length} now`)
  t.ok(value.length <= before - 17)
  // fixarray 1, version 1, status 2, storedAt 9, ttl 5, ETag digest 2 + 15, headers 1 + 13 + 32, body 3 + 1024
  t.equal(value.length, 1108)
  const fields = packr.unpack(value) as unknown[]
  t.equal(fields.length, 7, 'the tail left off')
  t.same(fields[4], Buffer.from('iKfNe_royUIn_DXYT7H1', 'base64url'), 'the ETag stored as its digest')
  t.equal(value[packr.pack(fields.slice(0, 5)).length], 0x81, 'the headers in a fixmap')

  const tags = ['product:1', 'list']
  const tagged = encodeEntry(example, tags)
  t.comment(`tagged: ${version2(example, tags).length} bytes before, ${tagged.length} now`)
  t.equal(version2(example, tags).length, 1141)
  t.equal(tagged.length, 1127, '14 fewer: swr, sie and vary stay before the tags')
  t.equal((packr.unpack(tagged) as unknown[]).length, 11)
  t.same(decodeEntry(tagged), { ...example, tags })
})

test('every shape round-trips', async (t) => {
  const body = example.body
  const shapes: Array<{ what: string, e: CacheEntry, tags?: string[], fields: number, digest: boolean }> = [
    { what: 'plain', e: example, fields: 7, digest: true },
    { what: 'swr', e: { ...example, swr: 30_000 }, fields: 8, digest: true },
    { what: 'sie', e: { ...example, sie: 86_400_000 }, fields: 9, digest: true },
    { what: 'swr and sie', e: { ...example, swr: 1, sie: 2 }, fields: 9, digest: true },
    { what: 'vary', e: { ...example, vary: { 'accept-encoding': 'gzip', 'accept-language': '' } }, fields: 10, digest: true },
    { what: 'an empty vary', e: { ...example, vary: {} }, fields: 10, digest: true },
    { what: 'tags', e: example, tags: ['a'], fields: 11, digest: true },
    { what: 'everything', e: { ...example, swr: 3, sie: 4, vary: { 'x-v': 'é' } }, tags: ['a', 'b:c', ''], fields: 11, digest: true },
    {
      what: 'repeated and many headers',
      e: { ...example, headers: { 'x-list': ['a', 'b', ''], link: ['<a>; rel=x'], 'x-empty': '', ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-h${i}`, `v${i}`])) } },
      fields: 7,
      digest: true
    },
    { what: 'no headers', e: { ...example, headers: {} }, fields: 7, digest: true },
    { what: 'an empty body', e: { ...example, body: Buffer.alloc(0), etag: etagFor(undefined, Buffer.alloc(0)) }, fields: 7, digest: true },
    { what: "the handler's ETag", e: { ...example, etag: '"v1"' }, fields: 7, digest: false },
    { what: 'a strong ETag of the same shape', e: { ...example, etag: '"400-iKfNe_royUIn_DXYT7H1"' }, fields: 7, digest: false },
    { what: 'a weak ETag with another length in it', e: { ...example, etag: 'W/"3ff-iKfNe_royUIn_DXYT7H1"' }, fields: 7, digest: false },
    { what: 'the ETag of another body length', e: { ...example, body: body.subarray(1) }, fields: 7, digest: false },
    { what: 'no ETag (a stream)', e: { ...example, etag: '' }, fields: 7, digest: false },
    { what: 'an ETag with latin-1', e: { ...example, etag: 'W/"é"' }, fields: 7, digest: false },
    { what: 'status 204, ttl 0', e: { ...example, status: 204, ttl: 0 }, fields: 7, digest: true },
    { what: 'status 299, a ttl past 32 bits', e: { ...example, status: 299, ttl: 2 ** 40 }, fields: 7, digest: true },
    { what: 'times that are not integers', e: { ...example, storedAt: 1_765_000_000_123.5, ttl: 0.25, swr: 1e-3 }, fields: 8, digest: true },
    { what: 'small times', e: { ...example, storedAt: 0, ttl: 127, swr: 128, sie: 65_535 }, fields: 9, digest: true },
    { what: 'times at 16 and 32 bits', e: { ...example, storedAt: 0xffffffff, ttl: 65_536, swr: 2 ** 32 }, fields: 8, digest: true }
  ]
  for (const { what, e, tags, fields, digest } of shapes) {
    const value = encodeEntry(e, tags)
    const stored = packr.unpack(value) as unknown[]
    t.equal(stored[0], 4, `${what}: VERSION 4`)
    t.equal(stored.length, fields, `${what}: ${fields} fields`)
    t.equal(Buffer.isBuffer(stored[4]), digest, `${what}: the ETag stored as ${digest ? 'its digest' : 'a string'}`)
    t.strictSame(decodeEntry(value), tags === undefined ? e : { ...e, tags }, `${what}: read back`)
    t.strictSame(decodeVariants(value), [tags === undefined ? e : { ...e, tags }], `${what}: as a list of one`)
    const text = encodeTextEntry(e, e.body.toString('latin1'), e.body.length, tags)
    if (e.body.every((b) => b < 0x80)) t.same(text.value, value, `${what}: the same from text`)
  }
})

test('VERSION 2 entries, written by older releases, still read as they did', async (t) => {
  const shapes: Array<[string, CacheEntry, string[] | undefined]> = [
    ['plain', example, undefined],
    ['tags', example, ['p:1']],
    ['swr, sie, vary and repeated headers', { ...example, swr: 1, sie: 2, vary: { 'accept-language': 'fr' }, headers: { 'x-list': ['a', 'b'], 'content-type': 'text/plain' } }, ['a', 'b']],
    ["the handler's ETag", { ...example, etag: '"v1"' }, undefined]
  ]
  for (const [what, e, tags] of shapes) {
    t.strictSame(decodeEntry(version2(e, tags)), tags === undefined ? e : { ...e, tags }, what)
  }
  t.equal(decodeEntry(version2({ ...example, status: 500 })), undefined, 'judged as before')
  t.equal(decodeEntry(version2({ ...example, headers: { 'set-cookie': 'a=1' } })), undefined)
  t.equal(decodeEntry(packr.pack([2, 200, 1, 1000, 0, 0, '"e"', {}, Buffer.from('x')])), undefined, 'a field missing')
  // policy 'http' values keep their layout
  const http = { ...example, http: { age: 5, flags: 1 } }
  t.strictSame(decodeVariants(encodeVariants([http, { ...http, status: 404 }], ['t'])), [{ ...http, tags: ['t'] }, { ...http, status: 404, tags: ['t'] }])
  t.equal((packr.unpack(encodeVariants([http])) as unknown[])[0], 3)
})

test('values that are not our entries read as undefined', async (t) => {
  const digest = Buffer.from('iKfNe_royUIn_DXYT7H1', 'base64url')
  const body = example.body
  const good = [4, 200, 1_765_000_000_123, 3_600_000, digest, { 'content-type': 'text/plain' }, body]
  t.strictSame(decodeEntry(packr.pack(good)), { ...example, headers: { 'content-type': 'text/plain' } }, 'the fields made by hand read back')
  const like = (patch: Record<number, unknown>, length = good.length): Buffer => {
    const fields: unknown[] = [...good, 0, 0, null, []].slice(0, length)
    for (const [at, v] of Object.entries(patch)) fields[Number(at)] = v
    return packr.pack(fields)
  }
  t.ok(decodeEntry(like({}, 10)), 'a tail at its defaults, written out, reads too')
  const withMap = (key: unknown, value: unknown = 'x'): Buffer => packr.pack([...good.slice(0, 5), new Map([[key, value]]), body])
  const cases: Record<string, Buffer> = {
    'six fields': like({}, 6),
    'twelve fields': like({ 11: 'x' }, 12),
    'another version': like({ 0: 5 }),
    'a digest of 14 bytes': like({ 4: digest.subarray(1) }),
    'a digest of 16 bytes': like({ 4: Buffer.concat([digest, digest.subarray(0, 1)]) }),
    'an ETag that is a number': like({ 4: 5 }),
    'an ETag with CRLF': like({ 4: '"a"\r\nset-cookie: a=1' }),
    'status 500': like({ 1: 500 }),
    'status 199': like({ 1: 199 }),
    'status 200.5': like({ 1: 200.5 }),
    'a string body': like({ 6: 'body' }),
    'storedAt negative': like({ 2: -1 }),
    'ttl a string': like({ 3: '1' }),
    'swr negative': like({ 7: -1 }, 8),
    'sie infinite': like({ 8: Infinity }, 9),
    'vary a list': like({ 9: ['accept'] }, 10),
    'vary with a number': like({ 9: { accept: 1 } }, 10),
    'tags not strings': like({ 10: [1, 2] }, 11),
    'tags a string': like({ 10: 'a' }, 11),
    'headers a list': like({ 5: ['content-type', 'text/plain'] }),
    'headers an odd list': like({ 5: ['content-type'] }),
    'headers null': like({ 5: null }),
    'headers a string': like({ 5: 'content-type: text/plain' }),
    'a header name that is not a string': withMap({ a: 1 }),
    'a header name that is not a token': withMap('bad name'),
    'an upper-case header name': withMap('Content-Type'),
    'a header never stored (set-cookie)': withMap('set-cookie', 'session=1'),
    'a header never stored (content-length)': withMap('content-length', '1'),
    'a header never stored (transfer-encoding)': withMap('transfer-encoding', 'chunked'),
    'a header value with CRLF': withMap('x-evil', 'a\r\nset-cookie: a=1'),
    'a header value that is a number': withMap('x-n', 5),
    'a repeated header with a number': withMap('x-n', ['a', 5]),
    '__proto__ with an object': withMap('__proto__', { polluted: 'yes' }),
    truncated: packr.pack(good).subarray(0, 40),
    'not an array': packr.pack({ 0: 4 })
  }
  for (const [what, value] of Object.entries(cases)) t.equal(decodeEntry(value), undefined, what)
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype changed')

  // names good under policy 'http' only stay bad for 'ttl' entries, whatever was read before
  const http = { ...example, http: { age: 0, flags: 0 } }
  for (const name of ['cache-control', 'date']) {
    t.ok(decodeVariants(encodeVariants([{ ...http, headers: { [name]: 'x' } }])), `${name}: replayed under policy 'http'`)
    t.equal(decodeEntry(withMap(name)), undefined, `${name}: not in a 'ttl' entry`)
    t.equal(decodeEntry(version2({ ...example, headers: { [name]: 'x' } })), undefined, `${name}: not in a VERSION 2 entry`)
  }
  t.ok(decodeEntry(withMap('x-good')))
  t.equal(decodeEntry(withMap('x-good', 'a\nb')), undefined, 'a good name with a bad value')

  // a '__proto__' header name: msgpackr's maps rename it (as for VERSION 2), so it cannot reach the prototype
  for (const value of [withMap('__proto__', 'x'), version2({ ...example, headers: JSON.parse('{"__proto__":"x"}') })]) {
    const e = decodeEntry(value)
    t.equal(Object.getPrototypeOf(e?.headers), Object.prototype)
    t.notOk(Object.hasOwn(e?.headers ?? {}, '__proto__'))
    t.same(Object.keys(e?.headers ?? {}), ['__proto_'])
  }
  // and an entry whose headers own such a name is written so
  const own = { ...example, headers: JSON.parse('{"__proto__":"x","content-type":"text/plain"}') }
  t.same(Object.keys(decodeEntry(encodeEntry(own))?.headers ?? {}), ['__proto_', 'content-type'])
})
