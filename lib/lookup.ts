// The read path of a cached route, top to bottom: bypass checks, the key, the L1 and the store, the
// policy's verdict, and serving a HIT (a 304 when the client's validator matches). A miss goes on to
// single-flight (lib/single-flight.ts) and the handler; lib/fill.ts stores what it answers.
import type { OutgoingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { hookHeaders, mergeVary, replay } from './coexist.js'
import { hitMember, setCacheStatus } from './cache-status.js'
import { notModified, NOT_MODIFIED_HEADERS } from './conditional.js'
import { REFRESH, type RequestDirectives } from './directives.js'
import { decodeVariants, type CacheEntry } from './entry.js'
import { prepare } from './fill.js'
import { originOf, variant } from './keys.js'
import { FALLBACK, FRESH, STALE, VALIDATE, type Reuse } from './policy/policy.js'
import { isOwnRefresh, revalidate } from './refresh.js'
import { record } from './outcome.js'
import { keyOf, requestOrigin } from './request-key.js'
import { acquire, follow, lead, runningFlight } from './single-flight.js'
import { GO, SERVED, isPromise, kState, newState, type Outcome, type RequestState, type RouteRun } from './state.js'
import type { Lookup } from './stores/store.js'
import { varyMatches } from './vary.js'

// A request with Authorization under policy 'http': not answered from the cache (RFC 9111 §3.5), like a
// refresh, but counted and reported as a bypass
const AUTHORIZED: RequestDirectives = Object.freeze({ ...REFRESH })

// Callback style, synchronous up to the store: a HIT from memory or L1 costs no promise at all.
export function lookup (run: RouteRun, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const outcome = begin(run, request, reply)
  if (outcome === GO) done()
  else if (outcome !== SERVED) outcome.then((o) => { if (o === GO) done() }, (err: Error) => done(err))
}

function begin (run: RouteRun, request: FastifyRequest, reply: FastifyReply): Outcome | Promise<Outcome> {
  const { route, ctx } = run
  const headers = request.headers
  if (run.http) {
    const method = request.method
    // policy 'http' routes take any method: only GET and HEAD are answered from the cache
    if (method !== 'GET' && method !== 'HEAD') return pass(run, request, !SAFE.has(method))
  }
  const own = isOwnRefresh(ctx, request)
  let directives = own ? REFRESH : route.clientDirectives ? run.policy.request(request) : null
  // Range requests, client no-store and Authorization (RFC 9111 §3.5, unless the route keys per user)
  // neither read nor write; under 'http' a response to Authorization may still be stored when the
  // origin marks it shareable (public, s-maxage, must-revalidate), but nothing stored answers it
  if (headers.range !== undefined || directives?.bypass === true) {
    bypass(run, request, reply)
    return GO
  }
  if (headers.authorization !== undefined && route.varyBy === undefined) {
    if (!run.http) {
      bypass(run, request, reply)
      return GO
    }
    directives = AUTHORIZED
  }
  if (run.simpleKey) {
    const origin = requestOrigin(ctx.opts, request)
    return find(run, request, reply, ctx.keys.entry(route.base, origin, request.url, variant(route.vary, headers, undefined), run.http), origin, directives, own)
  }
  return keyOf(run, request).then((found) => {
    if (found !== undefined) return find(run, request, reply, found.key, found.origin, directives, own)
    bypass(run, request, reply)
    return GO
  })
}

function find (run: RouteRun, request: FastifyRequest, reply: FastifyReply, key: string, origin: string | undefined, directives: RequestDirectives | null, own: boolean): Outcome | Promise<Outcome> {
  const { l1, store } = run.ctx
  const state = newState(key, origin, own)
  state.asked = run.ctx.flights.sent
  if (run.http) state.requestTime = Date.now()
  request[kState] = state
  if (directives === AUTHORIZED) state.fwd = 'bypass'
  const refresh = directives?.refresh === true
  const near = refresh || l1 === undefined ? undefined : l1.get(key)
  if (near !== undefined) return decide(run, request, reply, state, near, directives, true)
  let found: Lookup | Promise<Lookup>
  try {
    found = store.lookup(key, run.route.base)
  } catch (err) {
    return failed(request, state, err)
  }
  if (!isPromise(found)) return decide(run, request, reply, state, found, directives, store.stable)
  const epoch = l1?.epoch ?? 0
  return found.then((f) => {
    if (l1 !== undefined && !refresh) l1.fill(key, run.route.base, f, epoch)
    return decide(run, request, reply, state, f, directives, l1 !== undefined && !refresh)
  }, (err: unknown) => failed(request, state, err))
}

function failed (request: FastifyRequest, state: RequestState, err: unknown): Outcome {
  state.fwd = 'miss'
  state.detail = 'store-down'
  request.log.debug({ err }, 'fastify-http-cache: lookup failed, treated as a miss')
  return GO
}

function decide (run: RouteRun, request: FastifyRequest, reply: FastifyReply, state: RequestState, found: Lookup, directives: RequestDirectives | null, memo: boolean): Outcome | Promise<Outcome> {
  const variants = found.value === null ? undefined : decodeVariants(found.value, memo)
  if (found.value !== null && variants === undefined) request.log.warn({ key: state.key }, 'fastify-http-cache: entry does not decode, replacing it')
  const entry = variants === undefined ? undefined : pick(variants, request)
  if (run.http) state.variants = variants
  if (variants !== undefined && entry === undefined) state.fwd = 'vary-miss'
  if (entry !== undefined && directives?.refresh !== true) {
    const age = Math.max(0, Date.now() - entry.storedAt)
    const reuse = run.policy.reuse(entry, age, directives)
    if (reuse === FRESH) return serve(run, request, reply, state, entry, 'HIT', age)
    if (reuse === STALE) {
      revalidate(run.ctx, request, state.key)
      return serve(run, request, reply, state, entry, 'STALE', age)
    }
    state.fwd = forwardedBy(run, entry, age, directives)
    if (reuse === FALLBACK || (reuse === VALIDATE && run.policy.standIn(entry, age))) state.stale = entry
    if (reuse === VALIDATE && (entry.etag !== '' || entry.headers['last-modified'] !== undefined)) state.validating = entry
  } else if (entry !== undefined && state.fwd !== 'bypass') {
    state.fwd = 'request'
  }
  // RFC 9111 §5.2.1.7: nothing usable stored, and the client will not have the request forwarded
  if (directives?.onlyIfCached === true) {
    state.bypass = true
    state.detail = 'only-if-cached'
    if (!state.own) record(run, request, 'misses', state.key)
    reply.code(504).send()
    return SERVED
  }
  return miss(run, request, reply, state, found.generation)
}

/** RFC 9211 `fwd`: the client's directives sent a usable entry to the handler (`request`), or it had expired. */
function forwardedBy (run: RouteRun, entry: CacheEntry, age: number, directives: RequestDirectives | null): 'request' | 'stale' {
  if (directives === null) return 'stale'
  const unasked: Reuse = run.policy.reuse(entry, age, null)
  return unasked === FRESH || unasked === STALE ? 'request' : 'stale'
}

/** The stored variant whose Vary'd request headers this request matches (RFC 9111 §4.1). */
function pick (variants: CacheEntry[], request: FastifyRequest): CacheEntry | undefined {
  for (let i = 0; i < variants.length; i++) if (varyMatches(variants[i], request)) return variants[i]
  return undefined
}

// RFC 9110 §9.2.1 safe methods; every other one, known or not, invalidates on success (RFC 9111 §4.4)
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'QUERY'])

/** A method the cache does not answer: straight to the handler, invalidating on success when unsafe. */
function pass (run: RouteRun, request: FastifyRequest, unsafe: boolean): Outcome {
  // read now: by onSend a request whose body was streamed on may have lost its socket (and protocol)
  const state = newState('', originOf(request.protocol, request.host, {}), false)
  state.bypass = !unsafe
  state.unsafe = unsafe
  state.fwd = 'method'
  request[kState] = state
  record(run, request, 'bypasses', '')
  return GO
}

function miss (run: RouteRun, request: FastifyRequest, reply: FastifyReply, state: RequestState, generation: string): Outcome | Promise<Outcome> {
  // what other plugins' hooks set so far is theirs, set again on every request (lib/coexist.ts)
  state.before = hookHeaders(reply)
  if (!run.stores) return prepare(run, request, state, generation)
  const running = runningFlight(run, state, generation)
  if (running !== undefined) {
    return follow(run, running).then((entry) => entry !== undefined && varyMatches(entry, request)
      ? serve(run, request, reply, state, entry, 'HIT', Date.now() - entry.storedAt)
      : prepare(run, request, state, generation))
  }
  lead(run, reply, state, generation)
  const { locks, route } = run
  if (locks === undefined || route.lock === null) return prepare(run, request, state, generation)
  return acquire(run, request, state, locks, route.lock).then((found) => found !== undefined
    ? serve(run, request, reply, state, found.entry, 'HIT', found.age)
    : prepare(run, request, state, generation))
}

function bypass (run: RouteRun, request: FastifyRequest, reply: FastifyReply): void {
  const state = newState('', undefined, false)
  state.bypass = true
  state.fwd = 'bypass'
  request[kState] = state
  record(run, request, 'bypasses', '')
  if (run.statusHeader !== false) reply.header(run.statusHeader, 'BYPASS')
}

/** Answers from `entry`, `ageMs` old (the caller judged its freshness at that age). */
function serve (run: RouteRun, request: FastifyRequest, reply: FastifyReply, state: RequestState, entry: CacheEntry, label: string, ageMs: number): Outcome {
  state.hit = true
  if (!state.own) record(run, request, label === 'STALE' ? 'stale' : 'hits', state.key)
  const raw = run.direct && request.raw.httpVersionMajor === 1
  // an 'http' entry's Age counts from its corrected initial age (RFC 9111 §4.2.3)
  const age = Math.floor(Math.max(0, entry.http === undefined ? ageMs : entry.http.age + ageMs) / 1000)
  const cacheControl = run.policy.cacheControl(run, entry, age, false)
  if (run.statusHeader !== false) reply.header(run.statusHeader, label)
  reply.header('age', String(age))
  if (notModified(request.headers, entry.etag, entry.headers['last-modified'])) {
    if (cacheControl !== undefined) reply.header('cache-control', cacheControl)
    if (entry.etag !== '') reply.header('etag', entry.etag)
    for (const name of NOT_MODIFIED_HEADERS) {
      const value = entry.headers[name]
      if (value !== undefined) reply.header(name, name === 'vary' ? mergeVary(reply.getHeader('vary'), value as string) : value)
    }
    if (run.cacheStatus !== undefined) setCacheStatus(reply, hitMember(run.cacheStatus, entry, ageMs))
    if (!(raw && end(run, reply, 304, undefined))) reply.code(304).send()
    return SERVED
  }
  replay(reply, entry.headers)
  if (cacheControl !== undefined) reply.header('cache-control', cacheControl)
  if (entry.etag !== '') reply.header('etag', entry.etag)
  // after the stored headers: a member an upstream cache added goes in front of ours
  if (run.cacheStatus !== undefined) setCacheStatus(reply, hitMember(run.cacheStatus, entry, ageMs))
  if (raw && entry.status !== 204) {
    reply.header('content-length', String(entry.body.length))
    if (end(run, reply, entry.status, entry.body)) return SERVED
  }
  reply.code(entry.status).send(entry.body)
  return SERVED
}

// When no onSend hook but ours would see the response, Fastify's send path has nothing left to do for
// stored bytes: write them straight out (with the header table below, 17.3 -> 16.3 µs of CPU per memory
// HIT). onResponse hooks and the request log still run (Fastify ties them to the response's finish) and
// see the headers set with reply.header(). HTTP/2 keeps Fastify's path, which writes large bodies in chunks.
function end (run: RouteRun, reply: FastifyReply, status: number, body: Buffer | undefined): boolean {
  // Fastify's own header table, as its send path hands it to writeHead; else getHeaders(), a copy
  run.kHeaders ??= Object.getOwnPropertySymbols(reply).find((s) => s.description === 'fastify.reply.headers') ?? null
  const table = run.kHeaders === null ? undefined : (reply as unknown as Record<symbol, OutgoingHttpHeaders | undefined>)[run.kHeaders]
  try {
    reply.raw.writeHead(status, table ?? reply.getHeaders() as OutgoingHttpHeaders)
  } catch {
    // a header Node refuses (set by another hook): Fastify's path answers that with its error handling
    return false
  }
  reply.hijack()
  reply.raw.end(body)
  return true
}
