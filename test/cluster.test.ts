import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyRedis from '@fastify/redis'
import type { Cluster, Redis } from 'ioredis'
import httpCache from '../index.js'
import type { HttpCacheOptions } from '../lib/types.js'
import { startCluster, type ClusterNode, type TestCluster } from './helpers/cluster.js'
import type { TapLike } from './helpers/redis.js'
import { until } from './helpers/until.js'

// The plugin on a real local Redis Cluster (3 masters, 1 replica each): groups on different masters,
// every eviction kind across them, and a master SIGKILLed under load.

const TIMEOUT = 500 // ms bound of each Redis call: above a loaded CI machine's hiccups, well below a failover

let cluster: TestCluster
let shared: Cluster
let prefixes = 0
const nodeClients = new Map<number, Redis>()

t.before(async () => {
  cluster = await startCluster(t, { masters: 3, replicasPerMaster: 1 })
  t.comment(`cluster of ${cluster.nodes.length} nodes formed in ${cluster.startupMs} ms`)
  shared = cluster.client()
})

const masters = (): ClusterNode[] => cluster.nodes.filter((n) => n.role === 'master')
const slotOfGroup = (group: string): number => cluster.slotOf(`{${group}}`)

/** Group names whose {group} slots land on different masters (one per master, as the cluster was formed). */
function groupsOnDistinctMasters (names: string[]): string[] {
  const taken = new Set<number>()
  return names.map((name) => {
    for (let i = 0; ; i++) {
      const candidate = i === 0 ? name : `${name}-${i}`
      const slot = slotOfGroup(candidate)
      const owner = masters().find((m) => m.slots !== undefined && m.slots[0] <= slot && slot <= m.slots[1]) as ClusterNode
      if (!taken.has(owner.port)) {
        taken.add(owner.port)
        return candidate
      }
    }
  })
}

/** A plain connection to one node, to see which keys it holds. */
function on (port: number): Redis {
  let c = nodeClients.get(port)
  if (c === undefined) nodeClients.set(port, c = cluster.node(port))
  return c
}

/** Keys matching `pattern` on every live master, by port. */
async function keysByMaster (pattern: string): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>()
  for (const m of masters().filter((n) => n.alive)) out.set(m.port, (await on(m.port).keys(pattern)).sort())
  return out
}

async function build (t: TapLike, options: HttpCacheOptions = {}): Promise<{ app: FastifyInstance, prefix: string }> {
  const prefix = `c${++prefixes}`
  const app = Fastify()
  await app.register(httpCache, { redis: shared, prefix, timeout: TIMEOUT, ...options })
  t.teardown(() => app.close())
  return { app, prefix }
}

/** Routes `/<group>/:id` for each group, counting handler runs per group. */
function groupRoutes (app: FastifyInstance, groups: string[], extra: Record<string, unknown> = {}): Record<string, number> {
  const calls: Record<string, number> = {}
  for (const group of groups) {
    calls[group] = 0
    app.get(`/${group}/:id`, { config: { cache: { group, ...extra } } }, async (req) => {
      calls[group]++
      return { group, id: (req.params as { id: string }).id }
    })
  }
  return calls
}

const state = async (app: FastifyInstance, url: string): Promise<string> => String((await app.inject(url)).headers['x-cache'])

t.test('the cluster: three masters with one replica each, slots split evenly', async (t) => {
  t.equal(masters().length, 3)
  const replicas = cluster.nodes.filter((n) => n.role === 'replica')
  t.equal(replicas.length, 3)
  t.same(replicas.map((r) => r.master).sort(), masters().map((m) => m.port).sort(), 'one replica per master')
  t.same(masters().map((m) => m.slots), [[0, 5460], [5461, 10922], [10923, 16383]])
  for (const m of masters()) t.equal((await cluster.masterOf(m.slots?.[0] as number)).port, m.port)
  t.ok(cluster.startupMs < 10_000, `formed in ${cluster.startupMs} ms`)
})

t.test('MISS then HIT (handler once), 304 on If-None-Match, HEAD from the entry; the entry on its group\'s master', async (t) => {
  const { app, prefix } = await build(t)
  const [group] = groupsOnDistinctMasters(['products'])
  let calls = 0
  app.get('/products/:id', { config: { cache: { group } } }, async (req) => ({ id: (req.params as { id: string }).id, calls: ++calls }))

  const first = await app.inject('/products/1')
  t.equal(first.statusCode, 200)
  t.equal(first.headers['x-cache'], 'MISS')
  const second = await app.inject('/products/1')
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.body, first.body)
  t.equal(calls, 1, 'the handler ran once')
  t.equal(app.cache.storeName, 'redis')

  const etag = second.headers.etag as string
  t.match(etag, /^W\/"/)
  const revalidated = await app.inject({ url: '/products/1', headers: { 'if-none-match': etag } })
  t.equal(revalidated.statusCode, 304)
  t.equal(revalidated.headers['x-cache'], 'HIT')
  t.equal(revalidated.body, '')
  const head = await app.inject({ method: 'HEAD', url: '/products/1' })
  t.equal(head.statusCode, 200)
  t.equal(head.headers['x-cache'], 'HIT')
  t.equal(calls, 1)

  const owner = await cluster.masterOf(slotOfGroup(group))
  const keys = await keysByMaster(`${prefix}:{${group}}:e:*`)
  t.equal(keys.get(owner.port)?.length, 1, `the entry is on ${owner.port}, the master of slot ${slotOfGroup(group)}`)
  for (const [port, found] of keys) if (port !== owner.port) t.same(found, [], `nothing on ${port}`)
  t.equal(cluster.slotOf(keys.get(owner.port)?.[0] as string), slotOfGroup(group), 'the key hashes on its {group}')
})

t.test('through @fastify/redis: the plugin picks up fastify.redis (a Cluster)', async (t) => {
  const client = cluster.client()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRedis, { client })
  const prefix = `c${++prefixes}`
  await app.register(httpCache, { prefix, timeout: TIMEOUT })
  const [a, b] = groupsOnDistinctMasters(['news', 'blog'])
  const calls = groupRoutes(app, [a, b])
  await app.ready()
  t.equal(app.cache.storeName, 'redis')

  for (const group of [a, b]) {
    t.equal(await state(app, `/${group}/1`), 'MISS')
    t.equal(await state(app, `/${group}/1`), 'HIT')
    t.equal(calls[group], 1)
  }
  const keys = await keysByMaster(`${prefix}:{*}:e:*`)
  t.equal([...keys.values()].filter((k) => k.length === 1).length, 2, 'one entry on each of two masters')
  t.equal(await app.cache.evictGroup(a), 1)
  t.equal(await state(app, `/${a}/1`), 'MISS')
  t.equal(await state(app, `/${b}/1`), 'HIT')
  t.equal(client.status, 'ready', 'the plugin does not own the client')
})

t.test('evictGroup on groups living on different masters: only the evicted group goes, on its own node', async (t) => {
  const { app, prefix } = await build(t)
  const groups = groupsOnDistinctMasters(['products', 'reviews', 'users'])
  const [a, b, c] = groups
  const owners = await Promise.all(groups.map(async (g) => (await cluster.masterOf(slotOfGroup(g))).port))
  t.equal(new Set(owners).size, 3, `groups ${groups.join(', ')} on masters ${owners.join(', ')}`)
  const calls = groupRoutes(app, groups)
  for (const g of groups) for (const id of [1, 2, 3]) await app.inject(`/${g}/${id}`)

  for (const [i, g] of groups.entries()) {
    const keys = await keysByMaster(`${prefix}:{${g}}:e:*`)
    t.equal(keys.get(owners[i])?.length, 3, `${g}: three entries on ${owners[i]}`)
    for (const [port, found] of keys) if (port !== owners[i]) t.same(found, [], `${g}: nothing on ${port}`)
  }

  t.equal(await app.cache.evictGroup(a), 3)
  // unreachable at once (its epoch moved); the keys are reclaimed behind the call
  await until(`${a}'s keys reclaimed`, async () => (await keysByMaster(`${prefix}:{${a}}:e:*`)).get(owners[0])?.length === 0)
  t.same((await keysByMaster(`${prefix}:{${a}}:e:*`)).get(owners[0]), [], `${a}'s entries are gone from ${owners[0]}`)
  t.equal((await keysByMaster(`${prefix}:{${b}}:e:*`)).get(owners[1])?.length, 3, `${b}'s entries are still on ${owners[1]}`)
  t.equal((await keysByMaster(`${prefix}:{${c}}:e:*`)).get(owners[2])?.length, 3, `${c}'s entries are still on ${owners[2]}`)
  for (const id of [1, 2, 3]) {
    t.equal(await state(app, `/${a}/${id}`), 'MISS', `${a}/${id} evicted`)
    t.equal(await state(app, `/${b}/${id}`), 'HIT', `${b}/${id} kept`)
    t.equal(await state(app, `/${c}/${id}`), 'HIT', `${c}/${id} kept`)
  }
  t.same(calls, { [a]: 6, [b]: 3, [c]: 3 })
  t.equal(await state(app, `/${a}/1`), 'HIT', 'the evicted group caches again')
  t.equal(await app.cache.evictGroup(a), 3)
  t.equal(await app.cache.evictGroup(a), 0, 'nothing left')
})

t.test('evict(url) under more origins than one script gets through: unreachable at once, swept on the group\'s master', async (t) => {
  const { app, prefix } = await build(t, { maxOrigins: 1000 })
  const [group] = groupsOnDistinctMasters(['hosts'])
  const owner = (await cluster.masterOf(slotOfGroup(group))).port
  let calls = 0
  app.get('/u', { config: { cache: { group } } }, async () => ({ calls: ++calls }))
  app.get('/w', { config: { cache: { group } } }, async () => ({ calls: ++calls }))
  const hosts = Array.from({ length: 200 }, (_, i) => `h${i}.test`)
  for (const host of hosts) for (const url of ['/u', '/w']) await app.inject({ url, headers: { host } })
  await until('stored', async () => (await keysByMaster(`${prefix}:{${group}}:e:*`)).get(owner)?.length === 2 * hosts.length)
  t.equal(await app.cache.evict('/u'), true)
  calls = 0
  for (const host of hosts.slice(0, 100)) {
    if ((await app.inject({ url: '/u', headers: { host } })).headers['x-cache'] !== 'MISS') t.fail(`/u served under ${host}`)
    if ((await app.inject({ url: '/w', headers: { host } })).headers['x-cache'] !== 'HIT') t.fail(`/w not served under ${host}`)
  }
  t.equal(calls, 100, 'the URL is unreachable at once; the other URL is served')
  await until('swept', async () => (await on(owner).exists(`${prefix}:{${group}}:R`)) === 0 && !/;[^@]/.test(await on(owner).get(`${prefix}:{${group}}:g`) ?? ''))
  const left = (await keysByMaster(`${prefix}:{${group}}:e:*`)).get(owner) ?? []
  t.equal(left.filter((k) => k.endsWith('/u')).length, 100, 'only the entries written since are left of the URL')
  t.equal(left.filter((k) => k.endsWith('/w')).length, hosts.length)
})

t.test('write routes with config.cache.evict across masters', async (t) => {
  const { app } = await build(t)
  const groups = groupsOnDistinctMasters(['products', 'prices', 'stock'])
  const [a, b, c] = groups
  let version = 1
  for (const g of groups) app.get(`/${g}`, { config: { cache: { group: g } } }, async () => ({ g, version }))
  app.get(`/${a}/:id`, { config: { cache: { group: a } } }, async (req) => ({ id: (req.params as { id: string }).id, version }))
  app.post(`/${a}`, { config: { cache: { evict: a } } }, async () => { version++; return { ok: true } })
  app.put('/catalog', { config: { cache: { evict: [b, c] } } }, async () => { version++; return { ok: true } })
  app.delete(`/${a}/:id`, { config: { cache: { evict: { self: true, groups: [c] } } } }, async (req, reply) => reply.code(204).send())
  app.patch('/fails', { config: { cache: { evict: [a, b, c] } } }, async (req, reply) => reply.code(409).send({ conflict: true }))
  const fill = async (): Promise<void> => { for (const url of [`/${a}`, `/${b}`, `/${c}`, `/${a}/1`, `/${a}/2`]) await app.inject(url) }
  await fill()

  t.equal((await app.inject({ method: 'POST', url: `/${a}` })).statusCode, 200)
  t.equal(await state(app, `/${a}`), 'MISS')
  t.equal(await state(app, `/${a}/1`), 'MISS')
  t.equal(await state(app, `/${b}`), 'HIT')
  t.equal(await state(app, `/${c}`), 'HIT')

  await fill()
  t.equal((await app.inject({ method: 'PUT', url: '/catalog' })).statusCode, 200)
  const read = await app.inject(`/${b}`)
  t.equal(read.headers['x-cache'], 'MISS')
  t.same(read.json(), { g: b, version: 3 }, 'the writer reads its own write')
  t.equal(await state(app, `/${c}`), 'MISS')
  t.equal(await state(app, `/${a}`), 'HIT')

  await fill()
  t.equal((await app.inject({ method: 'DELETE', url: `/${a}/1` })).statusCode, 204)
  t.equal(await state(app, `/${a}/1`), 'MISS', 'self')
  t.equal(await state(app, `/${a}/2`), 'HIT', 'the sibling stays')
  t.equal(await state(app, `/${c}`), 'MISS', 'the group named, on another master')
  t.equal(await state(app, `/${b}`), 'HIT')

  await fill()
  t.equal((await app.inject({ method: 'PATCH', url: '/fails' })).statusCode, 409)
  for (const g of groups) t.equal(await state(app, `/${g}`), 'HIT', `a non-2xx write evicts nothing (${g})`)
})

t.test('evictTag reaches entries and values in groups on every master, and nothing else', async (t) => {
  const { app, prefix } = await build(t)
  const groups = groupsOnDistinctMasters(['products', 'reviews', 'offers'])
  const tags = (req: { params: unknown }): string[] => [`item:${(req.params as { id: string }).id}`]
  groupRoutes(app, groups, { tags })
  app.put('/items/:id', { config: { cache: { tags } } }, async () => ({ ok: true }))
  const urls = groups.flatMap((g) => [`/${g}/1`, `/${g}/2`])
  for (const url of urls) await app.inject(url)
  await app.cache.set('item-1-summary', { n: 1 }, { group: groups[0], tags: ['item:1'] })

  const registry = `${prefix}:tag:{item:1}`
  t.comment(`tag registry ${registry} in slot ${cluster.slotOf(registry)} on ${(await cluster.masterOf(cluster.slotOf(registry))).port}`)
  t.equal(await app.cache.evictTag('item:1'), 4, 'one entry in each of three groups, and the value')
  t.equal(await app.cache.evictTag('item:1'), 0)
  for (const g of groups) {
    t.equal(await state(app, `/${g}/1`), 'MISS', `${g}/1 evicted`)
    t.equal(await state(app, `/${g}/2`), 'HIT', `${g}/2 kept`)
  }
  t.equal(await app.cache.get('item-1-summary', { group: groups[0] }), undefined)
  for (const g of groups) {
    const owner = (await cluster.masterOf(slotOfGroup(g))).port
    t.equal((await on(owner).keys(`${prefix}:{${g}}:e:*`)).length, 2, `${g}: both entries back on ${owner}`)
  }

  t.equal((await app.inject({ method: 'PUT', url: '/items/2' })).statusCode, 200)
  for (const g of groups) {
    t.equal(await state(app, `/${g}/2`), 'MISS', `a write route's tag reaches ${g}`)
    t.equal(await state(app, `/${g}/1`), 'HIT')
  }
})

t.test('clear() empties every group on every master, and only this prefix', async (t) => {
  const { app, prefix } = await build(t)
  const { app: other, prefix: otherPrefix } = await build(t)
  const groups = groupsOnDistinctMasters(['products', 'reviews', 'users'])
  groupRoutes(app, groups)
  groupRoutes(other, groups)
  for (const g of groups) {
    await app.inject(`/${g}/1`)
    await app.inject(`/${g}/2`)
    await other.inject(`/${g}/1`)
    await app.cache.set(`v-${g}`, g, { group: g })
  }
  const before = await keysByMaster(`${prefix}:{*}:[ev]:*`)
  t.equal([...before.values()].filter((k) => k.length === 3).length, 3, 'three keys on each master')

  t.equal(await app.cache.clear(), 0, 'Redis counts nothing on the call')
  for (const g of groups) t.equal(await app.cache.has(`v-${g}`, { group: g }), false, 'unreachable at once')
  t.equal([...(await keysByMaster(`${prefix}:clear:*`)).values()].flat().length, groups.length,
    'a clear count in each slot a group was written in, none made in the 16,381 others')
  // reclaimed behind the clear, on each master
  await until('no entry or value left on any master', async () => [...(await keysByMaster(`${prefix}:{*}:[ev]:*`)).values()].every((keys) => keys.length === 0))
  for (const g of groups) {
    t.equal(await state(app, `/${g}/1`), 'MISS')
    t.equal(await app.cache.has(`v-${g}`, { group: g }), false)
    t.equal(await state(other, `/${g}/1`), 'HIT', 'the other prefix is untouched')
  }
  t.equal([...(await keysByMaster(`${otherPrefix}:{*}:e:*`)).values()].flat().length, 3, 'the other prefix keeps its three entries')
  await app.cache.clear()
  await until('the entries stored since reclaimed too', async () => [...(await keysByMaster(`${prefix}:{*}:e:*`)).values()].every((keys) => keys.length === 0))
  for (const g of groups) t.equal(await state(app, `/${g}/1`), 'MISS', 'the entries stored since are cleared too')
})

t.test('wrap(): one run for concurrent calls, the value on its group\'s master, evicted by group and tag', async (t) => {
  const { app, prefix } = await build(t)
  const [a, b] = groupsOnDistinctMasters(['users', 'profiles'])
  let runs = 0
  const loadUser = app.cache.wrap(async (id: number) => {
    runs++
    await sleep(20)
    return { id, name: `user ${id}` }
  }, { key: (id) => `user:${id}`, ttl: 60, group: a, tags: (id) => [`user:${id}`] })
  const loadProfile = app.cache.wrap(async (id: number) => ({ id, bio: `bio ${id}` }), { key: (id) => `profile:${id}`, group: b, tags: (id) => [`user:${id}`] })

  const results = await Promise.all([loadUser(1), loadUser(1), loadUser(1)])
  t.same(results, [{ id: 1, name: 'user 1' }, { id: 1, name: 'user 1' }, { id: 1, name: 'user 1' }])
  t.equal(runs, 1, 'concurrent calls shared one run')
  t.same(await loadUser(1), { id: 1, name: 'user 1' })
  t.equal(runs, 1, 'later calls read Redis')
  const owner = (await cluster.masterOf(slotOfGroup(a))).port
  t.equal((await on(owner).keys(`${prefix}:{${a}}:v:*`)).length, 1, `the value is on ${owner}`)

  await loadProfile(1)
  t.equal(await app.cache.evictTag('user:1'), 2, 'the tag spans both groups (two masters)')
  await loadUser(1)
  t.equal(runs, 2)
  await loadUser(2)
  t.equal(await app.cache.evictGroup(a), 2)
  await loadUser(1)
  await loadUser(1)
  t.equal(runs, 4)
  t.same(await loadProfile(1), { id: 1, bio: 'bio 1' })
})

t.test('L1 on a Cluster: invalidations published by a script on one master reach another instance', async (t) => {
  const { app: writer, prefix } = await build(t, { l1: { ttl: 30 } })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache, { redis: shared, prefix, timeout: TIMEOUT, l1: { ttl: 30 } })
  const [group] = groupsOnDistinctMasters(['catalog'])
  groupRoutes(app, [group])
  groupRoutes(writer, [group])
  const owner = (await cluster.masterOf(slotOfGroup(group))).port

  // the reader serves from its L1 once its subscription is up: seen by deleting the key behind its back
  await until('the reader serves from its L1', async () => {
    await app.inject(`/${group}/1`)
    await app.inject(`/${group}/1`)
    const keys = await on(owner).keys(`${prefix}:{${group}}:e:*`)
    if (keys.length > 0) await on(owner).del(...keys)
    return await state(app, `/${group}/1`) === 'HIT'
  }, 5000, 50)
  t.equal(await state(app, `/${group}/1`), 'HIT', 'an entry only the reader\'s L1 still holds')
  t.equal(await writer.cache.evictGroup(group), 1, 'only the index left in Redis (evictGroup counts what it named), and the eviction is published')
  await until('the eviction reaches the reader\'s L1', async () => await state(app, `/${group}/1`) === 'MISS', 2000, 10)
  t.pass('the reader dropped its copy: the message went from the group\'s master through the cluster bus')
})

// The last two tests SIGKILL masters (each one with a replica to take over). Here a request loop runs
// across groups on every master while the master of one group is killed and its replica promoted.
t.test('failover: a master SIGKILLed under load fails no request, and its group caches again once the replica is promoted', async (t) => {
  const client = cluster.client()
  const logs: Array<{ level: number, msg: string, time: number }> = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } }, disableRequestLogging: true })
  t.teardown(() => app.close())
  const prefix = `c${++prefixes}`
  await app.register(httpCache, { redis: client, prefix, timeout: TIMEOUT, ttl: 300 })
  const groups = groupsOnDistinctMasters(['orders', 'carts', 'invoices'])
  const [victimGroup] = groups
  const owners = await Promise.all(groups.map(async (g) => (await cluster.masterOf(slotOfGroup(g))).port))
  t.equal(new Set(owners).size, 3, 'each group on its own master')
  const calls = groupRoutes(app, groups)
  app.get('/probe/:id', { config: { cache: { group: victimGroup } } }, async (req) => ({ probe: (req.params as { id: string }).id }))
  const urls = groups.flatMap((group) => [1, 2, 3, 4, 5].map((id) => ({ url: `/${group}/${id}`, group, body: JSON.stringify({ group, id: String(id) }) })))
  for (const { url } of urls) await app.inject(url)
  for (const { url } of urls) t.equal(await state(app, url), 'HIT', `${url} cached before the failover`)

  // Each worker asks for the URLs of one group, as independent clients would: a worker of a healthy
  // group never waits behind a request of the killed master's group.
  interface Sample { at: number, group: string, cache: string, ms: number }
  const samples: Sample[] = []
  const failures: string[] = []
  const loop = { stop: false }
  const worker = async (w: number): Promise<void> => {
    const mine = urls.filter((u) => u.group === groups[w % groups.length])
    for (let i = w; !loop.stop; i++) {
      const { url, group, body } = mine[i % mine.length]
      const start = Date.now()
      try {
        const res = await app.inject(url)
        if (res.statusCode !== 200 || res.body !== body) failures.push(`${url}: ${res.statusCode} ${res.body.slice(0, 200)}`)
        samples.push({ at: Date.now(), group, cache: String(res.headers['x-cache']), ms: Date.now() - start })
      } catch (err) {
        failures.push(`${url}: ${String(err)}`)
      }
      await sleep(2)
    }
  }
  const workers = Array.from({ length: 20 }, async (_, w) => await worker(w))

  await sleep(500)
  const victim = owners[0]
  const killedAt = Date.now()
  await cluster.kill(victim)
  const promoted = await cluster.waitForPromotion(victim, 20_000)
  const promotedAt = Date.now()
  t.equal(promoted.master, victim, `replica ${promoted.port} of ${victim} took over`)
  t.equal((await cluster.masterOf(slotOfGroup(victimGroup))).port, promoted.port)

  // Caching resumed: a URL no worker asks for, twice in a row; the second is a HIT only if Redis stored it.
  let probes = 0
  let resumedAt = 0
  await until(`caching to resume for ${victimGroup}`, async () => {
    const url = `/probe/${++probes}`
    const miss = await app.inject(url)
    if (miss.statusCode !== 200) failures.push(`${url}: ${miss.statusCode}`)
    const hit = await app.inject(url)
    if (hit.headers['x-cache'] !== 'HIT') return false
    resumedAt = Date.now()
    return true
  }, 20_000, 50)
  const probeKeys = await on(promoted.port).keys(`${prefix}:{${victimGroup}}:e:*probe*`)
  t.ok(probeKeys.length > 0, `the probe entries are on the promoted node ${promoted.port}`)
  await until(`a HIT of ${victimGroup} in the loop after the promotion`,
    () => samples.some((s) => s.at > resumedAt && s.group === victimGroup && s.cache === 'HIT'), 10_000)
  await sleep(300)
  loop.stop = true
  await Promise.all(workers)

  t.same(failures, [], 'every response was a 200 with the right body')
  const outage = samples.filter((s) => s.at >= killedAt && s.at <= resumedAt)
  const of = (list: Sample[], group: string, cache?: string): Sample[] => list.filter((s) => s.group === group && (cache === undefined || s.cache === cache))
  // Time a group went without any HIT during the outage (gaps over 100 ms between its HITs; its workers
  // see one every few ms while it is cached).
  const uncached = (group: string): { total: number, longest: number } => {
    let total = 0
    let longest = 0
    let last = killedAt
    for (const at of [...of(outage, group, 'HIT').map((s) => s.at), resumedAt]) {
      if (at - last > 100) total += at - last
      longest = Math.max(longest, at - last)
      last = at
    }
    return { total, longest }
  }
  const report = groups.map((g, i) => {
    const gap = uncached(g)
    const slowest = Math.max(...of(samples, g).map((s) => s.ms))
    return `${g}${i === 0 ? ' (killed master)' : ''} on ${owners[i]}: ${of(outage, g, 'MISS').length} MISS / ${of(outage, g, 'HIT').length} HIT, ` +
      `${gap.total} ms without a HIT (longest ${gap.longest} ms), slowest response ${slowest} ms`
  })
  const opened = logs.filter((l) => /Redis failing/.test(l.msg) && l.time >= killedAt).map((l) => l.time - killedAt)
  const resumed = logs.filter((l) => /caching resumed/.test(l.msg) && l.time >= killedAt).map((l) => l.time - killedAt)
  t.comment(`failover: replica promoted ${promotedAt - killedAt} ms after the SIGKILL, caching of ${victimGroup} resumed after ${resumedAt - killedAt} ms; ` +
    `${samples.length} requests, ${outage.length} during the outage, ${outage.filter((s) => s.cache === 'MISS').length} of them MISS`)
  for (const line of report) t.comment(line)
  t.comment(`breaker opened at +${opened.join(', +')} ms, closed at +${resumed.join(', +')} ms; handler runs ${JSON.stringify(calls)}`)
  const slowest = Math.max(...samples.map((s) => s.ms))
  t.ok(slowest < TIMEOUT * 4, `no request waited for the failover (slowest ${slowest} ms, timeout ${TIMEOUT} ms)`)
  t.ok(samples.length > 200, `the loop kept going (${samples.length} requests)`)
  t.ok(samples.some((s) => s.at > resumedAt && s.group === victimGroup && s.cache === 'HIT'), 'the loop HITs the killed master\'s group again')
  // one breaker per master: groups on the live masters stay cached through the outage
  for (const g of groups.slice(1)) t.ok(of(outage, g, 'MISS').length <= 5, `${g} stayed cached (${of(outage, g, 'MISS').length} MISS during the outage)`)
  // a call stuck in ioredis since before the promotion may still time out and trip the breaker once more
  for (const g of groups) await until(`${g} served from the cache`, async () => await state(app, `/${g}/1`) === 'HIT', 5000, 50)
  t.pass('every group is cached again')
})

// A group's first miss registers it in <prefix>:groups (for clear()) before its answer is computed; on a
// Cluster that registry lives in another slot, often on another master. Here that master dies right when a
// group is first stored: its misses are answered and not stored until the registration succeeds.
t.test('a group first stored while the groups registry\'s master is down is still cleared after the failover', async (t) => {
  const live = masters().filter((m) => m.alive && cluster.nodes.some((r) => r.master === m.port && r.alive))
  let prefix = ''
  let registryMaster: ClusterNode | undefined
  for (let i = 0; registryMaster === undefined; i++) {
    prefix = `registry${i}`
    const owner = await cluster.masterOf(cluster.slotOf(`${prefix}:groups`))
    registryMaster = live.find((m) => m.port === owner.port)
  }
  let group = ''
  for (let i = 0; group === ''; i++) {
    const owner = await cluster.masterOf(slotOfGroup(`fresh-${i}`))
    if (owner.port !== registryMaster.port) group = `fresh-${i}`
  }
  // ioredis retries a command for a dead node until maxRedirections (16 × 100 ms by default, close to the
  // time a failover takes): fewer here, so the registration surely fails before the replica takes over
  const client = cluster.client({ maxRedirections: 4 })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache, { redis: client, prefix, timeout: TIMEOUT })
  groupRoutes(app, [group])
  const owner = (await cluster.masterOf(slotOfGroup(group))).port

  await cluster.kill(registryMaster.port)
  t.equal(await state(app, `/${group}/1`), 'MISS')
  const promoted = await cluster.waitForPromotion(registryMaster.port, 20_000)
  t.comment(`groups registry of ${prefix} on ${registryMaster.port}, taken over by ${promoted.port}; group ${group} on ${owner}`)
  // its group could not be registered, so a clear() could not have found it: not stored
  t.equal((await on(owner).keys(`${prefix}:{${group}}:e:*`)).length, 0, 'the miss whose group could not be registered is not stored')

  await until('a miss after the failover registers its group', async () => {
    await state(app, `/${group}/2`)
    return await client.sismember(`${prefix}:groups`, `${prefix}:{${group}}:`) === 1
  }, 5000, 50)
  await until('and is stored', async () => (await on(owner).keys(`${prefix}:{${group}}:e:*`)).length === 1)
  t.equal(await state(app, `/${group}/2`), 'HIT')
  await app.cache.clear()
  t.equal(await state(app, `/${group}/2`), 'MISS', 'clear() reached the group')
})
