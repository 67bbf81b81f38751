import t from 'tap'
import { backends, build } from './helpers/app.js'
import { gate } from './helpers/gate.js'

// Write routes that declare what they invalidate, run against both stores.
for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('a 2xx write evicts its groups before the response is released; other groups stay', async (t) => {
      const app = await build(t, backend)
      let version = 1
      app.get('/products/:id', { config: { cache: { group: 'products' } } }, async () => ({ version }))
      app.get('/prices', { config: { cache: { group: 'prices' } } }, async () => ({ version }))
      app.get('/users', { config: { cache: { group: 'users' } } }, async () => ({ version }))
      app.post('/products', { config: { cache: { evict: 'products' } } }, async () => { version++; return { ok: true } })
      app.put('/catalog', { config: { cache: { evict: ['products', 'prices'] } } }, async () => { version++; return { ok: true } })
      for (const url of ['/products/1', '/products/2', '/prices', '/users']) await app.inject(url)

      t.equal((await app.inject({ method: 'POST', url: '/products' })).statusCode, 200)
      const read = await app.inject('/products/1')
      t.equal(read.headers['x-cache'], 'MISS', 'the write\'s own client reads fresh data right after')
      t.same(read.json(), { version: 2 })
      t.equal((await app.inject('/prices')).headers['x-cache'], 'HIT')
      t.same((await app.inject('/users')).json(), { version: 1 }, 'groups not named are untouched')

      await app.inject({ method: 'PUT', url: '/catalog' })
      t.same((await app.inject('/products/2')).json(), { version: 3 })
      t.same((await app.inject('/prices')).json(), { version: 3 })
      t.equal((await app.inject('/users')).headers['x-cache'], 'HIT')
    })

    t.test('a thrown error or a non-2xx write evicts nothing', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/things', { config: { cache: { group: 'things' } } }, async () => ({ calls: ++calls }))
      app.post('/things', { config: { cache: { evict: 'things' } } }, async () => { throw new Error('db down') })
      app.put('/things', { config: { cache: { evict: 'things' } } }, async (req, reply) => reply.code(409).send({ conflict: true }))
      app.delete('/things', { config: { cache: { evict: { self: true } } } }, async (req, reply) => reply.code(404).send())
      await app.inject('/things')
      t.equal((await app.inject({ method: 'POST', url: '/things' })).statusCode, 500)
      t.equal((await app.inject({ method: 'PUT', url: '/things' })).statusCode, 409)
      t.equal((await app.inject({ method: 'DELETE', url: '/things' })).statusCode, 404)
      const read = await app.inject('/things')
      t.equal(read.headers['x-cache'], 'HIT')
      t.equal(calls, 1)
    })

    t.test('evict: { self: true } drops the GET entry of the same URL only', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/items/:id', { config: { cache: { group: 'items' } } }, async (req) => ({ url: req.url, calls: ++calls }))
      app.delete('/items/:id', { config: { cache: { evict: { self: true } } } }, async (req, reply) => reply.code(204).send())
      app.patch('/items/:id', { config: { cache: { evict: { self: true, groups: ['lists'] } } } }, async () => ({ ok: true }))
      app.get('/lists', { config: { cache: { group: 'lists' } } }, async () => ({ calls: ++calls }))
      for (const url of ['/items/1', '/items/2', '/lists']) await app.inject(url)

      t.equal((await app.inject({ method: 'DELETE', url: '/items/1' })).statusCode, 204)
      t.equal((await app.inject('/items/1')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/items/2')).headers['x-cache'], 'HIT', 'the sibling stays')

      await app.inject({ method: 'PATCH', url: '/items/2' })
      t.equal((await app.inject('/items/2')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/lists')).headers['x-cache'], 'MISS')
    })

    t.test('put: true writes through, so the next GET is a HIT with the new body', async (t) => {
      const app = await build(t, backend)
      const db: Record<string, { name: string }> = { 1: { name: 'old' } }
      let reads = 0
      app.get('/profiles/:id', { config: { cache: { group: 'profiles', ttl: 120 } } }, async (req) => {
        reads++
        return db[(req.params as { id: string }).id]
      })
      app.put('/profiles/:id', { config: { cache: { put: true } } }, async (req) => {
        const id = (req.params as { id: string }).id
        db[id] = req.body as { name: string }
        return db[id]
      })
      app.put('/bodiless/:id', { config: { cache: { put: true, group: 'profiles' } } }, async (req, reply) => reply.code(204).send())
      t.same((await app.inject('/profiles/1')).json(), { name: 'old' })

      const put = await app.inject({ method: 'PUT', url: '/profiles/1', payload: { name: 'new' } })
      t.equal(put.statusCode, 200)
      const read = await app.inject('/profiles/1')
      t.equal(read.headers['x-cache'], 'HIT')
      t.same(read.json(), { name: 'new' })
      t.equal(read.headers['content-type'], 'application/json; charset=utf-8')
      t.match(read.headers['cache-control'], /^max-age=(119|120)$/, 'the GET route\'s ttl')
      t.match(read.headers.etag, /^W\//)
      t.equal(reads, 1, 'the GET handler never ran again')

      // a write-through with no body still drops the old entry
      await app.inject('/bodiless/1')
      await app.inject({ method: 'PUT', url: '/bodiless/1' })
      t.equal((await app.inject('/bodiless/1')).statusCode, 404)
    })

    t.test('tags: evictTag drops every entry carrying the tag, across groups, and nothing else', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      const id = (req: any): string => req.params.id
      app.get('/products/:id', { config: { cache: { group: 'products', tags: (req) => [`product:${id(req)}`] } } }, async () => ({ calls: ++calls }))
      app.get('/reviews/:id', { config: { cache: { group: 'reviews', tags: (req) => [`product:${id(req)}`, 'reviews'] } } }, async () => ({ calls: ++calls }))
      app.get('/home', { config: { cache: { tags: ['home'] } } }, async () => ({ calls: ++calls }))
      app.put('/products/:id', { config: { cache: { tags: (req) => [`product:${id(req)}`] } } }, async () => ({ ok: true }))
      for (const url of ['/products/1', '/products/2', '/reviews/1', '/reviews/2', '/home']) await app.inject(url)

      t.equal(await app.cache.evictTag('product:1'), 2, 'one entry in each group')
      t.equal(await app.cache.evictTag('product:1'), 0, 'nothing left to evict')
      t.equal((await app.inject('/products/1')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/reviews/1')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/products/2')).headers['x-cache'], 'HIT')
      t.equal((await app.inject('/reviews/2')).headers['x-cache'], 'HIT')

      await app.inject({ method: 'PUT', url: '/products/2' })
      t.equal((await app.inject('/products/2')).headers['x-cache'], 'MISS', 'a write route evicts its tags')
      t.equal((await app.inject('/reviews/2')).headers['x-cache'], 'MISS')
      t.equal((await app.inject('/home')).headers['x-cache'], 'HIT')

      const evicted = await app.cache.evictGroup('reviews')
      t.equal(evicted, 2, `tag evictions kept the group index right (${evicted})`)
      // the memory store counts what it drops; Redis what the tag's sets indexed (O(1): it does not look)
      t.equal(await app.cache.evictTag('reviews'), backend.name === 'redis' ? 2 : 0, 'entries gone with their group are counted by what indexed them')
      t.equal((await app.inject('/reviews/1')).headers['x-cache'], 'MISS')
      await app.cache.set('v', 1, { tags: ['home'] })
      t.equal(await app.cache.evictTag('home'), 2, 'values carry tags too')
      await t.rejects(app.cache.evictTag('bad tag'), TypeError)
    })

    t.test('no stale resurrection through tags: a miss racing evictTag is not stored, even as the first of its tag', async (t) => {
      const app = await build(t, backend)
      let value = 'old'
      const g = gate()
      app.get('/tagged/:id', { config: { cache: { group: 'fresh-group', tags: (req: any) => [`item:${req.params.id}`] } } }, async () => {
        const seen = value
        await g.pauseFirst()
        return { value: seen }
      })
      const slow = app.inject('/tagged/1')
      await g.entered
      value = 'new'
      t.equal(await app.cache.evictTag('item:1'), 0, 'nothing was stored under the tag yet')
      g.release()
      t.same((await slow).json(), { value: 'old' })
      const next = await app.inject('/tagged/1')
      t.equal(next.headers['x-cache'], 'MISS', 'the answer computed before the eviction was not stored')
      t.same(next.json(), { value: 'new' })
      t.equal((await app.inject('/tagged/1')).headers['x-cache'], 'HIT')
    })

    t.test('tags that a tag function gets wrong leave the response served and uncached', async (t) => {
      const app = await build(t, backend)
      let calls = 0
      app.get('/bad-tags', { config: { cache: { tags: () => ['no spaces allowed'] } } }, async () => ({ calls: ++calls }))
      app.get('/throws', { config: { cache: { tags: () => { throw new Error('boom') } } } }, async () => ({ calls: ++calls }))
      for (const url of ['/bad-tags', '/bad-tags', '/throws', '/throws']) {
        const res = await app.inject(url)
        t.equal(res.statusCode, 200)
        t.equal(res.headers['x-cache'], 'MISS')
      }
      t.equal(calls, 4)
    })

    t.test('autoInvalidate: a write evicts its path (any query) and its parents, never siblings', async (t) => {
      const app = await build(t, backend, { autoInvalidate: true })
      let calls = 0
      const get = (url: string, cache: object = {}): void => { app.get(url, { config: { cache } }, async (req) => ({ url: req.url, calls: ++calls })) }
      get('/spaces')
      get('/spaces/:space')
      get('/spaces/:space/items')
      get('/spaces/:space/items/:item', { group: 'items' })
      get('/spaces/:space/pinned', { autoInvalidate: false })
      app.put('/spaces/:space/items/:item', async () => ({ ok: true }))
      app.post('/spaces/:space/items', { config: { cache: false } }, async () => ({ ok: true }))
      const urls = ['/spaces', '/spaces/123', '/spaces/124', '/spaces/123/items', '/spaces/123/items/456', '/spaces/123/items/456?full=1',
        '/spaces/123/items/457', '/spaces/124/items/456', '/spaces/123/pinned']
      for (const url of urls) await app.inject(url)

      t.equal((await app.inject({ method: 'PUT', url: '/spaces/123/items/456?notify=0' })).statusCode, 200)
      const state = async (url: string): Promise<string> => (await app.inject(url)).headers['x-cache'] as string
      t.equal(await state('/spaces/123/items/456'), 'MISS')
      t.equal(await state('/spaces/123/items/456?full=1'), 'MISS', 'any query of the path')
      t.equal(await state('/spaces/123/items'), 'MISS')
      t.equal(await state('/spaces/123'), 'MISS')
      t.equal(await state('/spaces'), 'MISS')
      t.equal(await state('/spaces/124'), 'HIT', 'a sibling space is untouched')
      t.equal(await state('/spaces/123/items/457'), 'HIT', 'a sibling item is untouched')
      t.equal(await state('/spaces/124/items/456'), 'HIT')
      t.equal(await state('/spaces/123/pinned'), 'HIT', 'routes opted out are not indexed by path')

      await app.inject({ method: 'POST', url: '/spaces/123/items' })
      t.equal(await state('/spaces/123/items'), 'HIT', 'a write route with config.cache: false evicts nothing')
    })

    t.test('without autoInvalidate, writes evict only what they declare', async (t) => {
      const app = await build(t, backend)
      app.get('/a/:id', { config: { cache: true } }, async () => 'a')
      app.put('/a/:id', async () => ({ ok: true }))
      await app.inject('/a/1')
      await app.inject({ method: 'PUT', url: '/a/1' })
      t.equal((await app.inject('/a/1')).headers['x-cache'], 'HIT')
    })

    t.test('write-through survives the tag and group evictions of the same write', async (t) => {
      const app = await build(t, backend)
      let name = 'old'
      const tags = (req: any): string[] => [`product:${req.params.id}`]
      app.get('/products/:id', { config: { cache: { group: 'products', tags } } }, async () => ({ name }))
      app.get('/products/:id/reviews', { config: { cache: { group: 'reviews', tags } } }, async () => ({ about: name }))
      app.get('/lists', { config: { cache: { group: 'lists' } } }, async () => ({ names: [name] }))
      app.put('/products/:id', { config: { cache: { put: true, tags, evict: 'lists' } } }, async () => { name = 'new'; return { name } })
      for (let round = 0; round < 5; round++) {
        for (const url of ['/products/2', '/products/2/reviews', '/lists']) await app.inject(url)
        await app.inject({ method: 'PUT', url: '/products/2' })
        const read = await app.inject('/products/2')
        t.equal(read.headers['x-cache'], 'HIT', `round ${round}: the written-through entry is there`)
        t.same(read.json(), { name: 'new' })
        t.equal((await app.inject('/products/2/reviews')).headers['x-cache'], 'MISS', 'the tag reached the other group')
        t.equal((await app.inject('/lists')).headers['x-cache'], 'MISS')
      }
    })

    t.test('no stale resurrection: a miss that read old data does not store it after a write evicted its group', async (t) => {
      const app = await build(t, backend)
      let value = 'old'
      const g = gate()
      app.get('/race', { config: { cache: { group: 'race', ttl: 0 } } }, async () => {
        const seen = value
        await g.pauseFirst()
        return { value: seen }
      })
      app.post('/race', { config: { cache: { evict: 'race' } } }, async () => { value = 'new'; return { ok: true } })

      const slow = app.inject('/race') // misses, reads 'old', then waits
      await g.entered
      await app.inject({ method: 'POST', url: '/race' }) // writes and evicts meanwhile
      g.release()
      t.same((await slow).json(), { value: 'old' }, 'the slow request still gets its answer')
      const next = await app.inject('/race')
      t.equal(next.headers['x-cache'], 'MISS', 'its pre-write response was not stored')
      t.same(next.json(), { value: 'new' })
      t.equal((await app.inject('/race')).headers['x-cache'], 'HIT')
    })
  })
}

// The resurrection race needs the store to outlive one app: checked across two instances sharing Redis.
t.test('no stale resurrection across instances (Redis)', async (t) => {
  const redisBackend = backends(t)[1]
  const options = await redisBackend.options(t)
  const { default: Fastify } = await import('fastify')
  const { default: httpCache } = await import('../index.js')
  const make = async (): Promise<ReturnType<typeof Fastify>> => {
    const app = Fastify()
    await app.register(httpCache, options)
    t.teardown(() => app.close())
    return app
  }
  let value = 'old'
  const g = gate()
  const reader = await make()
  reader.get('/race', { config: { cache: { group: 'race', ttl: 0 } } }, async () => {
    const seen = value
    await g.pauseFirst()
    return { value: seen }
  })
  const writer = await make()
  writer.post('/race', { config: { cache: { evict: 'race' } } }, async () => { value = 'new'; return { ok: true } })

  const slow = reader.inject('/race')
  await g.entered
  await writer.inject({ method: 'POST', url: '/race' })
  g.release()
  t.same((await slow).json(), { value: 'old' })
  const next = await reader.inject('/race')
  t.equal(next.headers['x-cache'], 'MISS', 'the pre-write response was not stored')
  t.same(next.json(), { value: 'new' })
  t.equal((await reader.inject('/race')).headers['x-cache'], 'HIT')
})
