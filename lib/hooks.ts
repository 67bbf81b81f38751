// The hooks of one cached route: the lookup (lib/lookup.ts) and the onSend that stores (lib/fill.ts),
// around a RouteRun made once from the route's settings and the policy that decides for it.
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, onSendHookHandler } from 'fastify'
import { onSend } from './fill.js'
import { lookup } from './lookup.js'
import type { RouteSettings } from './options.js'
import { httpPolicy } from './policy/http.js'
import { ttlPolicy } from './policy/ttl.js'
import type { HookContext, RouteRun } from './state.js'

export { kState, type HookContext } from './state.js'

export function createHooks (ctx: HookContext, route: RouteSettings, stores: boolean, where: { url: string, methods: string[] }): {
  lookup: (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
  onSend: onSendHookHandler
  /** Whether HITs may write the response themselves (no other onSend hook would see it). */
  sendDirect: (on: boolean) => void
} {
  const run: RouteRun = {
    ctx,
    route,
    policy: route.policy === 'http' ? httpPolicy : ttlPolicy,
    http: route.policy === 'http',
    stores,
    statusHeader: ctx.opts.statusHeader,
    isPrivate: route.private || route.varyBy !== undefined,
    varyHeader: route.vary.join(', '),
    simpleKey: route.key === undefined && route.varyBy === undefined,
    locks: route.lock === null ? undefined : ctx.locks,
    lockTokens: 0,
    direct: false,
    kHeaders: undefined,
    url: where.url,
    counters: new Map(where.methods.map((m) => [m, ctx.stats.route(m, where.url)])),
    cacheStatus: ctx.opts.cacheStatus
  }
  return {
    lookup: (request, reply, done) => lookup(run, request, reply, done),
    onSend: ((request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) =>
      onSend(run, request, reply, payload, done)) as unknown as onSendHookHandler,
    sendDirect: (on: boolean) => { run.direct = on }
  }
}
