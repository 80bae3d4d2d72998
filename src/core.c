/* neoconn.core: the C half of neoconn. `require("neoconn")` is the Lua
 * module lua/neoconn/init.lua, which re-exports these functions. */
#define _POSIX_C_SOURCE 200809L
#include <unistd.h>
#include "neoconn.h"

#define NC_VERSION "0.1.0"

/* isatty(fd) -> boolean: colour and progress output only on a terminal. */
static int l_isatty(lua_State *L)
{
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* clock() -> monotonic seconds, for timing tests and deadlines in Lua. */
static int l_clock(lua_State *L)
{
  lua_pushnumber(L, nc_now());
  return 1;
}

__attribute__((visibility("default"))) int luaopen_neoconn_core(lua_State *L)
{
  static const luaL_Reg functions[] = {
    { "test", nc_l_test },
    { "test_begin", nc_l_test_begin },
    { "requirements", nc_l_requirements },
    { "quote_ident", nc_l_quote_ident },
    { "parse_name", nc_l_parse_name },
    { "clock", l_clock },
    { "isatty", l_isatty },
    { NULL, NULL }
  };
  nc_register_box(L);
  nc_register_error_mt(L);
  nc_register_conn(L);
  nc_register_result(L);
  nc_register_test_methods(L);
  luaL_newlib(L, functions);
  nc_register_connect(L);
  lua_pushliteral(L, NC_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, PQlibVersion());
  lua_setfield(L, -2, "libpq_version");
  return 1;
}
