--- A CDC source's standby, for failover readiness (PostgreSQL 17 and
-- later): what the standby says of slot synchronization and of the job's
-- slot. Read with one query on a session of its own (the connection's
-- `standby` target; its password when the target gives none), never
-- writing. The result goes to report.replication.standby.
local neoconn = require("neoconn")

local standby = {}

-- primary_conninfo holds a password: only whether it names a database is
-- read, and only where the role may see it (pg_read_all_settings).
local SQL = [[
SELECT pg_is_in_recovery() AS in_recovery,
 current_setting('sync_replication_slots', true) AS sync_replication_slots,
 current_setting('hot_standby_feedback') AS hot_standby_feedback,
 (SELECT setting FROM pg_settings WHERE name = 'primary_slot_name') AS primary_slot_name,
 (SELECT (setting ~ '(^|\s)dbname\s*=')::text FROM pg_settings WHERE name = 'primary_conninfo')
  AS conninfo_names_database,
 (s.slot_name IS NOT NULL)::text AS slot_present, to_jsonb(s) ->> 'synced' AS synced,
 s.temporary::text AS temporary, to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason,
 to_jsonb(s) ->> 'conflicting' AS conflicting
FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1]]

local function bool(v)
  if v == nil or type(v) == "boolean" then return v end
  return v == "t" or v == "true" or v == "on"
end

--- The standby's facts for the job's slot: { ok, error (a connect or query
-- error), in_recovery, sync_replication_slots, hot_standby_feedback,
-- primary_slot_name, conninfo_names_database (nil: not visible),
-- slot = { synced, temporary, invalidation_reason, conflicting } or nil }.
function standby.probe(settings, slot, timeout)
  local target = { url = settings.standby }
  if settings.target and settings.target.password then target.password = settings.target.password end
  local conn, err = neoconn.connect(target, { timeout = timeout })
  if not conn then return { ok = false, error = err } end
  local rows, qerr = conn:query(SQL, { slot }, { timeout = timeout })
  conn:close()
  if not rows then return { ok = false, error = qerr } end
  local r = rows[1]
  return { ok = true, in_recovery = bool(r.in_recovery),
    sync_replication_slots = r.sync_replication_slots,
    hot_standby_feedback = bool(r.hot_standby_feedback), primary_slot_name = r.primary_slot_name,
    conninfo_names_database = bool(r.conninfo_names_database),
    slot = bool(r.slot_present) and { synced = bool(r.synced), temporary = bool(r.temporary),
      invalidation_reason = r.invalidation_reason, conflicting = bool(r.conflicting) } or nil }
end

return standby
