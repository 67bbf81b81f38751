import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { CLEAR, DELETE_URL, EVICT_GROUP, EVICT_TAG, RECLAIM, RECLAIM_URL } from '../lib/stores/scripts.js'
import { stamped } from '../lib/stores/stamp.js'
import { deferred } from './helpers/gate.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { until } from './helpers/until.js'

// Evictions on Redis make a group's keys unreachable in O(1) and reclaim them behind (lib/stores/scripts.ts):
// what is evicted is never served again, and what is left to reclaim is finished by someone.

let server: TestRedis
let r: Redis
let prefixes = 0

t.before(async () => {
  server = await startRedis(t)
  r = server.client()
})

async function make (t: Test, options: HttpCacheOptions = {}): Promise<{ app: FastifyInstance, prefix: string }> {
  const prefix = options.prefix ?? `rc${++prefixes}`
  const app = Fastify()
  await app.register(httpCache, { redis: server.client(), timeout: 5000, ...options, prefix })
  t.teardown(() => app.close())
  return { app, prefix }
}

async function keys (pattern: string): Promise<string[]> {
  return (await r.keys(pattern)).sort()
}

/** Runs the store's eviction script as an instance that dies right after it would: nobody reclaims. */
async function evictAndDie (prefix: string, group: string): Promise<void> {
  const base = `${prefix}:{${group}}:`
  await r.eval(EVICT_GROUP, 4, base + 'i', base + 'g', base + 'o', base + 'R', `${prefix}:invalidate`, base, '')
}

/** Runs the store's tag eviction script for one group as an instance that dies right after it would. */
async function evictTagAndDie (prefix: string, group: string, tag: string): Promise<number> {
  const base = `${prefix}:{${group}}:`
  return await r.eval(EVICT_TAG, 5, base + 't:' + tag, base + 'g', base + 'R', base + 'i', base + 'o', `${prefix}:invalidate`, base, tag) as number
}

/**
 * A group's fence: what follows its generation, in the same key (see FENCE in lib/stores/scripts.ts), past
 * the origins' anchor (see ORIGINS); null for none.
 */
async function fenceOf (prefix: string, group: string): Promise<string | null> {
  return entriesOf(await r.get(`${prefix}:{${group}}:g`) ?? '')
}

const entriesOf = (gen: string): string | null => {
  const fence = gen.replace(/^[^;]*(;@\d+:\d*)?/, '')
  return fence === '' ? null : fence
}

/** Whether a group has nothing left to reclaim, and no fence. */
async function reclaimedAll (prefix: string, group: string): Promise<boolean> {
  return (await r.exists(`${prefix}:{${group}}:R`)) === 0 && await fenceOf(prefix, group) === null
}

async function fillValues (app: FastifyInstance, group: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, n - i) }, async (_, j) => await app.cache.set(`k${i + j}`, i + j, { group })))
  }
}

t.test('a value stamped with a generation from before the eviction is never served, even written back after it', async (t) => {
  const { app, prefix } = await make(t)
  let calls = 0
  app.get('/p', { config: { cache: { group: 'g', ttl: 0 } } }, async () => ({ calls: ++calls }))
  t.equal((await app.inject('/p')).headers['x-cache'], 'MISS')
  const key = `${prefix}:{g}:e:GET:http://localhost/p`
  await until('stored', async () => (await r.exists(key)) === 1)
  const old = await r.getBuffer(key) as Buffer
  t.equal((await app.inject('/p')).headers['x-cache'], 'HIT')

  t.equal(await app.cache.evictGroup('g'), 1)
  await until('reclaimed', async () => (await r.exists(key, `${prefix}:{g}:R`)) === 0)
  // what a key not reclaimed yet holds, or what a writer that skipped the generation check would write
  await r.set(key, old)
  const res = await app.inject('/p')
  t.equal(res.headers['x-cache'], 'MISS', 'the old value is unreachable')
  t.same(res.json(), { calls: 2 }, 'the handler answered')
  await until('replaced', async () => !(await r.getBuffer(key) as Buffer).equals(old))
  t.equal((await app.inject('/p')).headers['x-cache'], 'HIT', 'the new entry is served')
  t.equal(await app.cache.get('missing', { group: 'g' }), undefined)
})

t.test('keys written after an eviction survive its reclaim; the evicted ones are gone', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'big', 1500)
  t.equal(await app.cache.evictGroup('big'), 1500)
  t.equal(await app.cache.get('k1', { group: 'big' }), undefined, 'unreachable at once')
  await app.cache.set('k2', 'new', { group: 'big' })
  await until('reclaimed', async () => (await r.llen(`${prefix}:{big}:R`)) === 0)
  t.same(await keys(`${prefix}:{big}:v:*`), [`${prefix}:{big}:v:k2`], 'only the value written since is left')
  t.equal(await app.cache.get('k2', { group: 'big' }), 'new')
  t.same(await r.smembers(`${prefix}:{big}:i`), [`${prefix}:{big}:v:k2`])
  await until('unqueued', async () => (await r.exists(`${prefix}:reclaim`)) === 0)
})

/** A value as releases before 9 December 2026 stamped it: its numbers in decimal, after 'g'. */
function decimalStamp (raw: Buffer): Buffer {
  const space = raw.indexOf(0x20)
  const head = raw.toString('latin1', 1, space).replace(/^[0-9a-z./]+/, (n) => n.replace(/[0-9a-z]+/g, (d) => String(parseInt(d, 36))))
  return Buffer.concat([Buffer.from('g' + head, 'latin1'), raw.subarray(space)])
}

t.test('values stamped in decimal by earlier releases are served, and reclaimed by their epoch like the others', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'mixed', 300)
  await app.cache.set('tagged', 'x', { group: 'mixed', tags: ['a'] })
  const value = (k: string): string => `${prefix}:{mixed}:v:${k}`
  const legacy = ['k1', 'k2', 'k3', 'tagged']
  for (const k of legacy) await r.set(value(k), decimalStamp(await r.getBuffer(value(k)) as Buffer))
  t.match((await r.get(value('k1')))?.slice(0, 40), /^g\d+\/\d+ /, 'a decimal stamp')
  t.equal(await app.cache.get('k1', { group: 'mixed' }), 1, 'served')
  t.equal(await app.cache.get('tagged', { group: 'mixed' }), 'x')
  t.equal(await app.cache.evictTag('a'), 1)
  t.equal(await app.cache.get('tagged', { group: 'mixed' }), undefined, 'a tag eviction fences it')
  await evictAndDie(prefix, 'mixed')
  t.equal(await app.cache.get('k2', { group: 'mixed' }), undefined, 'an eviction makes it unreachable')
  // written again since the eviction, by this release and by an earlier one (a rolling upgrade), before
  // any reclaim
  await app.cache.set('k4', 'new', { group: 'mixed' })
  await app.cache.set('k5', 'old', { group: 'mixed' })
  await r.set(value('k5'), decimalStamp(await r.getBuffer(value('k5')) as Buffer))
  await r.sadd(`${prefix}:reclaim`, `${prefix}:{mixed}:`)
  await make(t, { prefix }) // an instance that starts resumes the reclaim
  await until('reclaimed', async () => (await r.exists(`${prefix}:{mixed}:R`)) === 0)
  t.same(await keys(value('*')), [value('k4'), value('k5')], 'only the values written since are left')
  t.equal(await app.cache.get('k5', { group: 'mixed' }), 'old')
  await app.cache.clear()
  t.equal(await app.cache.get('k5', { group: 'mixed' }), undefined, 'a clear() makes it unreachable')
  await until('walked', async () => (await keys(value('*'))).length === 0)
  t.pass('and its walk reclaims it')
})

t.test('a group of no more than 50 keys is removed by the eviction itself; a larger one is queued', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'small', 50)
  await fillValues(app, 'large', 51)
  await evictAndDie(prefix, 'small')
  t.same(await keys(`${prefix}:{small}:*`), [`${prefix}:{small}:g`], 'nothing left to reclaim')
  await evictAndDie(prefix, 'large')
  t.equal((await keys(`${prefix}:{large}:v:*`)).length, 51, 'left to the reclaim')
  t.equal(await r.llen(`${prefix}:{large}:R`), 1)
  t.equal(await app.cache.get('k1', { group: 'large' }), undefined, 'unreachable all the same')
})

t.test('a reclaim an instance left unfinished is resumed by another instance when it starts', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'orphan', 300)
  await evictAndDie(prefix, 'orphan')
  await r.sadd(`${prefix}:reclaim`, `${prefix}:{orphan}:`)
  t.equal(await app.cache.get('k1', { group: 'orphan' }), undefined, 'unreachable at once')
  t.equal((await keys(`${prefix}:{orphan}:v:*`)).length, 300, 'nobody reclaimed them (the evicting instance died)')
  await make(t, { prefix }) // another instance starts
  await until('resumed', async () => (await keys(`${prefix}:{orphan}:*`)).join() === `${prefix}:{orphan}:g`)
  t.pass('every key reclaimed by the instance that started')
})

t.test('a reclaim left unfinished is resumed by the group\'s next eviction', async (t) => {
  const { app, prefix } = await make(t)
  await fillValues(app, 'again', 200)
  await evictAndDie(prefix, 'again') // not recorded in <prefix>:reclaim either
  await app.cache.set('late', 1, { group: 'again' })
  t.equal((await keys(`${prefix}:{again}:v:*`)).length, 201)
  t.equal(await app.cache.evictGroup('again'), 1)
  await until('both reclaimed', async () => (await keys(`${prefix}:{again}:*`)).join() === `${prefix}:{again}:g`)
  t.pass('the earlier eviction\'s keys went with the later one\'s')
})

t.test('evictTag over more keys than one reclaim script takes: unreachable when it resolves, reclaimed behind it, the rest stays', async (t) => {
  const { app, prefix } = await make(t)
  for (let i = 0; i < 600; i += 200) {
    await Promise.all(Array.from({ length: 200 }, async (_, j) => await app.cache.set(`t${i + j}`, i + j, { group: 'mixed', tags: ['hot'] })))
  }
  await app.cache.set('plain', 'stays', { group: 'mixed' })
  t.equal(await app.cache.evictTag('hot'), 600)
  t.equal(await app.cache.get('t1', { group: 'mixed' }), undefined, 'unreachable at once')
  t.equal(await app.cache.get('plain', { group: 'mixed' }), 'stays')
  await until('reclaimed', async () => await reclaimedAll(prefix, 'mixed'))
  t.same(await keys(`${prefix}:{mixed}:v:*`), [`${prefix}:{mixed}:v:plain`], 'no tagged key left once reclaimed')
  t.same(await r.smembers(`${prefix}:{mixed}:i`), [`${prefix}:{mixed}:v:plain`], 'and none in the index')
  t.equal(await app.cache.get('plain', { group: 'mixed' }), 'stays')
  await until('unqueued', async () => (await r.exists(`${prefix}:reclaim`)) === 0)
})

t.test('a tag eviction fences the tag\'s values at once, before any reclaim: the rest of the group and what is written since are served', async (t) => {
  const { app, prefix } = await make(t, { admin: { insecure: true } })
  const group = 'fenced'
  await app.cache.set('a', 'a1', { group, tags: ['hot'] })
  await app.cache.set('b', 'b1', { group, tags: ['cold', 'hot'] })
  await app.cache.set('c', 'c1', { group, tags: ['hotter', 'ho'] })
  await app.cache.set('d', 'd1', { group })
  t.equal(await evictTagAndDie(prefix, group, 'hot'), 2)
  const value = (name: string): string => `${prefix}:{${group}}:v:${name}`
  t.equal(await r.exists(value('a'), value('b')), 2, 'nobody reclaimed them (the evicting instance died)')
  t.equal(await app.cache.get('a', { group }), undefined, 'a value carrying the tag is unreachable')
  t.equal(await app.cache.get('b', { group }), undefined, 'among other tags too')
  t.equal(await app.cache.get('c', { group }), 'c1', 'tags that only share a prefix with it are not fenced')
  t.equal(await app.cache.get('d', { group }), 'd1', 'untagged values are not fenced')
  const listed = await app.inject(`/_cache/groups/${group}/entries`)
  t.same(listed.json().entries.map((e: { key: string }) => e.key).sort(), [value('c'), value('d')], 'the admin listing skips fenced values')

  await app.cache.set('a', 'a2', { group, tags: ['hot'] })
  t.equal(await app.cache.get('a', { group }), 'a2', 'a value written since the eviction is served')
  t.equal(await evictTagAndDie(prefix, group, 'cold'), 1)
  t.match(await fenceOf(prefix, group), /^;\d+\.\d+,hot;\d+\.\d+,cold$/, 'the fence holds both evictions')
  t.equal(await app.cache.get('a', { group }), 'a2', 'another tag\'s eviction does not fence it')

  await r.sadd(`${prefix}:reclaim`, `${prefix}:{${group}}:`)
  await make(t, { prefix }) // another instance starts and resumes the reclaims
  await until('reclaimed', async () => await reclaimedAll(prefix, group))
  t.same(await keys(`${prefix}:{${group}}:v:*`), [value('a'), value('c'), value('d')], 'the fenced keys are gone, the one written since stays')
  t.equal(await app.cache.get('a', { group }), 'a2')
})

t.test('a fence is kept after the generation, in its key; its reclaim set lives until reclaimed; both go with the group\'s next eviction', async (t) => {
  const { app, prefix } = await make(t)
  const base = `${prefix}:{short}:`
  await app.cache.set('x', 1, { group: 'short', tags: ['t'], ttl: 100 })
  await app.cache.set('y', 1, { group: 'short', tags: ['t'], ttl: 50 })
  t.ok(await r.pttl(base + 't:t') > 90_000, 'the tag set has the ttl of its longest-lived value')
  await evictTagAndDie(prefix, 'short', 't')
  const gen = await r.get(base + 'g') ?? ''
  t.match(gen, /^\d+\.1;\d+\.1,t$/, 'the generation, then its fence')
  t.equal(await r.pttl(base + 'g'), -1, 'no ttl: Redis drops it only with the generation')
  t.equal(await r.pttl(base + 'r:' + gen.split(';')[0]), -1, 'the reclaim set has none either')
  t.same(await r.smembers(base + 'r:' + gen.split(';')[0]).then((m) => m.sort()), ['', base + 'v:x', base + 'v:y'],
    'the keys to reclaim, and the member that proves the set whole')
  await app.cache.set('z', 1, { group: 'short', tags: ['u'], ttl: 0 })
  await evictTagAndDie(prefix, 'short', 'u')
  t.match(await fenceOf(prefix, 'short'), /^;\d+\.1,t;\d+\.2,u$/)
  t.equal(await app.cache.evictGroup('short'), 0, 'the keys the tag evictions took are not counted again')
  t.equal(await fenceOf(prefix, 'short'), null, 'the new epoch makes it moot')
})

t.test('a tag eviction that leaves the fence past 4 KB evicts the group whole instead', async (t) => {
  const { app, prefix } = await make(t)
  const group = 'long'
  await app.cache.set('plain', 'p1', { group })
  for (let i = 0; i < 200; i++) await app.cache.set(`k${i}`, i, { group, tags: [`t${i}`] })
  const long = `t-${'x'.repeat(100)}`
  await app.cache.set('long', 0, { group, tags: [long] })
  // partial evictions nobody reclaimed (their instance died), each an entry of the fence (24 to 27 bytes)
  let evicted = 0
  while (await r.strlen(`${prefix}:{${group}}:g`) <= 4030) await evictTagAndDie(prefix, group, `t${evicted++}`)
  t.ok(evicted > 100, `the fence holds ${evicted} entries`)
  t.equal(await app.cache.get('plain', { group }), 'p1', 'what no entry fences is served')
  t.equal(await app.cache.evictTag(long), 1)
  t.equal(await fenceOf(prefix, group), null, 'one more entry: the group evicted whole, its fence gone')
  t.equal(await app.cache.get('plain', { group }), undefined, 'every value of the group is unreachable')
  t.equal(await app.cache.get('k199', { group }), undefined)
  await app.cache.set('plain', 'p2', { group })
  t.equal(await app.cache.get('plain', { group }), 'p2', 'and the group caches again')
})

/** Runs the store's evict(url) script as an instance that dies right after it would, with no time budget. */
async function evictUrlAndDie (prefix: string, group: string, rest: string, origin = ''): Promise<[number, number]> {
  const base = `${prefix}:{${group}}:`
  return await r.eval(DELETE_URL, 4, base + 'o', base + 'i', base + 'g', base + 'R', `${prefix}:invalidate`, base, base + 'e:GET:', rest, origin, 0) as [number, number]
}

async function fillHosts (app: FastifyInstance, prefix: string, group: string, paths: string[], hosts: string[]): Promise<void> {
  for (const host of hosts) for (const url of paths) await app.inject({ url, headers: { host } })
  await until('stored', async () => (await keys(`${prefix}:{${group}}:e:*`)).length === hosts.length * paths.length)
}

t.test('evict(url) under more origins than one script gets through: unreachable when it resolves, swept behind it, the rest stays', async (t) => {
  const { app, prefix } = await make(t, { maxOrigins: 1000 })
  let calls = 0
  app.get('/u', { config: { cache: { group: 'hosts' } } }, async () => ({ calls: ++calls }))
  app.get('/w', { config: { cache: { group: 'hosts' } } }, async () => ({ calls: ++calls }))
  const hosts = Array.from({ length: 200 }, (_, i) => `h${i}.test`)
  await fillHosts(app, prefix, 'hosts', ['/u', '/w'], hosts)
  t.equal(await r.scard(`${prefix}:{hosts}:o`), hosts.length)
  calls = 0
  t.equal(await app.cache.evict('/u'), true)
  for (const host of hosts) {
    if ((await app.inject({ url: '/u', headers: { host } })).headers['x-cache'] !== 'MISS') t.fail(`/u served under ${host}`)
  }
  t.equal(calls, hosts.length, 'the URL is unreachable under every origin once the call resolves')
  await until('swept', async () => await reclaimedAll(prefix, 'hosts'))
  t.same(await keys(`${prefix}:{hosts}:u:*`), [], 'no job left')
  for (const host of hosts) {
    if ((await app.inject({ url: '/u', headers: { host } })).headers['x-cache'] !== 'HIT') t.fail(`/u not served under ${host}`)
    if ((await app.inject({ url: '/w', headers: { host } })).headers['x-cache'] !== 'HIT') t.fail(`/w not served under ${host}`)
  }
  t.equal(calls, hosts.length, 'what was written since the eviction, and the other URL, are served')
  t.equal((await keys(`${prefix}:{hosts}:e:*`)).length, 2 * hosts.length)
  await until('unqueued', async () => (await r.exists(`${prefix}:reclaim`)) === 0)
})

t.test('an evict(url) fenced past its first page: the rest unreachable at once, swept by whoever resumes it, what is written since stays', async (t) => {
  const { app, prefix } = await make(t, { maxOrigins: 1000, admin: { insecure: true } })
  let calls = 0
  app.get('/u', { config: { cache: { group: 'many' } } }, async () => ({ calls: ++calls }))
  app.get('/a/u', { config: { cache: { group: 'many' } } }, async () => ({ calls: ++calls }))
  const hosts = Array.from({ length: 200 }, (_, i) => `h${i}.test`)
  const half = hosts.length / 2
  await fillHosts(app, prefix, 'many', ['/u', '/a/u'], hosts)
  const [n, fenced] = await evictUrlAndDie(prefix, 'many', '/u')
  t.ok(n > 0 && n < hosts.length, `one page removed at once (${n})`)
  t.ok(fenced > 0 && n + fenced >= hosts.length, `the origins left are fenced (${fenced})`)
  const entry = (host: string, path = '/u'): string => `${prefix}:{many}:e:GET:http://${host}${path}`
  t.equal((await keys(`${prefix}:{many}:e:*`)).filter((k) => k.endsWith('.test/u')).length, hosts.length - n, 'nobody swept the rest (the evicting instance died)')
  t.match(await fenceOf(prefix, 'many'), /^;\d+\.\d+~0~2~\/u$/, 'the fence names the URL')

  // half the origins: still there in Redis, not answered (by a lookup nor by the admin API)
  const old = hosts.slice(half)
  for (const host of old) {
    if ((await app.inject(`/_cache/entry?url=${encodeURIComponent(`http://${host}/u`)}`)).statusCode !== 404) t.fail(`/u found under ${host}`)
  }
  // the other half: a MISS, stored again
  calls = 0
  for (const host of hosts.slice(0, half)) {
    if ((await app.inject({ url: '/u', headers: { host } })).headers['x-cache'] !== 'MISS') t.fail(`/u served under ${host}`)
  }
  t.equal(calls, half, 'every one of them ran the handler')
  for (const host of hosts) {
    if ((await app.inject({ url: '/a/u', headers: { host } })).headers['x-cache'] !== 'HIT') t.fail(`/a/u not served under ${host}`)
  }
  t.equal(calls, half, 'a URL that only ends like it is not fenced')
  const gen = (await r.get(`${prefix}:{many}:g`))?.split(';')[0]
  const clears = await r.get(`${prefix}:clear`)
  await until('written again', async () => {
    const values = await r.mget(hosts.slice(0, half).map((h) => entry(h)))
    // the stamp the write script gives them (lib/stores/stamp.ts): in base 36
    const stamp = stamped(`${gen ?? ''}/${clears ?? ''}`, Buffer.alloc(0)).toString('latin1')
    return values.every((v) => v?.startsWith(stamp))
  })

  await r.sadd(`${prefix}:reclaim`, `${prefix}:{many}:`)
  await make(t, { prefix, maxOrigins: 1000 }) // another instance starts and resumes the sweep
  await until('swept', async () => await reclaimedAll(prefix, 'many'))
  t.same(await keys(`${prefix}:{many}:u:*`), [], 'no job left')
  t.same((await keys(`${prefix}:{many}:e:*`)).filter((k) => k.endsWith('.test/u')).sort(), hosts.slice(0, half).map((h) => entry(h)).sort(),
    'the fenced keys are gone, the ones written since stay')
  t.equal((await keys(`${prefix}:{many}:e:*/a/u`)).length, hosts.length, 'and the other URL\'s')
  calls = 0
  for (const host of hosts.slice(0, half)) {
    if ((await app.inject({ url: '/u', headers: { host } })).headers['x-cache'] !== 'HIT') t.fail(`/u not served under ${host}`)
  }
  t.equal(calls, 0)
  t.equal(await r.scard(`${prefix}:{many}:i`), half + hosts.length, 'the index holds what is left')
})

t.test('evict(url) again while the last one of that URL is still sweeping: one fence entry and one job for it, the URL still unreachable', async (t) => {
  const { app, prefix } = await make(t, { maxOrigins: 1000, admin: { insecure: true } })
  app.get('/u', { config: { cache: { group: 'burst' } } }, async () => 'x')
  app.get('/a/u', { config: { cache: { group: 'burst' } } }, async () => 'y')
  const hosts = Array.from({ length: 150 }, (_, i) => `h${i}.test`)
  await fillHosts(app, prefix, 'burst', ['/u', '/a/u'], hosts)
  const base = `${prefix}:{burst}:`
  const evictions = [
    await evictUrlAndDie(prefix, 'burst', '/u'),
    await evictUrlAndDie(prefix, 'burst', '/u'),
    await evictUrlAndDie(prefix, 'burst', '/a/u'),
    await evictUrlAndDie(prefix, 'burst', '/u', 'http://h1.test')
  ]
  t.ok(evictions.every(([, fenced]) => fenced > 0), 'each fenced past its first page')
  const [e, n] = (await r.get(base + 'g') ?? '').split(';')[0].split('.').map(Number)
  const gens = [n - 2, n - 1, n].map((i) => `${e}.${i}`)
  t.equal(await fenceOf(prefix, 'burst'), `;${gens[0]}~0~2~/u;${gens[1]}~0~4~/a/u;${gens[2]}~14~2~http://h1.test/u`,
    'the second /u entry replaced the first; another URL, or the same URL under one origin, has its own')
  t.same(await r.lrange(base + 'R', 0, -1), gens.map((g) => `${base}u:${g}`), 'one job each, in order')
  t.same(await keys(`${base}u:*`), gens.map((g) => `${base}u:${g}`).sort(), 'the first job is gone')
  for (const host of hosts) {
    if ((await app.inject(`/_cache/entry?url=${encodeURIComponent(`http://${host}/u`)}`)).statusCode !== 404) t.fail(`/u found under ${host}`)
  }
  await r.sadd(`${prefix}:reclaim`, base)
  await make(t, { prefix, maxOrigins: 1000 }) // another instance starts and resumes the sweeps
  await until('swept', async () => await reclaimedAll(prefix, 'burst'))
  t.same(await keys(`${base}u:*`), [], 'no job left')
  t.same(await keys(`${base}e:*`), [], 'both URLs swept under every origin')
})

t.test('an evict(url) over up to 128 origins is done at once, whatever its budget: nothing fenced, an exact count', async (t) => {
  const { app, prefix } = await make(t, { maxOrigins: 1000 })
  app.get('/u', { config: { cache: { group: 'few' } } }, async () => 'x')
  const hosts = Array.from({ length: 128 }, (_, i) => `h${i}.test`)
  await fillHosts(app, prefix, 'few', ['/u'], hosts.slice(1))
  t.same(await evictUrlAndDie(prefix, 'few', '/u'), [127, 0], 'every entry removed, none fenced')
  t.same(await keys(`${prefix}:{few}:e:*`), [])
  t.ok(await reclaimedAll(prefix, 'few'))
  t.same(await evictUrlAndDie(prefix, 'few', '/u'), [0, 0], 'nothing left: nothing counted')
  await app.inject({ url: '/u', headers: { host: hosts[0] } })
  await app.inject({ url: '/u', headers: { host: 'h128.test' } })
  await until('stored', async () => (await keys(`${prefix}:{few}:e:*`)).length === 2)
  const [n, fenced] = await evictUrlAndDie(prefix, 'few', '/u')
  t.ok(fenced > 0 && n <= 2, `129 origins: past the first page, fenced (${n} removed, ${fenced} fenced)`)
  t.equal((await app.inject({ url: '/u', headers: { host: 'h128.test' } })).headers['x-cache'], 'MISS', 'removed or fenced')
})

t.test('an evict(url) of one origin fences that origin and the forwarding variants of it only', async (t) => {
  const { app, prefix } = await make(t, { maxOrigins: 1000, admin: { insecure: true } })
  app.get('/u', { config: { cache: { group: 'one' } } }, async () => 'x')
  const hosts = Array.from({ length: 150 }, (_, i) => `h${i}.test`)
  await fillHosts(app, prefix, 'one', ['/u'], hosts)
  await app.inject({ url: '/u', headers: { host: 'h1.test', 'x-forwarded-host': 'elsewhere' } })
  await until('stored', async () => (await keys(`${prefix}:{one}:e:*`)).length === hosts.length + 1)
  const [, fenced] = await evictUrlAndDie(prefix, 'one', '/u', 'http://h1.test')
  t.ok(fenced > 0, 'fenced past its first page')
  t.match(await fenceOf(prefix, 'one'), /^;\d+\.\d+~14~2~http:\/\/h1\.test\/u$/)
  const found = async (url: string, headers = ''): Promise<number> => (await app.inject(`/_cache/entry?url=${encodeURIComponent(url)}${headers}`)).statusCode
  t.equal(await found('http://h1.test/u'), 404, 'that origin')
  t.equal(await found('http://h10.test/u'), 200, 'an origin that only starts like it')
  t.equal(await found('http://h2.test/u'), 200, 'another origin')
  const forwarded = (await app.inject({ url: '/u', headers: { host: 'h1.test', 'x-forwarded-host': 'elsewhere' } })).headers['x-cache']
  t.equal(forwarded, 'MISS', 'a forwarding variant of it')
})

t.test('a fence entry is dropped whole, whatever the URL it names holds, once its reclaim proves it removed everything', async (t) => {
  const base = 'rcf:{g}:'
  const fence = ';3.2~0~13~/x;3.5,a;3.6~;3.4,hot;3.7~1~1~x/'
  await r.set(base + 'g', '3.7' + fence)
  const drop = async (gen: string, kind = RECLAIM, lost = false): Promise<string | null> => {
    // what the eviction left: a set with the member that proves it whole, or a job
    if (!lost && kind === RECLAIM) await r.sadd(base + 'r:' + gen, '')
    if (!lost && kind === RECLAIM_URL) await r.hset(base + 'u:' + gen, 'c', '0', 'o', '', 'r', '/x')
    const [, done] = kind === RECLAIM
      ? await r.eval(RECLAIM, 4, base + 'r:' + gen, base + 'i', base + 'R', base + 'g', gen, 500) as [number, number]
      : await r.eval(RECLAIM_URL, 5, base + 'u:' + gen, base + 'o', base + 'i', base + 'R', base + 'g', gen, 500, base + 'e:GET:') as [number, number]
    t.equal(done, 1, `${gen} done`)
    const value = await r.get(base + 'g') ?? ''
    t.equal(value.split(';')[0], '3.7', 'the generation is kept')
    return entriesOf(value)
  }
  t.equal(await drop('3.5'), fence, 'a tag entry\'s text inside a URL entry is not an entry')
  t.equal(await drop('3.4', RECLAIM, true), fence, 'a set Redis lost proves nothing: the entry stays')
  t.equal(await drop('3.4'), ';3.2~0~13~/x;3.5,a;3.6~;3.7~1~1~x/', 'a tag entry')
  t.equal(await drop('3.2', RECLAIM_URL, true), ';3.2~0~13~/x;3.5,a;3.6~;3.7~1~1~x/', 'a job Redis lost: the entry stays')
  t.equal(await drop('3.2', RECLAIM_URL), ';3.7~1~1~x/', 'a URL entry, its text included')
  t.equal(await drop('3.7', RECLAIM_URL), null, 'the last one leaves the generation alone')
  await r.set(base + 'g', '3.7;3.1~x~1~/;3.2,a')
  t.equal(await drop('3.2'), ';3.1~x~1~/;3.2,a', 'what follows an entry it cannot read is kept as it is')
  t.equal(await r.exists(base + 'r:3.2', base + 'r:3.4', base + 'u:3.2', base + 'u:3.7'), 0, 'nothing left behind')
})

// clear() moves a clear count, O(1) whatever the groups (CLEAR in lib/stores/scripts.ts): what it cleared
// is unreachable when it resolves, and a walk behind it, recorded in Redis, reclaims the keys without
// taking what was written since.

/** Runs the store's clear script as an instance that dies right after it would: nobody walks. */
async function clearAndDie (prefix: string, start = `${prefix}:`): Promise<void> {
  await r.eval(CLEAR, 2, `${start}clear`, `${prefix}:clearing`, start, 'gone', `${prefix}:invalidate`)
}

async function fillCleared (app: FastifyInstance, group: string, n: number, namespace?: string): Promise<void> {
  await Promise.all(Array.from({ length: n }, async (_, i) => await app.cache.set(`k${i}`, i, { group, namespace })))
}

t.test('clear() makes everything unreachable at once; the walk an instance left is resumed by the next one, and keeps what was written since', async (t) => {
  const { app, prefix } = await make(t)
  await fillCleared(app, 'big', 120)
  await fillCleared(app, 'small', 3)
  const value = (group: string, name: string): string => `${prefix}:{${group}}:v:${name}`
  await until('the groups registered', async () => await r.scard(`${prefix}:groups`) === 2)

  await clearAndDie(prefix)
  t.equal(await app.cache.get('k1', { group: 'big' }), undefined, 'unreachable at once')
  t.equal(await app.cache.get('k1', { group: 'small' }), undefined)
  t.equal(await r.exists(value('big', 'k1'), value('small', 'k1')), 2, 'nothing reclaimed yet')
  t.equal(await r.hget(`${prefix}:clearing`, `${prefix}:`), 'gone 0', 'the walk is recorded')
  await app.cache.set('k1', 'new', { group: 'big' })

  const { app: next } = await make(t, { prefix })
  await next.ready()
  await until('the walk and the reclaims done', async () => await r.exists(`${prefix}:clearing`, `${prefix}:{big}:R`, `${prefix}:{small}:R`) === 0)
  t.equal(await r.exists(value('big', 'k2'), value('small', 'k1')), 0, 'the cleared keys are reclaimed')
  t.equal(await next.cache.get('k1', { group: 'big' }), 'new', 'the value written since stays')
  t.same(await r.smembers(`${prefix}:{big}:i`), [value('big', 'k1')], 'indexed again, alone')
  t.equal(await next.cache.evictGroup('big'), 1, 'so its group\'s next eviction finds it')
  t.equal(await app.cache.get('k1', { group: 'big' }), undefined)
})

t.test('clear({ namespace }) walks its own groups and the ones below it only', async (t) => {
  const { app, prefix } = await make(t)
  for (const namespace of ['v1', 'v1:beta', 'v10', undefined]) await fillCleared(app, 'g', 60, namespace)
  const key = (ns: string): string => `${prefix}:${ns}{g}:v:k7`
  await until('the groups registered', async () => await r.scard(`${prefix}:groups`) === 4)
  t.equal(await app.cache.clear({ namespace: 'v1' }), 0, 'counts nothing on the call')
  await until('reclaimed', async () => await r.exists(key('v1:'), key('v1:beta:')) === 0)
  await until('the walk done', async () => await r.exists(`${prefix}:clearing`) === 0)
  t.equal(await r.exists(key('v10:'), key('')), 2, 'the other groups keep their keys')
  t.equal(await app.cache.get('k7', { group: 'g', namespace: 'v10' }), 7)
  t.equal(await app.cache.get('k7', { group: 'g' }), 7)
  t.equal(await app.cache.get('k7', { group: 'g', namespace: 'v1:beta' }), undefined)
})

t.test('a clear() during the walk of an earlier one starts it over: what was written between them is reclaimed too', async (t) => {
  const client = server.client()
  const { app, prefix } = await make(t, { redis: client })
  await fillCleared(app, 'g', 60)
  await until('the group registered', async () => await r.scard(`${prefix}:groups`) === 1)
  // hold the first walk once it has been through the groups, before it records that
  const reached = deferred()
  const go = deferred()
  const c = client as unknown as { httpCacheAdvance: (...args: unknown[]) => Promise<number> }
  const advance = c.httpCacheAdvance.bind(client)
  c.httpCacheAdvance = async (...args: unknown[]) => {
    c.httpCacheAdvance = advance
    reached.resolve()
    await go.promise
    return await advance(...args)
  }
  await app.cache.clear()
  await reached.promise
  await app.cache.set('between', 1, { group: 'g' }) // after the walk took the group's keys
  t.equal(await app.cache.get('between', { group: 'g' }), 1)
  await app.cache.clear()
  t.equal(await app.cache.get('between', { group: 'g' }), undefined, 'unreachable at once')
  go.resolve()
  await until('reclaimed by the walk started over', async () => await r.exists(`${prefix}:{g}:v:between`, `${prefix}:{g}:v:k1`) === 0)
  await until('the walk done', async () => await r.exists(`${prefix}:clearing`) === 0)
})

t.test('a clear count that is not a number: nothing stored under it, nothing served, no error', async (t) => {
  const { app, prefix } = await make(t)
  let calls = 0
  app.get('/p', { config: { cache: { group: 'g' } } }, async () => ({ calls: ++calls }))
  await r.set(`${prefix}:clear`, 'garbage')
  for (let i = 1; i <= 3; i++) {
    const res = await app.inject('/p')
    t.equal(res.statusCode, 200)
    t.equal(res.headers['x-cache'], 'MISS')
    t.same(res.json(), { calls: i })
  }
  await app.cache.set('v', 1)
  t.equal(await app.cache.get('v'), undefined)
  await r.del(`${prefix}:clear`)
  await app.inject('/p')
  await until('cached again once the count is gone', async () => (await app.inject('/p')).headers['x-cache'] === 'HIT')
})
