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
  /** How many flights were sent with an entry so far (lib/single-flight.ts, settle). */
  sent = 0

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

  /** Adds `flight` in front of its chain, dropping the abandoned flights the chain holds. */
  add (flight: Flight): void {
    const i = hash(flight.key) & this.mask
    // a hijacked leader no follower came for is never landed: without this the registry would keep it
    let tail = flight
    for (let f = this.buckets[i]; f !== undefined;) {
      const next = f.next
      if (abandoned(f)) forget(f)
      else {
        tail.next = f
        tail = f
      }
      f = next
    }
    tail.next = undefined
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
    forget(flight)
  }
}

// a flight promoted before its run ended must keep neither the next one nor its leader's response
// alive through scavenges
function forget (flight: Flight): void {
  flight.next = undefined
  flight.res = undefined
}

/**
 * Whether a flight's leader will never settle it from onSend: its response ended without it (hijacked)
 * or its connection is gone. Then its followers run the handler themselves.
 */
export function abandoned (flight: Flight): boolean {
  if (flight.entry !== undefined) return false // sent, its write under way: it answers with the entry
  const res = flight.res as { writableEnded: boolean, destroyed?: boolean, stream?: { destroyed: boolean } } | undefined
  // HTTP/1 responses say `destroyed` once closed; HTTP/2 ones through their stream
  return res === undefined || res.writableEnded || res.destroyed === true || res.stream?.destroyed === true
}

/** FNV-1a over the key's UTF-16 code units. */
function hash (key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return h
}
