// The smallest useful setup: one expensive route cached for 30 s in the embedded in-memory store.
//
//   npm run example:basic                    http://127.0.0.1:3000
//   curl -i localhost:3000/report            MISS (about 300 ms), then HIT with the same ETag
//   curl -i localhost:3000/report -H 'if-none-match: <that etag>'   304
//   curl -i localhost:3000/report -H 'cache-control: no-cache'      runs the handler again
//   curl -i -X POST localhost:3000/report/refresh                   evicts it: the next GET is a MISS
import Fastify from 'fastify'
import httpCache from '../index.js'

async function main (): Promise<void> {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })
  await app.register(httpCache, { ttl: 30 })

  let runs = 0
  app.get('/report', { config: { cache: { group: 'reports' } } }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 300)) // the slow query the cache saves
    return { runs: ++runs, at: new Date().toISOString() }
  })

  app.post('/report/refresh', async () => ({ evicted: await app.cache.evictGroup('reports') }))

  await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
