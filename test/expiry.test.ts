import { test } from 'tap'
import {
  assertExpires,
  assertTimezone,
  createExpiryClock,
  expiresAt,
  httpDate,
  secondsUntil,
  type Expires
} from '../lib/expiry.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const ms = (iso: string): number => {
  const t = Date.parse(iso)
  if (Number.isNaN(t)) throw new Error(`bad ISO date in test: ${iso}`)
  return t
}
const iso = (t: number): string => new Date(t).toISOString()

function thrown (fn: () => unknown): Error {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a throw')
}

// An independent reading of the local clock, to check results without trusting lib/expiry.ts.
const formats = new Map<string, Intl.DateTimeFormat>()
interface Local { date: string, time: string, offset: number }
function local (timeZone: string, t: number): Local {
  let f = formats.get(timeZone)
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'
    })
    formats.set(timeZone, f)
  }
  const p: Record<string, string> = {}
  for (const { type, value } of f.formatToParts(t)) p[type] = value
  const date = `${p.year}-${p.month}-${p.day}`
  const time = `${p.hour}:${p.minute}:${p.second}`
  return { date, time, offset: Date.parse(`${date}T${time}Z`) - Math.floor(t / 1000) * 1000 }
}
const addDays = (date: string, n: number): string => iso(Date.parse(`${date}T00:00:00Z`) + n * DAY).slice(0, 10)
const isoWeekday = (date: string): number => new Date(`${date}T00:00:00Z`).getUTCDay() || 7

test('assertTimezone accepts IANA zones and ±HH:MM offsets, and returns them', async (t) => {
  for (const tz of ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'America/Santiago', 'Etc/GMT-14',
    '+01:00', '-05:30', '+05:45', '+14:00', '-12:00', '+00:00', '-00:00', '+23:59', '-23:59']) {
    t.equal(assertTimezone('option "timezone"', tz), tz, tz)
  }
})

test('assertTimezone rejects anything else, naming the option and the value', async (t) => {
  const err = thrown(() => assertTimezone('option "timezone"', 'Mars/Base'))
  t.type(err, TypeError)
  t.equal(err.message, 'fastify-http-cache: option "timezone" must be an IANA time zone like "Europe/Paris" or a UTC offset like "+01:00", got "Mars/Base"')

  const cases: Array<[unknown, string]> = [
    ['', '""'],
    [' UTC', '" UTC"'],
    ['Europe/Paris ', '"Europe/Paris "'],
    // offsets other than ±HH:MM: Node 24's Intl takes some of these, Node 20's none, so none anywhere
    ['+01', '"+01"'],
    ['+0100', '"+0100"'],
    ['\u221201:00', '"\u221201:00"'],
    ['+1:00', '"+1:00"'],
    ['+01:00:00', '"+01:00:00"'],
    ['+24:00', '"+24:00"'],
    ['+01:60', '"+01:60"'],
    [' +01:00', '" +01:00"'],
    ['+01:00 ', '"+01:00 "'],
    ['UTC+01:00', '"UTC+01:00"'],
    ['Paris', '"Paris"'],
    [42, '42'],
    [undefined, 'undefined'],
    [null, 'null'],
    [true, 'true'],
    [['UTC'], 'an array'],
    [{ timeZone: 'UTC' }, 'an object']
  ]
  for (const [value, shown] of cases) {
    const e = thrown(() => assertTimezone('route option "cache.timezone"', value))
    t.type(e, TypeError, shown)
    t.equal(e.message, `fastify-http-cache: route option "cache.timezone" must be an IANA time zone like "Europe/Paris" or a UTC offset like "+01:00", got ${shown}`, shown)
  }
})

test('assertExpires accepts the two kinds and rejects others, naming the option', async (t) => {
  t.equal(assertExpires('option "expires"', 'endOfDay'), 'endOfDay')
  t.equal(assertExpires('option "expires"', 'endOfWeek'), 'endOfWeek')
  const cases: Array<[unknown, string]> = [
    ['endOfMonth', '"endOfMonth"'],
    ['endofday', '"endofday"'],
    ['', '""'],
    ['toString', '"toString"'],
    [1, '1'],
    [undefined, 'undefined'],
    [null, 'null'],
    [{}, 'an object']
  ]
  for (const [value, shown] of cases) {
    const e = thrown(() => assertExpires('option "expires"', value))
    t.type(e, TypeError, shown)
    t.equal(e.message, `fastify-http-cache: option "expires" must be "endOfDay" or "endOfWeek", got ${shown}`, shown)
  }
})

// [zone, now, expected, why]; local times in the notes, offsets in parentheses.
const endOfDay: Array<[string, string, string, string]> = [
  ['UTC', '2026-02-28T23:59:59.999Z', '2026-03-01T00:00:00.000Z', 'last millisecond of February'],
  ['UTC', '2026-12-31T23:00:00.000Z', '2027-01-01T00:00:00.000Z', 'across the year'],
  ['UTC', '2028-02-28T12:00:00.000Z', '2028-02-29T00:00:00.000Z', 'leap day'],
  // Paris: CET +01 / CEST +02; spring forward 2026-03-29 01:00Z, fall back 2026-10-25 01:00Z
  ['Europe/Paris', '2026-01-15T12:00:00.000Z', '2026-01-15T23:00:00.000Z', 'winter: midnight CET'],
  ['Europe/Paris', '2026-07-01T12:00:00.000Z', '2026-07-01T22:00:00.000Z', 'summer: midnight CEST'],
  ['Europe/Paris', '2026-03-28T22:59:59.999Z', '2026-03-28T23:00:00.000Z', 'Sat 28th 23:59:59.999 (+01)'],
  ['Europe/Paris', '2026-03-28T23:30:00.000Z', '2026-03-29T22:00:00.000Z', 'Sun 29th 00:30 (+01): the 23-hour day ends at midnight +02'],
  ['Europe/Paris', '2026-03-29T00:59:59.000Z', '2026-03-29T22:00:00.000Z', 'Sun 29th 01:59:59 (+01), just before the gap'],
  ['Europe/Paris', '2026-03-29T01:00:00.000Z', '2026-03-29T22:00:00.000Z', 'Sun 29th 03:00 (+02), just after the gap'],
  ['Europe/Paris', '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z', 'Sun 25th 00:00 (+02): the 25-hour day ends at midnight +01'],
  ['Europe/Paris', '2026-10-25T00:30:00.000Z', '2026-10-25T23:00:00.000Z', 'Sun 25th 02:30, first time (+02)'],
  ['Europe/Paris', '2026-10-25T01:30:00.000Z', '2026-10-25T23:00:00.000Z', 'Sun 25th 02:30, second time (+01)'],
  ['Europe/Paris', '2026-10-25T22:59:59.999Z', '2026-10-25T23:00:00.000Z', 'Sun 25th 23:59:59.999 (+01)'],
  // New York: EST -05 / EDT -04; spring forward 2026-03-08 07:00Z, fall back 2026-11-01 06:00Z
  ['America/New_York', '2026-03-08T03:30:00.000Z', '2026-03-08T05:00:00.000Z', 'Sat 7th 22:30 (-05)'],
  ['America/New_York', '2026-03-08T06:59:59.000Z', '2026-03-09T04:00:00.000Z', 'Sun 8th 01:59:59 (-05)'],
  ['America/New_York', '2026-03-08T07:00:00.000Z', '2026-03-09T04:00:00.000Z', 'Sun 8th 03:00 (-04)'],
  ['America/New_York', '2026-11-01T03:59:59.000Z', '2026-11-01T04:00:00.000Z', 'Sat Oct 31st 23:59:59 (-04)'],
  ['America/New_York', '2026-11-01T05:30:00.000Z', '2026-11-02T05:00:00.000Z', 'Sun 1st 01:30, first time (-04)'],
  ['America/New_York', '2026-11-01T06:30:00.000Z', '2026-11-02T05:00:00.000Z', 'Sun 1st 01:30, second time (-05)'],
  // Santiago: -04 / -03; 2026-09-06 04:00Z jumps Sat 23:59:59 -> Sun 01:00, 2026-04-05 03:00Z Sat 23:59:59 -> Sat 23:00
  ['America/Santiago', '2026-09-06T03:30:00.000Z', '2026-09-06T04:00:00.000Z', 'Sat 5th 23:30 (-04): Sun 6th starts at 01:00 (-03)'],
  ['America/Santiago', '2026-09-06T03:59:59.999Z', '2026-09-06T04:00:00.000Z', 'Sat 5th 23:59:59.999 (-04)'],
  ['America/Santiago', '2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z', 'Sun 6th 01:00 (-03), the first instant of the day'],
  ['America/Santiago', '2026-04-05T02:30:00.000Z', '2026-04-05T04:00:00.000Z', 'Sat 4th 23:30, first time (-03)'],
  ['America/Santiago', '2026-04-05T03:30:00.000Z', '2026-04-05T04:00:00.000Z', 'Sat 4th 23:30, second time (-04)'],
  // Havana: CST -05 / CDT -04, switching at 00:00 standard time
  ['America/Havana', '2026-03-08T04:59:59.000Z', '2026-03-08T05:00:00.000Z', 'Sat 7th 23:59:59 (-05): Sun 8th starts at 01:00 (-04)'],
  ['America/Havana', '2026-03-08T05:00:00.000Z', '2026-03-09T04:00:00.000Z', 'Sun 8th 01:00 (-04)'],
  ['America/Havana', '2026-10-31T12:00:00.000Z', '2026-11-01T04:00:00.000Z', 'Sat Oct 31st 08:00 (-04)'],
  ['America/Havana', '2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z', 'Sun 1st 00:00 (-04)'],
  ['America/Havana', '2026-11-01T05:30:00.000Z', '2026-11-02T05:00:00.000Z', 'Sun 1st 00:30, second time (-05)'],
  // Beirut: EET +02 / EEST +03, switching at midnight
  ['Asia/Beirut', '2026-03-28T21:30:00.000Z', '2026-03-28T22:00:00.000Z', 'Sat 28th 23:30 (+02): Sun 29th starts at 01:00 (+03)'],
  ['Asia/Beirut', '2026-03-28T22:00:00.000Z', '2026-03-29T21:00:00.000Z', 'Sun 29th 01:00 (+03)'],
  ['Asia/Beirut', '2026-10-24T20:30:00.000Z', '2026-10-24T22:00:00.000Z', 'Sat 24th 23:30, first time (+03)'],
  ['Asia/Beirut', '2026-10-24T21:30:00.000Z', '2026-10-24T22:00:00.000Z', 'Sat 24th 23:30, second time (+02)'],
  // Half and quarter hours
  ['Asia/Kolkata', '2026-06-15T00:00:00.000Z', '2026-06-15T18:30:00.000Z', 'Mon 15th 05:30 (+05:30)'],
  ['Asia/Kolkata', '2026-06-15T18:29:59.999Z', '2026-06-15T18:30:00.000Z', 'Mon 15th 23:59:59.999 (+05:30)'],
  ['Asia/Kolkata', '2026-06-15T18:30:00.000Z', '2026-06-16T18:30:00.000Z', 'Tue 16th 00:00 (+05:30)'],
  ['Asia/Kathmandu', '2026-06-15T12:00:00.000Z', '2026-06-15T18:15:00.000Z', 'Mon 15th 17:45 (+05:45)'],
  ['Asia/Kathmandu', '2026-06-15T18:14:59.000Z', '2026-06-15T18:15:00.000Z', 'Mon 15th 23:59:59 (+05:45)'],
  ['Asia/Kathmandu', '2026-06-15T18:15:00.000Z', '2026-06-16T18:15:00.000Z', 'Tue 16th 00:00 (+05:45)'],
  // Lord Howe: +10:30 / +11; 2026-04-05 15:00Z 02:00 -> 01:30, 2026-10-03 15:30Z 02:00 -> 02:30
  ['Australia/Lord_Howe', '2026-04-04T13:00:00.000Z', '2026-04-05T13:30:00.000Z', 'Sun Apr 5th 00:00 (+11): a 24.5-hour day'],
  ['Australia/Lord_Howe', '2026-04-04T15:15:00.000Z', '2026-04-05T13:30:00.000Z', 'Sun Apr 5th 01:45, second time (+10:30)'],
  ['Australia/Lord_Howe', '2026-10-03T13:30:00.000Z', '2026-10-04T13:00:00.000Z', 'Sun Oct 4th 00:00 (+10:30): a 23.5-hour day'],
  ['Australia/Lord_Howe', '2026-10-03T15:30:00.000Z', '2026-10-04T13:00:00.000Z', 'Sun Oct 4th 02:30 (+11)']
]

test('endOfDay: the start of the next local calendar day', async (t) => {
  for (const [zone, now, expected, why] of endOfDay) {
    t.equal(iso(expiresAt('endOfDay', zone, ms(now))), expected, `${zone} ${now}: ${why}`)
  }
})

// 2026-03-29, 2026-10-25 and 2026-11-01 are Sundays.
const endOfWeek: Array<[string, string, string, string]> = [
  ['UTC', '2026-01-01T00:00:00.000Z', '2026-01-05T00:00:00.000Z', 'Thursday'],
  ['UTC', '2026-01-04T23:59:59.999Z', '2026-01-05T00:00:00.000Z', 'last millisecond of Sunday'],
  ['UTC', '2026-01-05T00:00:00.000Z', '2026-01-12T00:00:00.000Z', 'Monday 00:00 exactly: the next Monday'],
  ['UTC', '2026-12-31T12:00:00.000Z', '2027-01-04T00:00:00.000Z', 'across the year'],
  ['Europe/Paris', '2026-03-22T23:00:00.000Z', '2026-03-29T22:00:00.000Z', 'Mon 23rd 00:00 (+01): a 167-hour week'],
  ['Europe/Paris', '2026-03-25T11:00:00.000Z', '2026-03-29T22:00:00.000Z', 'Wed 25th 12:00 (+01)'],
  ['Europe/Paris', '2026-03-29T21:59:00.000Z', '2026-03-29T22:00:00.000Z', 'Sun 29th 23:59 (+02)'],
  ['Europe/Paris', '2026-03-29T22:00:00.000Z', '2026-04-05T22:00:00.000Z', 'Mon 30th 00:00 (+02) exactly'],
  ['Europe/Paris', '2026-10-18T22:00:00.000Z', '2026-10-25T23:00:00.000Z', 'Mon 19th 00:00 (+02): a 169-hour week'],
  ['Europe/Paris', '2026-10-24T10:00:00.000Z', '2026-10-25T23:00:00.000Z', 'Sat 24th 12:00 (+02)'],
  ['Europe/Paris', '2026-10-25T01:30:00.000Z', '2026-10-25T23:00:00.000Z', 'Sun 25th 02:30, second time (+01)'],
  ['Europe/Paris', '2026-10-25T22:59:00.000Z', '2026-10-25T23:00:00.000Z', 'Sun 25th 23:59 (+01)'],
  ['America/New_York', '2026-11-01T17:00:00.000Z', '2026-11-02T05:00:00.000Z', 'Sun 1st 12:00 (-05)'],
  ['America/New_York', '2026-11-02T04:59:00.000Z', '2026-11-02T05:00:00.000Z', 'Sun 1st 23:59 (-05)'],
  ['America/New_York', '2026-11-02T05:00:00.000Z', '2026-11-09T05:00:00.000Z', 'Mon 2nd 00:00 (-05) exactly'],
  ['America/Santiago', '2026-09-05T16:00:00.000Z', '2026-09-07T03:00:00.000Z', 'Sat 5th 12:00 (-04)'],
  ['America/Santiago', '2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z', 'Sun 6th 01:00 (-03), the first instant of that Sunday'],
  ['Asia/Beirut', '2026-03-28T21:30:00.000Z', '2026-03-29T21:00:00.000Z', 'Sat 28th 23:30 (+02)'],
  ['Asia/Kolkata', '2026-06-14T18:29:00.000Z', '2026-06-14T18:30:00.000Z', 'Sun 14th 23:59 (+05:30)'],
  ['Asia/Kolkata', '2026-06-14T18:30:00.000Z', '2026-06-21T18:30:00.000Z', 'Mon 15th 00:00 (+05:30) exactly'],
  ['Australia/Lord_Howe', '2026-09-27T13:30:00.000Z', '2026-10-04T13:00:00.000Z', 'Mon Sep 28th 00:00 (+10:30): a 167.5-hour week'],
  ['Australia/Lord_Howe', '2026-09-30T01:00:00.000Z', '2026-10-04T13:00:00.000Z', 'Wed Sep 30th 11:30 (+10:30)']
]

test('endOfWeek: the start of the next ISO week, Monday 00:00 local', async (t) => {
  for (const [zone, now, expected, why] of endOfWeek) {
    t.equal(iso(expiresAt('endOfWeek', zone, ms(now))), expected, `${zone} ${now}: ${why}`)
  }
})

test('at a boundary, the next boundary; one millisecond before, the boundary itself', async (t) => {
  for (const [zone, , expected] of [...endOfDay, ...endOfWeek]) {
    for (const kind of ['endOfDay', 'endOfWeek'] as const) {
      const boundary = expiresAt(kind, zone, ms(expected) - 1)
      t.ok(boundary >= ms(expected), `${kind} ${zone} ${expected}`)
      t.equal(expiresAt(kind, zone, boundary - 1), boundary, `${kind} ${zone} ${iso(boundary)} - 1ms`)
      const next = expiresAt(kind, zone, boundary)
      t.ok(next > boundary, `${kind} ${zone} at ${iso(boundary)} gives ${iso(next)}`)
      t.ok(next - boundary >= (kind === 'endOfDay' ? 23 : 167) * HOUR, `${kind} ${zone} at ${iso(boundary)}: a whole period later`)
    }
  }
})

test('secondsUntil: whole seconds to the boundary, at least 1', async (t) => {
  const cases: Array<[Expires, string, string, number]> = [
    ['endOfDay', 'Europe/Paris', '2026-03-28T23:00:00.000Z', 23 * 3600],
    ['endOfDay', 'Europe/Paris', '2026-10-24T22:00:00.000Z', 25 * 3600],
    ['endOfDay', 'America/New_York', '2026-03-08T05:00:00.000Z', 23 * 3600],
    ['endOfDay', 'America/New_York', '2026-11-01T04:00:00.000Z', 25 * 3600],
    ['endOfDay', 'America/Santiago', '2026-09-06T04:00:00.000Z', 23 * 3600],
    ['endOfDay', 'America/Santiago', '2026-04-05T02:30:00.000Z', 90 * 60],
    ['endOfDay', 'Australia/Lord_Howe', '2026-04-04T13:00:00.000Z', 24.5 * 3600],
    ['endOfDay', 'Australia/Lord_Howe', '2026-10-03T13:30:00.000Z', 23.5 * 3600],
    ['endOfWeek', 'Europe/Paris', '2026-10-18T22:00:00.000Z', 169 * 3600],
    ['endOfWeek', 'Europe/Paris', '2026-03-22T23:00:00.000Z', 167 * 3600],
    ['endOfDay', 'UTC', '2026-05-01T23:59:59.999Z', 1],
    ['endOfDay', 'UTC', '2026-05-01T23:59:59.000Z', 1],
    ['endOfDay', 'UTC', '2026-05-01T23:59:58.500Z', 2],
    ['endOfDay', 'UTC', '2026-05-01T00:00:00.000Z', 86400]
  ]
  for (const [kind, zone, now, expected] of cases) {
    t.equal(secondsUntil(kind, zone, ms(now)), expected, `${kind} ${zone} ${now}`)
  }
})

// Offset zones are computed by the plugin (Node 20's Intl knows none), so every Node version agrees.
test('±HH:MM offsets: the next midnight (or Monday) at that fixed offset', async (t) => {
  const cases: Array<[Expires, string, string, string, string]> = [
    ['endOfDay', '+01:00', '2026-03-28T22:59:59.999Z', '2026-03-28T23:00:00.000Z', 'Sat 28th 23:59:59.999'],
    ['endOfDay', '+01:00', '2026-03-28T23:30:00.000Z', '2026-03-29T23:00:00.000Z', 'Sun 29th 00:30: 24 hours, no DST'],
    ['endOfDay', '-05:30', '2026-06-15T05:29:59.000Z', '2026-06-15T05:30:00.000Z', 'Sun 14th 23:59:59'],
    ['endOfDay', '-05:30', '2026-06-15T05:30:00.000Z', '2026-06-16T05:30:00.000Z', 'Mon 15th 00:00 exactly'],
    ['endOfDay', '+05:45', '2026-06-15T12:00:00.000Z', '2026-06-15T18:15:00.000Z', 'Mon 15th 17:45'],
    ['endOfDay', '+23:59', '2026-06-15T12:00:00.000Z', '2026-06-16T00:01:00.000Z', 'Tue 16th 11:59'],
    ['endOfDay', '-23:59', '2026-06-15T12:00:00.000Z', '2026-06-15T23:59:00.000Z', 'Sun 14th 12:01'],
    ['endOfDay', '-00:00', '2026-05-01T23:59:59.999Z', '2026-05-02T00:00:00.000Z', 'UTC by another name'],
    ['endOfWeek', '+01:00', '2026-10-25T12:00:00.000Z', '2026-10-25T23:00:00.000Z', 'Sun 25th 13:00: a 168-hour week'],
    ['endOfWeek', '-05:00', '2026-11-02T04:59:00.000Z', '2026-11-02T05:00:00.000Z', 'Sun 1st 23:59'],
    ['endOfWeek', '-05:00', '2026-11-02T05:00:00.000Z', '2026-11-09T05:00:00.000Z', 'Mon 2nd 00:00 exactly']
  ]
  for (const [kind, zone, now, expected, why] of cases) {
    t.equal(iso(expiresAt(kind, zone, ms(now))), expected, `${kind} ${zone} ${now}: ${why}`)
  }
  t.equal(createExpiryClock('+01:00').timeZone, '+01:00', 'the zone as given')
  t.equal(secondsUntil('endOfDay', '+01:00', ms('2026-03-28T23:00:00.000Z')), 24 * 3600, 'max-age of a whole day')
})

test('±HH:MM offsets agree with the IANA zone of the same fixed offset over 2026', async (t) => {
  const start = ms('2026-01-01T00:00:00Z')
  const step = (ms('2027-01-01T00:00:00Z') - start) / 400
  const pairs: Array<[string, string]> = [['+01:00', 'Etc/GMT-1'], ['-05:00', 'Etc/GMT+5'], ['+14:00', 'Etc/GMT-14'],
    ['-12:00', 'Etc/GMT+12'], ['+00:00', 'UTC'], ['+05:30', 'Asia/Kolkata'], ['+05:45', 'Asia/Kathmandu']]
  for (const [offset, zone] of pairs) {
    const mismatches: string[] = []
    for (let i = 0; i < 400; i++) {
      const now = start + i * step + (i * 104_729) % HOUR
      for (const kind of ['endOfDay', 'endOfWeek'] as const) {
        if (expiresAt(kind, offset, now) !== expiresAt(kind, zone, now)) mismatches.push(`${kind} ${iso(now)}`)
      }
    }
    t.same(mismatches, [], `${offset} = ${zone}`)
  }
})

test('httpDate: IMF-fixdate in GMT', async (t) => {
  t.equal(httpDate(ms('2026-03-29T22:00:00.000Z')), 'Sun, 29 Mar 2026 22:00:00 GMT')
  t.equal(httpDate(ms('2026-03-29T22:00:00.999Z')), 'Sun, 29 Mar 2026 22:00:00 GMT', 'milliseconds dropped')
  t.equal(httpDate(ms('2027-01-04T00:00:00.000Z')), 'Mon, 04 Jan 2027 00:00:00 GMT', 'two-digit day')
  t.equal(httpDate(expiresAt('endOfDay', 'Asia/Kolkata', ms('2026-06-15T12:00:00Z'))), 'Mon, 15 Jun 2026 18:30:00 GMT')
  t.equal(Date.parse(httpDate(ms('2026-10-25T23:00:00Z'))), ms('2026-10-25T23:00:00Z'), 'parses back')
})

test('expiresAt and createExpiryClock reject bad input', async (t) => {
  const bad = thrown(() => expiresAt('endOfDay', 'Mars/Base', Date.now()))
  t.type(bad, TypeError)
  t.match(bad.message, /^fastify-http-cache: timeZone must be an IANA time zone .*, got "Mars\/Base"$/)
  t.throws(() => createExpiryClock('Nowhere'), TypeError)

  const kind = thrown(() => expiresAt('endOfMonth' as Expires, 'UTC', Date.now()))
  t.type(kind, TypeError)
  t.equal(kind.message, 'fastify-http-cache: kind must be "endOfDay" or "endOfWeek", got "endOfMonth"')

  for (const now of [Number.NaN, Infinity, -Infinity, 8.64e15, '1700000000000' as unknown as number]) {
    const e = thrown(() => expiresAt('endOfDay', 'UTC', now))
    t.type(e, RangeError, String(now))
    t.match(e.message, /^fastify-http-cache: now must be epoch milliseconds/)
  }
})

test('a clock gives the same answers in any order of calls', async (t) => {
  const zone = 'America/Santiago'
  const instants: number[] = []
  for (let now = ms('2026-04-03T00:00:00Z'); now < ms('2026-04-08T00:00:00Z'); now += 37 * 60_000 + 123) instants.push(now)
  for (let now = ms('2026-09-04T00:00:00Z'); now < ms('2026-09-09T00:00:00Z'); now += 37 * 60_000 + 123) instants.push(now)
  const forward = createExpiryClock(zone)
  const expected = new Map(instants.map((now) => [now, [forward.expiresAt('endOfDay', now), forward.expiresAt('endOfWeek', now)]]))
  t.equal(forward.timeZone, zone)

  const backward = createExpiryClock(zone)
  const mismatches: string[] = []
  for (const now of [...instants].reverse()) {
    const got = [backward.expiresAt('endOfDay', now), backward.expiresAt('endOfWeek', now)]
    if (got.join() !== expected.get(now)?.join()) mismatches.push(iso(now))
  }
  // a stride that jumps around, crossing days both ways
  const jumping = createExpiryClock(zone)
  for (let i = 0; i < instants.length; i++) {
    const now = instants[(i * 53) % instants.length]
    const got = [jumping.expiresAt('endOfDay', now), jumping.expiresAt('endOfWeek', now)]
    if (got.join() !== expected.get(now)?.join()) mismatches.push(iso(now))
  }
  t.same(mismatches, [])
})

// Property check: over 2026, in zones with every kind of offset and DST rule, the result is the
// next local midnight (or the first instant of a day whose midnight is skipped).
// Where this Node's Intl reads offset zones too (24, late 22), it is the oracle for them as well.
const intlOffsets = ((): boolean => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: '+01:00' }) // eslint-disable-line no-new
    return true
  } catch {
    return false
  }
})()
test('over 2026: always the next local day (or week) start, within bounds', async (t) => {
  const zones = ['UTC', 'Europe/Paris', 'America/New_York', 'America/Santiago', 'America/Havana', 'Asia/Beirut',
    'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', ...(intlOffsets ? ['+01:00', '-09:30', '+23:59', '-23:59'] : [])]
  t.comment(intlOffsets ? `${process.version}: offset zones checked against Intl too` : `${process.version}: Intl reads no offset zones; checked against Etc/GMT above`)
  const skipsMidnight = new Set(['America/Santiago', 'America/Havana', 'Asia/Beirut'])
  const start = ms('2026-01-01T00:00:00Z')
  const step = (ms('2027-01-01T00:00:00Z') - start) / 500 // 17.52 h: every local day gets at least one instant
  const instants = Array.from({ length: 500 }, (_, i) => start + i * step + (i * 104_729) % HOUR)

  for (const zone of zones) {
    for (const kind of ['endOfDay', 'endOfWeek'] as const) {
      const failures: string[] = []
      const skipped = new Set<number>()
      for (const now of instants) {
        const e = expiresAt(kind, zone, now)
        const fail = (why: string): void => { failures.push(`${iso(now)} -> ${iso(e)}: ${why}`) }
        if (!(e > now)) { fail('not after now'); continue }
        if (e - now > (kind === 'endOfDay' ? 25 * HOUR : 7 * DAY + HOUR)) fail('too far')
        if (e % 1000 !== 0) fail('not a whole second')

        const today = local(zone, now).date
        const at = local(zone, e)
        const before = local(zone, e - 1)
        if (kind === 'endOfDay' && at.date !== addDays(today, 1)) fail(`starts ${at.date}, not the day after ${today}`)
        if (kind === 'endOfWeek') {
          if (isoWeekday(at.date) !== 1) fail(`starts ${at.date}, not a Monday`)
          const days = (Date.parse(at.date) - Date.parse(today)) / DAY
          if (days < 1 || days > 7) fail(`starts ${at.date}, ${days} days after ${today}`)
        }
        if (before.date !== addDays(at.date, -1)) fail(`1 ms before is ${before.date}, not the previous day`)
        if (at.time !== '00:00:00') {
          // a skipped midnight: the clock jumped forward over 00:00 right at e
          if (before.time !== '23:59:59' || !(at.offset > before.offset)) fail(`local time ${at.time} at a day start with no jump`)
          else skipped.add(e)
        }
      }
      t.same(failures, [], `${kind} ${zone}`)
      if (kind === 'endOfDay') {
        t.equal(skipped.size, skipsMidnight.has(zone) ? 1 : 0, `${zone}: days starting after a skipped midnight`)
      }
    }
  }
})
