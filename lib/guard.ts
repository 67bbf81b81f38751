import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'

const WARN_EVERY_MS = 10_000

export class StoreUnavailableError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'StoreUnavailableError'
  }
}

export interface GuardOptions {
  /** Upper bound of one call, in ms. */
  timeout: number
  /** Consecutive failures that open the circuit. */
  threshold?: number
  /** How long an open circuit skips the store before letting one probe through, in ms. */
  cooldown?: number
  /** Whether the client can take a command now (so nothing waits in an offline queue). */
  isReady: () => boolean
  log: FastifyBaseLogger
}

/**
 * Runs `fn` when `ms` have passed, once the loop has read its sockets: a process that stalled past a
 * deadline (a long GC, a descheduled VM) runs its due timers before it reads the answers that came
 * meanwhile, and would judge late every call in flight at once, Redis having answered them.
 */
export function deadline (fn: () => void, ms: number): NodeJS.Timeout {
  return setTimeout(() => setImmediate(fn), ms)
}

/** A call in flight: its settle functions are dropped once it settles (the queue skips it then). */
interface Pending {
  deadline: number
  resolve: ((value: any) => void) | undefined
  reject: ((err: Error) => void) | undefined
  next: Pending | undefined
}

/**
 * Bounds every store call (users hand us clients with default ioredis options, which queue commands
 * while Redis is down and wait forever on a hung server) and stops calling a store that keeps
 * failing, so requests in an outage do not each pay the timeout. Logs state changes, not requests.
 *
 * Every call gets the same timeout, so deadlines come in the order calls start: they wait in a FIFO
 * list and one timer, armed for the oldest deadline, expires them all. A call costs no timer of its
 * own (this runs on every cache HIT); settled calls are dropped from the front as they go.
 */
export class Guard {
  private failures = 0
  private openUntil = 0
  private probing = false
  private dropped = false
  private lastWarned = -Infinity
  private lastOpened = -Infinity
  private readonly threshold: number
  private readonly cooldown: number
  private head: Pending | undefined
  private tail: Pending | undefined
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly opts: GuardOptions) {
    this.threshold = opts.threshold ?? 3
    this.cooldown = opts.cooldown ?? 1000
  }

  /** Calls still waiting for an answer or their deadline (for tests: nothing is left behind). */
  get pending (): number {
    let n = 0
    for (let p = this.head; p !== undefined; p = p.next) if (p.reject !== undefined) n++
    return n
  }

  /** The circuit: `open` while calls are skipped, `half-open` while one probe is out. */
  get state (): 'closed' | 'open' | 'half-open' {
    if (this.openUntil === 0) return 'closed'
    return this.probing ? 'half-open' : 'open'
  }

  run<T> (op: () => Promise<T>): Promise<T> {
    // performance.now() is monotonic: a wall clock set back would break the FIFO order of deadlines
    const now = performance.now()
    if (this.openUntil !== 0) {
      if (this.probing || (now < this.openUntil && !this.reconnected())) {
        return Promise.reject(new StoreUnavailableError('fastify-http-cache: Redis circuit open'))
      }
      this.probing = true
    }
    if (!this.opts.isReady()) {
      this.dropped = true
      const err = new StoreUnavailableError('fastify-http-cache: Redis connection not ready')
      this.failed(err)
      return Promise.reject(err)
    }
    // The one promise a call needs: it must be able to reject before op() settles.
    return new Promise<T>((resolve, reject) => {
      const call: Pending = { deadline: now + this.opts.timeout, resolve, reject, next: undefined }
      if (this.tail === undefined) this.head = call
      else this.tail.next = call
      this.tail = call
      this.timer ??= this.arm(this.opts.timeout)
      const failed = (err: Error): void => {
        const fail = call.reject
        if (fail === undefined) return
        this.settle(call)
        this.failed(err)
        fail(err)
      }
      try {
        op().then((value) => {
          const done = call.resolve
          if (done === undefined) return // expired: a late answer proves nothing about the next call
          this.settle(call)
          this.succeeded()
          done(value)
        }, failed)
      } catch (err) {
        failed(err as Error) // a client that throws instead of rejecting
      }
    })
  }

  // A connection seen down and ready again: probe now rather than after the cooldown, so evictions that
  // failed meanwhile are replayed (and caching resumes) as soon as Redis is back.
  private reconnected (): boolean {
    if (!this.dropped || !this.opts.isReady()) return false
    this.dropped = false
    return true
  }

  private arm (ms: number): NodeJS.Timeout {
    const timer = deadline(() => this.expire(), ms)
    timer.unref()
    return timer
  }

  /** Marks a call settled and drops settled calls from the front, so a healthy queue stays short. */
  private settle (call: Pending): void {
    call.resolve = call.reject = undefined
    let p = this.head
    while (p !== undefined && p.reject === undefined) p = p.next
    this.head = p
    if (p === undefined) this.tail = undefined
  }

  /** Rejects every call past its deadline, then waits for the next one (if any call is left). */
  private expire (): void {
    this.timer = undefined
    // a timer may fire a fraction of a ms before performance.now() reaches the deadline
    const now = performance.now() + 1
    let p = this.head
    while (p !== undefined && (p.reject === undefined || p.deadline <= now)) {
      const fail = p.reject
      if (fail !== undefined) {
        p.resolve = p.reject = undefined
        const err = new StoreUnavailableError(`fastify-http-cache: Redis call exceeded ${this.opts.timeout} ms`)
        this.failed(err)
        fail(err)
      }
      p = p.next
    }
    this.head = p
    if (p === undefined) this.tail = undefined
    else this.timer = this.arm(Math.max(1, Math.ceil(p.deadline - now + 1)))
  }

  private succeeded (): void {
    if (this.openUntil !== 0) this.opts.log.info('fastify-http-cache: Redis reachable again, caching resumed')
    this.failures = 0
    this.openUntil = 0
    this.probing = false
  }

  private failed (err: Error): void {
    // An error reply (WRONGTYPE on a key someone else wrote, OOM, NOSCRIPT…) comes from a Redis that
    // answers, quickly: it fails this call only. Matched by name, not instanceof, because the user's
    // ioredis may bring its own copy of redis-errors.
    if (err.name === 'ReplyError') {
      this.succeeded()
      this.warn(err, 'fastify-http-cache: Redis answered an error, serving without cache')
      return
    }
    this.probing = false
    this.failures++
    if (this.openUntil !== 0) {
      this.openUntil = performance.now() + this.cooldown
    } else if (this.failures >= this.threshold) {
      const now = performance.now()
      this.openUntil = now + this.cooldown
      // a flapping Redis opens the circuit again and again: warn once per interval, the rest at info
      const level = now - this.lastOpened < WARN_EVERY_MS ? 'info' : 'warn'
      if (level === 'warn') this.lastOpened = now
      this.opts.log[level]({ err }, `fastify-http-cache: Redis failing, serving without cache (probing every ${this.cooldown} ms)`)
    } else if (this.failures === 1) {
      this.warn(err, 'fastify-http-cache: Redis call failed, serving without cache')
    }
  }

  // A flapping Redis resets the count often: still at most one warning per interval.
  private warn (err: Error, message: string): void {
    const now = performance.now()
    if (now - this.lastWarned < WARN_EVERY_MS) return
    this.lastWarned = now
    this.opts.log.warn({ err }, message)
  }
}
