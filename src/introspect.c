/* neoconn.test: connect, then read in one READ ONLY transaction and one
 * round trip what the session role may do, as PostgreSQL itself decides it
 * (has_*_privilege on OIDs, pg_has_role, row_security_active), never from
 * information_schema. Column names with a dot shape the report (result.c). */
#include <stdio.h>
#include <string.h>
#include "neoconn.h"

#define USER_SCHEMA(n) n ".nspname !~ '^pg_' AND " n ".nspname <> 'information_schema'"
#define RELKINDS "('r','p','v','m','f')"
/* The tables asked for ($2 schemas, $3 names), once each, as w(nsp, rel). */
#define ASKED_TABLES " (SELECT DISTINCT * FROM unnest($2::text[], $3::text[])) AS w(nsp, rel)"

/* Tables in scope, as a CTE named scope. The variant is chosen here rather
 * than left to the planner, so a list of tables is always index lookups and
 * fast in any catalog. */
#define SCOPE_COLUMNS                                                                    \
  " SELECT c.oid, n.nspname, c.relname, c.relkind, c.relowner, c.relrowsecurity,"        \
  "  c.relforcerowsecurity"
#define SCOPE_IN_SCHEMAS                                                                 \
  SCOPE_COLUMNS " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"         \
  " WHERE c.relkind IN " RELKINDS " AND " USER_SCHEMA("n")
#define SCOPE_LISTED                                                                     \
  SCOPE_COLUMNS                                                                          \
  " FROM" ASKED_TABLES                                                                \
  " JOIN pg_namespace n ON n.nspname = w.nsp"                                            \
  " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.rel"                     \
  " WHERE c.relkind IN " RELKINDS

static const char SCOPE_ALL[] = "(" SCOPE_IN_SCHEMAS ")";
static const char SCOPE_SCHEMAS[] =
  "(" SCOPE_IN_SCHEMAS " AND n.nspname = ANY($1::text[]))";
static const char SCOPE_TABLES[] = "(" SCOPE_LISTED ")";
static const char SCOPE_BOTH[] =
  "(" SCOPE_IN_SCHEMAS " AND n.nspname = ANY($1::text[]) UNION ALL " SCOPE_LISTED
  " AND NOT (n.nspname = ANY($1::text[])))";

#define COVERAGE(priv, extra)                                                            \
  "(SELECT CASE WHEN bool_and(has_column_privilege(s.oid, a.attnum, '" priv "'))"        \
  " THEN 'all' WHEN bool_or(has_column_privilege(s.oid, a.attnum, '" priv "'))"          \
  " THEN 'some' ELSE 'none' END FROM pg_attribute a"                                     \
  " WHERE a.attrelid = s.oid AND a.attnum > 0 AND NOT a.attisdropped" extra ")"

/* A permissive policy for cmd that applies to the role (PUBLIC is OID 0). */
#define POLICY(cmd)                                                                      \
  "EXISTS (SELECT 1 FROM pg_policy pol WHERE pol.polrelid = s.oid AND pol.polpermissive" \
  " AND pol.polcmd IN ('" cmd "', '*') AND EXISTS (SELECT 1 FROM unnest(pol.polroles) r" \
  " WHERE CASE WHEN r = 0 THEN true ELSE pg_has_role(r, 'USAGE') END))"

static const char SQL_SERVER[] =
  "SELECT version() AS \"server.version\","
  " current_setting('server_version_num')::int AS \"server.version_num\","
  " pg_is_in_recovery() AS \"server.in_hot_standby\","
  " current_user AS \"session.user\", session_user AS \"session.session_user\","
  " current_database() AS \"session.database\"";

static const char SQL_ROLE[] =
  "WITH RECURSIVE me AS (SELECT oid FROM pg_roles WHERE rolname = current_user),"
  " m(roleid) AS (SELECT a.roleid FROM pg_auth_members a, me WHERE a.member = me.oid"
  "  UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.roleid)"
  " SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolcreatedb AS createdb,"
  " r.rolcreaterole AS createrole, r.rolreplication AS replication,"
  " r.rolbypassrls AS bypassrls, r.rolcanlogin AS can_login,"
  " to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS valid_until,"
  " ARRAY(SELECT g.rolname::text FROM m JOIN pg_roles g ON g.oid = m.roleid"
  "  WHERE pg_has_role(me.oid, g.oid, 'USAGE') ORDER BY 1) AS inherits,"
  " ARRAY(SELECT g.rolname::text FROM m JOIN pg_roles g ON g.oid = m.roleid"
  "  WHERE NOT pg_has_role(me.oid, g.oid, 'USAGE') ORDER BY 1) AS set_role_only"
  " FROM pg_roles r JOIN me ON r.oid = me.oid";

static const char SQL_DATABASE[] =
  "SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner,"
  " has_database_privilege(d.oid, 'CONNECT') AS connect,"
  " has_database_privilege(d.oid, 'CREATE') AS \"create\","
  " has_database_privilege(d.oid, 'TEMP') AS temp"
  " FROM pg_database d WHERE d.datname = current_database()";

static const char SQL_SCHEMAS[] =
  "SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner,"
  " has_schema_privilege(n.oid, 'USAGE') AS usage,"
  " has_schema_privilege(n.oid, 'CREATE') AS \"create\""
  " FROM pg_namespace n WHERE " USER_SCHEMA("n")
  " AND (($1::text[] IS NULL AND $2::text[] IS NULL) OR n.nspname = ANY($1::text[])"
  "  OR n.nspname = ANY($2::text[]))"
  " ORDER BY 1";

/* %s: the MAINTAIN privilege on PostgreSQL 17 and later. */
static const char SQL_TABLES[] =
  " SELECT s.nspname AS \"schema\", s.relname AS name,"
  " CASE s.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'"
  "  WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END AS kind,"
  " pg_get_userbyid(s.relowner) AS \"owner.name\","
  " s.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS \"owner.is_self\","
  " pg_has_role(s.relowner, 'USAGE') AS \"owner.is_member\","
  " p.sel AS \"privileges.SELECT\", p.ins AS \"privileges.INSERT\","
  " p.upd AS \"privileges.UPDATE\", p.del AS \"privileges.DELETE\","
  " p.trn AS \"privileges.TRUNCATE\", p.ref AS \"privileges.REFERENCES\","
  " p.trg AS \"privileges.TRIGGER\"%s,"
  " CASE WHEN p.sel THEN 'all' WHEN NOT p.colacl THEN 'none' ELSE "
  COVERAGE("SELECT", "") " END AS \"columns.SELECT\","
  " CASE WHEN p.ins THEN 'all' WHEN NOT p.colacl THEN 'none' ELSE "
  COVERAGE("INSERT", " AND a.attgenerated = ''") " END AS \"columns.INSERT\","
  " CASE WHEN p.upd THEN 'all' WHEN NOT p.colacl THEN 'none' ELSE "
  COVERAGE("UPDATE", " AND a.attgenerated = ''") " END AS \"columns.UPDATE\","
  " s.relrowsecurity AS \"rls.enabled\", s.relforcerowsecurity AS \"rls.forced\","
  " CASE WHEN s.relrowsecurity THEN row_security_active(s.oid) ELSE false END AS \"rls.applies\","
  " CASE WHEN s.relrowsecurity THEN " POLICY("a") " END AS \"rls.insert_policy\","
  " CASE WHEN s.relrowsecurity THEN " POLICY("w") " END AS \"rls.update_policy\","
  " CASE WHEN s.relrowsecurity THEN " POLICY("r") " END AS \"rls.select_policy\""
  " FROM scope s CROSS JOIN LATERAL (SELECT has_table_privilege(s.oid, 'SELECT') AS sel,"
  "  has_table_privilege(s.oid, 'INSERT') AS ins, has_table_privilege(s.oid, 'UPDATE') AS upd,"
  "  has_table_privilege(s.oid, 'DELETE') AS del, has_table_privilege(s.oid, 'TRUNCATE') AS trn,"
  "  has_table_privilege(s.oid, 'REFERENCES') AS ref,"
  "  has_table_privilege(s.oid, 'TRIGGER') AS trg%s,"
  /* Without any column ACL a column privilege is the table's: skip the
   * per-column checks, by far the costliest part in a large catalog. The
   * tables with column ACLs are found in one index scan over the scope's
   * OIDs (= ANY of an array: never a scan of all of pg_attribute), then
   * looked up in a hash. OFFSET 0 keeps p from being pulled up into the
   * outer query, where each reference to p.sel or p.colacl would call its
   * function again. */
  "  s.oid IN (SELECT ca.attrelid FROM pg_attribute ca"
  "   WHERE ca.attrelid = ANY (ARRAY(SELECT oid FROM scope)) AND ca.attnum > 0"
  "   AND ca.attacl IS NOT NULL) AS colacl OFFSET 0) p"
  " ORDER BY 1, 2";

/* Sequences owned by tables in scope (serial and identity columns), and,
 * without a table list, every sequence of the schemas in scope. */
#define SEQUENCE_COLUMNS                                                                 \
  " SELECT sn.nspname AS \"schema\", sq.relname AS name,"                                \
  " pg_get_userbyid(sq.relowner) AS owner,"                                              \
  " otn.nspname AS \"owned_by.schema\", ot.relname AS \"owned_by.table\","               \
  " a.attname AS \"owned_by.column\","                                                   \
  " has_sequence_privilege(sq.oid, 'USAGE') AS \"privileges.USAGE\","                    \
  " has_sequence_privilege(sq.oid, 'SELECT') AS \"privileges.SELECT\","                  \
  " has_sequence_privilege(sq.oid, 'UPDATE') AS \"privileges.UPDATE\""

#define SEQUENCE_OWNER_JOINS                                                             \
  " JOIN pg_namespace sn ON sn.oid = sq.relnamespace"                                    \
  " LEFT JOIN pg_class ot ON ot.oid = d.refobjid"                                        \
  " LEFT JOIN pg_namespace otn ON otn.oid = ot.relnamespace"                             \
  " LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"

static const char SQL_SEQUENCES_OWNED[] =
  SEQUENCE_COLUMNS
  " FROM scope s"
  " JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = s.oid"
  "  AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0"
  " JOIN pg_class sq ON sq.oid = d.objid AND sq.relkind = 'S'"
  SEQUENCE_OWNER_JOINS;

/* Without a table list: also the sequences no table owns (alone, without
 * any option: every user schema is in scope, so no owned sequence is
 * missed and the per-table dependency lookups are saved). */
static const char SQL_SEQUENCES_IN_SCHEMAS[] =
  SEQUENCE_COLUMNS
  " FROM %s"
  " LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = sq.oid"
  "  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0"
  SEQUENCE_OWNER_JOINS
  " WHERE sq.relkind = 'S' AND " USER_SCHEMA("sn")
  "  AND ($1::text[] IS NULL OR sn.nspname = ANY($1::text[]))";

static const char SQL_FUNCTIONS[] =
  " SELECT pn.nspname AS \"schema\", p.proname AS name,"
  " pg_get_function_identity_arguments(p.oid) AS arguments,"
  " pg_get_userbyid(p.proowner) AS owner,"
  " has_function_privilege(p.oid, 'EXECUTE') AS \"privileges.EXECUTE\","
  " s.nspname AS \"used_by.schema\", s.relname AS \"used_by.table\","
  " a.attname AS \"used_by.column\""
  " FROM scope s"
  " JOIN pg_attrdef ad ON ad.adrelid = s.oid"
  " JOIN pg_attribute a ON a.attrelid = s.oid AND a.attnum = ad.adnum AND NOT a.attisdropped"
  " JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid"
  "  AND d.refclassid = 'pg_proc'::regclass"
  " JOIN pg_proc p ON p.oid = d.refobjid"
  " JOIN pg_namespace pn ON pn.oid = p.pronamespace"
  " ORDER BY 6, 7, 8, 1, 2";

static const char SQL_NOT_FOUND[] =
  "SELECT w.nsp AS \"schema\", w.rel AS name"
  " FROM" ASKED_TABLES
  " WHERE NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
  "  WHERE n.nspname = w.nsp AND c.relname = w.rel AND c.relkind IN " RELKINDS ")"
  " UNION ALL"
  " SELECT s, NULL FROM unnest($1::text[]) AS s"
  " WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s)"
  " ORDER BY 1, 2";

enum { Q_SERVER, Q_ROLE, Q_DATABASE, Q_SCHEMAS, Q_TABLES, Q_SEQUENCES, Q_FUNCTIONS,
       Q_NOT_FOUND, Q_COUNT };

/* Pushes the text[] literal ({"a","b \"c\""}) of the n strings in table t. */
static void push_array_literal(lua_State *L, int t, int n)
{
  size_t size = 3, at = 0, len, j;
  int i;
  char *out;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    lua_tolstring(L, -1, &len);
    size += 2 * len + 3;
    lua_pop(L, 1);
  }
  out = (char *)nc_newuserdata(L, size);
  out[at++] = '{';
  for (i = 1; i <= n; i++) {
    const char *s;
    lua_rawgeti(L, t, i);
    s = lua_tolstring(L, -1, &len);
    if (i > 1)
      out[at++] = ',';
    out[at++] = '"';
    for (j = 0; j < len; j++) {
      if (s[j] == '"' || s[j] == '\\')
        out[at++] = '\\';
      out[at++] = s[j];
    }
    out[at++] = '"';
    lua_pop(L, 1);
  }
  out[at++] = '}';
  lua_pushlstring(L, out, at);
  lua_remove(L, -2);
}

static void check_name(lua_State *L, int arg, const char *what, int i, int idx)
{
  size_t len;
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d]: string expected, got %s", what, i,
                                          luaL_typename(L, idx)));
  s = lua_tolstring(L, idx, &len);
  if (len == 0 || memchr(s, '\0', len) != NULL)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d]: empty name or zero byte", what, i));
}

/* Pushes the parameters $1 (schemas), $2 and $3 (table schemas and names):
 * each a text[] literal or nil. Raises on malformed options. */
static void push_scope_params(lua_State *L, int opts, int arg)
{
  int list, i, n, schemas, names;
  if (lua_isnoneornil(L, opts)) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    return;
  }
  lua_getfield(L, opts, "schemas");
  if (lua_isnil(L, -1)) {
    /* keep nil as $1 */
  } else if (lua_type(L, -1) != LUA_TTABLE) {
    luaL_argerror(L, arg, "schemas: list of schema names expected");
  } else {
    list = lua_gettop(L);
    n = (int)lua_rawlen(L, list);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, list, i);
      check_name(L, arg, "schemas", i, -1);
      lua_pop(L, 1);
    }
    push_array_literal(L, list, n);
    lua_replace(L, list);
  }

  lua_getfield(L, opts, "tables");
  if (lua_isnil(L, -1)) {
    lua_pushnil(L);
    return;
  }
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_argerror(L, arg, "tables: list of tables expected ({ schema=, name= } or \"schema.name\")");
  list = lua_gettop(L);
  n = (int)lua_rawlen(L, list);
  lua_createtable(L, n, 0);
  schemas = lua_gettop(L);
  lua_createtable(L, n, 0);
  names = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "schema");
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushliteral(L, "public");
      }
      check_name(L, arg, "tables (schema)", i, -1);
      lua_getfield(L, -2, "name");
      check_name(L, arg, "tables (name)", i, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      const char *err = nc_parse_qualified(L, lua_tostring(L, -1));
      if (err != NULL)
        luaL_argerror(L, arg, lua_pushfstring(L, "tables[%d]: %s", i, err));
      if (lua_isnil(L, -2)) {
        lua_pushliteral(L, "public");
        lua_replace(L, -3);
      }
    } else {
      luaL_argerror(L, arg, lua_pushfstring(L, "tables[%d]: table or qualified name expected, "
                                               "got %s", i, luaL_typename(L, -1)));
    }
    lua_rawseti(L, names, i);
    lua_rawseti(L, schemas, i);
    lua_pop(L, 1);
  }
  push_array_literal(L, schemas, n);
  push_array_literal(L, names, n);
  lua_replace(L, list + 1); /* $3: names */
  lua_replace(L, list);     /* $2: schemas */
  lua_settop(L, list + 1);
}

/* t[key] = v for the table at index t. */
static void set_number(lua_State *L, int t, const char *key, double v)
{
  t = nc_absindex(L, t);
  lua_pushnumber(L, v);
  lua_setfield(L, t, key);
}

static void set_bool(lua_State *L, int t, const char *key, int v)
{
  t = nc_absindex(L, t);
  lua_pushboolean(L, v);
  lua_setfield(L, t, key);
}

static double ms(double seconds)
{
  return (double)(long)(seconds * 100000.0 + 0.5) / 100.0;
}

/* Pushes the stages list: the handshake stages from the connection's
 * record, then introspection when it ran (introspect_ms >= 0). */
static void push_stages(lua_State *L, const nc_conn *c, const nc_error *failure,
                        double introspect_ms)
{
  int n = 0, s;
  double prev = 0;
  nc_stage failed_at = failure != NULL ? failure->stage : NC_STAGE_COUNT;
  lua_newtable(L);
  if (failed_at == NC_STAGE_CONFIG) {
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "config");
    lua_setfield(L, -2, "name");
    set_bool(L, -1, "ok", 0);
    set_number(L, -1, "ms", 0);
    lua_rawseti(L, -2, ++n);
    return;
  }
  for (s = NC_STAGE_CONNECT; s <= NC_STAGE_SESSION && s <= (int)failed_at; s++) {
    double done = c->stage_done[s];
    int ok = (int)failed_at > s;
    lua_createtable(L, 0, 4);
    lua_pushstring(L, nc_stage_names[s]);
    lua_setfield(L, -2, "name");
    set_bool(L, -1, "ok", ok);
    if (s == NC_STAGE_TLS && !c->tls_seen && ok) {
      set_number(L, -1, "ms", 0);
      set_bool(L, -1, "skipped", 1);
    } else {
      if (done < 0)
        done = ok ? prev : c->failed_after;
      set_number(L, -1, "ms", ms(done - prev));
      prev = done;
    }
    lua_rawseti(L, -2, ++n);
  }
  if (failed_at == NC_STAGE_INTROSPECT || introspect_ms >= 0) {
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "introspect");
    lua_setfield(L, -2, "name");
    set_bool(L, -1, "ok", failed_at != NC_STAGE_INTROSPECT);
    set_number(L, -1, "ms", introspect_ms >= 0 ? introspect_ms : 0);
    lua_rawseti(L, -2, ++n);
  }
}

/* session.host, port and sslmode: what libpq actually used, whether they
 * came from a table, a URL, a service file or the environment. */
static void set_endpoint(lua_State *L, int session, const nc_conn *c)
{
  PQconninfoOption *o;
  PQconninfoOption **box = nc_new_options_box(L);
  lua_pushstring(L, c->host);
  lua_setfield(L, session, "host");
  lua_pushstring(L, c->port);
  lua_setfield(L, session, "port");
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
  set_bool(L, -1, "in_use", PQsslInUse(pg));
  if (PQsslInUse(pg)) {
    if ((v = PQsslAttribute(pg, "protocol")) != NULL) {
      lua_pushstring(L, v);
      lua_setfield(L, -2, "protocol");
    }
    if ((v = PQsslAttribute(pg, "cipher")) != NULL) {
      lua_pushstring(L, v);
      lua_setfield(L, -2, "cipher");
    }
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

/* Pushes the list of row lists of the test in progress. */
static int push_lists(lua_State *L, const nc_conn *c)
{
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->state_ref);
  lua_getfield(L, -1, "lists");
  lua_remove(L, -2);
  return lua_gettop(L);
}

/* Arms a test on c: remembers its options (validated now, so malformed
 * options raise before anything is sent) and its deadline. */
static void arm(lua_State *L, nc_conn *c, int opts, double started, double timeout, int owned)
{
  int i;
  opts = nc_absindex(L, opts);
  push_scope_params(L, opts, opts); /* $1..$3, kept in the state */
  lua_createtable(L, 3, 1);
  for (i = 3; i >= 1; i--) {
    lua_insert(L, -2);
    lua_rawseti(L, -2, i);
  }
  lua_newtable(L);
  lua_setfield(L, -2, "lists");
  c->state_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->test_started = started;
  c->test_deadline = started + timeout;
  c->owned = owned;
  c->phase = 0;
  c->query_failed = 0;
  c->introspect_started = -1;
}

/* Sends the catalog queries on the now ready connection. */
static void start_queries(lua_State *L, nc_conn *c)
{
  static const char maintain_col[] = ", p.mnt AS \"privileges.MAINTAIN\"";
  static const char maintain_fn[] = ", has_table_privilege(s.oid, 'MAINTAIN') AS mnt";
  const char *queries[Q_COUNT], *params[3];
  int top = lua_gettop(L), state, i, version = PQserverVersion(c->pg);
  int modern = version >= 170000;
  const char *scope;

  lua_rawgeti(L, LUA_REGISTRYINDEX, c->state_ref);
  state = lua_gettop(L);
  for (i = 0; i < 3; i++) {
    lua_rawgeti(L, state, i + 1);
    params[i] = lua_tostring(L, -1); /* NULL for nil: SQL NULL; anchored in the state */
    lua_pop(L, 1);
  }
  scope = params[1] != NULL ? (params[0] != NULL ? SCOPE_BOTH : SCOPE_TABLES)
                            : (params[0] != NULL ? SCOPE_SCHEMAS : SCOPE_ALL);
  lua_pushfstring(L, SQL_TABLES, modern ? maintain_col : "", modern ? maintain_fn : "");
  /* The tables query reads the scope twice: inline it (PostgreSQL 12 and
   * later) rather than write every row to a tuplestore. */
  queries[Q_TABLES] = lua_pushfstring(L, "WITH scope AS %s%s%s",
                                      version >= 120000 ? "NOT MATERIALIZED " : "",
                                      scope, lua_tostring(L, -1));
  /* pg_sequence (PostgreSQL 10 and later) lists only the sequences: no
   * scan of every relation of a large catalog to find them. */
  lua_pushfstring(L, SQL_SEQUENCES_IN_SCHEMAS,
                  version >= 100000
                    ? "pg_sequence ps JOIN pg_class sq ON sq.oid = ps.seqrelid" : "pg_class sq");
  if (params[1] != NULL)
    queries[Q_SEQUENCES] = lua_pushfstring(L, "WITH scope AS %s%s ORDER BY 1, 2", scope,
                                           SQL_SEQUENCES_OWNED);
  else if (params[0] != NULL)
    queries[Q_SEQUENCES] = lua_pushfstring(L, "WITH scope AS %s%s UNION%s ORDER BY 1, 2", scope,
                                           SQL_SEQUENCES_OWNED, lua_tostring(L, -1));
  else
    queries[Q_SEQUENCES] = lua_pushfstring(L, "%s ORDER BY 1, 2", lua_tostring(L, -1));
  queries[Q_FUNCTIONS] = lua_pushfstring(L, "WITH scope AS %s%s", scope, SQL_FUNCTIONS);
  queries[Q_SERVER] = SQL_SERVER;
  queries[Q_ROLE] = SQL_ROLE;
  queries[Q_DATABASE] = SQL_DATABASE;
  queries[Q_SCHEMAS] = SQL_SCHEMAS;
  queries[Q_NOT_FOUND] = SQL_NOT_FOUND;
  c->introspect_started = nc_now();
  nc_pipeline_begin(c, queries, Q_COUNT, 3, params, c->test_deadline); /* libpq copies it all */
  lua_settop(L, top);
}

/* Pushes the finished test's report and releases its state; closes the
 * connection if the test opened it. */
static void test_finish(lua_State *L, nc_conn *c)
{
  double now = nc_now(), introspected = ms(now - c->introspect_started);
  int report, lists;
  lua_newtable(L);
  report = lua_gettop(L);
  if (c->query_failed) {
    set_bool(L, report, "ok", 0);
    nc_push_error(L, &c->error, NULL);
    lua_setfield(L, report, "error");
    push_stages(L, c, &c->error, introspected);
    lua_setfield(L, report, "stages");
  } else {
    lists = push_lists(L, c);
    set_bool(L, report, "ok", 1);
    push_stages(L, c, NULL, introspected);
    lua_setfield(L, report, "stages");
    {
      static const struct { int q; const char *field; int first_row; } parts[] = {
        { Q_ROLE, "role", 1 }, { Q_DATABASE, "database", 1 }, { Q_SCHEMAS, "schemas", 0 },
        { Q_TABLES, "tables", 0 }, { Q_SEQUENCES, "sequences", 0 },
        { Q_FUNCTIONS, "functions", 0 }, { Q_NOT_FOUND, "not_found", 0 },
      };
      size_t i;
      lua_rawgeti(L, lists, Q_SERVER + 1);
      first_row_field(L, lua_gettop(L), "server", report);
      first_row_field(L, lua_gettop(L), "session", report);
      lua_pop(L, 1);
      lua_getfield(L, report, "session");
      if (lua_istable(L, -1)) {
        push_ssl(L, c->pg);
        lua_setfield(L, -2, "ssl");
        set_endpoint(L, lua_gettop(L), c);
      }
      lua_pop(L, 1);
      for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        lua_rawgeti(L, lists, parts[i].q + 1);
        if (parts[i].first_row) {
          lua_rawgeti(L, -1, 1);
          lua_remove(L, -2);
        }
        lua_setfield(L, report, parts[i].field);
      }
    }
    lua_settop(L, report);
  }
  set_number(L, report, "ms", ms(now - (c->owned ? c->started : c->test_started)));
  nc_release_test(L, c);
  if (c->owned)
    nc_conn_close(c);
}

/* The report of a test whose connection failed before introspection. */
static int push_connect_failure(lua_State *L, nc_conn *c)
{
  lua_newtable(L);
  set_bool(L, -1, "ok", 0);
  nc_push_error(L, &c->error, c->secret);
  lua_setfield(L, -2, "error");
  memset(c->secret, 0, sizeof c->secret);
  push_stages(L, c, &c->error, -1);
  lua_setfield(L, -2, "stages");
  set_number(L, -1, "ms", ms(c->failed_after));
  nc_release_test(L, c);
  return 1;
}

static nc_conn *check_testable(lua_State *L, int idx)
{
  nc_conn *c = nc_check_conn(L, idx);
  if (!c->ready || c->pg == NULL)
    luaL_argerror(L, idx, "connection is closed");
  if (c->state_ref != LUA_NOREF)
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
  if (c->failed)
    return push_connect_failure(L, c);
  if (!c->ready) {
    r = nc_connect_step(c);
    if (r == 0 && nc_now() >= c->test_deadline) {
      nc_connect_give_up(c);
      r = -1;
    }
    if (r < 0)
      return push_connect_failure(L, c);
    if (r == 0)
      return 0;
  }
  if (c->introspect_started < 0)
    start_queries(L, c);
  r = nc_pipeline_step(L, c, push_lists(L, c));
  lua_pop(L, 1);
  if (!r && nc_now() >= c->test_deadline) {
    nc_pipeline_timeout(c);
    r = 1;
  }
  if (r)
    test_finish(L, c);
  return r;
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
  luaL_checkany(L, target);
  c = nc_new_conn(L);
  arm(L, c, opts, started, timeout, 1);
  nc_connect_begin(L, c, target);
  return c;
}

/* neoconn.test(target_or_conn [, opts]) -> report: the blocking driver. */
int nc_l_test(lua_State *L)
{
  nc_conn *c;
  lua_settop(L, 2);
  c = begin(L, 1, 2);
  while (!advance(L, c)) {
    int fd = PQsocket(c->pg);
    if (fd < 0 || nc_wait_fd(fd, c->want_write ? 2 : 0, c->test_deadline) < 0)
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
  double left;
  if (c->state_ref == LUA_NOREF)
    luaL_argerror(L, 1, "no test is running on this connection");
  if (advance(L, c))
    return 1;
  left = c->test_deadline - nc_now();
  lua_pushboolean(L, 0);
  lua_pushstring(L, c->want_write ? "write" : "read");
  lua_pushinteger(L, PQsocket(c->pg));
  lua_pushnumber(L, left > 0 ? left : 0);
  return 4;
}
