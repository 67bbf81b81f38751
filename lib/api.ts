import FindMyWay from 'find-my-way'
import type { FastifyBaseLogger } from 'fastify'
import { decodeValue, encodeValue } from './entry.js'
import { assertName, type KeyBuilder } from './keys.js'
import { checkTtl, type ResolvedOptions, type RouteSettings } from './options.js'
import type { Store } from './stores/store.js'
import type { CacheValueOptions, HttpCacheApi } from './types.js'

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

export function createApi (opts: ResolvedOptions, store: Store, keys: KeyBuilder, routes: RouteFinder, log: FastifyBaseLogger): HttpCacheApi {
  const groupOption = (o: { group?: string } | undefined): string =>
    o?.group === undefined ? opts.defaultGroup : assertName('group', o.group)
  const name = (key: unknown): string => {
    if (typeof key !== 'string' || key.length === 0) throw new TypeError('fastify-http-cache: key must be a non-empty string')
    return key
  }

  // Reads degrade to "absent" when the store fails: a cache outage must not fail the caller.
  async function read (key: string, options: { group?: string } | undefined): Promise<{ value: unknown } | undefined> {
    const group = groupOption(options)
    const k = keys.value(group, name(key))
    try {
      const { value } = await store.lookup(k, group)
      return value === null ? undefined : decodeValue(value)
    } catch (err) {
      log.debug({ err }, 'fastify-http-cache: read failed, answered as absent')
      return undefined
    }
  }

  return {
    storeName: store.name,
    async evictGroup (group) {
      return await store.evictGroup(assertName('group', group))
    },
    async evict (url, options) {
      if (typeof url !== 'string' || !url.startsWith('/')) throw new TypeError(`fastify-http-cache: evict() takes a URL path starting with "/", got ${JSON.stringify(url)}`)
      const group = options?.group !== undefined ? assertName('group', options.group) : routes.settingsOf(url)?.group ?? opts.defaultGroup
      return await store.delete(keys.entry(group, url), group)
    },
    async get<T> (key: string, options?: { group?: string }) {
      return (await read(key, options))?.value as T | undefined
    },
    async set (key, value, options?: CacheValueOptions) {
      const group = groupOption(options)
      const ttl = options?.ttl === undefined ? opts.ttl : checkTtl('ttl', options.ttl)
      await store.write(keys.value(group, name(key)), group, encodeValue(value), ttl * 1000)
    },
    async has (key, options) {
      return (await read(key, options)) !== undefined
    },
    async delete (key, options) {
      const group = groupOption(options)
      return await store.delete(keys.value(group, name(key)), group)
    },
    async clear () {
      return await store.clear()
    }
  }
}
