/* A CDC source (job.cdc): what logical replication needs, read in the
 * test's own READ ONLY pipeline (settings, slots and WAL senders in use,
 * the login role's REPLICATION, the named slot and publication, each job
 * table's replica identity and publication coverage), then proven with a
 * replication connection (replication=database) as the same role to the
 * same server, running IDENTIFY_SYSTEM. Nothing is created: no slot, no
 * publication, no transaction ID. */
#include <string.h>
#include "neoconn.h"

enum { REPL_NONE, REPL_CONNECTING, REPL_QUERYING, REPL_DONE };

/* The login role (session_user) is what a replication connection logs in
 * as; REPLICATION is not inherited, so a group role holding it is named
 * only to say that it does not count. pg_stat_replication has a row for
 * every WAL sender whoever asks (pg_stat_activity hides their type). */
/* Roles through which managed services give replication (RDS, Cloud SQL,
 * Azure, Supabase). */
#define PROVIDER_ROLES                                                                   \
  "('rds_replication', 'rds_superuser', 'cloudsqlsuperuser', 'azure_pg_admin',"          \
  " 'supabase_admin', 'supabase_replication_admin')"

static const char SQL_REPLICATION[] =
  "SELECT current_setting('wal_level') AS wal_level,"
  " current_setting('max_replication_slots')::int AS max_replication_slots,"
  " (SELECT count(*) FROM pg_replication_slots)::int AS slots_used,"
  " current_setting('max_wal_senders')::int AS max_wal_senders,"
  " (SELECT count(*) FROM pg_stat_replication)::int AS wal_senders_used,"
  " current_setting('max_slot_wal_keep_size') AS max_slot_wal_keep_size,"
  " current_setting('wal_sender_timeout') AS wal_sender_timeout,"
  " current_setting('hot_standby_feedback')::bool AS hot_standby_feedback,"
  " pg_is_in_recovery() AS in_recovery,"
  " r.rolreplication AS \"login_role.replication\", r.rolsuper AS \"login_role.superuser\","
  " r.rolname AS \"login_role.name\","
  " (SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_roles g"
  "  WHERE g.rolreplication AND g.oid <> r.oid AND pg_has_role(r.oid, g.oid, 'MEMBER'))"
  "  AS \"login_role.groups_with_replication\","
  " has_database_privilege(current_database(), 'CREATE') AS database_create,"
  " current_database() AS database,"
  " pg_size_bytes(current_setting('max_slot_wal_keep_size')) AS max_slot_wal_keep_bytes,"
  " (SELECT (setting::numeric * CASE unit WHEN 'min' THEN 60 WHEN 'ms' THEN 0.001 ELSE 1 END)::bigint"
  "  FROM pg_settings WHERE name = 'idle_replication_slot_timeout') AS idle_slot_timeout_seconds,"
  " current_setting('synchronized_standby_slots', true) AS synchronized_standby_slots,"
  /* What a slot's creation waits for and catalog_xmin is held by: the
   * oldest transaction with an ID, of those the role may see. */
  " (SELECT round(extract(epoch FROM now() - min(t))::numeric, 1)::float8 FROM (SELECT a.xact_start AS t"
  "  FROM pg_stat_activity a WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()"
  "  UNION ALL SELECT x.prepared FROM pg_prepared_xacts x) o) AS oldest_transaction_seconds,"
  /* Sessions hidden from the role show no backend_type, only a database. */
  " (SELECT count(*) FROM pg_stat_activity a WHERE a.backend_type IS NULL"
  "  AND a.datid IS NOT NULL)::int AS hidden_sessions,"
  /* Managed services grant the right through roles and settings. */
  " ARRAY(SELECT g.rolname::text FROM pg_roles g WHERE g.rolname IN " PROVIDER_ROLES
  "  ORDER BY 1) AS \"provider.roles\","
  " ARRAY(SELECT g.rolname::text FROM pg_roles g WHERE g.rolname IN " PROVIDER_ROLES
  "  AND pg_has_role(r.oid, g.oid, 'MEMBER') ORDER BY 1) AS \"provider.member_of\","
  " current_setting('rds.logical_replication', true) AS \"provider.rds_logical_replication\","
  " current_setting('cloudsql.logical_decoding', true) AS \"provider.cloudsql_logical_decoding\""
  " FROM pg_roles r WHERE r.rolname = session_user";

static const char SHAPE_REPLICATION[] =
  "@replication/1 wal_level:t! max_replication_slots:i! slots_used:i! max_wal_senders:i!"
  " wal_senders_used:i! max_slot_wal_keep_size:t! wal_sender_timeout:t! hot_standby_feedback:b!"
  " in_recovery:b! login_role.replication:b! login_role.superuser:b! login_role.name:t!"
  " login_role.groups_with_replication:a database_create:b! database:t!"
  " max_slot_wal_keep_bytes:i! idle_slot_timeout_seconds:i synchronized_standby_slots:t"
  " oldest_transaction_seconds:n hidden_sessions:i! provider.roles:a provider.member_of:a"
  " provider.rds_logical_replication:t provider.cloudsql_logical_decoding:t";

/* The named slot ($1, wherever it is) and every logical slot of this
 * database, with their health: WAL kept (from restart_lsn) and not yet
 * confirmed (from confirmed_flush_lsn), the room left before
 * max_slot_wal_keep_size invalidates it, its catalog_xmin's age. Columns
 * that came with later versions (conflicting 16; invalidation_reason,
 * failover, synced, inactive_since 17) through to_jsonb: NULL before. */
static const char SQL_SLOTS[] =
  "SELECT s.slot_name AS name, s.plugin, s.slot_type AS type, s.database, s.active,"
  " s.temporary, s.wal_status, s.database = current_database() AS same_database,"
  " (to_jsonb(s) ->> 'conflicting')::bool AS conflicting,"
  " to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason,"
  " (to_jsonb(s) ->> 'failover')::bool AS failover, (to_jsonb(s) ->> 'synced')::bool AS synced,"
  " to_jsonb(s) ->> 'inactive_since' AS inactive_since,"
  " extract(epoch FROM clock_timestamp() - (to_jsonb(s) ->> 'inactive_since')::timestamptz)"
  "  ::float8 AS inactive_seconds,"
  " pg_wal_lsn_diff(w.lsn, s.restart_lsn)::bigint AS retained_bytes,"
  " pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn)::bigint AS behind_bytes,"
  " s.safe_wal_size AS safe_wal_bytes, age(s.catalog_xmin)::bigint AS catalog_xmin_age,"
  " coalesce(s.slot_name = $1, false) AS named"
  " FROM pg_replication_slots s, (SELECT CASE WHEN pg_is_in_recovery()"
  "  THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn) w"
  " WHERE s.slot_name = $1 OR (s.slot_type = 'logical' AND s.database = current_database())"
  " ORDER BY s.slot_name";

static const char SHAPE_SLOTS[] =
  "@slots name:t! plugin:t type:t! database:t active:b! temporary:b wal_status:t"
  " same_database:b conflicting:b invalidation_reason:t failover:b synced:b inactive_since:t"
  " inactive_seconds:n retained_bytes:i behind_bytes:i safe_wal_bytes:i catalog_xmin_age:i"
  " named:b!";

static const char SQL_PUBLICATION[] =
  "SELECT p.pubname AS name, pg_get_userbyid(p.pubowner) AS owner, p.puballtables AS all_tables,"
  " p.pubinsert AS \"publishes.insert\", p.pubupdate AS \"publishes.update\","
  " p.pubdelete AS \"publishes.delete\", p.pubtruncate AS \"publishes.truncate\","
  " p.pubviaroot AS via_root, to_jsonb(p) ->> 'pubgencols' AS generated_columns"
  " FROM pg_publication p WHERE p.pubname = $1";

static const char SHAPE_PUBLICATION[] =
  "@publication/01 name:t! owner:t! all_tables:b! publishes.insert:b! publishes.update:b!"
  " publishes.delete:b! publishes.truncate:b! via_root:b! generated_columns:t";

/* Per job table ($5: the publication, or NULL): its replica identity, and
 * what pg_publication_tables says of it (FOR TABLE, FOR TABLES IN SCHEMA
 * and FOR ALL TABLES alike); a partitioned table is covered through its
 * partitions when the publication lists them instead (not via_root). The
 * column list and row filter (15+) through to_jsonb. Generated columns are
 * never published, so a column list leaving them out drops nothing. */
static const char SQL_CDC_TABLES[] =
  " SELECT s.nspname AS \"schema\", s.relname AS name,"
  " CASE c.relreplident WHEN 'n' THEN 'nothing' WHEN 'f' THEN 'full' WHEN 'i' THEN 'index'"
  "  ELSE CASE WHEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = s.oid AND i.indisprimary)"
  "  THEN 'primary_key' ELSE 'none' END END AS replica_identity,"
  " CASE WHEN $5::text IS NULL THEN NULL ELSE pt.j IS NOT NULL OR (s.relkind = 'p' AND EXISTS ("
  "  SELECT 1 FROM pg_partition_tree(s.oid) l JOIN pg_class lc ON lc.oid = l.relid"
  "  JOIN pg_namespace ln ON ln.oid = lc.relnamespace JOIN pg_publication_tables lp"
  "  ON lp.pubname = $5 AND lp.schemaname = ln.nspname AND lp.tablename = lc.relname"
  "  WHERE l.isleaf)) END AS published,"
  " pt.j ->> 'rowfilter' AS row_filter,"
  " CASE WHEN pt.j ? 'attnames' THEN ARRAY(SELECT a.attname::text FROM pg_attribute a"
  "  WHERE a.attrelid = s.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''"
  "  AND NOT (pt.j -> 'attnames') ? a.attname::text ORDER BY a.attnum) END AS unpublished_columns,"
  " s.relkind = 'p' AS partitioned,"
  " ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = s.oid AND a.attnum > 0"
  "  AND NOT a.attisdropped AND a.attgenerated <> '' ORDER BY a.attnum) AS generated_columns"
  " FROM scope s JOIN pg_class c ON c.oid = s.oid"
  " LEFT JOIN LATERAL (SELECT to_jsonb(x) AS j FROM pg_publication_tables x"
  "  WHERE x.pubname = $5 AND x.schemaname = s.nspname AND x.tablename = s.relname) pt ON true"
  " WHERE s.relkind IN ('r', 'p')"
  " ORDER BY 1, 2";

static const char SHAPE_CDC_TABLES[] =
  "@replication_tables schema:t! name:t! replica_identity:t! published:b row_filter:t"
  " unpublished_columns:a partitioned:b! generated_columns:a";

int nc_replication_queries(lua_State *L, nc_conn *c, const char *with, const char *const *scope,
                           nc_step *steps, int n, int first_list)
{
  static const Oid table_types[] = { TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
                                     25 };
  const char *slot = c->test.job.name[NC_OPT_SLOT];
  const char *publication = c->test.job.name[NC_OPT_PUBLICATION];
  const char **params;
  if (c->test.job.value[NC_OPT_CDC] != 1)
    return n;
  /* Anchored on the stack until the pipeline is sent (libpq copies). */
  params = (const char **)nc_newuserdata(L, 7 * sizeof(char *));
  memcpy(params, scope, 4 * sizeof(char *));
  params[4] = publication[0] != '\0' ? publication : NULL;
  params[5] = slot[0] != '\0' ? slot : NULL;
  params[6] = publication;
  steps[n++] = (nc_step){ .sql = SQL_REPLICATION, .list = first_list, .shape = SHAPE_REPLICATION };
  steps[n++] = (nc_step){ .sql = SQL_SLOTS, .nparams = 1, .params = params + 5,
                          .list = first_list + 1, .shape = SHAPE_SLOTS };
  if (publication[0] != '\0')
    steps[n++] = (nc_step){ .sql = SQL_PUBLICATION, .nparams = 1, .params = params + 6,
                            .list = first_list + 2, .shape = SHAPE_PUBLICATION };
  steps[n++] = (nc_step){ .sql = lua_pushfstring(L, "%s%s", with, SQL_CDC_TABLES), .nparams = 5,
                          .params = params, .types = table_types, .list = first_list + 3,
                          .shape = SHAPE_CDC_TABLES };
  return n;
}

int nc_replication_wanted(const nc_conn *c)
{
  return c->test.job.value[NC_OPT_CDC] == 1 && !c->pipe.failed && c->pg != NULL;
}

/* The phase is over: the outcome goes into the state (an error as
 * state.replication_error), the replication connection is closed. */
static int finish(lua_State *L, nc_conn *c, int state, int failed)
{
  nc_conn *r = c->test.repl;
  if (failed) {
    r->error.stage = NC_STAGE_REPLICATION; /* classified as any connection's, said where */
    nc_push_error(L, &r->error, r->secret);
    lua_setfield(L, state, "replication_error");
  }
  nc_free_secret(&r->secret);
  nc_conn_close(r);
  c->test.repl_phase = REPL_DONE;
  c->test.repl_ms = nc_now() - c->test.repl_started;
  return 1;
}

/* IDENTIFY_SYSTEM's row, renamed: state.replication_identity. */
static void keep_identity(lua_State *L, const PGresult *res, int state)
{
  static const char *const fields[][2] = {
    { "systemid", "system_id" }, { "timeline", "timeline" }, { "xlogpos", "wal_position" },
    { "dbname", "database" },
  };
  size_t i;
  lua_createtable(L, 0, 5);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "ok");
  for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    int col = PQfnumber(res, fields[i][0]);
    if (col >= 0 && PQntuples(res) > 0 && !PQgetisnull(res, 0, col)) {
      lua_pushstring(L, PQgetvalue(res, 0, col));
      lua_setfield(L, -2, fields[i][1]);
    }
  }
  lua_setfield(L, state, "replication_identity");
}

int nc_replication_step(lua_State *L, nc_conn *c, int state)
{
  nc_conn *r = c->test.repl;
  int step;
  if (c->test.repl_phase == REPL_DONE)
    return 1;
  if (c->test.repl_phase == REPL_NONE) {
    r = nc_new_conn(L);
    lua_setfield(L, state, "replication_conn");
    c->test.repl = r;
    c->test.repl_phase = REPL_CONNECTING;
    c->test.repl_started = nc_now();
    if (!nc_connect_begin_like(r, c->pg, "replication", "database"))
      return finish(L, c, state, 1);
    r->connect_deadline = c->test.deadline;
  }
  if (c->test.repl_phase == REPL_CONNECTING) {
    step = nc_connect_step(r);
    if (step == 0 && nc_now() >= nc_handshake_deadline(r, c->test.deadline)) {
      nc_connect_give_up(r);
      step = -1;
    }
    if (step < 0)
      return finish(L, c, state, 1);
    if (step == 0)
      return 0;
    if (!PQsendQuery(r->pg, "IDENTIFY_SYSTEM")) {
      nc_classify_query_failure(&r->error, NULL, r->pg, 0, NC_STAGE_REPLICATION);
      return finish(L, c, state, 1);
    }
    c->test.repl_phase = REPL_QUERYING;
  }
  step = PQflush(r->pg);
  r->want_write = step > 0;
  if (step < 0 || !PQconsumeInput(r->pg)) {
    nc_classify_query_failure(&r->error, NULL, r->pg, 0, NC_STAGE_REPLICATION);
    return finish(L, c, state, 1);
  }
  while (step == 0 && !PQisBusy(r->pg)) {
    PGresult *res = nc_take_result(L, r->pg);
    if (res == NULL) { /* the command's end: what failed is already kept */
      nc_drop_result(L);
      return finish(L, c, state, 0);
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
      keep_identity(L, res, state);
    } else {
      nc_classify_query_failure(&r->error, res, r->pg, 0, NC_STAGE_REPLICATION);
      nc_push_error(L, &r->error, r->secret); /* what failed is kept: finish() adds nothing */
      lua_setfield(L, state, "replication_error");
    }
    nc_drop_result(L);
  }
  if (nc_now() >= c->test.deadline) {
    nc_classify_query_failure(&r->error, NULL, r->pg, 1, NC_STAGE_REPLICATION);
    return finish(L, c, state, 1);
  }
  return 0;
}

/* replication.slots (every logical slot of the database, and the named
 * one) and replication.slot (the named one, or nil) into the table below
 * the list at index list. */
static void set_slots(lua_State *L, int list)
{
  int i, n = lua_istable(L, list) ? (int)lua_rawlen(L, list) : 0;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    lua_getfield(L, -1, "named");
    if (lua_toboolean(L, -1)) {
      lua_pop(L, 1);
      lua_setfield(L, list - 1, "slot");
    } else {
      lua_pop(L, 2);
    }
  }
  lua_pushvalue(L, list);
  lua_setfield(L, list - 1, "slots");
}

/* report.replication: the catalog's rows, the connection's outcome; and
 * the stage, after introspect. */
void nc_replication_report(lua_State *L, const nc_conn *c, int report, int lists, int first_list,
                           int state)
{
  int failed;
  if (c->test.job.value[NC_OPT_CDC] != 1 || c->test.repl_phase != REPL_DONE)
    return;
  luaL_checkstack(L, 8, NULL);
  nc_push_first_row(L, lists, first_list);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  lua_rawgeti(L, lists, first_list + 1);
  set_slots(L, lua_gettop(L));
  lua_pop(L, 1);
  nc_push_first_row(L, lists, first_list + 2);
  lua_setfield(L, -2, "publication");
  lua_rawgeti(L, lists, first_list + 3);
  lua_setfield(L, -2, "tables");
  lua_getfield(L, state, "replication_error");
  failed = !lua_isnil(L, -1);
  if (failed) {
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "ok");
    lua_insert(L, -2);
    lua_setfield(L, -2, "error");
  } else {
    lua_pop(L, 1);
    lua_getfield(L, state, "replication_identity");
  }
  lua_setfield(L, -2, "connection");
  lua_setfield(L, report, "replication");

  lua_getfield(L, report, "stages");
  nc_add_stage(L, -1, "replication", !failed, c->test.repl_ms);
  lua_pop(L, 2);
}
