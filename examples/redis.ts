// Two instances of one app sharing a Redis: what one instance caches, the other serves, and an eviction
// on either reaches both (their in-process L1 tiers included). The Redis client is @fastify/redis's, so
// the app uses the same connection for its own data.
//
//   npm run example:redis      starts a throwaway redis-server unless REDIS_URL is set,
//                              instance A on http://127.0.0.1:3000 and instance B on :3001
//   curl -i localhost:3000/stock/1       MISS on A
//   curl -i localhost:3001/stock/1       HIT on B: the entry A stored in Redis (servedBy: "A")
//   curl -i -X POST localhost:3001/stock/1 -H 'content-type: application/json' -d '{"count":7}'
//   curl -i localhost:3000/stock/1       MISS on A (B's write evicted it everywhere), then HIT with count 7
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { RedisMemoryServer } from 'redis-memory-server'
import httpCache from '../index.js'

async function instance (name: string, url: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info', base: { instance: name } } })
  await app.register(fastifyRedis, { url })
  // no `redis` option: the plugin uses fastify.redis; a 1 s L1 answers repeated HITs from memory.
  // keyOrigin: false because here the two instances answer on different ports (so different Host
  // headers); behind one load balancer they see the same Host and the default keying shares entries too.
  await app.register(httpCache, { ttl: 60, l1: { ttl: 1 }, keyOrigin: false })

  app.get<{ Params: { id: string } }>('/stock/:id', {
    config: { cache: { group: 'stock', tags: (req) => [`item:${(req.params as { id: string }).id}`] } }
  }, async (request) => {
    const count = await app.redis.get(`stock:${request.params.id}`) // the app's own data, same client
    return { id: request.params.id, count: Number(count ?? 0), servedBy: name }
  })

  app.post<{ Params: { id: string }, Body: { count: number } }>('/stock/:id', {
    schema: { body: { type: 'object', required: ['count'], properties: { count: { type: 'integer' } } } },
    // evicted in Redis (and every instance's L1) before this response leaves
    config: { cache: { tags: (req) => [`item:${(req.params as { id: string }).id}`] } }
  }, async (request) => {
    await app.redis.set(`stock:${request.params.id}`, String(request.body.count))
    return { ok: true }
  })
  return app
}

async function main (): Promise<void> {
  let server: RedisMemoryServer | undefined
  let url = process.env.REDIS_URL ?? ''
  if (url === '') {
    server = new RedisMemoryServer()
    url = `redis://${await server.getHost()}:${await server.getPort()}`
  }
  const port = Number(process.env.PORT ?? 3000)
  const apps = [await instance('A', url), await instance('B', url)]
  for (const [i, app] of apps.entries()) await app.listen({ host: '127.0.0.1', port: port === 0 ? 0 : port + i })

  const close = (): void => {
    Promise.all(apps.map(async (app) => await app.close()))
      .then(async () => await server?.stop())
      .then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGINT', close)
  process.once('SIGTERM', close)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
