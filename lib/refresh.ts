// Background refresh (stale-while-revalidate): one GET through the app per expired key, marked with
// this instance's secret so the lookup lets it reach the handler and store what it answers.
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import type { HookContext } from './state.js'

/** Carries the secret of a background refresh (stale-while-revalidate) made by this instance. */
export const REVALIDATE_HEADER = 'x-http-cache-revalidate'

// A refresh copies the original request's headers, minus those that would make it answer differently.
const NOT_REPLAYED = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'cache-control', 'pragma', 'range', 'content-length']

/**
 * Whether a request is a background refresh made by this instance. The marker is taken off the request
 * either way (Fastify's copy and the raw one), so a proxying handler never forwards it upstream.
 */
export function isOwnRefresh (ctx: HookContext, request: FastifyRequest): boolean {
  const headers = request.headers
  const mark = headers[REVALIDATE_HEADER]
  if (mark === undefined) return false
  delete headers[REVALIDATE_HEADER]
  delete request.raw.headers[REVALIDATE_HEADER]
  return mark === ctx.token
}

export function revalidate (ctx: HookContext, request: FastifyRequest, key: string): void {
  if (ctx.refreshing.has(key)) return
  ctx.refreshing.add(key)
  const headers: IncomingHttpHeaders = { ...request.headers, [REVALIDATE_HEADER]: ctx.token }
  for (const name of NOT_REPLAYED) delete headers[name]
  ctx.pending.start()
  ctx.inject(request.url, headers)
    .then((res) => {
      if (res.statusCode >= 400) request.log.debug({ statusCode: res.statusCode }, 'fastify-http-cache: background refresh failed, the stale entry stays')
    }, (err: unknown) => request.log.debug({ err }, 'fastify-http-cache: background refresh failed'))
    .finally(() => {
      ctx.refreshing.delete(key)
      ctx.pending.end()
    })
}
