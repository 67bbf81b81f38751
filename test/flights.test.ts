import t from 'tap'
import { abandoned, Flights } from '../lib/flights.js'
import type { Flight } from '../lib/state.js'

// The registry of runs under way (lib/flights.ts): found by key and generation, gone once deleted,
// whatever shares its chain.

// a leader's response as the registry reads it: ended, closed (HTTP/1) or its stream closed (HTTP/2)
const response = (): Flight['res'] => ({ writableEnded: false, destroyed: false }) as unknown as Flight['res']
const flight = (key: string, generation = '1'): Flight => ({ key, generation, res: response(), waiters: undefined, entry: undefined, sent: 0, next: undefined })

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

t.test('a flight whose leader is over without landing it is dropped by the next add to its chain', async (t) => {
  const over: Array<{ name: string, end: (res: Record<string, unknown>) => void }> = [
    { name: 'hijacked, ended', end: (res) => { res.writableEnded = true } },
    { name: 'connection gone', end: (res) => { res.destroyed = true } },
    { name: 'HTTP/2 stream gone', end: (res) => { delete res.destroyed; res.stream = { destroyed: true } } }
  ]
  for (const { name, end } of over) {
    const flights = new Flights(1)
    const live = flight('live')
    const gone = flight('gone')
    const after = flight('after')
    flights.add(live)
    flights.add(gone)
    flights.add(after)
    t.notOk(abandoned(gone))
    end(gone.res as unknown as Record<string, unknown>)
    t.ok(abandoned(gone), name)
    t.notOk(abandoned(live))
    t.equal(flights.get('gone', '1'), gone, `${name}: found until its chain is added to`)
    flights.add(flight('new'))
    t.equal(flights.get('gone', '1'), undefined, `${name}: dropped`)
    t.equal(gone.res, undefined, `${name}: keeps nothing alive`)
    t.equal(gone.next, undefined)
    for (const key of ['live', 'after', 'new']) t.ok(flights.get(key, '1') !== undefined, `${name}: ${key} kept`)
    flights.delete(live)
    t.equal(live.res, undefined, 'a deleted flight keeps its leader\'s response no more')
    t.ok(abandoned(live), 'and is over')
    t.equal(flights.get('after', '1'), after)
  }
})

t.test('a flight whose leader was sent with an entry, its write under way, stays until deleted', async (t) => {
  const flights = new Flights(1)
  const sent = flight('sent')
  flights.add(sent)
  sent.res = undefined
  t.ok(abandoned(sent), 'without an entry, a flight without a response is over')
  sent.entry = { status: 200 } as unknown as Flight['entry']
  t.notOk(abandoned(sent), 'with one it still answers')
  flights.add(flight('next'))
  t.equal(flights.get('sent', '1'), sent, 'not dropped by an add to its chain')
  flights.delete(sent)
  t.equal(flights.get('sent', '1'), undefined)
})
