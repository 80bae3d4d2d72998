/* Query results to Lua rows, and the two ways neoconn runs SQL: a pipeline
 * of read-only catalog queries sent in one round trip, and a plain query
 * (conn:query). Every PGresult is held in a box while Lua code runs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "neoconn.h"

#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define OIDOID 26
#define FLOAT4OID 700
#define FLOAT8OID 701
#define NUMERICOID 1700
#define NAMEARRAYOID 1003

enum { K_TEXT, K_BOOL, K_INT, K_NUM, K_ARRAY, K_FLAGS };

/* Pushes a one-dimensional text array literal ({a,"b c",NULL}) as a list. */
static void push_array(lua_State *L, const char *s)
{
  luaL_Buffer b;
  int n = 0;
  lua_newtable(L);
  if (*s == '{')
    s++;
  while (*s != '\0' && *s != '}') {
    int quoted = (*s == '"');
    const char *start;
    luaL_buffinit(L, &b);
    if (quoted) {
      s++;
      while (*s != '\0' && *s != '"') {
        if (*s == '\\' && s[1] != '\0')
          s++;
        luaL_addchar(&b, *s++);
      }
      if (*s == '"')
        s++;
      luaL_pushresult(&b);
    } else {
      start = s;
      while (*s != '\0' && *s != ',' && *s != '}')
        s++;
      luaL_addlstring(&b, start, (size_t)(s - start));
      luaL_pushresult(&b);
      if (s - start == 4 && memcmp(start, "NULL", 4) == 0) {
        lua_pop(L, 1);
        if (*s == ',')
          s++;
        continue;
      }
    }
    lua_rawseti(L, -2, ++n);
    if (*s == ',')
      s++;
  }
}

static int kind_of(Oid type)
{
  switch (type) {
  case BOOLOID:
    return K_BOOL;
  case INT2OID:
  case INT4OID:
  case INT8OID:
  case OIDOID:
    return K_INT;
  case FLOAT4OID:
  case FLOAT8OID:
  case NUMERICOID:
    return K_NUM;
  case NAMEARRAYOID:
  case TEXTARRAYOID:
    return K_ARRAY;
  default:
    return K_TEXT;
  }
}

/* Sets the field(s) of column i of row r (not NULL) in the table at t:
 * its value by its kind, or for a set of flags one boolean per name
 * (names[0..nflags-1] on the stack). Returns how many it set. */
static int set_fields(lua_State *L, int t, const PGresult *res, int r, int i, int kind, int names,
                      int nflags)
{
  const char *v = PQgetvalue(res, r, i);
  long long bits;
  int f;
  if (kind != K_FLAGS) {
    lua_pushvalue(L, names);
    switch (kind) {
    case K_BOOL:
      lua_pushboolean(L, v[0] == 't');
      break;
    case K_INT:
      lua_pushinteger(L, (lua_Integer)strtoll(v, NULL, 10));
      break;
    case K_NUM:
      lua_pushnumber(L, (lua_Number)strtod(v, NULL));
      break;
    case K_ARRAY:
      push_array(L, v);
      break;
    default:
      lua_pushlstring(L, v, (size_t)PQgetlength(res, r, i));
    }
    lua_rawset(L, t);
    return 1;
  }
  bits = strtoll(v, NULL, 10);
  for (f = 0; f < nflags; f++) {
    lua_pushvalue(L, names + f);
    lua_pushboolean(L, f < 63 && ((bits >> f) & 1));
    lua_rawset(L, t);
  }
  return nflags;
}

/* Pushes the key that identifies the values of row r in the columns
 * cols[0..n-1]: per column "N" for NULL, or "V", the value and a zero byte.
 * Text values cannot hold a zero byte, so the key reads back one way only
 * and distinct values give distinct keys. Returns 0 (and pushes nothing)
 * when every value is NULL. */
static int push_values_key(lua_State *L, const PGresult *res, int r, const int *cols, int n)
{
  luaL_Buffer b;
  int j, filled = 0;
  luaL_buffinit(L, &b);
  for (j = 0; j < n; j++) {
    if (PQgetisnull(res, r, cols[j])) {
      luaL_addchar(&b, 'N');
    } else {
      luaL_addchar(&b, 'V');
      luaL_addlstring(&b, PQgetvalue(res, r, cols[j]), (size_t)PQgetlength(res, r, cols[j]));
      luaL_addchar(&b, '\0');
      filled++;
    }
  }
  luaL_pushresult(&b);
  if (filled == 0) {
    lua_pop(L, 1);
    return 0;
  }
  return 1;
}

/* Whether rows r and p hold the same values in the columns cols[0..n-1]. */
static int same_values(const PGresult *res, int r, int p, const int *cols, int n)
{
  int j;
  for (j = 0; j < n; j++) {
    int len = PQgetlength(res, r, cols[j]);
    if (PQgetisnull(res, r, cols[j]) != PQgetisnull(res, p, cols[j])
        || len != PQgetlength(res, p, cols[j])
        || memcmp(PQgetvalue(res, r, cols[j]), PQgetvalue(res, p, cols[j]), (size_t)len) != 0)
      return 0;
  }
  return 1;
}

/* Pushes the names of column i's fields; returns how many (-1: the Lua
 * stack has no room for them), and sets *group_len to the length of its
 * group's name (-1: top level). A column
 * named "a.b" is field b of subtable a; one named "a{b,c}" (or "{b,c}")
 * is a set of flags, an integer whose bit k is the k-th field, a boolean:
 * one value on the wire for many fields (the server cuts a column name
 * to 63 bytes: a longer list takes two columns). A field two columns name
 * takes the value of the later one that is not NULL. */
static int push_field_names(lua_State *L, const char *name, int *group_len)
{
  const char *brace = strchr(name, '{'), *dot = strchr(name, '.'), *p;
  int n = 0;
  if (!lua_checkstack(L, 1))
    return -1;
  if (brace == NULL) {
    lua_pushstring(L, dot != NULL ? dot + 1 : name);
    *group_len = dot != NULL ? (int)(dot - name) : -1;
    return 1;
  }
  *group_len = brace > name ? (int)(brace - name) : -1;
  for (p = brace + 1; *p != '\0' && *p != '}'; p += *p == ',') {
    size_t len = strcspn(p, ",}");
    if (!lua_checkstack(L, 1))
      return -1;
    lua_pushlstring(L, p, len);
    p += len;
    n++;
  }
  return n;
}

/* A row's place in byte order of its first two columns, with the first 8
 * bytes of each as a number (big-endian, zero-padded: names hold no zero
 * byte), so most comparisons are two integer ones. */
typedef struct {
  const char *key[2];
  int len[2];
  uint64_t prefix[2];
  int row;
} sort_entry;

static uint64_t prefix_of(const char *s, int len)
{
  uint64_t p = 0;
  int i;
  for (i = 0; i < 8; i++)
    p = (p << 8) | (i < len ? (unsigned char)s[i] : 0);
  return p;
}

static int compare_key(const sort_entry *a, const sort_entry *b, int k)
{
  const unsigned char *x = (const unsigned char *)a->key[k], *y = (const unsigned char *)b->key[k];
  int i, n = a->len[k] < b->len[k] ? a->len[k] : b->len[k];
  if (a->prefix[k] != b->prefix[k])
    return a->prefix[k] < b->prefix[k] ? -1 : 1;
  for (i = 8; i < n; i++)
    if (x[i] != y[i])
      return (int)x[i] - (int)y[i];
  return (a->len[k] > b->len[k]) - (a->len[k] < b->len[k]);
}

static int compare_entries(const void *pa, const void *pb)
{
  const sort_entry *a = pa, *b = pb;
  int c = compare_key(a, b, 0);
  if (c == 0)
    c = compare_key(a, b, 1);
  return c != 0 ? c : (a->row > b->row) - (a->row < b->row);
}

/* Pushes (as userdata) and returns the rows of res in byte order of their
 * first two columns (a NULL as an empty value), equal ones as sent. */
static const sort_entry *push_sorted(lua_State *L, const PGresult *res)
{
  int nrows = PQntuples(res), r, k;
  sort_entry *e = (sort_entry *)nc_newuserdata(L, sizeof(sort_entry) * (size_t)(nrows + 1));
  for (r = 0; r < nrows; r++) {
    for (k = 0; k < 2; k++) {
      e[r].key[k] = PQgetvalue(res, r, k);
      e[r].len[k] = PQgetlength(res, r, k);
      e[r].prefix[k] = prefix_of(e[r].key[k], e[r].len[k]);
    }
    e[r].row = r;
  }
  qsort(e, (size_t)nrows, sizeof *e, compare_entries);
  return e;
}

/* Pushes the rows of res as a list of tables: each column a field of the
 * row or of one of its subtables (push_field_names), so the SQL alone
 * decides the report's shape. NULL values are left out, and so is a
 * subtable whose fields are all NULL (an unowned sequence has no
 * owned_by). With share, rows whose subtable would hold the same values get
 * the same subtable: a report of 100k tables then holds a few hundred
 * privilege tables instead of 400k subtables (a quarter of the memory,
 * twice as fast to build); a row whose values equal the row before it
 * takes its subtable without a lookup. With sorted (and at least two
 * columns), the rows are listed in byte order of their first two
 * columns. Returns 0, pushing nothing, when the Lua stack has no room for
 * the result's columns and fields (LuaJIT's holds about 8000 values; a
 * result may have 1664 columns of 32 flags each): never raises. */
int nc_push_rows(lua_State *L, const PGresult *res, int share, int sorted)
{
  const sort_entry *order;
  int nrows = PQntuples(res), ncols = PQnfields(res), ngroups = 0, i, g, r, n;
  int list, groups, caches, lasts, top_fields = 0;
  /* Per column: its kind, group (-1: top level), first field name's stack
   * index and number of fields; per group: its columns (grouped in
   * members, from first[g], size[g] of them) and fields. */
  int top = lua_gettop(L);
  int *kind, *group_of, *names, *nfields, *size, *first, *members, *fields, *last_row;

  if (!lua_checkstack(L, 3 * ncols + 10))
    return 0;
  kind = (int *)nc_newuserdata(L, sizeof(int) * (size_t)(9 * ncols + 2));
  group_of = kind + ncols;
  names = group_of + ncols;
  nfields = names + ncols;
  size = nfields + ncols;
  first = size + ncols + 1;
  members = first + ncols + 1;
  fields = members + ncols;
  last_row = fields + ncols;
  order = sorted && ncols >= 2 ? push_sorted(L, res) : NULL;
  lua_createtable(L, nrows, 0);
  list = lua_gettop(L);
  for (i = 0; i < ncols; i++) {
    names[i] = lua_gettop(L) + 1;
    nfields[i] = push_field_names(L, PQfname(res, i), &group_of[i]);
    if (nfields[i] < 0) {
      lua_settop(L, top);
      return 0;
    }
    kind[i] = strchr(PQfname(res, i), '{') != NULL ? K_FLAGS : kind_of(PQftype(res, i));
    if (group_of[i] < 0)
      top_fields += nfields[i];
  }
  if (!lua_checkstack(L, 3 * ncols + 10)) {
    lua_settop(L, top);
    return 0;
  }
  groups = lua_gettop(L) + 1;
  for (i = 0; i < ncols; i++) {
    const char *name = PQfname(res, i);
    int len = group_of[i];
    if (len < 0)
      continue;
    for (g = 0; g < ngroups; g++) {
      size_t glen;
      const char *gname = lua_tolstring(L, groups + g, &glen);
      if ((int)glen == len && memcmp(gname, name, glen) == 0)
        break;
    }
    if (g == ngroups) {
      lua_pushlstring(L, name, (size_t)len);
      size[ngroups] = fields[ngroups] = 0;
      ngroups++;
    }
    group_of[i] = g;
    size[g]++;
    fields[g] += nfields[i];
  }
  for (g = 0, first[0] = 0; g < ngroups; g++)
    first[g + 1] = first[g] + size[g];
  for (g = 0; g < ngroups; g++)
    size[g] = 0;
  for (i = 0; i < ncols; i++)
    if (group_of[i] >= 0)
      members[first[group_of[i]] + size[group_of[i]]++] = i;
  caches = lua_gettop(L) + 1; /* per group: values key -> subtable */
  for (g = 0; g < ngroups; g++)
    lua_newtable(L);
  lasts = caches + ngroups; /* per group: the subtable of row last_row[g] */
  for (g = 0; g < ngroups; g++) {
    lua_pushnil(L);
    last_row[g] = -1;
  }

  for (n = 0; n < nrows; n++) {
    int row = lua_gettop(L) + 1;
    r = order != NULL ? order[n].row : n;
    lua_createtable(L, 0, top_fields + ngroups);
    for (i = 0; i < ncols; i++)
      if (group_of[i] < 0 && !PQgetisnull(res, r, i))
        set_fields(L, row, res, r, i, kind[i], names[i], nfields[i]);
    for (g = 0; g < ngroups; g++) {
      const int *cols = members + first[g];
      int j, filled = 0, sub;
      if (share && last_row[g] >= 0 && same_values(res, r, last_row[g], cols, size[g])) {
        if (!lua_isnil(L, lasts + g)) {
          lua_pushvalue(L, groups + g);
          lua_pushvalue(L, lasts + g);
          lua_rawset(L, row);
        }
        continue;
      }
      if (share) {
        last_row[g] = r;
        lua_pushnil(L);
        lua_replace(L, lasts + g);
        if (!push_values_key(L, res, r, cols, size[g]))
          continue; /* all NULL: no subtable */
        lua_pushvalue(L, -1);
        lua_rawget(L, caches + g);
        if (!lua_isnil(L, -1)) {
          lua_remove(L, -2);
          lua_pushvalue(L, -1);
          lua_replace(L, lasts + g);
          lua_pushvalue(L, groups + g);
          lua_insert(L, -2);
          lua_rawset(L, row);
          continue;
        }
        lua_pop(L, 1);
      }
      lua_createtable(L, 0, fields[g]); /* no rehash while filling */
      sub = lua_gettop(L);
      for (j = 0; j < size[g]; j++)
        if (!PQgetisnull(res, r, cols[j]))
          filled += set_fields(L, sub, res, r, cols[j], kind[cols[j]], names[cols[j]],
                               nfields[cols[j]]);
      if (share) { /* key, subtable: cache it */
        lua_pushvalue(L, -1);
        lua_replace(L, lasts + g);
        lua_pushvalue(L, -1);
        lua_insert(L, -3);
        lua_rawset(L, caches + g);
      } else if (filled == 0) {
        lua_pop(L, 1);
        continue;
      }
      lua_pushvalue(L, groups + g);
      lua_insert(L, -2);
      lua_rawset(L, row);
    }
    lua_rawseti(L, list, n + 1);
  }
  lua_settop(L, list);
  lua_remove(L, list - 1); /* the sort order, or the column arrays */
  if (order != NULL)
    lua_remove(L, list - 2); /* the column arrays, below it */
  return 1;
}

/* Sends what libpq has buffered; 1 done, 0 deadline, -1 connection error. */
static int flush(PGconn *pg, double deadline)
{
  for (;;) {
    int r = PQflush(pg), w;
    if (r == 0)
      return 1;
    if (r < 0)
      return -1;
    w = nc_wait_fd(PQsocket(pg), 2, deadline);
    if (w <= 0)
      return w;
    if (!PQconsumeInput(pg))
      return -1;
  }
}

/* Waits until PQgetResult will not block; 1 ready, 0 deadline, -1 error. */
static int await_result(PGconn *pg, double deadline)
{
  while (PQisBusy(pg)) {
    int w = nc_wait_fd(PQsocket(pg), 0, deadline);
    if (w <= 0)
      return w;
    if (!PQconsumeInput(pg))
      return -1;
  }
  return 1;
}

/* A failure in the middle of a protocol exchange leaves the connection in
 * an unknown state: it is closed, and the error says why. */
static int broken(nc_conn *c, int wait_rc, nc_error *e, nc_stage stage)
{
  nc_classify_query_failure(e, NULL, c->pg, wait_rc == 0, stage);
  nc_conn_close(c);
  return 0;
}

/* COPY is not conn:query's business: ends a COPY the statement started,
 * within the deadline (COPY TO: its data read and dropped; COPY FROM: ended
 * with an error, so the server rolls it back). 1 done, 0 deadline, -1 lost. */
static int refuse_copy(PGconn *pg, ExecStatusType st, double deadline)
{
  if (st == PGRES_COPY_IN) {
    int r;
    while ((r = PQputCopyEnd(pg, "neoconn: conn:query does not send COPY data")) == 0) {
      int w = nc_wait_fd(PQsocket(pg), 1, deadline);
      if (w <= 0)
        return w;
    }
    return r < 0 ? -1 : flush(pg, deadline);
  }
  if (st != PGRES_COPY_OUT)
    return -1; /* COPY BOTH: replication, never through conn:query */
  for (;;) {
    char *buf = NULL;
    int n = PQgetCopyData(pg, &buf, 1);
    if (buf != NULL)
      PQfreemem(buf);
    if (n == -1)
      return 1;
    if (n == -2)
      return -1;
    if (n == 0) {
      int w = nc_wait_fd(PQsocket(pg), 0, deadline);
      if (w <= 0)
        return w;
      if (!PQconsumeInput(pg))
        return -1;
    }
  }
}

/* Waits for the next result and takes it into a box on the stack (NULL at
 * a query's end); returns the wait's outcome as await_result does. */
static int next_result(lua_State *L, PGconn *pg, double deadline, PGresult **res)
{
  int w = await_result(pg, deadline);
  if (w <= 0)
    return w;
  *res = nc_take_result(L, pg);
  return 1;
}

/* Sends sql (several statements allowed when params is NULL), leaving the
 * rows of the last statement that returned rows on the stack. 1 on success;
 * 0 with e set, the connection closed if its state is unknown. */
static int run_simple(lua_State *L, nc_conn *c, const char *sql, int nparams,
                      const char *const *params, double deadline, nc_error *e)
{
  PGresult *res;
  int w, ok = 1, top = lua_gettop(L);
  int sent = params != NULL ? PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0)
                            : PQsendQuery(c->pg, sql);
  if (!sent)
    return broken(c, -1, e, NC_STAGE_QUERY);
  if ((w = flush(c->pg, deadline)) <= 0)
    return broken(c, w, e, NC_STAGE_QUERY);
  lua_newtable(L);
  for (;;) {
    if ((w = next_result(L, c->pg, deadline, &res)) <= 0) {
      lua_settop(L, top);
      return broken(c, w, e, NC_STAGE_QUERY);
    }
    if (res == NULL)
      break;
    if (PQresultStatus(res) == PGRES_COPY_IN || PQresultStatus(res) == PGRES_COPY_OUT
        || PQresultStatus(res) == PGRES_COPY_BOTH) {
      ExecStatusType st = PQresultStatus(res);
      nc_drop_result(L);
      if ((w = refuse_copy(c->pg, st, deadline)) <= 0) {
        lua_settop(L, top);
        return broken(c, w, e, NC_STAGE_QUERY);
      }
      if (ok) {
        nc_error_set(e, "query_failed", NC_STAGE_QUERY, "COPY is not supported by conn:query");
        nc_error_set_hint(e, nc_setting_hint("COPY"));
        ok = 0;
      }
      continue;
    }
    if (PQresultStatus(res) == PGRES_FATAL_ERROR && ok) {
      nc_classify_query_failure(e, res, c->pg, 0, NC_STAGE_QUERY);
      ok = 0;
    } else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
      if (nc_push_rows(L, res, 0, 0)) {
        lua_replace(L, -3);
      } else if (ok) { /* the rest is still read: the connection stays usable */
        nc_error_set(e, "query_failed", NC_STAGE_QUERY,
                     "the result has more columns and fields than this Lua can hold at once");
        nc_error_set_hint(e, nc_setting_hint("too wide"));
        ok = 0;
      }
    }
    nc_drop_result(L);
  }
  lua_pop(L, 1); /* the box of the final NULL */
  if (!ok)
    lua_settop(L, top);
  return ok;
}

/* conn:query(sql [, params [, opts]]) -> rows | nil, err
 * Without params the text may hold several statements; the rows of the last
 * one are returned. */
int nc_l_query(lua_State *L)
{
  nc_conn *c = nc_check_conn(L, 1);
  const char *sql = nc_check_text(L, 2, "sql", NULL);
  int nparams = 0, i;
  const char **params = NULL;
  double deadline;

  if (c->test.state != NC_TEST_NONE)
    luaL_argerror(L, 1, "a test is running on this connection: finish it first");
  lua_settop(L, 4);
  if (!lua_isnil(L, 3)) {
    int anchors;
    if (lua_type(L, 3) != LUA_TTABLE)
      luaL_argerror(L, 3, lua_pushfstring(L, "params: table expected, got %s", luaL_typename(L, 3)));
    if (lua_rawlen(L, 3) > NC_MAX_PARAMS)
      luaL_argerror(L, 3, lua_pushfstring(L, "params: at most %d parameters (the protocol's "
                                             "limit), got %d", NC_MAX_PARAMS,
                                          (int)lua_rawlen(L, 3)));
    nparams = (int)lua_rawlen(L, 3);
    params = (const char **)nc_newuserdata(L, sizeof(char *) * (size_t)(nparams + 1));
    lua_createtable(L, nparams, 0); /* the text of each parameter, kept alive here */
    anchors = lua_gettop(L);
    for (i = 0; i < nparams; i++) {
      size_t plen;
      lua_rawgeti(L, 3, i + 1);
      if (lua_type(L, -1) == LUA_TBOOLEAN) {
        lua_pushstring(L, lua_toboolean(L, -1) ? "t" : "f");
        lua_replace(L, -2);
      } else if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
        luaL_argerror(L, 3, lua_pushfstring(L, "params[%d]: string, number or boolean "
                                               "expected, got %s", i + 1, luaL_typename(L, -1)));
      }
      params[i] = lua_tolstring(L, -1, &plen);
      if (memchr(params[i], '\0', plen) != NULL)
        luaL_argerror(L, 3, lua_pushfstring(L, "params[%d]: contains a zero byte", i + 1));
      lua_rawseti(L, anchors, i + 1);
    }
  }
  deadline = nc_now() + nc_opt_timeout(L, 4, "query");
  if (c->pg == NULL || !c->ready)
    luaL_argerror(L, 1, "connection is closed");
  if (run_simple(L, c, sql, nparams, params, deadline, &c->query_error))
    return 1;
  lua_pushnil(L);
  nc_push_error(L, &c->query_error, NULL);
  nc_error_free(&c->query_error);
  return 2;
}
