// Cache-Control as RFC 9111 §5.2 and the list syntax of RFC 9110 §5.6 read it: comma-separated
// directives outside quoted strings, names case-insensitive, values a token or a quoted string. The
// first occurrence of a directive counts (§4.2.1 allows it); a malformed one is ignored, never a reason
// to bypass the cache.

export type Directives = Map<string, string | true>

/** 2^31: delta-seconds past it mean "as large as can be" (RFC 9111 §1.2.2). */
export const MAX_DELTA = 2147483648

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/** Parses one or more Cache-Control field values (several header lines read as one list). */
export function parseCacheControl (value: unknown): Directives {
  const out: Directives = new Map()
  if (value === undefined || value === null) return out
  const text = Array.isArray(value) ? value.join(',') : String(value)
  let i = 0
  const n = text.length
  while (i < n) {
    // one list member: name [= value]
    let name = ''
    while (i < n && text[i] !== ',' && text[i] !== '=') name += text[i++]
    let arg: string | true = true
    let valid = true
    if (i < n && text[i] === '=') {
      i++
      if (text[i] === '"') {
        i++
        let v = ''
        let closed = false
        while (i < n) {
          const c = text[i++]
          if (c === '\\' && i < n) v += text[i++]
          else if (c === '"') { closed = true; break } else v += c
        }
        arg = v
        if (!closed) valid = false
        // anything between the closing quote and the next comma makes the member malformed
        let rest = ''
        while (i < n && text[i] !== ',') rest += text[i++]
        if (rest.trim() !== '') valid = false
      } else {
        let v = ''
        while (i < n && text[i] !== ',') v += text[i++]
        arg = v.replace(/[ \t]+$/, '')
        if (arg === '' || !TOKEN.test(arg.toLowerCase())) valid = false
      }
    }
    i++ // the comma
    const key = name.replace(/^[ \t]+/, '').toLowerCase()
    if (key === '') continue
    if (!TOKEN.test(key)) continue // e.g. `max-age =1`: whitespace before '=' is not allowed
    if (valid && !out.has(key)) out.set(key, arg)
    else if (!valid && !out.has(key)) out.set(key, INVALID)
  }
  for (const [k, v] of out) if (v === INVALID) out.delete(k)
  return out
}

const INVALID = '\u0000invalid'

/** A delta-seconds argument (digits only, capped at 2^31), else undefined. */
export function deltaSeconds (d: Directives, name: string): number | undefined {
  const v = d.get(name)
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return undefined
  const n = Number(v)
  return n >= MAX_DELTA ? MAX_DELTA : n
}

/** Field names listed in a qualified `no-cache="..."` / `private="..."`, lower-cased; true: unqualified. */
export function fieldNames (d: Directives, name: string): string[] | true | undefined {
  const v = d.get(name)
  if (v === undefined) return undefined
  if (v === true) return true
  const names = v.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '')
  return names.length === 0 ? true : names
}

// RFC 8941 Structured Field pieces a targeted field (RFC 9213) is made of
const SF_KEY = /^[a-z*][a-z0-9_\-.*]*/
const SF_INTEGER = /^-?\d{1,15}(?![\d.])/
const SF_DECIMAL = /^-?\d{1,12}\.\d{1,3}/
const SF_TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*/
const SF_BYTES = /^:[A-Za-z0-9+/=]*:/
const SF_BOOLEAN = /^\?[01]/
const NUMERIC = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error'])

/**
 * A targeted cache-control field (RFC 9213), a Structured Field Dictionary: undefined when it does not
 * parse as one (the field is then ignored), or when a delta directive is not an Integer.
 */
export function parseTargeted (value: unknown): Directives | undefined {
  if (value === undefined || value === null) return undefined
  let text = (Array.isArray(value) ? value.join(',') : String(value)).replace(/^[ \t]+|[ \t]+$/g, '')
  const out: Directives = new Map()
  if (text === '') return undefined
  for (;;) {
    const key = SF_KEY.exec(text)?.[0]
    if (key === undefined) return undefined
    text = text.slice(key.length)
    let arg: string | true = true
    let integer = false
    if (text.startsWith('=')) {
      text = text.slice(1)
      const item = bareItem(text)
      if (item === undefined) return undefined
      text = text.slice(item.length)
      integer = item.integer
      arg = item.value
    }
    // parameters: ;key[=item]
    while (text.startsWith(';')) {
      text = text.replace(/^; */, '')
      const p = SF_KEY.exec(text)?.[0]
      if (p === undefined) return undefined
      text = text.slice(p.length)
      if (text.startsWith('=')) {
        const item = bareItem(text.slice(1))
        if (item === undefined) return undefined
        text = text.slice(1 + item.length)
      }
    }
    if (NUMERIC.has(key) && !integer) return undefined
    // the last duplicate wins in a Dictionary; ?0 is false: as if absent
    if (arg === '?0') out.delete(key)
    else out.set(key, arg)
    text = text.replace(/^[ \t]+/, '')
    if (text === '') return out
    if (!text.startsWith(',')) return undefined
    text = text.slice(1).replace(/^[ \t]+/, '')
    if (text === '') return undefined
  }
}

function bareItem (text: string): { length: number, value: string | true, integer: boolean } | undefined {
  if (text.startsWith('"')) {
    let i = 1
    let v = ''
    while (i < text.length) {
      const c = text[i++]
      if (c === '\\') {
        const e = text[i++]
        if (e !== '"' && e !== '\\') return undefined
        v += e
      } else if (c === '"') {
        return { length: i, value: v, integer: false }
      } else if (c < ' ' || c > '~') {
        return undefined
      } else {
        v += c
      }
    }
    return undefined
  }
  const decimal = SF_DECIMAL.exec(text)?.[0]
  if (decimal !== undefined) return { length: decimal.length, value: decimal, integer: false }
  const integer = SF_INTEGER.exec(text)?.[0]
  if (integer !== undefined) return { length: integer.length, value: integer, integer: true }
  const bool = SF_BOOLEAN.exec(text)?.[0]
  if (bool !== undefined) return { length: 2, value: bool === '?1' ? true : '?0', integer: false }
  const other = SF_TOKEN.exec(text)?.[0] ?? SF_BYTES.exec(text)?.[0]
  return other === undefined ? undefined : { length: other.length, value: other, integer: false }
}
