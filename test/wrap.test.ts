import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { backends, opener } from './helpers/app.js'
import { gate } from './helpers/gate.js'
import type { FastifyInstance } from 'fastify'
import type { WrapOptions } from '../index.js'

// fastify.cache.wrap(): memoizing plain async functions in the same store as the routes, run against both stores.

const open = opener('wrap')

// A wrapped function that reads `source.data`, then waits at the gate on its first call: the window
// in which the race tests evict.
function gatedLoader<A extends unknown[]> (app: FastifyInstance, options: WrapOptions<A>, read?: (data: string, ...args: A) => string): {
  load: (...args: A) => Promise<string>
  g: ReturnType<typeof gate>
  source: { data: string, calls: number }
} {
  const source = { data: 'old', calls: 0 }
  const g = gate()
  const load = app.cache.wrap(async (...args: A) => {
    source.calls++
    const seen = read === undefined ? source.data : read(source.data, ...args)
    await g.pauseFirst()
    return seen
  }, options)
  return { load, g, source }
}

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('memoizes: the second call with the same arguments does not run fn', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      const getUser = app.cache.wrap(async (id: number) => ({ id, name: `user-${id}`, run: ++calls }), { key: (id) => `user:${id}` })

      t.same(await getUser(1), { id: 1, name: 'user-1', run: 1 })
      t.same(await getUser(1), { id: 1, name: 'user-1', run: 1 }, 'the stored result')
      t.equal(calls, 1)
      t.same(await getUser(2), { id: 2, name: 'user-2', run: 2 }, 'other arguments, other key')
      t.same(await getUser(1), { id: 1, name: 'user-1', run: 1 })
      t.same(await getUser(2), { id: 2, name: 'user-2', run: 2 })
      t.equal(calls, 2)

      if (redis !== undefined) {
        t.equal(await redis.exists(`${prefix}:{default}:v:w:user:1`), 1, 'stored as an application value of the default group')
        t.equal(await redis.sismember(`${prefix}:{default}:i`, `${prefix}:{default}:v:w:user:1`), 1, 'indexed in its group')
      }
    })

    t.test('the key function sees every argument', async (t) => {
      const { app } = await open(t, backend)
      let calls = 0
      const add = app.cache.wrap(async (a: number, b: number) => { calls++; return a + b }, { key: (a, b) => `add:${a}:${b}` })
      t.equal(await add(1, 2), 3)
      t.equal(await add(2, 1), 3)
      t.equal(await add(1, 2), 3)
      t.equal(await add(2, 1), 3)
      t.equal(await add(1, 3), 4)
      t.equal(calls, 3)
    })

    t.test('100 concurrent calls with the same key run fn exactly once, and all get its value', async (t) => {
      const { app } = await open(t, backend)
      let calls = 0
      const g = gate()
      const load = app.cache.wrap(async (id: string) => {
        calls++
        g.enter()
        await g.wait
        return { id, loaded: calls }
      }, { key: (id) => `item:${id}` })

      const all = Promise.all(Array.from({ length: 100 }, async () => await load('a')))
      await g.entered
      g.release()
      const results = await all
      t.equal(calls, 1, 'one run for 100 callers')
      t.equal(results.length, 100)
      t.ok(results.every((r) => r.id === 'a' && r.loaded === 1), 'every caller got the value')
      t.same(await load('a'), { id: 'a', loaded: 1 }, 'and it was stored')
      t.equal(calls, 1)

      // distinct keys are not merged: 10 keys x 10 callers = 10 runs
      let runs = 0
      const square = app.cache.wrap(async (n: number) => { runs++; await sleep(5); return n * n }, { key: (n) => `sq:${n}` })
      const many = await Promise.all(Array.from({ length: 100 }, async (_, i) => await square(i % 10)))
      t.same(many, Array.from({ length: 100 }, (_, i) => (i % 10) ** 2))
      t.equal(runs, 10)
    })

    t.test('a rejected fn is not cached: every caller of that flight rejects, the next call runs fn again', async (t) => {
      const { app } = await open(t, backend)
      let calls = 0
      const flaky = app.cache.wrap(async (id: number) => {
        calls++
        await sleep(5)
        if (calls === 1) throw new Error('db down')
        return { id, calls }
      }, { key: (id) => `flaky:${id}` })

      const failed = await Promise.allSettled(Array.from({ length: 5 }, async () => await flaky(1)))
      t.equal(calls, 1, 'one flight for 5 callers')
      t.ok(failed.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'db down'), 'all of them rejected with fn\'s error')

      t.same(await flaky(1), { id: 1, calls: 2 }, 'the failure was not stored')
      t.same(await flaky(1), { id: 1, calls: 2 }, 'the success was')
      t.equal(calls, 2)

      let syncCalls = 0
      const throwsSync = app.cache.wrap((): Promise<number> => { syncCalls++; throw new TypeError('sync throw') }, { key: () => 'sync' })
      await t.rejects(throwsSync(), { message: 'sync throw' }, 'a synchronous throw becomes a rejection')
      await t.rejects(throwsSync(), { message: 'sync throw' })
      t.equal(syncCalls, 2, 'and is not cached either')
    })

    t.test('evictGroup drops the results of that group (routes of the group too), not of others', async (t) => {
      const { app } = await open(t, backend)
      const calls = { users: 0, orders: 0, route: 0 }
      const user = app.cache.wrap(async (id: number) => ({ id, run: ++calls.users }), { key: (id) => `user:${id}`, group: 'users' })
      const order = app.cache.wrap(async (id: number) => ({ id, run: ++calls.orders }), { key: (id) => `order:${id}`, group: 'orders' })
      app.get('/users', { config: { cache: { group: 'users' } } }, async () => ({ run: ++calls.route }))
      app.post('/users', { config: { cache: { evict: 'users' } } }, async () => ({ ok: true }))

      await user(1)
      await user(2)
      await order(1)
      await app.inject('/users')
      t.equal(await app.cache.evictGroup('users'), 3, 'two values and one entry')
      t.same(await user(1), { id: 1, run: 3 })
      t.same(await user(2), { id: 2, run: 4 })
      t.same(await order(1), { id: 1, run: 1 }, 'another group is untouched')
      t.equal((await app.inject('/users')).headers['x-cache'], 'MISS', 'the route entry of the group went with it')

      // a write route that evicts the group drops wrapped results as well
      t.equal((await app.inject({ method: 'POST', url: '/users' })).statusCode, 200)
      t.same(await user(1), { id: 1, run: 5 })
      t.same(await order(1), { id: 1, run: 1 })
      t.same(calls, { users: 5, orders: 1, route: 2 })
    })

    t.test('evictTag drops the results carrying the tag, across groups; tags as an array or a function of the arguments', async (t) => {
      const { app } = await open(t, backend)
      const calls = { product: 0, list: 0, route: 0 }
      const product = app.cache.wrap(async (id: number) => ({ id, run: ++calls.product }), {
        key: (id) => `product:${id}`,
        group: 'products',
        tags: (id) => [`product:${id}`, 'catalog']
      })
      const list = app.cache.wrap(async () => ({ run: ++calls.list }), { key: () => 'list', group: 'lists', tags: ['catalog'] })
      app.get('/catalog', { config: { cache: { group: 'pages', tags: ['catalog'] } } }, async () => ({ run: ++calls.route }))

      await product(1)
      await product(2)
      await list()
      await app.inject('/catalog')

      t.equal(await app.cache.evictTag('product:1'), 1)
      t.same(await product(1), { id: 1, run: 3 }, 'the tagged result is recomputed')
      t.same(await product(2), { id: 2, run: 2 }, 'its sibling is not')
      t.same(await list(), { run: 1 })

      t.equal(await app.cache.evictTag('catalog'), 4, 'two products, the list and the page, in three groups')
      t.same(await product(1), { id: 1, run: 4 })
      t.same(await product(2), { id: 2, run: 5 })
      t.same(await list(), { run: 2 })
      t.equal((await app.inject('/catalog')).headers['x-cache'], 'MISS')
      t.equal(await app.cache.evictTag('nothing-carries-this'), 0)
      t.same(calls, { product: 5, list: 2, route: 2 })
    })

    t.test('namespace: the same key and group in two namespaces are two results', async (t) => {
      const { app } = await open(t, backend)
      let calls = 0
      const v1 = app.cache.wrap(async () => `v1-${++calls}`, { key: () => 'same', group: 'g', namespace: 'v1' })
      const v2 = app.cache.wrap(async () => `v2-${++calls}`, { key: () => 'same', group: 'g', namespace: 'v2' })
      t.equal(await v1(), 'v1-1')
      t.equal(await v2(), 'v2-2')
      t.equal(await v1(), 'v1-1')
      t.equal(await v2(), 'v2-2')
      await app.cache.evictGroup('g', { namespace: 'v1' })
      t.equal(await v1(), 'v1-3')
      t.equal(await v2(), 'v2-2', 'the group of the other namespace stays')
    })

    t.test('ttl is honoured; ttl 0 keeps the result', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      const short = app.cache.wrap(async () => ++calls, { key: () => 'short', ttl: 1 })
      const forever = app.cache.wrap(async () => ++calls, { key: () => 'forever', ttl: 0 })
      t.equal(await short(), 1)
      t.equal(await forever(), 2)
      t.equal(await short(), 1)
      if (redis !== undefined) {
        const pttl = await redis.pttl(`${prefix}:{default}:v:w:short`)
        t.ok(pttl > 0 && pttl <= 1000, `short expires within its ttl (pttl ${pttl})`)
        t.equal(await redis.pttl(`${prefix}:{default}:v:w:forever`), -1, 'ttl 0 sets no expiry')
      }
      await sleep(1100)
      t.equal(await short(), 3, 'expired after its ttl, fn ran again')
      t.equal(await forever(), 2)
      t.equal(calls, 3)
    })

    t.test('bad input throws a TypeError', async (t) => {
      const { app } = await open(t, backend)
      const fn = async (id: number): Promise<number> => id
      const key = (id: number): string => `k:${id}`
      const wrap = app.cache.wrap.bind(app.cache) as (fn: unknown, options: unknown) => unknown
      t.throws(() => wrap(undefined, { key }), TypeError, 'no function')
      t.throws(() => wrap('fn', { key }), TypeError, 'fn not a function')
      t.throws(() => wrap(fn, undefined), TypeError, 'no options')
      t.throws(() => wrap(fn, null), TypeError, 'null options')
      t.throws(() => wrap(fn, {}), TypeError, 'no key function')
      t.throws(() => wrap(fn, { key: 'k' }), TypeError, 'key not a function')
      t.throws(() => wrap(fn, { key, ttl: -1 }), TypeError, 'negative ttl')
      t.throws(() => wrap(fn, { key, ttl: 1.5 }), TypeError, 'fractional ttl')
      t.throws(() => wrap(fn, { key, group: 'a{b}' }), TypeError, 'group with a brace')
      t.throws(() => wrap(fn, { key, namespace: 'a b' }), TypeError, 'namespace with a space')
      t.throws(() => wrap(fn, { key, tags: ['ok', 'bad tag'] }), TypeError, 'a bad tag name in a tag array, found when wrapping')

      // what only a call can tell: the call rejects with a TypeError
      let calls = 0
      const badTags = app.cache.wrap(async (id: number) => { calls++; return id }, { key, tags: (id) => [`bad {tag} ${id}`] })
      await t.rejects(badTags(1), TypeError, 'a tag function returning a bad name')
      const emptyKey = app.cache.wrap(async (id: number) => { calls++; return id }, { key: () => '' })
      await t.rejects(emptyKey(1), TypeError, 'a key function returning an empty string')
      const numberKey = app.cache.wrap(async (id: number) => { calls++; return id }, { key: ((id: number) => id) as unknown as (id: number) => string })
      await t.rejects(numberKey(1), TypeError, 'a key function returning a number')
      t.equal(calls, 0, 'no valid key or tags, no run: both are checked before fn runs')
    })

    t.test('values of every msgpack type round-trip', async (t) => {
      const { app } = await open(t, backend)
      const date = new Date('2024-03-31T01:30:00.123Z')
      const values: Record<string, unknown> = {
        object: { a: 1, nested: { b: [1, 2, { c: 'd' }], empty: {} }, list: [] },
        array: [1, 'two', null, true, [3, [4]], { five: 5 }],
        buffer: Buffer.from([0, 1, 2, 253, 254, 255]),
        date,
        null: null,
        undefined,
        string: 'héllo wörld ✓ 日本 \u0000 end',
        empty: '',
        integer: -42,
        large: Number.MAX_SAFE_INTEGER,
        float: 3.141592653589793,
        boolean: false,
        mixed: { at: date, bytes: Buffer.from('bytes'), none: null, flags: [true, false] }
      }
      let calls = 0
      const get = app.cache.wrap(async (name: string) => { calls++; return values[name] }, { key: (name) => `type:${name}` })
      for (const name of Object.keys(values)) {
        const first = await get(name)
        const stored = await get(name)
        t.same(stored, values[name], `${name} round-trips`)
        t.equal(typeof stored, typeof first, `${name}: same type`)
      }
      t.equal(calls, Object.keys(values).length, 'every value came from the store the second time (null and undefined included)')

      const buffer = await get('buffer')
      t.ok(Buffer.isBuffer(buffer), 'a Buffer comes back as a Buffer')
      t.same([...(buffer as Buffer)], [0, 1, 2, 253, 254, 255])
      const when = await get('date')
      t.ok(when instanceof Date, 'a Date comes back as a Date')
      t.equal((when as Date).getTime(), date.getTime(), 'to the millisecond')
      const mixed = await get('mixed') as { at: Date, bytes: Buffer }
      t.ok(mixed.at instanceof Date && mixed.at.getTime() === date.getTime())
      t.ok(Buffer.isBuffer(mixed.bytes) && mixed.bytes.toString() === 'bytes')
      t.equal(await get('null'), null)
      t.equal(await get('undefined'), undefined)
      t.equal(calls, Object.keys(values).length)
    })

    t.test('race: an evictGroup while fn runs lets the caller have the result but does not store it', async (t) => {
      const { app } = await open(t, backend)
      const { load, g, source } = gatedLoader(app, { key: () => 'racy', group: 'race', ttl: 0 })

      const slow = load() // reads 'old', then waits
      await g.entered
      source.data = 'new'
      await app.cache.evictGroup('race')
      g.release()
      t.equal(await slow, 'old', 'the caller still gets its answer')
      t.equal(await load(), 'new', 'the pre-eviction result was not stored: fn ran again')
      t.equal(await load(), 'new')
      t.equal(source.calls, 2, 'and that one was stored')
    })

    t.test('race: a write route evicting the group while fn runs — same guarantee', async (t) => {
      const { app } = await open(t, backend)
      const { load, g, source } = gatedLoader(app, { key: () => 'racy', group: 'race', ttl: 0 })
      app.post('/race', { config: { cache: { evict: 'race' } } }, async () => { source.data = 'new'; return { ok: true } })

      const slow = load()
      await g.entered
      t.equal((await app.inject({ method: 'POST', url: '/race' })).statusCode, 200)
      g.release()
      t.equal(await slow, 'old')
      t.equal(await load(), 'new')
      t.equal(source.calls, 2)
    })

    t.test('race: an evictTag of one of the result\'s tags while fn runs does not let it be stored', async (t) => {
      const { app } = await open(t, backend)
      const { load, g, source } = gatedLoader<[number]>(app,
        { key: (id) => `p:${id}`, group: 'products', tags: (id) => [`product:${id}`], ttl: 0 },
        (data, id) => `${data}-${id}`)

      const slow = load(1)
      await g.entered
      source.data = 'new'
      await app.cache.evictTag('product:1')
      g.release()
      t.equal(await slow, 'old-1')
      t.equal(await load(1), 'new-1', 'the result read before the tag eviction was not stored')
      t.equal(source.calls, 2)
    })

    t.test('race: a call made after an eviction does not join a flight that started before it', async (t) => {
      const { app } = await open(t, backend)
      const { load, g, source } = gatedLoader(app, { key: () => 'flight', group: 'flights', ttl: 0 })

      const before = load()
      await g.entered
      source.data = 'new'
      await app.cache.evictGroup('flights') // the application wrote, then invalidated
      const after = load() // …then reads: it must see its own write
      g.release()
      t.equal(await before, 'old')
      t.equal(await after, 'new', 'read-your-writes: the later caller got data read after the eviction')
      t.equal(source.calls, 2)
    })
  })
}
