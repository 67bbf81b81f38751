// The write path of a cached route: tags registered before the handler runs, then in onSend the
// handler's response turned into an entry (when the policy lets it be stored) and written behind the
// response, with single-flight followers handed the entry. A handler failing within stale-if-error is
// answered with the expired entry instead.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ownHeaders, replay } from './coexist.js'
import { forwardMember, freshnessLeft, setCacheStatus } from './cache-status.js'
import { notModified, restoreConditional, sendValidators } from './conditional.js'
import { encodeEntry, encodeTextEntry, encodeVariants, isFieldValue, keepFor, NOT_STORED, NOT_STORED_HTTP, type CacheEntry, type HeaderValue } from './entry.js'
import { etagFor, isNodeStream, payloadBytes, teeStream } from './payload.js'
import { evictionFailed } from './evict-error.js'
import { invalidateUnsafe } from './invalidation.js'
import { record } from './outcome.js'
import { httpFreshness } from './policy/http.js'
import type { Freshness } from './policy/policy.js'
import { release, settle, written } from './single-flight.js'
import { GO, isPromise, kState, type Outcome, type RequestState, type RouteRun } from './state.js'
import { entryTags } from './tags.js'
import { varyValues } from './vary.js'

// Before the handler runs: the entry's tags are registered so a tag eviction racing the handler
// moves this group's generation (then the answer is not stored). No generation, no write.
export function prepare (run: RouteRun, request: FastifyRequest, state: RequestState, generation: string): Outcome | Promise<Outcome> {
  const { route } = run
  if (state.validating !== undefined) sendValidators(request, state, state.validating)
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
    if (state != null && !state.hit && run.cacheStatus !== undefined) {
      setCacheStatus(reply, state.detail === 'only-if-cached'
        ? run.cacheStatus + '; detail=only-if-cached'
        : forwardMember(run.cacheStatus, state.fwd, reply.statusCode, false, undefined, state.detail))
    }
    done(null, payload)
    return
  }
  if (state.unsafe) {
    if (run.cacheStatus !== undefined) setCacheStatus(reply, forwardMember(run.cacheStatus, 'method', reply.statusCode, false, undefined, undefined))
    invalidateUnsafe(run, request, reply, state.origin as string).then((failed) => {
      done(null, failed && run.ctx.opts.onEvictError === 'fail' ? evictionFailed(reply, payload) : payload)
    }, () => done(null, payload))
    return
  }
  restoreConditional(request, state)
  if (run.statusHeader !== false) reply.header(run.statusHeader, 'MISS')
  const stale = reply.statusCode >= 500 && state.stale !== undefined
  if (!state.own) record(run, request, stale ? 'stale' : state.fwd === 'bypass' ? 'bypasses' : 'misses', state.key)
  if (stale) {
    settle(run, state, undefined)
    release(run, state)
    if (run.cacheStatus !== undefined) setCacheStatus(reply, forwardMember(run.cacheStatus, 'stale', reply.statusCode, false, undefined, 'stale-if-error'))
    done(null, serveStale(run, reply, state.stale as CacheEntry))
    return
  }
  if (reply.statusCode === 304 && state.validating !== undefined) {
    done(null, freshen(run, request, reply, payload, state, state.validating))
    return
  }
  let freshness: Freshness | undefined | Promise<Freshness | undefined>
  try {
    freshness = run.stores ? run.policy.storage(run, request, reply) : undefined
  } catch (err) {
    missFailed(run, state, done, err as Error)
    return
  }
  // synchronous unless the route's ttl is a function that returns a promise
  if (isPromise(freshness)) freshness.then((f) => onMissSend(run, request, reply, payload, state, f, done), (err: Error) => missFailed(run, state, done, err))
  else onMissSend(run, request, reply, payload, state, freshness, done)
}

function missFailed (run: RouteRun, state: RequestState, done: (err: Error | null, payload?: unknown) => void, err: Error): void {
  settle(run, state, undefined)
  release(run, state)
  done(err)
}

/**
 * RFC 9111 §4.3.3-§4.3.4: the origin answered the validation with 304, so the stored response is still
 * good: its headers are updated from the 304's (Content-Length excepted), its freshness judged anew,
 * and it answers the request (a 304 when the client's own validator matches).
 */
function freshen (run: RouteRun, request: FastifyRequest, reply: FastifyReply, payload: unknown, state: RequestState, entry: CacheEntry): unknown {
  if (isNodeStream(payload)) payload.resume() // the 304's empty body
  const headers = { ...entry.headers }
  const update = endToEndHeaders(reply, run.statusHeader, true)
  ownHeaders(reply, update, state.before, run.route.vary)
  for (const name in update) if (name !== 'content-length') headers[name] = update[name]
  const newTag = reply.getHeader('etag')
  const etag = typeof newTag === 'string' ? newTag : entry.etag
  const get = (name: string): unknown => name === 'etag' ? (etag === '' ? undefined : etag) : headers[name]
  const now = Date.now()
  const freshness = httpFreshness(run, entry.status, get, request.headers.authorization !== undefined, state.requestTime, now)
  const updated: CacheEntry = freshness === undefined
    ? { ...entry, headers, etag }
    : { ...entry, headers, etag, storedAt: freshness.storedAt, ttl: freshness.ttl, swr: freshness.swr, sie: freshness.sie, http: freshness.http }
  if (run.statusHeader !== false) reply.header(run.statusHeader, 'REVALIDATED')
  replay(reply, headers)
  if (etag !== '') reply.header('etag', etag)
  reply.header('age', String(Math.floor((updated.http?.age ?? 0) / 1000)))
  reply.removeHeader('content-length')
  if (freshness === undefined) {
    settle(run, state, undefined)
    release(run, state)
  } else {
    settle(run, state, updated, write(run, request, state, updated) !== undefined)
  }
  if (run.cacheStatus !== undefined) {
    const stored = freshness !== undefined && state.generation !== undefined
    setCacheStatus(reply, forwardMember(run.cacheStatus, state.fwd, 304, stored, stored ? storedTtl(updated) : undefined, state.detail))
  }
  if (notModified(request.headers, etag, headers['last-modified'])) return null
  reply.code(updated.status)
  return updated.body
}

// RFC 5861 stale-if-error: the expired entry stands in for the handler's failure.
function serveStale (run: RouteRun, reply: FastifyReply, entry: CacheEntry): Buffer {
  const resident = Math.max(0, Date.now() - entry.storedAt)
  const age = Math.floor((entry.http === undefined ? resident : entry.http.age + resident) / 1000)
  reply.code(entry.status)
  reply.removeHeader('content-length')
  replay(reply, entry.headers)
  const cacheControl = run.policy.cacheControl(run, entry, age, true)
  if (cacheControl !== undefined) reply.header('cache-control', cacheControl)
  if (entry.etag !== '') reply.header('etag', entry.etag)
  reply.header('age', String(age))
  if (run.statusHeader !== false) reply.header(run.statusHeader, 'STALE')
  return entry.body
}

/** This cache's Cache-Status member for a response the handler made (`entry`: the one it makes, if any). */
function missStatus (run: RouteRun, reply: FastifyReply, state: RequestState, entry: CacheEntry | undefined): void {
  if (run.cacheStatus === undefined) return
  // the write goes out after the headers: `stored` can only say it is under way
  const stored = entry !== undefined && state.generation !== undefined
  setCacheStatus(reply, forwardMember(run.cacheStatus, state.fwd, reply.statusCode, stored, stored ? storedTtl(entry) : undefined, state.detail))
}

/** RFC 9211 `ttl` of an entry being stored: its freshness left, none for an entry that never expires. */
function storedTtl (entry: CacheEntry): number | undefined {
  return entry.ttl === 0 && entry.http === undefined ? undefined : freshnessLeft(entry, 0)
}

function onMissSend (run: RouteRun, request: FastifyRequest, reply: FastifyReply, payload: unknown, state: RequestState, freshness: Freshness | undefined,
  done: (err: Error | null, payload?: unknown) => void): void {
  let made: Made | undefined
  try {
    made = freshness === undefined ? undefined : toEntry(run, request, reply, payload, state, freshness)
  } catch (err) {
    missFailed(run, state, done, err as Error)
    return
  }
  const entry = made?.entry
  missStatus(run, reply, state, entry)
  if (entry === undefined) {
    settle(run, state, undefined)
    release(run, state)
    done(null, payload)
    return
  }
  if (isNodeStream(payload)) {
    // followers cannot share a stream: they run the handler themselves
    settle(run, state, undefined)
    release(run, state)
    const length = request.method === 'HEAD' ? reply.getHeader('content-length') : undefined
    const stored = entry
    done(null, teeStream(payload, run.ctx.opts.maxEntrySize, (body) => {
      if (request.method === 'HEAD' && !wholeBody(body.length, length)) return
      write(run, request, state, { ...stored, body, etag: run.http || stored.etag !== '' ? stored.etag : etagFor(undefined, body) })
    }))
    return
  }
  const writing = write(run, request, state, entry, made?.value)
  settle(run, state, entry, writing !== undefined)
  // a refresh is over when the new entry is in: until then no other starts
  if (state.own && writing !== undefined) writing.then(() => done(null, missPayload(run, request, reply, payload, entry)), done)
  else done(null, missPayload(run, request, reply, payload, entry))
}

/** What a stored MISS sends: a 304 when the client's validator matches the new entry, else the payload. */
function missPayload (run: RouteRun, request: FastifyRequest, reply: FastifyReply, payload: unknown, entry: CacheEntry): unknown {
  if (entry.status === 200 && notModified(request.headers, entry.etag, reply.getHeader('last-modified'))) {
    reply.code(304)
    reply.removeHeader('content-type')
    reply.removeHeader('content-length')
    return null
  }
  // the entry's bytes are the string's, already encoded: sent as they are when no other onSend hook sees them
  return run.direct && typeof payload === 'string' ? entry.body : payload
}

/** An entry a response makes, and its stored value when that was encoded with the body (a string answer). */
interface Made { entry: CacheEntry, value: Buffer | undefined }

// The entry a response makes, with the response's headers set for it; undefined when not stored.
// A stream's entry has an empty body (filled in when the stream ends).
function toEntry (run: RouteRun, request: FastifyRequest, reply: FastifyReply, payload: unknown, state: RequestState, freshness: Freshness): Made | undefined {
  const stream = isNodeStream(payload)
  // a string (a serialized JSON answer) goes into the stored value as it is encoded: see encodeTextEntry
  const text = !stream && !run.http && typeof payload === 'string' ? payload : undefined
  const body = text !== undefined ? undefined : stream ? Buffer.alloc(0) : payloadBytes(payload)
  if (text === undefined && body === undefined) return undefined
  const bytes = text !== undefined ? Buffer.byteLength(text) : (body as Buffer).length
  if (bytes > run.ctx.opts.maxEntrySize) {
    state.detail = 'too-large'
    return undefined
  }
  // Fastify's HEAD route runs the GET handler: what it answers is the GET's representation only when the
  // body is there (a proxied HEAD comes back empty, with the GET's Content-Length)
  if (request.method === 'HEAD' && !stream && !wholeBody(bytes, reply.getHeader('content-length'))) return undefined
  const handlerEtag = reply.getHeader('etag')
  let etag: string
  if (run.http) {
    // the origin's validator or none: a shared cache does not invent one
    etag = typeof handlerEtag === 'string' ? handlerEtag : ''
    if (!isFieldValue(etag)) return undefined
  } else {
    etag = stream ? (typeof handlerEtag === 'string' ? handlerEtag : '') : etagFor(handlerEtag, text ?? body as Buffer, bytes)
    if (!stream) reply.header('etag', etag)
  }
  const headers = endToEndHeaders(reply, run.statusHeader, run.http)
  const vary = ownHeaders(reply, headers, state.before, run.route.vary)
  const entry: CacheEntry = {
    status: reply.statusCode,
    headers,
    body: body ?? EMPTY,
    etag,
    storedAt: freshness.storedAt,
    ttl: freshness.ttl,
    swr: freshness.swr,
    sie: freshness.sie,
    vary: varyValues(vary, request),
    http: freshness.http
  }
  if (text === undefined) return { entry, value: undefined }
  const encoded = encodeTextEntry(entry, text, bytes, state.tags)
  entry.body = encoded.body
  return { entry, value: encoded.value }
}

const EMPTY = Buffer.alloc(0)

function wholeBody (bytes: number, contentLength: unknown): boolean {
  return bytes > 0 && (contentLength === undefined || Number(contentLength) === bytes)
}

// Variants of one URL kept side by side under policy 'http', newest first
const MAX_VARIANTS = 16

/** The variants a key holds once `entry` is stored: the others that vary on the same names, bounded. */
function withVariants (run: RouteRun, entry: CacheEntry, others: CacheEntry[] | undefined): CacheEntry[] {
  const list = [entry]
  if (others === undefined || entry.vary === undefined) return list
  const names = Object.keys(entry.vary).sort().join()
  let bytes = entry.body.length
  for (const other of others) {
    if (list.length >= MAX_VARIANTS) break
    // an origin that changed its Vary makes the old variants unreachable: drop them
    if (other.vary === undefined || Object.keys(other.vary).sort().join() !== names || sameVary(other.vary, entry.vary)) continue
    bytes += other.body.length
    if (bytes > run.ctx.opts.maxEntrySize) break
    list.push(other)
  }
  return list
}

function sameVary (a: Record<string, string>, b: Record<string, string>): boolean {
  for (const name in a) if (a[name] !== b[name]) return false
  return true
}

/** Stores `entry` (`encoded`: its value, when toEntry encoded it with its body already). */
function write (run: RouteRun, request: FastifyRequest, state: RequestState, entry: CacheEntry, encoded?: Buffer): Promise<void> | undefined {
  if (state.generation === undefined) {
    release(run, state)
    return
  }
  const { ctx, route } = run
  const value = encoded ?? (run.http ? encodeVariants(withVariants(run, entry, state.variants), state.tags) : encodeEntry(entry, state.tags))
  ctx.pending.start()
  return ctx.store.write(state.key, route.base, value, keepFor(entry), state.generation, state.tags, state.origin)
    .then((stored) => {
      if (!stored) request.log.debug({ key: state.key }, 'fastify-http-cache: group evicted during the request (or too many origins), response not stored')
      writeEnded(run, state)
    }, (err: unknown) => {
      request.log.debug({ err }, 'fastify-http-cache: store failed')
      writeEnded(run, state)
    })
}

function writeEnded (run: RouteRun, state: RequestState): void {
  written(run, state)
  release(run, state)
  run.ctx.pending.end()
}

/** The headers of a reply worth replaying: not hop-by-hop, per-message or owned by this plugin. */
export function endToEndHeaders (reply: FastifyReply, statusHeader: string | false, http = false): Record<string, HeaderValue> {
  const skip = http ? NOT_STORED_HTTP : NOT_STORED
  const all = reply.getHeaders()
  const connection = all.connection
  const listed = typeof connection === 'string' ? connection.toLowerCase().split(',').map((s) => s.trim()) : []
  const out: Record<string, HeaderValue> = {}
  for (const name in all) {
    const value = all[name]
    if (value === undefined || skip.has(name) || name === statusHeader || listed.includes(name)) continue
    out[name] = Array.isArray(value) ? value.map(String) : String(value)
  }
  return out
}
