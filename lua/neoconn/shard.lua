--- Fleets split across machines: shard K of N (K from 0, as Kubernetes'
-- JOB_COMPLETION_INDEX) holds the connections and jobs whose name hashes
-- to K. The hash is of the name alone, so shards are disjoint, cover every
-- name, and a name stays in its shard when others are added or removed.
local shard = {}

local PRIME = 4294967291 -- the largest prime below 2^32

--- The stable hash of a name: h = (h * 31 + byte) mod 4294967291, exact in
-- every Lua (doubles included).
function shard.hash(name)
  local h = 0
  for i = 1, #name do h = (h * 31 + name:byte(i)) % PRIME end
  return h
end

--- The shard (0 to count - 1) a name belongs to.
function shard.of(name, count)
  return shard.hash(name) % count
end

--- "K/N" -> { index = K, count = N }, or nil and what is wrong.
function shard.parse(text)
  local k, n = tostring(text):match("^(%d+)/(%d+)$")
  k, n = tonumber(k), tonumber(n)
  if not k or n < 1 or n > 1000000 or k >= n then
    return nil, "expects K/N: shard K (0 to N-1) of N, N at most 1000000"
  end
  return { index = k, count = n }
end

--- The connections and jobs of a shard: the jobs whose name falls in it,
-- and the connections whose name does or that one of those jobs uses (a
-- connection shared by jobs of several shards is tested in each).
function shard.select(connections, jobs, s)
  local wanted, chosen_jobs = {}, {}
  for _, j in ipairs(jobs or {}) do
    if shard.of(j.name, s.count) == s.index then
      chosen_jobs[#chosen_jobs + 1] = j
      wanted[j.source], wanted[j.destination] = true, true
    end
  end
  local chosen = {}
  for _, c in ipairs(connections) do
    if wanted[c.name] or shard.of(c.name, s.count) == s.index then chosen[#chosen + 1] = c end
  end
  return chosen, chosen_jobs
end

return shard
