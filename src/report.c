/* The report of a test, built from the rows its pipeline read (kept in the
 * test's Lua state) and the connection's record of the handshake. */
#include <string.h>
#include "neoconn.h"

/* Pushes the stages list: the handshake stages from the connection's
 * record, then introspection when it ran (introspect_seconds >= 0). */
static void push_stages(lua_State *L, const nc_conn *c, const nc_error *failure,
                        double introspect_seconds)
{
  int s, stages;
  double prev = 0;
  nc_stage failed_at = failure != NULL ? failure->stage : NC_STAGE_COUNT;
  lua_newtable(L);
  stages = lua_gettop(L);
  if (failed_at == NC_STAGE_CONFIG) {
    nc_add_stage(L, stages, "config", 0, 0);
    lua_pop(L, 1);
    return;
  }
  for (s = NC_STAGE_CONNECT; s <= NC_STAGE_SESSION && s <= (int)failed_at; s++) {
    double done = c->stage_done[s];
    int ok = (int)failed_at > s;
    /* Not used: never negotiated, or negotiated and refused (sslmode=prefer
     * or allow then went on in plain text). */
    if (s == NC_STAGE_TLS && ok && (!c->tls_seen || (c->pg != NULL && !PQsslInUse(c->pg)))) {
      nc_add_stage(L, stages, nc_stage_names[s], ok, 0);
      nc_set_bool(L, -1, "skipped", 1);
    } else {
      if (done < 0)
        done = ok ? prev : c->failed_after;
      nc_add_stage(L, stages, nc_stage_names[s], ok, done - prev);
      prev = done;
    }
    lua_pop(L, 1);
  }
  if (failed_at == NC_STAGE_INTROSPECT || introspect_seconds >= 0) {
    nc_add_stage(L, stages, "introspect", failed_at != NC_STAGE_INTROSPECT,
                 introspect_seconds >= 0 ? introspect_seconds : 0);
    lua_pop(L, 1);
  }
}

/* session.host, port and sslmode: what libpq actually used, whether they
 * came from a table, a URL, a service file or the environment. */
static void set_endpoint(lua_State *L, int session, const nc_conn *c)
{
  PQconninfoOption *o;
  PQconninfoOption **box = nc_new_options_box(L);
  lua_pushstring(L, c->host != NULL ? c->host : "");
  lua_setfield(L, session, "host");
  lua_pushstring(L, c->port != NULL ? c->port : "");
  lua_setfield(L, session, "port");
  if (c->pg != NULL && PQhostaddr(c->pg) != NULL && *PQhostaddr(c->pg) != '\0') {
    lua_pushstring(L, PQhostaddr(c->pg));
    lua_setfield(L, session, "hostaddr");
  }
  *box = PQconninfo(c->pg);
  for (o = *box; o != NULL && o->keyword != NULL; o++) {
    if (strcmp(o->keyword, "sslmode") == 0 && o->val != NULL) {
      lua_pushstring(L, o->val);
      lua_setfield(L, session, "sslmode");
    }
  }
  PQconninfoFree(*box);
  *box = NULL;
  lua_pop(L, 1);
}

static void push_ssl(lua_State *L, PGconn *pg)
{
  const char *v;
  lua_createtable(L, 0, 3);
  nc_set_bool(L, -1, "in_use", PQsslInUse(pg));
  if (PQsslInUse(pg)) {
    if ((v = PQsslAttribute(pg, "protocol")) != NULL) {
      lua_pushstring(L, v);
      lua_setfield(L, -2, "protocol");
    }
    if ((v = PQsslAttribute(pg, "cipher")) != NULL) {
      lua_pushstring(L, v);
      lua_setfield(L, -2, "cipher");
    }
    nc_set_certificates(L, pg, lua_gettop(L));
  }
}

/* report[key] = list[1][key]: a subtable of the first row. */
static void first_row_field(lua_State *L, int list, const char *key, int report)
{
  lua_rawgeti(L, list, 1);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, key);
    lua_setfield(L, report, key);
  }
  lua_pop(L, 1);
}

/* Pushes schema .. "\0" .. name of the row on top. */
static void push_row_key(lua_State *L, const char *schema_field, const char *name_field)
{
  lua_getfield(L, -1, schema_field);
  lua_pushlstring(L, "", 1);
  lua_getfield(L, -3, name_field);
  lua_concat(L, 3);
}

/* Pushes a table of the rows of the list at index list (nil: none) by
 * their schema .. "\0" .. name. */
static void push_rows_by_name(lua_State *L, int list)
{
  int i, n = lua_istable(L, list) ? (int)lua_rawlen(L, list) : 0;
  list = nc_absindex(L, list);
  lua_createtable(L, 0, n);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    push_row_key(L, "schema", "name");
    lua_insert(L, -2);
    lua_rawset(L, -3);
  }
}

/* Calls apply for each of report.tables, with the table and its row in
 * the index (push_rows_by_name; nil if none) on top of the stack, and pops
 * both after it. */
static void join_tables(lua_State *L, int report, int index,
                        void (*apply)(lua_State *L, void *data), void *data)
{
  int tables, i, n;
  index = nc_absindex(L, index);
  lua_getfield(L, report, "tables");
  tables = lua_gettop(L);
  n = (int)lua_rawlen(L, tables);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, tables, i);
    push_row_key(L, "schema", "name");
    lua_rawget(L, index);
    apply(L, data);
    lua_settop(L, tables);
  }
  lua_pop(L, 1);
}

static void take_columns(lua_State *L, void *data)
{
  (void)data;
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "columns");
    lua_setfield(L, -3, "columns");
  }
}

/* Pushes the shared columns subtable for privileges subtable `priv` (nil
 * counts as no privilege): `all` or `none` for SELECT, INSERT and UPDATE,
 * one subtable per combination (cached in by_bits). */
static void push_columns_of(lua_State *L, int priv, int by_bits)
{
  static const char *const privileges[] = { "SELECT", "INSERT", "UPDATE" };
  int p, bits = 0;
  for (p = 0; p < 3 && lua_istable(L, priv); p++) {
    lua_getfield(L, priv, privileges[p]);
    bits |= lua_toboolean(L, -1) << p;
    lua_pop(L, 1);
  }
  lua_rawgeti(L, by_bits, bits + 1);
  if (!lua_isnil(L, -1))
    return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 3);
  for (p = 0; p < 3; p++) {
    lua_pushstring(L, bits & (1 << p) ? "all" : "none");
    lua_setfield(L, -2, privileges[p]);
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, by_bits, bits + 1);
}

/* Each table's columns as its privileges give them: without a column ACL
 * a column privilege is the table's, on every column or none (the tables
 * query leaves them out: three values less a row, 12 ms of the query at
 * 100k tables). The few tables with column ACLs then get theirs from
 * add_column_acls. Tables whose privileges are equal share one privileges
 * subtable (nc_push_rows), so the columns are worked out once per
 * privileges subtable, not read again from every row. */
static void add_table_columns(lua_State *L, int report)
{
  int tables, priv_key, columns_key, by_priv, by_bits, i, n;
  lua_getfield(L, report, "tables");
  tables = lua_gettop(L);
  n = lua_istable(L, tables) ? (int)lua_rawlen(L, tables) : 0;
  lua_pushliteral(L, "privileges");
  priv_key = lua_gettop(L);
  lua_pushliteral(L, "columns");
  columns_key = lua_gettop(L);
  lua_newtable(L);
  by_priv = lua_gettop(L); /* privileges subtable -> columns subtable */
  lua_createtable(L, 8, 0);
  by_bits = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    int row = lua_gettop(L) + 1, priv = row + 1;
    lua_rawgeti(L, tables, i);
    lua_pushvalue(L, priv_key);
    lua_rawget(L, row);
    if (lua_isnil(L, priv)) {
      push_columns_of(L, priv, by_bits);
    } else {
      lua_pushvalue(L, priv);
      lua_rawget(L, by_priv);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        push_columns_of(L, priv, by_bits);
        lua_pushvalue(L, priv);
        lua_pushvalue(L, -2);
        lua_rawset(L, by_priv);
      }
    }
    lua_pushvalue(L, columns_key);
    lua_insert(L, -2);
    lua_rawset(L, row);
    lua_settop(L, row - 1);
  }
  lua_settop(L, tables - 1);
}

/* The columns of the tables with column ACLs, read by a query of their
 * own: each such table gets that row's columns subtable (replaced, not
 * changed: equal subtables are shared between tables). */
static void add_column_acls(lua_State *L, int report, int lists)
{
  lua_rawgeti(L, lists, Q_COLUMN_ACLS + 1);
  if (!lua_istable(L, -1) || lua_rawlen(L, -1) == 0) {
    lua_pop(L, 1);
    return;
  }
  push_rows_by_name(L, -1);
  join_tables(L, report, -1, take_columns, NULL);
  lua_pop(L, 2);
}

/* A table's proof: "executor" with its statement (and the server's refusal)
 * when its row in the proof's rows is on top, else "catalog". */
static void take_proof(lua_State *L, void *data)
{
  if (lua_istable(L, -1)) {
    ++*(int *)data;
    lua_getfield(L, -1, "statement");
    lua_setfield(L, -3, "statement");
    lua_getfield(L, -1, "sqlstate");
    if (!lua_isnil(L, -1)) {
      lua_createtable(L, 0, 2);
      lua_insert(L, -2);
      lua_setfield(L, -2, "sqlstate");
      lua_getfield(L, -2, "message");
      lua_setfield(L, -2, "message");
      lua_setfield(L, -3, "refused");
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushstring(L, lua_istable(L, -1) ? "executor" : "catalog");
  lua_setfield(L, -3, "proof");
}

/* report.proof = { method, status, tables, limit [, error] }, and each
 * table's proof ("executor" or "catalog"), statement and refusal. */
static void add_proof(lua_State *L, nc_conn *c, int report, int lists)
{
  int proof, proven, found = 0;
  const char *status = "off";
  lua_createtable(L, 0, 5);
  proof = lua_gettop(L);
  if (c->test.proof_limit > 0 && !c->pipe.tolerated_failed)
    lua_rawgeti(L, lists, Q_PROOF_ROWS + 1);
  else
    lua_pushnil(L);
  push_rows_by_name(L, -1);
  lua_remove(L, -2);
  proven = proof + 1;
  if (c->test.proof_limit > 0 && c->pipe.tolerated_failed) {
    status = "unavailable";
    nc_push_error(L, &c->tolerated_error, NULL);
    lua_setfield(L, proof, "error");
  } else if (c->test.proof_limit > 0) {
    lua_rawgeti(L, lists, Q_PROOF_STATUS + 1);
    lua_rawgeti(L, -1, 1);
    lua_getfield(L, -1, "tables");
    lua_setfield(L, proof, "tables");
    lua_getfield(L, -1, "status");
    status = lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : "unavailable";
    lua_setfield(L, proof, "status"); /* status stays anchored in the row */
    lua_pop(L, 2);
  }
  lua_pushstring(L, status);
  lua_setfield(L, proof, "status");
  lua_pushnumber(L, (double)c->test.proof_limit);
  lua_setfield(L, proof, "limit");
  join_tables(L, report, proven, take_proof, &found);
  lua_pushstring(L, found > 0 ? "executor" : "catalog");
  lua_setfield(L, proof, "method");
  lua_settop(L, proof);
  lua_setfield(L, report, "proof");
  lua_settop(L, proof - 1);
}

void nc_push_test_report(lua_State *L, nc_conn *c)
{
  double now = nc_now();
  /* Introspection ended where the replication phase began, if it ran. */
  double ended = c->test.repl_phase != 0 ? c->test.repl_started : now;
  double introspected = ended - c->test.introspect_started;
  int report, lists;
  lua_newtable(L);
  report = lua_gettop(L);
  if (c->pipe.failed) {
    nc_set_bool(L, report, "ok", 0);
    nc_push_error(L, &c->error, NULL);
    lua_setfield(L, report, "error");
    push_stages(L, c, &c->error, introspected);
    lua_setfield(L, report, "stages");
  } else {
    lists = nc_push_test_lists(L, c);
    nc_set_bool(L, report, "ok", 1);
    push_stages(L, c, NULL, introspected);
    lua_setfield(L, report, "stages");
    {
      static const struct { int q; const char *field; int first_row; } parts[] = {
        { Q_ROLE, "role", 1 }, { Q_SCHEMAS, "schemas", 0 },
        { Q_TABLES, "tables", 0 }, { Q_SEQUENCES, "sequences", 0 },
        { Q_FUNCTIONS, "functions", 0 }, { Q_NOT_FOUND, "not_found", 0 },
        { Q_TRIGGERS, "triggers", 0 }, { Q_FOREIGN_KEYS, "foreign_keys", 0 },
        { Q_CASCADE, "truncate_cascade", 0 }, { Q_ROW_CHECKS, "row_checks", 0 },
        { Q_LAYOUT, "layout", 0 },
      };
      size_t i;
      lua_rawgeti(L, lists, Q_SERVER + 1);
      first_row_field(L, lua_gettop(L), "server", report);
      first_row_field(L, lua_gettop(L), "session", report);
      first_row_field(L, lua_gettop(L), "database", report);
      lua_pop(L, 1);
      lua_getfield(L, report, "session");
      if (lua_istable(L, -1)) {
        push_ssl(L, c->pg);
        lua_setfield(L, -2, "ssl");
        set_endpoint(L, lua_gettop(L), c);
      }
      lua_pop(L, 1);
      for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (parts[i].first_row)
          nc_push_first_row(L, lists, parts[i].q + 1);
        else
          lua_rawgeti(L, lists, parts[i].q + 1);
        lua_setfield(L, report, parts[i].field);
      }
      add_table_columns(L, report);
      add_column_acls(L, report, lists);
    }
    if (c->test.job.kind != 0) {
      nc_push_job(L, &c->test.job);
      lua_setfield(L, report, "job");
      add_proof(L, c, report, lists);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->test.state_ref);
    nc_replication_report(L, c, report, lists, Q_REPLICATION + 1, lua_gettop(L));
    lua_settop(L, report);
  }
  nc_set_number(L, report, "ms", nc_report_ms(now - (c->test.owned ? c->started : c->test.started)));
}

void nc_push_connect_failure_report(lua_State *L, nc_conn *c)
{
  lua_newtable(L);
  nc_set_bool(L, -1, "ok", 0);
  nc_push_error(L, &c->error, c->secret);
  lua_setfield(L, -2, "error");
  nc_free_secret(&c->secret);
  push_stages(L, c, &c->error, -1);
  lua_setfield(L, -2, "stages");
  nc_set_number(L, -1, "ms", nc_report_ms(c->failed_after));
}
