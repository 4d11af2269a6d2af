"""Lua scripts of :class:`~mcastlab.backends.RedisRegistry`; each runs atomically on the server.

Conventions: ``base`` is the registry's key prefix including its hash tag (``mcast:{mcast}:``); members of
the deadline sorted set and of index sets are *encoded* identity names, so a script can build an
identity's key as ``base .. 'id:' .. member``. Times arrive as strings formatted by Python (``repr``) and
are only compared (``tonumber``), never formatted by Lua, so no precision is lost. The identity hash holds
``m`` (metadata JSON), ``r`` (registered_at), ``e`` (expires_at, ``''`` for never), ``x`` (its index
key suffixes, newline separated), so a script can always remove exactly the index entries it added (a
copy of ``x`` in the HASH ``base .. 'xs'``, member -> x, has no safety TTL, so the claim cleans up even
after the hash's TTL fired).

**Rows.** What an enumerate reads of an identity is its *row*, ``member .. ' ' .. e .. ' ' .. r .. ' ' ..
m``, kept in the HASH ``base .. 'rows'`` (member -> row: every stored identity) and in one *row hash*
per index set, ``base .. 'r' .. suffix`` beside ``base .. suffix`` (the same members, with their rows), so
that a read is one ``HVALS``: Redis walks one hash instead of looking every member's key up (measured
with 4,000 rows among 60,000 other keys: 0.20 µs of Redis CPU a row against 0.83-1.08 for ``SORT ...
GET`` of one string per identity). ``upsert`` and ``touch`` (the only writers of ``e``) write the row
into ``rows`` and every row hash of the identity's index sets; every script that removes an index entry
removes its row, and the claim and unregister remove all of them.

Two keys serve the expiry claim. ``base .. 'lapsed'`` is a LIST of ``"<deadline> <member>"``: a register
that finds its name stored but past its deadline (lapsed, not yet swept) starts a new lifetime in place, so
it records the old one there, and the next claim returns it like any other expiry. ``base .. 'claims'`` is
a HASH of claimer -> ``"<seq> <claimed at>"`` with the claimer's last batch in the LIST ``base ..
'claim:' .. claimer`` (member, deadline, ...): a batch stays there until its claimer acknowledges it
(``claim_ack`` right after the reply, or the ``ack`` of its next claim), so a reply lost on the way is
handed out again instead of leaving identities removed but never counted (see ``_redis_claims``).
"""

from __future__ import annotations

import hashlib

# KEYS: id key, deadline zset. ARGV: member, metadata, registered_at, expires_at, score, now, max (-1 =
# unlimited; -2 = only replace an identity already stored), index suffixes, safety TTL ms (0 = none), base.
# Returns {1|0 is_new, 1|0 created (no hash was stored before)}, {-1, live count} when full, or {-2, 0} when
# max is -2 and nothing is stored (RedisClusterRegistry then takes a place from its admission counter).
UPSERT = """
local key, z, member, base = KEYS[1], KEYS[2], ARGV[1], ARGV[10]
local old = redis.call('HMGET', key, 'e', 'x')
local exists = old[2] ~= false
local oldx = old[2] or redis.call('HGET', base .. 'xs', member)
if (not exists) and ARGV[7] == '-2' then return {-2, 0} end
local is_new = 1
if exists and (old[1] == '' or tonumber(old[1]) > tonumber(ARGV[6])) then is_new = 0 end
if is_new == 1 and tonumber(ARGV[7]) >= 0 then
  local live = redis.call('ZCOUNT', z, '(' .. ARGV[6], '+inf')
  if live >= tonumber(ARGV[7]) then return {-1, live} end
end
if is_new == 1 then
  -- a lifetime that lapsed unswept ends here: keep its deadline for the claim (the hash may be gone
  -- already if the safety-net TTL fired, the deadline entry is not)
  local lapsed = exists and old[1] or redis.call('ZSCORE', z, member)
  if lapsed and lapsed ~= '' and lapsed ~= 'inf' then
    redis.call('RPUSH', base .. 'lapsed', lapsed .. ' ' .. member)
  end
end
if oldx ~= ARGV[8] then
  if oldx then
    for s in string.gmatch(oldx, '[^\\n]+') do
      redis.call('SREM', base .. s, member)
      redis.call('HDEL', base .. 'r' .. s, member)
    end
  end
  for s in string.gmatch(ARGV[8], '[^\\n]+') do redis.call('SADD', base .. s, member) end
end
local row = member .. ' ' .. ARGV[4] .. ' ' .. ARGV[3] .. ' ' .. ARGV[2]
for s in string.gmatch(ARGV[8], '[^\\n]+') do redis.call('HSET', base .. 'r' .. s, member, row) end
redis.call('HSET', base .. 'rows', member, row)
redis.call('HSET', base .. 'xs', member, ARGV[8])
redis.call('HSET', key, 'm', ARGV[2], 'r', ARGV[3], 'e', ARGV[4], 'x', ARGV[8])
redis.call('ZADD', z, ARGV[5], member)
if ARGV[9] == '0' then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ARGV[9]) end
return {is_new, exists and 0 or 1}
"""

# KEYS: id key, deadline zset. ARGV: member, expires_at, score, now, safety TTL ms, base.
# Returns {metadata, registered_at} of the live identity, or nil if absent/expired.
TOUCH = """
local v = redis.call('HMGET', KEYS[1], 'm', 'r', 'e', 'x')
if not v[1] then return false end
if v[3] ~= '' and tonumber(v[3]) <= tonumber(ARGV[4]) then return false end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local row = ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. v[2] .. ' ' .. v[1]
redis.call('HSET', ARGV[6] .. 'rows', ARGV[1], row)
redis.call('HSET', ARGV[6] .. 'xs', ARGV[1], v[4])  -- (an identity stored before xs existed gets it here)
for s in string.gmatch(v[4], '[^\\n]+') do redis.call('HSET', ARGV[6] .. 'r' .. s, ARGV[1], row) end
if ARGV[5] == '0' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return {v[1], v[2]}
"""

# Lua, prepended to the scripts that remove identities: drop member m's rows, xs entry and index entries,
# its index suffixes x from its hash (false if gone) or else from xs (the hash's safety TTL fired).
FORGET = """
local function forget(base, m, x)
  x = x or redis.call('HGET', base .. 'xs', m)
  redis.call('HDEL', base .. 'rows', m)
  redis.call('HDEL', base .. 'xs', m)
  if x then
    for s in string.gmatch(x, '[^\\n]+') do
      redis.call('SREM', base .. s, m)
      redis.call('HDEL', base .. 'r' .. s, m)
    end
  end
end
"""

# KEYS: id key, deadline zset. ARGV: member, base. Returns 1 if the identity was stored.
REMOVE = FORGET + """
local stored = redis.call('HGET', KEYS[1], 'x')
redis.call('ZREM', KEYS[2], ARGV[1])
forget(ARGV[2], ARGV[1], stored)
if not stored then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: deadline zset. ARGV: now, limit, base, claimer, seq, ack, stale. Returns {seq, removed, member,
# deadline, ...}: a batch of up to `limit` expired identities (lapsed lifetimes first, then deadline <= now
# from the zset, removed with their hash and index entries), or - when the claimer's previous batch was
# never acknowledged (its `ack` is not that batch's seq) - that batch again with its own seq. `removed` is
# how many zset members this call deleted. Batches of other claimers pending for `stale` seconds or more
# (their claimer stopped) are adopted into this one. Each expiry is in exactly one acknowledged batch.
CLAIM = FORGET + """
local z, base, claimer = KEYS[1], ARGV[3], ARGV[4]
local now, limit, stale = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[7])
local reg, mine = base .. 'claims', base .. 'claim:' .. ARGV[4]
local head = redis.call('HGET', reg, claimer)
if head then
  local seq = string.match(head, '^%S+')
  if seq ~= ARGV[6] then
    local again = redis.call('LRANGE', mine, 0, -1)
    table.insert(again, 1, 0)
    table.insert(again, 1, seq)
    return again
  end
  redis.call('HDEL', reg, claimer)
  redis.call('DEL', mine)
end
local out = {}
local heads = redis.call('HGETALL', reg)
for i = 1, #heads, 2 do
  local at = tonumber(string.match(heads[i + 1], '%S+$'))
  if at <= now - stale then
    local theirs = base .. 'claim:' .. heads[i]
    for _, v in ipairs(redis.call('LRANGE', theirs, 0, -1)) do out[#out + 1] = v end
    redis.call('DEL', theirs)
    redis.call('HDEL', reg, heads[i])
  end
end
local lapsed = base .. 'lapsed'
while #out < 2 * limit do
  local v = redis.call('LPOP', lapsed)
  if not v then break end
  local sep = string.find(v, ' ', 1, true)
  out[#out + 1] = string.sub(v, sep + 1)
  out[#out + 1] = string.sub(v, 1, sep - 1)
end
local removed = 0
local want = limit - #out / 2
if want > 0 then
  local got = redis.call('ZRANGEBYSCORE', z, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, want)
  for i = 1, #got, 2 do
    local m = got[i]
    local key = base .. 'id:' .. m
    removed = removed + redis.call('ZREM', z, m)
    forget(base, m, redis.call('HGET', key, 'x'))
    redis.call('DEL', key)
    out[#out + 1] = m
    out[#out + 1] = got[i + 1]
  end
end
if #out > 0 then
  redis.call('HSET', reg, claimer, ARGV[5] .. ' ' .. ARGV[1])
  for i = 1, #out, 1000 do redis.call('RPUSH', mine, unpack(out, i, math.min(i + 999, #out))) end
end
table.insert(out, 1, removed)
table.insert(out, 1, ARGV[5])
return out
"""

# KEYS: the claims hash. ARGV: claimer, seq, base. The claimer received batch `seq`: forget it.
CLAIM_ACK = """
local head = redis.call('HGET', KEYS[1], ARGV[1])
if head and string.match(head, '^%S+') == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('DEL', ARGV[3] .. 'claim:' .. ARGV[1])
  return 1
end
return 0
"""

# KEYS: destination key. ARGV: base, then a plan program of (op, arg) pairs in postfix order:
# ('T', index suffix) pushes an index set; ('&', n) / ('|', n) replace the top n with their
# intersection / union (SINTERSTORE / SUNIONSTORE into temporary keys; the last one stores into the
# destination). The destination and temporaries expire after a minute in case the caller never reads
# or deletes them; the temporaries are deleted before returning.
PLAN = """
local dest, base = KEYS[1], ARGV[1]
local stack, tmps = {}, {}
local nargs = #ARGV
local i = 2
while i <= nargs do
  local op, a = ARGV[i], ARGV[i + 1]
  if op == 'T' then
    stack[#stack + 1] = base .. a
  else
    local n, top, keys = tonumber(a), #stack, {}
    for k = top - n + 1, top do keys[#keys + 1] = stack[k] end
    for k = top, top - n + 1, -1 do stack[k] = nil end
    local t = dest
    if i + 2 <= nargs then
      t = dest .. ':' .. (#tmps + 1)
      tmps[#tmps + 1] = t
    end
    redis.call((op == '&') and 'SINTERSTORE' or 'SUNIONSTORE', t, unpack(keys))
    redis.call('PEXPIRE', t, 60000)
    stack[#stack + 1] = t
  end
  i = i + 2
end
if #tmps > 0 then redis.call('DEL', unpack(tmps)) end
return 0
"""


# KEYS: a set of encoded identities (a plan's result). ARGV: base. Returns the row of every member (nil if it
# has none), read from the rows hash with HMGET in chunks (Lua's unpack has a stack limit).
ROWS = """
local members = redis.call('SMEMBERS', KEYS[1])
local rows, out = ARGV[1] .. 'rows', {}
for i = 1, #members, 1000 do
  local got = redis.call('HMGET', rows, unpack(members, i, math.min(i + 999, #members)))
  for k = 1, #got do out[#out + 1] = got[k] end
end
return out
"""

# KEYS: a set or sorted set of encoded identities. ARGV: base. Returns {member, m, r, e, ...} for every
# member (nil fields if its hash is gone), read from the identity hashes: the reads' fallback when rows
# are missing (stored by a version without row hashes), and RedisClusterRegistry's reader.
FETCH = """
local base = ARGV[1]
local members
if redis.call('TYPE', KEYS[1])['ok'] == 'zset' then
  members = redis.call('ZRANGE', KEYS[1], 0, -1)
else
  members = redis.call('SMEMBERS', KEYS[1])
end
local out = {}
for _, m in ipairs(members) do
  local v = redis.call('HMGET', base .. 'id:' .. m, 'm', 'r', 'e')
  out[#out + 1] = m
  out[#out + 1] = v[1]
  out[#out + 1] = v[2]
  out[#out + 1] = v[3]
end
return out
"""


# KEYS: deadline zset, scratch key. ARGV: now, base, then a plan program as in PLAN (empty: every member).
# Returns the encoded ids whose deadline is > now, reading no identity hash: the answer of an *exact* plan
# (multicast targets, counts). The plan's members come from SMEMBERS / SINTER / SUNION (set algebra into
# scratch keys only for nested plans). Every indexed identity is in the deadline zset (register, claim and
# remove write both in one script), so the live members are the plan's members minus the lapsed ones
# (score <= now: usually none or a few, waiting for the sweeper) — no per-member deadline lookup, and with
# nothing lapsed the members are returned as they are.
IDS = """
local z, tmp, now, base = KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2]
local nargs = #ARGV
if nargs == 2 then return redis.call('ZRANGEBYSCORE', z, '(' .. ARGV[1], '+inf') end
local stack, tmps = {}, {}
local i = 3
while i <= nargs do
  local op, a = ARGV[i], ARGV[i + 1]
  if op == 'T' then
    stack[#stack + 1] = base .. a
  else
    local n, top, keys = tonumber(a), #stack, {}
    for k = top - n + 1, top do keys[#keys + 1] = stack[k] end
    for k = top, top - n + 1, -1 do stack[k] = nil end
    local t = tmp .. ':' .. (#tmps + 1)
    tmps[#tmps + 1] = t
    redis.call((op == '&') and 'SINTERSTORE' or 'SUNIONSTORE', t, unpack(keys))
    stack[#stack + 1] = t
  end
  i = i + 2
end
local members = redis.call('SMEMBERS', stack[1])
if #tmps > 0 then redis.call('DEL', unpack(tmps)) end
local lapsed = redis.call('ZRANGEBYSCORE', z, '-inf', ARGV[1])
if #lapsed == 0 then return members end
local dead = {}
for _, m in ipairs(lapsed) do dead[m] = true end
local out = {}
for _, m in ipairs(members) do
  if not dead[m] then out[#out + 1] = m end
end
return out
"""


def sha1(body: str) -> str:
    """The SHA1 Redis uses to name a script (for EVALSHA)."""
    return hashlib.sha1(body.encode()).hexdigest()


SCRIPTS = {name: (sha1(body), body) for name, body in (
    ("upsert", UPSERT), ("touch", TOUCH), ("remove", REMOVE), ("claim", CLAIM), ("claim_ack", CLAIM_ACK),
    ("plan", PLAN),
    ("fetch", FETCH), ("rows", ROWS), ("ids", IDS),
)}

__all__ = ["SCRIPTS", "sha1"]
