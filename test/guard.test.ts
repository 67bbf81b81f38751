// The guard alone, with plain promises for Redis calls: deadlines (one shared timer, FIFO expiry),
// the circuit breaker, reply errors that do not count as an outage, and what it logs.
import t, { test } from 'tap'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { ReplyError } from 'ioredis'
import { Guard, StoreUnavailableError } from '../lib/guard.js'

// The guard's timer is unref()ed: with nothing else running, this process would exit mid-test.
const alive = setInterval(() => {}, 1000)
t.teardown(() => clearInterval(alive))

interface Logged { level: string, msg: string }

function logger (): { log: FastifyBaseLogger, lines: Logged[] } {
  const lines: Logged[] = []
  const at = (level: string) => (obj: unknown, msg?: string) => { lines.push({ level, msg: typeof obj === 'string' ? obj : msg ?? '' }) }
  const log = { warn: at('warn'), info: at('info'), error: at('error'), debug: at('debug') } as unknown as FastifyBaseLogger
  return { log, lines }
}

function guard (options: { timeout?: number, ready?: () => boolean, cooldown?: number } = {}): { g: Guard, lines: Logged[] } {
  const { log, lines } = logger()
  const g = new Guard({ timeout: options.timeout ?? 1000, log, isReady: options.ready ?? (() => true), cooldown: options.cooldown })
  return { g, lines }
}

const never = async (): Promise<never> => await new Promise<never>(() => {})
const fails = (message = 'ECONNRESET') => async (): Promise<never> => { throw new Error(message) }
const replyError = (): Error => new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value') as Error

/** When `p` settles, in ms since `start`, and how. */
async function timed (start: number, p: Promise<unknown>): Promise<{ ms: number, err: unknown }> {
  try {
    await p
    return { ms: performance.now() - start, err: undefined }
  } catch (err) {
    return { ms: performance.now() - start, err }
  }
}

test('a call answers with what the operation resolves or rejects with', async (t) => {
  const { g } = guard()
  t.equal(await g.run(async () => 42), 42)
  await t.rejects(g.run(fails('boom')), { message: 'boom' })
  t.equal(g.pending, 0, 'nothing left in the deadline queue')
})

test('a call that does not answer rejects at its deadline, not before', async (t) => {
  const { g } = guard({ timeout: 60 })
  const start = performance.now()
  const { ms, err } = await timed(start, g.run(never))
  t.type(err, StoreUnavailableError)
  t.match((err as Error).message, /exceeded 60 ms/)
  t.ok(ms >= 59, `rejected after ${ms.toFixed(1)} ms`)
  t.ok(ms < 1000, 'and soon after the deadline (generous bound for a busy machine)')
  t.equal(g.pending, 0)
})

test('calls started at different times each get their own deadline', async (t) => {
  const { g } = guard({ timeout: 80 })
  const start = performance.now()
  const first = timed(start, g.run(never))
  await sleep(40)
  const second = timed(start, g.run(never))
  const third = timed(start, g.run(async () => 'quick'))
  const a = await first
  const b = await second
  t.ok(a.ms >= 79, `first rejected at ${a.ms.toFixed(1)} ms`)
  t.ok(b.ms >= 40 + 79 - 1, `second rejected at ${b.ms.toFixed(1)} ms, not with the first`)
  t.type(b.err, StoreUnavailableError)
  t.equal((await third).err, undefined, 'a quick call between them resolves')
  t.equal(g.pending, 0)
})

test('many calls in flight expire together; late answers are ignored', async (t) => {
  const { g } = guard({ timeout: 50 })
  const late: Array<() => void> = []
  const calls = Array.from({ length: 200 }, (_, i) => g.run(async () => await new Promise<string>((resolve, reject) => {
    late.push(() => i % 2 === 0 ? resolve('late') : reject(new Error('late')))
  })))
  t.equal(g.pending, 200)
  const results = await Promise.allSettled(calls)
  t.ok(results.every((r) => r.status === 'rejected' && r.reason instanceof StoreUnavailableError), 'every call rejected')
  t.equal(g.pending, 0)
  for (const answer of late) answer() // must not settle anything twice, throw, or count as a failure
  await sleep(0)
  t.equal(g.pending, 0)
  await t.rejects(g.run(async () => 'ok'), { message: /circuit open/ }, 'the timeouts opened the circuit; late answers do not close it')
})

test('settled calls leave the queue: a long run of quick calls keeps it empty', async (t) => {
  const { g } = guard({ timeout: 1000 })
  for (let i = 0; i < 1000; i++) await g.run(async () => i)
  t.equal(g.pending, 0)
  // out of order: the slow first call holds the front, the quick ones behind it are skipped lazily
  let release!: () => void
  const slow = g.run(async () => await new Promise<void>((resolve) => { release = resolve }))
  await Promise.all(Array.from({ length: 100 }, async (_, i) => await g.run(async () => i)))
  t.equal(g.pending, 1)
  release()
  await slow
  t.equal(g.pending, 0)
})

test('an operation that throws instead of rejecting fails the call like a rejection', async (t) => {
  const { g } = guard({ timeout: 50 })
  await t.rejects(g.run(() => { throw new Error('sync') }), { message: 'sync' })
  t.equal(g.pending, 0, 'not left to expire later')
})

test('not ready: rejects at once without calling the operation', async (t) => {
  const { g } = guard({ ready: () => false })
  let called = 0
  await t.rejects(g.run(async () => { called++ }), { name: 'StoreUnavailableError', message: /not ready/ })
  t.equal(called, 0)
})

test('the circuit opens after 3 consecutive failures, then lets exactly one probe through per cooldown', async (t) => {
  const { g, lines } = guard({ timeout: 50, cooldown: 200 })
  for (let i = 0; i < 3; i++) await t.rejects(g.run(fails()))
  let called = 0
  const counted = async (): Promise<string> => { called++; return 'ok' }
  await t.rejects(g.run(counted), { message: /circuit open/ })
  t.equal(called, 0, 'an open circuit does not call the store')
  t.equal(lines.filter((l) => l.level === 'warn').length, 2, 'one warning at the first failure, one when the circuit opens')

  await sleep(210)
  // the probe hangs: calls meanwhile are refused, the probe's timeout opens the circuit again
  const probe = g.run(never)
  await t.rejects(g.run(counted), { message: /circuit open/ }, 'only one probe at a time')
  await t.rejects(probe, StoreUnavailableError)
  await t.rejects(g.run(counted), { message: /circuit open/ }, 'a failed probe starts another cooldown')
  t.equal(called, 0)

  await sleep(210)
  t.equal(await g.run(counted), 'ok', 'a successful probe closes the circuit')
  t.equal(await g.run(counted), 'ok')
  t.equal(called, 2)
  t.match(lines.at(-1), { level: 'info', msg: /reachable again/ })
  t.equal(lines.filter((l) => l.level === 'warn').length, 2, 'state changes only: no warning per refused call')
})

test('a flapping Redis that opens the circuit again and again warns once per 10 s, the other openings at info', async (t) => {
  const { g, lines } = guard({ timeout: 50, cooldown: 20 })
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 3; i++) await t.rejects(g.run(fails()))
    await t.rejects(g.run(async () => 'x'), { message: /circuit open/ }, `round ${round}: open`)
    await sleep(25)
    t.equal(await g.run(async () => 'ok'), 'ok', `round ${round}: the probe closes it`)
  }
  const opened = lines.filter((l) => /Redis failing/.test(l.msg))
  t.equal(opened.length, 5, 'every opening is logged')
  t.same(opened.map((l) => l.level), ['warn', 'info', 'info', 'info', 'info'], 'one of them as a warning')
  t.equal(lines.filter((l) => l.level === 'warn').length, 2, 'with the first failure\'s warning, two in all')
})

test('a success resets the count of consecutive failures', async (t) => {
  const { g } = guard()
  for (let round = 0; round < 3; round++) {
    await t.rejects(g.run(fails()))
    await t.rejects(g.run(fails()))
    t.equal(await g.run(async () => 'ok'), 'ok', `round ${round}: two failures and a success keep it closed`)
  }
})

test('reply errors reject the call but never open the circuit', async (t) => {
  const { g, lines } = guard({ cooldown: 100 })
  for (let i = 0; i < 10; i++) {
    await t.rejects(g.run(async () => { throw replyError() }), { name: 'ReplyError', message: /WRONGTYPE/ })
  }
  t.equal(await g.run(async () => 'ok'), 'ok', 'the circuit is still closed')
  // between transport failures, a reply error proves Redis answers: the count starts again
  await t.rejects(g.run(fails()))
  await t.rejects(g.run(fails()))
  await t.rejects(g.run(async () => { throw replyError() }))
  await t.rejects(g.run(fails()))
  t.equal(await g.run(async () => 'ok'), 'ok')
  t.equal(lines.filter((l) => /answered an error/.test(l.msg)).length, 1, 'reply errors are logged, rate-limited')
  t.notOk(lines.some((l) => /Redis failing/.test(l.msg)))
})

test('a probe answered with a reply error closes the circuit', async (t) => {
  const { g } = guard({ cooldown: 50 })
  for (let i = 0; i < 3; i++) await t.rejects(g.run(fails()))
  await t.rejects(g.run(async () => 'x'), { message: /circuit open/ })
  await sleep(60)
  await t.rejects(g.run(async () => { throw replyError() }), { name: 'ReplyError' })
  t.equal(await g.run(async () => 'ok'), 'ok')
})

test('the shared timer does not keep the process alive', async (t) => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const { g } = guard({ timeout: 60_000 })
  g.run(never).catch(() => {})
  t.equal(g.pending, 1)
  t.equal(timers(), before, 'the deadline timer is unref()ed')
})
