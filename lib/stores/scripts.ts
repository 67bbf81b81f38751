// The Redis store's Lua scripts. Every script touches only keys of one group (one hash tag) and the clear
// counts of its slot (see CLEAR), or only a registry (CLEAR on a standalone Redis also moves its count), so
// each runs on one Cluster slot. Scripts that remove or replace keys publish what they removed ('g<group>'
// or 'k<key>') on the invalidation channel, atomically with the change: in-process tiers (L1) drop it.
//
// A group's generation (key `…g`) is `E` or `E.n`:
// - E, the epoch, moves on every eviction of the whole group (evictGroup). Every value is
//   stamped with the generation it was written under (`h<E>[.n] <bytes>`, numbers in base 36 there: see
//   lib/stores/stamp.ts) and a lookup answers it only
//   while its E is the group's: an eviction makes all the group's keys unreachable in O(1), and they are
//   reclaimed behind it in short batches (RECLAIM).
// - n moves on the evictions of part of the group (delete, deleteUrl, evictTag): a write conditional on
//   the generation a miss read is refused after any eviction that touched its group (no stale data
//   resurrected by a slow miss).
// - E odd: the group is registered in the groups registry that clear()'s walk reads. It becomes odd
//   (MARK) only after the registration, before a miss computes its answer; the walk unregisters a group
//   that has held nothing since the last walk, then evicts it to an even E. Writes need an odd E, so the
//   registry names every group that holds keys.
// A group never written has generation '0' (absent key). Redis may lose the key (maxmemory eviction, a
// DEL) while values of its epochs are still stored: an epoch made from an absent key starts past every
// one it may have held (see gen), so no lost epoch comes back.
//
// CLEAR: clear() moves no group. Every namespace start a group is under (lib/keys.ts, startsOf) has a
// clear count (key `<start>clear`; on Cluster one per slot, so the group's scripts can read its own); a
// value is stamped with the sum c of its group's counts (`h<E>[.n]/c`) and a lookup answers it only
// while the sum is the same: a clear() makes a whole namespace unreachable in O(1). A count is made by
// the registration of a miss that found it absent (MARK), or by a write; while one is absent no value is
// answered (a lost count must not read as "never cleared"), so a clear leaves it absent (on Cluster,
// counts exist only in the slots a group of the namespace was written in); counts only grow, past the
// clock's milliseconds when made or moved (see MOVE), so no sum comes back. A write conditional on the generation a miss read (`E.n/c`) is
// refused after a clear too. The
// groups are walked behind the call (CLEAR_GROUPS over the groups registry, resumed by another instance
// when this one dies), which reclaims their keys and unregisters the groups that hold nothing.
//
// FENCE: a tag eviction moves n (to E.n') and moves the tag's keys to a reclaim set in O(1). Until the
// reclaim has removed them, the group's fence holds an entry `;E.n',tag` that names the tag and n': a
// value stamped with that tag (`h<E.n>/c,tag1,tag2 <bytes>`) under an older n is unreachable
// (lib/stores/stamp.ts). An evict(url) over more origins than one script gets through fences the rest the
// same way, with an entry `;E.n'~<length of O>~<length of R>~<O><R>`: a value under an older n whose key is
// `<entry prefix><origin><R>`, the origin O or `O;…` (any origin when O is ''), is unreachable. The fence
// is kept after the generation, in its key (`E.n;entry;entry`): Redis cannot lose it without the
// generation, whose loss makes every value of the group unreachable anyway (see gen). A reclaim drops its
// entry once it has proved it removed every key it was given: it pops a member no key has, put in the set
// by the eviction (or finds the job the eviction left). When Redis lost that set (or job), the entry
// stays, and the values it fences stay unreachable, until the group's next eviction.
//
// ORIGINS: evict(url) finds a URL's entries through the origins they were stored under (key `…o`), a set
// Redis may lose (or lose and have made again, in part, by a later write). Its anchor, kept first after
// the generation in its key (`E.n;@k:U;entry…`, see ANCHOR), says how many origins the set held (k, as
// the writes saw it) and until when an entry stored under one of them may live (U, ms of Redis's clock
// rounded up to the second; '' = for good): while U has not passed, a set holding fewer than k origins
// was lost, and evict(url) evicts the group whole. Once U passes, every entry written under the anchor
// has expired, and the next write starts it again from the set it finds.

// How many keys (or origins) a reclaim or sweep takes between two looks at the clock: a script ends at
// most one step (about 0.1 ms) past its budget. With steps of 50, scripts past a 0.5 ms budget ran two
// steps and went past 2 ms in a slow minute of the machine (1% of them over a 1,000,000-key reclaim).
const STEP = 10
// A group of no more keys than this is removed by its eviction itself, in one script of about 0.5 ms.
const SMALL_GROUP = 50
// Every lookup of a group reads its fence with its generation and compares a value it may fence entry by
// entry: a fence is not grown past this many bytes (about 130 tag entries, left by a burst of partial
// evictions not reclaimed yet, or by reclaims whose set Redis lost); the group is evicted whole instead.
const FENCE_MAX = 4096

/** Lua helpers: Redis's clock, and numbers past 10^14 as text (Lua's own %.14g would use an exponent). */
const CLOCK = `
local function int (x) return string.format('%.17g', x) end
local function now ()
  local t = redis.call('TIME')
  return t[1] * 1000000 + t[2]
end
local function millis () return math.floor(now() / 1000) end
`

/** Lua helpers: generation parsing and comparison; the fence after it (see FENCE). */
const GEN = CLOCK + `
local function parse (g, radix)
  local dot = string.find(g, '.', 1, true)
  if dot then return tonumber(string.sub(g, 1, dot - 1), radix), tonumber(string.sub(g, dot + 1), radix) end
  return tonumber(g, radix), 0
end
-- An absent generation reads '0' (no value was written under it), but its epoch e starts past every one
-- the key may have held: a key lost to maxmemory eviction or a DEL must not bring back an epoch whose
-- values are still stored. 2 x the microseconds of the clock: an epoch moves by 2 at most per script.
local function gen (key)
  local raw = redis.call('GET', key)
  if not raw then return '0', 2 * now(), 0, '' end
  local semi = string.find(raw, ';', 1, true)
  local g = semi and string.sub(raw, 1, semi - 1) or raw
  local e, n = parse(g)
  if e == nil or n == nil then return redis.error_reply('not a generation at ' .. key) end
  return g, e, n, semi and string.sub(raw, semi) or ''
end
local function bump (key)
  local g, e, n, fence = gen(key)
  local next = int(e) .. '.' .. (n + 1)
  redis.call('SET', key, next .. fence)
  return next
end
`

/** Lua helper: a whole number in base 36 as a stamp writes it (lib/stores/stamp.ts); '?' for any other. */
const BASE36 = `
local function b36 (x)
  if not x or x < 0 or x ~= math.floor(x) or x >= 2^53 then return '?' end
  local d, i = {}, 0
  repeat
    local r = x % 36
    i = i + 1
    d[i] = r < 10 and 48 + r or 87 + r
    x = (x - r) / 36
  until x == 0
  return string.reverse(string.char(unpack(d, 1, i)))
end
`

// The clears a generation carries (see CLEAR): '/<sum of the counts KEYS[from..to]>', and that sum; while
// a count is absent, '/?<the counts, '' for an absent one, joined by ','>' (no value carries it: nothing
// is answered) and nil. A count that is not a number reads as one no lookup can match, so nothing is
// written under it. \`counted\` creates the absent counts, past every value they may have held.
const CLEARS = `
local function cleared (from, to)
  local c, seen, absent = 0, {}, false
  for i = from, to do
    local v = redis.call('GET', KEYS[i])
    if v then c = c + (tonumber(v) or 0.5) else absent = true end
    seen[#seen + 1] = v or ''
  end
  if absent then return '/?' .. table.concat(seen, ','), nil end
  return '/' .. int(c), c
end
local function counted (from, to)
  for i = from, to do redis.call('SET', KEYS[i], int(millis()), 'NX') end
end
`

// Whether a key holds a value written before generation te.n (or nothing, or not a value of this store):
// what a reclaim may remove. A key written since an eviction stays. With tc (a clear's reclaim, see
// CLEAR): one written under epoch te before the clears numbered tc, or under an older epoch.
const OLDER = `
local function older (key, te, tn, tc)
  local head = redis.pcall('GETRANGE', key, 0, 63)
  -- 'h': base 36; 'g': decimal (releases before 9 December 2026)
  local radix = type(head) == 'string' and (string.byte(head, 1) == 104 and 36 or string.byte(head, 1) == 103 and 10)
  if radix then
    local space = string.find(head, '[ ,/]', 2)
    if space then
      local e, n = parse(string.sub(head, 2, space - 1), radix)
      if e ~= nil and n ~= nil then
        if not tc then return e < te or (e == te and n < tn) end
        if e ~= te then return e < te end
        local c = string.byte(head, space) == 47 and tonumber(string.match(head, '^%w*', space + 1), radix) or 0
        return c < tc
      end
    end
  end
  return true
end
`

// The origins' anchor (see ORIGINS) at the head of a fence: k, U (math.huge: for good; nil without one),
// and the fence without it.
const ANCHOR = `
local function anchorOf (fence)
  local k, u = string.match(fence, '^;@(%d+):(%d*)')
  if not k then return 0, nil, fence end
  return tonumber(k), u == '' and math.huge or tonumber(u), string.sub(fence, #k + #u + 4)
end
`

// Drops the entries of a group's fence (after its generation, in `key`) for which `drop(generation, body)`
// answers true (body: ',tag' or '~lo~lr~OR'); `unfence` drops the entry of the eviction that left
// generation `gen` (see FENCE). Entries are walked, not searched: a URL entry's text may contain anything.
const UNFENCE = `
local function refence (key, drop)
  local fence = redis.call('GET', key)
  local i = fence and string.find(fence, ';', 1, true)
  if not i then return end
  local rest = string.sub(fence, 1, i - 1)
  while i do
    local j = string.find(fence, '[,~;]', i + 1) or #fence + 1
    local stop
    if string.byte(fence, j) == 126 then
      local a = string.find(fence, '~', j + 1, true)
      local b = a and string.find(fence, '~', a + 1, true)
      local lo = a and tonumber(string.sub(fence, j + 1, a - 1))
      local lr = b and tonumber(string.sub(fence, a + 1, b - 1))
      -- not an entry this store wrote: kept whole (fencing more is safe)
      if not lo or not lr then rest = rest .. string.sub(fence, i) break end
      stop = b + lo + lr
    else
      stop = (string.find(fence, ';', j, true) or #fence + 1) - 1
    end
    if not drop(string.sub(fence, i + 1, j - 1), string.sub(fence, j, stop)) then rest = rest .. string.sub(fence, i, stop) end
    i = string.find(fence, ';', stop + 1, true)
  end
  if rest ~= fence then redis.call('SET', key, rest) end
end
local function unfence (key, gen)
  refence(key, function (g) return g == gen end)
end
`

// Removes, under the origins of a group from SSCAN cursor `cursor` on, the keys `<prefix><origin><rest>`
// (origins equal to `origin` or starting with `origin;`; every one when it is '') written before
// generation te.n, page after page until the origins are done or the clock passes `deadline` (one page at
// least). With `channel`, publishes each key removed. Returns the next cursor ('0': done), how many keys
// it removed, how many origins it looked at.
const SWEEP = `
local function sweep (origins, index, prefix, rest, origin, cursor, te, tn, deadline, channel)
  local removed, seen = 0, 0
  repeat
    local page = redis.call('SSCAN', origins, cursor, 'COUNT', ${STEP})
    cursor = page[1]
    seen = seen + #page[2]
    for _, o in ipairs(page[2]) do
      if origin == '' or o == origin or string.sub(o, 1, #origin + 1) == origin .. ';' then
        local key = prefix .. o .. rest
        if older(key, te, tn, nil) then
          redis.call('SREM', index, key)
          if redis.call('UNLINK', key) == 1 then
            removed = removed + 1
            if channel then redis.call('PUBLISH', channel, 'k' .. key) end
          end
        end
      end
    end
  until cursor == '0' or now() >= deadline
  return cursor, removed, seen
end
`

// A set that indexes keys lives as long as its longest-lived member (PERSIST for a ttl-0 member).
// Adds `member` and returns 1 when that made the set live longer.
const KEEP = `
local function keep (set, member, ttl)
  local left = redis.call('PTTL', set)
  if member then redis.call('SADD', set, member) end
  if redis.call('EXISTS', set) == 0 then return 0 end
  if ttl > 0 then
    if left == -2 or (left >= 0 and left < ttl) then redis.call('PEXPIRE', set, ttl) return 1 end
  elseif left ~= -1 then
    redis.call('PERSIST', set)
    return 1
  end
  return 0
end
`

// KEYS: entry, index, generation, origins, clear counts (see CLEAR), tag sets… Scripts do not roll back:
// a set key holding something else fails the write before anything is written. ARGV: value, ttl ms
// (0 = none), generation read at lookup (with its clears, '' = unconditional), channel, max origins, the
// tags as the stamp carries them (',a,b'; '' = none: see FENCE), how many clear counts, the stamp of the
// generation read ('h…' as lib/stores/stamp.ts makes it, so that a miss's write converts no number; '':
// made here), origin (absent: not an entry).
// Returns 0 when not written (evicted or cleared meanwhile, group not registered, or one origin too many),
// {-1, generation} when an unconditional write finds the group unregistered (register, then retry),
// else {1, flags of the tag sets made to live longer}.
export const WRITE = GEN + BASE36 + CLEARS + KEEP + ANCHOR + `
local tagsFrom = 5 + tonumber(ARGV[7])
for i = 2, #KEYS do
  if i == 2 or i == 4 or i >= tagsFrom then
    local t = redis.call('TYPE', KEYS[i]).ok
    if t ~= 'none' and t ~= 'set' then return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is not a set: nothing written') end
  end
end
local g, e, n, fence = gen(KEYS[3])
local clears, sum = cleared(5, tagsFrom - 1)
if ARGV[3] ~= '' and g .. clears ~= ARGV[3] then return 0 end
if e % 2 == 0 then
  if ARGV[3] ~= '' then return 0 end
  return {-1, g}
end
-- the stamp the caller made of the generation it read, which is the group's; else made here
local stamp = ARGV[3] ~= '' and ARGV[8] or ''
-- counts absent since the lookup (never made, or lost): made now, and the value stamped with them
if not sum then
  counted(5, tagsFrom - 1)
  clears, sum = cleared(5, tagsFrom - 1)
  stamp = ''
end
local ttl = tonumber(ARGV[2])
if ARGV[9] and redis.call('SISMEMBER', KEYS[4], ARGV[9]) == 0 and redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[5]) then return 0 end
local replaced = redis.call('EXISTS', KEYS[1]) == 1
if stamp == '' then
  stamp = 'h' .. b36(e) .. (n > 0 and '.' .. b36(n) or '') .. '/' .. b36(sum)
end
local value = stamp .. ARGV[6] .. ' ' .. ARGV[1]
if ttl > 0 then redis.call('SET', KEYS[1], value, 'PX', ttl) else redis.call('SET', KEYS[1], value) end
if replaced then redis.call('PUBLISH', ARGV[4], 'k' .. KEYS[1]) end
-- the sets that point at the key expire after it: their expiry is set after its own (the clock may
-- tick a millisecond during the script)
if ARGV[9] then
  keep(KEYS[4], ARGV[9], ttl)
  -- the origins' anchor (see ORIGINS): rewritten when the set grew or the entry lives past U (at most
  -- once a second, U being rounded up); a set found smaller than k was lost, and k stays
  local k, u, rest = anchorOf(fence)
  local now = millis()
  if u and u < now then k, u = 0, nil end
  local size = redis.call('SCARD', KEYS[4])
  local lives = ttl > 0 and math.ceil((now + ttl) / 1000) * 1000 or math.huge
  if size > k or not u or lives > u then
    u = math.max(u or 0, lives)
    redis.call('SET', KEYS[3], g .. ';@' .. math.max(k, size) .. ':' .. (u == math.huge and '' or int(u)) .. rest)
  end
end
keep(KEYS[2], KEYS[1], ttl)
local longer = ''
for i = tagsFrom, #KEYS do
  longer = longer .. keep(KEYS[i], KEYS[1], ttl)
end
-- drop up to two expired members per write so the index stays proportional to live keys
local some = redis.call('SRANDMEMBER', KEYS[2], 2)
for i = 1, #some do
  if redis.call('EXISTS', some[i]) == 0 then redis.call('SREM', KEYS[2], some[i]) end
end
return {1, longer}
`

// KEYS: generation, clear counts (see CLEAR). ARGV: the generation read before the group was added to the
// groups registry (when it was not registered). Marks the group registered (odd epoch) unless it was
// evicted since that read, and makes its absent clear counts; returns the generation (with its clears)
// a miss may then write under, or false.
export const MARK = GEN + CLEARS + `
local g, e = gen(KEYS[1])
local read = parse(ARGV[1])
if g == ARGV[1] then
  if e % 2 == 0 then
    -- (a fence of the even epoch goes: no value of the new one is under it)
    g = int(e + 1)
    redis.call('SET', KEYS[1], g)
  end
-- another instance marked it after the same read, and nothing evicted it since; after an absent read
-- (an epoch made from the clock) whatever evicted it since came before this miss computes its answer
elseif not (e % 2 == 1 and (e == read + 1 or ARGV[1] == '0')) then return false end
counted(2, #KEYS)
return g .. cleared(2, #KEYS)
`

// KEYS: a tag's registry. ARGV: group, ms the registry must live at least (0 = for good).
// The registry outlives the tag sets it points to, and a registration outlives the request that made it.
export const REGISTER = KEEP + `
return keep(KEYS[1], ARGV[1] ~= '' and ARGV[1] or nil, tonumber(ARGV[2]))
`

// Moves a group to epoch `next`: every key of the group is unreachable at once (the new generation has no
// fence: the old epoch's is moot), and the index moves to a reclaim set named after it, queued for
// RECLAIM, or, no larger than SMALL_GROUP, is removed at once (as short, and nothing is left to do).
// Returns how many keys the index held, and whether the group has reclaim sets queued.
const WHOLE = `
local function whole (index, key, origins, pending, group, channel, next)
  local queued = redis.call('LLEN', pending) > 0
  redis.call('SET', key, int(next))
  local size = redis.call('SCARD', index)
  if size > ${SMALL_GROUP} then
    local reclaim = group .. 'r:' .. int(next)
    redis.call('RENAME', index, reclaim)
    redis.call('RPUSH', pending, reclaim)
    queued = true
  elseif size > 0 then
    redis.call('UNLINK', index, unpack(redis.call('SMEMBERS', index)))
  end
  redis.call('UNLINK', origins)
  redis.call('PUBLISH', channel, 'g' .. group)
  return size, queued
end
`

// Appends an entry to a group's fence (after its generation, in `key`: see FENCE), or, when that would
// take the key past FENCE_MAX bytes, evicts the group whole (see WHOLE) instead; returns true then.
const FENCE = WHOLE + `
local function fence (index, key, origins, pending, group, channel, entry)
  if redis.call('STRLEN', key) + #entry <= ${FENCE_MAX} then
    redis.call('APPEND', key, entry)
    return false
  end
  local _, e = gen(key)
  whole(index, key, origins, pending, group, channel, e + 2)
  return true
end
`

// KEYS: index, generation, origins, pending reclaims. ARGV: channel, group, '1' when the walk of a
// clear() evicts a group it found indexing nothing and unregistered (its epoch becomes even; when it
// indexes keys again by now, a write came first: nothing is done, and the result is {-1, 0}, so that the
// walk registers it back instead of evicting what was written since the clear). O(1) (see WHOLE).
// Returns {how many keys the index held (expired ones included, those a tag eviction took not), 1 when
// the group has reclaim sets queued}.
export const EVICT_GROUP = GEN + WHOLE + `
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {-1, 0} end
local g, e = gen(KEYS[2])
local next = e + 2
if ARGV[3] == '1' and e % 2 == 1 then next = e + 1 end
local n = redis.call('SCARD', KEYS[1])
-- keys a tag eviction of this epoch took, not reclaimed yet, are still indexed: not counted twice (nor
-- the member that proves a tag's set whole, see EVICT_TAG)
local taken = ARGV[2] .. 'r:' .. int(e) .. '.'
local pending = redis.call('LRANGE', KEYS[4], 0, -1)
for _, set in ipairs(pending) do
  if string.sub(set, 1, #taken) == taken and not string.find(set, '/', #taken, true) then
    n = n - redis.call('SCARD', set) + redis.call('SISMEMBER', set, '')
  end
end
local _, queued = whole(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[1], next)
return {math.max(n, 0), queued and 1 or 0}
`

// KEYS: tag set, generation, pending reclaims, index, origins. ARGV: channel, group, tag. O(1): fences the
// group's writes, fences the tag's values written so far (see FENCE) and moves the tag's keys to a
// reclaim set for RECLAIM, with a member no key has ('') that proves the set whole to the reclaim that
// pops it; the set lives until reclaimed (without a ttl Redis does not evict it under a volatile-*
// policy, and it does not expire before the reclaim proves it emptied it). Returns how many keys the tag
// set held (expired or evicted ones included).
export const EVICT_TAG = GEN + FENCE + `
local next = bump(KEYS[2])
redis.call('PUBLISH', ARGV[1], 'g' .. ARGV[2])
local n = redis.call('SCARD', KEYS[1])
if n == 0 then return 0 end
if fence(KEYS[4], KEYS[2], KEYS[5], KEYS[3], ARGV[2], ARGV[1], ';' .. next .. ',' .. ARGV[3]) then
  redis.call('UNLINK', KEYS[1])
  return n
end
local reclaim = ARGV[2] .. 'r:' .. next
redis.call('RENAME', KEYS[1], reclaim)
redis.call('PERSIST', reclaim)
redis.call('SADD', reclaim, '')
redis.call('RPUSH', KEYS[3], reclaim)
return n
`

// KEYS: reclaim set, index, pending reclaims, generation. ARGV: the generation the eviction left (the
// set's name ends with it; `E.n/c` for a clear's, see CLEAR_GROUPS), time budget in microseconds.
// Removes keys of the set written under an older generation (a clear's: before its clears, or under an
// epoch older than the group's now), in batches, until the set is empty or the budget is spent; a clear's
// gives the keys it keeps back to the index. Then drops the eviction's fence entry, if any, when it popped
// the member that proves the set whole (see EVICT_TAG). Returns {keys removed, 1 when the set is empty}.
export const RECLAIM = GEN + OLDER + UNFENCE + KEEP + `
local slash = string.find(ARGV[1], '/', 1, true)
local te, tn = parse(slash and string.sub(ARGV[1], 1, slash - 1) or ARGV[1])
local tc = slash and tonumber(string.sub(ARGV[1], slash + 1)) or nil
if tc then
  local _, e = gen(KEYS[4])
  te = e
end
local deadline = now() + tonumber(ARGV[2])
local removed = 0
local done, proven = false, false
while true do
  local batch = redis.call('SPOP', KEYS[1], ${STEP})
  for _, key in ipairs(batch) do
    if key == '' then proven = true
    elseif older(key, te, tn, tc) then
      removed = removed + redis.call('UNLINK', key)
      redis.call('SREM', KEYS[2], key)
    elseif tc then
      local ttl = redis.call('PTTL', key)
      if ttl ~= -2 then keep(KEYS[2], key, math.max(ttl, 0)) end
    end
  end
  if #batch < ${STEP} then done = true break end
  if now() >= deadline then break end
end
-- popped before the set was empty: back in it, for the reclaim that empties it
if proven and not done then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SADD', KEYS[1], '') else done = true end
end
if done then
  redis.call('LREM', KEYS[3], 0, KEYS[1])
  if proven then unfence(KEYS[4], ARGV[1]) end
end
return {removed, done and 1 or 0}
`

// KEYS: key, index, generation. ARGV: channel.
export const DELETE = GEN + `
bump(KEYS[3])
redis.call('SREM', KEYS[2], KEYS[1])
redis.call('PUBLISH', ARGV[1], 'k' .. KEYS[1])
return redis.call('UNLINK', KEYS[1])
`

// KEYS: origins, index, generation, pending reclaims. ARGV: channel, group, entry prefix, rest of
// the key, origin ('' = every one), time budget in microseconds. Fences the group's writes, then removes
// one URL's entries under the origins recorded for the group (see SWEEP) until done or, past 128 origins,
// the budget is spent; the origins left are fenced (see FENCE) and handed to RECLAIM_URL, through a job
// `<group>u:<generation>` (its cursor, origin and rest) queued with the group's reclaim sets, in place of
// the entry and job of an earlier eviction of the same URL and origin not done yet. A group whose origins
// Redis lost (see ORIGINS) is evicted whole instead. Returns {how many existed, how many origins were
// fenced (or keys evicted with the group) without being looked at}.
export const DELETE_URL = GEN + OLDER + SWEEP + UNFENCE + FENCE + ANCHOR + `
-- origins lost (or made again in part): which ones the URL's entries are under is unknown, and the
-- whole group goes (too much, never too little); the result is {0, how many keys it held}
local _, e, _, held = gen(KEYS[3])
local k, u = anchorOf(held)
if k > 0 and u >= millis() and redis.call('SCARD', KEYS[1]) < k then
  return {0, (whole(KEYS[2], KEYS[3], KEYS[1], KEYS[4], ARGV[2], ARGV[1], e + 2))}
end
local next = bump(KEYS[3])
local te, tn = parse(next)
-- up to 128 origins (the default maxOrigins is 100) all at once, whatever the budget: the count is exact
local deadline = redis.call('SCARD', KEYS[1]) <= 128 and math.huge or now() + tonumber(ARGV[6])
local cursor, n, seen = sweep(KEYS[1], KEYS[2], ARGV[3], ARGV[4], ARGV[5], '0', te, tn, deadline, ARGV[1])
if cursor == '0' then return {n, 0} end
local body = '~' .. #ARGV[5] .. '~' .. #ARGV[4] .. '~' .. ARGV[5] .. ARGV[4]
-- an earlier eviction of the same URL still sweeping: this one's entry and sweep cover all of its, so a
-- burst of them leaves one entry that every lookup of the group reads, and one job
refence(KEYS[3], function (g, b)
  if b ~= body then return false end
  redis.call('DEL', ARGV[2] .. 'u:' .. g)
  redis.call('LREM', KEYS[4], 0, ARGV[2] .. 'u:' .. g)
  return true
end)
local left = math.max(redis.call('SCARD', KEYS[1]) - seen, 1)
if fence(KEYS[2], KEYS[3], KEYS[1], KEYS[4], ARGV[2], ARGV[1], ';' .. next .. body) then return {n, left} end
local job = ARGV[2] .. 'u:' .. next
redis.call('HSET', job, 'c', cursor, 'o', ARGV[5], 'r', ARGV[4])
redis.call('RPUSH', KEYS[4], job)
redis.call('PUBLISH', ARGV[1], 'g' .. ARGV[2])
return {n, left}
`

// KEYS: job, origins, index, pending reclaims, generation. ARGV: the generation the eviction left (the
// job's name ends with it), time budget in microseconds, entry prefix. Goes on with an evict(url) that
// DELETE_URL fenced, from the job's cursor, until the origins are done or the budget is spent; then drops
// the job and its fence entry (not when Redis lost the job: see FENCE). Returns {keys removed, 1 when done}.
export const RECLAIM_URL = GEN + OLDER + SWEEP + UNFENCE + `
local job = redis.call('HMGET', KEYS[1], 'c', 'o', 'r')
local cursor, removed = '0', 0
local proven = job[1] and job[2] and job[3]
if proven then
  local te, tn = parse(ARGV[1])
  cursor, removed = sweep(KEYS[2], KEYS[3], ARGV[3], job[3], job[2], job[1], te, tn, now() + tonumber(ARGV[2]), nil)
end
if cursor ~= '0' then
  redis.call('HSET', KEYS[1], 'c', cursor)
  return {removed, 0}
end
redis.call('DEL', KEYS[1])
redis.call('LREM', KEYS[4], 0, KEYS[1])
if proven then unfence(KEYS[5], ARGV[1]) end
return {removed, 1}
`

// KEYS: lock. ARGV: token. Releases a lock only its holder still holds.
export const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

// The admin API's listing (values are read raw: stamped, see `current`).
// KEYS: index, generation, clear counts (see CLEAR). ARGV: SSCAN cursor, key to resume after ('' = none),
// limit, most SSCAN calls.
// One page of the admin API's listing. SSCAN with COUNT 1 returns one run of hash table buckets per
// call (a small listpack set: all of it, cursor 0); a run that does not fit in the page is left whole
// for the next one, whose cursor is then the run's own start: no member is listed twice, none skipped.
// Only a run larger than a page is split, sorted, resuming after its last key listed. Returns
// {generation (with its clears), fence ('' = none), cursor ('0' with no resume key: the end), resume key, key1,
// value1, ...}; members that expired are skipped.
export const ENTRIES = GEN + CLEARS + `
local cursor, after, limit, calls = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local g, _, _, fence = gen(KEYS[2])
local generation = g .. cleared(3, #KEYS)
while true do
  local r = redis.call('SSCAN', KEYS[1], cursor, 'COUNT', 1)
  local run = r[2]
  table.sort(run)
  local live = {}
  for _, key in ipairs(run) do
    if key > after then
      local v = redis.pcall('GET', key)
      if type(v) == 'string' then live[#live + 1] = key; live[#live + 1] = v end
    end
  end
  if #out + #live > 2 * limit then
    if #out > 0 then return {generation, fence, cursor, '', unpack(out)} end
    for i = 1, 2 * limit do out[i] = live[i] end
    return {generation, fence, cursor, live[2 * limit - 1], unpack(out)}
  end
  for i = 1, #live do out[#out + 1] = live[i] end
  after = ''
  cursor = r[1]
  calls = calls - 1
  if cursor == '0' or #out == 2 * limit or calls <= 0 then return {generation, fence, cursor, '', unpack(out)} end
end
`

// Moves a clear count past its value and the clock's milliseconds, so that the count made again after it
// was lost (see \`counted\`) starts past every value it held: a sum of counts never comes back. An absent
// count is left absent: nothing is answered under it, and a miss makes it before computing its answer.
const MOVE = CLOCK + `
local function move (key)
  local v = redis.call('GET', key)
  if not v then return end
  redis.call('SET', key, int(math.max((tonumber(v) or 0) + 1, millis())))
end
`

// KEYS: clear count (standalone: the one of the namespace start), clear walks. ARGV: namespace start, the
// walk's token, channel. Makes every value under the start unreachable (see CLEAR), records the walk that
// evicts its groups behind the call (from the registry's start, whatever an earlier walk had got to), and
// tells the in-process tiers. O(1). On Cluster the store does the same, one slot's count at a time
// (CLEAR_COUNT).
export const CLEAR = MOVE + `
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' 0')
move(KEYS[1])
redis.call('PUBLISH', ARGV[3], 'c' .. ARGV[1])
return 1
`

// KEYS: for each group, its index, generation, pending reclaims, idle mark and clear counts (see CLEAR).
// ARGV: time budget in microseconds, then for each group its key count and name. The groups of a clear()'s
// walk, each O(1): its keys go to a reclaim set named after its generation and clears, for RECLAIM (which
// removes the ones written before the clears and gives the others back to the index), unless a walk of
// the same clears did that already; a group of no more keys than SMALL_GROUP is reclaimed at once
// instead. A group that indexes nothing (any more) is marked idle; one the last walk marked and that
// still indexes nothing is unregistered by the walk: a group is evicted to an even epoch only once it
// has held nothing for a whole clear, not while it refills after one (which would refuse the writes of
// its misses in flight). Each group is atomic on its own. Stops after the group that spends the budget
// (one group at least); returns, for each group it took, 1 when it queued a set, -1 to unregister, else 0.
export const CLEAR_GROUPS = GEN + CLEARS + OLDER + `
local function walked (k, last, group)
  local index, idle = KEYS[k + 1], KEYS[k + 4]
  local size = redis.call('SCARD', index)
  if size == 0 then
    if redis.call('SET', idle, '1', 'NX') then return 0 end
    redis.call('DEL', idle)
    return -1
  end
  local c, tc = cleared(k + 5, last)
  -- a count lost since the clear: every value of the group is unreachable, and goes
  if not tc then tc = 2 ^ 53 c = '/' .. int(tc) end
  local g, e = gen(KEYS[k + 2])
  if size > ${SMALL_GROUP} then
    redis.call('UNLINK', idle)
    local reclaim = group .. 'r:' .. g .. c
    if redis.call('EXISTS', reclaim) == 1 then return 0 end
    redis.call('RENAME', index, reclaim)
    redis.call('RPUSH', KEYS[k + 3], reclaim)
    return 1
  end
  local gone = {}
  for _, key in ipairs(redis.call('SMEMBERS', index)) do
    if older(key, e, 0, tc) then gone[#gone + 1] = key end
  end
  if #gone == size then
    -- nothing left: the index goes with its keys, and the group is marked idle
    redis.call('UNLINK', index, unpack(gone))
    redis.call('SET', idle, '1')
    return 0
  end
  redis.call('UNLINK', idle)
  if #gone > 0 then
    redis.call('UNLINK', unpack(gone))
    redis.call('SREM', index, unpack(gone))
  end
  return 0
end
local deadline = now() + tonumber(ARGV[1])
local done, k = {}, 0
for i = 2, #ARGV, 2 do
  local n = tonumber(ARGV[i])
  done[#done + 1] = walked(k, k + n, ARGV[i + 1])
  k = k + n
  if now() >= deadline then break end
end
return done
`

// KEYS: a slot's clear count (see CLEAR).
export const CLEAR_COUNT = MOVE + `
move(KEYS[1])
return 1
`

// KEYS: clear walks. ARGV: namespace start, the walk as read (token and cursor), the walk from now on
// ('' = done). Moves a walk on unless a clear() since restarted it; returns 1 when it did.
export const ADVANCE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`
