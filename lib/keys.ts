// Key layout, one slot per group on Redis Cluster (the `{group}` hash tag):
//   <prefix>:{<group>}:e:GET:<path>?<canonical query>   response entries
//   <prefix>:{<group>}:v:<name>                          application values
//   <prefix>:{<group>}:i                                 index of the group's keys
//   <prefix>:{<group>}:g                                 eviction generation of the group
//   <prefix>:groups                                      groups that ever held a key (for clear())

const NAME = /^[\w.:@/+=-]{1,200}$/
const UNRESERVED = /^[\w.!~*'()-]*$/

export function assertName (what: string, value: unknown): string {
  if (typeof value !== 'string' || !NAME.test(value)) {
    throw new TypeError(`fastify-http-cache: ${what} must be 1-200 characters of letters, digits and _ . : @ / + = - (no braces, spaces or wildcards), got ${typeof value === 'string' ? JSON.stringify(value) : typeof value}`)
  }
  return value
}

export class KeyBuilder {
  constructor (private readonly prefix: string) {}

  groupBase (group: string): string {
    return `${this.prefix}:{${group}}:`
  }

  entry (group: string, url: string): string {
    return `${this.prefix}:{${group}}:e:GET:${normalizeUrl(url)}`
  }

  value (group: string, name: string): string {
    return `${this.prefix}:{${group}}:v:${name}`
  }

  index (group: string): string {
    return `${this.prefix}:{${group}}:i`
  }

  generation (group: string): string {
    return `${this.prefix}:{${group}}:g`
  }

  groups (): string {
    return `${this.prefix}:groups`
  }
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
