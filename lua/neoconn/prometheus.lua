--- Check results as Prometheus text exposition format 0.0.4: one family per
-- fact (HELP and TYPE first), one sample per series, label values escaped
-- as the format says (backslash, double quote, line feed) after every other
-- control character was made printable (names are the server's and the
-- config's, and may hold any byte).
local neoconn = require("neoconn")
local document = require("neoconn.document")

local prometheus = {}

prometheus.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

--- A label value as the format writes it.
function prometheus.label_value(text)
  return (neoconn.printable(tostring(text)):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"',
    ["\n"] = "\\n" }))
end

local function labels(list)
  local parts = {}
  for i = 1, #list, 2 do
    parts[#parts + 1] = ('%s="%s"'):format(list[i], prometheus.label_value(list[i + 1]))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function number(v)
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v ~= v then return "NaN" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  return ("%.17g"):format(v)
end

-- The families, in the order they are written: name, type, help.
local FAMILIES = {
  { "neoconn_connection_ok", "gauge", "1 when the connection passes its job's checks, else 0" },
  { "neoconn_connection_tested", "gauge",
    "1 when the connection was tested; 0 when it could not be, with the error's code" },
  { "neoconn_findings", "gauge", "Findings of the connection's check, by level" },
  { "neoconn_tables", "gauge", "Tables of the connection's job, usable or blocked" },
  { "neoconn_check_duration_seconds", "gauge", "How long the connection's test took" },
  { "neoconn_server_cert_expiry_seconds", "gauge",
    "Seconds until the server's TLS certificate expires (negative: expired), where TLS was used" },
  { "neoconn_replication_slot_retained_wal_bytes", "gauge",
    "WAL the CDC source's slot keeps on the server (bytes from its restart_lsn)" },
  { "neoconn_replication_slot_wal_status", "gauge",
    "1 for the wal_status of the CDC source's slot (reserved, extended, unreserved, lost)" },
  { "neoconn_job_ok", "gauge", "1 when every table pair of the job is copyable, else 0" },
  { "neoconn_job_tables", "gauge", "Table pairs of the job, copyable or blocked" },
  { "neoconn_check_run_seconds", "gauge", "How long the last whole check took" },
  { "neoconn_last_check_timestamp_seconds", "gauge", "When the last check finished (Unix time)" },
  { "neoconn_checks_total", "counter", "Checks run since the shared cache was created" },
}

--- The text for check results (check.connections, with .jobs) and run =
-- { seconds, finished (Unix time), checks (the counter) }.
function prometheus.render(results, run)
  local samples = {}
  for _, f in ipairs(FAMILIES) do samples[f[1]] = {} end
  local function add(name, label_list, value)
    table.insert(samples[name], labels(label_list) .. " " .. number(value))
  end
  for _, r in ipairs(results) do
    local who = { "connection", r.name, "kind", r.kind }
    add("neoconn_connection_ok", who, r.ok and 1 or 0)
    add("neoconn_connection_tested", { "connection", r.name, "kind", r.kind, "code",
      r.error and r.error.code or "" }, r.error and 0 or 1)
    local levels = { error = 0, warning = 0 }
    for _, f in ipairs(r.findings or {}) do levels[f.level] = (levels[f.level] or 0) + 1 end
    add("neoconn_findings", { "connection", r.name, "level", "error" }, levels.error)
    add("neoconn_findings", { "connection", r.name, "level", "warning" }, levels.warning)
    local usable = document.tables_usable(r)
    add("neoconn_tables", { "connection", r.name, "state", "usable" }, usable)
    add("neoconn_tables", { "connection", r.name, "state", "blocked" }, #(r.tables or {}) - usable)
    local ms = 0
    for _, s in ipairs(r.stages or {}) do ms = ms + (s.ms or 0) end
    add("neoconn_check_duration_seconds", { "connection", r.name }, ms / 1000)
    local report = r.report or {}
    local ssl = report.session and report.session.ssl
    local cert = ssl and ssl.server_certificate
    if cert and cert.expires_in then
      add("neoconn_server_cert_expiry_seconds", { "connection", r.name }, cert.expires_in)
    end
    local slot = report.replication and report.replication.slot
    if type(slot) == "table" and slot.name then
      if slot.retained_bytes then
        add("neoconn_replication_slot_retained_wal_bytes", { "connection", r.name, "slot", slot.name },
          slot.retained_bytes)
      end
      if slot.wal_status then
        add("neoconn_replication_slot_wal_status", { "connection", r.name, "slot", slot.name,
          "wal_status", slot.wal_status }, 1)
      end
    end
  end
  for _, j in ipairs(results.jobs or {}) do
    add("neoconn_job_ok", { "job", j.name }, j.ok and 1 or 0)
    local copyable = 0
    for _, t in ipairs(j.tables) do copyable = copyable + (t.copyable and 1 or 0) end
    add("neoconn_job_tables", { "job", j.name, "state", "copyable" }, copyable)
    add("neoconn_job_tables", { "job", j.name, "state", "blocked" }, #j.tables - copyable)
  end
  add("neoconn_check_run_seconds", {}, run.seconds)
  add("neoconn_last_check_timestamp_seconds", {}, run.finished)
  add("neoconn_checks_total", {}, run.checks)
  local out = {}
  for _, f in ipairs(FAMILIES) do
    if #samples[f[1]] > 0 then
      out[#out + 1] = ("# HELP %s %s"):format(f[1], f[3])
      out[#out + 1] = ("# TYPE %s %s"):format(f[1], f[2])
      for _, s in ipairs(samples[f[1]]) do out[#out + 1] = f[1] .. (s:sub(1, 2) == "{}" and s:sub(3) or s) end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return prometheus
