// The one place a request's outcome is recorded: the route's and the instance's counters (lib/stats.ts,
// read by stats() and the Prometheus metrics) and a debug line with the route and a hash of the key.
import { createHash } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Counters } from './stats.js'
import type { RouteRun } from './state.js'

/** The counter an outcome bumps. */
export type Counted = keyof Counters

const NAMES: Record<Counted, string> = { hits: 'hit', misses: 'miss', stale: 'stale', bypasses: 'bypass' }

export function record (run: RouteRun, request: FastifyRequest, counted: Counted, key: string): void {
  const method = request.method
  let counters = run.counters.get(method)
  if (counters === undefined) run.counters.set(method, counters = run.ctx.stats.route(method, run.url))
  counters[counted]++
  run.ctx.stats.totals[counted]++
  const log = request.log
  // the hash only when someone reads it: a key may hold a user id or a tenant, and hashing costs
  if (debugEnabled(log)) {
    log.debug({ route: run.url, outcome: NAMES[counted], key: key === '' ? undefined : keyHash(key) }, 'fastify-http-cache: ' + NAMES[counted])
  }
}

// pino's check where the logger is pino; Fastify's types do not promise it for other loggers
function debugEnabled (log: FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }): boolean {
  return typeof log.isLevelEnabled === 'function' ? log.isLevelEnabled('debug') : log.level === 'debug' || log.level === 'trace'
}

/** A short stable digest of a key: lines of one key can be matched without the key in the logs. */
export function keyHash (key: string): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 16)
}
