import t from 'tap'
import Fastify from 'fastify'
import httpCache from '../index.js'
import { startCluster } from './helpers/cluster.js'
import { until } from './helpers/until.js'

// The admin API on a real Redis Cluster: each group lives on its own slot (its hash tag), so its
// listing pages through that one node's index; health pings every master.

t.test('cluster: listings page through each group exactly once, health covers every master', async (t) => {
  const cluster = await startCluster(t, { masters: 3, replicasPerMaster: 0 })
  const client = cluster.client()
  const app = Fastify()
  await app.register(httpCache, { redis: client, prefix: 'acl', timeout: 1000, admin: { insecure: true } })
  t.teardown(() => app.close())
  app.get('/items/:id', { config: { cache: { group: 'items', tags: ['all-items'] } } }, async (request) => ({ id: (request.params as { id: string }).id }))
  await app.ready()

  // groups whose slots land on different masters
  const groups: string[] = []
  const owners = new Set<number>()
  for (let i = 0; groups.length < 3; i++) {
    const owner = (await cluster.masterOf(cluster.slotOf(`{g${i}}`))).port
    if (!owners.has(owner)) {
      owners.add(owner)
      groups.push(`g${i}`)
    }
  }
  const sizes = [3, 60, 250] // listpack-sized, and hash tables walked in runs
  await Promise.all(groups.map(async (group, i) => {
    for (let n = 0; n < sizes[i]; n++) await app.cache.set(`${group}-${n}`, n, { group, tags: [`t-${group}`] })
  }))
  for (const [i, group] of groups.entries()) {
    for (const limit of [1, 8, 1000]) {
      const keys: string[] = []
      let cursor: string | null = ''
      let pages = 0
      while (cursor !== null) {
        const res = await app.inject(`/_cache/groups/${group}/entries?limit=${limit}${cursor === '' ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)
        t.equal(res.statusCode, 200)
        const body = res.json() as { entries: Array<{ key: string, tags: string[] }>, cursor: string | null }
        if (body.entries.length > limit) t.fail(`a page of ${body.entries.length} over limit ${limit}`)
        keys.push(...body.entries.map((e) => e.key))
        if (body.entries.some((e) => e.tags[0] !== `t-${group}`)) t.fail('tags listed')
        cursor = body.cursor
        if (++pages > 1000) throw new Error('no end')
      }
      t.equal(keys.length, sizes[i], `${group}, limit ${limit}: every key`)
      t.equal(new Set(keys).size, sizes[i], `${group}, limit ${limit}: each once`)
      t.ok(keys.every((k) => k.startsWith(`acl:{${group}}:v:`)), 'only its own keys')
    }
  }

  await until('/items/1 cached', async () => (await app.inject('/items/1')).headers['x-cache'] === 'HIT')
  const entry = await app.inject('/_cache/entry?url=/items/1')
  t.equal(entry.statusCode, 200)
  t.match(entry.json(), { url: 'http://localhost/items/1', status: 200, tags: ['all-items'] })

  const health = await app.inject('/_cache/health')
  t.equal(health.statusCode, 200)
  t.match(health.json(), { store: 'redis', ok: true, breaker: 'closed' })

  t.same((await app.inject({ method: 'DELETE', url: `/_cache/groups/${groups[2]}` })).json(), { evicted: sizes[2] })
  t.same((await app.inject(`/_cache/groups/${groups[2]}/entries`)).json(), { entries: [], cursor: null })
  t.same((await app.inject({ method: 'DELETE', url: `/_cache/tags/t-${groups[1]}` })).json(), { evicted: sizes[1] })
  t.same((await app.inject({ method: 'POST', url: '/_cache/clear' })).json(), { evicted: 0 }, 'Redis counts nothing on the call')
  t.same((await app.inject(`/_cache/groups/${groups[0]}/entries`)).json(), { entries: [], cursor: null }, 'the entries are gone at once')

  // a master down: health says so (every master is pinged, not only one)
  await cluster.kill([...owners][1])
  await until('health to report the dead master', async () => {
    const res = await app.inject('/_cache/health')
    return res.statusCode === 503 && (res.json() as { ok: boolean }).ok === false
  }, 15_000)
})
