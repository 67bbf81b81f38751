import t from 'tap'
import { Flights } from '../lib/flights.js'
import type { Flight } from '../lib/state.js'

// The registry of runs under way (lib/flights.ts): found by key and generation, gone once deleted,
// whatever shares its chain.

const flight = (key: string, generation = '1'): Flight => ({ key, generation, waiters: undefined, next: undefined })

for (const buckets of [1, 1024]) {
  t.test(`${buckets === 1 ? 'every flight in one chain' : '1024 buckets'}`, async (t) => {
    const flights = new Flights(buckets)
    const a = flight('a')
    const b = flight('b')
    const c = flight('c')
    const a2 = flight('a', '1.1')
    for (const f of [a, b, c, a2]) flights.add(f)
    t.equal(flights.get('a', '1'), a)
    t.equal(flights.get('a', '1.1'), a2, 'another generation of the key is another run')
    t.equal(flights.get('b', '1'), b)
    t.equal(flights.get('c', '1'), c)
    t.equal(flights.get('d', '1'), undefined)
    t.equal(flights.get('b', '2'), undefined)

    flights.delete(b) // in the middle of a chain of one bucket
    t.equal(flights.get('b', '1'), undefined)
    t.equal(b.next, undefined, 'a deleted flight points at nothing')
    t.equal(flights.get('a', '1'), a)
    t.equal(flights.get('c', '1'), c)
    flights.delete(b)
    flights.delete(flight('z'))
    flights.delete(a2) // the head
    flights.delete(a)
    t.equal(flights.get('a', '1'), undefined)
    t.equal(flights.get('a', '1.1'), undefined)
    t.equal(flights.get('c', '1'), c, 'what is left is still found')
    flights.delete(c)
    t.equal(flights.get('c', '1'), undefined)
    flights.add(b)
    t.equal(flights.get('b', '1'), b, 'added again after its delete')
  })
}

t.test('many flights in 1024 buckets: each found until deleted', async (t) => {
  const flights = new Flights()
  const all = Array.from({ length: 5000 }, (_, i) => flight(`http-cache:{g}:e:GET:http://localhost/?n=${i}`))
  for (const f of all) flights.add(f)
  t.ok(all.every((f) => flights.get(f.key, '1') === f))
  for (const f of all.filter((_, i) => i % 2 === 0)) flights.delete(f)
  t.ok(all.every((f, i) => flights.get(f.key, '1') === (i % 2 === 0 ? undefined : f)))
})
