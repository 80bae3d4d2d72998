/* Argument helpers for every function the core exposes: one message format
 * naming the argument ("bad argument #2 to 'query' (sql: string expected,
 * got nil)"), below every file that checks arguments. */
#include <string.h>
#include "neoconn.h"

const char *nc_check_string(lua_State *L, int idx, const char *name, size_t *len)
{
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: string expected, got %s", name,
                                          luaL_typename(L, idx)));
  return lua_tolstring(L, idx, len);
}

const char *nc_check_text(lua_State *L, int idx, const char *name, size_t *len)
{
  size_t n;
  const char *s = nc_check_string(L, idx, name, &n);
  if (memchr(s, '\0', n) != NULL)
    luaL_argerror(L, idx, lua_pushfstring(L, "%s: contains a zero byte", name));
  if (len != NULL)
    *len = n;
  return s;
}
