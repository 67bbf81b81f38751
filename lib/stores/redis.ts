import type { Cluster, Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { Guard } from '../guard.js'
import type { KeyBuilder } from '../keys.js'
import type { Store } from './store.js'

// Every script touches only keys of one group (one hash tag), so each runs on one Cluster slot.

// KEYS: entry, index, generation. ARGV: value, ttl ms (0 = none)[, generation read at lookup].
// Returns 0 (not written: evicted meanwhile), 1 (written), 2 (written, first key of the group).
const WRITE = `
if ARGV[3] ~= nil and (redis.call('GET', KEYS[3]) or '') ~= ARGV[3] then return 0 end
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[1]) end
local existed = redis.call('EXISTS', KEYS[2])
redis.call('SADD', KEYS[2], KEYS[1])
if ttl > 0 then
  local left = redis.call('PTTL', KEYS[2])
  if existed == 0 or (left >= 0 and left < ttl) then redis.call('PEXPIRE', KEYS[2], ttl) end
else
  redis.call('PERSIST', KEYS[2])
end
-- drop up to two expired members per write so the index stays proportional to live keys
local some = redis.call('SRANDMEMBER', KEYS[2], 2)
for i = 1, #some do
  if redis.call('EXISTS', some[i]) == 0 then redis.call('SREM', KEYS[2], some[i]) end
end
if existed == 0 then return 2 end
return 1
`

// KEYS: index, generation. Returns how many keys existed.
const EVICT_GROUP = `
redis.call('INCR', KEYS[2])
local keys = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #keys, 500 do
  n = n + redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys)))
end
redis.call('UNLINK', KEYS[1])
return n
`

// KEYS: key, index, generation.
const DELETE = `
redis.call('INCR', KEYS[3])
redis.call('SREM', KEYS[2], KEYS[1])
return redis.call('UNLINK', KEYS[1])
`

type Client = (Redis | Cluster) & {
  httpCacheWrite (entry: string, index: string, gen: string, value: Buffer, ttl: number, expected?: string): Promise<number>
  httpCacheEvictGroup (index: string, gen: string): Promise<number>
  httpCacheDelete (key: string, index: string, gen: string): Promise<number>
}

export class RedisStore implements Store {
  readonly name = 'redis'
  readonly client: Client
  readonly guard: Guard

  constructor (client: Redis | Cluster, private readonly keys: KeyBuilder, timeout: number, log: FastifyBaseLogger, private readonly owned: boolean) {
    this.client = client as Client
    if (typeof this.client.httpCacheWrite !== 'function') {
      client.defineCommand('httpCacheWrite', { numberOfKeys: 3, lua: WRITE })
      client.defineCommand('httpCacheEvictGroup', { numberOfKeys: 2, lua: EVICT_GROUP })
      client.defineCommand('httpCacheDelete', { numberOfKeys: 3, lua: DELETE })
    }
    this.guard = new Guard({ timeout, log, isReady: () => client.status === 'ready' })
  }

  /** Resolves true once the client is ready, false after `ms`; connects a lazyConnect client. */
  async waitReady (ms: number): Promise<boolean> {
    const c = this.client
    if (c.status === 'ready') return true
    if (c.status === 'wait') c.connect().catch(() => {}) // failures surface through the guard
    return await new Promise<boolean>((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer)
        c.off('ready', onReady)
        resolve(ok)
      }
      const onReady = (): void => done(true)
      const timer = setTimeout(() => done(false), ms)
      c.once('ready', onReady)
    })
  }

  async lookup (key: string, group: string): Promise<{ value: Buffer | null, generation: string }> {
    const [value, gen] = await this.guard.run(() => this.client.mgetBuffer(key, this.keys.generation(group)))
    return { value, generation: gen === null ? '' : gen.toString() }
  }

  async write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string): Promise<boolean> {
    const k = this.keys
    const done = await this.guard.run(() => generation === undefined
      ? this.client.httpCacheWrite(key, k.index(group), k.generation(group), value, ttlMs)
      : this.client.httpCacheWrite(key, k.index(group), k.generation(group), value, ttlMs, generation))
    // the registry lets clear() find every group without scanning the keyspace
    if (done === 2) await this.guard.run(() => this.client.sadd(k.groups(), group))
    return done !== 0
  }

  async delete (key: string, group: string): Promise<boolean> {
    const k = this.keys
    return (await this.guard.run(() => this.client.httpCacheDelete(key, k.index(group), k.generation(group)))) > 0
  }

  async evictGroup (group: string): Promise<number> {
    const k = this.keys
    return await this.guard.run(() => this.client.httpCacheEvictGroup(k.index(group), k.generation(group)))
  }

  async clear (): Promise<number> {
    const groups = await this.guard.run(() => this.client.smembers(this.keys.groups()))
    let n = 0
    for (const group of groups) {
      // unregister first: a write racing the eviction then either dies with it or registers again
      await this.guard.run(() => this.client.srem(this.keys.groups(), group))
      n += await this.evictGroup(group)
    }
    return n
  }

  async close (): Promise<void> {
    if (!this.owned) return
    // QUIT waits for a reply a hung server never sends: bounded like every other call
    await this.guard.run(() => this.client.quit()).catch(() => {})
    this.client.disconnect()
  }
}
