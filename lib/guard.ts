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
 * Bounds every store call (users hand us clients with default ioredis options, which queue commands
 * while Redis is down and wait forever on a hung server) and stops calling a store that keeps
 * failing, so requests in an outage do not each pay the timeout. Logs state changes, not requests.
 */
export class Guard {
  private failures = 0
  private openUntil = 0
  private probing = false
  private lastWarned = -Infinity
  private readonly threshold: number
  private readonly cooldown: number

  constructor (private readonly opts: GuardOptions) {
    this.threshold = opts.threshold ?? 3
    this.cooldown = opts.cooldown ?? 1000
  }

  run<T> (op: () => Promise<T>): Promise<T> {
    if (this.openUntil !== 0) {
      if (this.probing || Date.now() < this.openUntil) {
        return Promise.reject(new StoreUnavailableError('fastify-http-cache: Redis circuit open'))
      }
      this.probing = true
    }
    if (!this.opts.isReady()) {
      const err = new StoreUnavailableError('fastify-http-cache: Redis connection not ready')
      this.failed(err)
      return Promise.reject(err)
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const timer = setTimeout(() => {
        settled = true
        const err = new StoreUnavailableError(`fastify-http-cache: Redis call exceeded ${this.opts.timeout} ms`)
        this.failed(err)
        reject(err)
      }, this.opts.timeout)
      timer.unref()
      op().then((value) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.succeeded()
        resolve(value)
      }, (err: Error) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.failed(err)
        reject(err)
      })
    })
  }

  private succeeded (): void {
    if (this.openUntil !== 0) this.opts.log.info('fastify-http-cache: Redis reachable again, caching resumed')
    this.failures = 0
    this.openUntil = 0
    this.probing = false
  }

  private failed (err: Error): void {
    this.probing = false
    this.failures++
    if (this.openUntil !== 0) {
      this.openUntil = Date.now() + this.cooldown
    } else if (this.failures >= this.threshold) {
      this.openUntil = Date.now() + this.cooldown
      this.opts.log.warn({ err }, `fastify-http-cache: Redis failing, serving without cache (probing every ${this.cooldown} ms)`)
    } else if (this.failures === 1 && Date.now() - this.lastWarned >= WARN_EVERY_MS) {
      // a flapping Redis resets the count often: still at most one warning per interval
      this.lastWarned = Date.now()
      this.opts.log.warn({ err }, 'fastify-http-cache: Redis call failed, serving without cache')
    }
  }
}
