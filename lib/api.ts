import FindMyWay from 'find-my-way'
import type { FastifyBaseLogger } from 'fastify'
import { decodeValue, encodeValue } from './entry.js'
import { entryKeyRest, varyByValue } from './request-key.js'
import type { HookContext } from './state.js'
import { assertName, entryRest } from './keys.js'
import { checkTtl, routeNamespace, type RouteSettings } from './options.js'
import type { CacheValueOptions, GroupOptions, HttpCacheApi, WrapOptions } from './types.js'

export interface RouteFinder {
  add (url: string, settings: RouteSettings): void
  /** Settings of the cached GET route a URL would hit. */
  settingsOf (url: string): RouteSettings | undefined
}

/** Finds the cached GET route a URL would hit, with the router Fastify itself uses. */
export function createRouteFinder (routerOptions: FindMyWay.Config<FindMyWay.HTTPVersion.V1>): RouteFinder {
  const router = FindMyWay({ ...routerOptions, defaultRoute: undefined })
  return {
    add (url, settings) {
      if (!router.hasRoute('GET', url)) router.on('GET', url, () => {}, settings)
    },
    settingsOf (url) {
      const q = url.indexOf('?')
      const found = router.find('GET', q === -1 ? url : url.slice(0, q))
      return found?.store as RouteSettings | undefined
    }
  }
}

export function createApi ({ opts, store, keys, stats }: HookContext, routes: RouteFinder, log: FastifyBaseLogger): HttpCacheApi {
  // a namespace given here combines with the plugin's exactly as a route's does
  const namespaceOf = (o: { namespace?: string } | undefined): string | undefined =>
    routeNamespace('namespace', o?.namespace, opts)
  const baseOf = (o: GroupOptions | undefined): string =>
    keys.base(o?.group === undefined ? opts.defaultGroup : assertName('group', o.group), namespaceOf(o))
  const name = (key: unknown): string => {
    if (typeof key !== 'string' || key.length === 0) throw new TypeError('fastify-http-cache: key must be a non-empty string')
    return key
  }
  const tagList = (tags: unknown): string[] => {
    if (tags === undefined) return []
    if (!Array.isArray(tags)) throw new TypeError('fastify-http-cache: tags must be an array of tag names')
    return tags.map((tag) => assertName('a tag', tag))
  }

  // Reads degrade to "absent" when the store fails: a cache outage must not fail the caller.
  async function read (key: string, base: string): Promise<{ found: { value: unknown } | undefined, generation: string | undefined }> {
    try {
      const { value, generation } = await store.lookup(key, base)
      return { found: value === null ? undefined : decodeValue(value), generation }
    } catch (err) {
      log.debug({ err }, 'fastify-http-cache: read failed, answered as absent')
      return { found: undefined, generation: undefined }
    }
  }

  return {
    storeName: store.name,
    stats: () => stats.snapshot(store),
    async evictGroup (group, options) {
      return await store.evictGroup(keys.base(assertName('group', group), namespaceOf(options)))
    },
    async evictTag (tag) {
      return await store.evictTag(assertName('tag', tag))
    },
    async evict (url, options) {
      const { path, origin } = target(url, opts.keyOrigin)
      const route = routes.settingsOf(path)
      if (route === undefined) {
        const base = baseOf(options)
        return (await store.deleteUrl(base, entryRest(path, undefined), origin)) > 0
      }
      const base = options?.group !== undefined || options?.namespace !== undefined
        ? keys.base(options.group === undefined ? route.group : assertName('group', options.group), options.namespace === undefined ? route.namespace : namespaceOf(options))
        : route.base
      if (route.key !== undefined) {
        if (typeof options?.key !== 'string' || options.key.length === 0) throw new TypeError('fastify-http-cache: evict() of a route with a key builder needs options.key')
        return await store.delete(keys.custom(base, options.key), base)
      }
      const by = options?.varyBy === undefined ? undefined : varyByValue(options.varyBy)
      return (await store.deleteUrl(base, entryKeyRest(route, path, lowerCase(options?.headers), by), origin)) > 0
    },
    async get<T> (key: string, options?: GroupOptions) {
      const base = baseOf(options)
      return (await read(keys.value(base, name(key)), base)).found?.value as T | undefined
    },
    async set (key, value, options?: CacheValueOptions & { namespace?: string }) {
      const base = baseOf(options)
      const ttl = options?.ttl === undefined ? opts.ttl : checkTtl('ttl', options.ttl)
      const tags = tagList(options?.tags)
      await store.registerTags(base, tags)
      await store.write(keys.value(base, name(key)), base, encodeValue(value, tags), ttl * 1000, undefined, tags)
    },
    async has (key, options) {
      const base = baseOf(options)
      return (await read(keys.value(base, name(key)), base)).found !== undefined
    },
    async delete (key, options) {
      const base = baseOf(options)
      return await store.delete(keys.value(base, name(key)), base)
    },
    wrap<A extends unknown[], R> (fn: (...args: A) => Promise<R>, options: WrapOptions<A>) {
      if (typeof fn !== 'function') throw new TypeError('fastify-http-cache: wrap() takes an async function')
      if (options === null || typeof options !== 'object' || typeof options.key !== 'function') {
        throw new TypeError('fastify-http-cache: wrap() needs options with a key function, e.g. { key: (id) => \'user:\' + id }')
      }
      const base = baseOf(options)
      const ttl = options.ttl === undefined ? opts.ttl : checkTtl('ttl', options.ttl)
      const fixed = typeof options.tags === 'function' ? undefined : tagList(options.tags)
      const tagsOf = (args: A): string[] => fixed ?? tagList((options.tags as (...a: A) => string[])(...args))
      // one run per key and generation: a call made after an eviction never joins a run from before it
      const inflight = new Map<string, Promise<R>>()
      return async (...args: A): Promise<R> => {
        const key = keys.value(base, `w:${name(options.key(...args))}`)
        const { found, generation } = await read(key, base)
        if (found !== undefined) return found.value as R
        const flight = `${generation ?? ''} ${key}`
        const running = inflight.get(flight)
        if (running !== undefined) return await running
        const call = (async () => {
          const tags = tagsOf(args)
          // registered before fn runs, so a tag eviction racing fn moves this group's generation
          const registered = generation !== undefined && await store.registerTags(base, tags).then(() => true, () => false)
          const value = await fn(...args)
          // conditional on the generation read above: an eviction during fn() wins over its result
          if (registered) {
            await store.write(key, base, encodeValue(value, tags), ttl * 1000, generation, tags)
              .catch((err: unknown) => log.debug({ err }, 'fastify-http-cache: wrap could not store a result'))
          }
          return value
        })().finally(() => inflight.delete(flight))
        inflight.set(flight, call)
        return await call
      }
    },
    async clear (options) {
      return await store.clear(keys.namespaceStart(namespaceOf(options)))
    }
  }
}

// A path evicts the URL under every origin; an absolute URL under its own (and its forwarded variants).
export function target (url: unknown, keyOrigin: boolean): { path: string, origin: string | undefined } {
  if (typeof url === 'string' && url.startsWith('/')) return { path: url, origin: undefined }
  if (typeof url === 'string' && /^https?:\/\//i.test(url)) {
    try {
      const u = new URL(url)
      return { path: u.pathname + u.search, origin: keyOrigin ? `${u.protocol.slice(0, -1)}://${u.host}` : undefined }
    } catch {}
  }
  throw new TypeError(`fastify-http-cache: evict() takes a URL path starting with "/" or an absolute http(s) URL, got ${JSON.stringify(url)}`)
}

function lowerCase (headers: Record<string, string | string[] | undefined> | undefined): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {}
  for (const name in headers) out[name.toLowerCase()] = headers[name]
  return out
}
