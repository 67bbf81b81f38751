// An API gateway cached by fastify-http-cache: a Fastify app forwarding every request to an upstream
// origin with @fastify/reply-from, the plugin in front of the proxying route.
//
//   npm run example:gateway                                   origin on :3001, gateway on :3000, memory store
//   REDIS_URL=redis://127.0.0.1:6379 npm run example:gateway  the same gateway on Redis
//
// Settings (environment):
//   PORT       the gateway's port (3000); HOST its address (127.0.0.1)
//   UPSTREAM   the origin to forward to, e.g. http://127.0.0.1:8000; unset: the demo origin below is
//              started on ORIGIN_PORT (3001) and used
//   POLICY     ttl (default): what the plugin does today, GET /* cached for 60 s whatever the origin says,
//              writes evicting their path (autoInvalidate); every other method passes through uncached.
//              http: one `all('/*')` route with `config: { cache: { policy: 'http' } }`, the origin's
//              headers decide (RFC 9111 shared cache; needs a plugin that has `policy: 'http'`)
//   CACHE=off  no plugin at all: the bare gateway (the baseline the conformance suite measures)
//   LOG_LEVEL  pino level (info)
//
// Then try (watch x-cache, and x-origin-requests: how many requests the origin has seen):
//   curl -i localhost:3000/articles                 MISS, then HIT
//   curl -i localhost:3000/articles/1               ETag, Last-Modified; add -H 'if-none-match: <etag>' for a 304
//   curl -i localhost:3000/greeting -H 'accept-language: fr'    Vary: Accept-Language (http policy: one entry per value)
//   curl -i localhost:3000/clock                    Cache-Control: no-store (http policy: never stored)
//   curl -i -X POST localhost:3000/articles -H 'content-type: application/json' -d '{"title":"Hello"}'
//                                                   201; Location names the gateway, not the origin;
//                                                   GET /articles is then a MISS again
//
// Why @fastify/reply-from rather than @fastify/http-proxy: http-proxy registers its own routes, and the
// gateway needs to own the route (its config.cache, the methods it accepts) and the upstream response
// (status 999 relayed verbatim, hop-by-hop headers dropped, Location rewritten). reply-from gives
// exactly that: `reply.from()` inside a handler we write, with rewriteHeaders / onResponse / onError.
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteHandlerMethod } from 'fastify'
import replyFrom from '@fastify/reply-from'
import httpCache from '../index.js'

export interface GatewayOptions {
  /** Origin every request is forwarded to, e.g. `http://127.0.0.1:8000`. */
  upstream: string
  /** `off`: no plugin; `ttl`: the plugin as it is today; `http`: `policy: 'http'` on `all('/*')`. */
  mode: 'off' | 'ttl' | 'http'
  /** Redis URL; omitted: the memory store. */
  redis?: string
  /** Prefix of the plugin's keys (so several runs can share a Redis). */
  prefix?: string
  logLevel?: string
}

// RFC 9110 §7.6.1: meaningful for one connection only; an intermediary never forwards them (nor the
// fields the Connection header names). `proxy-connection` and `keep-alive` are the pre-standard ones.
const HOP_BY_HOP = ['connection', 'proxy-connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade', 'trailer']

function connectionListed (value: string | string[] | undefined): string[] {
  if (value === undefined) return []
  return (Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).map((v) => v.trim().toLowerCase()).filter((v) => v !== '')
}

/** The upstream response's headers as a correct intermediary relays them. */
export function relayHeaders (headers: IncomingHttpHeaders, upstream: URL, gateway: string): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...headers }
  for (const name of [...HOP_BY_HOP, ...connectionListed(headers.connection)]) delete out[name]
  // Origins often answer absolute URLs naming themselves; the client (and the cache's same-origin
  // invalidation, RFC 9111 §4.4) must see the gateway's.
  for (const name of ['location', 'content-location'] as const) {
    const value = out[name]
    if (typeof value !== 'string') continue
    try {
      const url = new URL(value)
      if (url.origin === upstream.origin) out[name] = gateway + value.slice(url.origin.length)
    } catch {
      // a relative reference (or garbage): relayed as it is
    }
  }
  return out
}

export async function buildGateway (options: GatewayOptions): Promise<FastifyInstance> {
  const upstream = new URL(options.upstream)
  const level = options.logLevel ?? 'info'
  const app = Fastify({ logger: { level }, logController: new LogController({ disableRequestLogging: level !== 'debug' && level !== 'trace' }) })

  // the cache-tests invalidation tests send this unknown method, with a body; must come before the routes
  app.addHttpMethod('M-SEARCH', { hasBody: true })
  // Request bodies are forwarded as they came, never parsed: any content type, or none.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', function (_request, payload, done) { done(null, payload) })

  await app.register(replyFrom, {
    base: upstream.origin,
    disableRequestLogging: true,
    // reply-from forwards what the origin sent; an unknown status it cannot set is relayed below
    undici: { headersTimeout: 30_000, bodyTimeout: 30_000 }
  })

  if (options.mode !== 'off') {
    await app.register(httpCache, {
      ...(options.redis !== undefined && options.redis !== '' ? { redis: options.redis } : {}),
      prefix: options.prefix ?? 'gateway',
      ttl: 60,
      autoInvalidate: options.mode === 'ttl'
    })
    app.log.info(`fastify-http-cache store: ${app.cache.storeName}, policy ${options.mode}`)
  }

  const forward: RouteHandlerMethod = function (request: FastifyRequest, reply: FastifyReply) {
    const gateway = `${request.protocol}://${request.host}`
    return reply.from(undefined, {
      // reply-from retries a GET answered 503 up to 10 times (maxRetriesOn503: 0 is read as "unset"):
      // an origin's 503 is an answer to relay, not a reason to ask again
      retryDelay: () => null,
      // reply-from forwards request.raw.headers (not Fastify's request.headers). The plugin sets the
      // validators of a revalidation on both, and takes its background refresh's marker off both.
      rewriteHeaders: (headers) => relayHeaders(headers as IncomingHttpHeaders, upstream, gateway),
      onError: (reply, { error }) => {
        // Fastify's reply.code() refuses statuses above 599; reply-from then calls this with a 502 and
        // goes on to onResponse, which relays the status verbatim (cache-tests' origin answers 999 when
        // it expected a conditional request).
        if ((error as { code?: string }).code === 'FST_REPLY_FROM_BAD_GATEWAY') return
        reply.send(error)
      },
      onResponse: (_request, reply, res) => {
        const status = res.statusCode
        if (status >= 100 && status <= 599) {
          reply.send(res.stream)
          return
        }
        reply.hijack()
        reply.raw.writeHead(status, reply.getHeaders() as IncomingHttpHeaders)
        res.stream.pipe(reply.raw)
      }
    })
  }

  if (options.mode === 'http') {
    // the origin's headers decide; CDN-Cache-Control (RFC 9213) speaks to this cache over Cache-Control
    app.all('/*', { config: { cache: { policy: 'http', targeted: ['CDN-Cache-Control'] } } }, forward)
  } else if (options.mode === 'ttl') {
    // The plugin today: cached routes are GET-only (HEAD is Fastify's automatic HEAD route of the
    // GET), writes evict their path; other methods pass through on a route of their own.
    app.get('/*', { config: { cache: { ttl: 60 } } }, forward)
    const writes = ['POST', 'PUT', 'PATCH', 'DELETE']
    app.route({ method: writes, url: '/*', handler: forward })
    const others = app.supportedMethods.filter((m) => m !== 'GET' && m !== 'HEAD' && !writes.includes(m))
    app.route({ method: others, url: '/*', handler: forward })
  } else {
    app.all('/*', forward)
  }
  return app
}

// ---- the demo origin: a few routes whose headers a shared cache obeys under policy 'http' ----

interface Article { id: number, title: string, updated: number }

export async function buildOrigin (logLevel = 'info'): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: logLevel, msgPrefix: 'origin: ' }, logController: new LogController({ disableRequestLogging: true }) })
  const articles = new Map<number, Article>([
    [1, { id: 1, title: 'Caching at the edge', updated: Date.now() }],
    [2, { id: 2, title: 'Validators and 304s', updated: Date.now() }]
  ])
  let nextId = 3
  let seen = 0
  app.addHook('onRequest', async (_request, reply) => { reply.header('x-origin-requests', ++seen) })

  // a strong ETag of the representation; a matching If-None-Match is answered 304 without the body
  const conditional = (request: FastifyRequest, reply: FastifyReply, body: unknown, updated: number): unknown => {
    const etag = `"${createHash('sha1').update(JSON.stringify(body)).digest('base64url').slice(0, 16)}"`
    reply.header('etag', etag).header('last-modified', new Date(updated).toUTCString())
    return request.headers['if-none-match'] === etag ? reply.code(304).send() : body
  }

  app.get('/articles', async (request, reply) => {
    reply.header('cache-control', 'public, max-age=30')
    const list = [...articles.values()]
    return conditional(request, reply, list, Math.max(0, ...list.map((a) => a.updated)))
  })
  app.get<{ Params: { id: string } }>('/articles/:id', async (request, reply) => {
    const article = articles.get(Number(request.params.id))
    if (article === undefined) return await reply.code(404).header('cache-control', 'max-age=10').send({ error: 'no such article' })
    // fresh for a minute, then served stale for 30 s while one refresh runs
    reply.header('cache-control', 'max-age=60, stale-while-revalidate=30')
    return conditional(request, reply, article, article.updated)
  })
  app.get('/greeting', async (request, reply) => {
    const fr = String(request.headers['accept-language'] ?? '').toLowerCase().startsWith('fr')
    reply.header('cache-control', 'max-age=300').header('vary', 'Accept-Language').header('content-language', fr ? 'fr' : 'en')
    return { greeting: fr ? 'Bonjour' : 'Hello' }
  })
  app.get('/clock', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    return { now: new Date().toISOString() }
  })
  app.post<{ Body: { title?: unknown } }>('/articles', async (request, reply) => {
    const title = typeof request.body?.title === 'string' ? request.body.title : 'Untitled'
    const article = { id: nextId++, title, updated: Date.now() }
    articles.set(article.id, article)
    // absolute, naming the origin itself: the gateway rewrites it to its own origin
    const self = `http://${request.host}/articles/${article.id}`
    return await reply.code(201).header('location', self).header('content-location', self).send(article)
  })
  app.put<{ Params: { id: string }, Body: { title?: unknown } }>('/articles/:id', async (request, reply) => {
    const article = articles.get(Number(request.params.id))
    if (article === undefined) return await reply.code(404).send({ error: 'no such article' })
    if (typeof request.body?.title === 'string') article.title = request.body.title
    article.updated = Date.now()
    return article
  })
  app.delete<{ Params: { id: string } }>('/articles/:id', async (request, reply) => {
    if (!articles.delete(Number(request.params.id))) return await reply.code(404).send({ error: 'no such article' })
    return await reply.code(204).send()
  })
  return app
}

function modeOf (env: NodeJS.ProcessEnv): GatewayOptions['mode'] {
  if (env.CACHE === 'off') return 'off'
  const policy = env.POLICY ?? 'ttl'
  if (policy !== 'ttl' && policy !== 'http') throw new TypeError(`POLICY must be ttl or http, got ${policy}`)
  return policy
}

async function main (): Promise<void> {
  const host = process.env.HOST ?? '127.0.0.1'
  const logLevel = process.env.LOG_LEVEL ?? 'info'
  const apps: FastifyInstance[] = []
  let upstream = process.env.UPSTREAM
  if (upstream === undefined || upstream === '') {
    const origin = await buildOrigin(logLevel)
    apps.push(origin)
    upstream = await origin.listen({ host: '127.0.0.1', port: Number(process.env.ORIGIN_PORT ?? 3001) })
  }
  const gateway = await buildGateway({ upstream, mode: modeOf(process.env), redis: process.env.REDIS_URL, prefix: process.env.CACHE_PREFIX, logLevel })
  apps.unshift(gateway)

  const close = (signal: string): void => {
    gateway.log.info(`${signal}: closing`)
    Promise.all(apps.map(async (a) => await a.close())).then(() => process.exit(0), (err: unknown) => {
      gateway.log.error({ err }, 'close failed')
      process.exit(1)
    })
  }
  process.once('SIGINT', close)
  process.once('SIGTERM', close)

  const address = await gateway.listen({ host, port: Number(process.env.PORT ?? 3000) })
  gateway.log.info(`gateway ${address} -> ${upstream}`)
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
}
