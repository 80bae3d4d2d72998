/* neoconn.requirements(kind [, opts]): what a sync job's statements need,
 * as PostgreSQL enforces it. Each entry is proven by a spec that runs the
 * statement as a role granted exactly these and with each one revoked. */
#include <string.h>
#include "neoconn.h"

enum { ALWAYS, IF_UPDATE, IF_TRUNCATE, IF_RESET_SEQUENCES, IF_INIT_SCHEMA };
enum { SRC = 1, DST = 2 };

typedef struct {
  int kinds;            /* SRC, DST or both */
  int when;             /* an option that switches it on */
  const char *id;       /* stable name, used by policy rules */
  const char *object_type;
  const char *privileges[3];
  const char *applies_to;
  int columns_suffice;  /* a grant on every column does as well */
  int optional;         /* needed only in some cases; a warning when missing */
  const char *reason;
} requirement;

static const requirement all[] = {
  { SRC | DST, ALWAYS, "database.connect", "database", { "CONNECT" }, "the database", 0, 0,
    "open a session (PUBLIC has CONNECT unless it was revoked)" },
  { SRC | DST, ALWAYS, "schema.usage", "schema", { "USAGE" }, "schemas of the synced tables",
    0, 0, "look up any object in the schema" },
  { SRC, ALWAYS, "table.select", "table", { "SELECT" }, "synced tables", 1, 0,
    "SELECT <all columns> FROM t" },
  { SRC, ALWAYS, "policy.select", "policy", { "SELECT" },
    "synced tables where row-level security applies to the role", 0, 1,
    "row-level security hides the rows no permissive SELECT policy lets the role see; "
    "BYPASSRLS or a policy makes the copy complete" },
  { DST, ALWAYS, "table.insert", "table", { "INSERT" }, "synced tables", 1, 0,
    "INSERT INTO t (<all columns>) VALUES (...) ON CONFLICT DO NOTHING" },
  { DST, ALWAYS, "policy.insert", "policy", { "INSERT" },
    "synced tables where row-level security applies to the role", 0, 0,
    "with row-level security and no permissive INSERT policy for the role every insert fails" },
  { DST, IF_UPDATE, "table.update", "table", { "UPDATE" }, "synced tables", 1, 0,
    "INSERT ... ON CONFLICT (<primary key>) DO UPDATE SET c = EXCLUDED.c" },
  { DST, IF_UPDATE, "table.select_upsert", "table", { "SELECT" }, "synced tables", 1, 0,
    "ON CONFLICT (<primary key>) DO UPDATE reads the key and every EXCLUDED column it sets" },
  { DST, IF_UPDATE, "policy.update", "policy", { "UPDATE", "SELECT" },
    "synced tables where row-level security applies to the role", 0, 0,
    "ON CONFLICT DO UPDATE must see and update the existing row through permissive policies" },
  { DST, IF_TRUNCATE, "table.truncate", "table", { "TRUNCATE" }, "synced tables", 0, 0,
    "TRUNCATE t before the copy" },
  { DST, IF_RESET_SEQUENCES, "sequence.update", "sequence", { "UPDATE" },
    "sequences owned by columns of the synced tables", 0, 0,
    "setval() moves each sequence past the copied values" },
  { DST, IF_INIT_SCHEMA, "schema.create", "schema", { "CREATE" }, "schemas of the synced tables",
    0, 0, "CREATE TABLE for tables that do not exist yet" },
  { DST, IF_INIT_SCHEMA, "database.create", "database", { "CREATE" },
    "the database, when a schema does not exist yet", 0, 0, "CREATE SCHEMA for a missing schema" },
  { DST, ALWAYS, "sequence.usage", "sequence", { "USAGE" },
    "sequences used by column defaults of the synced tables", 0, 1,
    "only when a row leaves a serial column to its default (nextval); the copy sets every "
    "column explicitly" },
  { DST, ALWAYS, "function.execute", "function", { "EXECUTE" },
    "functions called by column defaults of the synced tables", 0, 1,
    "only when a row leaves such a column to its default" },
};

static int opt_bool(lua_State *L, int opts, const char *key)
{
  int v;
  if (lua_isnoneornil(L, opts))
    return 0;
  lua_getfield(L, opts, key);
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
    luaL_argerror(L, opts, lua_pushfstring(L, "%s must be a boolean, got %s", key,
                                           luaL_typename(L, -1)));
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static void check_keys(lua_State *L, int opts)
{
  static const char *const known[] = { "truncate", "init_schema", "reset_sequences",
                                       "on_conflict", NULL };
  lua_pushnil(L);
  while (lua_next(L, opts) != 0) {
    const char *const *k;
    int found = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (k = known; *k != NULL; k++)
        found |= strcmp(*k, lua_tostring(L, -2)) == 0;
    if (!found)
      luaL_argerror(L, opts, lua_pushfstring(L, "unknown option '%s'",
                                             lua_type(L, -2) == LUA_TSTRING
                                               ? lua_tostring(L, -2) : luaL_typename(L, -2)));
    lua_pop(L, 1);
  }
}

int nc_l_requirements(lua_State *L)
{
  static const char *const kinds[] = { "source", "destination", NULL };
  static const char *const conflicts[] = { "nothing", "update", NULL };
  int kind = luaL_checkoption(L, 1, NULL, kinds) == 0 ? SRC : DST;
  int on[5] = { 1, 0, 0, 0, 0 };
  size_t i;
  int n = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_keys(L, 2);
    lua_getfield(L, 2, "on_conflict");
    on[IF_UPDATE] = luaL_checkoption(L, -1, "nothing", conflicts) == 1;
    lua_pop(L, 1);
    on[IF_TRUNCATE] = opt_bool(L, 2, "truncate");
    on[IF_RESET_SEQUENCES] = opt_bool(L, 2, "reset_sequences");
    on[IF_INIT_SCHEMA] = opt_bool(L, 2, "init_schema");
    if (kind == SRC && (on[IF_UPDATE] || on[IF_TRUNCATE] || on[IF_RESET_SEQUENCES]
                        || on[IF_INIT_SCHEMA]))
      luaL_argerror(L, 2, "truncate, init_schema, reset_sequences and on_conflict apply to "
                          "destinations only");
  }
  lua_newtable(L);
  for (i = 0; i < sizeof all / sizeof all[0]; i++) {
    const requirement *r = &all[i];
    int p;
    if (!(r->kinds & kind) || !on[r->when])
      continue;
    lua_createtable(L, 0, 8);
    lua_pushstring(L, r->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, r->object_type);
    lua_setfield(L, -2, "object_type");
    lua_newtable(L);
    for (p = 0; p < 3 && r->privileges[p] != NULL; p++) {
      lua_pushstring(L, r->privileges[p]);
      lua_rawseti(L, -2, p + 1);
    }
    lua_setfield(L, -2, "privileges");
    lua_pushstring(L, r->applies_to);
    lua_setfield(L, -2, "applies_to");
    lua_pushstring(L, r->reason);
    lua_setfield(L, -2, "reason");
    lua_pushboolean(L, r->optional);
    lua_setfield(L, -2, "optional");
    lua_pushboolean(L, r->columns_suffice);
    lua_setfield(L, -2, "columns_suffice");
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}
