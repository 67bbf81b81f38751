import type { FastifyBaseLogger } from 'fastify'

/** One pass of a reclaim script over one reclaim set: resolves true once the set is empty. */
export type ReclaimStep = (base: string, reclaimSet: string) => Promise<boolean>

/**
 * Empties, behind the evictions that left them, the reclaim sets of evicted groups (lib/stores/scripts.ts):
 * one group at a time, one short script at a time, so Redis answers other clients between any two. The
 * walks behind clear() run the same way, one namespace start at a time.
 * No timers: the next step starts when the last one answers, and close() stops at the current step.
 * What is left when the instance dies stays queued in Redis for another instance (see RedisStore).
 */
export class Reclaimer {
  private readonly queue = new Set<string>()
  private running: Promise<void> | undefined
  private closed = false

  constructor (
    private readonly pending: (base: string) => Promise<string[]>,
    private readonly step: ReclaimStep,
    private readonly finished: (base: string) => Promise<void>,
    private readonly log: FastifyBaseLogger,
    /** What the log says failed, and under which field it names the base. */
    private readonly task = 'reclaiming evicted keys',
    private readonly field = 'group'
  ) {}

  /** Queues a group whose reclaim sets need emptying. */
  schedule (base: string): void {
    if (this.closed) return
    this.queue.add(base)
    this.running ??= this.drain().finally(() => {
      this.running = undefined
      if (this.queue.size > 0) this.schedule(this.queue.values().next().value as string)
    })
  }

  /** Resolves when nothing is queued or running (for tests and benchmarks). */
  async idle (): Promise<void> {
    while (this.running !== undefined) await this.running
  }

  private async drain (): Promise<void> {
    for (const base of this.queue) {
      if (this.closed) return
      this.queue.delete(base)
      try {
        for (const set of await this.pending(base)) {
          while (!this.closed && !await this.step(base, set));
        }
        if (!this.closed) await this.finished(base)
      } catch (err) {
        // left queued in Redis: the group's next eviction, or another instance's start, resumes it
        this.log.warn({ err, [this.field]: base }, `fastify-http-cache: ${this.task} failed; resumed later`)
      }
    }
  }

  async close (): Promise<void> {
    this.closed = true
    this.queue.clear()
    await this.running
  }
}
