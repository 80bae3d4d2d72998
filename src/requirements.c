/* A sync job, written down once: the options a job takes and what its
 * statements need. Everything else is derived from these two tables: the
 * config keys and CLI flags (from neoconn.job_options()), the requirements
 * (neoconn.requirements), the policy's checks (each requirement names the
 * check that satisfies it) and the statements the test proves. Each
 * requirement is proven by a spec that runs the statement as a role granted
 * exactly these and with each one revoked. */
#include <string.h>
#include "neoconn.h"

/* A job option: false/true when `boolean`, then its string choices; the
 * value is an index into that list (booleans first), 0 by default. An
 * option that `names` an object takes any name instead; `needs` is the
 * option that must be true for it. */
typedef struct {
  const char *name;
  int kinds;
  int boolean;
  const char *choices[3];
  const char *help;
  int names;
  int needs;
} job_option;

static const job_option options[NC_OPT_COUNT] = {
  [NC_OPT_ON_CONFLICT] = { "on_conflict", NC_DST | NC_JOB, 0, { "nothing", "update" },
    "rows that exist already: kept (nothing) or updated (update, an upsert on the primary key)" },
  [NC_OPT_TRUNCATE] = { "truncate", NC_DST | NC_JOB, 1, { "cascade" },
    "empty the job's tables first, in one TRUNCATE (cascade: TRUNCATE ... CASCADE)" },
  [NC_OPT_RESET_SEQUENCES] = { "reset_sequences", NC_DST | NC_JOB, 1, { NULL },
    "move the sequences the tables own past the copied values (setval)" },
  [NC_OPT_INIT_SCHEMA] = { "init_schema", NC_DST | NC_JOB, 1, { NULL },
    "create missing schemas and tables" },
  [NC_OPT_CDC] = { "cdc", NC_SRC, 1, { NULL },
    "read changes continuously through logical replication (pgoutput) after the copy", 0, 0 },
  [NC_OPT_SLOT] = { "slot", NC_SRC, 0, { NULL },
    "the logical replication slot the job uses (cdc; without one: whether it can create one)",
    1, NC_OPT_CDC },
  [NC_OPT_PUBLICATION] = { "publication", NC_SRC, 0, { NULL },
    "the publication the job reads (cdc; without one: whether it can create one)", 1, NC_OPT_CDC },
};

#define ALWAYS -1, 0
#define WHEN(opt, values) opt, values
#define V(i) (1 << (i))
#define TRUE_OR_CASCADE (V(1) | V(2))

typedef struct {
  int kinds;            /* NC_SRC, NC_DST or both */
  int option;           /* the option that switches it on, or -1 */
  int values;           /* ... when its value is one of these (bit per value) */
  const char *id;       /* stable name: the rule's name in findings */
  const char *object_type;
  const char *privileges[3];
  const char *applies_to;
  int columns_suffice;  /* a grant on every column does as well */
  int optional;         /* needed only in some cases; a warning when missing */
  const char *check;    /* what satisfies it: the policy check of that name */
  const char *reason;
} requirement;

static const requirement all[] = {
  { NC_SRC | NC_DST, ALWAYS, "database.connect", "database", { "CONNECT" }, "the database", 0, 0,
    "grant", "open a session (PUBLIC has CONNECT unless it was revoked)" },
  { NC_DST, ALWAYS, "session.read_write", "connection", { NULL },
    "the session", 0, 0, "read_write_session",
    "every write fails on a hot standby or when default_transaction_read_only is on" },
  { NC_DST, ALWAYS, "table.writable", "table", { NULL },
    "synced views, materialized views and foreign tables", 0, 0, "writable",
    "INSERT (and UPDATE, for an upsert) writes a view only when it is automatically updatable "
    "or has INSTEAD OF triggers or rules, a foreign table only through a wrapper that writes, "
    "a materialized view never: no GRANT changes that" },
  { NC_SRC | NC_DST, ALWAYS, "schema.usage", "schema", { "USAGE" }, "schemas of the synced tables",
    0, 0, "grant", "look up any object in the schema" },
  { NC_SRC, ALWAYS, "table.select", "table", { "SELECT" }, "synced tables", 1, 0, "grant",
    "SELECT <all columns> FROM t" },
  { NC_SRC, ALWAYS, "policy.select", "policy", { "SELECT" },
    "synced tables where row-level security applies to the role", 0, 1, "rls_policy",
    "the copy silently leaves out every row no permissive SELECT policy lets the role see" },
  { NC_DST, ALWAYS, "table.insert", "table", { "INSERT" }, "synced tables", 1, 0, "grant",
    "INSERT INTO t (<insertable columns>) VALUES (...) ON CONFLICT DO NOTHING" },
  { NC_DST, ALWAYS, "policy.insert", "policy", { "INSERT" },
    "synced tables where row-level security applies to the role", 0, 0, "rls_policy",
    "every insert fails" },
  { NC_DST, WHEN(NC_OPT_ON_CONFLICT, V(1)), "table.update", "table", { "UPDATE" }, "synced tables",
    1, 0, "grant", "INSERT ... ON CONFLICT (<primary key>) DO UPDATE SET c = EXCLUDED.c" },
  { NC_DST, WHEN(NC_OPT_ON_CONFLICT, V(1)), "table.select_upsert", "table", { "SELECT" },
    "synced tables", 1, 0, "grant",
    "ON CONFLICT (<primary key>) DO UPDATE reads the key and every EXCLUDED column it sets" },
  { NC_DST, WHEN(NC_OPT_ON_CONFLICT, V(1)), "table.primary_key", "table", { NULL },
    "synced tables", 0, 0, "primary_key",
    "ON CONFLICT (<primary key>) DO UPDATE needs a primary key to find the existing row" },
  { NC_DST, WHEN(NC_OPT_ON_CONFLICT, V(1)), "policy.update", "policy", { "UPDATE", "SELECT" },
    "synced tables where row-level security applies to the role", 0, 0, "rls_policy",
    "ON CONFLICT DO UPDATE fails on every existing row, which it must see and update" },
  { NC_DST, WHEN(NC_OPT_TRUNCATE, TRUE_OR_CASCADE), "table.truncate", "table", { "TRUNCATE" },
    "synced tables", 0, 0, "grant", "TRUNCATE <every synced table> before the copy" },
  { NC_DST, WHEN(NC_OPT_TRUNCATE, V(1)), "table.truncate_references", "table", { NULL },
    "synced tables referenced by a foreign key from a table outside the job", 0, 0,
    "no_outside_references",
    "TRUNCATE fails on a table referenced by a foreign key from a table it does not also empty" },
  { NC_DST, WHEN(NC_OPT_TRUNCATE, V(2)), "table.truncate_cascade", "table", { "TRUNCATE" },
    "tables TRUNCATE ... CASCADE reaches through foreign keys", 0, 0, "cascade_grants",
    "TRUNCATE ... CASCADE also empties every table referencing a synced one, and needs "
    "TRUNCATE on each" },
  { NC_DST, WHEN(NC_OPT_TRUNCATE, TRUE_OR_CASCADE), "table.truncatable", "table", { NULL },
    "synced tables", 0, 0, "truncatable", "views and foreign tables without TRUNCATE support "
    "cannot be truncated" },
  { NC_DST, WHEN(NC_OPT_RESET_SEQUENCES, V(1)), "sequence.update", "sequence", { "UPDATE" },
    "sequences owned by columns of the synced tables", 0, 0, "grant",
    "setval() moves each sequence past the copied values" },
  { NC_DST, WHEN(NC_OPT_INIT_SCHEMA, V(1)), "schema.create", "schema", { "CREATE" },
    "schemas of the synced tables", 0, 0, "grant", "CREATE TABLE for tables that do not exist yet" },
  { NC_DST, WHEN(NC_OPT_INIT_SCHEMA, V(1)), "database.create", "database", { "CREATE" },
    "the database, when a schema does not exist yet", 0, 0, "grant_if_schema_missing",
    "CREATE SCHEMA for a missing schema" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "replication.wal_level", "server", { NULL }, "the server", 0,
    0, "wal_level_logical", "logical decoding needs wal_level = logical (set at server start)" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "replication.role", "role", { "REPLICATION" },
    "the login role itself", 0, 0, "replication_role",
    "a replication connection needs REPLICATION on the login role (or superuser): the attribute "
    "is not inherited from a group role" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "replication.connection", "connection", { NULL },
    "the connection with replication=database", 0, 0, "replication_connection",
    "the job streams over a replication connection: pg_hba.conf, the role and a free WAL sender "
    "must allow it (proven with IDENTIFY_SYSTEM)" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "replication.slot", "slot", { NULL }, "the job's slot", 0,
    0, "replication_slot", "the named slot must be logical, use pgoutput, belong to this "
    "database and be usable; without one, a free slot (max_replication_slots) to create it" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "publication.tables", "publication", { NULL },
    "the job's publication", 0, 0, "publication", "the publication must cover every synced "
    "table and publish inserts, updates and deletes of every column and row; without one, the "
    "role must be able to create it (owner of each table, CREATE on the database)" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "table.replica_identity", "table", { NULL },
    "synced tables", 0, 0, "replica_identity", "updates and deletes carry the old row's key "
    "only with a replica identity (a primary key, an index or FULL); in a publication that "
    "publishes them, a table without one refuses the application's UPDATE and DELETE" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "replication.slot_health", "slot", { NULL }, "the job's slot",
    0, 1, "slot_health", "a slot whose consumer falls behind keeps WAL until the disk fills or "
    "max_slot_wal_keep_size (or, on 18, idle_replication_slot_timeout) invalidates it, and its "
    "catalog_xmin holds back vacuum: the WAL runway, the time left and the ages are named" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "replication.oldest_transaction", "server", { NULL },
    "open transactions on the server", 0, 1, "oldest_transaction", "creating a slot waits for "
    "every transaction with an ID to end, and a long one holds back catalog_xmin" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "replication.failover", "slot", { NULL }, "the job's slot",
    0, 1, "slot_failover", "a logical slot survives a failover only when it is synchronized to "
    "the standby (PostgreSQL 17: failover = true, synchronized_standby_slots); otherwise it is "
    "missing on the new primary and the job must copy the tables again" },
  { NC_SRC, WHEN(NC_OPT_CDC, V(1)), "sequence.not_replicated", "sequence", { NULL },
    "sequences owned by columns of the synced tables", 0, 1, "sequences_not_replicated",
    "logical replication does not carry sequence values: set them after the cut-over" },
  { NC_SRC | NC_DST, ALWAYS, "table.statements", "table", { NULL }, "synced tables", 0, 0,
    "executor", "the job's statements, planned by the server as the role (EXPLAIN): what the "
    "executor checks beyond the grants (views' base tables, predefined roles, column "
    "privileges, relation kinds)" },
  { NC_DST, ALWAYS, "row.execute", "function", { "EXECUTE" },
    "functions the server calls for each written row: CHECK and domain constraints, stored "
    "generated columns, index expressions and partial-index predicates", 0, 0, "row_functions",
    "the server calls them for every row it writes, as the role, and prepares them only when the "
    "first row arrives (EXPLAIN does not): every row fails" },
  { NC_DST, ALWAYS, "row.foreign_keys", "table", { NULL },
    "tables a synced one references by a foreign key, and those referencing it", 0, 0,
    "foreign_key_owners", "the server checks a foreign key as the owner of the table the check "
    "reads: that owner needs USAGE on its schema, SELECT and UPDATE (FOR KEY SHARE) on the table "
    "and EXECUTE on the key's equality operators, or every row with a key fails" },
  { NC_DST, ALWAYS, "row.arbiters", "table", { NULL }, "synced tables", 0, 0, "arbiters",
    "INSERT ... ON CONFLICT refuses a DEFERRABLE unique, primary key or exclusion constraint as "
    "an arbiter (DO NOTHING uses them all, DO UPDATE the primary key): every row fails" },
  { NC_SRC | NC_DST, ALWAYS, "policy.filters_rows", "table", { NULL },
    "synced tables where row-level security applies to the role", 0, 1, "filtering_policies",
    "a source's copy misses the rows the policies hide; a destination's rows that the policies "
    "refuse fail" },
  { NC_DST, ALWAYS, "table.triggers", "table", { NULL }, "synced tables with triggers", 0, 1,
    "invoker_triggers", "a trigger's SECURITY INVOKER function runs as the role: what it does "
    "is not verified" },
  { NC_DST, ALWAYS, "sequence.usage", "sequence", { "USAGE" },
    "sequences used by column defaults of the synced tables", 0, 1, "grant",
    "only when a row leaves a serial column to its default (nextval); the copy sets every "
    "column explicitly" },
  { NC_DST, ALWAYS, "function.execute", "function", { "EXECUTE" },
    "functions called by column defaults of the synced tables", 0, 1, "grant",
    "only when a row leaves such a column to its default" },

  /* A job: the source's tables copied into the destination's. */
  { NC_JOB, ALWAYS, "pair.table", "table", { NULL }, "destination tables of the job", 0, 0,
    "pair_table", "each source table is copied into the destination table of the same name (or "
    "its mapping): it must exist, or init_schema creates it (CREATE on its schema, and every "
    "type its columns use known to the destination server)" },
  { NC_JOB, ALWAYS, "pair.columns", "table", { NULL }, "columns of the job's tables", 0, 0,
    "pair_columns", "every copied source column needs a destination column of its name (or "
    "mapping); a destination column the source lacks gets its default, or NULL: NOT NULL "
    "without a default fails every row; a generated column accepts no value" },
  { NC_JOB, ALWAYS, "pair.types", "table", { NULL }, "columns of the job's tables", 0, 0,
    "pair_types", "each value arrives as the source column's type: the destination server must "
    "accept it into its column's type by an assignment cast (an enum: every source label)" },
  { NC_JOB, ALWAYS, "pair.narrowing", "table", { NULL }, "columns of the job's tables", 0, 1,
    "pair_narrowing", "a narrower destination type (length, precision, integer width, an "
    "assignment-only cast, a domain's constraint, time zones) refuses or changes some values" },
  { NC_JOB, ALWAYS, "pair.constraints", "table", { NULL }, "destination constraints", 0, 1,
    "pair_constraints", "destination NOT NULL, UNIQUE, CHECK and exclusion constraints and "
    "foreign keys to tables outside the job that the source does not also guarantee refuse the "
    "rows that break them" },
  { NC_JOB, ALWAYS, "pair.identity", "table", { NULL }, "destination identity columns", 0, 1,
    "pair_identity", "the copy writes identity columns with OVERRIDING SYSTEM VALUE; their "
    "sequences stay behind the copied values unless reset_sequences" },
  { NC_JOB, WHEN(NC_OPT_ON_CONFLICT, V(1)), "pair.conflict_target", "table", { NULL },
    "destination tables of the job", 0, 0, "pair_conflict_target",
    "ON CONFLICT (<primary key>) DO UPDATE needs the destination's primary key, every column of "
    "it copied from the source" },
  { NC_JOB, ALWAYS, "pair.order", "table", { NULL },
    "foreign keys among the job's destination tables", 0, 0, "pair_order",
    "tables are copied parents first; a cycle of foreign keys (a table referencing itself "
    "included) loads only with every key of the cycle DEFERRABLE, checked at COMMIT" },
  { NC_JOB, ALWAYS, "pair.encoding", "database", { NULL }, "the two databases", 0, 1,
    "pair_encoding", "text converts from the source's server_encoding to the destination's: "
    "characters the destination's encoding lacks fail" },
};

/* Pushes the value of option o at index v: false, true or a choice. */
static void push_value(lua_State *L, const job_option *o, int v)
{
  if (o->names) {
    lua_pushnil(L);
    return;
  }
  if (o->boolean && v < 2)
    lua_pushboolean(L, v);
  else
    lua_pushstring(L, o->choices[v - (o->boolean ? 2 : 0)]);
}

static int value_count(const job_option *o)
{
  int n = o->boolean ? 2 : 0, i;
  if (o->names)
    return 0;
  for (i = 0; i < 3 && o->choices[i] != NULL; i++)
    n++;
  return n;
}

/* The index of the value at idx for option o, or -1. */
static int value_index(lua_State *L, const job_option *o, int idx)
{
  int i, n = value_count(o);
  idx = nc_absindex(L, idx);
  for (i = 0; i < n; i++) {
    int same;
    push_value(L, o, i);
    same = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    if (same)
      return i;
  }
  return -1;
}

static const char *describe_values(lua_State *L, const job_option *o)
{
  luaL_Buffer b;
  int i, n = value_count(o);
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) {
    if (i > 0)
      luaL_addstring(&b, i == n - 1 ? " or " : ", ");
    if (o->boolean && i < 2) {
      luaL_addstring(&b, i ? "true" : "false");
    } else {
      luaL_addchar(&b, '"');
      luaL_addstring(&b, o->choices[i - (o->boolean ? 2 : 0)]);
      luaL_addchar(&b, '"');
    }
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

void nc_check_job(lua_State *L, int kind, int opts, int arg, int with_kind, nc_job *job)
{
  int i;
  memset(job, 0, sizeof *job);
  job->kind = kind;
  if (lua_isnoneornil(L, opts))
    return;
  opts = nc_absindex(L, opts);
  luaL_checkstack(L, 6, NULL);
  lua_pushnil(L);
  while (lua_next(L, opts) != 0) {
    int found = -1;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (i = 0; i < NC_OPT_COUNT; i++)
        if (strcmp(options[i].name, lua_tostring(L, -2)) == 0)
          found = i;
    if (found < 0 && with_kind && lua_type(L, -2) == LUA_TSTRING
        && strcmp(lua_tostring(L, -2), "kind") == 0)
      found = NC_OPT_COUNT; /* a job table carries its kind */
    if (found < 0)
      luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'",
                                            lua_type(L, -2) == LUA_TSTRING
                                              ? lua_tostring(L, -2) : luaL_typename(L, -2)));
    if (found < NC_OPT_COUNT && options[found].names) {
      size_t len = 0;
      const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
      if (name == NULL || len == 0 || len > NC_NAME_MAX || strlen(name) != len)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s: a name of 1 to %d bytes expected",
                                              options[found].name, NC_NAME_MAX));
      if (!(options[found].kinds & kind))
        luaL_argerror(L, arg, lua_pushfstring(L, "%s applies to sources only",
                                              options[found].name));
      memcpy(job->name[found], name, len + 1);
    } else if (found < NC_OPT_COUNT) {
      const job_option *o = &options[found];
      int v = value_index(L, o, -1);
      if (v < 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s must be %s", o->name, describe_values(L, o)));
      if (v > 0 && !(o->kinds & kind))
        luaL_argerror(L, arg, lua_pushfstring(L, "%s applies to %s only", o->name,
                                              o->kinds & NC_DST ? "destinations" : "sources"));
      job->value[found] = v;
    }
    lua_pop(L, 1);
  }
  for (i = 0; i < NC_OPT_COUNT; i++)
    if (options[i].names && job->name[i][0] != '\0' && job->value[options[i].needs] != 1)
      luaL_argerror(L, arg, lua_pushfstring(L, "%s needs %s = true", options[i].name,
                                            options[options[i].needs].name));
}

/* A short plain word, safe to repeat in a message (never a URL or any
 * text that could hold a password). */
static int plain_word(const char *s)
{
  size_t n = 0;
  for (; s[n] != '\0'; n++)
    if (n >= 32 || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'
                     || s[n] == '-'))
      return 0;
  return n > 0;
}

int nc_check_kind(lua_State *L, int idx, int arg, const char *name)
{
  const char *kind = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
  if (kind != NULL && strcmp(kind, "source") == 0)
    return NC_SRC;
  if (kind != NULL && strcmp(kind, "destination") == 0)
    return NC_DST;
  luaL_argerror(L, arg, lua_pushfstring(L, "%s: \"source\" or \"destination\" expected, got %s",
                                        name, kind != NULL && plain_word(kind) ? kind
                                                                             : luaL_typename(L, idx)));
  return 0;
}

const char *nc_job_choice(const nc_job *job, int option)
{
  const job_option *o = &options[option];
  int v = job->value[option];
  if (o->boolean && v < 2)
    return v ? "true" : "false";
  return o->choices[v - (o->boolean ? 2 : 0)];
}

void nc_push_job(lua_State *L, const nc_job *job)
{
  int i;
  lua_createtable(L, 0, NC_OPT_COUNT + 1);
  lua_pushstring(L, job->kind == NC_DST ? "destination" : "source");
  lua_setfield(L, -2, "kind");
  for (i = 0; i < NC_OPT_COUNT; i++) {
    if (options[i].names && job->name[i][0] != '\0')
      lua_pushstring(L, job->name[i]);
    else
      push_value(L, &options[i], job->value[i]);
    lua_setfield(L, -2, options[i].name);
  }
}

static void push_kinds(lua_State *L, int kinds)
{
  int n = 0;
  lua_newtable(L);
  if (kinds & NC_SRC) {
    lua_pushliteral(L, "source");
    lua_rawseti(L, -2, ++n);
  }
  if (kinds & NC_DST) {
    lua_pushliteral(L, "destination");
    lua_rawseti(L, -2, ++n);
  }
  if (kinds & NC_JOB) {
    lua_pushliteral(L, "job");
    lua_rawseti(L, -2, ++n);
  }
}

/* neoconn.job_options() -> { { name, kinds, values, default, help [, names, needs] } ... }
 * names: the option takes a name (values is empty); needs: the option that
 * must be true for it. */
int nc_l_job_options(lua_State *L)
{
  int i, v;
  lua_createtable(L, NC_OPT_COUNT, 0);
  for (i = 0; i < NC_OPT_COUNT; i++) {
    const job_option *o = &options[i];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, o->name);
    lua_setfield(L, -2, "name");
    push_kinds(L, o->kinds);
    lua_setfield(L, -2, "kinds");
    lua_newtable(L);
    for (v = 0; v < value_count(o); v++) {
      push_value(L, o, v);
      lua_rawseti(L, -2, v + 1);
    }
    lua_setfield(L, -2, "values");
    push_value(L, o, 0);
    lua_setfield(L, -2, "default");
    if (o->names) {
      lua_pushboolean(L, 1);
      lua_setfield(L, -2, "names");
      lua_pushstring(L, options[o->needs].name);
      lua_setfield(L, -2, "needs");
    }
    lua_pushstring(L, o->help);
    lua_setfield(L, -2, "help");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static void push_list(lua_State *L, const char *const *items, int cap)
{
  int p;
  lua_newtable(L);
  for (p = 0; p < cap && items[p] != NULL; p++) {
    lua_pushstring(L, items[p]);
    lua_rawseti(L, -2, p + 1);
  }
}

/* neoconn.requirements(kind [, opts]): the requirements of that job. */
int nc_l_requirements(lua_State *L)
{
  nc_job job;
  size_t i;
  int n = 0;
  int kind = lua_type(L, 1) == LUA_TSTRING && strcmp(lua_tostring(L, 1), "job") == 0
               ? NC_JOB : nc_check_kind(L, 1, 1, "kind");
  if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TTABLE)
    luaL_argerror(L, 2, lua_pushfstring(L, "opts: table of job options expected, got %s",
                                        luaL_typename(L, 2)));
  nc_check_job(L, kind, 2, 2, 0, &job);
  lua_newtable(L);
  for (i = 0; i < sizeof all / sizeof all[0]; i++) {
    const requirement *r = &all[i];
    if (!(r->kinds & kind) || (r->option >= 0 && !(r->values & V(job.value[r->option]))))
      continue;
    lua_createtable(L, 0, 9);
    lua_pushstring(L, r->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, r->object_type);
    lua_setfield(L, -2, "object_type");
    push_list(L, r->privileges, 3);
    lua_setfield(L, -2, "privileges");
    lua_pushstring(L, r->applies_to);
    lua_setfield(L, -2, "applies_to");
    lua_pushstring(L, r->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, r->check);
    lua_setfield(L, -2, "check");
    lua_pushboolean(L, r->optional);
    lua_setfield(L, -2, "optional");
    lua_pushboolean(L, r->columns_suffice);
    lua_setfield(L, -2, "columns_suffice");
    if (r->option >= 0) {
      lua_pushstring(L, options[r->option].name);
      lua_setfield(L, -2, "option");
    }
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}
