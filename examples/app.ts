// A small catalogue API cached by fastify-http-cache: every GET is cached, every write declares what
// it makes stale, and the plugin evicts it before the write's response leaves (no stale read-your-write).
//
//   npm run example                                   in-memory store, http://127.0.0.1:3000
//   REDIS_URL=redis://127.0.0.1:6379 npm run example  the same app on Redis
//
// Then try (watch the x-cache header; add -H 'x-user: alice' where a user is needed):
//   curl -i localhost:3000/products                      MISS, then HIT; after 30 s one STALE answer and a refresh
//   curl -i 'localhost:3000/products?currency=USD'       the rate comes from a memoized slow lookup
//   curl -i localhost:3000/products/1                    MISS, then HIT
//   curl -i localhost:3000/products/1/reviews            MISS, then HIT
//   curl -i -X POST localhost:3000/products -H 'content-type: application/json' \
//        -d '{"name":"Lamp","category":"home","price":30}'          evicts the lists only
//   curl -i -X PUT localhost:3000/products/1 -H 'content-type: application/json' \
//        -d '{"name":"Armchair","category":"home","price":120}'     GET /products/1 is then a HIT, new body
//   curl -i -X PATCH localhost:3000/products/1 -H 'content-type: application/json' -d '{"price":99}'
//                                                        evicts the lists, the product and its reviews
//   curl -i -X DELETE localhost:3000/products/3          same, plus the product is gone (404, never cached)
//   curl -i -X POST localhost:3000/products/1/reviews -H 'x-user: alice' \
//        -H 'content-type: application/json' -d '{"rating":4,"text":"Comfy"}'   evicts that reviews page and alice's /me
//   curl -i localhost:3000/me -H 'x-user: alice'         one entry per user (try bob)
//   curl -i localhost:3000/categories -H 'accept-language: fr'   one entry per language
//   curl -i localhost:3000/deals/today                   cached until midnight in Paris (see Expires)
//   curl -i localhost:3000/settings                      never expires; PUT /settings writes through
//   curl -i -X PUT localhost:3000/settings -H 'content-type: application/json' -d '{"banner":"Sale"}'
//   curl -i localhost:3000/report.csv                    streamed, stored once complete
import { Readable } from 'node:stream'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import httpCache from '../index.js'

interface Product { id: number, name: string, category: string, price: number }
interface Review { author: string, rating: number, text: string }

const products = new Map<number, Product>([
  { id: 1, name: 'Chair', category: 'home', price: 80 },
  { id: 2, name: 'Desk', category: 'office', price: 240 },
  { id: 3, name: 'Pen', category: 'office', price: 2 }
].map((p) => [p.id, p]))
const reviews = new Map<number, Review[]>([[1, [{ author: 'bob', rating: 5, text: 'Solid' }]]])
let nextId = 4
let settings = { currency: 'EUR', banner: 'Welcome' }
const RATES: Record<string, number> = { EUR: 1, USD: 1.08, GBP: 0.85 }
const CATEGORIES: Record<string, Record<string, string>> = {
  en: { home: 'Home', office: 'Office' },
  fr: { home: 'Maison', office: 'Bureau' },
  de: { home: 'Wohnen', office: 'Büro' }
}

// Stands in for a database query or a call to another service: what the cache saves.
const slowly = async <T>(value: () => T): Promise<T> => {
  await new Promise((resolve) => setTimeout(resolve, 100))
  return value()
}

// Every entry that shows a product carries its tag, whatever its group: evicting the tag drops them all.
const productTags = (request: FastifyRequest): string[] => [`product:${(request.params as { id: number }).id}`]

const idParams = { type: 'object', properties: { id: { type: 'integer', minimum: 1 } } } as const
const productBody = {
  type: 'object',
  required: ['name', 'category', 'price'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, category: { type: 'string' }, price: { type: 'number' } }
} as const

async function main (): Promise<void> {
  const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })

  const redisUrl = process.env.REDIS_URL
  await app.register(httpCache, {
    // omitted: the embedded in-memory LRU store
    ...(redisUrl !== undefined && redisUrl !== '' ? { redis: redisUrl } : {}),
    prefix: 'example',
    ttl: 60,
    // the zone of `expires: 'endOfDay'` (GET /deals/today): entries end at local midnight, DST included
    timezone: 'Europe/Paris'
  })
  app.log.info(`fastify-http-cache store: ${app.cache.storeName}`)

  // Stand-in for an auth hook: real apps verify a session or a JWT here and key on its user id.
  app.decorateRequest('user', '')
  async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const user = request.headers['x-user']
    if (typeof user !== 'string' || !/^\w{1,32}$/.test(user)) return await reply.code(401).send({ error: 'send x-user' })
    request.setDecorator('user', user)
  }
  const userOf = (request: FastifyRequest): string => request.getDecorator<string>('user')

  // A slow remote lookup memoized in the cache's own store: lists are evicted by every product write,
  // the exchange rate they need is not, so it keeps its own ttl (and group: evictGroup('rates') drops
  // it). Concurrent misses needing the same rate make one call.
  const rateOf = app.cache.wrap(async (currency: string) => {
    app.log.info({ currency }, 'slow exchange-rate lookup')
    return await slowly(() => RATES[currency])
  }, { key: (currency) => `rate:${currency}`, ttl: 300, group: 'rates' })

  // ---- reads ----

  // Lists live in a group of their own: one eviction drops every variant (?category=…&currency=…)
  // without touching the cached products.
  app.get<{ Querystring: { category?: string, currency: string } }>('/products', {
    schema: {
      querystring: {
        type: 'object',
        properties: { category: { type: 'string' }, currency: { enum: Object.keys(RATES), default: 'EUR' } }
      }
    },
    // the most requested list: expired copies are served while one refresh runs (x-cache: STALE), stand in
    // for a failing database for an hour, and instances sharing a Redis compute a missing list only once
    config: { cache: { group: 'product-lists', ttl: 30, staleWhileRevalidate: 60, staleIfError: 3600, lock: true } }
  }, async (request) => {
    const { category, currency } = request.query
    const rate = await rateOf(currency)
    const list = await slowly(() => [...products.values()].filter((p) => category === undefined || p.category === category))
    return list.map((p) => ({ ...p, price: Math.round(p.price * rate * 100) / 100, currency }))
  })

  app.get<{ Params: { id: number } }>('/products/:id', {
    schema: { params: idParams },
    config: { cache: { group: 'products', tags: productTags } }
  }, async (request, reply) => {
    const product = await slowly(() => products.get(request.params.id))
    // a 404 is never stored: the next request runs the handler again
    if (product === undefined) return await reply.code(404).send({ error: 'no such product' })
    return product
  })

  // Another group, same tag: the page shows the product's name, so writes to the product drop it too.
  app.get<{ Params: { id: number } }>('/products/:id/reviews', {
    schema: { params: idParams },
    config: { cache: { group: 'reviews', tags: productTags } }
  }, async (request, reply) => {
    const page = await slowly(() => {
      const product = products.get(request.params.id)
      return product === undefined ? undefined : { product: product.name, reviews: reviews.get(product.id) ?? [] }
    })
    if (page === undefined) return await reply.code(404).send({ error: 'no such product' })
    return page
  })

  // Per-user entries: the URL is the same for everyone, so the key must carry the user (varyBy), and
  // responses say `Cache-Control: private`. The lookup runs after the route's preHandler, so a HIT
  // never skips authentication.
  app.get('/me', {
    preHandler: authenticate,
    config: { cache: { varyBy: userOf, ttl: 30 } }
  }, async (request) => {
    const user = userOf(request)
    return await slowly(() => ({
      user,
      reviewsWritten: [...reviews.values()].flat().filter((r) => r.author === user).length,
      generatedAt: new Date().toISOString()
    }))
  })

  // One entry per Accept-Language value (the raw header: `fr` and `fr-FR` are two entries), and a
  // `Vary: accept-language` response header so browsers and CDNs key the same way.
  app.get('/categories', { config: { cache: { vary: ['accept-language'], ttl: 300 } } }, async (request, reply) => {
    const asked = String(request.headers['accept-language'] ?? '').slice(0, 2).toLowerCase()
    const lang = asked in CATEGORIES ? asked : 'en'
    reply.header('content-language', lang)
    return await slowly(() => CATEGORIES[lang])
  })

  // The deal changes at midnight in Paris: cached until then (max-age and Expires agree). It shows a
  // product, so it sits in the lists' group and every product write drops it as well.
  app.get('/deals/today', { config: { cache: { group: 'product-lists', expires: 'endOfDay' } } }, async () => {
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(new Date()) // YYYY-MM-DD
    const all = [...products.values()]
    const pick = all[Number(today.replaceAll('-', '')) % all.length]
    return await slowly(() => ({ date: today, product: pick, discount: 0.2 }))
  })

  // ttl 0: never expires; PUT /settings replaces it (write-through), so it is never even a MISS.
  // HITs carry `Cache-Control: no-cache`, so clients revalidate with the ETag (304 Not Modified).
  app.get('/settings', { config: { cache: { ttl: 0 } } }, async () => await slowly(() => settings))

  // A streamed body: sent as it is generated and stored once complete (bodies larger than
  // maxEntrySize are streamed but not stored). A view of every product: in the lists' group.
  app.get('/report.csv', { config: { cache: { group: 'product-lists', ttl: 120 } } }, async (request, reply) => {
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

  // The user is in the URL, so the URL alone is a correct key: `private: true` only keeps shared caches
  // downstream (CDNs, proxies) from storing it. Compare GET /me, where the user is not in the URL.
  app.get<{ Params: { id: string } }>('/users/:id/summary', {
    config: { cache: { private: true, ttl: 10 } }
  }, async (request) => await slowly(() => ({
    user: request.params.id,
    openOrders: 2,
    generatedAt: new Date().toISOString()
  })))

  // not cached: no config.cache, so the plugin adds no hooks to this route
  app.get('/health', async () => ({ ok: true }))

  // ---- writes: each declares what it makes stale; a 4xx/5xx or a thrown error evicts nothing ----

  // A new product appears in lists, nowhere else.
  app.post<{ Body: Omit<Product, 'id'> }>('/products', {
    schema: { body: productBody },
    config: { cache: { evict: 'product-lists' } }
  }, async (request, reply) => {
    const product = { id: nextId++, ...request.body }
    products.set(product.id, product)
    return await reply.code(201).send(product)
  })

  // Write-through: the response body becomes the entry of GET /products/:id (its group, ttl and tags),
  // so the next read is a HIT with the new data. The lists and the reviews page (via the tag) show the
  // product too: evicted.
  app.put<{ Params: { id: number }, Body: Omit<Product, 'id'> }>('/products/:id', {
    schema: { params: idParams, body: productBody },
    config: { cache: { put: true, tags: productTags, evict: 'product-lists' } }
  }, async (request, reply) => {
    const { id } = request.params
    if (!products.has(id)) return await reply.code(404).send({ error: 'no such product' })
    const product = { id, ...request.body }
    products.set(id, product)
    return product
  })

  // Tags reach across groups: this drops the product, its reviews page (group "reviews") and the lists.
  app.patch<{ Params: { id: number }, Body: Partial<Omit<Product, 'id'>> }>('/products/:id', {
    schema: { params: idParams, body: { ...productBody, required: [] } },
    config: { cache: { tags: productTags, evict: 'product-lists' } }
  }, async (request, reply) => {
    const product = products.get(request.params.id)
    if (product === undefined) return await reply.code(404).send({ error: 'no such product' })
    Object.assign(product, request.body)
    return product
  })

  // Gone from every entry that showed it: the same tag and group as PATCH.
  app.delete<{ Params: { id: number } }>('/products/:id', {
    schema: { params: idParams },
    config: { cache: { tags: productTags, evict: 'product-lists' } }
  }, async (request, reply) => {
    if (!products.delete(request.params.id)) return await reply.code(404).send({ error: 'no such product' })
    reviews.delete(request.params.id)
    return await reply.code(204).send()
  })

  // `self: true` drops the entry of the GET on the same URL: this product's reviews page, nothing else.
  // The author's /me counts their reviews; it is keyed per user, so evict() is given the varyBy value
  // and builds the key with the route's own code.
  app.post<{ Params: { id: number }, Body: { rating: number, text: string } }>('/products/:id/reviews', {
    schema: {
      params: idParams,
      body: {
        type: 'object',
        required: ['rating', 'text'],
        additionalProperties: false,
        properties: { rating: { type: 'integer', minimum: 1, maximum: 5 }, text: { type: 'string' } }
      }
    },
    preHandler: authenticate,
    config: { cache: { evict: { self: true } } }
  }, async (request, reply) => {
    const { id } = request.params
    if (!products.has(id)) return await reply.code(404).send({ error: 'no such product' })
    const review = { author: userOf(request), ...request.body }
    reviews.set(id, [...reviews.get(id) ?? [], review])
    await app.cache.evict('/me', { varyBy: review.author })
    return await reply.code(201).send(review)
  })

  app.put<{ Body: Partial<typeof settings> }>('/settings', {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { currency: { type: 'string' }, banner: { type: 'string' } }
      }
    },
    config: { cache: { put: true } }
  }, async (request) => {
    settings = { ...settings, ...request.body }
    return settings
  })

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
