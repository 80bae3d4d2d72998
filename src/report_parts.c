/* The pieces a report is built of, shared by the test's report (report.c)
 * and the replication part of it (replication.c): below both. */
#include "neoconn.h"

/* t[key] = v for the table at index t. */
void nc_set_number(lua_State *L, int t, const char *key, double v)
{
  t = nc_absindex(L, t);
  lua_pushnumber(L, v);
  lua_setfield(L, t, key);
}

void nc_set_bool(lua_State *L, int t, const char *key, int v)
{
  t = nc_absindex(L, t);
  lua_pushboolean(L, v);
  lua_setfield(L, t, key);
}

double nc_report_ms(double seconds)
{
  return (double)(long)(seconds * 100000.0 + 0.5) / 100.0;
}

void nc_add_stage(lua_State *L, int stages, const char *name, int ok, double seconds)
{
  stages = nc_absindex(L, stages);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  nc_set_bool(L, -1, "ok", ok);
  nc_set_number(L, -1, "ms", nc_report_ms(seconds));
  lua_pushvalue(L, -1);
  lua_rawseti(L, stages, (int)lua_rawlen(L, stages) + 1);
}

/* Pushes the list of row lists of the test in progress. */
int nc_push_test_lists(lua_State *L, const nc_conn *c)
{
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->test.state_ref);
  lua_getfield(L, -1, "lists");
  lua_remove(L, -2);
  return lua_gettop(L);
}

void nc_push_first_row(lua_State *L, int lists, int i)
{
  lua_rawgeti(L, lists, i);
  if (lua_istable(L, -1))
    lua_rawgeti(L, -1, 1);
  else
    lua_pushnil(L);
  lua_remove(L, -2);
}
