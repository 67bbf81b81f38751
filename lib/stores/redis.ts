import { performance } from 'node:perf_hooks'
import calculateSlot from 'cluster-key-slot'
import type { Cluster, Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { Guard, type GuardOptions } from '../guard.js'
import { entryPrefixOf, generationOf, indexOf, originsOf, tagSetOf, type KeyBuilder } from '../keys.js'
import type { Health, Invalidation, Lookup, Page, Store, StoredItem } from './store.js'

// Every script touches only keys of one group (one hash tag), so each runs on one Cluster slot.
// Scripts that remove or replace keys publish what they removed ('g<group>' or 'k<key>') on the
// invalidation channel, atomically with the change: in-process tiers (L1) of every instance drop it.

// A set that indexes keys lives as long as its longest-lived member (PERSIST for a ttl-0 member).
// Adds `member` and returns 1 when that made the set live longer.
const KEEP = `
local function keep (set, member, ttl)
  local left = redis.call('PTTL', set)
  if member then redis.call('SADD', set, member) end
  if redis.call('EXISTS', set) == 0 then return 0 end
  if ttl > 0 then
    if left == -2 or (left >= 0 and left < ttl) then redis.call('PEXPIRE', set, ttl) return 1 end
  elseif left ~= -1 then
    redis.call('PERSIST', set)
    return 1
  end
  return 0
end
`

// KEYS: entry, index, generation, origins, tag sets… Scripts do not roll back: a set key holding
// something else fails the write before anything is written. ARGV: value, ttl ms (0 = none), generation read at
// lookup ('' = unconditional; a group never evicted has generation '0'), channel, max origins, origin
// (absent: not an entry). Returns 0 when not written (evicted meanwhile, or one origin too many), else
// {1 or 2 (first key of its group), flags of the tag sets made to live longer}.
const WRITE = KEEP + `
for i = 2, #KEYS do
  if i ~= 3 then
    local t = redis.call('TYPE', KEYS[i]).ok
    if t ~= 'none' and t ~= 'set' then return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is not a set: nothing written') end
  end
end
if ARGV[3] ~= '' and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[3] then return 0 end
local ttl = tonumber(ARGV[2])
if ARGV[6] then
  if redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 0 and redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[5]) then return 0 end
  keep(KEYS[4], ARGV[6], ttl)
end
local replaced = redis.call('EXISTS', KEYS[1]) == 1
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[1]) end
if replaced then redis.call('PUBLISH', ARGV[4], 'k' .. KEYS[1]) end
local first = redis.call('EXISTS', KEYS[2]) == 0
keep(KEYS[2], KEYS[1], ttl)
local longer = ''
for i = 5, #KEYS do
  longer = longer .. keep(KEYS[i], KEYS[1], ttl)
end
-- drop up to two expired members per write so the index stays proportional to live keys
local some = redis.call('SRANDMEMBER', KEYS[2], 2)
for i = 1, #some do
  if redis.call('EXISTS', some[i]) == 0 then redis.call('SREM', KEYS[2], some[i]) end
end
return {first and 2 or 1, longer}
`

// KEYS: a tag's registry. ARGV: group, ms the registry must live at least (0 = for good).
// The registry outlives the tag sets it points to, and a registration outlives the request that made it.
const REGISTER = KEEP + `
return keep(KEYS[1], ARGV[1] ~= '' and ARGV[1] or nil, tonumber(ARGV[2]))
`

// KEYS: index, generation, origins. ARGV: channel, group. Returns how many keys existed (the group's tag
// sets are not counted).
const EVICT_GROUP = `
redis.call('INCR', KEYS[2])
local keys = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #keys, 500 do
  n = n + redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys)))
end
redis.call('UNLINK', KEYS[1], KEYS[3])
redis.call('PUBLISH', ARGV[1], 'g' .. ARGV[2])
return n
`

// KEYS: tag set, index, generation. ARGV: channel, group. Returns how many keys existed.
const EVICT_TAG = `
redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], 'g' .. ARGV[2])
local keys = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #keys, 500 do
  local batch = {unpack(keys, i, math.min(i + 499, #keys))}
  n = n + redis.call('UNLINK', unpack(batch))
  redis.call('SREM', KEYS[2], unpack(batch))
end
redis.call('UNLINK', KEYS[1])
return n
`

// KEYS: key, index, generation. ARGV: channel.
const DELETE = `
redis.call('INCR', KEYS[3])
redis.call('SREM', KEYS[2], KEYS[1])
redis.call('PUBLISH', ARGV[1], 'k' .. KEYS[1])
return redis.call('UNLINK', KEYS[1])
`

// KEYS: origins, index, generation. ARGV: channel, entry prefix, rest of the key, origin ('' = every one).
// Removes one URL's entries under the origins recorded for the group. Returns how many existed.
const DELETE_URL = `
redis.call('INCR', KEYS[3])
local n = 0
for _, origin in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if ARGV[4] == '' or origin == ARGV[4] or string.sub(origin, 1, #ARGV[4] + 1) == ARGV[4] .. ';' then
    local key = ARGV[2] .. origin .. ARGV[3]
    redis.call('SREM', KEYS[2], key)
    if redis.call('UNLINK', key) == 1 then
      n = n + 1
      redis.call('PUBLISH', ARGV[1], 'k' .. key)
    end
  end
end
return n
`

// KEYS: index. ARGV: SSCAN cursor, key to resume after ('' = none), limit, most SSCAN calls.
// One page of the admin API's listing. SSCAN with COUNT 1 returns one run of hash table buckets per
// call (a small listpack set: all of it, cursor 0); a run that does not fit in the page is left whole
// for the next one, whose cursor is then the run's own start: no member is listed twice, none skipped.
// Only a run larger than a page is split, sorted, resuming after its last key listed. Returns
// {cursor ('0' with no resume key: the end), resume key, key1, value1, key2, value2...}; members that
// expired are skipped.
const ENTRIES = `
local cursor, after, limit, calls = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
while true do
  local r = redis.call('SSCAN', KEYS[1], cursor, 'COUNT', 1)
  local run = r[2]
  table.sort(run)
  local live = {}
  for _, key in ipairs(run) do
    if key > after then
      local v = redis.pcall('GET', key)
      if type(v) == 'string' then live[#live + 1] = key; live[#live + 1] = v end
    end
  end
  if #out + #live > 2 * limit then
    if #out > 0 then return {cursor, '', unpack(out)} end
    for i = 1, 2 * limit do out[i] = live[i] end
    return {cursor, live[2 * limit - 1], unpack(out)}
  end
  for i = 1, #live do out[#out + 1] = live[i] end
  after = ''
  cursor = r[1]
  calls = calls - 1
  if cursor == '0' or #out == 2 * limit or calls <= 0 then return {cursor, '', unpack(out)} end
end
`

// KEYS: lock. ARGV: token. Releases a lock only its holder still holds.
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

// How long a registration made before a handler runs holds at least (far beyond any request).
const REGISTRATION_MS = 10 * 60 * 1000
// SSCAN calls per listed key an admin page may make while the members it meets have expired
const MAX_SCANS_PER_PAGE = 4

type Client = (Redis | Cluster) & {
  httpCacheWrite (n: number, ...args: Array<string | Buffer | number>): Promise<0 | [1 | 2, string]>
  httpCacheRegister (registry: string, group: string, ttl: number): Promise<number>
  httpCacheEvictGroup (index: string, gen: string, origins: string, channel: string, group: string): Promise<number>
  httpCacheEvictTag (tagSet: string, index: string, gen: string, channel: string, group: string): Promise<number>
  httpCacheDelete (key: string, index: string, gen: string, channel: string): Promise<number>
  httpCacheDeleteUrl (origins: string, index: string, gen: string, channel: string, prefix: string, rest: string, origin: string): Promise<number>
  httpCacheUnlock (lock: string, token: string): Promise<number>
  httpCacheEntriesBuffer (index: string, cursor: string, after: string, limit: number, calls: number): Promise<[Buffer, Buffer, ...Buffer[]]>
}

export interface RedisStoreOptions {
  timeout: number
  log: FastifyBaseLogger
  /** Whether the plugin created the client (then it closes it). */
  owned: boolean
  maxOrigins: number
}

export class RedisStore implements Store {
  readonly name = 'redis'
  readonly stable = false
  readonly client: Client
  /** Told of every eviction this instance makes, done or failed (L1 drops the copies at once either way). */
  invalidated: ((what: Invalidation) => void) | undefined
  private readonly guard: Guard
  // On Cluster, one breaker per master: a dead master must not turn the cache off for every group
  private readonly cluster: boolean
  private readonly guards = new Map<string, Guard>()
  private readonly guardOptions: GuardOptions
  private readonly owned: boolean
  private readonly maxOrigins: string
  private readonly channel: string
  /** Groups whose registration in the groups registry (for clear()) failed: retried on their next write. */
  private readonly unregistered = new Set<string>()

  constructor (client: Redis | Cluster, private readonly keys: KeyBuilder, opts: RedisStoreOptions) {
    this.client = client as Client
    this.owned = opts.owned
    this.maxOrigins = String(opts.maxOrigins)
    this.channel = keys.channel()
    if (typeof this.client.httpCacheWrite !== 'function') {
      client.defineCommand('httpCacheWrite', { lua: WRITE }) // key count varies with the tags
      client.defineCommand('httpCacheEvictGroup', { numberOfKeys: 3, lua: EVICT_GROUP })
      client.defineCommand('httpCacheEvictTag', { numberOfKeys: 3, lua: EVICT_TAG })
      client.defineCommand('httpCacheDelete', { numberOfKeys: 3, lua: DELETE })
      client.defineCommand('httpCacheDeleteUrl', { numberOfKeys: 3, lua: DELETE_URL })
      client.defineCommand('httpCacheRegister', { numberOfKeys: 1, lua: REGISTER })
      client.defineCommand('httpCacheUnlock', { numberOfKeys: 1, lua: UNLOCK })
      client.defineCommand('httpCacheEntries', { numberOfKeys: 1, lua: ENTRIES })
    }
    this.guardOptions = { timeout: opts.timeout, log: opts.log, isReady: () => client.status === 'ready' }
    this.guard = new Guard(this.guardOptions)
    this.cluster = typeof (client as Cluster).nodes === 'function' && (client as Cluster).isCluster === true
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

  async lookup (key: string, group: string): Promise<Lookup> {
    this.cork()
    const [value, gen] = await this.on(key).run(() => this.client.mgetBuffer(key, generationOf(group)))
    return { value, generation: gen === null ? '0' : gen.toString() }
  }

  async write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string, tags: readonly string[] = [], origin?: string): Promise<boolean> {
    const keys = [key, indexOf(group), generationOf(group), originsOf(group)]
    for (const tag of tags) keys.push(tagSetOf(group, tag))
    const args: Array<string | Buffer | number> = [value, ttlMs, generation ?? '', this.channel, this.maxOrigins]
    if (origin !== undefined) args.push(origin)
    const done = await this.on(key).run(() => this.client.httpCacheWrite(keys.length, ...keys, ...args))
    if (done === 0) return false
    // registries live in other slots, so they cannot join the script: the groups registry lets
    // clear() find every group without scanning the keyspace; a tag's registry must outlive its sets
    const updates: Array<Promise<unknown>> = []
    // (a failed registration is retried on the group's next write here: on Cluster the registry's
    // master can be down while the group's is up, and later writes are not the group's first)
    if (done[0] === 2 || this.unregistered.has(group)) {
      updates.push(this.on(this.keys.groups()).run(() => this.client.sadd(this.keys.groups(), group)).then(
        () => { this.unregistered.delete(group) },
        (err: unknown) => { this.unregistered.add(group); throw err }))
    }
    tags.forEach((tag, i) => {
      if (done[1][i] === '1') updates.push(this.register(tag, '', ttlMs))
    })
    await Promise.all(updates)
    return true
  }

  async registerTags (group: string, tags: readonly string[]): Promise<void> {
    await Promise.all(tags.map((tag) => this.register(tag, group, REGISTRATION_MS)))
  }

  /** Adds `group` ('' for none) to a tag's registry and makes it live at least `ttlMs` (0: for good). */
  private async register (tag: string, group: string, ttlMs: number): Promise<number> {
    const registry = this.keys.tagRegistry(tag)
    return await this.on(registry).run(() => this.client.httpCacheRegister(registry, group, ttlMs))
  }

  async delete (key: string, group: string): Promise<boolean> {
    try {
      return (await this.on(key).run(() => this.client.httpCacheDelete(key, indexOf(group), generationOf(group), this.channel))) > 0
    } finally {
      this.invalidated?.({ key })
    }
  }

  async deleteUrl (group: string, rest: string, origin?: string): Promise<number> {
    try {
      return await this.on(group).run(() => this.client.httpCacheDeleteUrl(originsOf(group), indexOf(group), generationOf(group),
        this.channel, entryPrefixOf(group), rest, origin ?? ''))
    } finally {
      this.invalidated?.({ group })
    }
  }

  async evictGroup (group: string): Promise<number> {
    try {
      return await this.on(group).run(() => this.client.httpCacheEvictGroup(indexOf(group), generationOf(group), originsOf(group), this.channel, group))
    } finally {
      this.invalidated?.({ group })
    }
  }

  /** Takes the lock `key` for `ttlMs` under `token` unless another holder has it; resolves true when taken. */
  async lock (key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.on(key).run(() => this.client.set(key, token, 'PX', ttlMs, 'NX'))) === 'OK'
  }

  async unlock (key: string, token: string): Promise<void> {
    await this.on(key).run(() => this.client.httpCacheUnlock(key, token))
  }

  async evictTag (tag: string): Promise<number> {
    const registry = this.keys.tagRegistry(tag)
    try {
      const groups = await this.on(registry).run(() => this.client.smembers(registry))
      let n = 0
      for (const group of groups) {
        // unregister first: a write racing the eviction then either dies with it or registers again
        await this.on(registry).run(() => this.client.srem(registry, group))
        n += await this.on(group).run(() => this.client.httpCacheEvictTag(tagSetOf(group, tag), indexOf(group), generationOf(group), this.channel, group))
        this.invalidated?.({ group })
      }
      return n
    } catch (err) {
      // which groups it reached is unknown: this instance's in-process copies all go
      this.invalidated?.({ all: true })
      throw err
    }
  }

  async clear (start: string): Promise<number> {
    const groups = await this.on(this.keys.groups()).run(() => this.client.smembers(this.keys.groups()))
      .catch((err: unknown) => { this.invalidated?.({ all: true }); throw err })
    let n = 0
    for (const group of groups) {
      if (!group.startsWith(start)) continue
      await this.on(this.keys.groups()).run(() => this.client.srem(this.keys.groups(), group))
      n += await this.evictGroup(group)
    }
    return n
  }

  // Commands issued while this turn of the event loop serves a batch of sockets go out in one socket
  // write at its end, not one write (one syscall) each: +12% Redis HITs per second (npm run bench).
  // Not on Cluster, whose commands spread over one connection per node.
  private corked = false
  private cork (): void {
    if (this.corked || this.cluster) return
    const stream = (this.client as Redis).stream
    if (stream == null) return // never connected (lazyConnect)
    stream.cork()
    this.corked = true
    setImmediate(() => {
      this.corked = false
      stream.uncork()
    })
  }

  /** The breaker of the node serving `key` (on Cluster: its slot's master as the client last saw it). */
  private on (key: string): Guard {
    if (!this.cluster) return this.guard
    const node = (this.client as Cluster).slots[calculateSlot(key)]?.[0]
    if (node === undefined) return this.guard
    let guard = this.guards.get(node)
    if (guard === undefined) this.guards.set(node, guard = new Guard(this.guardOptions))
    return guard
  }

  get breaker (): 'closed' | 'open' | 'half-open' {
    let state = this.guard.state
    for (const guard of this.guards.values()) if (guard.state !== 'closed' && state !== 'open') state = guard.state
    return state
  }

  async entries (group: string, cursor: string | undefined, limit: number): Promise<Page> {
    const index = indexOf(group)
    const [scan, after] = cursor === undefined ? ['0', ''] : readCursor(cursor)
    const [next, last, ...flat] = await this.on(index).run(() => this.client.httpCacheEntriesBuffer(index, scan, after === '' ? '' : group + after, limit, MAX_SCANS_PER_PAGE * limit))
    const items: StoredItem[] = []
    for (let i = 0; i < flat.length; i += 2) items.push({ key: flat[i].toString(), value: flat[i + 1] })
    const resume = last.toString()
    const at = next.toString()
    return { items, cursor: at === '0' && resume === '' ? null : makeCursor(at, resume === '' ? '' : resume.slice(group.length)) }
  }

  async listOrigins (group: string): Promise<string[]> {
    return await this.on(group).run(() => this.client.smembers(originsOf(group)))
  }

  /**
   * Pings the node directly (the breaker may be open), bounded by the timeout. On Cluster, every master
   * the slot table names: one down or unknown to the client (dropped from its pool) fails the check.
   */
  async health (): Promise<Health> {
    const start = performance.now()
    let nodes: Array<Redis | undefined> = [this.client as Redis]
    if (this.cluster) {
      const cluster = this.client as Cluster
      const byName = new Map(cluster.nodes('master').map((n) => [`${n.options.host ?? ''}:${n.options.port ?? ''}`, n]))
      const names = new Set<string | undefined>()
      for (let slot = 0; slot < 16384; slot++) names.add(cluster.slots[slot]?.[0])
      nodes = [...names].map((name) => name === undefined ? undefined : byName.get(name))
    }
    const answers = await Promise.all(nodes.map(async (node) => node !== undefined && await this.ping(node)))
    const ok = this.client.status === 'ready' && answers.every(Boolean)
    return { ok, latencyMs: Math.round((performance.now() - start) * 100) / 100, breaker: this.breaker }
  }

  private async ping (node: Redis): Promise<boolean> {
    if (node.status !== 'ready') return false
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<boolean>((resolve) => { timer = setTimeout(resolve, this.guardOptions.timeout, false) })
    try {
      return await Promise.race([node.ping().then(() => true, () => false), late])
    } finally {
      clearTimeout(timer)
    }
  }

  async close (): Promise<void> {
    if (!this.owned) return
    // QUIT waits for a reply a hung server never sends: bounded like every other call
    await this.guard.run(() => this.client.quit()).catch(() => {})
    this.client.disconnect()
  }
}

function makeCursor (scan: string, after: string): string {
  return Buffer.from(JSON.stringify([scan, after])).toString('base64url')
}

function readCursor (cursor: string): [string, string] {
  try {
    const c: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString())
    if (Array.isArray(c) && c.length === 2 && typeof c[0] === 'string' && /^\d{1,20}$/.test(c[0]) && typeof c[1] === 'string') return [c[0], c[1]]
  } catch {}
  throw new TypeError('fastify-http-cache: not a cursor of this listing')
}
