--- The checks behind a job's pair requirements (neoconn.requirements("job")):
-- each source table against the destination table it is copied into, each
-- side's facts as its own server gave them (pair.lua, layout.lua). Called
-- as check(ctx, need); findings name the destination table.
local neoconn = require("neoconn")
local comment = require("neoconn.fix_sql").comment

local q = neoconn.quote_ident
local checks = {}

local function table_finding(p, message, fix)
  return { object_type = "table", schema = p.destination.schema, name = p.destination.name,
    message = message, fix = fix }
end

-- A type as the fix may write it: a built-in type's name from the server
-- is written only when it is one (the server's text is untrusted).
local function safe_type(text)
  return text and text:match("^[a-z][a-z0-9 _]*[a-z0-9]%(?[0-9,]*%)?[%[%]]*$") and text or nil
end

local function contains(list, value)
  for _, v in ipairs(list or {}) do
    if v == value then return true end
  end
  return false
end

--- Each source table has its destination table, or init_schema makes it
-- with types the destination knows (pair.table).
function checks.pair_table(ctx, need)
  for _, p in ipairs(ctx.pairs) do
    if p.to == nil and not ctx.destination_read(p.destination.schema, p.destination.name) then
      ctx.error(table_finding(p, ("%s is outside the destination connection's scope: its "
        .. "test did not read it"):format(q(p.destination.schema, p.destination.name)),
        comment("add it to the destination connection's tables or schemas, or remove its own "
          .. "scope (a connection a job uses reads the job's tables)")))
    elseif p.to == nil and ctx.job.init_schema then
      for _, c in ipairs(p.copied) do
        local t = ctx.from.types[c.source.type_name] or {}
        local name = t.kind == "d" and t.base or t.element or c.source.type_name
        if name:match("^pg_catalog%.") and ctx.to.known and not ctx.to.known[name] then
          ctx.error(table_finding(p, ("init_schema cannot create %s: column %s is of type %s, "
            .. "which the destination server (%s) does not have"):format(
              q(p.destination.schema, p.destination.name), q(c.name), c.source.type,
              ctx.destination_version)))
        end
      end
    elseif p.to == nil then
      ctx.error(table_finding(p, ("%s does not exist on the destination: %s"):format(
        q(p.destination.schema, p.destination.name), need.reason),
        comment(("create it (pg_dump --schema-only -t %s from the source), or set init_schema = "
          .. "true"):format(q(p.source.schema, p.source.name)))))
    end
  end
end

--- Copied columns land in writable destination columns; destination columns
-- the source lacks can be left out (pair.columns).
function checks.pair_columns(ctx, need)
  for _, p in ipairs(ctx.pairs) do
    if p.to then
      local target = q(p.destination.schema, p.destination.name)
      local copied = {}
      for _, c in ipairs(p.copied) do
        copied[c.name] = true
        local d = p.to.column[c.name]
        if not d then
          local type_text = safe_type(c.source.type)
          ctx.error(table_finding(p, ("source column %s has no destination column %s: every "
            .. "row fails"):format(q(c.source.name), q(c.name)),
            type_text and ("ALTER TABLE %s ADD COLUMN %s %s;"):format(target, q(c.name), type_text)
              or comment(("add column %s (of type %s) to %s"):format(q(c.name), c.source.type,
                target))))
        elseif d.generated then
          ctx.error(table_finding(p, ("destination column %s is a generated column: it takes no "
            .. "value, and the source's %s has one for every row"):format(q(c.name),
              q(c.source.name)),
            comment(("options: make it a plain column (ALTER TABLE %s ALTER COLUMN %s DROP "
              .. "EXPRESSION;), or leave the source column out of the job"):format(target,
                q(c.name)))))
        end
      end
      for _, d in ipairs(p.to.columns) do
        if not copied[d.name] and d.not_null and not d.has_default and not d.identity then
          ctx.error(table_finding(p, ("destination column %s is NOT NULL without a default and "
            .. "the source has no such column: %s"):format(q(d.name), "every row fails"),
            comment(("options: ALTER TABLE %s ALTER COLUMN %s SET DEFAULT <value>; or ALTER "
              .. "TABLE %s ALTER COLUMN %s DROP NOT NULL;"):format(target, q(d.name), target,
                q(d.name)))))
        end
      end
      for _, s in ipairs(p.from.columns) do
        local d = p.to.column[s.name]
        if s.generated and d and not d.generated then
          ctx.warn(table_finding(p, ("source column %s is generated: the job does not copy it, "
            .. "and destination column %s gets its default%s"):format(q(s.name), q(d.name),
              d.has_default and "" or " (none: NULL)")))
        end
      end
      local _ = need
    end
  end
end

-- Typmods: varchar(n) and char(n) hold n + 4; numeric(p, s) ((p << 16) | s) + 4.
local function numeric_of(typmod)
  if not typmod or typmod < 4 then return nil end
  local v = typmod - 4
  return math.floor(v / 65536), v % 65536
end

local STRINGS = { ["pg_catalog.varchar"] = true, ["pg_catalog.bpchar"] = true }
local ZONES = {
  ["pg_catalog.timestamptz>pg_catalog.timestamp"] = "converted to the destination session's "
    .. "TimeZone, the zone dropped",
  ["pg_catalog.timestamp>pg_catalog.timestamptz"] = "read as times in the destination session's "
    .. "TimeZone",
}

-- Why values of source type s (typmod sm) may not fit destination type d
-- (typmod dm), or nil.
local function narrower(s, sm, d, dm)
  if STRINGS[d] and dm and dm >= 4 and (not STRINGS[s] or sm < 4 or sm > dm) then
    return ("values longer than %d characters fail"):format(dm - 4)
  end
  if d == "pg_catalog.numeric" and dm and dm >= 4 then
    local dp, ds = numeric_of(dm)
    local sp, ss = numeric_of(s == d and sm or -1)
    if not sp or sp - ss > dp - ds then
      return ("values of %d or more integer digits fail"):format(dp - ds + 1)
    elseif ss > ds then
      return ("values are rounded to %d decimal places"):format(ds)
    end
  end
  if s == d and dm and dm >= 0 and (sm < 0 or sm > dm) then
    return "values may not fit its narrower type modifier (rounded or refused)"
  end
end

-- A type as its server writes it (format_type), by its qualified name.
local function type_text(ctx, name)
  local t = ctx.to.types[name] or ctx.from.types[name]
  return t and t.type or name
end

-- Whether the destination accepts source type sname into type dname:
-- true, or false and why; note(level, text) adds what may fail or change.
local function accepts(ctx, sname, sm, dname, dm, note)
  local s, d = ctx.from.types[sname] or {}, ctx.to.types[dname] or {}
  if s.kind == "d" then return accepts(ctx, s.base, s.typmod, dname, dm, note) end
  if d.kind == "d" then
    for _, check in ipairs(d.checks or {}) do
      note(("domain %s: %s: values that break it fail"):format(d.type, check))
    end
    if d.not_null then note(("domain %s is NOT NULL: NULL values fail"):format(d.type)) end
    return accepts(ctx, sname, sm, d.base, d.typmod, note)
  end
  local why = narrower(sname, sm, dname, dm)
  if why then note(why) end
  -- Arrays element by element, the same array type too (an enum's labels).
  if s.category == "A" and d.category == "A" then
    return accepts(ctx, s.element, -1, d.element, -1, note)
  end
  if sname == dname then
    if d.kind == "e" then
      local missing = {}
      for _, label in ipairs(s.labels or {}) do
        if not contains(d.labels, label) then missing[#missing + 1] = label end
      end
      if #missing > 0 then
        return false, ("the destination's enum %s lacks the source's labels %s"):format(d.type,
          table.concat(missing, ", ")), missing, dname
      end
    elseif d.kind == "c" then
      note(("composite type %s: its fields are not compared"):format(d.type))
    end
    return true
  end
  if d.category == "S" then return true end -- every type converts to a string type
  if contains(d.implicit_from, sname) then return true end
  if contains(d.assignment_from, sname) then
    note(ZONES[sname .. ">" .. dname] and ("values are " .. ZONES[sname .. ">" .. dname])
      or ("%s to %s is an assignment cast: values out of its range fail or are rounded")
        :format(type_text(ctx, sname), type_text(ctx, dname)))
    return true
  end
  return false, ("the destination has no assignment cast from %s to %s"):format(
    type_text(ctx, sname), type_text(ctx, dname))
end

-- Runs fn(p, c, d) for each copied column with a writable destination column.
local function each_copied(ctx, fn)
  for _, p in ipairs(ctx.pairs) do
    if p.to then
      for _, c in ipairs(p.copied) do
        local d = p.to.column[c.name]
        if d and not d.generated then fn(p, c, d) end
      end
    end
  end
end

-- The destination's verdict on a copied column c going into d, judged once
-- for both checks: { ok, why, labels (an enum's missing ones), enum (its
-- name: the column's own type, or the base of its domain or array), notes }.
local function judged(ctx, c, d)
  ctx.judged = ctx.judged or {}
  local v = ctx.judged[c]
  if not v then
    v = { notes = {} }
    v.ok, v.why, v.labels, v.enum = accepts(ctx, c.source.type_name, c.source.typmod, d.type_name,
      d.typmod, function(text) v.notes[#v.notes + 1] = text end)
    ctx.judged[c] = v
  end
  return v
end

--- The destination takes each column's values (pair.types).
function checks.pair_types(ctx)
  each_copied(ctx, function(p, c, d)
    local v = judged(ctx, c, d)
    local why, labels = v.why, v.labels
    if not v.ok then
      local fix
      if labels then
        local adds = {}
        for _, label in ipairs(labels) do
          local schema, name = v.enum:match("^(.-)%.(.*)$")
          adds[#adds + 1] = ("ALTER TYPE %s ADD VALUE IF NOT EXISTS %s;"):format(q(schema, name),
            neoconn.quote_literal(label))
        end
        fix = table.concat(adds, "\n")
      else
        fix = comment(("options: ALTER TABLE %s ALTER COLUMN %s TYPE %s USING ...; or map the "
          .. "column to one of a type it converts to"):format(q(p.destination.schema,
            p.destination.name), q(d.name), safe_type(c.source.type) or "<type>"))
      end
      ctx.error(table_finding(p, ("column %s: %s (source %s, destination %s): %s"):format(
        q(d.name), why, c.source.type, d.type, labels and "rows holding them fail"
          or "every row with a value fails"), fix))
    end
  end)
end

--- What a narrower destination refuses or changes (pair.narrowing).
function checks.pair_narrowing(ctx)
  each_copied(ctx, function(p, c, d)
    for _, text in ipairs(judged(ctx, c, d).notes) do
      ctx.warn(table_finding(p, ("column %s (source %s, destination %s): %s"):format(q(d.name),
        c.source.type, d.type, text)))
    end
  end)
end

local function column_set(columns)
  local copy = {}
  for i, c in ipairs(columns or {}) do copy[i] = c end
  table.sort(copy)
  return table.concat(copy, "\0")
end

-- The source column copied into destination column name, if any.
local function source_of(p, name)
  for _, c in ipairs(p.copied) do
    if c.name == name then return c.source end
  end
end

-- Whether the source guarantees unique keys over the destination columns.
local function source_unique(p, columns)
  local mapped = {}
  for i, name in ipairs(columns) do
    local s = source_of(p, name)
    if not s then return false end
    mapped[i] = s.name
  end
  local want = column_set(mapped)
  for _, k in ipairs(p.from.constraints) do
    if (k.kind == "p" or k.kind == "u") and not k.partial and k.columns
      and column_set(k.columns) == want then
      return true
    end
  end
  return false
end

--- Destination constraints the source does not guarantee (pair.constraints).
function checks.pair_constraints(ctx)
  local upsert = ctx.job.on_conflict == "update"
  for _, p in ipairs(ctx.pairs) do
    if p.to then
      for _, c in ipairs(p.copied) do
        local d = p.to.column[c.name]
        if d and not d.generated and d.not_null and not c.source.not_null then
          ctx.warn(table_finding(p, ("destination column %s is NOT NULL and the source's %s is "
            .. "not: rows where it is NULL fail"):format(q(d.name), q(c.source.name))))
        end
      end
      local source_checks = {}
      for _, k in ipairs(p.from.constraints) do
        if k.kind == "c" then source_checks[k.definition] = true end
      end
      for _, k in ipairs(p.to.constraints) do
        local name = q(k.name)
        if (k.kind == "p" or k.kind == "u") and not source_unique(p, k.columns or {}) then
          local arbiter = not upsert or k.kind == "p"
          ctx.warn(table_finding(p, ("%s %s (%s): the source does not guarantee it; source rows "
            .. "sharing a key %s"):format(k.what == "index" and "unique index" or "constraint",
              name, k.definition, arbiter and (upsert and "update one row: the last one copied wins"
                or "are skipped (ON CONFLICT DO NOTHING)") or "fail")))
        elseif k.kind == "c" and not source_checks[k.definition] then
          ctx.warn(table_finding(p, ("constraint %s %s: rows that break it fail"):format(name,
            k.definition)))
        elseif k.kind == "x" then
          ctx.warn(table_finding(p, ("exclusion constraint %s %s: rows that conflict %s")
            :format(name, k.definition, upsert and "fail" or "are skipped")))
        elseif k.kind == "f" then
          local ref = k.references or {}
          local inside = ctx.destination_pair(ref.schema, ref.table)
          local guaranteed = false
          for _, sk in ipairs(inside and p.from.constraints or {}) do
            guaranteed = guaranteed or (sk.kind == "f" and sk.references.schema == inside.source.schema
              and sk.references.table == inside.source.name)
          end
          if not inside then
            ctx.warn(table_finding(p, ("foreign key %s references %s, which the job does not copy: "
              .. "rows whose key it lacks fail"):format(name, q(ref.schema, ref.table))))
          elseif not guaranteed then
            ctx.warn(table_finding(p, ("foreign key %s (%s): the source has no such key; rows "
              .. "whose key the copied %s lacks fail"):format(name, k.definition,
                q(ref.schema, ref.table))))
          end
        end
      end
    end
  end
end

--- Identity columns written by the copy (pair.identity).
function checks.pair_identity(ctx)
  each_copied(ctx, function(p, _, d)
    if d.identity and not ctx.job.reset_sequences then
      ctx.warn(table_finding(p, ("identity column %s%s gets the copied values; its sequence "
        .. "stays behind them, so the next row inserted without one collides"):format(q(d.name),
          d.identity == "a" and " (GENERATED ALWAYS: written with OVERRIDING SYSTEM VALUE)" or ""),
        comment("set reset_sequences = true for the job")))
    end
  end)
end

--- An upsert's conflict target: the destination's primary key, copied (pair.conflict_target).
function checks.pair_conflict_target(ctx, need)
  for _, p in ipairs(ctx.pairs) do
    if p.to then
      local key
      for _, k in ipairs(p.to.constraints) do
        if k.kind == "p" then key = k end
      end
      if not key then
        ctx.error(table_finding(p, ("%s has no primary key: %s"):format(q(p.destination.schema,
          p.destination.name), need.reason), comment(("add one: ALTER TABLE %s ADD PRIMARY KEY "
          .. "(<columns>);"):format(q(p.destination.schema, p.destination.name)))))
      else
        for _, name in ipairs(key.columns or {}) do
          if not source_of(p, name) then
            ctx.error(table_finding(p, ("primary key column %s is not copied from the source: "
              .. "ON CONFLICT finds no existing row by it"):format(q(name)),
              comment("map a source column to " .. q(name) .. ", or key the table on copied columns")))
          end
        end
      end
    end
  end
end

--- The copy order from the foreign keys among the job's destination
-- tables; cycles need deferrable keys (pair.order). Sets ctx.order.
function checks.pair_order(ctx, need)
  local nodes, by_key, refs = {}, {}, {}
  for _, p in ipairs(ctx.pairs) do
    if p.to and not by_key[p.key] then
      nodes[#nodes + 1] = p
      by_key[p.key] = p
    end
  end
  table.sort(nodes, function(a, b) return a.key < b.key end)
  for _, p in ipairs(nodes) do -- child key -> { { parent = key, key = constraint } }
    refs[p.key] = {}
    for _, k in ipairs(p.to.constraints) do
      local ref = k.kind == "f" and k.references
      local parent = ref and by_key[ref.schema .. "\0" .. ref.table]
      if parent then table.insert(refs[p.key], { parent = parent.key, key = k }) end
    end
  end
  -- Whether from reaches to through foreign keys (child to parent).
  local function reaches(from, to)
    local seen, stack = { [from] = true }, { from }
    while #stack > 0 do
      local at = table.remove(stack)
      if at == to then return true end
      for _, r in ipairs(refs[at]) do
        if not seen[r.parent] then
          seen[r.parent] = true
          stack[#stack + 1] = r.parent
        end
      end
    end
    return false
  end
  -- Parents first, in name order among equals; a key in a cycle does not
  -- order (the cycle loads only deferred).
  local placed, order = {}, {}
  local function ready(p)
    for _, r in ipairs(refs[p.key]) do
      if not placed[r.parent] and r.parent ~= p.key and not reaches(r.parent, p.key) then
        return false
      end
    end
    return true
  end
  while #order < #nodes do
    local before = #order
    for _, p in ipairs(nodes) do
      if not placed[p.key] and ready(p) then
        placed[p.key] = true
        order[#order + 1] = p
      end
    end
    if #order == before then break end
  end
  for _, p in ipairs(nodes) do
    for _, r in ipairs(refs[p.key]) do
      local cyclic = r.parent == p.key or reaches(r.parent, p.key)
      local target = q(p.destination.schema, p.destination.name)
      local fix = ("ALTER TABLE %s ALTER CONSTRAINT %s DEFERRABLE INITIALLY DEFERRED;"):format(
        target, q(r.key.name))
      if cyclic and not r.key.deferrable then
        ctx.error(table_finding(p, ("foreign key %s is in a cycle of foreign keys among the job's "
          .. "tables%s and not DEFERRABLE: %s"):format(q(r.key.name), r.parent == p.key
            and " (the table references itself)" or "", need.reason), fix))
      elseif cyclic and not r.key.deferred then
        ctx.warn(table_finding(p, ("foreign key %s is in a cycle and DEFERRABLE INITIALLY "
          .. "IMMEDIATE: the job must copy in one transaction after SET CONSTRAINTS ALL DEFERRED")
          :format(q(r.key.name)), fix))
      end
    end
  end
  ctx.order = order
end

--- Text converts between the two databases' encodings (pair.encoding).
function checks.pair_encoding(ctx)
  local s, d = ctx.from.encoding, ctx.to.encoding
  if not s or not d or s == d then return end
  local message
  if d == "SQL_ASCII" then
    message = ("the destination's encoding is SQL_ASCII: text from the %s source is stored as "
      .. "bytes, unconverted and unchecked"):format(s)
  elseif s == "SQL_ASCII" then
    message = ("the source's encoding is SQL_ASCII: text bytes that are not valid %s fail"):format(d)
  elseif d ~= "UTF8" then
    message = ("text converts from %s to %s: characters %s lacks fail"):format(s, d, d)
  end
  if message then
    ctx.warn({ object_type = "database", name = ctx.destination_database, message = message,
      fix = comment("create the destination database with ENCODING 'UTF8' (or the source's)") })
  end
end

return checks
