// The opt-in admin API: JSON routes under a prefix to look at the cache and evict from it, each behind
// the app's own auth hook(s). Every answer is JSON: 400 for bad input, 503 when the store fails.
import { STATUS_CODES } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerHookHandler } from 'fastify'
import { target, type RouteFinder } from './api.js'
import { decodeValue, decodeVariants } from './entry.js'
import { assertName, entryPrefixOf, entryRest } from './keys.js'
import { routeNamespace } from './options.js'
import { entryKeyRest } from './request-key.js'
import type { HookContext } from './state.js'
import type { HttpCacheApi } from './types.js'

export interface AdminSettings {
  prefix: string
  preHandler: preHandlerHookHandler[]
}

const ADMIN_KEYS = new Set(['prefix', 'preHandler', 'insecure'])
const PREFIX = /^(\/[\w.~-]+)+$/
const DEFAULT_LIMIT = 100
const MAX_LIMIT = 1000

/** Bad input to an admin route: answered 400. */
class InputError extends Error {}

/** The `admin` option, checked at register; undefined when the admin API is off. */
export function resolveAdmin (value: unknown): AdminSettings | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError('fastify-http-cache: option "admin" must be an object like { prefix, preHandler }')
  }
  const v = value as Record<string, unknown>
  for (const key of Object.keys(v)) {
    if (!ADMIN_KEYS.has(key)) throw new TypeError(`fastify-http-cache: unknown option in admin: "${key}" (expected one of: ${[...ADMIN_KEYS].join(', ')})`)
  }
  const prefix = v.prefix ?? '/_cache'
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new TypeError(`fastify-http-cache: option "admin.prefix" must be a path like "/_cache" (no trailing slash), got ${JSON.stringify(prefix)}`)
  }
  if (v.insecure !== undefined && typeof v.insecure !== 'boolean') throw new TypeError('fastify-http-cache: option "admin.insecure" must be a boolean')
  const hooks = v.preHandler === undefined ? [] : Array.isArray(v.preHandler) ? v.preHandler : [v.preHandler]
  if (hooks.some((h) => typeof h !== 'function')) {
    throw new TypeError('fastify-http-cache: option "admin.preHandler" must be a hook function or an array of them')
  }
  // these routes evict and show what is cached: open to anyone only when asked for in so many words
  if (hooks.length === 0 && v.insecure !== true) {
    throw new TypeError('fastify-http-cache: option "admin" needs a preHandler (an auth hook, or an array of them) guarding its routes; pass insecure: true to mount them unguarded')
  }
  return { prefix, preHandler: hooks as preHandlerHookHandler[] }
}

/** The admin routes, registered as a child context of the app under the prefix. */
export function adminRoutes (ctx: HookContext, routes: RouteFinder, api: HttpCacheApi, settings: AdminSettings) {
  const { store, keys, opts } = ctx
  return async function admin (instance: FastifyInstance): Promise<void> {
    // Bodies are never read: a parser here would answer a malformed one with a 400 before the auth hook runs
    instance.removeAllContentTypeParsers()
    instance.addContentTypeParser('*', function (_request, _payload, done) { done(null, undefined) })
    instance.addHook('onSend', function (_request, reply, _payload, done) {
      reply.header('cache-control', 'no-store')
      done()
    })

    // config.cache false: never cached, and never an autoInvalidate write route
    const route = (method: 'GET' | 'DELETE' | 'POST', url: string, handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>): void => {
      instance.route({
        method,
        url,
        config: { cache: false },
        preHandler: settings.preHandler,
        handler: async (request, reply) => {
          try {
            return await handler(request, reply)
          } catch (err) {
            return fail(request, reply, err)
          }
        }
      })
    }

    route('GET', '/stats', async () => api.stats())

    route('GET', '/health', async (_request, reply) => {
      const health = await store.health()
      return await reply.code(health.ok ? 200 : 503).send({ store: store.name, ...health })
    })

    route('GET', '/groups/:group/entries', async (request) => {
      const q = query(request)
      const base = groupBase(request, q)
      const cursor = text(q, 'cursor')
      const page = await store.entries(base, cursor === '' ? undefined : cursor, limitOf(text(q, 'limit')))
      return { entries: page.items.map(({ key, value }) => describe(base, key, value, false)), cursor: page.cursor }
    })

    route('GET', '/entry', async (request, reply) => {
      const found = await findEntry(query(request))
      if (found === undefined) return await reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'no entry a GET of this URL would hit' })
      return found
    })

    route('DELETE', '/groups/:group', async (request) => {
      const q = query(request)
      const group = param(request, 'group')
      return { evicted: await api.evictGroup(group, { namespace: text(q, 'namespace') }) }
    })

    route('DELETE', '/tags/:tag', async (request) => {
      return { evicted: await api.evictTag(assertName('tag', param(request, 'tag'))) }
    })

    route('DELETE', '/entry', async (request) => {
      const q = query(request)
      const url = urlOf(q)
      return { evicted: await api.evict(url, { key: text(q, 'key'), varyBy: text(q, 'varyBy'), headers: headersOf(q) }) }
    })

    route('POST', '/clear', async (request) => {
      return { evicted: await api.clear({ namespace: text(query(request), 'namespace') }) }
    })
  }

  function groupBase (request: FastifyRequest, q: Record<string, unknown>): string {
    return keys.base(assertName('group', param(request, 'group')), routeNamespace('namespace', text(q, 'namespace'), opts))
  }

  /** The entry a GET of `url` would hit, as api.evict() finds it (a path: under any origin the group recorded). */
  async function findEntry (q: Record<string, unknown>): Promise<Record<string, unknown> | undefined> {
    const { path, origin } = target(urlOf(q), opts.keyOrigin)
    const settings = routes.settingsOf(path)
    const group = text(q, 'group')
    const namespace = text(q, 'namespace')
    const base = group !== undefined || namespace !== undefined || settings === undefined
      ? keys.base(assertName('group', group ?? settings?.group ?? opts.defaultGroup), namespace === undefined ? settings?.namespace ?? opts.namespace : routeNamespace('namespace', namespace, opts))
      : settings.base
    let candidates: string[]
    if (settings?.key !== undefined) {
      const key = text(q, 'key')
      if (key === undefined || key === '') throw new InputError('this URL\'s route builds its keys with a key function: give key=<what it returns>')
      candidates = [keys.custom(base, key)]
    } else {
      const varyBy = text(q, 'varyBy')
      if (settings?.varyBy !== undefined && varyBy === undefined) throw new InputError('this URL\'s route keys entries per user (varyBy): give varyBy=<what it returns>')
      const rest = settings === undefined ? entryRest(path, undefined) : entryKeyRest(settings, path, headersOf(q), varyBy)
      const origins = !opts.keyOrigin ? [''] : origin !== undefined ? [origin] : plainFirst(await store.listOrigins(base))
      candidates = origins.map((o) => entryPrefixOf(base) + o + rest)
    }
    for (const key of candidates) {
      const { value } = await store.lookup(key, base)
      if (value !== null) return describe(base, key, value, true)
    }
    return undefined
  }

  function urlOf (q: Record<string, unknown>): string {
    const url = text(q, 'url')
    if (url === undefined) throw new InputError('url is required: a path with its query, or an absolute http(s) URL')
    try {
      target(url, opts.keyOrigin)
    } catch {
      throw new InputError(`url must be a path starting with "/" or an absolute http(s) URL, got ${JSON.stringify(url)}`)
    }
    return url
  }

  function fail (request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
    // the API's own TypeErrors name bad input (a group, a tag, a cursor); anything else is the store
    if (err instanceof InputError || (err instanceof TypeError && err.message.startsWith('fastify-http-cache: '))) {
      const message = err.message.replace(/^fastify-http-cache: /, '')
      return reply.code(400).send({ statusCode: 400, error: STATUS_CODES[400], message })
    }
    request.log.warn({ err }, 'fastify-http-cache: admin request failed on the store')
    return reply.code(503).send({ statusCode: 503, error: STATUS_CODES[503], message: 'the cache store did not answer' })
  }
}

/** What the admin API shows of a stored key. `detail`: the variants of an 'http' entry too. */
function describe (base: string, key: string, value: Buffer, detail: boolean): Record<string, unknown> {
  const variants = decodeVariants(value)
  if (variants !== undefined) {
    const e = variants[0]
    const out: Record<string, unknown> = { key, url: entryUrl(base, key), status: e.status, storedAt: e.storedAt, ttl: e.ttl / 1000, size: value.length, tags: e.tags ?? [] }
    if (detail && e.http !== undefined) {
      out.variants = variants.map((v) => ({ status: v.status, storedAt: v.storedAt, ttl: v.ttl / 1000, vary: v.vary ?? {} }))
    }
    return out
  }
  // an application value (set, wrap), or bytes that are not ours
  const v = decodeValue(value)
  const tags = Array.isArray(v?.tags) ? v.tags : []
  return { key, url: null, status: null, storedAt: null, ttl: null, size: value.length, tags }
}

/** `scheme://host/path?query` of an entry key (a path when not keyed by origin); null for other keys. */
function entryUrl (base: string, key: string): string | null {
  const prefix = entryPrefixOf(base)
  if (!key.startsWith(prefix)) return null
  const rest = key.slice(prefix.length)
  const space = rest.indexOf(' ')
  const target = space === -1 ? rest : rest.slice(0, space)
  if (target.startsWith('/')) return target
  // the origin is scheme://host, then ;forwarding=values (encoded: no slash until the path)
  const slash = target.indexOf('/', target.indexOf('://') + 3)
  const origin = slash === -1 ? target : target.slice(0, slash)
  const semi = origin.indexOf(';')
  return (semi === -1 ? origin : origin.slice(0, semi)) + (slash === -1 ? '' : target.slice(slash))
}

// entries a request without forwarding headers would hit come first
function plainFirst (origins: string[]): string[] {
  return origins.sort((a, b) => Number(a.includes(';')) - Number(b.includes(';')) || (a < b ? -1 : a > b ? 1 : 0))
}

function query (request: FastifyRequest): Record<string, unknown> {
  return (request.query ?? {}) as Record<string, unknown>
}

function param (request: FastifyRequest, name: string): string {
  return (request.params as Record<string, string>)[name]
}

function text (q: Record<string, unknown>, name: string): string | undefined {
  const v = q[name]
  if (v === undefined || typeof v === 'string') return v
  throw new InputError(`${name} must be given once`)
}

function limitOf (value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_LIMIT
  const n = Number(value)
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_LIMIT) throw new InputError(`limit must be a whole number from 1 to ${MAX_LIMIT}, got ${JSON.stringify(value)}`)
  return n
}

/** `header.<name>=value` query parameters: the request headers a route's `vary` keys on. */
function headersOf (q: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of Object.keys(q)) {
    if (name.startsWith('header.')) {
      const value = text(q, name)
      if (value !== undefined) out[name.slice(7).toLowerCase()] = value
    }
  }
  return out
}
