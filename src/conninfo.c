/* Turns a Lua target (URL, key=value string, or table of libpq keywords)
 * into a table keyword -> string, validated before libpq sees it. Strings
 * go through PQconninfoParse, so they are parsed exactly as libpq would;
 * nothing is ever concatenated into a conninfo string. */
#include <stdlib.h>
#include <string.h>
#include "neoconn.h"

/* The libpq keywords a table may use, and "url": a postgres:// URL or
 * key=value string read first, which the other fields then override. */
static const char *const table_keywords[] = {
  "url", "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
  "sslcert", "sslkey", "sslpassword", "connect_timeout", "application_name",
  "target_session_attrs", "options", "service", "passfile", NULL
};

static int in_list(const char *s, const char *const *list)
{
  for (; *list != NULL; list++)
    if (strcmp(s, *list) == 0)
      return 1;
  return 0;
}

/* Parses the string at idx into the params table at index params. */
static int from_string(lua_State *L, int idx, int params, nc_error *e)
{
  char *errmsg = NULL;
  PQconninfoOption *o;
  PQconninfoOption **box = nc_new_options_box(L);
  *box = PQconninfoParse(lua_tostring(L, idx), &errmsg);
  if (*box == NULL) {
    nc_config_error(e, errmsg != NULL ? errmsg : "out of memory parsing the connection string");
    PQfreemem(errmsg);
    lua_pop(L, 1);
    return 0;
  }
  for (o = *box; o->keyword != NULL; o++) {
    if (o->val != NULL) {
      lua_pushstring(L, o->val);
      lua_setfield(L, params, o->keyword);
    }
  }
  PQconninfoFree(*box); /* now, rather than when the box is collected */
  *box = NULL;
  lua_pop(L, 1);
  return 1;
}

static void from_table(lua_State *L, int idx)
{
  int params = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *key;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_argerror(L, idx, "connection table keys must be libpq keyword strings");
    key = lua_tostring(L, -2);
    if (!in_list(key, table_keywords))
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown connection keyword '%s'", key));
    if (strcmp(key, "url") == 0) {
      lua_pop(L, 1); /* read by nc_push_params before the other fields */
      continue;
    }
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
      break;
    case LUA_TNUMBER:
      if (!nc_isinteger(L, -1))
        luaL_argerror(L, idx, lua_pushfstring(L, "field '%s' must be an integer", key));
      lua_tostring(L, -1); /* converts the value in place: "5432" */
      break;
    default:
      luaL_argerror(L, idx, lua_pushfstring(L, "field '%s' must be a string, got %s", key,
                                            luaL_typename(L, -1)));
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_settable(L, params);
  }
}

static const char *field(lua_State *L, int t, const char *key)
{
  const char *v;
  lua_getfield(L, t, key);
  v = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the table */
  return v;
}

static int valid_ports(const char *s)
{
  while (*s != '\0') {
    char *end;
    long port = strtol(s, &end, 10);
    if (end == s || port < 1 || port > 65535)
      return 0;
    s = end;
    if (*s == ',')
      s++;
    else if (*s != '\0')
      return 0;
  }
  return 1;
}

static int validate(lua_State *L, int t, nc_error *e)
{
  static const char *const sslmodes[] = { "disable", "allow", "prefer", "require",
                                          "verify-ca", "verify-full", NULL };
  static const char *const session_attrs[] = { "any", "read-write", "read-only", "primary",
                                                "standby", "prefer-standby", NULL };
  const char *v;
  if ((v = field(L, t, "sslmode")) != NULL && !in_list(v, sslmodes)) {
    lua_pushfstring(L, "invalid sslmode \"%s\": expected disable, allow, prefer, require, "
                       "verify-ca or verify-full", v);
  } else if ((v = field(L, t, "target_session_attrs")) != NULL && !in_list(v, session_attrs)) {
    lua_pushfstring(L, "invalid target_session_attrs \"%s\": expected any, read-write, "
                       "read-only, primary, standby or prefer-standby", v);
  } else if ((v = field(L, t, "port")) != NULL && !valid_ports(v)) {
    lua_pushfstring(L, "invalid port \"%s\": expected an integer 1-65535", v);
  } else {
    return 1;
  }
  nc_config_error(e, lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}

int nc_push_params(lua_State *L, int idx, nc_error *e)
{
  idx = nc_absindex(L, idx);
  lua_newtable(L);
  lua_pushliteral(L, "neoconn");
  lua_setfield(L, -2, "application_name");
  if (lua_type(L, idx) == LUA_TSTRING) {
    if (!from_string(L, idx, lua_gettop(L), e))
      return 0;
  } else if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "url");
    if (lua_type(L, -1) == LUA_TSTRING) {
      int ok = from_string(L, lua_gettop(L), lua_gettop(L) - 1, e);
      lua_pop(L, 1);
      if (!ok)
        return 0;
    } else if (!lua_isnil(L, -1)) {
      luaL_argerror(L, idx, lua_pushfstring(L, "field 'url' must be a string, got %s",
                                            luaL_typename(L, -1)));
    } else {
      lua_pop(L, 1);
    }
    from_table(L, idx);
  } else {
    luaL_argerror(L, idx, lua_pushfstring(L, "connection URL, key=value string or table "
                                             "expected, got %s", luaL_typename(L, idx)));
  }
  return validate(L, lua_gettop(L), e);
}
