// Stampede protection. Concurrent misses of one key run the handler once per process: the first
// leads, the others wait for its entry. Across instances (lock: true) one instance takes a short lock
// in Redis and the others poll for its entry, bounded, then run the handler themselves.
// A flight is per generation: a request that read the group after an eviction never joins a run
// that started before it.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { decodeEntry, isFresh, type CacheEntry } from './entry.js'
import type { LockSettings } from './options.js'
import type { Lookup } from './stores/store.js'
import type { RedisStore } from './stores/redis.js'
import { abandoned, type Flights } from './flights.js'
import type { Flight, RequestState, RouteRun } from './state.js'
import { varyMatches } from './vary.js'

// How long requests wait for a concurrent run of the same miss in this process (a safety bound: the
// leader settles them as soon as its response is sent or its connection closes)
const FOLLOW_WAIT_MS = 30_000

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** The run of this key and generation in this process, if one is under way. */
export function runningFlight (run: RouteRun, state: RequestState, generation: string): Flight | undefined {
  const flights = run.ctx.flights
  const flight = flights.get(state.key, generation)
  if (flight === undefined) return undefined
  // a sent flight answers a lookup that started before it was sent (one that may have read the store
  // before its write); a later lookup came after the write, and found the entry or turned it down
  // (the client's no-cache)
  if (flight.entry !== undefined) return state.asked < flight.sent ? flight : undefined
  if (!abandoned(flight)) return flight
  // its leader's response is over without it (hijacked before any follower came): nothing to wait for
  land(flights, flight, undefined)
  return undefined
}

/** Makes this request the leader of its key's run. */
export function lead (run: RouteRun, reply: FastifyReply, state: RequestState, generation: string): void {
  // Nothing is attached to a flight after this (no promise resolved with the entry, no listener on the
  // response) unless a follower comes, and landing it drops its response: a flight promoted before its
  // run ends keeps nothing alive past it.
  state.flight = { key: state.key, generation, res: reply.raw, waiters: undefined, entry: undefined, sent: 0, next: undefined }
  run.ctx.flights.add(state.flight)
}

/** The leader's entry, or undefined when it stored none or took too long. */
export async function follow (run: RouteRun, running: Flight): Promise<CacheEntry | undefined> {
  if (running.entry !== undefined) return running.entry
  let timer: ReturnType<typeof setTimeout> | undefined
  const entry = await new Promise<CacheEntry | undefined>((resolve) => {
    if (running.waiters === undefined) {
      running.waiters = []
      // a leader whose response never reaches onSend (hijacked, connection gone) must not leave its
      // followers waiting: watched from the first follower on, not on every MISS
      running.res?.once('close', () => land(run.ctx.flights, running, undefined))
    }
    running.waiters.push(resolve)
    // bounded all the same (a handler that never answers a client still connected)
    timer = setTimeout(() => resolve(undefined), FOLLOW_WAIT_MS)
  })
  clearTimeout(timer)
  return entry
}

/**
 * Takes the cross-instance lock of this key or waits for its holder's entry. Resolves to the entry
 * another instance stored meanwhile (the flight settled, ready to serve), else undefined: run the handler.
 */
export async function acquire (run: RouteRun, request: FastifyRequest, state: RequestState, locks: RedisStore, { wait, lease }: LockSettings): Promise<{ entry: CacheEntry, age: number } | undefined> {
  const lockKey = state.key + ' lock'
  const token = `${run.ctx.token}:${++run.lockTokens}`
  const deadline = Date.now() + wait
  let delay = 5
  for (let attempt = 0; ; attempt++) {
    try {
      if (await locks.lock(lockKey, token, lease)) {
        state.lock = token
        // the previous holder may have stored the entry just before letting go
        if (attempt > 0) {
          const found = await stored(run, request, state)
          if (found !== undefined) return found
        }
        break
      }
    } catch (err) {
      request.log.debug({ err }, 'fastify-http-cache: lock unavailable, running the handler')
      break
    }
    if (Date.now() + delay > deadline) break
    await sleep(delay)
    delay = Math.min(delay * 2, 100)
    const found = await stored(run, request, state)
    if (found !== undefined) return found
  }
  return undefined
}

// Whether the store now holds a fresh entry for this request (then the flight is settled with it).
async function stored (run: RouteRun, request: FastifyRequest, state: RequestState): Promise<{ entry: CacheEntry, age: number } | undefined> {
  let found: Lookup
  try {
    found = await run.ctx.store.lookup(state.key, run.route.base)
  } catch {
    return undefined
  }
  const entry = found.value === null ? undefined : decodeEntry(found.value)
  const age = entry === undefined ? 0 : Date.now() - entry.storedAt
  if (entry === undefined || !varyMatches(entry, request) || !isFresh(entry, age)) return undefined
  release(run, state)
  settle(run, state, entry)
  return { entry, age }
}

/**
 * Ends the run this request leads: its followers get `entry` (undefined: they run the handler). While
 * the entry is being written (`writing`) the flight stays, handing `entry` to the lookups that started
 * before now (one may have read the store before the write), until `written`.
 */
export function settle (run: RouteRun, state: RequestState, entry: CacheEntry | undefined, writing = false): void {
  const flight = state.flight
  if (flight === undefined || flight.entry !== undefined) return
  if (entry === undefined || !writing) {
    state.flight = undefined
    land(run.ctx.flights, flight, entry)
    return
  }
  flight.entry = entry
  flight.sent = ++run.ctx.flights.sent
  flight.res = undefined
  const waiters = flight.waiters
  flight.waiters = undefined
  if (waiters !== undefined) for (const resolve of waiters) resolve(entry)
}

/** The write of the entry this request's run was sent with is over (stored or not): its flight goes. */
export function written (run: RouteRun, state: RequestState): void {
  const flight = state.flight
  if (flight === undefined) return
  state.flight = undefined
  run.ctx.flights.delete(flight)
}

// Once per flight, whichever comes first: the leader's onSend, its response's close, a follower
// finding it abandoned (again after that: deleting an absent flight does nothing, waiters are gone).
function land (flights: Flights, flight: Flight, entry: CacheEntry | undefined): void {
  flights.delete(flight)
  const waiters = flight.waiters
  if (waiters === undefined) return
  flight.waiters = undefined
  for (const resolve of waiters) resolve(entry)
}

/** Lets go of the cross-instance lock this request holds. */
export function release (run: RouteRun, state: RequestState): void {
  const token = state.lock
  if (token === undefined || run.locks === undefined) return
  state.lock = undefined
  run.locks.unlock(state.key + ' lock', token).catch(() => {}) // it expires anyway
}
