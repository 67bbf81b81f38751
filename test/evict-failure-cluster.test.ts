import t, { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Cluster } from 'ioredis'
import httpCache from '../index.js'
import { startCluster, type ClusterNode, type TestCluster } from './helpers/cluster.js'
import { until } from './helpers/until.js'

// Evictions that fail during a Cluster failover (lib/stores/pending.ts): the master of a group is
// SIGKILLed, a write evicting that group answers meanwhile, and the replica promoted in its place holds
// the entries the write should have dropped. They must never be served again, by the writer or by a
// second instance once the writer has replayed the eviction.

type Test = Parameters<Parameters<typeof test>[0]>[0]

const TIMEOUT = 500

let cluster: TestCluster
t.before(async () => {
  cluster = await startCluster(t, { masters: 3, replicasPerMaster: 1 })
})

const slotOfGroup = (group: string): number => cluster.slotOf(`{${group}}`)

async function instance (t: Test, client: Cluster, version: Record<string, number>, logs?: string[]): Promise<FastifyInstance> {
  const app = Fastify(logs === undefined ? {} : { logger: { level: 'error', stream: { write: (line: string) => { logs.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(httpCache, { redis: client, prefix: 'failover', timeout: TIMEOUT, ttl: 300 })
  for (const group of Object.keys(version)) {
    app.get(`/${group}/:id`, { config: { cache: { group } } }, async () => ({ v: version[group] }))
    app.post(`/${group}`, { config: { cache: { evict: group } } }, async () => { version[group]++; return { ok: true } })
  }
  return app
}

t.test('a write during a failover: the promoted replica\'s copies are never served after it, on either instance', async (t) => {
  // a dead node's commands fail before the replica takes over (ioredis retries 16 × 100 ms by default)
  const a = cluster.client({ maxRedirections: 4 })
  const b = cluster.client({ maxRedirections: 4 })
  let victim = ''
  for (let i = 0; victim === ''; i++) {
    const owner = await cluster.masterOf(slotOfGroup(`orders-${i}`))
    if (cluster.nodes.some((n) => n.master === owner.port && n.alive)) victim = `orders-${i}`
  }
  let calm = ''
  const victimMaster: ClusterNode = await cluster.masterOf(slotOfGroup(victim))
  for (let i = 0; calm === ''; i++) if ((await cluster.masterOf(slotOfGroup(`carts-${i}`))).port !== victimMaster.port) calm = `carts-${i}`
  const version: Record<string, number> = { [victim]: 1, [calm]: 1 }
  const logs: string[] = []
  const writer = await instance(t, a, version, logs)
  const other = await instance(t, b, version)
  const read = async (app: FastifyInstance, url: string): Promise<{ cache: string, v: number }> => {
    const res = await app.inject(url)
    t.equal(res.statusCode, 200, `${url} answers`)
    return { cache: String(res.headers['x-cache']), v: res.json().v }
  }

  await read(writer, `/${victim}/1`)
  await read(writer, `/${calm}/1`)
  const node = cluster.node(victimMaster.port)
  await until('the entry is stored', async () => (await node.keys(`failover:{${victim}}:e:*`)).length === 1)
  t.equal(await node.wait(1, 5000), 1, 'the replica has it')
  t.same(await read(other, `/${victim}/1`), { cache: 'HIT', v: 1 }, 'the second instance has it cached')

  await cluster.kill(victimMaster.port)
  t.equal((await writer.inject({ method: 'POST', url: `/${victim}` })).statusCode, 200, 'the write answers')
  t.ok(logs.some((l) => /invalidation after a write failed/.test(l)), 'its eviction failed')
  t.same(await read(writer, `/${calm}/1`), { cache: 'HIT', v: 1 }, 'a group on a live master is served meanwhile')
  const promoted = await cluster.waitForPromotion(victimMaster.port, 20_000)
  // the promoted replica holds the old entry unless the writer's replay (every 50 ms) already reached it
  t.comment(`old entries on the promoted replica: ${(await cluster.node(promoted.port).keys(`failover:{${victim}}:e:*`)).length}`)

  const answers: Array<{ cache: string, v: number }> = []
  await until('the writer caches the group again', async () => {
    const r = await read(writer, `/${victim}/1`)
    answers.push(r)
    return r.cache === 'HIT'
  }, 20_000, 50)
  t.same(answers.filter((r) => r.v !== 2), [], `the writer never served the old entry (${answers.length} reads)`)
  t.same(await read(other, `/${victim}/1`), { cache: 'HIT', v: 2 }, 'the second instance reads the new entry')
})
