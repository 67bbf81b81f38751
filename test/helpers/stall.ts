import { performance } from 'node:perf_hooks'

/**
 * Keeps this process busy for `ms` (a long GC, a descheduled VM), from a callback of the loop's check
 * phase: its due timers then come before its next read of the sockets (a stall in a timer's callback
 * would be followed by a read first).
 */
export async function stall (ms: number): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
  const end = performance.now() + ms
  while (performance.now() < end) Math.sqrt(end)
}
