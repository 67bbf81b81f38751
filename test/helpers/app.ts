import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import type { Redis } from 'ioredis'
import httpCache from '../../index.js'
import type { HttpCacheOptions } from '../../lib/types.js'
import { startRedis, type TapLike, type TestRedis } from './redis.js'

export type { TapLike }

export interface Backend {
  name: 'memory' | 'redis'
  /** Plugin options selecting this backend, with a prefix of its own so tests never share entries. */
  options (t: TapLike): Promise<HttpCacheOptions>
}

let prefixes = 0

/** The two stores every behavioural test runs against; the Redis one starts its server lazily, once. */
/**
 * What clear() resolves to after removing `n` entries: the memory store counts them; Redis makes them
 * unreachable in O(1) and reclaims them behind the call, counting nothing on it.
 */
export const cleared = (backend: Backend, n: number): number => backend.name === 'memory' ? n : 0

export function backends (t: TapLike): Backend[] {
  let redis: Promise<TestRedis> | undefined
  return [
    { name: 'memory', options: async () => ({}) },
    {
      name: 'redis',
      async options () {
        redis ??= startRedis(t)
        // generous bound: a CI machine busy compiling tests can stall the event loop past the default
        return { redis: (await redis).client(), prefix: `t${++prefixes}`, timeout: 2000 }
      }
    }
  ]
}

export async function build (t: TapLike, backend: Backend, options: HttpCacheOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(httpCache, { ...(await backend.options(t)), ...options })
  t.teardown(() => app.close())
  return app
}

export type Open = (t: TapLike, backend: Backend, options?: HttpCacheOptions) => Promise<{ app: FastifyInstance, redis: Redis | undefined, prefix: string }>

/**
 * `open(t, backend, options)` for one test file: an app with a prefix the test knows (`<label>1`,
 * `<label>2`, …), and (Redis) a client on the same server to look at its keys.
 */
export function opener (label: string): Open {
  let opened = 0
  return async (t, backend, options = {}) => {
    const base = await backend.options(t)
    const prefix = `${label}${++opened}`
    const app = Fastify()
    await app.register(httpCache, { ...base, prefix, ...options })
    t.teardown(() => app.close())
    return { app, redis: base.redis as Redis | undefined, prefix }
  }
}

/** A route as a JavaScript user could write it: config.cache unchecked by the compiler. */
export interface RouteSpec { method?: string | string[], config?: Record<string, unknown> }

/** Registers the plugin with `options` (memory store) and returns the error it fails with. */
export async function registerError (t: TapLike, options: unknown): Promise<unknown> {
  const app = Fastify()
  t.teardown(() => app.close())
  try {
    await app.register(httpCache, options as HttpCacheOptions)
    await app.ready()
  } catch (err) {
    return err
  }
  return undefined
}

/** Registers the plugin, then a route, and returns the error the route fails with (sync or at ready). */
export async function routeError (t: TapLike, route: RouteSpec): Promise<unknown> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(httpCache)
  try {
    app.route({ method: 'GET', url: '/r', handler: async () => 'ok', ...route } as RouteOptions)
    await app.ready()
  } catch (err) {
    return err
  }
  return undefined
}
