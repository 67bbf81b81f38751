import t from 'tap'
import type { FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import { backends, opener, registerError, routeError } from './helpers/app.js'

// Dynamic TTLs and calendar expiry over HTTP (the expiry arithmetic itself: test/expiry.test.ts).

const DAY = 86_400
const open = opener('ttl')

/** PTTL of a key once it exists (writes are fire-and-forget after the response): bounded poll. */
async function pttl (redis: Redis, key: string): Promise<number> {
  const end = Date.now() + 2000
  for (;;) {
    const left = await redis.pttl(key)
    if (left !== -2 || Date.now() > end) return left
    await sleep(5)
  }
}

const maxAge = (cacheControl: unknown): number => {
  const m = /^max-age=(\d+)$/.exec(String(cacheControl))
  return m === null ? NaN : Number(m[1])
}

/** Local wall-clock parts of an instant in a zone. */
function wall (ms: number, timeZone: string): { weekday: string, time: string } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'long', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
    .formatToParts(ms)
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? ''
  return { weekday: get('weekday'), time: `${get('hour')}:${get('minute')}:${get('second')}` }
}

const query = (req: FastifyRequest): Record<string, string> => req.query as Record<string, string>

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('ttl as a function of the request: max-age and the stored lifetime follow it', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let ttlCalls = 0
      let calls = 0
      app.get('/t', { config: { cache: { ttl: (req) => { ttlCalls++; return Number(query(req).ttl) } } } }, async () => ({ run: ++calls }))
      app.get('/async', {
        config: { cache: { ttl: async (req) => { await sleep(1); return Number(query(req).ttl) } } }
      }, async () => ({ run: ++calls }))

      const miss = await app.inject('/t?ttl=30')
      t.equal(miss.headers['x-cache'], 'MISS')
      t.equal(miss.headers['cache-control'], 'max-age=30')
      t.equal(miss.headers.expires, undefined, 'no Expires for a plain ttl')
      const hit = await app.inject('/t?ttl=30')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.match(hit.headers['cache-control'], /^max-age=(29|30)$/)
      t.equal(ttlCalls, 1, 'the ttl function runs on a miss only')

      t.equal((await app.inject('/t?ttl=120')).headers['cache-control'], 'max-age=120', 'another request, another ttl')
      t.equal((await app.inject('/async?ttl=45')).headers['cache-control'], 'max-age=45', 'an async ttl function')
      t.equal((await app.inject('/async?ttl=45')).headers['x-cache'], 'HIT')
      t.equal(calls, 3)

      if (redis !== undefined) {
        const left30 = await pttl(redis, `${prefix}:{default}:e:GET:http://localhost/t?ttl=30`)
        t.ok(left30 > 25_000 && left30 <= 30_000, `PTTL of the 30 s entry: ${left30}`)
        const left120 = await pttl(redis, `${prefix}:{default}:e:GET:http://localhost/t?ttl=120`)
        t.ok(left120 > 115_000 && left120 <= 120_000, `PTTL of the 120 s entry: ${left120}`)
        const left45 = await pttl(redis, `${prefix}:{default}:e:GET:http://localhost/async?ttl=45`)
        t.ok(left45 > 40_000 && left45 <= 45_000, `PTTL of the 45 s entry: ${left45}`)
      }
    })

    t.test('a ttl function answering 0 stores without expiry (clients revalidate)', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      let calls = 0
      app.get('/zero', { config: { cache: { ttl: () => 0 } } }, async () => ({ run: ++calls }))
      const miss = await app.inject('/zero')
      t.equal(miss.headers['cache-control'], 'no-cache')
      const hit = await app.inject('/zero')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.same(hit.json(), { run: 1 })
      if (redis !== undefined) t.equal(await pttl(redis, `${prefix}:{default}:e:GET:http://localhost/zero`), -1)
    })

    t.test('a ttl function answering garbage: served, not cached, the app keeps serving', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      const garbage: Record<string, unknown> = {
        negative: -1,
        fraction: 1.5,
        string: 'x',
        numeric: '60',
        nan: NaN,
        infinity: Infinity,
        huge: 100 * 365 * 24 * 3600 + 1,
        null: null,
        undefined,
        object: { ttl: 5 }
      }
      const calls: Record<string, number> = {}
      app.get('/g/:kind', {
        config: { cache: { ttl: (req) => garbage[(req.params as { kind: string }).kind] as number } }
      }, async (req) => {
        const kind = (req.params as { kind: string }).kind
        calls[kind] = (calls[kind] ?? 0) + 1
        return { kind, run: calls[kind] }
      })
      app.get('/fine', { config: { cache: { ttl: () => 10 } } }, async () => 'fine')

      for (const kind of Object.keys(garbage)) {
        const first = await app.inject(`/g/${kind}`)
        t.equal(first.statusCode, 200, `${kind}: served`)
        t.same(first.json(), { kind, run: 1 }, `${kind}: the handler's body`)
        t.notMatch(first.headers['cache-control'] ?? '', /max-age/, `${kind}: no freshness advertised for a response not stored`)
        const second = await app.inject(`/g/${kind}`)
        t.equal(second.headers['x-cache'], 'MISS', `${kind}: not cached`)
        t.same(second.json(), { kind, run: 2 })
        if (redis !== undefined) t.equal(await redis.exists(`${prefix}:{default}:e:GET:http://localhost/g/${kind}`), 0, `${kind}: no key in Redis`)
      }
      await app.inject('/fine')
      t.equal((await app.inject('/fine')).headers['x-cache'], 'HIT', 'other routes still cache')
    })

    t.test('a throwing ttl function: served, not cached, no crash', async (t) => {
      const { app, redis, prefix } = await open(t, backend)
      const calls = { sync: 0, async: 0 }
      app.get('/sync', { config: { cache: { ttl: () => { throw new Error('ttl exploded') } } } }, async () => ({ run: ++calls.sync }))
      app.get('/async', { config: { cache: { ttl: async () => { throw new Error('ttl rejected') } } } }, async () => ({ run: ++calls.async }))
      for (const url of ['/sync', '/async']) {
        const first = await app.inject(url)
        t.equal(first.statusCode, 200, `${url}: served`)
        t.same(first.json(), { run: 1 })
        const second = await app.inject(url)
        t.equal(second.statusCode, 200)
        t.equal(second.headers['x-cache'], 'MISS', `${url}: not cached`)
        t.same(second.json(), { run: 2 })
        if (redis !== undefined) t.equal(await redis.exists(`${prefix}:{default}:e:GET:http://localhost${url}`), 0)
      }
    })

    t.test('expires: endOfDay in Europe/Paris: max-age up to the next Paris midnight, an Expires consistent with it', async (t) => {
      const { app, redis, prefix } = await open(t, backend, { timezone: 'Europe/Paris' })
      let calls = 0
      app.get('/day', { config: { cache: { expires: 'endOfDay' } } }, async () => ({ run: ++calls }))

      const miss = await app.inject('/day')
      t.equal(miss.headers['x-cache'], 'MISS')
      const n = maxAge(miss.headers['cache-control'])
      t.ok(n >= 1 && n <= DAY + 3600, `max-age=${n} is at most a day (25 h on the autumn DST day)`)
      const date = Date.parse(String(miss.headers.date))
      const expires = Date.parse(String(miss.headers.expires))
      t.ok(Number.isFinite(date), `Date parses: ${String(miss.headers.date)}`)
      t.ok(Number.isFinite(expires), `Expires parses: ${String(miss.headers.expires)}`)
      t.match(miss.headers.expires, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, 'an IMF-fixdate')
      t.ok(Math.abs(expires - (date + n * 1000)) <= 2000, `Expires ≈ Date + max-age (${expires - date - n * 1000} ms off)`)
      t.equal(wall(expires, 'Europe/Paris').time, '00:00:00', 'Expires is a midnight in Paris')

      const hit = await app.inject('/day')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.headers.expires, miss.headers.expires, 'the HIT carries the same Expires')
      const m = maxAge(hit.headers['cache-control'])
      t.ok(m >= n - 2 && m <= n, `the HIT's max-age=${m} counts down from ${n}`)
      t.ok(Math.abs(Date.parse(String(hit.headers.expires)) - (Date.parse(String(hit.headers.date)) + m * 1000)) <= 2000, 'and stays consistent with it')

      const notModified = await app.inject({ url: '/day', headers: { 'if-none-match': String(miss.headers.etag) } })
      t.equal(notModified.statusCode, 304)
      t.equal(notModified.headers.expires, miss.headers.expires, 'a 304 carries Expires too')
      t.equal(calls, 1)

      if (redis !== undefined) {
        const left = await pttl(redis, `${prefix}:{default}:e:GET:http://localhost/day`)
        t.ok(left > (n - 5) * 1000 && left <= n * 1000, `the entry lives until then in Redis (PTTL ${left}, max-age ${n})`)
      }
    })

    t.test('expires: endOfWeek in Europe/Paris: until Monday 00:00 Paris', async (t) => {
      const { app } = await open(t, backend, { timezone: 'Europe/Paris' })
      app.get('/week', { config: { cache: { expires: 'endOfWeek' } } }, async () => 'week')
      const res = await app.inject('/week')
      const n = maxAge(res.headers['cache-control'])
      t.ok(n >= 1 && n <= 7 * DAY + 3600, `max-age=${n} is at most a week`)
      const expires = Date.parse(String(res.headers.expires))
      t.ok(Math.abs(expires - (Date.parse(String(res.headers.date)) + n * 1000)) <= 2000, 'Expires ≈ Date + max-age')
      t.same(wall(expires, 'Europe/Paris'), { weekday: 'Monday', time: '00:00:00' }, 'Expires is Monday midnight in Paris')
      t.equal((await app.inject('/week')).headers.expires, res.headers.expires)
    })

    t.test('expires without a timezone: UTC midnight', async (t) => {
      const { app } = await open(t, backend)
      app.get('/utc', { config: { cache: { expires: 'endOfDay' } } }, async () => 'utc')
      const res = await app.inject('/utc')
      t.match(res.headers.expires, / 00:00:00 GMT$/)
      const n = maxAge(res.headers['cache-control'])
      t.ok(n >= 1 && n <= DAY, `max-age=${n}`)
      t.ok(Math.abs(Date.parse(String(res.headers.expires)) - (Date.parse(String(res.headers.date)) + n * 1000)) <= 2000)
    })

    t.test('expires: endOfDay at a UTC offset: midnight at that offset, on every Node version', async (t) => {
      const { app } = await open(t, backend, { timezone: '+05:30' })
      app.get('/offset', { config: { cache: { expires: 'endOfDay' } } }, async () => 'offset')
      const res = await app.inject('/offset')
      t.match(res.headers.expires, / 18:30:00 GMT$/, 'midnight at +05:30 is 18:30 GMT')
      const n = maxAge(res.headers['cache-control'])
      t.ok(n >= 1 && n <= DAY, `max-age=${n}: a fixed offset has no 25-hour day`)
      t.ok(Math.abs(Date.parse(String(res.headers.expires)) - (Date.parse(String(res.headers.date)) + n * 1000)) <= 2000)
      t.equal((await app.inject('/offset')).headers['x-cache'], 'HIT')
    })

    t.test('write-through to an expires route: the HIT it makes carries a consistent Expires too', async (t) => {
      const { app } = await open(t, backend, { timezone: 'Europe/Paris' })
      let calls = 0
      app.get('/today', { config: { cache: { expires: 'endOfDay' } } }, async () => ({ run: ++calls }))
      app.put('/today', { config: { cache: { put: true } } }, async (req) => req.body)
      await app.inject({ method: 'PUT', url: '/today', payload: { run: 'put' } })
      const hit = await app.inject('/today')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.same(hit.json(), { run: 'put' })
      const n = maxAge(hit.headers['cache-control'])
      t.ok(n >= 1 && n <= DAY + 3600, `max-age=${n}`)
      t.type(hit.headers.expires, 'string', 'an Expires header, like a HIT stored by a GET miss')
      t.ok(Math.abs(Date.parse(String(hit.headers.expires)) - (Date.parse(String(hit.headers.date)) + n * 1000)) <= 2000, 'consistent with max-age')
      t.equal(calls, 0)
    })
  })
}

t.test('ttl and expires together is a registration error', async (t) => {
  const err = await routeError(t, { config: { cache: { ttl: 60, expires: 'endOfDay' } } })
  t.type(err, TypeError)
  t.match((err as Error).message, /GET \/r takes ttl or expires, not both/)
  const withFn = await routeError(t, { config: { cache: { ttl: () => 60, expires: 'endOfWeek' } } })
  t.type(withFn, TypeError, 'a ttl function too')
})

t.test('a bad expires is a registration error naming the option', async (t) => {
  for (const expires of ['endOfMonth', 'EndOfDay', '', 86400, null]) {
    const err = await routeError(t, { config: { cache: { expires: expires as 'endOfDay' } } })
    t.type(err, TypeError, JSON.stringify(expires))
    t.match((err as Error).message, /config\.cache\.expires of GET \/r/)
  }
})

t.test('a bad ttl value (not a function) is a registration error', async (t) => {
  for (const ttl of [-1, 1.5, 'x', NaN]) {
    const err = await routeError(t, { config: { cache: { ttl: ttl as number } } })
    t.type(err, TypeError, String(ttl))
    t.match((err as Error).message, /config\.cache\.ttl of GET \/r/)
  }
})

t.test('a bad timezone is a registration error naming the option', async (t) => {
  for (const timezone of ['Mars/Olympus', 'Europe/Pariss', '', 'UTC+25', '+0100', '+1:00', 42, null]) {
    const err = await registerError(t, { timezone })
    t.type(err, TypeError, JSON.stringify(timezone))
    t.match((err as Error).message, /option "timezone"/)
  }
  for (const timezone of ['UTC', 'Europe/Paris', 'America/St_Johns', 'Asia/Kathmandu', '+01:00', '-03:30']) {
    t.equal(await registerError(t, { timezone }), undefined, `${timezone} is accepted`)
  }
})
