// Calendar-aligned expiry: "until the end of the day / week" in a given IANA time zone, computed
// with the zone rules Node ships (Intl), so it stays right across DST changes, skipped midnights
// and half/quarter-hour offsets. A fixed UTC offset ("+01:00") is applied here, not by Intl: only
// newer V8s take offset zones (Node 24, late 22 releases), and every Node version must agree.

export type Expires = 'endOfDay' | 'endOfWeek'

export interface ExpiryClock {
  readonly timeZone: string
  /** Epoch ms of the first instant after `now` that starts the next local day (or ISO week). */
  expiresAt (kind: Expires, now: number): number
}

const HOUR = 3_600_000
// Local midnight of a date happens within these bounds of that date's 00:00 UTC (offsets are -12h..+14h).
const BEFORE = 15 * HOUR
const AFTER = 13 * HOUR
const MAX_CLOCKS = 32

function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  if (Array.isArray(value)) return 'an array'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}

// "±HH:MM" (ECMA-262's range) is the one offset spelling taken. Newer Intl also takes "+01", "+0100"
// and a U+2212 minus, which older Node rejects, so any other signed name is refused on every version.
const OFFSET = /^([+-])([01]\d|2[0-3]):([0-5]\d)$/
const SIGNED = /^[+\-\u2212]/

/** The offset in ms of a "±HH:MM" zone, undefined for any other name. */
function offsetOf (tz: string): number | undefined {
  const m = OFFSET.exec(tz)
  if (m === null) return undefined
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * HOUR + Number(m[3]) * 60_000)
}

export function assertTimezone (what: string, tz: unknown): string {
  if (typeof tz === 'string' && tz.length > 0) {
    if (offsetOf(tz) !== undefined) return tz
    if (!SIGNED.test(tz)) {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: tz }) // eslint-disable-line no-new
        return tz
      } catch {}
    }
  }
  throw new TypeError(`fastify-http-cache: ${what} must be an IANA time zone like "Europe/Paris" or a UTC offset like "+01:00", got ${describe(tz)}`)
}

export function assertExpires (what: string, value: unknown): Expires {
  if (value === 'endOfDay' || value === 'endOfWeek') return value
  throw new TypeError(`fastify-http-cache: ${what} must be "endOfDay" or "endOfWeek", got ${describe(value)}`)
}

/** UTC ms of a calendar date and time (Date.UTC maps years 0-99 to 19xx; this does not). */
function utc (year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number {
  const d = new Date(0)
  d.setUTCFullYear(year, month - 1, day)
  d.setUTCHours(hour, minute, second, 0)
  return d.getTime()
}

// Years 1..9999 keep the formatter's year unambiguous (it prints no era).
const MIN_TIME = utc(1, 1, 3)
const MAX_TIME = utc(9999, 12, 24)

/**
 * A clock for one zone. It owns its formatter (creating one costs far more than using it) and
 * remembers the last boundary of each kind, so repeated calls within a day cost one comparison.
 */
export function createExpiryClock (timeZone: string): ExpiryClock {
  assertTimezone('timeZone', timeZone)
  // a fixed offset: the UTC clock read that many ms later
  const fixed = offsetOf(timeZone)
  const shift = fixed ?? 0
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: fixed === undefined ? timeZone : 'UTC',
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric'
  })
  // [from, until): every `now` in it has `until` as answer (the local date does not change inside)
  const memo: Record<Expires, { from: number, until: number }> = {
    endOfDay: { from: 0, until: 0 },
    endOfWeek: { from: 0, until: 0 }
  }

  /** Local wall-clock time at instant t (whole seconds), as if it were UTC ms. */
  function wall (t: number): number {
    let year = 0
    let month = 0
    let day = 0
    let hour = 0
    let minute = 0
    let second = 0
    for (const part of format.formatToParts(t + shift)) {
      switch (part.type) {
        case 'year': year = Number(part.value); break
        case 'month': month = Number(part.value); break
        case 'day': day = Number(part.value); break
        case 'hour': hour = Number(part.value) % 24; break // some ICU builds said 24 for midnight
        case 'minute': minute = Number(part.value); break
        case 'second': second = Number(part.value); break
      }
    }
    return utc(year, month, day, hour, minute, second)
  }

  const offset = (t: number): number => wall(t) - Math.floor(t / 1000) * 1000

  /** First instant after `now` whose local date is `date` (UTC ms of its 00:00) or later. */
  function startOf (date: number, now: number): number {
    // Exact local midnights: date - o for an offset o in force around it, when o is the offset there.
    let best = Infinity
    for (const o of new Set([offset(date - BEFORE), offset(date + AFTER)])) {
      const t = date - o
      if (t > now && t < best && offset(t) === o) best = t
    }
    if (best !== Infinity) return best
    // Midnight skipped by a DST change: the day starts at the change, the first second reading `date`.
    let lo = Math.floor(Math.max(now, date - BEFORE) / 1000) // reads the day before
    let hi = Math.ceil((date + AFTER) / 1000) // reads `date` or later
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2)
      if (wall(mid * 1000) >= date) hi = mid
      else lo = mid
    }
    return hi * 1000
  }

  return {
    timeZone,
    expiresAt (kind, now) {
      const m = memo[assertExpires('kind', kind)]
      if (typeof now !== 'number' || !(now >= MIN_TIME && now <= MAX_TIME)) {
        throw new RangeError(`fastify-http-cache: now must be epoch milliseconds within years 1-9999, got ${describe(now)}`)
      }
      if (now >= m.from && now < m.until) return m.until
      const local = new Date(wall(now))
      const weekday = local.getUTCDay() || 7 // ISO: Monday 1 .. Sunday 7
      const next = local.setUTCHours(0, 0, 0, 0) + (kind === 'endOfDay' ? 1 : 8 - weekday) * 24 * HOUR
      const until = startOf(next, now)
      m.from = now
      m.until = until
      return until
    }
  }
}

// Clocks by zone, bounded: plugins use one zone or a few, callers may pass anything.
const clocks = new Map<string, ExpiryClock>()

function clockFor (timeZone: string): ExpiryClock {
  let clock = clocks.get(timeZone)
  if (clock === undefined) {
    clock = createExpiryClock(timeZone)
    if (clocks.size >= MAX_CLOCKS) clocks.delete(clocks.keys().next().value as string)
    clocks.set(timeZone, clock)
  }
  return clock
}

/**
 * Epoch ms of the next local midnight in `timeZone` after `now`: the start of the next calendar day
 * (endOfDay) or of the next ISO week, Monday 00:00 (endOfWeek). On a day whose midnight a DST change
 * skips, the day starts at its first existing instant. Never returns `now` itself.
 */
export function expiresAt (kind: Expires, timeZone: string, now: number): number {
  return clockFor(timeZone).expiresAt(kind, now)
}

/** Whole seconds from `now` to the boundary, at least 1 (for `max-age`). */
export function secondsUntil (kind: Expires, timeZone: string, now: number): number {
  return Math.max(1, Math.ceil((expiresAt(kind, timeZone, now) - now) / 1000))
}

/** The IMF-fixdate of an `Expires` header (RFC 9110 §5.6.7). */
export function httpDate (ms: number): string {
  return new Date(ms).toUTCString()
}
