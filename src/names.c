/* Qualified names in PostgreSQL identifier syntax: `users`, `public.users`,
 * `"Odd Schema"."a.b"`. Unquoted parts fold to lower case (ASCII, as the
 * server does); quoted parts keep their case, with "" standing for ". */
#include <string.h>
#include "neoconn.h"

static int hex_value(char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

/* Reads a Unicode escape after the backslash at *s (XXXX or +XXXXXX, as
 * in U&"..."), adds the character as UTF-8; returns NULL or an error. */
static const char *add_escape(luaL_Buffer *b, const char **s)
{
  const char *p = *s + 1;
  int digits = 4, i;
  unsigned long cp = 0;
  if (*p == '+') {
    digits = 6;
    p++;
  }
  for (i = 0; i < digits; i++) {
    int v = hex_value(p[i]);
    if (v < 0)
      return "invalid Unicode escape (\\XXXX or \\+XXXXXX)";
    cp = cp * 16 + (unsigned long)v;
  }
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return "invalid Unicode escape value";
  if (cp < 0x80) {
    luaL_addchar(b, (char)cp);
  } else if (cp < 0x800) {
    luaL_addchar(b, (char)(0xC0 | (cp >> 6)));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    luaL_addchar(b, (char)(0xE0 | (cp >> 12)));
    luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
  } else {
    luaL_addchar(b, (char)(0xF0 | (cp >> 18)));
    luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
    luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
    luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
  }
  *s = p + digits;
  return NULL;
}

/* Reads one identifier at *p into the buffer; returns NULL or an error.
 * A quoted one may be written with Unicode escapes, U&"a\000Db", as
 * quote_ident writes names holding control characters. */
static const char *read_part(lua_State *L, const char **p)
{
  const char *s = *p, *err;
  int unicode = (s[0] == 'U' || s[0] == 'u') && s[1] == '&' && s[2] == '"';
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (unicode)
    s += 2;
  if (*s == '"') {
    const char *open = s;
    s++;
    for (;;) {
      if (*s == '\0')
        return "unterminated quoted identifier";
      if (*s == '"') {
        if (s[1] != '"')
          break;
        s++;
      } else if (unicode && *s == '\\' && s[1] != '\\') {
        if ((err = add_escape(&b, &s)) != NULL)
          return err;
        continue;
      } else if (unicode && *s == '\\') {
        s++;
      }
      luaL_addchar(&b, *s++);
    }
    s++;
    if (s - open == 2)
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
