/* A box owns one libpq allocation (a PGresult, a PQconninfoOption array)
 * while Lua code that may raise runs: if it raises, the garbage collector
 * frees the allocation, so nothing leaks on any path. */
#include "neoconn.h"

#define NC_BOX_MT "neoconn.box"

typedef struct {
  void *p;
  void (*release)(void *);
} nc_box;

static int box_gc(lua_State *L)
{
  nc_box *b = (nc_box *)luaL_checkudata(L, 1, NC_BOX_MT);
  if (b->p != NULL) {
    b->release(b->p);
    b->p = NULL;
  }
  return 0;
}

static void **new_box(lua_State *L, void (*release)(void *))
{
  nc_box *b = (nc_box *)nc_newuserdata(L, sizeof *b);
  b->p = NULL;
  b->release = release;
  nc_setmetatable(L, NC_BOX_MT);
  return &b->p;
}

static void release_result(void *p)
{
  PQclear((PGresult *)p);
}

static void release_options(void *p)
{
  PQconninfoFree((PQconninfoOption *)p);
}

PGresult *nc_take_result(lua_State *L, PGconn *pg)
{
  PGresult **box = (PGresult **)new_box(L, release_result);
  *box = PQgetResult(pg);
  return *box;
}

void nc_drop_result(lua_State *L)
{
  nc_box *b = (nc_box *)luaL_checkudata(L, -1, NC_BOX_MT);
  PQclear((PGresult *)b->p);
  b->p = NULL;
  lua_pop(L, 1);
}

PQconninfoOption **nc_new_options_box(lua_State *L)
{
  return (PQconninfoOption **)new_box(L, release_options);
}

void **nc_new_box(lua_State *L, void (*release)(void *))
{
  return new_box(L, release);
}

void nc_register_box(lua_State *L)
{
  luaL_newmetatable(L, NC_BOX_MT);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}
