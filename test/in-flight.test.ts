// The count of writes and refreshes in flight that close() waits for.
import { test } from 'tap'
import { InFlight } from '../lib/in-flight.js'

// Whether `p` has settled by the end of this turn's microtasks and one macrotask.
async function settled (p: Promise<unknown>): Promise<boolean> {
  let done = false
  p.then(() => { done = true }, () => { done = true })
  await new Promise((resolve) => setImmediate(resolve))
  return done
}

test('drained() resolves at once when nothing is under way', async (t) => {
  const inFlight = new InFlight()
  t.ok(await settled(inFlight.drained()))
  inFlight.start()
  inFlight.end()
  t.ok(await settled(inFlight.drained()), 'nor once everything started has ended')
})

test('drained() waits for every start to end, and every waiter is told', async (t) => {
  const inFlight = new InFlight()
  inFlight.start()
  inFlight.start()
  const first = inFlight.drained()
  const second = inFlight.drained()
  inFlight.end()
  t.notOk(await settled(first), 'one still under way')
  inFlight.start() // a write that starts while close() waits is waited for too
  inFlight.end()
  t.notOk(await settled(first), 'still one under way')
  inFlight.end()
  t.ok(await settled(first), 'the first waiter')
  t.ok(await settled(second), 'the second waiter')
  inFlight.start()
  const third = inFlight.drained()
  t.notOk(await settled(third), 'a new wait after the last drain waits again')
  inFlight.end()
  t.ok(await settled(third))
})
