local neoconn = require("neoconn")
local pg = require("pg")

describe("neoconn.quote_ident", function()
  local names = { "users", "Users", "user", "select", "a b", 'say "hi"', "a.b", "ünïcødé",
    "日本", "_x1", "1abc", "x$y", "$x", "", "order", "public", "ALLCAPS", "with-dash",
    "trailing ", 'only"' }
  -- Names holding what must never be shown raw: quote_ident writes them
  -- with Unicode escapes (U&"..."), where the server's quote_ident leaves
  -- the bytes as they are.
  local hidden = { "tab\tname", "a\rALTER ROLE x SUPERUSER;--", "line\nbreak", "esc\27[31mred",
    "del\127", "bidi\u{202E}x", "c1\194\155", "back\\slash\r", 'q"uote\n' }
  for c = 1, 31 do hidden[#hidden + 1] = "b" .. string.char(c) .. "e" end

  it("quotes exactly as PostgreSQL's quote_ident does", function()
    for _, name in ipairs(names) do
      if name ~= "" then
        local expected = pg.exec("SELECT quote_ident($1) AS q", { name })[1].q
        assert.are.equal(expected, neoconn.quote_ident(name), name)
      end
    end
  end)

  it("quotes every keyword the server quotes, and otherwise only newer servers' keywords", function()
    -- Quoting a word that a later PostgreSQL reserves is harmless and keeps
    -- generated SQL valid on those servers.
    local newer = { json = true, json_array = true, json_arrayagg = true, json_object = true,
      json_objectagg = true }
    local rows = pg.exec("SELECT word, quote_ident(word) AS q FROM pg_get_keywords()")
    assert.truthy(#rows > 400)
    for _, row in ipairs(rows) do
      local ours = neoconn.quote_ident(row.word)
      if ours ~= row.q then
        assert.is_true(newer[row.word] == true, row.word .. ": " .. ours .. " vs " .. row.q)
      end
    end
  end)

  it("quotes the keywords PostgreSQL 16 and 17 added, whichever server is asked", function()
    for _, word in ipairs({ "json", "json_array", "json_arrayagg", "json_object", "json_objectagg",
      "system_user", "json_exists", "json_query", "json_scalar", "json_serialize", "json_table",
      "json_value", "merge_action" }) do
      assert.are.equal('"' .. word .. '"', neoconn.quote_ident(word))
    end
  end)

  it("joins qualified names with dots", function()
    assert.are.equal('"Odd Schema"."a.b"', neoconn.quote_ident("Odd Schema", "a.b"))
    assert.are.equal("public.users", neoconn.quote_ident("public", "users"))
  end)

  it("writes names holding control characters with Unicode escapes, never raw", function()
    for _, name in ipairs(hidden) do
      local q = neoconn.quote_ident(name)
      assert.are.equal("U&\"", q:sub(1, 3), name)
      assert.is_nil(q:find("[%c\127]"), q)
      assert.are.equal(q, neoconn.printable(q))
      assert.are.equal(name, pg.exec("SELECT $1::text AS n", { name })[1].n)
    end
    assert.are.equal('U&"a\\\\b\\000D"', neoconn.quote_ident("a\\b\r"))
  end)

  it("produces names PostgreSQL reads back to the same object", function()
    local schema = "Odd \"Schema\" ü\r\n"
    pg.exec("CREATE SCHEMA IF NOT EXISTS " .. neoconn.quote_ident(schema))
    local all = {}
    for _, list in ipairs({ names, hidden }) do
      for _, name in ipairs(list) do all[#all + 1] = name end
    end
    for _, name in ipairs(all) do
      if name ~= "" then
        local q = neoconn.quote_ident(schema, name)
        pg.exec("CREATE TABLE IF NOT EXISTS " .. q .. " (id int); TRUNCATE " .. q
          .. "; INSERT INTO " .. q .. " VALUES (1)")
        local rows = pg.exec("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
          .. " ON n.oid = c.relnamespace WHERE c.oid = (SELECT tableoid FROM " .. q .. ")")
        assert.are.same({ nspname = schema, relname = name }, rows[1])
        assert.are.same({ schema, name }, { neoconn.parse_name(q) })
      end
    end
  end)

  it("rejects what is not a string", function()
    assert.has_error(function() neoconn.quote_ident({}) end)
    assert.has_error(function() neoconn.quote_ident() end)
    assert.has_error(function() neoconn.quote_ident("a\0b") end)
  end)
end)

describe("neoconn.parse_name", function()
  it("reads PostgreSQL identifier syntax", function()
    assert.are.same({ nil, "users" }, { neoconn.parse_name("users") })
    assert.are.same({ "public", "users" }, { neoconn.parse_name("Public.USERS") })
    assert.are.same({ "Odd Schema", "a.b" }, { neoconn.parse_name('"Odd Schema"."a.b"') })
    assert.are.same({ "x", 'say "hi"' }, { neoconn.parse_name('x."say ""hi"""') })
  end)

  it("round-trips quote_ident", function()
    for _, pair in ipairs({ { "Odd Schema", "a.b" }, { "public", 'q"uote' }, { "ü", "日本" },
      { "select", "user" } }) do
      assert.are.same(pair, { neoconn.parse_name(neoconn.quote_ident(pair[1], pair[2])) })
    end
  end)

  it("explains malformed names", function()
    for _, bad in ipairs({ "", "a.", '"open', "a.b.c", 'a"b', '""', 'U&"\\00"', 'U&"\\zzzz"',
      'U&"\\D800"', 'U&"a\\"', 'U&"\\0000"' }) do
      local schema, name, err = neoconn.parse_name(bad)
      assert.is_nil(schema)
      assert.is_nil(name)
      assert.is_string(err, bad)
    end
  end)
end)
