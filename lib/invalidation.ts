import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RouteFinder } from './api.js'
import { encodeEntry } from './entry.js'
import type { HookContext } from './hooks.js'
import type { WriteSettings } from './options.js'
import { payloadBytes, weakEtag } from './payload.js'

// What a write-through entry keeps of the write's response: a GET of the resource answers with the
// representation, not with the write's Location, cookies or status.
const PUT_HEADERS = ['content-type', 'content-language', 'content-encoding', 'last-modified']

/**
 * onSend of a write route: after a 2xx response, evicts what the route declares and writes through,
 * before the response leaves, so a client that writes and then reads never sees its own write stale.
 */
export function createWriteHook (ctx: HookContext, routes: RouteFinder, w: WriteSettings) {
  const { store, keys, opts } = ctx

  return async function onWriteSend (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const status = reply.statusCode
    if (status < 200 || status > 299) return payload
    const tasks: Array<Promise<unknown>> = w.groups.map((group) => store.evictGroup(group))
    if (w.self || w.put !== null) {
      const read = routes.settingsOf(request.url)
      const group = w.put?.group ?? read?.group ?? opts.defaultGroup
      const key = keys.entry(group, request.url)
      // delete first: it moves the group's generation, so a GET miss still holding older data cannot
      // store it after the new entry; a GET missing after it reads the already-committed write
      const drop = store.delete(key, group)
      tasks.push(w.put === null ? drop : drop.then(() => writeThrough(reply, payload, key, group, w.put?.ttl ?? read?.ttl ?? opts.ttl)))
    }
    const results = await Promise.allSettled(tasks)
    for (const r of results) {
      if (r.status === 'rejected') {
        request.log.error({ err: r.reason }, 'fastify-http-cache: invalidation after a write failed; cached reads may be stale until their ttl')
      }
    }
    return payload
  }

  async function writeThrough (reply: FastifyReply, payload: unknown, key: string, group: string, ttl: number): Promise<void> {
    const body = reply.statusCode === 204 ? undefined : payloadBytes(payload)
    if (body === undefined || body.length > opts.maxEntrySize) return
    const headers: Record<string, string> = {}
    for (const name of PUT_HEADERS) {
      const value = reply.getHeader(name)
      if (typeof value === 'string') headers[name] = value
    }
    const etag = reply.getHeader('etag')
    await store.write(key, group, encodeEntry({
      v: 1, status: 200, headers, body, etag: typeof etag === 'string' ? etag : weakEtag(body), storedAt: Date.now(), ttl: ttl * 1000
    }), ttl * 1000)
  }
}
