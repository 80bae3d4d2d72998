/* Qualified names in PostgreSQL identifier syntax: `users`, `public.users`,
 * `"Odd Schema"."a.b"`. Unquoted parts fold to lower case (ASCII, as the
 * server does); quoted parts keep their case, with "" standing for ". */
#include <string.h>
#include "neoconn.h"

/* Reads one identifier at *p into the buffer; returns NULL or an error. */
static const char *read_part(lua_State *L, const char **p)
{
  const char *s = *p;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (*s == '"') {
    s++;
    for (;;) {
      if (*s == '\0')
        return "unterminated quoted identifier";
      if (*s == '"') {
        if (s[1] != '"')
          break;
        s++;
      }
      luaL_addchar(&b, *s++);
    }
    s++;
    if (s - *p == 2)
      return "zero-length quoted identifier";
  } else {
    const char *start = s;
    while (*s != '\0' && *s != '.' && *s != '"' && *s != ' ' && *s != '\t' && *s != '\n') {
      char ch = *s++;
      luaL_addchar(&b, (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch);
    }
    if (s == start)
      return "empty name part";
  }
  luaL_pushresult(&b);
  *p = s;
  return NULL;
}

/* Pushes schema (or nil) and name, or returns an error message. */
const char *nc_parse_qualified(lua_State *L, const char *s)
{
  const char *err;
  int top = lua_gettop(L);
  if ((err = read_part(L, &s)) != NULL) {
    lua_settop(L, top);
    return err;
  }
  if (*s == '\0') {
    lua_pushnil(L);
    lua_insert(L, -2);
    return NULL;
  }
  if (*s != '.') {
    lua_settop(L, top);
    return "unexpected character after a name (quote names with spaces or dots)";
  }
  s++;
  if ((err = read_part(L, &s)) != NULL) {
    lua_settop(L, top);
    return err;
  }
  if (*s != '\0') {
    lua_settop(L, top);
    return "too many dots: expected schema.table";
  }
  return NULL;
}

/* neoconn.parse_name(text) -> schema|nil, name | nil, nil, message */
int nc_l_parse_name(lua_State *L)
{
  size_t len;
  const char *s = nc_check_string(L, 1, "name", &len), *err;
  if (memchr(s, '\0', len) != NULL) {
    err = "name contains a zero byte";
  } else if ((err = nc_parse_qualified(L, s)) == NULL) {
    return 2;
  }
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 3;
}
