import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RouteFinder } from './api.js'
import { encodeEntry, keepFor, type CacheEntry } from './entry.js'
import { entryKeyRest, requestOrigin, varyByValue } from './request-key.js'
import type { HookContext, RouteRun } from './state.js'
import { checkTags, entryTags, pathTag } from './tags.js'
import { httpDate } from './expiry.js'
import { ancestors, entryPrefixOf, entryRest, pathOf, variant } from './keys.js'
import { ttlFor, type WriteSettings } from './options.js'
import { etagFor, payloadBytes } from './payload.js'
import { evictionFailed } from './evict-error.js'

// What a write-through entry keeps of the write's response: a GET of the resource answers with the
// representation, not with the write's Location, cookies or status.
const PUT_HEADERS = ['content-type', 'content-language', 'content-encoding', 'last-modified']

/**
 * onSend of a write route: after a 2xx response, evicts what the route declares and writes through,
 * before the response leaves, so a client that writes and then reads never sees its own write stale.
 */
export function createWriteHook (ctx: HookContext, routes: RouteFinder, w: WriteSettings) {
  const { store, keys, opts } = ctx

  return async function onWriteSend (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const status = reply.statusCode
    if (status < 200 || status > 299) return payload
    const evictions: Array<Promise<unknown>> = w.groups.map((base) => store.evictGroup(base))
    try {
      const tags = w.tags === undefined ? [] : checkTags(await w.tags(request, reply))
      if (w.byPath) tags.push(...ancestors(pathOf(request.url)).map(pathTag))
      for (const tag of tags) evictions.push(store.evictTag(tag))
    } catch (err) {
      evictions.push(Promise.reject(err))
    }
    const evicted = { failed: report(request, await Promise.allSettled(evictions), 'a write') }
    // after the evictions, which could otherwise drop the entry written through
    if (w.self || w.put !== null) report(request, await Promise.allSettled([dropAndPut(request, reply, payload, evicted)]), 'a write')
    return evicted.failed && opts.onEvictError === 'fail' ? evictionFailed(reply, payload) : payload
  }

  async function dropAndPut (request: FastifyRequest, reply: FastifyReply, payload: unknown, evicted: { failed: boolean }): Promise<void> {
    const dropping = (err: unknown): never => { evicted.failed = true; throw err }
    const read = routes.settingsOf(request.url)
    const base = w.put?.group !== undefined ? keys.base(w.put.group, w.namespace) : read?.base ?? keys.base(opts.defaultGroup, w.namespace)
    // delete first: it moves the group's generation, so a GET miss still holding older data cannot
    // store it after the new entry; a GET missing after it reads the already-committed write.
    // The URL goes under every origin it was stored for; the write-through lands under this request's.
    let key: string
    let origin: string | undefined
    if (read?.key !== undefined) {
      key = keys.custom(base, await read.key(request))
      await store.delete(key, base).catch(dropping)
    } else {
      const by = read?.varyBy === undefined ? undefined : varyByValue(await read.varyBy(request))
      const rest = read === undefined ? entryRest(request.url, undefined) : entryKeyRest(read, request.url, request.headers, by)
      await store.deleteUrl(base, rest).catch(dropping)
      origin = requestOrigin(opts, request)
      key = entryPrefixOf(base) + origin + rest
    }
    if (w.put === null) return
    const body = reply.statusCode === 204 ? undefined : payloadBytes(payload)
    if (body === undefined || body.length > opts.maxEntrySize) return
    const ttl = w.put.ttl ?? (read === undefined ? opts.ttl : await ttlFor(read, request, opts.clock, Date.now()))
    if (ttl === undefined) return
    const headers: Record<string, string> = {}
    for (const name of PUT_HEADERS) {
      const value = reply.getHeader(name)
      if (typeof value === 'string') headers[name] = value
    }
    if (read?.expires !== undefined) headers.expires = httpDate(Date.now() + ttl * 1000)
    // the entry carries what the GET route would have tagged it with, so tag and path evictions find it
    const tags = read === undefined ? [] : await entryTags(read, request)
    const entry: CacheEntry = {
      status: 200,
      headers,
      body,
      etag: etagFor(reply.getHeader('etag'), body),
      storedAt: Date.now(),
      ttl: ttl * 1000,
      swr: (read?.staleWhileRevalidate ?? 0) * 1000,
      sie: (read?.staleIfError ?? 0) * 1000,
      vary: undefined
    }
    await store.registerTags(base, tags)
    await store.write(key, base, encodeEntry(entry, tags), keepFor(entry), undefined, tags, origin)
  }
}

/**
 * RFC 9111 §4.4: a successful unsafe request invalidates its URL and the same-origin URLs it names.
 * Resolves true when an invalidation failed.
 */
export async function invalidateUnsafe (run: RouteRun, request: FastifyRequest, reply: FastifyReply, here: string): Promise<boolean> {
  const status = reply.statusCode
  if (status < 200 || status > 399) return false
  const { ctx, route } = run
  // every forwarded variant of this host
  const origin = ctx.opts.keyOrigin ? here : undefined
  const targets = new Set([request.url])
  for (const name of ['location', 'content-location']) {
    const value = reply.getHeader(name)
    const text = Array.isArray(value) ? value[0] : value
    if (typeof text !== 'string') continue
    try {
      const u = new URL(text, here + request.url)
      if (`${u.protocol}//${u.host}` === new URL(here).origin) targets.add(u.pathname + u.search)
    } catch {} // not a URL: nothing to invalidate
  }
  const by = variant(route.vary, request.headers, undefined)
  const results = await Promise.allSettled([...targets].map(async (url) => await ctx.store.deleteUrl(route.base, entryRest(url, by, true), origin)))
  return report(request, results, 'an unsafe request')
}

/** Logs the invalidations that failed after `what`; true when one did. */
function report (request: FastifyRequest, results: Array<PromiseSettledResult<unknown>>, what: string): boolean {
  let failed = false
  for (const r of results) {
    if (r.status === 'rejected') {
      failed = true
      request.log.error({ err: r.reason }, `fastify-http-cache: invalidation after ${what} failed; what it covers is not served until it is replayed`)
    }
  }
  return failed
}
