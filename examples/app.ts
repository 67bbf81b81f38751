// A small catalogue API cached by fastify-http-cache.
//
//   npm run example                                   in-memory store
//   REDIS_URL=redis://127.0.0.1:6379 npm run example  Redis
//
// Then, for instance:
//   curl -i localhost:3000/products                 x-cache: MISS, then HIT
//   curl -i -X POST localhost:3000/products -H 'content-type: application/json' \
//        -d '{"name":"Lamp","category":"home","price":30}'   evicts the "products" group
//   curl -i localhost:3000/products                 MISS again, with the lamp
//   curl -i -X PUT localhost:3000/settings -H 'content-type: application/json' -d '{"banner":"Sale"}'
import { Readable } from 'node:stream'
import Fastify from 'fastify'
import httpCache from '../index.js'

interface Product { id: number, name: string, category: string, price: number }

const products = new Map<number, Product>([
  { id: 1, name: 'Chair', category: 'home', price: 80 },
  { id: 2, name: 'Desk', category: 'office', price: 240 },
  { id: 3, name: 'Pen', category: 'office', price: 2 }
].map((p) => [p.id, p]))
let nextId = 4
let settings = { currency: 'EUR', banner: 'Welcome' }

// Stands in for a database query or a call to another service: what the cache saves.
const slowly = async <T>(value: () => T): Promise<T> => {
  await new Promise((resolve) => setTimeout(resolve, 100))
  return value()
}

async function main (): Promise<void> {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })

  const redisUrl = process.env.REDIS_URL
  await app.register(httpCache, {
    // omitted: the embedded in-memory LRU store
    ...(redisUrl !== undefined && redisUrl !== '' ? { redis: redisUrl } : {}),
    prefix: 'example',
    ttl: 60
  })
  app.log.info(`fastify-http-cache store: ${app.cache.storeName}`)

  // Every product route is in the "products" group, so one evictGroup() drops them all,
  // whatever query strings clients used (?category=office and ?category=home are separate entries).
  app.get<{ Querystring: { category?: string } }>('/products', {
    config: { cache: { group: 'products', ttl: 30 } }
  }, async (request) => {
    const { category } = request.query
    return await slowly(() => [...products.values()].filter((p) => category === undefined || p.category === category))
  })

  app.get<{ Params: { id: string } }>('/products/:id', {
    config: { cache: { group: 'products' } }
  }, async (request, reply) => {
    const product = await slowly(() => products.get(Number(request.params.id)))
    // a 404 is never stored: the next request runs the handler again
    if (product === undefined) return await reply.code(404).send({ error: 'no such product' })
    return product
  })

  app.post<{ Body: Omit<Product, 'id'> }>('/products', {
    schema: {
      body: {
        type: 'object',
        required: ['name', 'category', 'price'],
        additionalProperties: false,
        properties: { name: { type: 'string' }, category: { type: 'string' }, price: { type: 'number' } }
      }
    }
  }, async (request, reply) => {
    const product = { id: nextId++, ...request.body }
    products.set(product.id, product)
    const evicted = await app.cache.evictGroup('products')
    request.log.info({ evicted }, 'product added, "products" group evicted')
    return await reply.code(201).send({ product, evicted })
  })

  // ttl 0: never expires; the entry lives until PUT /settings evicts it.
  // HITs carry `Cache-Control: no-cache`, so clients revalidate with the ETag (304 Not Modified).
  app.get('/settings', { config: { cache: { ttl: 0 } } }, async () => await slowly(() => settings))

  app.put<{ Body: Partial<typeof settings> }>('/settings', {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { currency: { type: 'string' }, banner: { type: 'string' } }
      }
    }
  }, async (request) => {
    settings = { ...settings, ...request.body }
    // drops exactly the entry a GET /settings would hit
    const evicted = await app.cache.evict('/settings')
    request.log.info({ evicted }, 'settings changed, GET /settings evicted')
    return settings
  })

  // A streamed body: sent to the client as it is generated and stored once complete
  // (bodies larger than maxEntrySize are streamed but not stored).
  app.get('/report.csv', { config: { cache: { ttl: 120 } } }, async (request, reply) => {
    async function * rows (): AsyncGenerator<string> {
      yield 'id,name,category,price\n'
      for (const p of products.values()) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        yield `${p.id},${p.name},${p.category},${p.price}\n`
      }
    }
    reply.type('text/csv; charset=utf-8')
    reply.header('content-disposition', 'attachment; filename="report.csv"')
    return Readable.from(rows())
  })

  // private: true makes HITs say `Cache-Control: private, max-age=…`, so shared caches (CDNs,
  // proxies) do not keep it. This plugin's own key is the URL: per-user data must have the user in
  // the URL, as here. Requests carrying an Authorization header are never served from the cache.
  app.get<{ Params: { id: string } }>('/users/:id/summary', {
    config: { cache: { private: true, ttl: 10 } }
  }, async (request) => await slowly(() => ({
    user: request.params.id,
    openOrders: 2,
    generatedAt: new Date().toISOString()
  })))

  // not cached: no config.cache, so the plugin adds no hooks to this route
  app.get('/health', async () => ({ ok: true }))

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
