import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'

/** What a Redis server's INFO says of its memory limit and what it evicts past it. */
interface EvictionPolicy { maxmemory: number, policy: string }

function readPolicy (info: string): EvictionPolicy {
  return {
    maxmemory: Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0),
    policy: /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? 'noeviction'
  }
}

/**
 * Logs once when a server Redis may evict keys from: groups and clear() stay exact whatever it evicts
 * (lib/stores/scripts.ts), but a tag's set or a group's fence evicted before the values they point to
 * lets a tag eviction (or an evict(url) over many origins) miss them (README, "Keys Redis loses").
 * Best effort: a server that refuses INFO (some managed ones) is left alone.
 */
export async function warnIfEvicting (client: Redis | Cluster, log: FastifyBaseLogger): Promise<void> {
  const nodes = typeof (client as Cluster).nodes === 'function' && (client as Cluster).isCluster === true
    ? (client as Cluster).nodes('master')
    : [client as Redis]
  for (const node of nodes) {
    const { maxmemory, policy } = readPolicy(await node.info('memory'))
    if (maxmemory > 0 && policy !== 'noeviction') {
      log.warn({ maxmemory, policy }, `fastify-http-cache: Redis may evict keys (maxmemory-policy ${policy}): a tag's set or a group's fence evicted before its values lets evictTag() or evict(url) over many origins miss them; evictGroup() and clear() stay exact (README: "Keys Redis loses")`)
      return
    }
  }
}
