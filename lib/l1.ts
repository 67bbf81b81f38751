import { LRUCache } from 'lru-cache'
import type { Cluster, Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { ownBytes, type Invalidation, type Lookup } from './stores/store.js'

interface Slot extends Lookup { value: Buffer, group: string }

/**
 * The in-process tier in front of Redis: what a lookup found there, kept by key for a bounded time and
 * size. Coherent through the stores' invalidation channel; while that subscription is down it answers
 * nothing (a missed message must not leave a stale copy being served).
 */
export class L1 {
  /** Moves on every invalidation: a Redis read that started before one must not fill the tier. */
  epoch = 0
  private live = false
  private readonly lru: LRUCache<string, Slot>
  private readonly groups = new Map<string, Set<string>>()

  constructor (maxBytes: number, ttlMs: number) {
    this.lru = new LRUCache<string, Slot>({
      maxSize: maxBytes,
      ttl: ttlMs,
      sizeCalculation: (slot, key) => slot.value.length + key.length + 64,
      dispose: (slot, key) => {
        const keys = this.groups.get(slot.group)
        if (keys === undefined) return
        keys.delete(key)
        if (keys.size === 0) this.groups.delete(slot.group)
      }
    })
  }

  get (key: string): Lookup | undefined {
    return this.live ? this.lru.get(key) : undefined
  }

  /** Keeps what a Redis read found, unless an invalidation arrived since the read began (`epoch`). */
  fill (key: string, group: string, found: Lookup, epoch: number): void {
    if (!this.live || epoch !== this.epoch || found.value === null) return
    this.lru.set(key, { value: ownBytes(found.value), generation: found.generation, group })
    let keys = this.groups.get(group)
    if (keys === undefined) this.groups.set(group, keys = new Set())
    keys.add(key)
  }

  apply (what: Invalidation): void {
    this.epoch++
    if ('key' in what) {
      this.lru.delete(what.key)
      return
    }
    if ('all' in what) {
      this.lru.clear()
      return
    }
    for (const key of [...this.groups.get(what.group) ?? []]) this.lru.delete(key)
  }

  /** Serving from the tier needs the invalidation subscription: on when it is confirmed, off when lost. */
  setLive (live: boolean): void {
    this.epoch++
    this.live = live
    this.lru.clear()
  }

  get size (): number {
    return this.lru.size
  }
}

/**
 * The invalidation message format of the stores' scripts: 'g<group>', 'k<key>' or 'c<namespace start>'
 * (a clear(): the tier drops everything, as the instance that cleared does).
 */
export function parseInvalidation (message: string): Invalidation | undefined {
  if (message.length < 2) return undefined
  if (message[0] === 'g') return { group: message.slice(1) }
  if (message[0] === 'k') return { key: message.slice(1) }
  if (message[0] === 'c') return { all: true }
  return undefined
}

/**
 * Subscribes a connection of its own (a subscribed connection can do nothing else) to the invalidation
 * channel and feeds it to the tier. Every (re)connection subscribes again and starts from an empty tier.
 * On Cluster the connection goes to one node (every node receives every publish) and moves to another
 * when that node is gone: the Cluster client's own subscriber would move silently, losing messages
 * without the tier ever knowing.
 */
export function subscribe (client: Redis | Cluster, channel: string, l1: L1, log: FastifyBaseLogger): { close: () => void } {
  let closed = false
  let sub: Redis | undefined
  const later = (): void => { setTimeout(() => { if (!closed) start() }, 100).unref() }
  const start = (): void => {
    const s = sub = connection(client)
    if (s === undefined) return later() // a Cluster that knows no node yet
    s.on('error', (err) => log.debug({ err }, 'fastify-http-cache: L1 invalidation subscriber error'))
    s.on('message', (ch: string, message: string) => {
      if (ch !== channel) return
      const what = parseInvalidation(message)
      if (what !== undefined) l1.apply(what)
    })
    s.on('close', () => l1.setLive(false))
    s.on('end', () => {
      l1.setLive(false)
      if (!closed) later()
    })
    s.on('ready', () => {
      s.subscribe(channel).then(() => {
        if (!closed) l1.setLive(true)
      }, (err: unknown) => log.warn({ err }, 'fastify-http-cache: L1 could not subscribe to invalidations, serving from Redis only'))
    })
    if (s.status === 'wait') s.connect().catch(() => {}) // a lazyConnect client's copy
  }
  start()
  return {
    close () {
      closed = true
      l1.setLive(false)
      sub?.disconnect()
    }
  }
}

function connection (client: Redis | Cluster): Redis | undefined {
  if ((client as Cluster).isCluster !== true) return (client as Redis).duplicate()
  const nodes = (client as Cluster).nodes('all')
  if (nodes.length === 0) return undefined
  const node = nodes[Math.floor(Math.random() * nodes.length)]
  // a few quick retries, then 'end': the next connection picks another node
  return node.duplicate({ lazyConnect: false, retryStrategy: (times: number) => times > 3 ? null : 100 * times })
}
