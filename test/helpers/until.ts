import { setTimeout as sleep } from 'node:timers/promises'

/** Polls `check` every `every` ms until it holds; fails after `ms` instead of hanging the suite. */
export async function until (what: string, check: () => boolean | Promise<boolean>, ms = 5000, every = 20): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(every)
  }
}
