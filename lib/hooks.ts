import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify'
import { cacheControlFor, requestDirectives, responseForbidsStore } from './directives.js'
import { notModified, NOT_MODIFIED_HEADERS } from './conditional.js'
import { decodeEntry, encodeEntry, type CacheEntry, type HeaderValue } from './entry.js'
import { httpDate } from './expiry.js'
import { assertName, pathOf, variant, type KeyBuilder } from './keys.js'
import { ttlFor, type ResolvedOptions, type RouteSettings } from './options.js'
import { etagFor, isNodeStream, payloadBytes, teeStream } from './payload.js'
import type { Store } from './stores/store.js'

export const kState = Symbol('fastify-http-cache.state')

interface RequestState {
  key: string
  /** Tags of the entry, registered in the store before the handler ran. */
  tags: string[]
  /** Generation of the group read with the lookup; undefined when the lookup failed (then never write). */
  generation: string | undefined
  hit: boolean
  bypass: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    [kState]: RequestState | null
  }
}

// Never stored: hop-by-hop (RFC 9110 §7.6.1), per-message, recomputed, or owned by this plugin.
const NOT_STORED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te',
  'trailer', 'proxy-authenticate', 'proxy-authorization', 'date', 'content-length', 'set-cookie', 'age',
  'cache-control', 'etag'])

export interface HookContext {
  opts: ResolvedOptions
  store: Store
  keys: KeyBuilder
  /** Writes in flight, awaited on close. */
  pending: Set<Promise<unknown>>
}

/** The tag under which autoInvalidate indexes the entries of a path. */
export const pathTag = (path: string): string => `path:${path}`

/** The key a GET of `url` hits on this route, from the inputs the route keys on. */
export function entryKey (keys: KeyBuilder, route: RouteSettings, url: string, headers: Record<string, string | string[] | undefined>, by: string | undefined, custom: string | undefined): string {
  if (route.key !== undefined) {
    if (typeof custom !== 'string' || custom.length === 0) throw new TypeError('fastify-http-cache: the key builder must return a non-empty string')
    return keys.custom(route.base, custom)
  }
  return keys.entry(route.base, url, variant(route.vary, headers, by))
}

export function createHooks (ctx: HookContext, route: RouteSettings, stores: boolean): { lookup: (request: FastifyRequest, reply: FastifyReply) => Promise<void>, onSend: onSendHookHandler } {
  const { opts, store, keys } = ctx
  const statusHeader = opts.statusHeader
  // per-user entries must not land in shared caches downstream
  const isPrivate = route.private || route.varyBy !== undefined
  const varyHeader = route.vary.join(', ')

  async function lookup (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const directives = route.clientDirectives ? requestDirectives(request) : null
    // Range requests, client no-store and Authorization (RFC 9111 §3.5, unless the route keys per user)
    // neither read nor write
    if (request.headers.range !== undefined || directives?.bypass === true ||
      (request.headers.authorization !== undefined && route.varyBy === undefined)) {
      return bypass(request, reply)
    }
    let key: string
    try {
      key = entryKey(keys, route, request.url, request.headers,
        route.varyBy === undefined ? undefined : varyByValue(await route.varyBy(request)),
        route.key === undefined ? undefined : await route.key(request))
    } catch (err) {
      request.log.warn({ err }, 'fastify-http-cache: could not build the key, response not cached')
      return bypass(request, reply)
    }
    const state: RequestState = { key, tags: [], generation: undefined, hit: false, bypass: false }
    request[kState] = state
    let found
    try {
      found = await store.lookup(key, route.base)
    } catch (err) {
      request.log.debug({ err }, 'fastify-http-cache: lookup failed, treated as a miss')
      return
    }
    const entry = found.value === null ? undefined : decodeEntry(found.value)
    if (found.value !== null && entry === undefined) request.log.warn({ key }, 'fastify-http-cache: entry does not decode, replacing it')
    const age = entry === undefined ? 0 : Date.now() - entry.storedAt
    if (entry === undefined || directives?.refresh === true ||
      (entry.ttl > 0 && age >= entry.ttl) ||
      (directives?.maxAge != null && age > directives.maxAge * 1000) ||
      !varyMatches(entry, request)) {
      return await miss(request, state, found.generation)
    }
    state.hit = true
    serve(request, reply, entry, Math.max(0, Math.floor(age / 1000)))
    return reply as unknown as undefined
  }

  // Before the handler runs: the entry's tags are registered so a tag eviction racing the handler
  // moves this group's generation (then the answer is not stored). No generation, no write.
  async function miss (request: FastifyRequest, state: RequestState, generation: string): Promise<void> {
    if (route.tags === undefined && !route.byPath) {
      state.generation = generation
      return
    }
    try {
      const tags = await entryTags(route, request)
      await store.registerTags(route.base, tags)
      state.tags = tags
      state.generation = generation
    } catch (err) {
      request.log.warn({ err }, 'fastify-http-cache: tags could not be computed or registered, response not cached')
    }
  }

  function bypass (request: FastifyRequest, reply: FastifyReply): void {
    request[kState] = { key: '', tags: [], generation: undefined, hit: false, bypass: true }
    if (statusHeader !== false) reply.header(statusHeader, 'BYPASS')
  }

  function serve (request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, ageSeconds: number): void {
    const ttlSeconds = entry.ttl / 1000
    const cacheControl = cacheControlFor(ttlSeconds, Math.max(0, Math.ceil(ttlSeconds - ageSeconds)), isPrivate)
    if (statusHeader !== false) reply.header(statusHeader, 'HIT')
    reply.header('age', String(ageSeconds))
    if (notModified(request.headers, entry.etag, entry.headers['last-modified'])) {
      reply.header('cache-control', cacheControl)
      reply.header('etag', entry.etag)
      for (const name of NOT_MODIFIED_HEADERS) {
        const value = entry.headers[name]
        if (value !== undefined) reply.header(name, value)
      }
      reply.code(304).send()
      return
    }
    reply.headers(entry.headers)
    reply.header('cache-control', cacheControl)
    reply.header('etag', entry.etag)
    reply.code(entry.status).send(entry.body)
  }

  async function onSend (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const state = request[kState]
    if (state == null || state.hit || state.bypass) return payload
    if (statusHeader !== false) reply.header(statusHeader, 'MISS')
    if (!stores) return payload
    const status = reply.statusCode
    if (status < 200 || status > 299 || status === 206) return payload
    if (reply.hasHeader('set-cookie')) return payload
    if (varyHeader !== '') reply.header('vary', mergeVary(reply.getHeader('vary'), varyHeader))
    const vary = reply.getHeader('vary')
    if (vary !== undefined && /(^|,)\s*\*\s*(,|$)/.test(String(vary))) return payload
    if (responseForbidsStore(reply.getHeader('cache-control'), isPrivate)) return payload

    const now = Date.now()
    let ttl: number | undefined
    try {
      ttl = await ttlFor(route, request, opts.clock, now)
    } catch (err) {
      request.log.warn({ err }, 'fastify-http-cache: ttl function failed, response not cached')
      return payload
    }
    if (ttl === undefined) {
      request.log.warn('fastify-http-cache: the ttl function returned no whole number of seconds, response not cached')
      return payload
    }
    reply.header('cache-control', cacheControlFor(ttl, ttl, isPrivate))
    if (route.expires !== undefined) reply.header('expires', httpDate(now + ttl * 1000))
    const base = { v: 1 as const, status, storedAt: now, ttl: ttl * 1000, vary: varyValues(vary, request) }

    if (isNodeStream(payload)) {
      const handlerEtag = reply.getHeader('etag')
      const headers = endToEndHeaders(reply, statusHeader)
      return teeStream(payload, opts.maxEntrySize, (body) => {
        write(request, state, { ...base, headers, body, etag: etagFor(handlerEtag, body) })
      })
    }
    const body = payloadBytes(payload)
    if (body === undefined || body.length > opts.maxEntrySize) return payload

    const etag = etagFor(reply.getHeader('etag'), body)
    reply.header('etag', etag)
    write(request, state, { ...base, headers: endToEndHeaders(reply, statusHeader), body, etag })

    if (status === 200 && notModified(request.headers, etag, reply.getHeader('last-modified'))) {
      reply.code(304)
      reply.removeHeader('content-type')
      reply.removeHeader('content-length')
      return null
    }
    return payload
  }

  function write (request: FastifyRequest, state: RequestState, entry: CacheEntry): void {
    if (state.generation === undefined) return
    const p = store.write(state.key, route.base, encodeEntry(entry), entry.ttl, state.generation, state.tags)
      .then((written) => {
        if (!written) request.log.debug({ key: state.key }, 'fastify-http-cache: group evicted during the request, response not stored')
      }, (err: unknown) => {
        request.log.debug({ err }, 'fastify-http-cache: store failed')
      })
      .finally(() => ctx.pending.delete(p))
    ctx.pending.add(p)
  }

  return { lookup, onSend }
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

// A user id may be a number; anything else (undefined, objects) would merge users: not cached.
export function varyByValue (value: unknown): string {
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) return String(value)
  throw new TypeError(`fastify-http-cache: varyBy must return a string or a number, got ${value === null ? 'null' : typeof value}`)
}

/** The tags an entry of this route carries: its own, and its path's when autoInvalidate indexes it. */
export async function entryTags (route: RouteSettings, request: FastifyRequest): Promise<string[]> {
  const tags = route.tags === undefined ? [] : checkTags(await route.tags(request))
  if (route.byPath) tags.push(pathTag(pathOf(request.url)))
  return tags
}

export function checkTags (tags: unknown): string[] {
  if (!Array.isArray(tags)) throw new TypeError('fastify-http-cache: tags must be an array of tag names')
  return tags.map((tag) => assertName('a tag', tag))
}

function mergeVary (current: unknown, names: string): string {
  if (current === undefined) return names
  const have = String(current)
  const listed = new Set(have.toLowerCase().split(',').map((s) => s.trim()))
  const missing = names.split(', ').filter((name) => !listed.has(name))
  return missing.length === 0 ? have : `${have}, ${missing.join(', ')}`
}

function varyValues (vary: unknown, request: FastifyRequest): Record<string, string> | undefined {
  if (vary === undefined) return undefined
  const out: Record<string, string> = {}
  for (const raw of String(vary).split(',')) {
    const name = raw.trim().toLowerCase()
    if (name !== '') out[name] = headerText(request.headers[name])
  }
  return out
}

// Secondary key (RFC 9111 §4.1): an entry answers only requests that match what it varied on.
function varyMatches (entry: CacheEntry, request: FastifyRequest): boolean {
  if (entry.vary === undefined) return true
  for (const name in entry.vary) {
    if (entry.vary[name] !== headerText(request.headers[name])) return false
  }
  return true
}

function headerText (value: string | string[] | undefined): string {
  return value === undefined ? '' : Array.isArray(value) ? value.join(', ') : value
}
