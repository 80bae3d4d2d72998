/* Query results to Lua rows, and the two ways neoconn runs SQL: a pipeline
 * of read-only catalog queries sent in one round trip, and a plain query
 * (conn:query). Every PGresult is held in a box while Lua code runs. */
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
#define TEXTARRAYOID 1009

enum { K_TEXT, K_BOOL, K_INT, K_NUM, K_ARRAY };

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

#define MAX_COLUMNS 64
#define MAX_GROUPS 8

/* Pushes the rows of res as a list of tables. A column named "a.b" becomes
 * field b of subtable a, so the SQL alone decides the report's shape.
 * NULL values are left out. */
void nc_push_rows(lua_State *L, const PGresult *res)
{
  int nrows = PQntuples(res), ncols = PQnfields(res);
  int group_of[MAX_COLUMNS], kind[MAX_COLUMNS], ngroups = 0, i, r, keys, groups;
  int top_fields = 0;

  if (ncols > MAX_COLUMNS)
    ncols = MAX_COLUMNS;
  luaL_checkstack(L, ncols + MAX_GROUPS + 8, "too many result columns");
  lua_createtable(L, nrows, 0);
  keys = lua_gettop(L) + 1;
  /* Leaf names as Lua strings on the stack, then the group names. */
  for (i = 0; i < ncols; i++) {
    const char *name = PQfname(res, i), *dot = strchr(name, '.');
    kind[i] = kind_of(PQftype(res, i));
    lua_pushstring(L, dot != NULL ? dot + 1 : name);
    group_of[i] = -1;
    if (dot != NULL) {
      group_of[i] = (int)(dot - name); /* prefix length, resolved below */
    } else {
      top_fields++;
    }
  }
  groups = lua_gettop(L) + 1;
  for (i = 0; i < ncols; i++) {
    const char *name = PQfname(res, i);
    int g, len = group_of[i];
    if (len < 0)
      continue;
    for (g = 0; g < ngroups; g++) {
      size_t glen;
      const char *gname = lua_tolstring(L, groups + g, &glen);
      if ((int)glen == len && memcmp(gname, name, glen) == 0)
        break;
    }
    if (g == ngroups) {
      if (ngroups == MAX_GROUPS) {
        group_of[i] = -1;
        continue;
      }
      lua_pushlstring(L, name, (size_t)len);
      ngroups++;
    }
    group_of[i] = g;
  }

  for (r = 0; r < nrows; r++) {
    int row = lua_gettop(L) + 1;
    lua_createtable(L, 0, top_fields + ngroups);
    for (i = 0; i < ngroups; i++)
      lua_createtable(L, 0, 4);
    for (i = 0; i < ncols; i++) {
      const char *v;
      int target = group_of[i] < 0 ? row : row + 1 + group_of[i];
      if (PQgetisnull(res, r, i))
        continue;
      v = PQgetvalue(res, r, i);
      lua_pushvalue(L, keys + i);
      switch (kind[i]) {
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
      lua_rawset(L, target);
    }
    for (i = ngroups - 1; i >= 0; i--) {
      lua_pushvalue(L, groups + i);
      lua_insert(L, -2);
      lua_rawset(L, row);
    }
    lua_rawseti(L, keys - 1, r + 1);
  }
  lua_settop(L, keys - 1);
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
static int broken(nc_conn *c, int wait_rc, nc_error *e)
{
  nc_classify_query_failure(e, NULL, c->pg, wait_rc == 0);
  nc_conn_close(c);
  return 0;
}

/* Takes the next result into a box on the stack; NULL at a query's end. */
static PGresult *next_result(lua_State *L, PGconn *pg)
{
  PGresult **box = nc_new_result_box(L);
  *box = PQgetResult(pg);
  return *box;
}

static void drop_result(lua_State *L)
{
  PGresult **box = (PGresult **)lua_touserdata(L, -1);
  PQclear(*box);
  *box = NULL;
  lua_pop(L, 1);
}

int nc_run_readonly(lua_State *L, nc_conn *c, const nc_query *queries, int nqueries, int nparams,
                    const char *const *params, double deadline, nc_error *e)
{
  static const Oid types[] = { TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID };
  PGconn *pg = c->pg;
  int top = lua_gettop(L), i, w, ok = 1;
  char timeout_ms[32];
  const char *settings[1];
  double left = deadline - nc_now();

  if (nparams > 4)
    luaL_error(L, "neoconn: too many query parameters");
  sprintf(timeout_ms, "%ld", left > 0.001 ? (long)(left * 1000.0) : 1L);
  settings[0] = timeout_ms;
  if (!PQenterPipelineMode(pg)
      || !PQsendQueryParams(pg, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", 0, NULL, NULL,
                            NULL, NULL, 0)
      || !PQsendQueryParams(pg, "SELECT pg_catalog.set_config('statement_timeout', $1, true), "
                                "pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true), "
                                "pg_catalog.set_config('jit', 'off', true)",
                            1, NULL, settings, NULL, NULL, 0))
    return broken(c, -1, e);
  for (i = 0; i < nqueries; i++)
    if (!PQsendQueryParams(pg, queries[i].sql, nparams, types, params, NULL, NULL, 0))
      return broken(c, -1, e);
  if (!PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(pg))
    return broken(c, -1, e);
  if ((w = flush(pg, deadline)) <= 0)
    return broken(c, w, e);

  /* BEGIN, settings, the queries, COMMIT: one result each, then the sync. */
  for (i = -2; i <= nqueries; i++) {
    PGresult *res;
    ExecStatusType st;
    if ((w = await_result(pg, deadline)) <= 0) {
      lua_settop(L, top);
      return broken(c, w, e);
    }
    res = next_result(L, pg);
    st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR && ok) {
      nc_classify_query_failure(e, res, pg, 0);
      ok = 0;
    }
    if (i >= 0 && i < nqueries) {
      if (st == PGRES_TUPLES_OK) {
        nc_push_rows(L, res);
        lua_insert(L, -2);
      } else {
        lua_newtable(L);
        lua_insert(L, -2);
      }
    }
    drop_result(L);
    if ((w = await_result(pg, deadline)) <= 0) {
      lua_settop(L, top);
      return broken(c, w, e);
    }
    if (next_result(L, pg) != NULL) { /* every query yields exactly one result */
      drop_result(L);
      lua_settop(L, top);
      nc_error_set(e, "query_failed", NC_STAGE_INTROSPECT, "unexpected extra result");
      nc_conn_close(c);
      return 0;
    }
    lua_pop(L, 1);
  }
  if ((w = await_result(pg, deadline)) <= 0) {
    lua_settop(L, top);
    return broken(c, w, e);
  }
  if (PQresultStatus(next_result(L, pg)) != PGRES_PIPELINE_SYNC)
    ok = ok ? (nc_classify_query_failure(e, NULL, pg, 0), 0) : 0;
  drop_result(L);
  if (!PQexitPipelineMode(pg) && ok) {
    nc_classify_query_failure(e, NULL, pg, 0);
    ok = 0;
  }
  if (!ok) {
    lua_settop(L, top);
    if (strcmp(e->code, "timeout") == 0)
      nc_conn_close(c);
  }
  return ok;
}

/* conn:query(sql [, params [, opts]]) -> rows | nil, err
 * Without params the text may hold several statements; the rows of the last
 * one are returned. */
static int l_query(lua_State *L)
{
  nc_conn *c = nc_check_conn(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  int nparams = 0, i, w = 1, sent;
  const char **params = NULL;
  double deadline;
  nc_error e;

  lua_settop(L, 4);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    nparams = (int)lua_rawlen(L, 3);
    params = (const char **)nc_newuserdata(L, sizeof(char *) * (size_t)(nparams + 1));
    for (i = 0; i < nparams; i++) {
      lua_rawgeti(L, 3, i + 1);
      if (lua_type(L, -1) == LUA_TBOOLEAN)
        params[i] = lua_toboolean(L, -1) ? "t" : "f";
      else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
        params[i] = lua_tostring(L, -1); /* stays alive: anchored on the stack */
      else
        luaL_argerror(L, 3, lua_pushfstring(L, "parameter %d must be a string, number or "
                                               "boolean", i + 1));
    }
  }
  deadline = nc_now() + nc_opt_timeout(L, 4, "query");
  if (c->pg == NULL || !c->ready)
    luaL_argerror(L, 1, "connection is closed");
  sent = params != NULL ? PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0)
                        : PQsendQuery(c->pg, sql);
  e.code = NULL;
  if (!sent || (w = flush(c->pg, deadline)) <= 0) {
    broken(c, sent ? w : -1, &e);
  } else {
    lua_newtable(L);
    for (;;) {
      PGresult *res;
      ExecStatusType st;
      if ((w = await_result(c->pg, deadline)) <= 0) {
        broken(c, w, &e);
        break;
      }
      res = next_result(L, c->pg);
      if (res == NULL) {
        lua_pop(L, 1);
        break;
      }
      st = PQresultStatus(res);
      if (st == PGRES_FATAL_ERROR && e.code == NULL) {
        nc_classify_query_failure(&e, res, c->pg, 0);
        e.code = "query_failed";
      } else if (st == PGRES_TUPLES_OK) {
        nc_push_rows(L, res);
        lua_replace(L, -3);
      }
      drop_result(L);
    }
  }
  if (e.code != NULL) {
    lua_pushnil(L);
    nc_push_error(L, &e, NULL);
    return 2;
  }
  return 1;
}

void nc_register_result(lua_State *L)
{
  /* conn:query lives here with the machinery it uses. */
  luaL_getmetatable(L, NC_CONN_MT);
  lua_getfield(L, -1, "__index");
  lua_pushcfunction(L, l_query);
  lua_setfield(L, -2, "query");
  lua_pop(L, 2);
}
