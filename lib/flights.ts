import type { Flight } from './state.js'

// A power of two far above the misses a process has in flight: chains stay a flight or two long.
const BUCKETS = 1024

/**
 * The runs under way in this process, by key and generation: a fixed array of chains. Not a Map: one
 * that gains and loses an entry per MISS rebuilds its table every few dozen, and a table discarded from
 * the old generation keeps what it held alive through young-generation collections. Not an object used
 * as a dictionary either: every lookup of a new key internalizes the string (2 µs per MISS, profiled).
 */
export class Flights {
  private readonly buckets: Array<Flight | undefined>
  private readonly mask: number

  /** `buckets`: a power of two. */
  constructor (buckets = BUCKETS) {
    this.buckets = new Array(buckets).fill(undefined)
    this.mask = buckets - 1
  }

  get (key: string, generation: string): Flight | undefined {
    for (let f = this.buckets[hash(key) & this.mask]; f !== undefined; f = f.next) {
      if (f.key === key && f.generation === generation) return f
    }
    return undefined
  }

  add (flight: Flight): void {
    const i = hash(flight.key) & this.mask
    flight.next = this.buckets[i]
    this.buckets[i] = flight
  }

  delete (flight: Flight): void {
    const i = hash(flight.key) & this.mask
    let f = this.buckets[i]
    if (f === flight) this.buckets[i] = flight.next
    else {
      while (f !== undefined && f.next !== flight) f = f.next
      if (f === undefined) return
      f.next = flight.next
    }
    // a flight promoted before its run ended must not keep the next one alive through scavenges
    flight.next = undefined
  }
}

/** FNV-1a over the key's UTF-16 code units. */
function hash (key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return h
}
