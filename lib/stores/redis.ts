import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import calculateSlot from 'cluster-key-slot'
import type { Cluster, Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { deadline, Guard, type GuardOptions } from '../guard.js'
import { SLOTS, clearOf, entryPrefixOf, generationOf, indexOf, originsOf, slotTags, tagSetOf, type KeyBuilder } from '../keys.js'
import { Reclaimer } from './reclaim.js'
import { cleared, current, registered, stampOf, tagsHead } from './stamp.js'
import { Turn, type WriteArgs, type WriteReply } from './turn.js'
import { warnIfEvicting } from './eviction-policy.js'
import { ADVANCE, CLEAR, CLEAR_COUNT, CLEAR_GROUPS, DELETE, DELETE_URL, ENTRIES, EVICT_GROUP, EVICT_TAG, MARK, RECLAIM, RECLAIM_URL, REGISTER, UNLOCK, WRITE } from './scripts.js'
import type { Health, Invalidation, Lookup, Page, Store, StoredItem } from './store.js'

// Stamps kept by generation (see stampOf): as many groups as misses write into at once, and then some.
const STAMPS = 1024
// How long a registration made before a handler runs holds at least (far beyond any request).
const REGISTRATION_MS = 10 * 60 * 1000
// SSCAN calls per listed key an admin page may make while the members it meets have expired
const MAX_SCANS_PER_PAGE = 4

// How long one reclaim script, or evict(url) before it fences the origins left, may hold Redis (µs), plus one
// step of its scripts (about 0.1 ms): other clients wait at most about this long. Longer scripts reclaim
// faster (fewer round trips): 0.75 ms reclaims as fast as 0.5 ms did with steps of 50, with a p99 of 0.9 ms.
const RECLAIM_BUDGET_US = 750
// How many groups' scripts clear()'s walk has in flight at once on Cluster, one per group (about 0.4 ms of
// Redis time: another client's PING p99 1.7-2.1 ms during a walk of 100,000 groups, against 3.3 ms with
// 64, for a walk 20-35% longer); on a standalone Redis, one script at a time takes up to CLEAR_BATCH
// groups and stops after WALK_BUDGET_US (as long as those 16: two in flight, or scripts of 0.75 ms,
// walked 1.3-1.5 times faster for a PING p99 1-2 ms longer); how many groups the walk looks at per page.
const CLEAR_SLICE = 16
const CLEAR_BATCH = 64
const WALK_BUDGET_US = 300
const CLEAR_PAGE = 1000
// How many slots' clear counts clear() moves at once on Cluster: each waits behind those sent with it,
// and with 1,024 one went past a 500 ms timeout on a loaded CI machine.
const CLEAR_SLOTS = 256
// How many times an unconditional write registers its group and tries again when a clear() races it.
const REGISTER_TRIES = 3
const QUESTION = 0x3f // '?': a clear count is absent (see cleared in lib/stores/stamp.ts)
const SEMICOLON = 0x3b // ends a generation followed by its fence
const AT = 0x40 // starts the origins' anchor, first in a fence (see ORIGINS in lib/stores/scripts.ts)

type Client = (Redis | Cluster) & {
  httpCacheWrite (n: number, ...args: Array<string | Buffer | number>): Promise<WriteReply>
  httpCacheMark (keys: number, ...args: string[]): Promise<string | null>
  httpCacheRegister (registry: string, group: string, ttl: number): Promise<number>
  httpCacheEvictGroup (index: string, gen: string, origins: string, pending: string, channel: string, group: string, clear: string): Promise<[number, number]>
  httpCacheEvictTag (tagSet: string, gen: string, pending: string, index: string, origins: string, channel: string, group: string, tag: string): Promise<number>
  httpCacheReclaim (set: string, index: string, pending: string, gen: string, generation: string, budget: number): Promise<[number, number]>
  httpCacheDelete (key: string, index: string, gen: string, channel: string): Promise<number>
  httpCacheDeleteUrl (origins: string, index: string, gen: string, pending: string, channel: string, group: string, prefix: string, rest: string, origin: string, budget: number): Promise<[number, number]>
  httpCacheReclaimUrl (job: string, origins: string, index: string, pending: string, gen: string, generation: string, budget: number, prefix: string): Promise<[number, number]>
  httpCacheUnlock (lock: string, token: string): Promise<number>
  httpCacheEntriesBuffer (n: number, ...args: Array<string | number>): Promise<[Buffer, Buffer, Buffer, Buffer, ...Buffer[]]>
  httpCacheClear (count: string, walks: string, start: string, token: string, channel: string): Promise<number>
  httpCacheClearCount (count: string): Promise<number>
  httpCacheAdvance (walks: string, start: string, read: string, next: string): Promise<number>
  httpCacheClearGroups (n: number, ...args: string[]): Promise<number[]>
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
  /** How commands leave the one connection (none on Cluster). */
  private readonly turn: Turn | undefined
  private readonly guards = new Map<string, Guard>()
  private readonly guardOptions: GuardOptions
  private readonly owned: boolean
  private readonly maxOrigins: string
  private readonly channel: string
  private readonly reclaimer: Reclaimer
  /** clear()'s walks, evicting the groups of the namespaces it cleared behind the call. */
  private readonly walker: Reclaimer
  /** The clear count a group outside any namespace is under (standalone). */
  private readonly topClears: string[]
  /** A hash tag per Cluster slot, made once needed. */
  private slotTags: string[] | undefined
  /** Group registrations in flight, by the generation they read and the group. */
  private readonly registering = new Map<string, Promise<string>>()
  /** Stamps by generation (see stampOf): a group keeps one between evictions, so a miss converts no number. */
  private readonly stamps = new Map<string, string>()
  private readonly log: FastifyBaseLogger

  constructor (client: Redis | Cluster, private readonly keys: KeyBuilder, opts: RedisStoreOptions) {
    this.client = client as Client
    this.log = opts.log
    this.owned = opts.owned
    this.maxOrigins = String(opts.maxOrigins)
    this.channel = keys.channel()
    if (typeof this.client.httpCacheWrite !== 'function') {
      client.defineCommand('httpCacheWrite', { lua: WRITE }) // key count varies with the tags
      client.defineCommand('httpCacheMark', { lua: MARK }) // key count varies with the namespaces
      client.defineCommand('httpCacheEvictGroup', { numberOfKeys: 4, lua: EVICT_GROUP })
      client.defineCommand('httpCacheEvictTag', { numberOfKeys: 5, lua: EVICT_TAG })
      client.defineCommand('httpCacheReclaim', { numberOfKeys: 4, lua: RECLAIM })
      client.defineCommand('httpCacheDelete', { numberOfKeys: 3, lua: DELETE })
      client.defineCommand('httpCacheDeleteUrl', { numberOfKeys: 4, lua: DELETE_URL })
      client.defineCommand('httpCacheReclaimUrl', { numberOfKeys: 5, lua: RECLAIM_URL })
      client.defineCommand('httpCacheRegister', { numberOfKeys: 1, lua: REGISTER })
      client.defineCommand('httpCacheUnlock', { numberOfKeys: 1, lua: UNLOCK })
      client.defineCommand('httpCacheEntries', { lua: ENTRIES }) // key count varies with the namespaces
      client.defineCommand('httpCacheClear', { numberOfKeys: 2, lua: CLEAR })
      client.defineCommand('httpCacheClearCount', { numberOfKeys: 1, lua: CLEAR_COUNT })
      client.defineCommand('httpCacheAdvance', { numberOfKeys: 1, lua: ADVANCE })
      client.defineCommand('httpCacheClearGroups', { lua: CLEAR_GROUPS }) // key count varies with the groups and namespaces
    }
    this.topClears = [clearOf(keys.namespaceStart(undefined))]
    this.guardOptions = { timeout: opts.timeout, log: opts.log, isReady: () => client.status === 'ready' }
    this.guard = new Guard(this.guardOptions)
    this.cluster = typeof (client as Cluster).nodes === 'function' && (client as Cluster).isCluster === true
    this.turn = this.cluster ? undefined : new Turn(client as Redis, this.send)
    this.reclaimer = new Reclaimer(
      async (base) => await this.on(base).run(() => this.client.lrange(pendingOf(base), 0, -1)),
      async (base, set) => await this.reclaimStep(base, set),
      async (base) => await this.unqueue(base),
      opts.log)
    this.walker = new Reclaimer(async (start) => [start], async (start) => await this.walk(start), async () => {}, opts.log,
      'the walk behind a clear()', 'namespace')
    // what an instance that died mid-way left: resumed once connected
    if (client.status === 'ready') this.resume()
    else client.once('ready', this.resume)
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

  // Promise-light (no async wrappers): a lookup and a write are on every MISS.
  lookup (key: string, group: string): Promise<Lookup> {
    const turn = this.turn
    if (turn !== undefined) {
      turn.cork()
      // only a lookup goes out ahead of the turn's writes, and not one of a key written in it: a request
      // that follows a MISS's response in the same turn (app.inject, a warm-up) reads what it wrote
      if (turn.writing(key)) turn.flush()
    }
    return this.guardOf(key).run(() => this.client.mgetBuffer(key, generationOf(group), ...this.clearsOf(group))).then((found) => {
      const gen = found[1]
      // the group's fence, if any, follows its generation (see FENCE in lib/stores/scripts.ts), after the
      // origins' anchor, which no lookup needs
      const semi = gen === null ? -1 : gen.indexOf(SEMICOLON)
      const generation = gen === null ? '0' : gen.toString('latin1', 0, semi === -1 ? gen.length : semi)
      const entries = semi !== -1 && (gen as Buffer)[semi + 1] === AT ? (gen as Buffer).indexOf(SEMICOLON, semi + 1) : semi
      const clears = cleared(found, 2)
      const full = generation + clears
      const raw = found[0]
      const value = raw === null ? null : current(raw, full, entries === -1 ? null : (gen as Buffer).subarray(entries), key, group)
      // (an unregistered epoch, or an absent clear count, is never one a value was written under: such a
      // lookup is a miss)
      if (registered(generation) && clears.charCodeAt(1) !== QUESTION) return { value, generation: full }
      return this.registerGroup(group, generation, clears).then((g) => ({ value, generation: g }))
    })
  }

  /** The clear counts a group's values are under (see CLEAR in lib/stores/scripts.ts). */
  private clearsOf (base: string): string[] {
    const starts = this.keys.startsOf(base)
    if (!this.cluster) return starts.length === 1 ? this.topClears : starts.map((start) => clearOf(start))
    const tag = this.tagsBySlot()[calculateSlot(base)]
    return starts.map((start) => clearOf(start, tag))
  }

  /** The keys a clear()'s walk reads and writes for a group (see CLEAR_GROUPS in lib/stores/scripts.ts). */
  private walkKeysOf (group: string): string[] {
    return [indexOf(group), generationOf(group), pendingOf(group), idleOf(group), ...this.clearsOf(group)]
  }

  /** The slots' hash tags (see slotTags in lib/keys.ts), made once needed: Cluster only. */
  private tagsBySlot (): string[] {
    return (this.slotTags ??= slotTags())
  }

  /**
   * Adds the group to the groups registry that clear() reads, then marks it registered unless it was
   * evicted since `read`, and makes its absent clear counts (the first miss of a namespace, or a count
   * Redis lost). Done by a miss before its answer is computed: a clear() that missed the group started
   * before, and one that found it fences the write. Resolves to the generation (with its clears) to
   * write under (the one read when that failed: the write is then refused).
   */
  private registerGroup (group: string, read: string, clears: string): Promise<string> {
    // concurrent misses of one group share one registration: they resolve together, so the ones of one
    // key join one single-flight run instead of each racing the leader's write with registrations of its own
    const id = read + ' ' + group
    let running = this.registering.get(id)
    if (running === undefined) {
      running = this.addToRegistry(group, read, clears).finally(() => this.registering.delete(id))
      this.registering.set(id, running)
    }
    return running
  }

  private async addToRegistry (group: string, read: string, clears: string): Promise<string> {
    const keys = [generationOf(group), ...this.clearsOf(group)]
    try {
      if (!registered(read)) await this.on(this.keys.groups()).run(() => this.client.sadd(this.keys.groups(), group))
      return (await this.on(keys[0]).run(() => this.client.httpCacheMark(keys.length, ...keys, read))) ?? read + clears
    } catch {
      return read + clears // a miss that is not stored
    }
  }

  write (key: string, group: string, value: Buffer, ttlMs: number, generation?: string, tags: readonly string[] = [], origin?: string): Promise<boolean> {
    const clears = this.clearsOf(group)
    const keys = [key, indexOf(group), generationOf(group), originsOf(group), ...clears]
    for (const tag of tags) keys.push(tagSetOf(group, tag))
    const args: WriteArgs = [value, ttlMs, generation ?? '', this.channel, this.maxOrigins, tagsHead(tags), clears.length, generation === undefined ? '' : this.stampOf(generation)]
    if (origin !== undefined) args.push(origin)
    const turn = this.turn
    return this.guardOf(key).run(() => turn === undefined ? this.send(keys, args) : turn.write(keys, args)).then((done) => {
      if (done === 0) return false
      if (done[0] === -1) return this.registerAndWrite(group, keys, args, tags, ttlMs, done[1])
      return tags.length === 0 ? true : this.keepRegistries(tags, done[1], ttlMs)
    })
  }

  // unconditional (set(), write-through): the group is registered first, so clear() finds the value
  private async registerAndWrite (group: string, keys: string[], args: WriteArgs, tags: readonly string[], ttlMs: number, read: string): Promise<boolean> {
    let done: WriteReply = [-1, read]
    for (let tries = 1; done !== 0 && done[0] === -1; tries++) {
      if (tries > REGISTER_TRIES) return false
      await this.registerGroup(group, done[1], '')
      done = await this.on(keys[0]).run(() => this.send(keys, args))
    }
    return done === 0 ? false : await this.keepRegistries(tags, done[1], ttlMs)
  }

  /** A tag's registry (another slot) must outlive the group's tag sets: `longer` flags the ones that grew. */
  private async keepRegistries (tags: readonly string[], longer: string, ttlMs: number): Promise<boolean> {
    await Promise.all(tags.map(async (tag, i) => { if (longer[i] === '1') await this.register(tag, '', ttlMs) }))
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

  /**
   * O(1) in Redis past one script's budget: the origins that script did not get to are fenced (see FENCE
   * in lib/stores/scripts.ts) and swept behind it. Resolves to how many entries existed under the origins
   * it looked at, plus how many origins it fenced without looking (an upper bound, as evictTag's count is).
   * A group whose origins Redis lost is evicted whole (see ORIGINS in lib/stores/scripts.ts).
   */
  async deleteUrl (group: string, rest: string, origin?: string): Promise<number> {
    let n: number, fenced: number
    try {
      [n, fenced] = await this.on(group).run(() => this.client.httpCacheDeleteUrl(originsOf(group), indexOf(group), generationOf(group), pendingOf(group),
        this.channel, group, entryPrefixOf(group), rest, origin ?? '', RECLAIM_BUDGET_US))
    } finally {
      this.invalidated?.({ group })
    }
    if (fenced > 0) this.queue(group)
    return n + fenced
  }

  /**
   * O(1) in Redis: the group's new epoch makes its keys unreachable at once; they are reclaimed behind
   * it (a group of up to 50 keys, SMALL_GROUP, is removed at once). Resolves to how many keys the group
   * indexed (expired ones not yet dropped included).
   */
  async evictGroup (group: string): Promise<number> {
    return await this.evict(group, false)
  }

  private async evict (group: string, clear: boolean): Promise<number> {
    let n: number, queued: number
    try {
      [n, queued] = await this.on(group).run(() => this.client.httpCacheEvictGroup(indexOf(group), generationOf(group), originsOf(group), pendingOf(group),
        this.channel, group, clear ? '1' : ''))
    } finally {
      this.invalidated?.({ group })
    }
    if (queued > 0) this.queue(group)
    return n
  }

  /** Hands a group with reclaim sets to the reclaimer, recorded in Redis so another instance resumes it. */
  private queue (group: string): void {
    this.on(this.keys.reclaims()).run(() => this.client.sadd(this.keys.reclaims(), group))
      .catch(() => {}) // the group's next eviction resumes it, and its keys expire with their ttl anyway
    this.reclaimer.schedule(group)
  }

  /**
   * Queues the groups and clear() walks any instance left undone, and looks at what the server may evict
   * (bound: ioredis calls it as a 'ready' listener, once).
   */
  private readonly resume = (): void => {
    warnIfEvicting(this.client, this.log).catch(() => {}) // INFO refused (some managed servers): no warning
    const walks = this.keys.clearing()
    this.on(walks).run(() => this.client.hkeys(walks)).then((starts) => { for (const start of starts) this.walker.schedule(start) },
      () => {}) // resumed at the next start or clear()
    const registry = this.keys.reclaims()
    const scan = async (): Promise<void> => {
      let cursor = '0'
      do {
        const [next, groups] = await this.on(registry).run(() => this.client.sscan(registry, cursor, 'COUNT', 1000))
        for (const group of groups) this.reclaimer.schedule(group)
        cursor = next
      } while (cursor !== '0')
    }
    scan().catch(() => {}) // resumed at the next start or eviction of those groups
  }

  /** Drops a group from the reclaim registry once nothing of it is left to reclaim. */
  private async unqueue (group: string): Promise<void> {
    if (await this.on(group).run(() => this.client.llen(pendingOf(group))) > 0) return
    await this.on(this.keys.reclaims()).run(() => this.client.srem(this.keys.reclaims(), group))
  }

  /** One reclaim script over `set` (or an evict(url)'s job); resolves true when it is done. */
  private async reclaimStep (group: string, set: string): Promise<boolean> {
    const threshold = set.slice(group.length + 2) // '<group>r:<generation>', '<group>u:<generation>'
    const [, done] = await this.on(group).run(() => set[group.length] === 'u'
      ? this.client.httpCacheReclaimUrl(set, originsOf(group), indexOf(group), pendingOf(group), generationOf(group), threshold, RECLAIM_BUDGET_US, entryPrefixOf(group))
      : this.client.httpCacheReclaim(set, indexOf(group), pendingOf(group), generationOf(group), threshold, RECLAIM_BUDGET_US))
    return done === 1
  }

  /** Resolves when this instance has nothing left to reclaim (tests and benchmarks). */
  async reclaimed (): Promise<void> {
    await this.walker.idle()
    await this.reclaimer.idle()
  }

  /** Takes the lock `key` for `ttlMs` under `token` unless another holder has it; resolves true when taken. */
  async lock (key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.on(key).run(() => this.client.set(key, token, 'PX', ttlMs, 'NX'))) === 'OK'
  }

  async unlock (key: string, token: string): Promise<void> {
    await this.on(key).run(() => this.client.httpCacheUnlock(key, token))
  }

  /**
   * O(1) in Redis per group the tag reached: the group's fence makes the tag's values unreachable at
   * once (see FENCE in lib/stores/scripts.ts); they are reclaimed behind it. Resolves to how many keys
   * the tag indexed (expired or otherwise evicted ones not yet dropped included).
   */
  async evictTag (tag: string): Promise<number> {
    const registry = this.keys.tagRegistry(tag)
    try {
      const groups = await this.on(registry).run(() => this.client.smembers(registry))
      let n = 0
      for (const group of groups) {
        // unregister first: a write racing the eviction then either dies with it or registers again
        await this.on(registry).run(() => this.client.srem(registry, group))
        let some: number
        try {
          some = await this.on(group).run(() => this.client.httpCacheEvictTag(tagSetOf(group, tag), generationOf(group), pendingOf(group),
            indexOf(group), originsOf(group), this.channel, group, tag))
        } finally {
          this.invalidated?.({ group })
        }
        if (some > 0) this.queue(group)
        n += some
      }
      return n
    } catch (err) {
      // which groups it reached is unknown: this instance's in-process copies all go
      this.invalidated?.({ all: true })
      throw err
    }
  }

  /**
   * O(1) in Redis (16,384 counts on Cluster, one per slot, whatever the groups): moving the start's clear
   * count makes every value under it unreachable at once (see CLEAR in lib/stores/scripts.ts). The groups
   * are evicted behind the call, by a walk of the groups registry recorded in Redis (another instance
   * resumes it). Resolves to 0: it counts nothing on the caller's path.
   */
  async clear (start: string): Promise<number> {
    const walks = this.keys.clearing()
    // restarts a walk under way: groups it already evicted may hold keys written since
    const token = randomBytes(6).toString('base64url')
    try {
      if (!this.cluster) {
        await this.on(walks).run(() => this.client.httpCacheClear(clearOf(start), walks, start, token, this.channel))
      } else {
        await this.on(walks).run(() => this.client.hset(walks, start, token + ' 0'))
        try {
          const tags = this.tagsBySlot()
          for (let i = 0; i < SLOTS; i += CLEAR_SLOTS) {
            await Promise.all(tags.slice(i, i + CLEAR_SLOTS).map(async (tag) => {
              const count = clearOf(start, tag)
              await this.on(count).run(() => this.client.httpCacheClearCount(count))
            }))
          }
        } finally {
          // the other instances' in-process copies go, even when a slot could not be cleared
          await this.on(this.channel).run(() => this.client.publish(this.channel, 'c' + start)).catch(() => {})
        }
      }
    } finally {
      this.invalidated?.({ all: true })
    }
    this.walker.schedule(start)
    return 0
  }

  /**
   * One page of a clear()'s walk: each group's keys handed to the reclaimer (CLEAR_GROUPS in
   * lib/stores/scripts.ts), and the groups that have held nothing since the last walk unregistered and
   * evicted to an even epoch (so the registry holds the groups that hold keys, and their next miss
   * registers them again).
   */
  private async walk (start: string): Promise<boolean> {
    const walks = this.keys.clearing()
    const read = await this.on(walks).run(() => this.client.hget(walks, start))
    if (read === null) return true
    const space = read.indexOf(' ')
    const registry = this.keys.groups()
    const [next, groups] = await this.on(registry).run(() => this.client.sscan(registry, read.slice(space + 1), 'COUNT', CLEAR_PAGE))
    const mine = groups.filter((group) => group.startsWith(start))
    const empty: string[] = []
    const walked = (group: string, done: number): void => {
      if (done === 1) this.queue(group)
      else if (done === -1) empty.push(group)
    }
    if (!this.cluster) {
      // a standalone Redis takes many groups per script, one script at a time, each as long as the 16
      // one-group scripts it replaces were together (another client waits as long behind it): it costs
      // the client half the CPU, and Redis a little less time
      let size = CLEAR_BATCH
      for (let i = 0; i < mine.length;) {
        const batch = mine.slice(i, i + size)
        const keys: string[] = []
        const args: string[] = [String(WALK_BUDGET_US)]
        for (const group of batch) {
          const own = this.walkKeysOf(group)
          keys.push(...own)
          args.push(String(own.length), group)
        }
        const done = await this.on(registry).run(() => this.client.httpCacheClearGroups(keys.length, ...keys, ...args))
        // the script takes one group at least: an empty reply is no progress, and would spin
        if (done.length === 0) throw new Error('fastify-http-cache: a walk script took no group')
        done.forEach((d, j) => walked(batch[j], d))
        i += done.length
        // about as many as the last script took: the ones a script leaves are sent again
        size = Math.min(CLEAR_BATCH, done.length + (done.length >> 2) + 1)
      }
    } else {
      // a slice of scripts at a time: Redis runs a client's pipelined commands back to back, and another
      // client's command waits behind as many as were sent together
      for (let i = 0; i < mine.length; i += CLEAR_SLICE) {
        await Promise.all(mine.slice(i, i + CLEAR_SLICE).map(async (group) => {
          const keys = this.walkKeysOf(group)
          const [done] = await this.on(group).run(() => this.client.httpCacheClearGroups(keys.length, ...keys, String(WALK_BUDGET_US), String(keys.length), group))
          walked(group, done)
        }))
      }
    }
    if (empty.length > 0) {
      // unregistered before evicted (to an even epoch): see lib/stores/scripts.ts; one written meanwhile
      // is not evicted, but registered back
      await this.on(registry).run(() => this.client.srem(registry, ...empty))
      const refilled: string[] = []
      for (let i = 0; i < empty.length; i += CLEAR_SLICE) {
        await Promise.all(empty.slice(i, i + CLEAR_SLICE).map(async (group) => { if (await this.evict(group, true) === -1) refilled.push(group) }))
      }
      if (refilled.length > 0) await this.on(registry).run(() => this.client.sadd(registry, ...refilled))
    }
    const done = next === '0'
    const moved = await this.on(walks).run(() => this.client.httpCacheAdvance(walks, start, read, done ? '' : read.slice(0, space) + ' ' + next))
    return done && moved === 1
  }

  private stampOf (generation: string): string {
    let stamp = this.stamps.get(generation)
    if (stamp === undefined) {
      if (this.stamps.size >= STAMPS) this.stamps.clear()
      stamp = stampOf(generation)
      this.stamps.set(generation, stamp)
    }
    return stamp
  }

  private readonly send = (keys: string[], args: WriteArgs): Promise<WriteReply> => this.client.httpCacheWrite(keys.length, ...keys, ...args)

  /**
   * The breaker of the node serving `key` (on Cluster: its slot's master as the client last saw it),
   * for a command that goes out behind the writes queued so far, as it was issued after them.
   */
  private on (key: string): Guard {
    this.turn?.flush()
    return this.guardOf(key)
  }

  private guardOf (key: string): Guard {
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
    const clears = this.clearsOf(group)
    const [gen, fenceRaw, next, last, ...flat] = await this.on(index).run(() => this.client.httpCacheEntriesBuffer(2 + clears.length, index, generationOf(group),
      ...clears, scan, after === '' ? '' : group + after, limit, MAX_SCANS_PER_PAGE * limit))
    const generation = gen.toString()
    const fence = fenceRaw.length === 0 ? null : fenceRaw
    const items: StoredItem[] = []
    for (let i = 0; i < flat.length; i += 2) {
      // a key written since the group's last eviction; an older one waits for the reclaim, unreachable
      const key = flat[i].toString()
      const value = current(flat[i + 1], generation, fence, key, group)
      if (value !== null) items.push({ key, value })
    }
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
    const late = new Promise<boolean>((resolve) => { timer = deadline(() => resolve(false), this.guardOptions.timeout) })
    try {
      return await Promise.race([node.ping().then(() => true, () => false), late])
    } finally {
      clearTimeout(timer)
    }
  }

  async close (): Promise<void> {
    this.client.off('ready', this.resume)
    this.turn?.flush() // ahead of the QUIT below
    await this.walker.close()
    await this.reclaimer.close()
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

/** The list of a group's reclaim sets still to empty. */
const pendingOf = (base: string): string => base + 'R'
/** Set by a clear()'s walk that found the group holding nothing (see CLEAR_GROUPS in lib/stores/scripts.ts). */
const idleOf = (base: string): string => base + 'x'
