/* The read-only catalog pipeline as a state machine. nc_pipeline_begin
 * sends BEGIN READ ONLY, the settings, the queries, COMMIT and a sync in one
 * round trip; nc_pipeline_step consumes whatever has arrived and says
 * whether to wait for the socket, so a blocking loop (neoconn.test) and an
 * event loop (nginx, a fleet check) drive the same code. After a failed
 * query the transaction is rolled back, so a caller's connection is idle
 * again; if the protocol state is unknown (timeout, lost connection) the
 * connection is closed. */
#include <stdio.h>
#include "neoconn.h"

#define TEXTARRAYOID 1009

enum { PHASE_PIPELINE = 1, PHASE_ROLLBACK = 2 };

/* The connection cannot be trusted any more: record why and close it. */
static int lose(nc_conn *c, int timed_out)
{
  if (!c->query_failed)
    nc_classify_query_failure(&c->error, NULL, c->pg, timed_out, NC_STAGE_INTROSPECT);
  c->query_failed = 1;
  nc_conn_close(c);
  c->phase = 0;
  return 1;
}

int nc_pipeline_begin(nc_conn *c, const char *const *queries, int nqueries, int nparams,
                      const char *const *params, double deadline)
{
  static const Oid types[] = { TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID };
  PGconn *pg = c->pg;
  char timeout_ms[32];
  const char *settings[1];
  double left = deadline - nc_now();
  int i;

  c->query_failed = 0;
  c->expect = -2;
  c->awaiting_null = 0;
  c->nqueries = nqueries;
  c->phase = PHASE_PIPELINE;
  sprintf(timeout_ms, "%ld", left > 0.001 ? (long)(left * 1000.0) : 1L);
  settings[0] = timeout_ms;
  if (nparams > (int)(sizeof types / sizeof types[0]) || !PQenterPipelineMode(pg)
      || !PQsendQueryParams(pg, "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", 0, NULL, NULL,
                            NULL, NULL, 0)
      || !PQsendQueryParams(pg, "SELECT pg_catalog.set_config('statement_timeout', $1, true), "
                                "pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true), "
                                "pg_catalog.set_config('jit', 'off', true)",
                            1, NULL, settings, NULL, NULL, 0))
    return !lose(c, 0);
  for (i = 0; i < nqueries; i++)
    if (!PQsendQueryParams(pg, queries[i], nparams, types, params, NULL, NULL, 0))
      return !lose(c, 0);
  if (!PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(pg))
    return !lose(c, 0);
  c->flushing = 1;
  return 1;
}

/* Sends what is buffered; 1 all sent, 0 wait, -1 lost. */
static int push_out(nc_conn *c)
{
  int r;
  if (!c->flushing)
    return 1;
  r = PQflush(c->pg);
  if (r < 0)
    return -1;
  if (r == 1) {
    c->want_write = 1;
    return 0;
  }
  c->flushing = 0;
  return 1;
}

/* One result of the pipeline; 1 when the sync closed it, -1 if lost. */
static int on_result(lua_State *L, nc_conn *c, PGresult *res, int lists)
{
  ExecStatusType st = PQresultStatus(res);
  if (c->awaiting_null) { /* every query ends with a NULL result */
    if (res != NULL)
      return -1;
    c->awaiting_null = 0;
    c->expect++;
    return 0;
  }
  if (c->expect > c->nqueries) { /* the sync */
    if (st != PGRES_PIPELINE_SYNC || !PQexitPipelineMode(c->pg))
      return -1;
    return 1;
  }
  if (res == NULL)
    return -1;
  if (st == PGRES_FATAL_ERROR && !c->query_failed) {
    nc_classify_query_failure(&c->error, res, c->pg, 0, NC_STAGE_INTROSPECT);
    c->query_failed = 1;
  }
  if (c->expect >= 0 && c->expect < c->nqueries) {
    if (st == PGRES_TUPLES_OK)
      nc_push_rows(L, res, 1);
    else
      lua_newtable(L);
    lua_rawseti(L, lists, c->expect + 1);
  }
  c->awaiting_null = 1;
  return 0;
}

/* Handles the results available now; 1 when the ROLLBACK phase ended. */
static int on_rollback_result(lua_State *L, nc_conn *c, int *lost)
{
  PGresult *res = nc_take_result(L, c->pg);
  int done = (res == NULL);
  *lost = res != NULL && PQresultStatus(res) != PGRES_COMMAND_OK;
  nc_drop_result(L);
  return done;
}

int nc_pipeline_step(lua_State *L, nc_conn *c, int lists)
{
  lists = nc_absindex(L, lists);
  if (c->phase == 0 || c->pg == NULL)
    return 1; /* finished, or failed when it began */
  for (;;) {
    int r = push_out(c), restart = 0;
    /* Reading while a send is pending keeps the server from stalling. */
    if (r < 0 || !PQconsumeInput(c->pg))
      return lose(c, 0);
    if (r == 0)
      return 0; /* wait until writable (or readable) */
    while (!restart && !PQisBusy(c->pg)) {
      int lost = 0, done;
      if (c->phase == PHASE_ROLLBACK) {
        done = on_rollback_result(L, c, &lost);
        if (lost)
          return lose(c, 0);
        if (done) {
          c->phase = 0;
          return 1;
        }
        continue;
      }
      done = on_result(L, c, nc_take_result(L, c->pg), lists);
      nc_drop_result(L);
      if (done < 0)
        return lose(c, 0);
      if (done == 0)
        continue;
      /* A failed query aborted our transaction: end it, so the caller's
       * connection is back where it was. */
      if (c->query_failed && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        if (!PQsendQuery(c->pg, "ROLLBACK"))
          return lose(c, 0);
        c->phase = PHASE_ROLLBACK;
        c->flushing = 1;
        restart = 1;
        continue;
      }
      c->phase = 0;
      return 1;
    }
    if (!restart) {
      c->want_write = 0;
      return 0; /* wait until readable */
    }
  }
}

int nc_pipeline_timeout(nc_conn *c)
{
  return lose(c, 1);
}
