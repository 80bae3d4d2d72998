/* neoconn.test as a state machine: connect, send the catalog pipeline in
 * one round trip, read its results, then (a CDC job) the replication
 * connection, then the report. The blocking driver (neoconn.test) and the
 * stepping one (test_begin, conn:test_step) run the same steps. */
#include <limits.h>
#include <string.h>
#include "neoconn.h"

/* opts.job ({ kind =, <job options> }) and opts.proof (true, false,
 * "auto": jobs of up to NC_PROOF_AUTO_LIMIT tables, or that limit). */
static void check_job(lua_State *L, int opts, nc_conn *c)
{
  int kind = 0;
  memset(&c->test.job, 0, sizeof c->test.job);
  c->test.proof_limit = 0;
  c->test.layout = 0;
  if (lua_isnoneornil(L, opts))
    return;
  lua_getfield(L, opts, "job");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TTABLE)
      luaL_argerror(L, opts, lua_pushfstring(L, "job: table expected, got %s",
                                             luaL_typename(L, -1)));
    lua_getfield(L, -1, "kind");
    kind = nc_check_kind(L, -1, opts, "job.kind");
    lua_pop(L, 1);
    nc_check_job(L, kind, -1, opts, 1, &c->test.job);
    c->test.proof_limit = NC_PROOF_AUTO_LIMIT;
  }
  lua_pop(L, 1);
  lua_getfield(L, opts, "layout");
  if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
    luaL_argerror(L, opts, lua_pushfstring(L, "layout: boolean expected, got %s",
                                           luaL_typename(L, -1)));
  c->test.layout = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, opts, "proof");
  if (lua_type(L, -1) == LUA_TBOOLEAN)
    c->test.proof_limit = !lua_toboolean(L, -1) ? 0 : kind != 0 ? 2147483647L : 0;
  else if (lua_type(L, -1) == LUA_TNUMBER && nc_isinteger(L, -1) && lua_tonumber(L, -1) >= 1
           && lua_tonumber(L, -1) <= 2147483647.0)
    c->test.proof_limit = kind != 0 ? (long)lua_tonumber(L, -1) : 0;
  else if (!lua_isnil(L, -1) && !(lua_type(L, -1) == LUA_TSTRING
                                   && strcmp(lua_tostring(L, -1), "auto") == 0))
    luaL_argerror(L, opts, "proof must be true, false, \"auto\" or the most tables to prove");
  lua_pop(L, 1);
}

/* Arms a test on c: remembers its options (validated now, so malformed
 * options raise before anything is sent) and its deadline. */
static void arm(lua_State *L, nc_conn *c, int opts, double started, double timeout, int owned)
{
  int i;
  opts = nc_absindex(L, opts);
  check_job(L, opts, c);
  nc_push_scope_params(L, opts, opts); /* $1..$4, kept in the state */
  lua_createtable(L, 4, 1);
  for (i = 4; i >= 1; i--) {
    lua_insert(L, -2);
    lua_rawseti(L, -2, i);
  }
  lua_newtable(L);
  lua_setfield(L, -2, "lists");
  c->test.state_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->test.started = started;
  c->test.deadline = started + timeout;
  c->test.owned = owned;
  c->pipe.phase = 0;
  c->pipe.failed = 0;
  c->test.introspect_started = -1;
  c->test.repl = NULL;
  c->test.repl_phase = 0;
  c->test.state = owned ? NC_TEST_CONNECTING : NC_TEST_CATALOG;
}

/* The test transaction's settings, all bound ($1 the statement timeout);
 * the proof's inputs (the job and the scope, $2..$9) only when it runs:
 * each new custom setting costs a new backend (0.3 ms a test, measured). */
#define SETTINGS                                                                         \
  "SELECT pg_catalog.set_config('statement_timeout', $1, true),"                         \
  " pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),"                  \
  " pg_catalog.set_config('jit', 'off', true)"
#define PROOF_SETTINGS                                                                   \
  " pg_catalog.set_config('neoconn.kind', $2, true),"                                    \
  " pg_catalog.set_config('neoconn.on_conflict', $3, true),"                             \
  " pg_catalog.set_config('neoconn.proof_limit', $4, true),"                             \
  " pg_catalog.set_config('neoconn.proof_budget_ms', $5, true),"                         \
  " pg_catalog.set_config('neoconn.scope_schemas', $6, true),"                           \
  " pg_catalog.set_config('neoconn.scope_table_schemas', $7, true),"                     \
  " pg_catalog.set_config('neoconn.scope_table_names', $8, true),"                       \
  " pg_catalog.set_config('neoconn.scope_exclude', $9, true)"

/* Sends the test's pipeline on the now ready connection, one round trip
 * ending in one sync: BEGIN READ ONLY, the settings, the catalog queries
 * (and the job's), the executor proof (whose failure the test survives),
 * COMMIT. */
static void start_queries(lua_State *L, nc_conn *c)
{
  static const Oid types[] = { TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID };
  const char *params[4], *settings[9];
  nc_step queries[Q_COUNT] = { { NULL } }, steps[NC_MAX_STEPS];
  int top = lua_gettop(L), state, i, n = 0;
  double left = c->test.deadline - nc_now();
  const char *me, *scope, *with;

  lua_rawgeti(L, LUA_REGISTRYINDEX, c->test.state_ref);
  state = lua_gettop(L);
  for (i = 0; i < 4; i++) {
    lua_rawgeti(L, state, i + 1);
    params[i] = lua_tostring(L, -1); /* NULL for nil: SQL NULL; anchored in the state */
    lua_pop(L, 1);
  }
  nc_catalog_queries(L, c, params, queries, &me, &scope, &with);

  /* The settings, all bound: the scope and the job for the proof too. */
  settings[0] = lua_pushfstring(L, "%d", left > 0.001 ? nc_ms(left, INT_MAX) : 1);
  settings[1] = c->test.job.kind == NC_DST ? "destination" : "source";
  settings[2] = nc_job_choice(&c->test.job, NC_OPT_ON_CONFLICT);
  settings[3] = lua_pushfstring(L, "%d", (int)c->test.proof_limit);
  settings[4] = lua_pushfstring(L, "%d", nc_ms(left * NC_PROOF_BUDGET_SHARE, INT_MAX));
  for (i = 0; i < 4; i++)
    settings[5 + i] = params[i] != NULL ? params[i] : "";
  steps[n++] = (nc_step){ .sql = "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ" };
  steps[n++] = c->test.proof_limit > 0
    ? (nc_step){ .sql = SETTINGS "," PROOF_SETTINGS, .nparams = 9, .params = settings }
    : (nc_step){ .sql = SETTINGS, .nparams = 1, .params = settings };
  steps[n++] = (nc_step){ .sql = me }; /* after search_path is set */
  for (i = 0; i < Q_PROOF_STATUS; i++)
    if (queries[i].sql != NULL) {
      steps[n] = queries[i];
      steps[n].nparams = 4;
      steps[n].params = params;
      steps[n].types = types;
      steps[n++].list = i + 1;
    }
  n = nc_replication_queries(L, c, with, params, steps, n, Q_REPLICATION + 1);
  /* The proof last: if it fails (no plpgsql for the role, ...), only it,
   * its two queries and the COMMIT are skipped (aborted, not failed); the
   * test goes on and the pipeline rolls back. */
  if (c->test.proof_limit > 0) {
    steps[n++] = (nc_step){ .sql = lua_pushfstring(L, nc_proof_sql, scope, scope),
                            .tolerated = 1 };
    steps[n++] = (nc_step){ .sql = nc_proof_status_sql, .list = Q_PROOF_STATUS + 1,
                            .tolerated = 1, .shape = nc_proof_status_shape };
    steps[n++] = (nc_step){ .sql = nc_proof_rows_sql, .list = Q_PROOF_ROWS + 1, .tolerated = 1,
                            .shape = nc_proof_rows_shape };
  }
  steps[n++] = (nc_step){ .sql = "COMMIT" };
  steps[n++] = (nc_step){ .sql = NULL }; /* the sync */
  c->test.introspect_started = nc_now();
  nc_pipeline_begin(c, steps, n); /* libpq copies it all */
  lua_settop(L, top);
}

/* The report of a test whose connection failed before introspection. */
static int connect_failed(lua_State *L, nc_conn *c)
{
  nc_push_connect_failure_report(L, c);
  nc_release_test(L, c);
  return 1;
}

static nc_conn *check_testable(lua_State *L, int idx)
{
  nc_conn *c = nc_check_conn(L, idx);
  if (!c->ready || c->pg == NULL)
    luaL_argerror(L, idx, "connection is closed");
  if (c->test.state != NC_TEST_NONE)
    luaL_argerror(L, idx, "a test is already running on this connection");
  if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
    luaL_argerror(L, idx, "connection is inside a transaction: the test runs its own");
  return c;
}

/* Advances an armed test: connects, sends the queries, reads the results.
 * 1: finished, the report pushed; 0: waiting on the socket. Never waits. */
static int advance(lua_State *L, nc_conn *c)
{
  int r;
  switch (c->test.state) {
  case NC_TEST_CONNECTING:
    r = c->failed ? -1 : nc_connect_step(c);
    if (r == 0 && nc_now() >= nc_handshake_deadline(c, c->test.deadline)) {
      nc_connect_give_up(c);
      r = -1;
    }
    if (r < 0)
      return connect_failed(L, c);
    if (r == 0)
      return 0;
    c->test.state = NC_TEST_CATALOG;
    /* fall through - the connection is ready */
  case NC_TEST_CATALOG:
    if (c->test.introspect_started < 0)
      start_queries(L, c);
    r = nc_pipeline_step(L, c, nc_push_test_lists(L, c));
    lua_pop(L, 1);
    if (!r && nc_now() >= c->test.deadline) {
      nc_pipeline_timeout(c);
      r = 1;
    }
    if (!r)
      return 0;
    if (!nc_replication_wanted(c))
      break;
    c->test.state = NC_TEST_REPLICATION;
    /* fall through */
  case NC_TEST_REPLICATION:
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->test.state_ref);
    r = nc_replication_step(L, c, lua_gettop(L));
    lua_pop(L, 1);
    if (!r)
      return 0;
    break;
  case NC_TEST_NONE:
    luaL_error(L, "no test is running on this connection");
  }
  nc_push_test_report(L, c);
  nc_release_test(L, c);
  if (c->test.owned)
    nc_conn_close(c);
  return 1;
}

/* Arms a test of the target (a new connection, closed when the test ends)
 * or of a given idle connection; pushes the connection. */
static nc_conn *begin(lua_State *L, int target, int opts)
{
  double timeout = nc_opt_timeout(L, opts, "test"), started = nc_now();
  nc_conn *c = nc_test_conn(L, target);
  if (c != NULL) {
    check_testable(L, target);
    arm(L, c, opts, started, timeout, 0);
    lua_pushvalue(L, target);
    return c;
  }
  if (lua_isnone(L, target))
    luaL_argerror(L, target, "target: a connection, URL, key=value string or table expected");
  c = nc_new_conn(L);
  arm(L, c, opts, started, timeout, 1);
  nc_connect_begin(L, c, target);
  return c;
}

/* What the test waits on now: the socket of its connection (or of the
 * replication connection, in that phase), whether to write, and the time
 * to wake by (a handshake's own deadline, connect_timeout, may be sooner
 * than the test's). */
static int waiting_on(const nc_conn *c, int *want_write, double *until)
{
  const nc_conn *w = c->test.state == NC_TEST_REPLICATION && c->test.repl != NULL
                       && (c->test.repl->pg != NULL || c->test.repl->probing) ? c->test.repl : c;
  *want_write = w->want_write;
  *until = w->ready ? c->test.deadline : nc_handshake_deadline(w, c->test.deadline);
  return nc_conn_socket(w);
}

/* neoconn.test(target_or_conn [, opts]) -> report: the blocking driver. */
int nc_l_test(lua_State *L)
{
  nc_conn *c;
  lua_settop(L, 2);
  c = begin(L, 1, 2);
  while (!advance(L, c)) {
    int want_write;
    double until;
    int fd = waiting_on(c, &want_write, &until);
    if (fd < 0 || nc_wait_fd(fd, want_write ? 2 : 0, until) < 0)
      nc_wait_fd(-1, 0, nc_now() + 0.001); /* advance() reports the failure */
  }
  return 1;
}

/* neoconn.test_begin(target_or_conn [, opts]) -> conn: a test to drive
 * with conn:test_step() from an event loop. */
int nc_l_test_begin(lua_State *L)
{
  lua_settop(L, 2);
  begin(L, 1, 2);
  return 1;
}

/* conn:test_step() -> report | false, "read"|"write", fd, seconds_left
 * Never waits: call it again when fd is ready or the time has passed. */
int nc_l_test_step(lua_State *L)
{
  nc_conn *c = nc_check_conn(L, 1);
  double left, until;
  int want_write, fd;
  if (c->test.state == NC_TEST_NONE)
    luaL_argerror(L, 1, "no test is running on this connection");
  if (advance(L, c))
    return 1;
  fd = waiting_on(c, &want_write, &until);
  left = until - nc_now();
  lua_pushboolean(L, 0);
  lua_pushstring(L, want_write ? "write" : "read");
  lua_pushinteger(L, fd);
  lua_pushnumber(L, left > 0 ? left : 0);
  return 4;
}
