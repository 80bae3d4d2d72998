/* neoconn.core: the C half of neoconn. `require("neoconn")` is the Lua
 * module lua/neoconn/init.lua, which re-exports these functions. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <unistd.h>
#include "neoconn.h"

#define NC_VERSION "0.1.0"

/* isatty(fd) -> boolean: colour and progress output only on a terminal. */
static int l_isatty(lua_State *L)
{
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* poll(fds, modes, timeout) -> ready: waits until one of the sockets is
 * ready ("read" or "write", as test_step said) or timeout seconds pass;
 * ready[i] is true for each socket that is. For fleets outside nginx. */
static int l_poll(lua_State *L)
{
  int n, i, rc, ms;
  double timeout;
  struct pollfd *p;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  timeout = luaL_checknumber(L, 3);
  if (!(timeout >= 0) || !nc_finite(timeout))
    luaL_argerror(L, 3, "timeout: a finite number of seconds, 0 or more, expected");
  n = (int)lua_rawlen(L, 1);
  if ((int)lua_rawlen(L, 2) != n)
    luaL_argerror(L, 2, "one mode per socket expected");
  p = (struct pollfd *)nc_newuserdata(L, sizeof *p * (size_t)(n > 0 ? n : 1));
  for (i = 0; i < n; i++) {
    const char *mode;
    lua_rawgeti(L, 1, i + 1);
    lua_rawgeti(L, 2, i + 1);
    p[i].fd = (int)luaL_checkinteger(L, -2);
    mode = luaL_checkstring(L, -1);
    p[i].events = mode[0] == 'w' ? (POLLIN | POLLOUT) : POLLIN;
    p[i].revents = 0;
    lua_pop(L, 2);
  }
  ms = nc_ms(timeout, NC_DAY_MS);
  do {
    rc = poll(p, (nfds_t)n, ms);
  } while (rc < 0 && errno == EINTR);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushboolean(L, rc > 0 && p[i].revents != 0);
    lua_rawseti(L, -2, i + 1);
  }
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
  static const struct { const char *name; int value; } limits[] = {
    { "field", NC_MAX_FIELD }, { "target", NC_MAX_TARGET }, { "name", NC_MAX_NAME },
    { "list", NC_MAX_LIST }, { "object_name", NC_NAME_MAX },
  };
  size_t i;
  static const luaL_Reg functions[] = {
    { "test", nc_l_test },
    { "test_begin", nc_l_test_begin },
    { "requirements", nc_l_requirements },
    { "job_options", nc_l_job_options },
    { "quote_ident", nc_l_quote_ident },
    { "quote_literal", nc_l_quote_literal },
    { "redact", nc_l_redact },
    { "printable", nc_l_printable },
    { "parse_name", nc_l_parse_name },
    { "target_settings", nc_l_target_settings },
    { "clock", l_clock },
    { "isatty", l_isatty },
    { "poll", l_poll },
    { NULL, NULL }
  };
  nc_install_key_password_hook();
  nc_register_box(L);
  nc_register_error_mt(L);
  {
    static const luaL_Reg conn_methods[] = {
      { "query", nc_l_query },
      { "test_step", nc_l_test_step },
      { NULL, NULL }
    };
    nc_register_conn(L, conn_methods);
  }
  luaL_newlib(L, functions);
  nc_register_connect(L);
  nc_register_sandbox(L);
  lua_pushliteral(L, NC_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, NC_PROOF_AUTO_LIMIT);
  lua_setfield(L, -2, "proof_auto_limit");
  /* The sizes the core accepts, for the Lua layer to check the same. */
  lua_createtable(L, 0, (int)(sizeof limits / sizeof limits[0]));
  for (i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    lua_pushinteger(L, limits[i].value);
    lua_setfield(L, -2, limits[i].name);
  }
  lua_setfield(L, -2, "limits");
  lua_pushinteger(L, PQlibVersion());
  lua_setfield(L, -2, "libpq_version");
  return 1;
}
