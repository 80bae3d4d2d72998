/* neoconn.test: connect, then read in one READ ONLY transaction and one
 * round trip what the session role may do, as PostgreSQL itself decides it
 * (has_*_privilege on OIDs, pg_has_role, row_security_active), never from
 * information_schema. Column names with a dot shape the report (result.c). */
#include <limits.h>
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
  "  c.relforcerowsecurity, c.relacl"
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

/* A permissive policy on relation rel for cmd that applies to a user (PUBLIC
 * is OID 0, which pg_has_role refuses: CASE, as OR has no evaluation
 * order). who: "" for the session's role, or "<user oid>, ". */
#define PERMISSIVE_POLICY(rel, cmd, who)                                                 \
  "EXISTS (SELECT 1 FROM pg_policy pol WHERE pol.polrelid = " rel                       \
  " AND pol.polpermissive AND pol.polcmd IN ('" cmd "', '*') AND EXISTS (SELECT 1"      \
  " FROM unnest(pol.polroles) r"                                                         \
  " WHERE CASE WHEN r = 0 THEN true ELSE pg_has_role(" who "r, 'USAGE') END))"
#define POLICY(cmd) PERMISSIVE_POLICY("s.oid", cmd, "")

/* The session's read-only default as a new session of the role gets it
 * (the test's own READ ONLY applies to its transaction only), and the
 * level it was set at. */
static const char SQL_SERVER[] =
  "SELECT version() AS \"server.version\","
  " current_setting('server_version_num')::int AS \"server.version_num\","
  " pg_is_in_recovery() AS \"server.in_hot_standby\","
  " current_user AS \"session.user\", session_user AS \"session.session_user\","
  " current_database() AS \"session.database\","
  " current_setting('default_transaction_read_only')::boolean"
  "  AS \"session.default_transaction_read_only\","
  " current_setting('default_transaction_read_only')::boolean OR pg_is_in_recovery()"
  "  AS \"session.transaction_read_only\","
  " (SELECT CASE source WHEN 'database' THEN 'database' WHEN 'user' THEN 'role'"
  "   WHEN 'database user' THEN 'role in database' WHEN 'client' THEN 'client'"
  "   WHEN 'session' THEN 'session' ELSE 'server' END"
  "  FROM pg_settings WHERE name = 'default_transaction_read_only')"
  "  AS \"session.read_only_source\"";

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
  "  WHERE NOT pg_has_role(me.oid, g.oid, 'USAGE')%s ORDER BY 1) AS set_role_only%s"
  " FROM pg_roles r JOIN me ON r.oid = me.oid";
/* PostgreSQL 16 and later: a membership may allow SET ROLE or not (WITH
 * SET FALSE, the ADMIN-only grant a CREATEROLE user gets): set_role_only
 * needs SET, and member_only lists the roles neither inherited nor
 * settable. */
static const char ROLE_SET_16[] = " AND pg_has_role(me.oid, g.oid, 'SET')";
static const char ROLE_MEMBER_ONLY_16[] =
  ", ARRAY(SELECT g.rolname::text FROM m JOIN pg_roles g ON g.oid = m.roleid"
  "  WHERE NOT pg_has_role(me.oid, g.oid, 'USAGE') AND NOT pg_has_role(me.oid, g.oid, 'SET')"
  "  ORDER BY 1) AS member_only";

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

/* Row-level security of a view's base tables, which the server applies at
 * execution (EXPLAIN cannot see it) as the view's owner, or as the role for
 * a security_invoker view: it applies unless that user is a superuser, has
 * BYPASSRLS or has the privileges of the table's owner (and RLS is not
 * forced); a permissive policy for a command applies when the user has
 * the privileges of one of its roles. */
#define BASE_POLICY(cmd) PERMISSIVE_POLICY("b.oid", cmd, "k.ck, ")
#define VIEW_RLS                                                                         \
  " CASE WHEN s.relkind = 'v' THEN (SELECT ARRAY[true, bool_and(" BASE_POLICY("a") "),"  \
  "  bool_and(" BASE_POLICY("w") "), bool_and(" BASE_POLICY("r") ")]"                   \
  "  FROM (SELECT CASE WHEN coalesce((SELECT o.option_value FROM"                        \
  "   pg_class vc, pg_options_to_table(vc.reloptions) o WHERE vc.oid = s.oid"             \
  "   AND o.option_name = 'security_invoker'),"                                          \
  "   'false')::boolean THEN (SELECT oid FROM pg_roles WHERE rolname = current_user)"    \
  "   ELSE s.relowner END AS ck) k"                                                      \
  "  JOIN pg_roles kr ON kr.oid = k.ck"                                                  \
  "  JOIN pg_rewrite rw ON rw.ev_class = s.oid AND rw.rulename = '_RETURN'"             \
  "  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid"        \
  "   AND d.refclassid = 'pg_class'::regclass"                                           \
  "  JOIN pg_class b ON b.oid = d.refobjid AND b.relkind IN ('r', 'p') AND b.relrowsecurity" \
  "  WHERE NOT kr.rolsuper AND NOT kr.rolbypassrls"                                      \
  "  AND (b.relforcerowsecurity OR NOT pg_has_role(k.ck, b.relowner, 'USAGE'))"          \
  "  HAVING count(*) > 0) END AS vrls"

/* The session role's privilege set, read once: the roles whose privileges
 * it has (itself included; pg_has_role USAGE is the server's own
 * has_privs_of_role), superuser, and the predefined roles that grant on
 * every relation (pg_read_all_data and pg_write_all_data 14+, pg_maintain
 * 17+; absent roles count as not held). With it, a relation's privileges
 * come from its relacl (NULL: acldefault for its owner) without a syscache
 * lookup per relation, which on a new backend costs more than the rest of
 * the test: the privileges held are those of the ACL entries granted to
 * PUBLIC (grantee 0) or to one of those roles, as aclmask() decides, plus
 * what superuser and the predefined roles add (pg_class_aclmask()). The
 * randomized spec (spec/acl_equality_spec.lua) proves the result equal to
 * has_table_privilege and has_sequence_privilege. */
#define ME_CTE                                                                           \
  " me AS MATERIALIZED (SELECT ARRAY(SELECT oid FROM pg_roles WHERE pg_has_role(oid, 'USAGE'))"  \
  "  AS roles," \
  " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS super,"               \
  " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_read_all_data'"                   \
  "  AND pg_has_role(oid, 'USAGE')) AS read_all,"                                         \
  " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_write_all_data'"                  \
  "  AND pg_has_role(oid, 'USAGE')) AS write_all,"                                        \
  " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_maintain'"                        \
  "  AND pg_has_role(oid, 'USAGE')) AS maintain)"
#define ACL_HAS(priv) "coalesce(bool_or(a.privilege_type = '" priv "'), false)"
/* The ACL entries of relation `rel` (kind: 'r' or 's' for its default)
 * that apply to the session role. */
#define ACL_OF(rel, kind)                                                                \
  " FROM aclexplode(coalesce(" rel ".relacl, acldefault('" kind "', " rel ".relowner))) a" \
  " WHERE a.grantee = 0 OR a.grantee = ANY (me.roles)"

/* %s: the MAINTAIN column (PostgreSQL 17 and later), the job's columns,
 * the MAINTAIN check, the joins of the job's columns. */
static const char SQL_TABLES[] =
  "," ME_CTE
  " SELECT s.nspname AS \"schema\", s.relname AS name,"
  " CASE s.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'"
  "  WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END AS kind,"
  " pg_get_userbyid(s.relowner) AS \"owner.name\","
  " s.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS \"owner.is_self\","
  " s.relowner = ANY (me.roles) AS \"owner.is_member\","
  " acl.sel AS \"privileges.SELECT\", acl.ins AS \"privileges.INSERT\","
  " acl.upd AS \"privileges.UPDATE\", acl.del AS \"privileges.DELETE\","
  " acl.trn AS \"privileges.TRUNCATE\", acl.ref AS \"privileges.REFERENCES\","
  " acl.trg AS \"privileges.TRIGGER\"%s,"
  " CASE WHEN acl.sel THEN 'all' WHEN NOT p.colacl THEN 'none' ELSE "
  COVERAGE("SELECT", "") " END AS \"columns.SELECT\","
  " CASE WHEN acl.ins THEN 'all' WHEN NOT p.colacl THEN 'none' ELSE "
  COVERAGE("INSERT", " AND a.attgenerated = ''") " END AS \"columns.INSERT\","
  " CASE WHEN acl.upd THEN 'all' WHEN NOT p.colacl THEN 'none' ELSE "
  COVERAGE("UPDATE", " AND a.attgenerated = ''") " END AS \"columns.UPDATE\","
  " s.relrowsecurity AS \"rls.enabled\", s.relforcerowsecurity AS \"rls.forced\","
  " CASE WHEN s.relrowsecurity THEN row_security_active(s.oid) ELSE p.vrls[1] IS NOT NULL"
  "  END AS \"rls.applies\","
  " CASE WHEN s.relrowsecurity THEN " POLICY("a") " ELSE p.vrls[2] END AS \"rls.insert_policy\","
  " CASE WHEN s.relrowsecurity THEN " POLICY("w") " ELSE p.vrls[3] END AS \"rls.update_policy\","
  " CASE WHEN s.relrowsecurity THEN " POLICY("r") " ELSE p.vrls[4] END AS \"rls.select_policy\"%s"
  " FROM scope s CROSS JOIN me CROSS JOIN LATERAL (SELECT"
  "  me.super OR me.read_all OR " ACL_HAS("SELECT") " AS sel,"
  "  me.super OR me.write_all OR " ACL_HAS("INSERT") " AS ins,"
  "  me.super OR me.write_all OR " ACL_HAS("UPDATE") " AS upd,"
  "  me.super OR me.write_all OR " ACL_HAS("DELETE") " AS del,"
  "  me.super OR " ACL_HAS("TRUNCATE") " AS trn,"
  "  me.super OR " ACL_HAS("REFERENCES") " AS ref,"
  "  me.super OR " ACL_HAS("TRIGGER") " AS trg%s" ACL_OF("s", "r") ") acl"
  " CROSS JOIN LATERAL (SELECT" VIEW_RLS ","
  /* Without any column ACL a column privilege is the table's: skip the
   * per-column checks, by far the costliest part in a large catalog. The
   * tables with column ACLs are found in one index scan over the scope's
   * OIDs (= ANY of an array: never a scan of all of pg_attribute), then
   * looked up in a hash. OFFSET 0 keeps p from being pulled up into the
   * outer query, where each reference to p.colacl would call its
   * function again. */
  "  s.oid IN (SELECT ca.attrelid FROM pg_attribute ca"
  "   WHERE ca.attrelid = ANY (ARRAY(SELECT oid FROM scope)) AND ca.attnum > 0"
  "   AND ca.attacl IS NOT NULL) AS colacl OFFSET 0) p%s"
  " ORDER BY 1, 2";

/* A destination's columns that a copy must treat specially: identity
 * GENERATED ALWAYS (inserted with OVERRIDING SYSTEM VALUE) and generated
 * columns (never inserted). */
static const char DESTINATION_COLUMNS[] =
  ", sp.identity_always, sp.generated";
static const char DESTINATION_JOIN[] =
  " LEFT JOIN LATERAL (SELECT"
  "  array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attidentity = 'a')"
  "   AS identity_always,"
  "  array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated <> '')"
  "   AS generated"
  "  FROM pg_attribute a WHERE a.attrelid = s.oid AND a.attnum > 0 AND NOT a.attisdropped"
  "  AND (a.attidentity = 'a' OR a.attgenerated <> '')) sp ON true";
/* An upsert's conflict target. */
static const char UPSERT_COLUMNS[] =
  ", (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))"
  "  FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
  "  AND a.attnum = ANY (i.indkey::int2[]) WHERE i.indrelid = s.oid AND i.indisprimary)"
  " AS primary_key";

/* Enabled user triggers of the tables in scope that fire on the job's
 * statements (%d: the tgtype bits of its events) with the default
 * session_replication_role, and the function each runs. */
static const char SQL_TRIGGERS[] =
  " SELECT tg.tgname AS name, s.nspname AS \"on.schema\", s.relname AS \"on.table\","
  " CASE WHEN tg.tgtype::int & 2 <> 0 THEN 'before' WHEN tg.tgtype::int & 64 <> 0"
  "  THEN 'instead of' ELSE 'after' END AS timing,"
  " CASE WHEN tg.tgtype::int & 1 <> 0 THEN 'row' ELSE 'statement' END AS level,"
  " ARRAY(SELECT v.event FROM (VALUES (4, 'INSERT'), (16, 'UPDATE'), (8, 'DELETE'),"
  "  (32, 'TRUNCATE')) AS v(bit, event) WHERE tg.tgtype::int & v.bit <> 0) AS events,"
  " fn.nspname AS \"function.schema\", p.proname AS \"function.name\","
  " l.lanname AS \"function.language\", p.prosecdef AS \"function.security_definer\""
  " FROM scope s JOIN pg_trigger tg ON tg.tgrelid = s.oid AND NOT tg.tgisinternal"
  "  AND tg.tgenabled IN ('O', 'A') AND tg.tgtype::int & %d <> 0"
  " JOIN pg_proc p ON p.oid = tg.tgfoid"
  " JOIN pg_namespace fn ON fn.oid = p.pronamespace"
  " JOIN pg_language l ON l.oid = p.prolang"
  " ORDER BY 2, 3, 1";

/* Tables referencing a table in scope by a foreign key (itself aside): a
 * TRUNCATE that does not also empty them fails. */
static const char SQL_FOREIGN_KEYS[] =
  " SELECT DISTINCT rn.nspname AS \"schema\", rc.relname AS name,"
  " s.nspname AS \"references.schema\", s.relname AS \"references.table\""
  " FROM scope s JOIN pg_constraint k ON k.confrelid = s.oid AND k.contype = 'f'"
  "  AND k.conrelid <> s.oid"
  " JOIN pg_class rc ON rc.oid = k.conrelid"
  " JOIN pg_namespace rn ON rn.oid = rc.relnamespace"
  " ORDER BY 3, 4, 1, 2";

/* Every table TRUNCATE ... CASCADE reaches from a table in scope, through
 * foreign keys referencing it, and whether the role may truncate it. */
static const char SQL_CASCADE[] =
  ", reach(root, oid) AS (SELECT s.oid, k.conrelid FROM scope s"
  "  JOIN pg_constraint k ON k.confrelid = s.oid AND k.contype = 'f'"
  "  UNION SELECT r.root, k.conrelid FROM reach r"
  "  JOIN pg_constraint k ON k.confrelid = r.oid AND k.contype = 'f')"
  " SELECT DISTINCT rn.nspname AS \"schema\", rc.relname AS name,"
  " has_table_privilege(rc.oid, 'TRUNCATE') AS \"privileges.TRUNCATE\","
  " sn.nspname AS \"from.schema\", sc.relname AS \"from.table\""
  " FROM reach r JOIN pg_class rc ON rc.oid = r.oid"
  " JOIN pg_namespace rn ON rn.oid = rc.relnamespace"
  " JOIN pg_class sc ON sc.oid = r.root JOIN pg_namespace sn ON sn.oid = sc.relnamespace"
  " WHERE r.oid <> r.root"
  " ORDER BY 4, 5, 1, 2";

/* Sequences owned by tables in scope (serial and identity columns), and,
 * without a table list, every sequence of the schemas in scope. */
#define SEQUENCE_COLUMNS                                                                 \
  " SELECT sn.nspname AS \"schema\", sq.relname AS name,"                                \
  " pg_get_userbyid(sq.relowner) AS owner,"                                              \
  " otn.nspname AS \"owned_by.schema\", ot.relname AS \"owned_by.table\","               \
  " a.attname AS \"owned_by.column\","                                                   \
  " sacl.usage AS \"privileges.USAGE\", sacl.sel AS \"privileges.SELECT\","               \
  " sacl.upd AS \"privileges.UPDATE\""

#define SEQUENCE_OWNER_JOINS                                                             \
  " JOIN pg_namespace sn ON sn.oid = sq.relnamespace"                                    \
  " LEFT JOIN pg_class ot ON ot.oid = d.refobjid"                                        \
  " LEFT JOIN pg_namespace otn ON otn.oid = ot.relnamespace"                             \
  " LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"    \
  " CROSS JOIN me CROSS JOIN LATERAL (SELECT me.super OR " ACL_HAS("USAGE") " AS usage,"  \
  "  me.super OR me.read_all OR " ACL_HAS("SELECT") " AS sel,"                           \
  "  me.super OR me.write_all OR " ACL_HAS("UPDATE") " AS upd" ACL_OF("sq", "s") ") sacl"

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
       Q_NOT_FOUND, Q_TRIGGERS, Q_FOREIGN_KEYS, Q_CASCADE, Q_PROOF_STATUS, Q_PROOF_ROWS,
       Q_REPLICATION, Q_COUNT = Q_REPLICATION + NC_REPLICATION_LISTS };

/* The length of a name as the server keeps it: identifiers longer than
 * NAMEDATALEN - 1 (63) bytes are cut there, at a character boundary
 * (UTF-8: the connection's client_encoding is pinned). */
static size_t server_name_length(const char *s, size_t len)
{
  if (len <= 63)
    return len;
  len = 63;
  while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
    len--;
  return len;
}

/* Pushes the text[] literal ({"a","b \"c\""}) of the n names in table t. */
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
    len = server_name_length(s, len);
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
  if (len > NC_MAX_NAME)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d]: a name of %d bytes (at most %d)", what, i,
                                          (int)len, NC_MAX_NAME));
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
    if (n > NC_MAX_LIST)
      luaL_argerror(L, arg, lua_pushfstring(L, "schemas: %d names (at most %d)", n, NC_MAX_LIST));
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
  if (n > NC_MAX_LIST)
    luaL_argerror(L, arg, lua_pushfstring(L, "tables: %d names (at most %d)", n, NC_MAX_LIST));
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
      const char *err;
      check_name(L, arg, "tables", i, -1);
      err = nc_parse_qualified(L, lua_tostring(L, -1));
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
    /* Not used: never negotiated, or negotiated and refused (sslmode=prefer
     * or allow then went on in plain text). */
    if (s == NC_STAGE_TLS && ok && (!c->tls_seen || (c->pg != NULL && !PQsslInUse(c->pg)))) {
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

/* opts.job ({ kind =, <job options> }) and opts.proof (true, false,
 * "auto": jobs of up to NC_PROOF_AUTO_LIMIT tables, or that limit). */
static void check_job(lua_State *L, int opts, nc_conn *c)
{
  int kind = 0;
  memset(&c->job, 0, sizeof c->job);
  c->proof_limit = 0;
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
    nc_check_job(L, kind, -1, opts, 1, &c->job);
    c->proof_limit = NC_PROOF_AUTO_LIMIT;
  }
  lua_pop(L, 1);
  lua_getfield(L, opts, "proof");
  if (lua_type(L, -1) == LUA_TBOOLEAN)
    c->proof_limit = !lua_toboolean(L, -1) ? 0 : kind != 0 ? 2147483647L : 0;
  else if (lua_type(L, -1) == LUA_TNUMBER && nc_isinteger(L, -1) && lua_tonumber(L, -1) >= 1
           && lua_tonumber(L, -1) <= 2147483647.0)
    c->proof_limit = kind != 0 ? (long)lua_tonumber(L, -1) : 0;
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
  c->repl = NULL;
  c->repl_phase = 0;
}

/* The job's tgtype event bits: INSERT, and UPDATE for an upsert, TRUNCATE
 * when it truncates. */
static int trigger_events(const nc_job *job)
{
  return 4 | (job->value[NC_OPT_ON_CONFLICT] == 1 ? 16 : 0)
         | (job->value[NC_OPT_TRUNCATE] != 0 ? 32 : 0);
}

/* Sends the test's pipeline on the now ready connection, one round trip
 * ending in one sync: BEGIN READ ONLY, the settings, the catalog queries
 * (and the job's), the executor proof (whose failure the test survives),
 * COMMIT. */
static void start_queries(lua_State *L, nc_conn *c)
{
  static const Oid types[] = { TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID };
  static const char maintain_col[] = ", acl.mnt AS \"privileges.MAINTAIN\"";
  static const char maintain_fn[] = ", me.super OR me.maintain OR " ACL_HAS("MAINTAIN") " AS mnt";
  const char *queries[Q_COUNT] = { NULL }, *params[3], *settings[8];
  nc_step steps[NC_MAX_STEPS];
  int top = lua_gettop(L), state, i, n = 0, version = PQserverVersion(c->pg);
  int modern = version >= 170000, dst = c->job.kind == NC_DST;
  int upsert = dst && c->job.value[NC_OPT_ON_CONFLICT] == 1;
  double left = c->test_deadline - nc_now();
  const char *scope, *with;

  lua_rawgeti(L, LUA_REGISTRYINDEX, c->state_ref);
  state = lua_gettop(L);
  for (i = 0; i < 3; i++) {
    lua_rawgeti(L, state, i + 1);
    params[i] = lua_tostring(L, -1); /* NULL for nil: SQL NULL; anchored in the state */
    lua_pop(L, 1);
  }
  scope = params[1] != NULL ? (params[0] != NULL ? SCOPE_BOTH : SCOPE_TABLES)
                            : (params[0] != NULL ? SCOPE_SCHEMAS : SCOPE_ALL);
  /* Queries that read the scope more than once inline it (PostgreSQL 12
   * and later) rather than write every row to a tuplestore. */
  with = lua_pushfstring(L, "WITH scope AS %s%s", version >= 120000 ? "NOT MATERIALIZED " : "",
                         scope);
  lua_pushfstring(L, "%s%s", dst ? DESTINATION_COLUMNS : "", upsert ? UPSERT_COLUMNS : "");
  lua_pushfstring(L, SQL_TABLES, modern ? maintain_col : "", lua_tostring(L, -1),
                  modern ? maintain_fn : "", dst ? DESTINATION_JOIN : "");
  queries[Q_TABLES] = lua_pushfstring(L, "%s%s", with, lua_tostring(L, -1));
  /* pg_sequence (PostgreSQL 10 and later) lists only the sequences: no
   * scan of every relation of a large catalog to find them. */
  lua_pushfstring(L, SQL_SEQUENCES_IN_SCHEMAS,
                  version >= 100000
                    ? "pg_sequence ps JOIN pg_class sq ON sq.oid = ps.seqrelid" : "pg_class sq");
  if (params[1] != NULL)
    queries[Q_SEQUENCES] = lua_pushfstring(L, "WITH scope AS %s," ME_CTE "%s ORDER BY 1, 2",
                                           scope, SQL_SEQUENCES_OWNED);
  else if (params[0] != NULL)
    queries[Q_SEQUENCES] = lua_pushfstring(L, "WITH scope AS %s," ME_CTE "%s UNION%s ORDER BY 1, 2",
                                           scope, SQL_SEQUENCES_OWNED, lua_tostring(L, -1));
  else
    queries[Q_SEQUENCES] = lua_pushfstring(L, "WITH" ME_CTE "%s ORDER BY 1, 2", lua_tostring(L, -1));
  queries[Q_FUNCTIONS] = lua_pushfstring(L, "WITH scope AS %s%s", scope, SQL_FUNCTIONS);
  queries[Q_SERVER] = SQL_SERVER;
  queries[Q_ROLE] = lua_pushfstring(L, SQL_ROLE, version >= 160000 ? ROLE_SET_16 : "",
                                    version >= 160000 ? ROLE_MEMBER_ONLY_16 : "");
  queries[Q_DATABASE] = SQL_DATABASE;
  queries[Q_SCHEMAS] = SQL_SCHEMAS;
  queries[Q_NOT_FOUND] = SQL_NOT_FOUND;
  if (dst) {
    lua_pushfstring(L, SQL_TRIGGERS, trigger_events(&c->job));
    queries[Q_TRIGGERS] = lua_pushfstring(L, "WITH scope AS %s%s", scope, lua_tostring(L, -1));
  }
  if (dst && c->job.value[NC_OPT_TRUNCATE] == 1)
    queries[Q_FOREIGN_KEYS] = lua_pushfstring(L, "WITH scope AS %s%s", scope, SQL_FOREIGN_KEYS);
  if (dst && c->job.value[NC_OPT_TRUNCATE] == 2)
    queries[Q_CASCADE] = lua_pushfstring(L, "WITH RECURSIVE scope AS %s%s", scope, SQL_CASCADE);

  /* The settings, all bound: the scope and the job for the proof too. */
  settings[0] = lua_pushfstring(L, "%d", left > 0.001 ? nc_ms(left, INT_MAX) : 1);
  settings[1] = c->job.kind == NC_DST ? "destination" : "source";
  settings[2] = nc_job_choice(&c->job, NC_OPT_ON_CONFLICT);
  settings[3] = lua_pushfstring(L, "%d", (int)c->proof_limit);
  settings[4] = lua_pushfstring(L, "%d", nc_ms(left * NC_PROOF_BUDGET_SHARE, INT_MAX));
  for (i = 0; i < 3; i++)
    settings[5 + i] = params[i] != NULL ? params[i] : "";
  steps[n++] = (nc_step){ "BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ", 0, NULL, NULL, 0, 0 };
  steps[n++] = (nc_step){
    "SELECT pg_catalog.set_config('statement_timeout', $1, true),"
    " pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true),"
    " pg_catalog.set_config('jit', 'off', true),"
    " pg_catalog.set_config('neoconn.kind', $2, true),"
    " pg_catalog.set_config('neoconn.on_conflict', $3, true),"
    " pg_catalog.set_config('neoconn.proof_limit', $4, true),"
    " pg_catalog.set_config('neoconn.proof_budget_ms', $5, true),"
    " pg_catalog.set_config('neoconn.scope_schemas', $6, true),"
    " pg_catalog.set_config('neoconn.scope_table_schemas', $7, true),"
    " pg_catalog.set_config('neoconn.scope_table_names', $8, true)",
    8, settings, NULL, 0, 0 };
  for (i = 0; i < Q_PROOF_STATUS; i++)
    if (queries[i] != NULL)
      steps[n++] = (nc_step){ queries[i], 3, params, types, i + 1, 0 };
  n = nc_replication_queries(L, c, with, params, steps, n, Q_REPLICATION + 1);
  /* The proof last: if it fails (no plpgsql for the role, ...), only it,
   * its two queries and the COMMIT are skipped (aborted, not failed); the
   * test goes on and the pipeline rolls back. */
  if (c->proof_limit > 0) {
    steps[n++] = (nc_step){ lua_pushfstring(L, nc_proof_sql, scope, scope), 0, NULL, NULL, 0, 1 };
    steps[n++] = (nc_step){ nc_proof_status_sql, 0, NULL, NULL, Q_PROOF_STATUS + 1, 1 };
    steps[n++] = (nc_step){ nc_proof_rows_sql, 0, NULL, NULL, Q_PROOF_ROWS + 1, 1 };
  }
  steps[n++] = (nc_step){ "COMMIT", 0, NULL, NULL, 0, 0 };
  steps[n++] = (nc_step){ NULL, 0, NULL, NULL, 0, 0 };
  c->introspect_started = nc_now();
  nc_pipeline_begin(c, steps, n); /* libpq copies it all */
  lua_settop(L, top);
}

/* Pushes schema .. "\0" .. name of the row on top. */
static void push_row_key(lua_State *L, const char *schema_field, const char *name_field)
{
  lua_getfield(L, -1, schema_field);
  lua_pushlstring(L, "", 1);
  lua_getfield(L, -3, name_field);
  lua_concat(L, 3);
}

/* report.proof = { method, status, tables, limit [, error] }, and each
 * table's proof ("executor" or "catalog"), statement and refusal. */
static void add_proof(lua_State *L, nc_conn *c, int report, int lists)
{
  int proof, proven, tables, i, n, found = 0;
  const char *status = "off";
  lua_createtable(L, 0, 5);
  proof = lua_gettop(L);
  lua_newtable(L);
  proven = proof + 1;
  if (c->proof_limit > 0 && c->tolerated_failed) {
    status = "unavailable";
    nc_push_error(L, &c->tolerated_error, NULL);
    lua_setfield(L, proof, "error");
  } else if (c->proof_limit > 0) {
    lua_rawgeti(L, lists, Q_PROOF_STATUS + 1);
    lua_rawgeti(L, -1, 1);
    lua_getfield(L, -1, "tables");
    lua_setfield(L, proof, "tables");
    lua_getfield(L, -1, "status");
    status = lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : "unavailable";
    lua_setfield(L, proof, "status"); /* status stays anchored in the row */
    lua_pop(L, 2);
    lua_rawgeti(L, lists, Q_PROOF_ROWS + 1);
    n = (int)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      push_row_key(L, "schema", "name");
      lua_insert(L, -2);
      lua_rawset(L, proven);
    }
    lua_pop(L, 1);
  }
  lua_pushstring(L, status);
  lua_setfield(L, proof, "status");
  lua_pushnumber(L, (double)c->proof_limit);
  lua_setfield(L, proof, "limit");
  lua_getfield(L, report, "tables");
  tables = lua_gettop(L);
  n = (int)lua_rawlen(L, tables);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, tables, i);
    push_row_key(L, "schema", "name");
    lua_rawget(L, proven);
    if (lua_istable(L, -1)) {
      found++;
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
    lua_pop(L, 2);
  }
  lua_pushstring(L, found > 0 ? "executor" : "catalog");
  lua_setfield(L, proof, "method");
  lua_settop(L, proof);
  lua_setfield(L, report, "proof");
  lua_settop(L, proof - 1);
}

/* Pushes the finished test's report and releases its state; closes the
 * connection if the test opened it. */
static void test_finish(lua_State *L, nc_conn *c)
{
  double now = nc_now();
  /* Introspection ended where the replication phase began, if it ran. */
  double introspected = ms((c->repl_phase != 0 ? c->repl_started : now) - c->introspect_started);
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
        { Q_TRIGGERS, "triggers", 0 }, { Q_FOREIGN_KEYS, "foreign_keys", 0 },
        { Q_CASCADE, "truncate_cascade", 0 },
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
    if (c->job.kind != 0) {
      nc_push_job(L, &c->job);
      lua_setfield(L, report, "job");
      add_proof(L, c, report, lists);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->state_ref);
    nc_replication_report(L, c, report, lists, Q_REPLICATION + 1, lua_gettop(L));
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
  nc_free_secret(&c->secret);
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
  if (c->repl_phase == 0) {
    if (c->introspect_started < 0)
      start_queries(L, c);
    r = nc_pipeline_step(L, c, push_lists(L, c));
    lua_pop(L, 1);
    if (!r && nc_now() >= c->test_deadline) {
      nc_pipeline_timeout(c);
      r = 1;
    }
    if (!r)
      return 0;
  }
  if (nc_replication_wanted(c)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->state_ref);
    r = nc_replication_step(L, c, lua_gettop(L));
    lua_pop(L, 1);
    if (!r)
      return 0;
  }
  test_finish(L, c);
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

/* neoconn.test(target_or_conn [, opts]) -> report: the blocking driver. */
int nc_l_test(lua_State *L)
{
  nc_conn *c;
  lua_settop(L, 2);
  c = begin(L, 1, 2);
  while (!advance(L, c)) {
    int want_write, fd = PQsocket(nc_test_pg(c, &want_write));
    if (fd < 0 || nc_wait_fd(fd, want_write ? 2 : 0, c->test_deadline) < 0)
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
  int want_write;
  PGconn *pg;
  if (c->state_ref == LUA_NOREF)
    luaL_argerror(L, 1, "no test is running on this connection");
  if (advance(L, c))
    return 1;
  left = c->test_deadline - nc_now();
  pg = nc_test_pg(c, &want_write);
  lua_pushboolean(L, 0);
  lua_pushstring(L, want_write ? "write" : "read");
  lua_pushinteger(L, PQsocket(pg));
  lua_pushnumber(L, left > 0 ? left : 0);
  return 4;
}
