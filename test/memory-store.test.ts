import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { MemoryStore } from '../lib/stores/memory.js'

const MiB = 1024 * 1024

function bytes (n: number, fill = 'x'): Buffer {
  return Buffer.alloc(n, fill)
}

// The group index is private; these tests check its invariant directly: it holds only keys the LRU
// still has, so it never grows past the byte bound.
function indexed (store: MemoryStore, group: string): string[] {
  const groups = (store as unknown as { groups: Map<string, Set<string>> }).groups
  return [...(groups.get(group) ?? [])].sort()
}

async function value (store: MemoryStore, key: string, group: string): Promise<string | null> {
  return (await store.lookup(key, group)).value?.toString() ?? null
}

test('write, lookup and delete', async (t) => {
  const store = new MemoryStore(MiB)
  t.equal(store.name, 'memory')
  t.same(await store.lookup('k', 'g'), { value: null, generation: '0' }, 'absent key, fresh group')

  t.equal(await store.write('k', 'g', Buffer.from('hello'), 0), true)
  const found = await store.lookup('k', 'g')
  t.ok(Buffer.isBuffer(found.value))
  t.equal(found.value?.toString(), 'hello')

  t.equal(await store.write('k', 'g', Buffer.from('again'), 0), true, 'overwrite')
  t.equal(await value(store, 'k', 'g'), 'again')
  t.equal(await store.evictGroup('g'), 1, 'an overwrite is still one entry')

  await store.write('k', 'g', Buffer.from('v'), 0)
  await store.write('other', 'g', Buffer.from('w'), 0)
  t.equal(await store.delete('k', 'g'), true, 'delete reports an existing key')
  t.equal(await value(store, 'k', 'g'), null, 'deleted')
  t.equal(await value(store, 'other', 'g'), 'w', 'the rest of the group stays')
  t.equal(await store.delete('k', 'g'), false, 'delete reports a missing key')
  t.equal(await store.delete('never', 'nowhere'), false)
  t.equal(await store.evictGroup('g'), 1, 'the deleted key left the group index')
  await store.close()
})

test('a value that is a view of a larger buffer is kept as bytes of its own (maxBytes bounds real memory)', async (t) => {
  const store = new MemoryStore(MiB)
  // msgpackr's output: a view into its 8 KB working buffer
  const work = Buffer.alloc(8192, 'w')
  const view = work.subarray(1000, 2100)
  await store.write('k', 'g', view, 0)
  const kept = (await store.lookup('k', 'g')).value
  t.same(kept, view, 'the same bytes')
  t.equal(kept?.buffer.byteLength, 1100, 'holding 1,100 bytes, not the 8,192 of the buffer it came from')
  t.equal((await store.lookup('k', 'g')).value, kept, 'the same Buffer on every lookup (decoded once)')
  await store.close()
})

test('TTL: an entry expires after its ttl; ttl 0 never expires', async (t) => {
  const store = new MemoryStore(MiB)
  await store.write('short', 'g', Buffer.from('a'), 30)
  await store.write('forever', 'g', Buffer.from('b'), 0)
  await store.write('long', 'g', Buffer.from('c'), 60_000)
  t.equal(await value(store, 'short', 'g'), 'a', 'fresh')
  await sleep(60)
  t.equal(await value(store, 'short', 'g'), null, 'expired')
  t.equal(await value(store, 'forever', 'g'), 'b')
  t.equal(await value(store, 'long', 'g'), 'c')
  t.equal(await store.delete('short', 'g'), false, 'an expired key does not exist')
  t.equal(await store.evictGroup('g'), 2, 'only live entries are counted')
})

test('TTL: an expired entry is not counted even if never read again', async (t) => {
  const store = new MemoryStore(MiB)
  await store.write('a', 'g', Buffer.from('a'), 30)
  await store.write('b', 'g', Buffer.from('b'), 30)
  await store.write('c', 'h', Buffer.from('c'), 30)
  await sleep(60)
  t.equal(await store.evictGroup('g'), 0)
  t.equal(await store.clear(''), 0)
})

test('TTL: rewriting an entry with ttl 0 clears its old ttl', async (t) => {
  const store = new MemoryStore(MiB)
  await store.write('k', 'g', Buffer.from('old'), 30)
  await store.write('k', 'g', Buffer.from('new'), 0)
  await sleep(60)
  t.equal(await value(store, 'k', 'g'), 'new')
})

test('byte bound: the least recently used entries go first', async (t) => {
  // each slot costs value + key + 64 bytes: 100 + 1 + 64 = 165; three do not fit in 400
  const store = new MemoryStore(400)
  t.equal(await store.write('a', 'g', bytes(100, 'a'), 0), true)
  t.equal(await store.write('b', 'h', bytes(100, 'b'), 0), true)
  t.equal(await value(store, 'a', 'g'), 'a'.repeat(100), 'reading a makes b the least recently used')
  t.equal(await store.write('c', 'g', bytes(100, 'c'), 0), true)
  t.equal(await value(store, 'b', 'h'), null, 'b was evicted')
  t.equal(await value(store, 'a', 'g'), 'a'.repeat(100), 'a stays')
  t.equal(await value(store, 'c', 'g'), 'c'.repeat(100), 'c stays')
  t.same(indexed(store, 'h'), [], 'the evicted entry left its group index')
  t.same(indexed(store, 'g'), ['a', 'c'])
  t.equal(await store.evictGroup('h'), 0, 'evictGroup does not count it')
  t.equal(await store.evictGroup('g'), 2)
  t.equal(await value(store, 'a', 'g'), null)
  t.equal(await value(store, 'c', 'g'), null)
})

test('byte bound: many writes keep the store within its bound and the index in step', async (t) => {
  const store = new MemoryStore(2000)
  for (let i = 0; i < 100; i++) {
    t.equal(await store.write(`k${i}`, i % 2 === 0 ? 'even' : 'odd', bytes(100), 0), true)
  }
  let live = 0
  for (let i = 0; i < 100; i++) {
    if ((await store.lookup(`k${i}`, i % 2 === 0 ? 'even' : 'odd')).value !== null) live++
  }
  t.ok(live > 0 && live * 100 <= 2000, `${live} entries live`)
  t.equal(await value(store, 'k99', 'odd'), 'x'.repeat(100), 'the newest entry is live')
  t.equal(await value(store, 'k0', 'even'), null, 'the oldest entry is gone')
  t.equal(await store.clear(''), live, 'clear counts the live entries, not every write')
})

test('an entry larger than the whole store is refused', async (t) => {
  const store = new MemoryStore(1000)
  await store.write('small', 'g', bytes(10), 0)
  t.equal(await store.write('big', 'g', bytes(1000), 0), false, 'refused')
  t.equal(await value(store, 'big', 'g'), null, 'not stored')
  t.equal(await value(store, 'small', 'g'), 'x'.repeat(10), 'nothing else was evicted for it')
  t.equal(await store.evictGroup('g'), 1, 'the refused entry is not in the index')
})

test('an oversized rewrite of an existing key leaves nothing stale behind', async (t) => {
  const store = new MemoryStore(1000)
  await store.write('k', 'g', bytes(10, 'o'), 0)
  await store.write('keep', 'g', bytes(10, 'k'), 0)
  t.equal(await store.write('k', 'g', bytes(2000, 'n'), 0), false)
  t.equal(await value(store, 'k', 'g'), null, 'neither the old nor the oversized value is served')
  t.same(indexed(store, 'g'), ['keep'], 'the dropped key left the group index')
  t.equal(await store.evictGroup('g'), 1)
})

test('generation: a write with the generation read at lookup succeeds', async (t) => {
  const store = new MemoryStore(MiB)
  const { generation } = await store.lookup('k', 'g')
  t.equal(await store.write('k', 'g', Buffer.from('v'), 0, generation), true)
  t.equal(await value(store, 'k', 'g'), 'v')
  const again = await store.lookup('k', 'g')
  t.equal(again.generation, generation, 'a write does not move the generation')
  t.equal(await store.write('k', 'g', Buffer.from('w'), 0, again.generation), true)
})

test('generation: a write after evictGroup of its group is refused', async (t) => {
  const store = new MemoryStore(MiB)
  await store.write('other', 'g', Buffer.from('o'), 0)
  const { generation } = await store.lookup('k', 'g')
  t.equal(await store.evictGroup('g'), 1)
  t.equal(await store.write('k', 'g', Buffer.from('stale'), 0, generation), false, 'refused')
  t.equal(await value(store, 'k', 'g'), null, 'nothing stored')
  t.equal(await store.evictGroup('g'), 0, 'nothing indexed')

  const fresh = await store.lookup('k', 'g')
  t.not(fresh.generation, generation, 'the generation moved on')
  t.equal(await store.write('k', 'g', Buffer.from('fresh'), 0, fresh.generation), true, 'a new lookup may write')
  t.equal(await value(store, 'k', 'g'), 'fresh')
})

test('generation: evictGroup of an empty or unknown group still moves it on', async (t) => {
  const store = new MemoryStore(MiB)
  const { generation } = await store.lookup('k', 'nobody')
  t.equal(await store.evictGroup('nobody'), 0, 'unknown group: 0')
  t.equal(await store.write('k', 'nobody', Buffer.from('stale'), 0, generation), false)
  t.equal(await value(store, 'k', 'nobody'), null)
})

test('generation: a write after delete in its group is refused', async (t) => {
  const store = new MemoryStore(MiB)
  await store.write('k', 'g', Buffer.from('old'), 0)
  const { generation } = await store.lookup('k', 'g')
  t.equal(await store.delete('k', 'g'), true)
  t.equal(await store.write('k', 'g', Buffer.from('stale'), 0, generation), false, 'refused')
  t.equal(await value(store, 'k', 'g'), null, 'nothing stored')
  t.equal(await store.evictGroup('g'), 0)
})

test('generation: eviction of another group does not refuse a write', async (t) => {
  const store = new MemoryStore(MiB)
  const { generation } = await store.lookup('k', 'g')
  await store.write('x', 'h', Buffer.from('x'), 0)
  t.equal(await store.evictGroup('h'), 1)
  await store.delete('y', 'h')
  t.equal(await store.write('k', 'g', Buffer.from('v'), 0, generation), true)
  t.equal(await value(store, 'k', 'g'), 'v')
})

test('generation: a write without a generation is unconditional', async (t) => {
  const store = new MemoryStore(MiB)
  await store.evictGroup('g')
  t.equal(await store.write('k', 'g', Buffer.from('v'), 0), true)
  t.equal(await value(store, 'k', 'g'), 'v')
})

test('evictGroup removes exactly its group', async (t) => {
  const store = new MemoryStore(MiB)
  await store.write('a1', 'a', Buffer.from('1'), 0)
  await store.write('a2', 'a', Buffer.from('2'), 60_000)
  await store.write('a3', 'a', Buffer.from('3'), 0)
  await store.write('b1', 'b', Buffer.from('4'), 0)
  t.equal(await store.evictGroup('a'), 3)
  for (const k of ['a1', 'a2', 'a3']) t.equal(await value(store, k, 'a'), null, `${k} gone`)
  t.equal(await value(store, 'b1', 'b'), '4', 'other group untouched')
  t.equal(await store.evictGroup('a'), 0, 'a second eviction finds nothing')
  t.equal(await store.evictGroup('unknown'), 0)
  await store.write('a1', 'a', Buffer.from('again'), 0)
  t.equal(await store.evictGroup('a'), 1, 'the group is indexed again after new writes')
})

test('clear counts and removes everything', async (t) => {
  const store = new MemoryStore(MiB)
  t.equal(await store.clear(''), 0, 'empty store')
  await store.write('a1', 'a', Buffer.from('1'), 0)
  await store.write('a2', 'a', Buffer.from('2'), 0)
  await store.write('b1', 'b', Buffer.from('3'), 60_000)
  await store.write('c1', 'c', Buffer.from('4'), 0)
  const before = await store.lookup('x', 'a')
  t.equal(await store.clear(''), 4)
  for (const [k, g] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b'], ['c1', 'c']]) {
    t.equal(await value(store, k, g), null, `${k} gone`)
  }
  t.equal(await store.clear(''), 0, 'nothing left')
  for (const g of ['a', 'b', 'c']) t.equal(await store.evictGroup(g), 0, `group ${g} empty`)
  t.equal(await store.write('x', 'a', Buffer.from('stale'), 0, before.generation), false, 'clear moves generations on too')
})

test('close empties the store', async (t) => {
  const store = new MemoryStore(MiB)
  await store.write('k', 'g', Buffer.from('v'), 0)
  await store.close()
  t.equal(await value(store, 'k', 'g'), null)
})

test('tag registrations are bounded: past 100,000 tags the oldest is forgotten, the newest still counts', async (t) => {
  const store = new MemoryStore(MiB)
  for (let i = 0; i <= 100_000; i++) await store.registerTags('g', [`tag${i}`])
  const gen = (): string => (store.lookup('k', 'g') as { generation: string }).generation
  const before = gen()
  await store.evictTag('tag0')
  t.equal(gen(), before, 'the oldest registration was dropped: its eviction no longer moves the group')
  await store.evictTag('tag100000')
  const after = gen()
  t.not(after, before, 'the newest registration still moves the group on eviction')
  await store.evictTag('tag1')
  t.not(gen(), after, 'only the oldest went: the second oldest still counts')
})
