import type { Cluster, Redis } from 'ioredis'

/** Plugin options, given once to `register`. */
export interface HttpCacheOptions {
  /** ioredis client (standalone or Cluster) or a redis:// URL. Omitted: `fastify.redis`, else memory. */
  redis?: Redis | Cluster | string
  /** Prefix of every key this plugin writes. Default `http-cache`. */
  prefix?: string
  /** Default TTL in seconds for routes that give none; 0 = never expires. Default 60. */
  ttl?: number
  /** Name of the HIT/MISS/BYPASS response header, or false for none. Default `x-cache`. */
  statusHeader?: string | false
  /** Largest body stored, in bytes; larger responses are served but not stored. Default 10 MiB. */
  maxEntrySize?: number
  /** Bounds of the in-memory store (used when no Redis is configured). */
  memory?: { maxBytes?: number }
  /** Honour the client's Cache-Control / Pragma request directives. Default true. */
  clientDirectives?: boolean
  /** Upper bound in ms of every Redis call made by the plugin. Default 250. */
  timeout?: number
  /** Group of routes and values that name none. Default `default`. */
  defaultGroup?: string
}

/** Per-route options: `config: { cache: true | RouteCacheOptions }`. */
export interface RouteCacheOptions {
  /** TTL in seconds; 0 = never expires. Default: the plugin's `ttl`. */
  ttl?: number
  /** Eviction group the entry belongs to (a Redis hash tag: one slot per group). */
  group?: string
  /** Emit `Cache-Control: private` so shared caches downstream do not store the response. */
  private?: boolean
  /** Override the plugin's `clientDirectives` for this route. */
  clientDirectives?: boolean
}

/** Options of a write route (POST, PUT, PATCH, DELETE): `config: { cache: WriteCacheOptions }`. */
export interface WriteCacheOptions {
  /**
   * What a successful (2xx) response invalidates, before it is released to the client: a group, a list
   * of groups, or `{ self: true }` for the entry of the GET on the same URL (with `groups` too if wanted).
   */
  evict?: string | string[] | { self?: boolean, groups?: string | string[] }
  /** PUT/PATCH write-through: the 2xx response body becomes the entry of the GET on the same URL. */
  put?: boolean
  /** With `put`: TTL of the stored entry in seconds (default: the GET route's, else the plugin's). */
  ttl?: number
  /** With `put`: group of the stored entry (default: the GET route's, else the default group). */
  group?: string
}

export interface CacheValueOptions {
  /** Seconds; 0 = never expires. Default: the plugin's `ttl`. */
  ttl?: number
  /** Group the value belongs to, so `evictGroup` drops it with the routes of that group. */
  group?: string
}

/** `fastify.cache` */
export interface HttpCacheApi {
  /** Drops every entry and value of a group; resolves to the number removed. */
  evictGroup (group: string): Promise<number>
  /** Drops the entry a GET of `url` would hit (group taken from the matching route unless given). */
  evict (url: string, options?: { group?: string }): Promise<boolean>
  /** Reads an application value stored with `set`. */
  get<T = unknown> (key: string, options?: { group?: string }): Promise<T | undefined>
  /** Stores an application value (msgpack-encoded). */
  set (key: string, value: unknown, options?: CacheValueOptions): Promise<void>
  has (key: string, options?: { group?: string }): Promise<boolean>
  delete (key: string, options?: { group?: string }): Promise<boolean>
  /** Drops everything under this plugin's prefix (never FLUSHDB); resolves to the number removed. */
  clear (): Promise<number>
  /** Which store serves this instance. */
  readonly storeName: 'memory' | 'redis'
}

declare module 'fastify' {
  interface FastifyInstance {
    cache: HttpCacheApi
  }
  interface FastifyContextConfig {
    cache?: boolean | RouteCacheOptions | WriteCacheOptions
  }
}
