/* What a catalog query's answer must look like before a row of it is read:
 * its columns by name and type, in order, the values that may not be NULL
 * or hold a zero byte, and how many rows. Everything read from a server is
 * untrusted: a pooler, a proxy, a corrupted connection or something that
 * is not PostgreSQL can rename a column, change its type or send a NULL,
 * and the report is built on the shape the catalog SQL promises. A shape
 * is written next to its query (catalog_sql.c, replication.c, proof.c):
 *
 *   "@label[/1|/01] name:kind[!][?] ..."
 *
 * label names the query in messages; /1 asks for exactly one row, /01 for
 * at most one. kind is t (text), b (boolean), i (integer), n (number), a
 * (array) or f (a flags column: name is its group, "owner{}", and matches
 * any flags of that group). ! means never NULL; ? means the column may be
 * absent altogether (it came with a later server version, or with an
 * option of the job). Every spec run checks each shape against the real
 * server's answer, so a shape cannot drift from its SQL. */
#include <string.h>
#include "neoconn.h"

#define BOOLOID 16
#define CHAROID 18
#define NAMEOID 19
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define TEXTOID 25
#define OIDOID 26
#define FLOAT4OID 700
#define FLOAT8OID 701
#define NAMEARRAYOID 1003
#define BPCHAROID 1042
#define VARCHAROID 1043
#define NUMERICOID 1700

static int kind_accepts(char kind, Oid type)
{
  switch (kind) {
  case 't':
    return type == TEXTOID || type == NAMEOID || type == VARCHAROID || type == BPCHAROID
           || type == CHAROID;
  case 'b':
    return type == BOOLOID;
  case 'i':
  case 'f':
    return type == INT2OID || type == INT4OID || type == INT8OID || type == OIDOID;
  case 'n':
    return type == FLOAT4OID || type == FLOAT8OID || type == NUMERICOID || type == INT2OID
           || type == INT4OID || type == INT8OID;
  case 'a':
    return type == TEXTARRAYOID || type == NAMEARRAYOID;
  default:
    return 0;
  }
}

/* One entry of a shape, read from *p: name (len bytes), kind and marks. */
typedef struct {
  const char *name;
  size_t len;
  char kind;
  int not_null, optional;
} entry;

static int next_entry(const char **p, entry *e)
{
  const char *s = *p, *colon;
  while (*s == ' ')
    s++;
  if (*s == '\0')
    return 0;
  colon = strchr(s, ':');
  e->name = s;
  e->len = (size_t)(colon - s);
  e->kind = colon[1];
  e->not_null = e->optional = 0;
  for (s = colon + 2; *s != '\0' && *s != ' '; s++) {
    e->not_null |= *s == '!';
    e->optional |= *s == '?';
  }
  *p = s;
  return 1;
}

/* Whether column name matches the entry: exactly, or for flags by group
 * ("owner{}" matches "owner{is_self,is_member}"). */
static int name_matches(const entry *e, const char *name)
{
  if (e->kind == 'f')
    return strncmp(name, e->name, e->len - 1) == 0;
  return strlen(name) == e->len && memcmp(name, e->name, e->len) == 0;
}

/* Pushes what is wrong with column i's values, or returns 0. */
static int check_values(lua_State *L, const PGresult *res, int i, const entry *e,
                        const char *label)
{
  int r, rows = PQntuples(res);
  for (r = 0; r < rows; r++) {
    if (PQgetisnull(res, r, i)) {
      if (e->not_null) {
        lua_pushfstring(L, "%s: column %s of row %d is NULL", label, PQfname(res, i), r + 1);
        return 1;
      }
    } else if ((e->kind == 't' || e->kind == 'a')
               && memchr(PQgetvalue(res, r, i), '\0', (size_t)PQgetlength(res, r, i)) != NULL) {
      lua_pushfstring(L, "%s: column %s of row %d holds a zero byte", label, PQfname(res, i),
                      r + 1);
      return 1;
    }
  }
  return 0;
}

int nc_shape_problem(lua_State *L, const PGresult *res, const char *shape)
{
  const char *p, *label_end;
  int ncols = PQnfields(res), i = 0, rows = PQntuples(res);
  entry e;
  if (shape == NULL)
    return 0;
  p = shape + 1;
  label_end = strpbrk(shape, "/ ");
  lua_pushlstring(L, p, (size_t)(label_end - p));
  p = label_end;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    lua_pushfstring(L, "%s: an answer without rows (%s)", lua_tostring(L, -1),
                    PQresStatus(PQresultStatus(res)));
    lua_remove(L, -2);
    return 1;
  }
  if (*p == '/') {
    int exactly_one = p[1] == '1';
    if (rows > 1 || (exactly_one && rows != 1)) {
      lua_pushfstring(L, "%s: %d rows where %s expected", lua_tostring(L, -1), rows,
                      exactly_one ? "one is" : "at most one is");
      lua_remove(L, -2);
      return 1;
    }
    p += exactly_one ? 2 : 3;
  }
  while (next_entry(&p, &e)) {
    if (i < ncols && name_matches(&e, PQfname(res, i))) {
      if (!kind_accepts(e.kind, PQftype(res, i))) {
        lua_pushfstring(L, "%s: column %s has type %d", lua_tostring(L, -1), PQfname(res, i),
                        (int)PQftype(res, i));
        lua_remove(L, -2);
        return 1;
      }
      if (check_values(L, res, i, &e, lua_tostring(L, -1))) {
        lua_remove(L, -2);
        return 1;
      }
      i++;
    } else if (!e.optional) {
      lua_pushlstring(L, e.name, e.len);
      lua_pushfstring(L, "%s: column %d is %s, expected %s", lua_tostring(L, -2), i + 1,
                      i < ncols ? PQfname(res, i) : "missing", lua_tostring(L, -1));
      lua_remove(L, -2);
      lua_remove(L, -2);
      return 1;
    }
  }
  if (i < ncols) {
    lua_pushfstring(L, "%s: an unexpected column %s", lua_tostring(L, -1), PQfname(res, i));
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);
  return 0;
}
