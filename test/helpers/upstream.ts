import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import replyFrom from '@fastify/reply-from'
import httpCache from '../../index.js'
import type { HttpCacheOptions, RouteCacheConfig } from '../../lib/types.js'
import type { Backend, TapLike } from './app.js'

/** What the upstream answers a request with. */
export interface Scripted { status?: number, headers?: OutgoingHttpHeaders, body?: string }
export type Script = (request: { method: string, url: string, headers: IncomingHttpHeaders, count: number }) => Scripted

/** A real origin server: each path answers by its script and counts the requests that reached it. */
export interface Upstream {
  url: string
  /** Sets how a path answers (the request count of that path is passed to the script). */
  on (path: string, script: Script): void
  /** Requests that reached a path. */
  count (path: string): number
  /** The headers of the last request that reached a path. */
  last (path: string): IncomingHttpHeaders | undefined
}

export async function startUpstream (t: TapLike): Promise<Upstream> {
  const scripts = new Map<string, Script>()
  const counts = new Map<string, number>()
  const lasts = new Map<string, IncomingHttpHeaders>()
  const server = http.createServer((req, res) => {
    req.resume()
    const path = (req.url ?? '/').split('?')[0]
    const count = (counts.get(req.url ?? '/') ?? 0) + 1
    counts.set(req.url ?? '/', count)
    lasts.set(req.url ?? '/', req.headers)
    const script = scripts.get(path)
    const out = script === undefined ? { status: 404, body: 'no script' } : script({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, count })
    res.writeHead(out.status ?? 200, { 'content-type': 'text/plain', ...out.headers })
    res.end(req.method === 'HEAD' ? undefined : (out.body ?? `${req.method ?? ''} ${req.url ?? ''} #${count}`))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => await new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const port = (server.address() as { port: number }).port
  return {
    url: `http://127.0.0.1:${port}`,
    on (path, script) { scripts.set(path, script) },
    count (path) { return counts.get(path) ?? 0 },
    last (path) { return lasts.get(path) }
  }
}

/**
 * A Fastify gateway in front of `upstream` through @fastify/reply-from, the plugin registered with
 * `options` on `backend`, every method of `/*` on one route with `cache`.
 */
export async function startGateway (t: TapLike, backend: Backend, upstream: Upstream, options: HttpCacheOptions = {}, cache: RouteCacheConfig = { policy: 'http' }): Promise<FastifyInstance> {
  const app = Fastify()
  app.addHttpMethod('M-SEARCH', { hasBody: true })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload))
  await app.register(replyFrom, { base: upstream.url })
  await app.register(httpCache, { ...(await backend.options(t)), ...options })
  const forward = (_request: FastifyRequest, reply: FastifyReply): FastifyReply => reply.from(undefined, { retryDelay: () => null })
  app.all('/*', { config: { cache } }, forward)
  t.teardown(() => app.close())
  return app
}

/** An HTTP-date `s` seconds from now (negative: in the past). */
export const dateIn = (s: number): string => new Date(Date.now() + s * 1000).toUTCString()
