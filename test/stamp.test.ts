import t from 'tap'
import { cleared, current, registered, stampOf, stamped, unstamped } from '../lib/stores/stamp.js'

// The stamp a Redis value carries (lib/stores/stamp.ts): which values a lookup may answer.

const bytes = Buffer.from('body with spaces, and commas')
const fence = (s: string): Buffer => Buffer.from(s, 'latin1')

t.test('the epoch decides; the partial-eviction count does not', async (t) => {
  t.same(current(stamped('3', bytes), '3'), bytes)
  t.same(current(stamped('3.4', bytes), '3.9'), bytes)
  t.same(current(stamped('3.4', bytes, ['a']), '3'), bytes)
  t.equal(current(stamped('3', bytes), '5'), null)
  t.equal(current(stamped('3', bytes), '33'), null)
  t.equal(current(stamped('33', bytes), '3'), null)
  t.ok(registered('3.4'))
  t.notOk(registered('4.1'))
  t.same(unstamped(stamped('3.4', bytes, ['a', 'b'])), bytes)
})

t.test('the clears a generation carries: only a value written after the same clears is answered', async (t) => {
  t.same(current(stamped('3/2', bytes), '3/2'), bytes)
  t.same(current(stamped('3.4/2', bytes, ['a']), '3.9/2'), bytes, 'with a partial-eviction count and tags')
  t.equal(current(stamped('3', bytes), '3/1'), null, 'written before the first clear')
  t.equal(current(stamped('3/1', bytes), '3/2'), null, 'written before the last one')
  t.equal(current(stamped('3/2', bytes), '3/21'), null)
  t.equal(current(stamped('3/21', bytes), '3/2'), null)
  t.equal(current(stamped('3/1', bytes), '3'), null, 'clears the group no longer carries')
  t.equal(current(stamped('5/2', bytes), '3/2'), null, 'another epoch')
  t.equal(current(stamped('3.4/2', bytes, ['hot']), '3.7/2', fence(';3.5,hot')), null, 'a fence still applies')
  t.same(current(stamped('3.6/2', bytes, ['hot']), '3.7/2', fence(';3.5,hot')), bytes)
  t.ok(registered('3.4/7'))
  t.notOk(registered('4/7'))
  for (const raw of ['g3/ body', 'g3/x body', 'g3/2/2 body', 'g3.4/2.1 body']) {
    t.equal(current(Buffer.from(raw, 'latin1'), '3/2'), null, JSON.stringify(raw))
  }
})

t.test('a group\'s clears as a lookup reads its counts: while one is absent, no value is answered', async (t) => {
  const counts = (...c: Array<string | null>): Array<Buffer | null> => [null, null, null, ...c.map((v) => v === null ? null : Buffer.from(v))]
  t.equal(cleared(counts('1796646398825'), 3), '/1796646398825')
  t.equal(cleared(counts('1796646398825', '1796646400000'), 3), '/3593292798825', 'the sum of the namespace levels\' counts')
  t.equal(cleared(counts(null), 3), '/?', 'never made, or lost')
  t.equal(cleared(counts(null, '7'), 3), '/?,7', 'which one is absent is part of it')
  t.equal(cleared(counts('7', null), 3), '/?7,')
  for (const generation of ['3/?', '3/?,7', '3/?7,']) {
    for (const written of ['3', '3/7', '3/0', '3/?']) {
      t.equal(current(stamped(written, bytes), generation), null, `${written} under ${generation}`)
    }
  }
})

t.test('bytes that are not a stamped value are never answered', async (t) => {
  for (const raw of ['', 'x3 body', 'g3', 'g body', 'g3x body', 'g3.x body', 'g3.4.5 body', 'g3;a body']) {
    t.equal(current(Buffer.from(raw, 'latin1'), '3'), null, JSON.stringify(raw))
  }
})

t.test('a fence hides the values of its tag written before the eviction, and nothing else', async (t) => {
  const f = fence(';3.5,hot;3.7,cold')
  t.equal(current(stamped('3.4', bytes, ['hot']), '3.7', f), null, 'written before the eviction of its tag')
  t.equal(current(stamped('3', bytes, ['x', 'hot']), '3.7', f), null, 'written before any partial eviction')
  t.equal(current(stamped('3.6', bytes, ['cold', 'y']), '3.7', f), null, 'the other entry')
  t.same(current(stamped('3.5', bytes, ['hot']), '3.7', f), bytes, 'written at the eviction\'s generation: after it')
  t.same(current(stamped('3.9', bytes, ['hot', 'cold']), '3.9', f), bytes, 'written after both')
  t.same(current(stamped('3.4', bytes, ['ho', 'hotter', 'xhot']), '3.7', f), bytes, 'tags that only share letters with it')
  t.same(current(stamped('3.4', bytes), '3.7', f), bytes, 'untagged')
  t.same(current(stamped('3.4', bytes, ['hot']), '3.7', fence(';1.9,hot')), bytes, 'a fence entry of another epoch')
  t.same(current(stamped('3.4', bytes, ['hot']), '3.7', fence('junk;;3,hot;3.x')), bytes, 'entries that are not fence entries')
  t.same(current(stamped('3.4', bytes, ['hot']), '3.7', null), bytes, 'no fence')
})

t.test('a URL entry of a fence hides the values of that URL written before the eviction, under the origins it names', async (t) => {
  const base = 'p:{g}:'
  const key = (origin: string, rest: string): string => `${base}e:GET:${origin}${rest}`
  const url = (gen: string, origin: string, rest: string): string => `;${gen}~${origin.length}~${rest.length}~${origin}${rest}`
  const rest = '/a;3.9,hot;3.9~1~1~x b=1 h:x=y'
  const every = fence(url('3.5', '', rest))
  t.equal(current(stamped('3.4', bytes), '3.7', every, key('http://h', rest), base), null, 'any origin')
  t.equal(current(stamped('3', bytes, ['t']), '3.7', every, key('https://h:8;x-forwarded-host=a', rest), base), null, 'a forwarding variant, tagged')
  t.same(current(stamped('3.5', bytes), '3.7', every, key('http://h', rest), base), bytes, 'written since')
  t.same(current(stamped('3.4', bytes), '3.7', every, key('http://h/z', rest), base), bytes, 'a URL that only ends like it')
  t.same(current(stamped('3.4', bytes), '3.7', every, key('http://h', rest + 'x'), base), bytes, 'a longer URL')
  t.same(current(stamped('3.4', bytes), '3.7', every, key('http://h', '/a'), base), bytes, 'a shorter one')
  t.same(current(stamped('3.4', bytes), '3.7', every, `${base}v:http://h${rest}`, base), bytes, 'not an entry key')
  t.same(current(stamped('3.4', bytes), '3.7', every, key('http://h', rest), 'p:{other}:'), bytes, 'another group\'s key')
  t.same(current(stamped('3.4', bytes, ['hot']), '3.9', every, key('http://h', '/b'), base), bytes, 'the text of a URL entry is not read as entries')

  const one = fence(url('3.5', 'http://h', '/a') + ';3.6,hot')
  t.equal(current(stamped('3.4', bytes), '3.7', one, key('http://h', '/a'), base), null, 'that origin')
  t.equal(current(stamped('3.4', bytes), '3.7', one, key('http://h;forwarded=x', '/a'), base), null, 'a forwarding variant of it')
  t.same(current(stamped('3.4', bytes), '3.7', one, key('http://hx', '/a'), base), bytes, 'an origin that only starts like it')
  t.same(current(stamped('3.4', bytes), '3.7', one, key('http://h', '/ab'), base), bytes)
  t.equal(current(stamped('3.4', bytes, ['hot']), '3.7', one, key('http://x', '/b'), base), null, 'a tag entry after it')
  t.same(current(stamped('3.4', bytes), '3.7', fence(url('1.5', '', '/a')), key('http://h', '/a'), base), bytes, 'an entry of another epoch')
  t.same(current(stamped('3.4', bytes), '3.7', fence(';3.5~x~2~/a;3.6~0~2'), key('http://h', '/a'), base), bytes, 'entries it cannot read')
  t.equal(current(stamped('3.4', bytes), '3.7', fence(';3.5~x~2~/a;3.6,t;3.6~0~2~/a'), key('http://h', '/a'), base), null, 'and the entries after them')
  // Redis holds what it was sent as UTF-8, and the lengths count bytes
  const accented = '/caf\u00e9/\u2603?q=\u00fc'
  const utf8 = Buffer.concat([Buffer.from(`;3.5~0~${Buffer.byteLength(accented)}~`), Buffer.from(accented), Buffer.from(';3.6,t')])
  t.equal(current(stamped('3.4', bytes), '3.7', utf8, key('http://h', accented), base), null, 'a URL beyond ASCII')
  t.equal(current(stamped('3.4', bytes, ['t']), '3.7', utf8, key('http://h', '/b'), base), null, 'and the entry after it')
  t.same(current(stamped('3.4', bytes), '3.7', utf8, key('http://h', '/caf\u00e9/'), base), bytes)
})

t.test('a stamp writes its numbers in base 36; the decimal stamps of earlier releases are still read', async (t) => {
  const epoch = '3593292899822389'
  const clears = '1796646449911'
  const raw = stamped(`${epoch}.12/${clears}`, bytes, ['a'])
  t.equal(raw.toString('latin1', 0, raw.indexOf(0x20)), `h${Number(epoch).toString(36)}.c/${Number(clears).toString(36)},a`)
  t.equal(stamped(`${epoch}/${clears}`, bytes).indexOf(0x20) + 1, 21, '21 bytes with its space, where the decimal stamp took 32')
  t.same(current(raw, `${epoch}.40/${clears}`), bytes)
  t.equal(current(raw, `3593292899822391.40/${clears}`), null, 'another epoch')
  t.equal(current(raw, `${epoch}.40/1796646449912`), null, 'another clear')
  t.equal(current(raw, `${epoch}.40/?`), null, 'a clear count absent')
  t.equal(current(raw, `${epoch}.40/${clears}`, fence(`;${epoch}.13,a`)), null, 'fenced by its partial-eviction count (12 in base 36: c)')
  t.same(current(raw, `${epoch}.40/${clears}`, fence(`;${epoch}.12,a`)), bytes, 'written at the eviction\'s generation')
  // as releases before 9 December 2026 stamped values: decimal after 'g'
  const legacy = (s: string): Buffer => Buffer.from(`${s} body`, 'latin1')
  t.same(current(legacy(`g${epoch}.12/${clears},a`), `${epoch}.40/${clears}`), Buffer.from('body'))
  t.equal(current(legacy(`g${epoch}.12/${clears},a`), `${epoch}.40/${clears}`, fence(`;${epoch}.13,a`)), null, 'fenced')
  t.equal(current(legacy(`g${epoch}/${clears}`), `${epoch}/1796646449912`), null)
  t.equal(current(legacy(`h${epoch}/${clears}`), `${epoch}/${clears}`), null, 'decimal digits after h are read in base 36')
  t.equal(current(legacy(`g${Number(epoch).toString(36)}/${clears}`), `${epoch}/${clears}`), null, 'base 36 after g is not decimal')
  t.equal(current(legacy('G3/2'), '3/2'), null)
  t.equal(current(legacy('H3/2'), '3/2'), null)
})

t.test('stamps that are not ones the store writes are never answered', async (t) => {
  const cases: Array<[string, string]> = [
    ['h3/? body', '3/?'], // a clear count that was not a number when written
    ['h3/ body', '3/0'],
    ['h3. body', '3'],
    ['h3.A body', '3'], // upper case is not a digit
    ['h body', '0'],
    ['h3/2 body', '3/'],
    ['h3/2 body', '/2'],
    ['hzzzzzzzzzzz/2 body', String(36 ** 11 - 1) + '/2'], // past 2^53: not exact
    ['h3/2;x body', '3/2']
  ]
  for (const [raw, generation] of cases) t.equal(current(Buffer.from(raw, 'latin1'), generation), null, `${raw} under ${generation}`)
  const huge = Buffer.from(`h3.${(2 ** 54).toString(36)}/2,t body`, 'latin1')
  t.equal(current(huge, '3/2', fence(';3.1,x')), null, 'a partial-eviction count past 2^53 reads as fenced')
  t.same(current(huge, '3/2'), Buffer.from('body'), 'without a fence it is not read')
})

t.test('the stamp a write under a generation gets, as the store hands it to the write script', async (t) => {
  const bytes = Buffer.alloc(0)
  for (const generation of ['3593292899822389.12/1796646449911', '3593292899822389/1796646449911', '7/0']) {
    t.equal(stampOf(generation) + ' ', stamped(generation, bytes).toString('latin1'), generation)
    t.same(current(Buffer.from(stampOf(generation) + ' x'), generation), Buffer.from('x'))
  }
  t.equal(stampOf('3/?'), '', 'a clear count absent: the script makes it, and the stamp')
  t.equal(stampOf('3/?,7'), '')
  t.equal(stampOf('3'), '', 'no clears')
  t.equal(stampOf('3.x/2'), '', 'not a generation')
})
