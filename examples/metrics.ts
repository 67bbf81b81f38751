// An app exposing its cache's Prometheus metrics on /metrics, next to prom-client's process metrics,
// with Cache-Status on every cached response; examples/grafana-dashboard.json charts these metrics.
//
//   npm run example:metrics                                    in-memory store, http://127.0.0.1:3000
//   REDIS_URL=redis://127.0.0.1:6379 npm run example:metrics  the same app on Redis
//
// Then try:
//   curl -i localhost:3000/products/1        Cache-Status: fastify-http-cache; fwd=uri-miss; fwd-status=200; stored; ttl=30
//   curl -i localhost:3000/products/1        Cache-Status: fastify-http-cache; hit; ttl=29
//   curl -i localhost:3000/products/1 -H 'cache-control: no-cache'     fwd=request
//   curl -i -X POST localhost:3000/products/1/restock                  evicts the product
//   curl -s localhost:3000/metrics | grep http_cache_                  the counters and the lookup histogram
//   curl -s localhost:3000/stats                                       fastify.cache.stats()
// Point a Prometheus at localhost:3000/metrics and import examples/grafana-dashboard.json into Grafana.
import Fastify from 'fastify'
import { collectDefaultMetrics, register } from 'prom-client'
import httpCache from '../index.js'

async function main (): Promise<void> {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
  collectDefaultMetrics()
  await app.register(httpCache, {
    redis: process.env.REDIS_URL,
    cacheStatus: true,
    // prom-client's default registry, the one collectDefaultMetrics and most apps' /metrics use
    metrics: true
  })

  const stock = new Map<string, number>([['1', 3], ['2', 0]])
  app.get('/products/:id', { config: { cache: { ttl: 30, group: 'products', staleWhileRevalidate: 30 } } }, async (request, reply) => {
    const { id } = request.params as { id: string }
    // a slow lookup: what the cache saves
    await new Promise((resolve) => setTimeout(resolve, 50))
    const left = stock.get(id)
    if (left === undefined) return await reply.code(404).send({ error: 'no such product' })
    return { id, stock: left }
  })
  app.post('/products/:id/restock', { config: { cache: { evict: 'products' } } }, async (request) => {
    const { id } = request.params as { id: string }
    stock.set(id, (stock.get(id) ?? 0) + 1)
    return { id, stock: stock.get(id) }
  })

  app.get('/metrics', async (_request, reply) => {
    return await reply.type(register.contentType).send(await register.metrics())
  })
  app.get('/stats', async () => app.cache.stats())

  const close = (signal: string): void => {
    app.log.info(`${signal}: closing`)
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'close failed')
      process.exit(1)
    })
  }
  process.once('SIGINT', close)
  process.once('SIGTERM', close)

  await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
