// Key layout. A group's keys share its hash tag, so each group is one slot on Redis Cluster:
//   <prefix>[:<namespace>]:{<group>}:                  the group's base (its id in the stores)
//     …e:GET:<origin><path>?<canonical query>[ h:<vary values>][ u:<varyBy>]   response entries
//     …o                                              origins the group's entries were stored under
//     …k:<custom key>                                 entries of routes with a key builder
//     …v:<name>                                       application values (set, wrap)
//     …i                                              index of the group's keys
//     …g                                              eviction generation of the group, and after it its fence:
//                                                     partial evictions not reclaimed yet
//     …t:<tag>                                        the group's keys carrying a tag
//     …r:<generation>, …R                             keys an eviction left to reclaim, and the list of those sets
//     …u:<generation>                                 an evict(url) whose origins are left to sweep (listed in …R)
//     …x                                              set by a clear()'s walk that found the group holding nothing
//   <start>clear[:{<slot tag>}]                       a namespace start's clear count: moved by every clear() (on
//                                                     Cluster one per slot, its tag hashing to that slot)
//   <prefix>:groups                                   bases that hold keys (for clear()'s walk)
//   <prefix>:clearing                                 clear() walks not done: namespace start -> token and cursor
//   <prefix>:reclaim                                  bases with keys left to reclaim
//   <prefix>:tag:{<tag>}                              bases that hold keys carrying a tag (for evictTag())
// A space separates the parts of an entry key: no request target or canonical query contains one.
// The origin (`http://host`, plus any forwarding headers a handler could reflect) keeps a response
// built for one host from answering another: no cache poisoning through Host or X-Forwarded-*.
import calculateSlot from 'cluster-key-slot'

const NAME = /^[\w.:@/+=-]{1,200}$/
const UNRESERVED = /^[\w.!~*'()-]*$/

export function assertName (what: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new TypeError(`fastify-http-cache: ${what} must be 1-200 characters of letters, digits and _ . : @ / + = - (no braces, spaces or wildcards), got ${typeof value === 'string' ? JSON.stringify(value) : typeof value}`)
  }
  return value
}

export class KeyBuilder {
  private readonly top: readonly string[]

  constructor (private readonly prefix: string) {
    this.top = [`${prefix}:`]
  }

  /**
   * The namespace starts a base is under, widest first: the prefix's, then each namespace level's
   * (`p:a:b:{g}:` is under `p:`, `p:a:` and `p:a:b:`), as clear() takes them. The same array for every
   * base outside a namespace.
   */
  startsOf (base: string): readonly string[] {
    const from = this.prefix.length + 1
    const brace = base.indexOf('{', from)
    if (brace === from) return this.top
    const out = [base.slice(0, from)]
    for (let i = base.indexOf(':', from); i !== -1 && i < brace; i = base.indexOf(':', i + 1)) out.push(base.slice(0, i + 1))
    return out
  }

  /** The base of a group's keys, within a namespace when one is given. */
  base (group: string, namespace?: string): string {
    return namespace === undefined ? `${this.prefix}:{${group}}:` : `${this.prefix}:${namespace}:{${group}}:`
  }

  /** Bases of a namespace (and the namespaces below it) start with this; undefined: every base. */
  namespaceStart (namespace: string | undefined): string {
    return namespace === undefined ? `${this.prefix}:` : `${this.prefix}:${namespace}:`
  }

  entry (base: string, origin: string, url: string, variant?: string, asSent = false): string {
    return entryPrefixOf(base) + origin + entryRest(url, variant, asSent)
  }

  custom (base: string, key: string): string {
    return `${base}k:${key}`
  }

  value (base: string, name: string): string {
    return `${base}v:${name}`
  }

  groups (): string {
    return `${this.prefix}:groups`
  }

  /** clear() walks of the groups registry not done yet (see lib/stores/redis.ts). */
  clearing (): string {
    return `${this.prefix}:clearing`
  }

  /** Groups with evicted keys still to reclaim (see lib/stores/reclaim.ts). */
  reclaims (): string {
    return `${this.prefix}:reclaim`
  }

  /** Pub/sub channel of evictions (see lib/stores/redis.ts). */
  channel (): string {
    return `${this.prefix}:invalidate`
  }

  tagRegistry (tag: string): string {
    return `${this.prefix}:tag:{${tag}}`
  }
}

// A group's own keys, derived from its base (the stores only know bases).
export const indexOf = (base: string): string => base + 'i'
export const generationOf = (base: string): string => base + 'g'
export const tagSetOf = (base: string, tag: string): string => `${base}t:${tag}`
export const originsOf = (base: string): string => base + 'o'
export const entryPrefixOf = (base: string): string => base + 'e:GET:'
/** A namespace start's clear count, moved by every clear() (`tag`: a hash tag, one key per Cluster slot). */
export const clearOf = (start: string, tag = ''): string => tag === '' ? start + 'clear' : `${start}clear:{${tag}}`

export const SLOTS = 16384

/** A hash tag for every Cluster slot: the first base-36 numbers that hash to each (about 170,000 tried). */
export function slotTags (): string[] {
  const tags = new Array<string>(SLOTS)
  for (let i = 0, left = SLOTS; left > 0; i++) {
    const tag = i.toString(36)
    const slot = calculateSlot(tag)
    if (tags[slot] === undefined) {
      tags[slot] = tag
      left--
    }
  }
  return tags
}

/**
 * What follows the origin in an entry key. `asSent` (policy 'http'): the request target with RFC 3986
 * normalization only, the query as sent (an origin may tell `?a=1&b=2` from `?b=2&a=1`).
 */
export function entryRest (url: string, variant: string | undefined, asSent = false): string {
  const target = asSent ? normalizeTarget(url) : normalizeUrl(url)
  return variant === undefined ? target : `${target} ${variant}`
}

const UNRESERVED_CHAR = /^[A-Za-z0-9\-._~]$/

/** RFC 3986 §6.2.2: percent-encodings in upper case, unreserved characters decoded; a fragment dropped. */
export function normalizeTarget (url: string): string {
  const hash = url.indexOf('#')
  const target = hash === -1 ? url : url.slice(0, hash)
  if (!target.includes('%')) return target
  return target.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16))
    return UNRESERVED_CHAR.test(c) ? c : '%' + hex.toUpperCase()
  })
}

// Headers a proxy sets and a handler may build URLs from (even when Fastify does not trust them).
const FORWARDING = ['x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-forwarded-prefix', 'x-original-url', 'x-rewrite-url']
// Forwarded (RFC 7239) counts by its host= and proto=: its for= differs per client and would split the cache.
const FORWARDED_PARTS = /(?:^|[;,\s])(host|proto)\s*=\s*("[^"]*"|[^;,\s]*)/gi
const PLAIN_HOST = /^[a-z0-9.:[\]-]*$/

/**
 * The origin part of an entry key: scheme and host as Fastify resolves them (trustProxy decides whether
 * X-Forwarded-* count there), then every forwarding header present, trusted or not. Behind a proxy those
 * are the same on every request (one variant); a client forging them gets entries of its own.
 */
export function originOf (protocol: string, host: string | undefined, headers: Record<string, string | string[] | undefined>): string {
  let h = host === undefined ? '' : host.toLowerCase()
  // `host:80` is `host` for http (and 443 for https), as URL parsers write it: evict('http://host/x') finds it
  const port = protocol === 'https' ? ':443' : protocol === 'http' ? ':80' : undefined
  if (port !== undefined && h.endsWith(port)) h = h.slice(0, -port.length)
  let origin = protocol + '://' + (PLAIN_HOST.test(h) ? h : encodeURIComponent(h))
  for (let i = 0; i < FORWARDING.length; i++) {
    const value = headers[FORWARDING[i]]
    if (value !== undefined) origin += ';' + FORWARDING[i] + '=' + encodeURIComponent(Array.isArray(value) ? value.join(',') : value)
  }
  const forwarded = headers.forwarded
  if (forwarded !== undefined) {
    let parts = ''
    for (const m of (Array.isArray(forwarded) ? forwarded.join(',') : forwarded).matchAll(FORWARDED_PARTS)) parts += `${m[1].toLowerCase()}=${m[2]},`
    if (parts !== '') origin += ';forwarded=' + encodeURIComponent(parts)
  }
  return origin
}

/** The part of an entry key that tells variants apart: the values of `vary` headers and the varyBy value. */
export function variant (vary: readonly string[], headers: Record<string, string | string[] | undefined>, by: string | undefined): string | undefined {
  let out = ''
  if (vary.length > 0) {
    out = 'h:' + vary.map((name) => {
      const v = headers[name]
      return v === undefined ? name : `${name}=${encodeURIComponent(Array.isArray(v) ? v.join(', ') : v)}`
    }).join('&')
  }
  if (by !== undefined) out += (out === '' ? 'u:' : ' u:') + encodeURIComponent(by)
  return out === '' ? undefined : out
}

/** The path of a request target without its query, without a trailing slash (autoInvalidate tags). */
export function pathOf (url: string): string {
  const q = url.indexOf('?')
  let path = q === -1 ? url : url.slice(0, q)
  while (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1)
  return path
}

/** `/a/b/c` → `/a/b/c`, `/a/b`, `/a`: the paths a write to `/a/b/c` makes stale. */
export function ancestors (path: string): string[] {
  const out: string[] = []
  let p = path
  while (p.length > 1) {
    out.push(p)
    p = p.slice(0, p.lastIndexOf('/')) || '/'
  }
  return out
}

/**
 * Path as received, then the query with parameters stably sorted by name, each name and value
 * re-encoded canonically: `?b=2&a=1` == `?a=1&b=2`, repeated names keep their order, and an encoded
 * `%26`/`%3D` never reads as a separator.
 */
export function normalizeUrl (url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const path = url.slice(0, q)
  const hash = url.indexOf('#', q)
  const query = hash === -1 ? url.slice(q + 1) : url.slice(q + 1, hash)
  if (query === '') return path
  const parts = query.split('&')
  const pairs: Array<[string, string]> = []
  for (const part of parts) {
    if (part === '') continue
    const eq = part.indexOf('=')
    if (eq === -1) {
      const name = canonical(part)
      pairs.push([name, name])
    } else {
      const name = canonical(part.slice(0, eq))
      pairs.push([name, name + '=' + canonical(part.slice(eq + 1))])
    }
  }
  if (pairs.length === 0) return path
  // Array#sort is stable: values of a repeated name keep their order
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  let out = path + '?' + pairs[0][1]
  for (let i = 1; i < pairs.length; i++) out += '&' + pairs[i][1]
  return out
}

function canonical (s: string): string {
  if (UNRESERVED.test(s)) return s
  try {
    return encodeURIComponent(decodeURIComponent(s.replace(/\+/g, ' ')))
  } catch {
    // Invalid escapes stay as sent: a bare `%` never appears in canonical output, so no collision.
    return s
  }
}
