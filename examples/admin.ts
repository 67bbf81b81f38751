// The admin API of fastify-http-cache: a cached catalogue, and JSON routes under /_cache to look at
// what is cached and evict it, behind a bearer-token hook (any auth hook works: @fastify/basic-auth,
// @fastify/bearer-auth, @fastify/auth...).
//
//   npm run example:admin                                   in-memory store, http://127.0.0.1:3000
//   REDIS_URL=redis://127.0.0.1:6379 npm run example:admin  the same app on Redis
//   ADMIN_TOKEN=... npm run example:admin                   another token (default: secret)
//
// Then try:
//   curl -s localhost:3000/products/1 localhost:3000/products/2 'localhost:3000/products?page=2'
//   curl -s localhost:3000/_cache/health                                  401: no token
//   T='authorization: Bearer secret'
//   curl -s -H "$T" localhost:3000/_cache/health                          { store, ok, latencyMs, breaker }
//   curl -s -H "$T" localhost:3000/_cache/stats
//   curl -s -H "$T" 'localhost:3000/_cache/groups/products/entries?limit=2'    then ?cursor=<cursor>&limit=2
//   curl -s -H "$T" 'localhost:3000/_cache/entry?url=/products/1'         404 until it is cached
//   curl -s -H "$T" -X DELETE 'localhost:3000/_cache/entry?url=/products/1'    { "evicted": true }
//   curl -s -H "$T" -X DELETE localhost:3000/_cache/tags/product:2        { "evicted": 1 }
//   curl -s -H "$T" -X DELETE localhost:3000/_cache/groups/products       { "evicted": <n> }
//   curl -s -H "$T" -X POST localhost:3000/_cache/clear                   everything this app cached
import { timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import httpCache from '../index.js'

const token = Buffer.from(`Bearer ${process.env.ADMIN_TOKEN ?? 'secret'}`)

/** The app's own auth hook: the admin routes run it before anything else. */
async function requireToken (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const sent = Buffer.from(request.headers.authorization ?? '')
  if (sent.length !== token.length || !timingSafeEqual(sent, token)) {
    await reply.code(401).header('www-authenticate', 'Bearer').send({ statusCode: 401, error: 'Unauthorized', message: 'admin token required' })
  }
}

export async function build (redis = process.env.REDIS_URL): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify({ logger: process.env.LOG_LEVEL === undefined ? false : { level: process.env.LOG_LEVEL } })
  await app.register(httpCache, {
    redis,
    ttl: 300,
    admin: { prefix: '/_cache', preHandler: requireToken }
  })

  app.get<{ Params: { id: string } }>('/products/:id', {
    config: { cache: { group: 'products', tags: (request) => [`product:${(request.params as { id: string }).id}`] } }
  }, async (request) => ({ id: Number(request.params.id), name: `Product ${request.params.id}`, at: new Date().toISOString() }))

  app.get<{ Querystring: { page?: string } }>('/products', {
    config: { cache: { group: 'products', tags: ['product-list'] } }
  }, async (request) => ({ page: Number(request.query.page ?? 1), items: [1, 2, 3], at: new Date().toISOString() }))

  return app
}

async function main (): Promise<void> {
  const app = await build()
  const close = (signal: string): void => {
    app.log.info(`${signal}: closing`)
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'close failed')
      process.exit(1)
    })
  }
  process.once('SIGINT', close)
  process.once('SIGTERM', close)
  const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
  process.stdout.write(`admin example on ${address} (${app.cache.storeName} store); admin routes under ${address}/_cache\n`)
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
