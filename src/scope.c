/* The test's scope as query parameters: $1 the schemas, $2 and $3 the
 * schemas and names of the tables asked for, as text[] literals, $4 what
 * is left out, as a two-dimensional text[] of { schema, name or NULL };
 * each name checked and cut as the server keeps it. */
#include <string.h>
#include "neoconn.h"

/* The length of a name as the server keeps it: identifiers longer than
 * NAMEDATALEN - 1 (63) bytes are cut there, at a character boundary
 * (UTF-8: the connection's client_encoding is pinned). */
static size_t server_name_length(const char *s, size_t len)
{
  if (len <= 63)
    return len;
  len = 63;
  while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
    len--;
  return len;
}

/* Pushes the text[] literal ({"a","b \"c\""}) of the n names in table t. */
static void push_array_literal(lua_State *L, int t, int n)
{
  size_t size = 3, at = 0, len, j;
  int i;
  char *out;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    lua_tolstring(L, -1, &len);
    size += 2 * len + 3;
    lua_pop(L, 1);
  }
  out = (char *)nc_newuserdata(L, size);
  out[at++] = '{';
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, t, i);
    s = lua_tolstring(L, -1, &len);
    len = server_name_length(s, len);
    if (i > 1)
      out[at++] = ',';
    out[at++] = '"';
    for (j = 0; j < len; j++) {
      if (s[j] == '"' || s[j] == '\\')
        out[at++] = '\\';
      out[at++] = s[j];
    }
    out[at++] = '"';
    lua_pop(L, 1);
  }
  out[at++] = '}';
  lua_pushlstring(L, out, at);
  lua_remove(L, -2);
}

static void check_name(lua_State *L, int arg, const char *what, int i, int idx)
{
  size_t len;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d]: string expected, got %s", what, i,
                                          luaL_typename(L, idx)));
  s = lua_tolstring(L, idx, &len);
  if (len == 0 || memchr(s, '\0', len) != NULL)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d]: empty name or zero byte", what, i));
  if (len > NC_MAX_NAME)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d]: a name of %d bytes (at most %d)", what, i,
                                          (int)len, NC_MAX_NAME));
}

/* Appends the element "s" of a text[] literal, the name cut as the
 * server keeps it, or NULL for s == NULL. */
static void add_element(luaL_Buffer *b, const char *s, size_t len)
{
  size_t j;
  if (s == NULL) {
    luaL_addstring(b, "NULL");
    return;
  }
  len = server_name_length(s, len);
  luaL_addchar(b, '"');
  for (j = 0; j < len; j++) {
    if (s[j] == '"' || s[j] == '\\')
      luaL_addchar(b, '\\');
    luaL_addchar(b, s[j]);
  }
  luaL_addchar(b, '"');
}

/* The string at pairs[i] (kept alive by pairs), or NULL; pops it. */
static const char *pair_item(lua_State *L, int pairs, int i, size_t *len)
{
  const char *s;
  lua_rawgeti(L, pairs, i);
  s = lua_tolstring(L, -1, len);
  lua_pop(L, 1);
  return s;
}

/* Pushes $4 from opts.exclude: nil, or {{"schema","name"},{"schema",NULL}}.
 * An entry is "schema.table", a bare "schema" (the whole schema: unlike
 * tables, where a bare name is a table in public), { schema =, name = } or
 * { schema = }. */
static void push_exclusions(lua_State *L, int opts, int arg)
{
  int list, i, n;
  luaL_Buffer b;
  lua_getfield(L, opts, "exclude");
  if (lua_isnil(L, -1))
    return;
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_argerror(L, arg, "exclude: list of schemas and tables expected (\"schema\", "
                          "\"schema.table\" or { schema=, name= })");
  list = lua_gettop(L);
  n = (int)lua_rawlen(L, list);
  if (n > NC_MAX_LIST)
    luaL_argerror(L, arg, lua_pushfstring(L, "exclude: %d names (at most %d)", n, NC_MAX_LIST));
  if (n == 0) {
    lua_pushnil(L);
    lua_replace(L, list);
    return;
  }
  /* The pairs first (names checked, parsed), then the literal. */
  lua_createtable(L, 2 * n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "schema");
      check_name(L, arg, "exclude (schema)", i, -1);
      lua_getfield(L, -2, "name");
      if (!lua_isnil(L, -1))
        check_name(L, arg, "exclude (name)", i, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      const char *err;
      check_name(L, arg, "exclude", i, -1);
      err = nc_parse_qualified(L, lua_tostring(L, -1));
      if (err != NULL)
        luaL_argerror(L, arg, lua_pushfstring(L, "exclude[%d]: %s", i, err));
      if (lua_isnil(L, -2)) /* a bare name: a schema */
        lua_insert(L, -2);
    } else {
      luaL_argerror(L, arg, lua_pushfstring(L, "exclude[%d]: schema, table or qualified name "
                                               "expected, got %s", i, luaL_typename(L, -1)));
    }
    lua_rawseti(L, list + 1, 2 * i);
    lua_rawseti(L, list + 1, 2 * i - 1);
    lua_pop(L, 1);
  }
  /* The buffer owns the top of the stack from here: the items are read
   * before each append (pairs keeps them alive). */
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '{');
  for (i = 1; i <= n; i++) {
    size_t len = 0;
    const char *item;
    luaL_addstring(&b, i > 1 ? ",{" : "{");
    item = pair_item(L, list + 1, 2 * i - 1, &len);
    add_element(&b, item, len);
    luaL_addchar(&b, ',');
    item = pair_item(L, list + 1, 2 * i, &len);
    add_element(&b, item, len);
    luaL_addchar(&b, '}');
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  lua_replace(L, list);
  lua_settop(L, list);
}

/* Pushes the parameters $1 (schemas), $2 and $3 (table schemas and names),
 * $4 (what is left out): each a text[] literal or nil. Raises on malformed
 * options. */
void nc_push_scope_params(lua_State *L, int opts, int arg)
{
  int list, i, n, schemas, names;
  if (lua_isnoneornil(L, opts)) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    return;
  }
  lua_getfield(L, opts, "schemas");
  if (lua_isnil(L, -1)) {
    /* keep nil as $1 */
  } else if (lua_type(L, -1) != LUA_TTABLE) {
    luaL_argerror(L, arg, "schemas: list of schema names expected");
  } else {
    list = lua_gettop(L);
    n = (int)lua_rawlen(L, list);
    if (n > NC_MAX_LIST)
      luaL_argerror(L, arg, lua_pushfstring(L, "schemas: %d names (at most %d)", n, NC_MAX_LIST));
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, list, i);
      check_name(L, arg, "schemas", i, -1);
      lua_pop(L, 1);
    }
    push_array_literal(L, list, n);
    lua_replace(L, list);
  }

  lua_getfield(L, opts, "tables");
  if (lua_isnil(L, -1)) {
    lua_pushnil(L);
    push_exclusions(L, opts, arg);
    return;
  }
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_argerror(L, arg, "tables: list of tables expected ({ schema=, name= } or \"schema.name\")");
  list = lua_gettop(L);
  n = (int)lua_rawlen(L, list);
  if (n > NC_MAX_LIST)
    luaL_argerror(L, arg, lua_pushfstring(L, "tables: %d names (at most %d)", n, NC_MAX_LIST));
  lua_createtable(L, n, 0);
  schemas = lua_gettop(L);
  lua_createtable(L, n, 0);
  names = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "schema");
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "public");
      }
      check_name(L, arg, "tables (schema)", i, -1);
      lua_getfield(L, -2, "name");
      check_name(L, arg, "tables (name)", i, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      const char *err;
      check_name(L, arg, "tables", i, -1);
      err = nc_parse_qualified(L, lua_tostring(L, -1));
      if (err != NULL)
        luaL_argerror(L, arg, lua_pushfstring(L, "tables[%d]: %s", i, err));
      if (lua_isnil(L, -2)) {
        lua_pushliteral(L, "public");
        lua_replace(L, -3);
      }
    } else {
      luaL_argerror(L, arg, lua_pushfstring(L, "tables[%d]: table or qualified name expected, "
                                               "got %s", i, luaL_typename(L, -1)));
    }
    lua_rawseti(L, names, i);
    lua_rawseti(L, schemas, i);
    lua_pop(L, 1);
  }
  push_array_literal(L, schemas, n);
  push_array_literal(L, names, n);
  lua_replace(L, list + 1); /* $3: names */
  lua_replace(L, list);     /* $2: schemas */
  lua_settop(L, list + 1);
  push_exclusions(L, opts, arg);
}
