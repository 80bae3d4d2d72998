/* A pipeline of statements ending in one sync, as a state machine.
 * nc_pipeline_begin sends every step in one round trip; nc_pipeline_step
 * consumes whatever has arrived and says whether to wait for the socket,
 * so a blocking loop (neoconn.test) and an event loop (nginx, a fleet
 * check) drive the same code. One sync, at the end: a transaction pooler in
 * statement mode (pgbouncer) sees no transaction left open at any sync. An
 * error skips the rest up to the sync, so the transaction is then left
 * aborted: a ROLLBACK ends it (a second round trip, only then), and the
 * caller's connection is idle again. If the protocol state is unknown
 * (timeout, lost connection) the connection is closed. */
#include "neoconn.h"

enum { PHASE_PIPELINE = 1, PHASE_ROLLBACK = 2 };

/* The connection cannot be trusted any more: record why and close it. */
static int lose(nc_conn *c, int timed_out)
{
  if (!c->pipe.failed)
    nc_classify_query_failure(&c->error, NULL, c->pg, timed_out, NC_STAGE_INTROSPECT);
  c->pipe.failed = 1;
  nc_conn_close(c);
  c->pipe.phase = 0;
  return 1;
}

int nc_pipeline_begin(nc_conn *c, const nc_step *steps, int nsteps)
{
  PGconn *pg = c->pg;
  int i;

  c->pipe.failed = 0;
  c->pipe.tolerated_failed = 0;
  c->pipe.expect = 0;
  c->pipe.awaiting_null = 0;
  c->pipe.nsteps = nsteps;
  c->pipe.phase = PHASE_PIPELINE;
  if (nsteps > NC_MAX_STEPS || nsteps < 1 || steps[nsteps - 1].sql != NULL
      || !PQenterPipelineMode(pg))
    return !lose(c, 0);
  for (i = 0; i < nsteps; i++) {
    const nc_step *s = &steps[i];
    c->pipe.steps[i].list = s->list;
    c->pipe.steps[i].tolerated = s->tolerated;
    c->pipe.steps[i].sorted = s->sorted;
    c->pipe.steps[i].sync = s->sql == NULL;
    c->pipe.steps[i].shape = s->shape;
    if (s->sql == NULL ? !PQpipelineSync(pg)
                       : !PQsendQueryParams(pg, s->sql, s->nparams, s->types, s->params, NULL,
                                            NULL, 0)
                           || (s->flush && !PQsendFlushRequest(pg)))
      return !lose(c, 0); /* libpq copied what it sent */
  }
  c->pipe.flushing = 1;
  return 1;
}

/* Sends what is buffered; 1 all sent, 0 wait, -1 lost. */
static int push_out(nc_conn *c)
{
  int r;
  if (!c->pipe.flushing)
    return 1;
  r = PQflush(c->pg);
  if (r < 0)
    return -1;
  if (r == 1) {
    c->want_write = 1;
    return 0;
  }
  c->pipe.flushing = 0;
  return 1;
}

static void record_failure(nc_conn *c, const PGresult *res, int tolerated)
{
  if (tolerated) {
    if (!c->pipe.tolerated_failed)
      nc_classify_query_failure(&c->tolerated_error, res, c->pg, 0, NC_STAGE_INTROSPECT);
    c->pipe.tolerated_failed = 1;
  } else if (!c->pipe.failed) {
    nc_classify_query_failure(&c->error, res, c->pg, 0, NC_STAGE_INTROSPECT);
    c->pipe.failed = 1;
  }
}

/* An answer that is not what its query asked for (problem: what is
 * wrong): no row of it is read, and the test fails with protocol_error
 * (the first problem is the one said). */
static void record_malformed(nc_conn *c, const char *problem)
{
  if (!c->pipe.failed)
    nc_protocol_error(&c->error, NC_STAGE_INTROSPECT, problem);
  c->pipe.failed = 1;
}

/* One result of the pipeline; 1 when the last sync arrived, -1 if lost. */
static int on_result(lua_State *L, nc_conn *c, PGresult *res, int lists)
{
  ExecStatusType st = PQresultStatus(res);
  int step = c->pipe.expect;
  if (c->pipe.awaiting_null) { /* every statement's results end with a NULL */
    if (res != NULL)
      return -1;
    c->pipe.awaiting_null = 0;
    c->pipe.expect++;
    return 0;
  }
  if (res == NULL || step >= c->pipe.nsteps)
    return -1;
  if (c->pipe.steps[step].sync) {
    if (st != PGRES_PIPELINE_SYNC)
      return -1;
    c->pipe.expect++;
    if (c->pipe.expect < c->pipe.nsteps)
      return 0;
    if (!PQexitPipelineMode(c->pg))
      return -1;
    return 1;
  }
  if (st == PGRES_FATAL_ERROR)
    record_failure(c, res, c->pipe.steps[step].tolerated);
  if (c->pipe.steps[step].list > 0) {
    /* A failed statement, or one the server skipped after it (aborted),
     * has no rows; any other answer must be rows of the step's shape. */
    if (st != PGRES_FATAL_ERROR && st != PGRES_PIPELINE_ABORTED
        && nc_shape_problem(L, res, c->pipe.steps[step].shape)) {
      record_malformed(c, lua_tostring(L, -1));
      lua_pop(L, 1);
      lua_newtable(L);
    } else if (st == PGRES_TUPLES_OK) {
      if (!nc_push_rows(L, res, 1, c->pipe.steps[step].sorted)) {
        record_malformed(c, "more columns than the query has");
        lua_newtable(L);
      }
    } else {
      lua_newtable(L);
    }
    lua_rawseti(L, lists, c->pipe.steps[step].list);
  }
  c->pipe.awaiting_null = 1;
  return 0;
}

int nc_pipeline_step(lua_State *L, nc_conn *c, int lists)
{
  lists = nc_absindex(L, lists);
  if (c->pipe.phase == 0 || c->pg == NULL)
    return 1; /* finished, or failed when it began */
  for (;;) {
    int r = push_out(c);
    /* Reading while a send is pending keeps the server from stalling. */
    if (r < 0 || !PQconsumeInput(c->pg))
      return lose(c, 0);
    if (r == 0)
      return 0; /* wait until writable (or readable) */
    while (!PQisBusy(c->pg)) {
      int done;
      if (c->pipe.phase == PHASE_ROLLBACK) {
        PGresult *res = nc_take_result(L, c->pg);
        int ended = res == NULL, failed = res != NULL && PQresultStatus(res) != PGRES_COMMAND_OK;
        nc_drop_result(L);
        if (failed)
          return lose(c, 0);
        if (ended) {
          c->pipe.phase = 0;
          return PQtransactionStatus(c->pg) == PQTRANS_IDLE ? 1 : lose(c, 0);
        }
        continue;
      }
      done = on_result(L, c, nc_take_result(L, c->pg), lists);
      nc_drop_result(L);
      if (done < 0)
        return lose(c, 0);
      if (done > 0 && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* Something failed and left the transaction aborted: end it. */
        if (!PQsendQuery(c->pg, "ROLLBACK"))
          return lose(c, 0);
        c->pipe.phase = PHASE_ROLLBACK;
        c->pipe.flushing = 1;
        break;
      }
      if (done > 0) {
        c->pipe.phase = 0;
        return 1;
      }
    }
    if (c->pipe.phase == PHASE_ROLLBACK && c->pipe.flushing)
      continue; /* send it, then read its result */
    c->want_write = 0;
    return 0; /* wait until readable */
  }
}

int nc_pipeline_timeout(nc_conn *c)
{
  return lose(c, 1);
}
