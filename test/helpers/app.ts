import Fastify, { type FastifyInstance } from 'fastify'
import httpCache from '../../index.js'
import type { HttpCacheOptions } from '../../lib/types.js'
import { startRedis, type TestRedis } from './redis.js'

interface TapLike { teardown (fn: () => unknown): void }

export interface Backend {
  name: 'memory' | 'redis'
  /** Plugin options selecting this backend, with a prefix of its own so tests never share entries. */
  options (t: TapLike): Promise<HttpCacheOptions>
}

let prefixes = 0

/** The two stores every behavioural test runs against; the Redis one starts its server lazily, once. */
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
