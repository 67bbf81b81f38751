import type { FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify'
import { cacheControlFor, requestDirectives, responseForbidsStore } from './directives.js'
import { notModified, NOT_MODIFIED_HEADERS } from './conditional.js'
import { decodeEntry, encodeEntry, type CacheEntry, type HeaderValue } from './entry.js'
import type { KeyBuilder } from './keys.js'
import type { ResolvedOptions, RouteSettings } from './options.js'
import { isNodeStream, payloadBytes, teeStream, weakEtag } from './payload.js'
import type { Store } from './stores/store.js'

export const kState = Symbol('fastify-http-cache.state')

interface RequestState {
  key: string
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

export function createHooks (ctx: HookContext, route: RouteSettings, stores: boolean): { lookup: (request: FastifyRequest, reply: FastifyReply) => Promise<void>, onSend: onSendHookHandler } {
  const { opts, store, keys } = ctx
  const statusHeader = opts.statusHeader

  async function lookup (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const directives = route.clientDirectives ? requestDirectives(request) : null
    // Range requests, Authorization (RFC 9111 §3.5) and client no-store neither read nor write
    if (request.headers.range !== undefined || request.headers.authorization !== undefined || directives?.bypass === true) {
      request[kState] = { key: '', generation: undefined, hit: false, bypass: true }
      if (statusHeader !== false) reply.header(statusHeader, 'BYPASS')
      return
    }
    const key = keys.entry(route.group, request.url)
    const state: RequestState = { key, generation: undefined, hit: false, bypass: false }
    request[kState] = state
    let found
    try {
      found = await store.lookup(key, route.group)
    } catch (err) {
      request.log.debug({ err }, 'fastify-http-cache: lookup failed, treated as a miss')
      return
    }
    state.generation = found.generation
    if (found.value === null || directives?.refresh === true) return
    const entry = decodeEntry(found.value)
    if (entry === undefined) {
      request.log.warn({ key }, 'fastify-http-cache: entry does not decode, replacing it')
      return
    }
    const now = Date.now()
    const age = now - entry.storedAt
    if ((entry.ttl > 0 && age >= entry.ttl) ||
      (directives !== null && directives.maxAge !== null && age > directives.maxAge * 1000) ||
      !varyMatches(entry, request)) {
      return
    }
    state.hit = true
    serve(request, reply, entry, Math.max(0, Math.floor(age / 1000)))
    return reply as unknown as undefined
  }

  function serve (request: FastifyRequest, reply: FastifyReply, entry: CacheEntry, ageSeconds: number): void {
    const ttlSeconds = entry.ttl / 1000
    const cacheControl = cacheControlFor(ttlSeconds, Math.max(0, Math.ceil(ttlSeconds - ageSeconds)), route.private)
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
    const vary = reply.getHeader('vary')
    if (vary !== undefined && /(^|,)\s*\*\s*(,|$)/.test(String(vary))) return payload
    const forbid = responseForbidsStore(reply.getHeader('cache-control'), route.private)
    if (forbid !== null) return payload

    const ttlMs = route.ttl * 1000
    reply.header('cache-control', cacheControlFor(route.ttl, route.ttl, route.private))

    if (isNodeStream(payload)) {
      const handlerEtag = reply.getHeader('etag')
      const headers = storedHeaders(reply)
      return teeStream(payload, opts.maxEntrySize, (body) => {
        const etag = typeof handlerEtag === 'string' ? handlerEtag : weakEtag(body)
        write(request, state, { v: 1, status, headers, body, etag, storedAt: Date.now(), ttl: ttlMs, vary: varyValues(vary, request) })
      })
    }
    const body = payloadBytes(payload)
    if (body === undefined || body.length > opts.maxEntrySize) return payload

    const handlerEtag = reply.getHeader('etag')
    const etag = typeof handlerEtag === 'string' ? handlerEtag : weakEtag(body)
    reply.header('etag', etag)
    write(request, state, { v: 1, status, headers: storedHeaders(reply), body, etag, storedAt: Date.now(), ttl: ttlMs, vary: varyValues(vary, request) })

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
    const p = store.write(state.key, route.group, encodeEntry(entry), entry.ttl, state.generation)
      .then((written) => {
        if (!written) request.log.debug({ key: state.key }, 'fastify-http-cache: group evicted during the request, response not stored')
      }, (err: unknown) => {
        request.log.debug({ err }, 'fastify-http-cache: store failed')
      })
      .finally(() => ctx.pending.delete(p))
    ctx.pending.add(p)
  }

  function storedHeaders (reply: FastifyReply): Record<string, HeaderValue> {
    return endToEndHeaders(reply, statusHeader)
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
