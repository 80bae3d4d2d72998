/* The one place where neoconn quotes SQL identifiers. An identifier is left
 * bare only when PostgreSQL would read it back unchanged: lower-case letters,
 * digits and '_', not starting with a digit, and not a keyword
 * that needs quoting (PostgreSQL's reserved, column-name and
 * type/function-name keywords) of any version from 13 to 18: quoting a word
 * an older server does not reserve is harmless, leaving bare one a newer
 * server reserves is not. Everything else is double-quoted with embedded
 * double quotes doubled. */
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

/* Writes the quoted form of s to out (which has room for 2 * len + 2 bytes,
 * or is NULL to only measure) and returns its length. */
size_t nc_quote_ident(char *out, const char *s, size_t len)
{
  size_t i, n = 0;
  if (!needs_quotes(s, len)) {
    if (out != NULL)
      memcpy(out, s, len);
    return len;
  }
  if (out != NULL)
    out[n] = '"';
  n++;
  for (i = 0; i < len; i++) {
    if (s[i] == '"') {
      if (out != NULL)
        out[n] = '"';
      n++;
    }
    if (out != NULL)
      out[n] = s[i];
    n++;
  }
  if (out != NULL)
    out[n] = '"';
  return n + 1;
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
