--- How a finding's fix is written: SQL a user runs as it is, or reads as
-- comments where no statement can do it. One place for the policy and the
-- job and CDC checks.
local fix_sql = {}

--- Text as SQL comment lines.
function fix_sql.comment(text)
  return "-- " .. text:gsub("\n", "\n-- ")
end

--- A string literal ('it''s').
function fix_sql.literal(text)
  return "'" .. text:gsub("'", "''") .. "'"
end

return fix_sql
