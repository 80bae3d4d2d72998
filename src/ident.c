/* The one place where neoconn quotes SQL identifiers. An identifier is left
 * bare only when PostgreSQL would read it back unchanged: lower-case letters,
 * digits and '_', not starting with a digit, and not a keyword
 * that needs quoting (PostgreSQL's reserved, column-name and
 * type/function-name keywords) of any version from 13 to 18: quoting a word
 * an older server does not reserve is harmless, leaving bare one a newer
 * server reserves is not. Everything else is double-quoted with embedded
 * double quotes doubled; a name holding control characters is written with
 * Unicode escapes (nc_quote_ident). */
#include <string.h>
#include "neoconn.h"

static const char *const keywords[] = {
  "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
  "authorization", "between", "bigint", "binary", "bit", "boolean", "both", "case",
  "cast", "char", "character", "check", "coalesce", "collate", "collation", "column",
  "concurrently", "constraint", "create", "cross", "current_catalog", "current_date",
  "current_role", "current_schema", "current_time", "current_timestamp", "current_user",
  "dec", "decimal", "default", "deferrable", "desc", "distinct", "do", "else", "end",
  "except", "exists", "extract", "false", "fetch", "float", "for", "foreign", "freeze",
  "from", "full", "grant", "greatest", "group", "grouping", "having", "ilike", "in",
  "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into", "is",
  "isnull", "join", "json", "json_array", "json_arrayagg", "json_exists", "json_object",
  "json_objectagg", "json_query", "json_scalar", "json_serialize", "json_table", "json_value",
  "lateral", "leading", "least", "left", "like", "limit", "localtime",
  "localtimestamp", "merge_action", "national", "natural", "nchar", "none", "normalize", "not",
  "notnull", "null", "nullif", "numeric", "offset", "on", "only", "or", "order", "out",
  "outer", "overlaps", "overlay", "placing", "position", "precision", "primary", "real",
  "references", "returning", "right", "row", "select", "session_user", "setof",
  "similar", "smallint", "some", "substring", "symmetric", "system_user", "table",
  "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim", "true",
  "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose", "when",
  "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists",
  "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize",
  "xmltable", NULL
};

static int is_keyword(const char *s, size_t len)
{
  const char *const *k;
  for (k = keywords; *k != NULL; k++)
    if (strlen(*k) == len && memcmp(*k, s, len) == 0)
      return 1;
  return 0;
}

static int needs_quotes(const char *s, size_t len)
{
  size_t i;
  if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
    return 1;
  for (i = 1; i < len; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
      return 1;
  }
  return is_keyword(s, len);
}

/* Whether s holds a character never shown raw (nc_char_at: a control, a
 * C1 control, an invisible or direction-changing code point). */
static int has_control(const char *s, size_t len)
{
  size_t i = 0, n;
  unsigned long cp;
  for (; i < len; i += n)
    if (nc_char_at(s + i, len - i, &n, &cp) == NC_CHAR_CONTROL)
      return 1;
  return 0;
}

static size_t put(char *out, size_t at, const char *s, size_t len)
{
  if (out != NULL)
    memcpy(out + at, s, len);
  return at + len;
}

/* Writes the quoted form of s to out (which has room for
 * NC_QUOTED_MAX(len) bytes, or is NULL to only measure) and returns its
 * length. A name holding a character never shown raw is written with
 * Unicode escapes, U&"a\000Db" (the backslash doubled), which the server
 * reads back as the same name in any setting: the quoted form then holds
 * no line break, carriage return or escape sequence, so it is safe in SQL,
 * in an SQL comment, in a hint and on a terminal alike. */
size_t nc_quote_ident(char *out, const char *s, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t i, n = 0, step;
  unsigned long cp;
  int escaped;
  if (!needs_quotes(s, len))
    return put(out, 0, s, len);
  escaped = has_control(s, len);
  if (escaped)
    n = put(out, n, "U&", 2);
  n = put(out, n, "\"", 1);
  for (i = 0; i < len; i += step) {
    if (nc_char_at(s + i, len - i, &step, &cp) == NC_CHAR_CONTROL) {
      char esc[5];
      int k;
      esc[0] = '\\';
      for (k = 0; k < 4; k++)
        esc[1 + k] = hex[(cp >> (12 - 4 * k)) & 15];
      n = put(out, n, esc, 5);
      continue;
    }
    step = 1;
    if (s[i] == '"' || (escaped && s[i] == '\\'))
      n = put(out, n, s + i, 1);
    n = put(out, n, s + i, 1);
  }
  return put(out, n, "\"", 1);
}

/* quote_ident(name [, name2 ...]) -> quoted names joined with '.' */
int nc_l_quote_ident(lua_State *L)
{
  int i, n = lua_gettop(L);
  size_t total = 0, at = 0;
  char *out;
  if (n == 0)
    luaL_argerror(L, 1, "name: string expected, got no value");
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s = nc_check_text(L, i, "name", &len);
    if (len == 0)
      luaL_argerror(L, i, "identifier is empty (PostgreSQL has no empty names)");
    total += nc_quote_ident(NULL, s, len) + 1;
  }
  out = (char *)nc_newuserdata(L, total);
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    if (i > 1)
      out[at++] = '.';
    at += nc_quote_ident(out + at, s, len);
  }
  lua_pushlstring(L, out, at);
  return 1;
}

/* quote_literal(text) -> 'text' with quotes doubled; E'...' where the text
 * holds a backslash (read two ways, as standard_conforming_strings says)
 * or a character never shown raw, written as an escape (\x0D, \u202E), so
 * the literal holds no line break or control character. */
int nc_l_quote_literal(lua_State *L)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t len, i, n;
  unsigned long cp;
  const char *s = nc_check_text(L, 1, "text", &len);
  int escaped = has_control(s, len) || memchr(s, '\\', len) != NULL;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (escaped)
    luaL_addchar(&b, 'E');
  luaL_addchar(&b, '\'');
  for (i = 0; i < len; i += n) {
    if (nc_char_at(s + i, len - i, &n, &cp) == NC_CHAR_CONTROL) {
      int k, digits = cp < 0x80 ? 2 : 4;
      luaL_addchar(&b, '\\');
      luaL_addchar(&b, cp < 0x80 ? 'x' : 'u');
      for (k = digits - 1; k >= 0; k--)
        luaL_addchar(&b, hex[(cp >> (4 * k)) & 15]);
      continue;
    }
    n = 1;
    if (s[i] == '\'' || s[i] == '\\')
      luaL_addchar(&b, s[i]);
    luaL_addchar(&b, s[i]);
  }
  luaL_addchar(&b, '\'');
  luaL_pushresult(&b);
  return 1;
}
