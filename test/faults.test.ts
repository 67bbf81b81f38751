// Real faults between the plugin and Redis, no mocks: redis-server killed (SIGKILL) and restarted, hung
// (SIGSTOP), and a TCP proxy in between that adds latency, hangs mid-stream, cuts or refuses connections.
// The client is what @fastify/redis creates (default ioredis options: offline queue on, 20 retries per
// request), and the app keeps requesting through each fault. Every request must be answered, in time,
// with the right body; caching must resume once the fault ends; nothing may pile up or leak.
import { test } from 'tap'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import httpCache from '../index.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js'
import { stall } from './helpers/stall.js'
import { until } from './helpers/until.js'

type Test = Parameters<Parameters<typeof test>[0]>[0]

const TIMEOUT = 100
// The longest a request may take during a fault. A request waits for one Redis call (the lookup),
// bounded by TIMEOUT, so an idle machine answers within ~TIMEOUT; the rest is margin for a slow,
// shared CI box. This catches hangs, not slowness: with default ioredis options and no bound, a
// request would wait out 20 reconnection attempts (20-70 s) with Redis down, or forever on a hung one.
const BOUND = 1500
// A request that has not answered after this is reported as hung (and the test goes on).
const HANG = 10_000
const COOLDOWN = 1000 // the guard's default
// A HIT must be seen again this soon after a fault ends: reconnection, then the breaker's probe.
const RECOVERY = 5000 + COOLDOWN
// Peak length of the client's queues during a fault. Only the calls before the circuit opens and one
// probe per cooldown reach the client; without the breaker every request of the load would queue one.
const QUEUE_BOUND = 30
const BODY = 'the body of /r'

interface Answer { status: number, body: string, cache: string | undefined }

interface Rig {
  app: FastifyInstance
  client: Redis
  proxy: FaultProxy
  redis: TestRedis
  /** How many times the /r handler ran. */
  calls: () => number
  send: (path: string) => Promise<Answer>
  /** The app's log lines (JSON). */
  logs: string[]
  /** Reasons of every unhandled rejection since the rig was built. */
  unhandled: unknown[]
  /** performance.now() when the rig was built: log rate limits are per interval */
  started: number
}

interface Stats {
  requests: number
  worst: number
  slow: number
  bad: string[]
  peakQueue: number
}

/**
 * Redis on its own port, the fault proxy in front of it, and an app whose client goes through the
 * proxy. `http`: requests go through a real listening socket (fetch) instead of inject.
 */
async function rig (t: Test, { http = false, timeout = TIMEOUT } = {}): Promise<Rig> {
  const started = performance.now()
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const redis = await startRedis(t)
  const proxy = await startFaultProxy(t, redis)
  // what @fastify/redis creates: default options
  const client = new Redis({ host: proxy.host, port: proxy.port })
  client.on('error', () => {}) // as a user would: connection errors are expected here
  t.teardown(() => client.disconnect())

  const logs: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { logs.push(line) } } } })
  t.teardown(async () => { await app.close() })
  await app.register(httpCache, { redis: client, timeout })
  let calls = 0
  app.get('/r', { config: { cache: { ttl: 60 } } }, async () => { calls++; return BODY })
  app.get('/other', { config: { cache: { ttl: 60, group: 'other' } } }, async () => 'other')

  let send = async (path: string): Promise<Answer> => {
    const res = await app.inject(path)
    return { status: res.statusCode, body: res.body, cache: res.headers['x-cache'] as string | undefined }
  }
  if (http) {
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    send = async (path) => {
      const res = await fetch(base + path)
      return { status: res.status, body: await res.text(), cache: res.headers.get('x-cache') ?? undefined }
    }
  } else {
    await app.ready()
  }
  return { app, client, proxy, redis, calls: () => calls, send, logs, unhandled, started }
}

const stats = (): Stats => ({ requests: 0, worst: 0, slow: 0, bad: [], peakQueue: 0 })

/** Commands the client holds: waiting for a connection, for a reply, or to be sent again. */
function queued (client: Redis): number {
  const c = client as unknown as { offlineQueue: { length: number }, commandQueue: { length: number }, prevCommandQueue?: { length: number } | null }
  return c.offlineQueue.length + c.commandQueue.length + (c.prevCommandQueue?.length ?? 0)
}

/** One request, timed and checked; a request that hangs is reported, not waited for forever. */
async function request (r: Rig, s: Stats, path = '/r', body = BODY): Promise<Answer> {
  const start = performance.now()
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<Answer>((resolve) => {
    timer = setTimeout(resolve, HANG, { status: 0, body: `no answer within ${HANG} ms`, cache: undefined })
  })
  const answer = await Promise.race([r.send(path).catch((err: Error) => ({ status: 0, body: String(err), cache: undefined })), hung])
  clearTimeout(timer)
  const ms = performance.now() - start
  s.requests++
  s.worst = Math.max(s.worst, ms)
  if (ms > BOUND) s.slow++
  if ((answer.status !== 200 || answer.body !== body) && s.bad.length < 10) s.bad.push(`${path}: ${answer.status} ${answer.body.slice(0, 100)}`)
  s.peakQueue = Math.max(s.peakQueue, queued(r.client))
  return answer
}

/** Requests from `workers` concurrent loops for `ms`. */
async function load (r: Rig, s: Stats, ms: number, workers = 4): Promise<void> {
  const end = performance.now() + ms
  await Promise.all(Array.from({ length: workers }, async () => {
    while (performance.now() < end) {
      await request(r, s)
      await sleep(2)
    }
  }))
}

/** Requests until one is a HIT; returns how long that took (fails the test past RECOVERY). */
async function hitAgain (r: Rig, s: Stats, path = '/r', body = BODY): Promise<number> {
  const start = performance.now()
  await until(`a HIT on ${path}`, async () => (await request(r, s, path, body)).cache === 'HIT', RECOVERY)
  return performance.now() - start
}

/** What every fault must leave behind: answers, bounds, recovery, drained queues, no stray rejection. */
async function check (t: Test, r: Rig, name: string, s: Stats, recovery: number, handlerRuns: number): Promise<void> {
  t.same(s.bad, [], `${name}: every request answered 200 with the body`)
  t.equal(s.slow, 0, `${name}: no request took longer than ${BOUND} ms (worst ${s.worst.toFixed(0)} ms)`)
  t.ok(handlerRuns > 0, `${name}: the handler answered the misses (${handlerRuns} runs)`)
  t.ok(recovery <= RECOVERY, `${name}: HIT again ${recovery.toFixed(0)} ms after the fault ended`)
  t.ok(s.peakQueue <= QUEUE_BOUND, `${name}: the client queued at most ${s.peakQueue} commands (bound ${QUEUE_BOUND})`)
  await until('the client queues to drain', () => queued(r.client) === 0, 5000)
  // warnings are rate-limited (failed calls, circuit openings: one each per 10 s), not one per request
  const warnings = r.logs.filter((line) => line.includes('"level":40')).length
  const bound = 2 * Math.ceil((performance.now() - r.started) / 10_000)
  t.ok(warnings <= bound, `${name}: ${warnings} warnings for ${s.requests} requests (bound ${bound})`)
  t.same(r.unhandled, [], `${name}: no unhandled rejection`)
  const closing = performance.now()
  await r.app.close()
  t.ok(performance.now() - closing < 5000, `${name}: app.close() waits for no stuck request or write`)
  t.comment(`${name}: ${s.requests} requests, worst ${s.worst.toFixed(0)} ms, HIT again after ${recovery.toFixed(0)} ms, client queue peak ${s.peakQueue}, ${warnings} warnings`)
}

async function warm (t: Test, r: Rig): Promise<void> {
  await hitAgain(r, stats())
  t.pass('HIT before the fault')
}

test('the fault proxy delays, holds and flushes bytes without reordering them', async (t) => {
  const redis = await startRedis(t)
  const proxy = await startFaultProxy(t, redis)
  const client = redis.client({ host: proxy.host, port: proxy.port })
  t.equal(await client.ping(), 'PONG')
  t.equal(proxy.connections(), 1)
  // distinct replies: a chunk forwarded out of order would hand a command another one's reply
  let sent = 0
  const echo = async (n: number): Promise<string[]> => await Promise.all(Array.from({ length: n }, async () => await client.echo(String(sent++))))
  proxy.latency(50)
  const slow = echo(50)
  await sleep(10)
  proxy.latency(0) // later chunks are due sooner, but wait behind the earlier ones
  const fast = echo(50)
  await sleep(10)
  proxy.pause() // before the slow ones are due: they are held with everything behind them
  const held = echo(50)
  let settled = false
  held.then(() => { settled = true }, () => {})
  await sleep(100)
  t.notOk(settled, 'nothing goes through a paused link')
  proxy.reset()
  const replies = [...await slow, ...await fast, ...await held]
  t.same(replies, Array.from({ length: 150 }, (_, i) => String(i)), 'every command got its own reply')
  let closes = 0
  client.on('close', () => { closes++ })
  proxy.refuse()
  proxy.cut()
  await until('a reconnection to be refused', () => closes >= 2)
  t.equal(proxy.connections(), 0, 'refused while refusing')
  t.not(client.status, 'ready')
  proxy.refuse(false)
  t.equal(await client.echo('again'), 'again', 'reconnected once accepting again')
  t.equal(proxy.connections(), 1)
})

/**
 * A warmed rig through one fault: `fault` loads the app while Redis misbehaves and puts things right
 * after; then every request must have answered and the cache come back (see check()).
 */
async function outage (t: Test, name: string, fault: (r: Rig, s: Stats) => Promise<void>, options?: { http?: boolean }): Promise<Rig> {
  const r = await rig(t, options)
  await warm(t, r)
  const s = stats()
  const before = r.calls()
  await fault(r, s)
  const runs = r.calls() - before
  await check(t, r, name, s, await hitAgain(r, s), runs)
  return r
}

test('Redis killed (SIGKILL) for 2 s, then restarted on the same port', async (t) => {
  await outage(t, 'SIGKILL', async (r, s) => {
    await r.redis.kill()
    await load(r, s, 2000)
    await r.redis.start()
  }, { http: true })
})

test('Redis hung (SIGSTOP) for 1.5 s, then SIGCONT', async (t) => {
  await outage(t, 'SIGSTOP', async (r, s) => {
    const pid = r.redis.pid()
    if (pid === undefined) throw new Error('no redis-server pid')
    process.kill(pid, 'SIGSTOP')
    try {
      await load(r, s, 1500)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
  })
})

test('network latency above the timeout for 1.5 s, then back to normal', async (t) => {
  await outage(t, 'latency', async (r, s) => {
    r.proxy.latency(TIMEOUT * 3)
    await load(r, s, 1500)
    r.proxy.latency(0)
  })
})

test('the link hangs mid-stream for 1.5 s, then flushes everything it held', async (t) => {
  const r = await outage(t, 'pause', async (r, s) => {
    r.proxy.pause()
    await load(r, s, 1500)
    r.proxy.resume()
  })
  // the stream stayed in sync: replies still match their commands
  const inspect = r.redis.client()
  t.equal(await r.client.set('fault:probe', 'ok'), 'OK')
  t.equal(await r.client.get('fault:probe'), 'ok')
  t.equal(await inspect.get('fault:probe'), 'ok')
})

test('connections cut mid-traffic, then refused for 1.5 s', async (t) => {
  await outage(t, 'cut/refuse', async (r, s) => {
    // cut every 100 ms while requests flow: commands in flight are lost with their connection
    let cuts = 0
    const cutting = setInterval(() => {
      if (r.proxy.connections() > 0) cuts++
      r.proxy.cut()
    }, 100)
    try {
      await load(r, s, 1000)
    } finally {
      clearInterval(cutting)
    }
    t.ok(cuts > 0, `${cuts} live connections cut`)
    r.proxy.refuse(true)
    r.proxy.cut()
    await load(r, s, 1500)
    t.equal(r.proxy.connections(), 0, 'no connection got through while refusing')
    r.proxy.reset()
  }, { http: true })
})

test('Redis answering errors (WRONGTYPE): requests still answer and the circuit stays closed', async (t) => {
  // no fault but the error replies: a stall of the machine past the usual 100 ms must not count as one
  // (a timeout is a failure, and its warning would be the one the rate limit lets through)
  const r = await rig(t, { timeout: 5000 })
  const s = stats()
  await hitAgain(r, s, '/other', 'other')
  const inspect = r.redis.client()
  // somebody else's string where the default group's index set lives: every write to the group fails
  await inspect.set('http-cache:{default}:i', 'not a set')
  for (let i = 0; i < 5; i++) t.equal((await request(r, s, `/r?i=${i}`)).cache, 'MISS')
  for (let i = 0; i < 5; i++) {
    await t.rejects(r.app.cache.set(`v${i}`, i), { name: 'ReplyError', message: /WRONGTYPE/ }, 'the error reaches a caller that awaits the write')
  }
  // the route's failed writes came back on the same connection before these: ten reply errors so far
  t.equal((await request(r, s, '/other', 'other')).cache, 'HIT', 'the circuit is closed: another group still HITs')
  t.equal((await request(r, s, '/r?i=late')).cache, 'MISS', 'a lookup in the broken group still works')
  t.notOk(r.logs.some((line) => line.includes('Redis failing')), 'no "Redis failing" warning')
  t.ok(r.logs.some((line) => line.includes('Redis answered an error')), 'the reply error is logged (rate-limited)')
  t.same(s.bad, [], 'every request answered 200 with the body')
  t.same(r.unhandled, [])
  t.comment(`reply errors: ${s.requests} requests, worst ${s.worst.toFixed(0)} ms`)
})

test('the process stalls past the timeout while Redis answers: the answers that came meanwhile win, the circuit stays closed', async (t) => {
  const redis = await startRedis(t)
  const client = redis.client()
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(line) } } }, disableRequestLogging: true })
  t.teardown(async () => { await app.close() })
  await app.register(httpCache, { redis: client, timeout: TIMEOUT })
  let calls = 0
  app.get('/r', { config: { cache: { ttl: 60 } } }, async () => { calls++; return BODY })
  t.equal((await app.inject('/r')).headers['x-cache'], 'MISS')
  await until('the entry is stored', async () => (await app.inject('/r')).headers['x-cache'] === 'HIT')
  const admin = redis.client()
  // Redis holds the lookups for 60 ms and answers them while this process is busy for three timeouts
  await admin.call('client', 'pause', '60', 'all')
  const answers = Promise.all(Array.from({ length: 5 }, async () => await app.inject('/r')))
  await sleep(20) // the lookups are sent
  await stall(3 * TIMEOUT)
  const all = await answers
  t.same(all.map((r) => [r.statusCode, r.headers['x-cache'], r.body]), Array(5).fill([200, 'HIT', BODY]), 'every lookup got its answer')
  t.equal(calls, 1)
  t.notOk(logs.some((line) => /Redis (failing|call failed)/.test(line)), 'no timeout, no open circuit')
  t.equal((await app.inject('/r')).headers['x-cache'], 'HIT')
})
