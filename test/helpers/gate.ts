/** A promise and the function that resolves it, for a test to settle by hand. */
export function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

export interface Gate {
  /** Resolves once the paused code has reached the gate (it called `enter()`). */
  entered: Promise<void>
  enter: () => void
  /** What the paused code awaits; resolves when the test calls `release()`. */
  wait: Promise<void>
  release: () => void
  /** For the code under test: the first call enters and waits for `release()`; later calls go straight through. */
  pauseFirst: () => Promise<void>
}

/**
 * Pauses code under test at a point the test chooses: the code calls `enter()` then awaits `wait`
 * (or just awaits `pauseFirst()`); the test awaits `entered`, does what must happen meanwhile, then `release()`s it.
 */
export function gate (): Gate {
  const entered = deferred()
  const wait = deferred()
  let paused = false
  return {
    entered: entered.promise,
    enter: entered.resolve,
    wait: wait.promise,
    release: wait.resolve,
    async pauseFirst () {
      if (paused) return
      paused = true
      entered.resolve()
      await wait.promise
    }
  }
}
