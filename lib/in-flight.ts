// Writes and background refreshes under way, counted so that close() can wait for them to end.
// A count, not a Set of their promises: a Set (and a Map) that is added to and deleted from on every
// MISS rebuilds its table every few dozen requests, and once the table lives in the old generation each
// discarded one keeps what it held alive through young-generation collections. Every MISS's promise
// chain, request and body was then promoted and left to full collections (npm run bench:miss, README).
export class InFlight {
  private count = 0
  private waiting: Array<() => void> = []

  start (): void {
    this.count++
  }

  end (): void {
    if (--this.count > 0 || this.waiting.length === 0) return
    const waiting = this.waiting
    this.waiting = []
    for (const resolve of waiting) resolve()
  }

  /** Resolves once nothing is under way. */
  async drained (): Promise<void> {
    if (this.count === 0) return
    await new Promise<void>((resolve) => { this.waiting.push(resolve) })
  }
}
