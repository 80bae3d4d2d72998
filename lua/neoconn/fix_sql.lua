--- How a finding's fix is written: SQL a user runs as it is, or reads as
-- comments where no statement can do it. One place for the policy and the
-- job and CDC checks; names go through neoconn.quote_ident, literals
-- through neoconn.quote_literal, and nothing else reaches a line raw.
local neoconn = require("neoconn")
local printable = neoconn.printable

local fix_sql = {}

--- Text as SQL comment lines: a "-- " line for each line of text ("\n"),
-- each in the printable form, so nothing the text holds can end a comment
-- early (psql ends one at a carriage return as at a line feed).
function fix_sql.comment(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = "-- " .. printable(line) end
  return table.concat(lines, "\n")
end

--- A string literal ('it''s'; E'...' with escapes where the text holds a
-- backslash or a control character, so the literal holds none).
fix_sql.literal = neoconn.quote_literal

--- A relation's name as regclass input, '"schema"."name"'::regclass: the
-- server reads that text with its own name parser, which knows only
-- double-quoted names.
function fix_sql.regclass(schema, name)
  local function quoted(x) return '"' .. x:gsub('"', '""') .. '"' end
  return fix_sql.literal(quoted(schema) .. "." .. quoted(name)) .. "::regclass"
end

--- A fix as it goes into the script: every line in the printable form.
-- The checks' own statements hold no control character (names and
-- literals are quoted), so this changes only what a custom rule wrote
-- raw: a line break or carriage return hidden in a name then breaks the
-- statement instead of starting another one.
function fix_sql.script(fix)
  local lines = {}
  for line in (fix .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = printable(line) end
  return table.concat(lines, "\n")
end

return fix_sql
