import { test } from 'tap'
import calculateSlot from 'cluster-key-slot'
import { ancestors, assertName, clearOf, generationOf, indexOf, KeyBuilder, normalizeUrl, originsOf, pathOf, slotTags, tagSetOf, variant } from '../lib/keys.js'

// The origin app.inject requests have (light-my-request's default Host); '' with keyOrigin: false.
const O = 'http://localhost'

// The slot Redis Cluster hashes: the text between the first `{` and the first `}` after it.
function hashTag (key: string): string | undefined {
  const open = key.indexOf('{')
  if (open === -1) return undefined
  const close = key.indexOf('}', open + 1)
  return close === -1 || close === open + 1 ? undefined : key.slice(open + 1, close)
}

function occurrences (haystack: string, needle: string): number {
  return haystack.split(needle).length - 1
}

test('normalizeUrl: parameter order does not matter', async (t) => {
  t.equal(normalizeUrl('/p?a=1&b=2'), normalizeUrl('/p?b=2&a=1'))
  t.equal(normalizeUrl('/p?c=3&a=1&b=2'), '/p?a=1&b=2&c=3')
  t.equal(normalizeUrl('/p?b=2&a=1'), '/p?a=1&b=2', 'sorted by name')
})

test('normalizeUrl: a repeated name keeps its values in order', async (t) => {
  t.not(normalizeUrl('/p?tag=b&tag=a'), normalizeUrl('/p?tag=a&tag=b'))
  t.equal(normalizeUrl('/p?tag=b&tag=a'), '/p?tag=b&tag=a')
  t.equal(normalizeUrl('/p?tag=a&x=1&tag=b'), normalizeUrl('/p?x=1&tag=a&tag=b'), 'other names may move around it')
  t.equal(normalizeUrl('/p?tag=a&x=1&tag=b'), '/p?tag=a&tag=b&x=1')
  t.not(normalizeUrl('/p?a=1&a'), normalizeUrl('/p?a&a=1'), 'valueless and valued repeats keep their order')
})

test('normalizeUrl: paths are never confused', async (t) => {
  t.not(normalizeUrl('/a:b'), normalizeUrl('/a/b'))
  t.not(normalizeUrl('/a:b?x=1'), normalizeUrl('/a/b?x=1'))
  t.not(normalizeUrl('/a'), normalizeUrl('/a/'))
  t.not(normalizeUrl('/a%2Fb'), normalizeUrl('/a/b'))
  t.equal(normalizeUrl('/a/b'), '/a/b', 'a path without a query is kept as is')
})

test('normalizeUrl: an encoded separator never reads as a separator', async (t) => {
  t.not(normalizeUrl('/p?a=1&b=2'), normalizeUrl('/p?a=1%26b%3D2'))
  t.not(normalizeUrl('/p?a=b'), normalizeUrl('/p?a%3Db'))
  t.not(normalizeUrl('/p?a=1&b=2'), normalizeUrl('/p?a=1%26b=2'))
  t.not(normalizeUrl('/p?a%3Db=c'), normalizeUrl('/p?a=b%3Dc'))
  t.equal(normalizeUrl('/p?a==b'), normalizeUrl('/p?a=%3Db'), 'only the first = splits name and value')
  t.not(normalizeUrl('/p?a=1'), normalizeUrl('/p?a%3D1'))
})

test('normalizeUrl: equivalent encodings share a key', async (t) => {
  t.equal(normalizeUrl('/p?q=a+b'), normalizeUrl('/p?q=a%20b'), '+ is a space')
  t.not(normalizeUrl('/p?q=a+b'), normalizeUrl('/p?q=a%2Bb'), 'an encoded + is a plus, not a space')
  t.equal(normalizeUrl('/p?q=%7E'), normalizeUrl('/p?q=~'))
  t.equal(normalizeUrl('/p?q=%7e'), normalizeUrl('/p?q=~'), 'hex digits in either case')
  t.equal(normalizeUrl('/p?q=%c3%a9'), normalizeUrl('/p?q=%C3%A9'))
  t.equal(normalizeUrl('/p?q=a:b'), normalizeUrl('/p?q=a%3Ab'))
  t.equal(normalizeUrl('/p?q=%2A'), normalizeUrl('/p?q=*'))
  t.equal(normalizeUrl('/p?a%62=1'), normalizeUrl('/p?ab=1'), 'names are canonical too')
  t.equal(normalizeUrl('/p?q=%41'), normalizeUrl('/p?q=A'))
})

test('normalizeUrl: invalid percent-encoding never throws and never collides', async (t) => {
  const invalid = ['/p?a=%zz', '/p?a=%', '/p?a=%2', '/p?a=%E9', '/p?a=%C3', '/p?a=%zz+b', '/p?%zz=1', '/p?a=%C3%A9%C3', '/p?a=%ED%A0%80']
  for (const url of invalid) {
    t.doesNotThrow(() => normalizeUrl(url), url)
  }
  // valid encodings of nearby strings
  t.not(normalizeUrl('/p?a=%zz'), normalizeUrl('/p?a=%25zz'))
  t.not(normalizeUrl('/p?a=%'), normalizeUrl('/p?a=%25'))
  t.not(normalizeUrl('/p?a=%E9'), normalizeUrl('/p?a=%C3%A9'))
  t.not(normalizeUrl('/p?a=%E9'), normalizeUrl('/p?a=%25E9'))
  t.not(normalizeUrl('/p?a=%zz+b'), normalizeUrl('/p?a=%25zz%20b'))
  t.not(normalizeUrl('/p?a=%zz+b'), normalizeUrl('/p?a=%25zz%2Bb'))
  t.not(normalizeUrl('/p?a=%zz'), normalizeUrl('/p?a=zz'))
  t.not(normalizeUrl('/p?a=%zz'), normalizeUrl('/p?a='))
  t.not(normalizeUrl('/p?%zz=1'), normalizeUrl('/p?%25zz=1'))
  // no valid encoding can produce what an invalid one is kept as: canonical output always decodes
  const valid = ['/p?a=%25zz', '/p?a=%25', '/p?a=%C3%A9', '/p?a=%25E9', '/p?a=%25zz%20b', '/p?%25zz=1', '/p?a=%25C3%25A9%25C3', '/p?a=%25C3%C3%A9%25C3']
  for (const url of valid) {
    const query = normalizeUrl(url).split('?')[1]
    t.doesNotThrow(() => decodeURIComponent(query), `canonical form of ${url} decodes`)
  }
  const invalidKeys = new Set(invalid.map(normalizeUrl))
  for (const url of valid) t.notOk(invalidKeys.has(normalizeUrl(url)), `${url} does not collide with an invalid form`)
  t.equal(invalidKeys.size, invalid.length, 'invalid forms are distinct from each other')
})

test('normalizeUrl: empty parameters, bare ? and fragments', async (t) => {
  t.equal(normalizeUrl('/p?a=1&&b=2'), normalizeUrl('/p?a=1&b=2'))
  t.equal(normalizeUrl('/p?&a=1&'), normalizeUrl('/p?a=1'))
  t.equal(normalizeUrl('/p?'), '/p')
  t.equal(normalizeUrl('/p?'), normalizeUrl('/p'))
  t.equal(normalizeUrl('/p?&&'), '/p')
  t.equal(normalizeUrl('/p?a=1#frag'), normalizeUrl('/p?a=1'), 'the fragment is not part of the key')
  t.equal(normalizeUrl('/p?a=1#x'), normalizeUrl('/p?a=1#y'))
  t.equal(normalizeUrl('/p?#frag'), '/p')
  t.equal(normalizeUrl('/p?a=%23x'), '/p?a=%23x', 'an encoded # is data')
  t.not(normalizeUrl('/p?a=%23x'), normalizeUrl('/p?a='))
})

test('normalizeUrl: ?a and ?a= differ', async (t) => {
  t.not(normalizeUrl('/p?a'), normalizeUrl('/p?a='))
  t.equal(normalizeUrl('/p?a'), '/p?a')
  t.equal(normalizeUrl('/p?a='), '/p?a=')
  t.not(normalizeUrl('/p?=1'), normalizeUrl('/p?1'))
})

test('normalizeUrl: idempotent', async (t) => {
  const urls = ['/p?b=2&a=1', '/p?q=a+b', '/p?q=%7e', '/p?a=%zz', '/p?a=1#f', '/p?tag=b&tag=a', '/p?a', '/p?a=', '/p?a==b',
    '/p?q=%c3%a9', '/p?a=1&&b=2', '/a:b?x=y']
  for (const url of urls) {
    const once = normalizeUrl(url)
    t.equal(normalizeUrl(once), once, url)
  }
})

test('assertName accepts the documented characters', async (t) => {
  for (const name of ['default', 'a', 'users:42', 'a.b_c-d', 'user@example.com', 'a/b+c=d', 'x'.repeat(200)]) {
    t.equal(assertName('group', name), name)
  }
})

test('assertName rejects what could break a key, naming the option', async (t) => {
  const bad: unknown[] = ['a{b', 'a}b', '{a}', 'a*', 'a b', 'a\nb', 'a\n', '\n', 'a\tb', '', 'x'.repeat(201), 'é',
    'a?b', 'a[b]', 42, null, undefined, true, {}, ['a'], Symbol('a')]
  for (const value of bad) {
    const label = typeof value === 'string' ? JSON.stringify(value) : String(value)
    t.throws(() => assertName('config.cache.group', value), { name: 'TypeError', message: /config\.cache\.group/ }, label)
  }
  t.throws(() => assertName('prefix', 'a b'), { message: /^fastify-http-cache: prefix must be/ })
  t.throws(() => assertName('prefix', 'a b'), { message: /"a b"/ }, 'quotes the bad value')
  t.throws(() => assertName('prefix', 42), { message: /got number/ }, 'names the bad type')
})

test('KeyBuilder: the group is the Redis hash tag, exactly once', async (t) => {
  const keys = new KeyBuilder('http-cache')
  const groups = ['default', 'g', 'users:42', 'a.b', 'x@y/z+w=v']
  for (const group of groups) {
    const built = [
      keys.entry(keys.base(group), O, '/p?a=1'),
      keys.entry(keys.base(group), O, '/a:b/c'),
      keys.entry(keys.base(group), '', '/p?a=1'),
      keys.value(keys.base(group), 'name'),
      indexOf(keys.base(group)),
      generationOf(keys.base(group)),
      originsOf(keys.base(group))
    ]
    for (const key of built) {
      t.equal(hashTag(key), group, `${key} hashes on its group`)
      t.equal(occurrences(key, `{${group}}`), 1, `${key} holds {${group}} once`)
      t.equal(occurrences(key, '{'), 1, `${key} has one {`)
      t.equal(occurrences(key, '}'), 1, `${key} has one }`)
      t.ok(key.startsWith(keys.base(group)), `${key} starts with the group base`)
    }
  }
  t.equal(keys.base('g'), 'http-cache:{g}:')
  t.equal(hashTag(keys.groups()), undefined, 'the groups registry is outside every group')
})

test('KeyBuilder: braces in a URL or value name do not move the hash tag', async (t) => {
  const keys = new KeyBuilder('p')
  t.equal(hashTag(keys.entry(keys.base('g'), O, '/a{b}c')), 'g')
  t.equal(hashTag(keys.entry(keys.base('g'), O, '/x?q={h}')), 'g')
  t.equal(hashTag(keys.entry(keys.base('g'), 'http://{h}', '/x')), 'g', 'nor in an origin')
  t.equal(hashTag(keys.value(keys.base('g'), '{other}')), 'g')
  t.equal(hashTag(keys.value(keys.base('g'), '}{x}')), 'g')
})

test('KeyBuilder: layout', async (t) => {
  const keys = new KeyBuilder('pre')
  t.equal(keys.entry(keys.base('g'), O, '/p?b=2&a=1'), 'pre:{g}:e:GET:http://localhost/p?a=1&b=2')
  t.equal(keys.entry(keys.base('g'), '', '/p?b=2&a=1'), 'pre:{g}:e:GET:/p?a=1&b=2', 'no origin (keyOrigin: false)')
  t.equal(keys.entry(keys.base('g'), O, '/p?b=2&a=1', 'u:1'), 'pre:{g}:e:GET:http://localhost/p?a=1&b=2 u:1', 'a variant follows a space')
  t.equal(keys.entry(keys.base('g'), O, '/p?b=2&a=1'), keys.entry(keys.base('g'), O, '/p?a=1&b=2'), 'entries use the normalized URL')
  t.not(keys.entry(keys.base('g'), O, '/p?tag=b&tag=a'), keys.entry(keys.base('g'), O, '/p?tag=a&tag=b'))
  t.not(keys.entry(keys.base('g'), O, '/x'), keys.entry(keys.base('g'), 'https://localhost', '/x'), 'origins separate entries')
  t.equal(keys.value(keys.base('g'), 'n'), 'pre:{g}:v:n')
  t.equal(indexOf(keys.base('g')), 'pre:{g}:i')
  t.equal(generationOf(keys.base('g')), 'pre:{g}:g')
  t.equal(originsOf(keys.base('g')), 'pre:{g}:o')
  t.equal(keys.groups(), 'pre:groups')
  t.not(new KeyBuilder('a').entry('http-cache:{g}:', O, '/x'), new KeyBuilder('b').entry('b:{g}:', O, '/x'), 'prefixes separate instances')
})

test('KeyBuilder: entry, value, index, generation and origins keys never coincide', async (t) => {
  const prefixes = ['http-cache', 'a', 'a:b']
  const groups = ['default', 'g', 'e', 'v', 'i', 'a', 'a:b', 'g:i', 'default:e:GET:']
  const urls = ['/', '/x', '/a:b', '/a/b', '/p?a=1', '/i', '/g', ':i', '/x?y', '/e:GET:/x']
  const names = ['x', 'i', 'g', 'e', 'o', 'e:GET:/x', 'GET:/x', ':i', 'v:x', '/x', '{g}']
  const origins = ['', O, 'https://localhost', 'http://localhost;x-forwarded-host=a']
  const seen = new Map<string, string>()
  let total = 0
  const add = (key: string, what: string): void => {
    total++
    const before = seen.get(key)
    if (before !== undefined) t.fail(`${what} and ${before} share the key ${key}`)
    seen.set(key, what)
  }
  for (const prefix of prefixes) {
    const keys = new KeyBuilder(prefix)
    add(keys.groups(), `groups(${prefix})`)
    for (const group of groups) {
      add(indexOf(keys.base(group)), `index(${prefix}, ${group})`)
      add(generationOf(keys.base(group)), `generation(${prefix}, ${group})`)
      add(originsOf(keys.base(group)), `origins(${prefix}, ${group})`)
      for (const origin of origins) {
        for (const url of urls) add(keys.entry(keys.base(group), origin, url), `entry(${prefix}, ${group}, ${origin}, ${url})`)
      }
      for (const name of names) add(keys.value(keys.base(group), name), `value(${prefix}, ${group}, ${name})`)
    }
  }
  t.equal(seen.size, total, `${total} distinct keys`)
})

test('KeyBuilder: namespaces sit before the hash tag; clear() finds a namespace and those below it', async (t) => {
  const keys = new KeyBuilder('pre')
  t.equal(keys.base('g', 'v1'), 'pre:v1:{g}:')
  t.equal(hashTag(keys.entry(keys.base('g', 'v1'), O, '/x')), 'g', 'one slot per group whatever the namespace')
  t.not(keys.entry(keys.base('g', 'v1'), O, '/x'), keys.entry(keys.base('g', 'v2'), O, '/x'))
  t.ok(keys.base('g', 'v1').startsWith(keys.namespaceStart('v1')))
  t.ok(keys.base('g', 'v1:beta').startsWith(keys.namespaceStart('v1')), 'sub-namespaces clear with their parent')
  t.notOk(keys.base('g', 'v10').startsWith(keys.namespaceStart('v1')), 'v10 is not below v1')
  t.ok(keys.base('g').startsWith(keys.namespaceStart(undefined)))
  t.equal(tagSetOf(keys.base('g'), 'product:1'), 'pre:{g}:t:product:1')
  t.equal(keys.tagRegistry('product:1'), 'pre:tag:{product:1}')
})

test('variants: vary header values and varyBy are part of the key, unambiguously', async (t) => {
  t.equal(variant([], {}, undefined), undefined)
  t.equal(variant(['accept-language'], { 'accept-language': 'fr' }, undefined), 'h:accept-language=fr')
  t.not(variant(['accept-language'], {}, undefined), variant(['accept-language'], { 'accept-language': '' }, undefined), 'absent differs from empty')
  t.not(variant(['a', 'b'], { a: 'x&b=y' }, undefined), variant(['a', 'b'], { a: 'x', b: 'y' }, undefined))
  t.equal(variant([], {}, 'user 1'), 'u:user%201')
  t.equal(variant(['x'], { x: ['1', '2'] }, 'u'), 'h:x=1%2C%202 u:u')
  t.not(variant([], {}, 'a u:b'), variant(['x'], {}, 'a'), 'no value forges another part')
  const keys = new KeyBuilder('p')
  t.not(keys.entry(keys.base('g'), O, '/x', 'u:1'), keys.entry(keys.base('g'), O, '/x', 'u:2'))
  t.not(keys.entry(keys.base('g'), O, '/x'), keys.entry(keys.base('g'), O, '/x', 'u:1'))
})

test('paths and their ancestors (autoInvalidate)', async (t) => {
  t.equal(pathOf('/spaces/123/items/456?x=1'), '/spaces/123/items/456')
  t.equal(pathOf('/spaces/123/'), '/spaces/123')
  t.equal(pathOf('/'), '/')
  t.same(ancestors('/spaces/123/items/456'), ['/spaces/123/items/456', '/spaces/123/items', '/spaces/123', '/spaces'])
  t.same(ancestors('/'), [])
  t.same(ancestors('/a'), ['/a'])
})

test('clear counts: one per namespace level a group is under, and on Cluster one per slot, in that slot', async (t) => {
  const keys = new KeyBuilder('my:cache')
  t.same(keys.startsOf(keys.base('g')), ['my:cache:'])
  t.equal(keys.startsOf(keys.base('g')), keys.startsOf(keys.base('h')), 'the same array outside a namespace')
  t.same(keys.startsOf(keys.base('g', 'a:b')), ['my:cache:', 'my:cache:a:', 'my:cache:a:b:'])
  t.same(keys.startsOf(keys.base('g', 'v1')), ['my:cache:', keys.namespaceStart('v1')], 'the starts clear() takes')
  t.equal(clearOf('my:cache:'), 'my:cache:clear')
  const tags = slotTags()
  t.equal(tags.length, 16384)
  t.ok(tags.every((tag, slot) => calculateSlot(clearOf('my:cache:', tag)) === slot), 'every slot has a count in it')
  const base = keys.base('products')
  t.equal(calculateSlot(clearOf('my:cache:', tags[calculateSlot(base)])), calculateSlot(generationOf(base)), 'a group reads the count of its own slot')
})
