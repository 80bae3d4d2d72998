/* Lua 5.1/LuaJIT compatibility for the few 5.2+ API calls neoconn uses.
 * Helpers are renamed (nc_compat_*) and hidden so they never clash with
 * symbols that LuaJIT itself exports under the 5.2 names. */
#ifndef NEOCONN_COMPAT_H
#define NEOCONN_COMPAT_H

#include "lua.h"
#include "lauxlib.h"

#if !defined(LUA_VERSION_NUM) || LUA_VERSION_NUM < 502

#define luaL_setfuncs nc_compat_setfuncs
#define luaL_testudata nc_compat_testudata
__attribute__((visibility("hidden"))) void nc_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
__attribute__((visibility("hidden"))) void *nc_compat_testudata(lua_State *L, int i, const char *tname);

/* LuaJIT 2.1's lauxlib.h has these two already. */
#ifndef luaL_newlibtable
#define luaL_newlibtable(L, l) lua_createtable(L, 0, sizeof(l) / sizeof((l)[0]) - 1)
#endif
#ifndef luaL_newlib
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
#endif
#define lua_rawlen(L, i) lua_objlen(L, i)
#define nc_newuserdata(L, size) lua_newuserdata(L, size)
#define nc_absindex(L, i) (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#define nc_setmetatable(L, name) (luaL_getmetatable(L, name), lua_setmetatable(L, -2))

#else

#if LUA_VERSION_NUM >= 504
#define nc_newuserdata(L, size) lua_newuserdatauv(L, size, 0)
#else
#define nc_newuserdata(L, size) lua_newuserdata(L, size)
#endif
#define nc_absindex(L, i) lua_absindex(L, i)
#define nc_setmetatable(L, name) luaL_setmetatable(L, name)

#endif

/* lua_isinteger exists from 5.3 on; before that a number is an integer
 * when it has no fractional part. */
#if defined(LUA_VERSION_NUM) && LUA_VERSION_NUM >= 503
#define nc_isinteger(L, i) lua_isinteger(L, i)
#else
#define nc_isinteger(L, i) \
  (lua_type(L, i) == LUA_TNUMBER && lua_tonumber(L, i) == (lua_Number)(lua_Integer)lua_tonumber(L, i))
#endif

#endif
