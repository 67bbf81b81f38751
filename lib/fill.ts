// The write path of a cached route: tags registered before the handler runs, then in onSend the
// handler's response turned into an entry (when the policy lets it be stored) and written behind the
// response, with single-flight followers handed the entry. A handler failing within stale-if-error is
// answered with the expired entry instead.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { notModified } from './conditional.js'
import { encodeEntry, keepFor, NOT_STORED, type CacheEntry, type HeaderValue } from './entry.js'
import { etagFor, isNodeStream, payloadBytes, teeStream } from './payload.js'
import { release, settle } from './single-flight.js'
import { GO, kState, type Outcome, type RequestState, type RouteRun } from './state.js'
import { entryTags } from './tags.js'
import { varyValues } from './vary.js'

// Before the handler runs: the entry's tags are registered so a tag eviction racing the handler
// moves this group's generation (then the answer is not stored). No generation, no write.
export function prepare (run: RouteRun, request: FastifyRequest, state: RequestState, generation: string): Outcome | Promise<Outcome> {
  const { route } = run
  if (route.tags === undefined && !route.byPath) {
    state.generation = generation
    return GO
  }
  return entryTags(route, request)
    .then(async (tags) => {
      await run.ctx.store.registerTags(route.base, tags)
      state.tags = tags
      state.generation = generation
      return GO
    })
    .catch((err: unknown) => {
      request.log.warn({ err }, 'fastify-http-cache: tags could not be computed or registered, response not cached')
      return GO
    })
}

// Callback style: a HIT passes through without a promise.
export function onSend (run: RouteRun, request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void): void {
  const state = request[kState]
  if (state == null || state.hit || state.bypass) {
    done(null, payload)
    return
  }
  if (run.statusHeader !== false) reply.header(run.statusHeader, 'MISS')
  if (reply.statusCode >= 500 && state.stale !== undefined) {
    settle(run, state, undefined)
    release(run, state)
    done(null, serveStale(run, reply, state.stale))
    return
  }
  onMissSend(run, request, reply, payload, state).then((out) => done(null, out), (err: Error) => {
    settle(run, state, undefined)
    release(run, state)
    done(err)
  })
}

// RFC 5861 stale-if-error: the expired entry stands in for the handler's failure.
function serveStale (run: RouteRun, reply: FastifyReply, entry: CacheEntry): Buffer {
  const age = Math.floor(Math.max(0, Date.now() - entry.storedAt) / 1000)
  reply.code(entry.status)
  reply.removeHeader('content-length')
  for (const name in entry.headers) reply.header(name, entry.headers[name])
  reply.header('cache-control', run.policy.cacheControl(run, entry, age, true))
  reply.header('etag', entry.etag)
  reply.header('age', String(age))
  if (run.statusHeader !== false) reply.header(run.statusHeader, 'STALE')
  return entry.body
}

async function onMissSend (run: RouteRun, request: FastifyRequest, reply: FastifyReply, payload: unknown, state: RequestState): Promise<unknown> {
  const entry = await toEntry(run, request, reply, payload)
  if (entry === undefined) {
    settle(run, state, undefined)
    release(run, state)
    return payload
  }
  if (isNodeStream(payload)) {
    // followers cannot share a stream: they run the handler themselves
    settle(run, state, undefined)
    release(run, state)
    return teeStream(payload, run.ctx.opts.maxEntrySize, (body) => {
      write(run, request, state, { ...entry, body, etag: etagFor(entry.etag === '' ? undefined : entry.etag, body) })
    })
  }
  settle(run, state, entry)
  const written = write(run, request, state, entry)
  if (state.own) await written // a refresh is over when the new entry is in: until then no other starts
  if (entry.status === 200 && notModified(request.headers, entry.etag, reply.getHeader('last-modified'))) {
    reply.code(304)
    reply.removeHeader('content-type')
    reply.removeHeader('content-length')
    return null
  }
  return payload
}

// The entry a response makes, with the response's headers set for it; undefined when not stored.
// A stream's entry has an empty body (filled in when the stream ends).
async function toEntry (run: RouteRun, request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<CacheEntry | undefined> {
  if (!run.stores) return undefined
  const freshness = await run.policy.storage(run, request, reply)
  if (freshness === undefined) return undefined
  const stream = isNodeStream(payload)
  const body = stream ? Buffer.alloc(0) : payloadBytes(payload)
  if (body === undefined || body.length > run.ctx.opts.maxEntrySize) return undefined
  const handlerEtag = reply.getHeader('etag')
  const etag = stream ? (typeof handlerEtag === 'string' ? handlerEtag : '') : etagFor(handlerEtag, body)
  if (!stream) reply.header('etag', etag)
  return {
    status: reply.statusCode,
    headers: endToEndHeaders(reply, run.statusHeader),
    body,
    etag,
    storedAt: freshness.storedAt,
    ttl: freshness.ttl,
    swr: freshness.swr,
    sie: freshness.sie,
    vary: varyValues(reply.getHeader('vary'), request)
  }
}

function write (run: RouteRun, request: FastifyRequest, state: RequestState, entry: CacheEntry): Promise<void> | undefined {
  if (state.generation === undefined) {
    release(run, state)
    return
  }
  const { ctx, route } = run
  const p = ctx.store.write(state.key, route.base, encodeEntry(entry), keepFor(entry), state.generation, state.tags, state.origin)
    .then((written) => {
      if (!written) request.log.debug({ key: state.key }, 'fastify-http-cache: group evicted during the request (or too many origins), response not stored')
    }, (err: unknown) => {
      request.log.debug({ err }, 'fastify-http-cache: store failed')
    })
    .finally(() => {
      release(run, state)
      ctx.pending.delete(p)
    })
  ctx.pending.add(p)
  return p
}

/** The headers of a reply worth replaying: not hop-by-hop, per-message or owned by this plugin. */
export function endToEndHeaders (reply: FastifyReply, statusHeader: string | false): Record<string, HeaderValue> {
  const all = reply.getHeaders()
  const connection = all.connection
  const listed = typeof connection === 'string' ? connection.toLowerCase().split(',').map((s) => s.trim()) : []
  const out: Record<string, HeaderValue> = {}
  for (const name in all) {
    const value = all[name]
    if (value === undefined || NOT_STORED.has(name) || name === statusHeader || listed.includes(name)) continue
    out[name] = Array.isArray(value) ? value.map(String) : String(value)
  }
  return out
}
