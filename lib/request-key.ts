// The entry key of a request on a cached route: origin, URL and variant, or the route's own key builder.
import type { FastifyRequest } from 'fastify'
import { entryRest, originOf, variant } from './keys.js'
import type { ResolvedOptions, RouteSettings } from './options.js'
import type { RouteRun } from './state.js'

/** The origin part of a request's entry keys ('' when the plugin does not key by origin). */
export function requestOrigin (opts: ResolvedOptions, request: FastifyRequest): string {
  return opts.keyOrigin ? originOf(request.protocol, request.host, request.headers) : ''
}

/** What follows the origin in the entry keys of a GET of `url` on this route. */
export function entryKeyRest (route: RouteSettings, url: string, headers: Record<string, string | string[] | undefined>, by: string | undefined): string {
  return entryRest(url, variant(route.vary, headers, by), route.policy === 'http')
}

// A user id may be a number; anything else (undefined, objects) would merge users: not cached.
export function varyByValue (value: unknown): string {
  if (typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))) return String(value)
  throw new TypeError(`fastify-http-cache: varyBy must return a string or a number, got ${value === null ? 'null' : typeof value}`)
}

function customKey (custom: unknown): string {
  if (typeof custom !== 'string' || custom.length === 0) throw new TypeError('fastify-http-cache: the key builder must return a non-empty string')
  return custom
}

/** The key of a route with a key builder or varyBy (both may be async); undefined: not cached. */
export async function keyOf (run: RouteRun, request: FastifyRequest): Promise<{ key: string, origin: string | undefined } | undefined> {
  const { route, ctx: { keys, opts } } = run
  try {
    if (route.key !== undefined) return { key: keys.custom(route.base, customKey(await route.key(request))), origin: undefined }
    const origin = requestOrigin(opts, request)
    const by = route.varyBy === undefined ? undefined : varyByValue(await route.varyBy(request))
    return { key: keys.entry(route.base, origin, request.url, variant(route.vary, request.headers, by), route.policy === 'http'), origin }
  } catch (err) {
    request.log.warn({ err }, 'fastify-http-cache: could not build the key, response not cached')
    return undefined
  }
}
