/* The test's catalog queries, as SQL text and assembled for one test: what
 * the session role may do, as PostgreSQL itself decides it (ACLs evaluated
 * as aclmask() does, pg_has_role, row_security_active), never from
 * information_schema. Column names with a dot shape the report (result.c). */
#include <stdio.h>
#include <string.h>
#include "neoconn.h"

#define USER_SCHEMA(n) n ".nspname !~ '^pg_' AND " n ".nspname <> 'information_schema'"
#define RELKINDS "('r','p','v','m','f')"
/* The session role's OID, and whether it has the privileges of predefined
 * role `name` (false where the server has no such role), without a
 * subquery of the view pg_roles each: on a new backend, planning those
 * cost more than the lookups (0.8 ms for two, measured). Computed once
 * per test by SQL_ME; every other query reads the session role back
 * (ME_SELF). */
#define SESSION_ROLE "quote_ident(current_user)::regrole::oid"
#define HOLDS(name) "coalesce(pg_has_role(to_regrole('" name "')::oid, 'USAGE'), false)"
#define ME_SELF "current_setting('neoconn.me_self')::oid"

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

/* What the job leaves out ($4: { schema, name or NULL } pairs), around one
 * of the scopes below (%s); only when something is. */
static const char SCOPE_EXCLUDING[] =
  "(SELECT * FROM %s x WHERE NOT EXISTS (SELECT 1 FROM generate_subscripts($4::text[], 1) AS i"
  "  WHERE ($4::text[])[i][1] = x.nspname"
  "  AND (($4::text[])[i][2] IS NULL OR ($4::text[])[i][2] = x.relname)))";

static const char SCOPE_ALL[] = "(" SCOPE_IN_SCHEMAS ")";
static const char SCOPE_SCHEMAS[] =
  "(" SCOPE_IN_SCHEMAS " AND n.nspname = ANY($1::text[]))";
static const char SCOPE_TABLES[] = "(" SCOPE_LISTED ")";
static const char SCOPE_BOTH[] =
  "(" SCOPE_IN_SCHEMAS " AND n.nspname = ANY($1::text[]) UNION ALL " SCOPE_LISTED
  " AND NOT (n.nspname = ANY($1::text[])))";

/* How many of relation s's columns the role may use for priv, as the
 * server decides it (has_column_privilege: the table's privilege, or the
 * column's), one call per column: 'all', 'some' or 'none' (no column). */
#define COVERAGE(priv, extra)                                                            \
  "(SELECT CASE count(*) FILTER (WHERE has_column_privilege(s.oid, a.attnum, '" priv "'))" \
  " WHEN 0 THEN 'none' WHEN count(*) THEN 'all' ELSE 'some' END FROM pg_attribute a"     \
  " WHERE a.attrelid = s.oid AND a.attnum > 0 AND NOT a.attisdropped" extra ")"

/* The commands for which relation rel has a permissive policy that applies
 * to a user, as flags: 1 INSERT, 2 UPDATE, 4 SELECT (a policy FOR ALL
 * gives all three); one subquery for the three. PUBLIC is OID 0, which
 * pg_has_role refuses: CASE, as OR has no evaluation order. who: "" for
 * the session's role, or "<user oid>, ". */
#define POLICY_FLAGS(rel, who)                                                           \
  "(SELECT coalesce(bit_or(CASE pol.polcmd WHEN 'a' THEN 1 WHEN 'w' THEN 2 WHEN 'r' THEN 4" \
  " WHEN '*' THEN 7 ELSE 0 END), 0) FROM pg_policy pol WHERE pol.polrelid = " rel         \
  " AND pol.polpermissive AND EXISTS (SELECT 1 FROM unnest(pol.polroles) r"             \
  " WHERE CASE WHEN r = 0 THEN true ELSE pg_has_role(" who "r, 'USAGE') END))"

/* The server, the session and the database, in one row. The session's
 * read-only default is as a new session of the role gets it (the test's
 * own READ ONLY applies to its transaction only); where it was set only
 * when it is on (finding it reads every setting: pg_settings). */
static const char SQL_SERVER[] =
  "SELECT version() AS \"server.version\","
  " current_setting('server_version_num')::int AS \"server.version_num\","
  " current_setting('server_encoding') AS \"server.encoding\","
  " x.standby AS \"server.in_hot_standby\","
  " current_user AS \"session.user\", session_user AS \"session.session_user\","
  " current_database() AS \"session.database\","
  " x.ro AS \"session.default_transaction_read_only\","
  " x.ro OR x.standby AS \"session.transaction_read_only\","
  " CASE WHEN x.ro THEN (SELECT CASE source WHEN 'database' THEN 'database'"
  "   WHEN 'user' THEN 'role' WHEN 'database user' THEN 'role in database'"
  "   WHEN 'client' THEN 'client' WHEN 'session' THEN 'session' ELSE 'server' END"
  "  FROM pg_settings WHERE name = 'default_transaction_read_only') END"
  "  AS \"session.read_only_source\","
  " d.datname AS \"database.name\", pg_get_userbyid(d.datdba) AS \"database.owner\","
  " has_database_privilege(d.oid, 'CONNECT') AS \"database.connect\","
  " has_database_privilege(d.oid, 'CREATE') AS \"database.create\","
  " has_database_privilege(d.oid, 'TEMP') AS \"database.temp\""
  " FROM (SELECT current_setting('default_transaction_read_only')::boolean AS ro,"
  "  pg_is_in_recovery() AS standby) x"
  " JOIN pg_database d ON d.datname = current_database()";

static const char SHAPE_SERVER[] =
  "@server/1 server.version:t! server.version_num:i! server.encoding:t! server.in_hot_standby:b! session.user:t!"
  " session.session_user:t! session.database:t! session.default_transaction_read_only:b!"
  " session.transaction_read_only:b! session.read_only_source:t database.name:t!"
  " database.owner:t! database.connect:b! database.create:b! database.temp:b!";

static const char SQL_ROLE[] =
  "WITH RECURSIVE m(roleid) AS (SELECT a.roleid FROM pg_auth_members a"
  "  WHERE a.member = " ME_SELF
  "  UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.roleid)"
  " SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolcreatedb AS createdb,"
  " r.rolcreaterole AS createrole, r.rolreplication AS replication,"
  " r.rolbypassrls AS bypassrls, r.rolcanlogin AS can_login,"
  " to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS valid_until,"
  " ARRAY(SELECT pg_get_userbyid(m.roleid)::text FROM m"
  "  WHERE pg_has_role(r.oid, m.roleid, 'USAGE') ORDER BY 1) AS inherits,"
  " ARRAY(SELECT pg_get_userbyid(m.roleid)::text FROM m"
  "  WHERE NOT pg_has_role(r.oid, m.roleid, 'USAGE')%s ORDER BY 1) AS set_role_only%s"
  " FROM pg_roles r WHERE r.oid = " ME_SELF;
/* PostgreSQL 16 and later: a membership may allow SET ROLE or not (WITH
 * SET FALSE, the ADMIN-only grant a CREATEROLE user gets): set_role_only
 * needs SET, and member_only lists the roles neither inherited nor
 * settable. */
static const char ROLE_SET_16[] = " AND pg_has_role(r.oid, m.roleid, 'SET')";
static const char ROLE_MEMBER_ONLY_16[] =
  ", ARRAY(SELECT pg_get_userbyid(m.roleid)::text FROM m"
  "  WHERE NOT pg_has_role(r.oid, m.roleid, 'USAGE') AND NOT pg_has_role(r.oid, m.roleid, 'SET')"
  "  ORDER BY 1) AS member_only";

static const char SHAPE_ROLE[] =
  "@role/1 name:t! superuser:b! createdb:b! createrole:b! replication:b! bypassrls:b!"
  " can_login:b! valid_until:t inherits:a! set_role_only:a! member_only:a!?";

static const char SQL_SCHEMAS[] =
  "SELECT n.nspname AS name, pg_get_userbyid(n.nspowner) AS owner,"
  " has_schema_privilege(n.oid, 'USAGE') AS usage,"
  " has_schema_privilege(n.oid, 'CREATE') AS \"create\""
  " FROM pg_namespace n WHERE " USER_SCHEMA("n")
  " AND (($1::text[] IS NULL AND $2::text[] IS NULL) OR n.nspname = ANY($1::text[])"
  "  OR n.nspname = ANY($2::text[]))"
  " ORDER BY 1";

static const char SHAPE_SCHEMAS[] = "@schemas name:t! owner:t! usage:b! create:b!";

/* Row-level security of a view's base tables, which the server applies at
 * execution (EXPLAIN cannot see it) as the view's owner, or as the role for
 * a security_invoker view: it applies unless that user is a superuser, has
 * BYPASSRLS or has the privileges of the table's owner (and RLS is not
 * forced); a permissive policy for a command applies when the user has
 * the privileges of one of its roles (for every base table: bit_and). As
 * flags: POLICY_FLAGS, and 8 (it applies); NULL when it does not apply. */
#define VIEW_RLS                                                                         \
  "(SELECT bit_and(" POLICY_FLAGS("b.oid", "k.ck, ") ") | 8"                             \
  "  FROM (SELECT CASE WHEN coalesce((SELECT o.option_value FROM"                        \
  "   pg_class vc, pg_options_to_table(vc.reloptions) o WHERE vc.oid = s.oid"             \
  "   AND o.option_name = 'security_invoker'),"                                          \
  "   'false')::boolean THEN " ME_SELF                                                     \
  "   ELSE s.relowner END AS ck) k"                                                      \
  "  JOIN pg_roles kr ON kr.oid = k.ck"                                                  \
  "  JOIN pg_rewrite rw ON rw.ev_class = s.oid AND rw.rulename = '_RETURN'"             \
  "  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid"        \
  "   AND d.refclassid = 'pg_class'::regclass"                                           \
  "  JOIN pg_class b ON b.oid = d.refobjid AND b.relkind IN ('r', 'p') AND b.relrowsecurity" \
  "  WHERE NOT kr.rolsuper AND NOT kr.rolbypassrls"                                      \
  "  AND (b.relforcerowsecurity OR NOT pg_has_role(k.ck, b.relowner, 'USAGE'))"          \
  "  HAVING count(*) > 0)"

/* The session role's privilege set: the roles whose privileges it has
 * (itself included; pg_has_role USAGE is the server's own
 * has_privs_of_role), superuser, and the predefined roles that grant on
 * every relation (pg_read_all_data and pg_write_all_data 14+, pg_maintain
 * 17+; absent roles count as not held). With it, a relation's privileges
 * come from its relacl (NULL: acldefault for its owner) without a syscache
 * lookup per relation, which on a new backend costs more than the rest of
 * the test: the privileges held are those of the ACL entries granted to
 * PUBLIC (grantee 0) or to one of those roles, as aclmask() decides, plus
 * what superuser and the predefined roles add (pg_class_aclmask()). The
 * randomized spec (spec/acl_equality_spec.lua) proves the result equal to
 * has_table_privilege and has_sequence_privilege. A superuser has every
 * privilege and the privileges of every role: its set lists no role
 * (listing every role of the cluster, each looked up, cost a one-table
 * test 3.4 ms more with 20k roles), and whoever reads the set reads
 * me.super too. Computed once per test, by SQL_ME into the transaction's
 * settings, and read back by every query that needs it as the CTE me
 * (ME_CTE). */
#define IS_SUPERUSER "current_setting('is_superuser')::bool"
#define SQL_ME                                                                           \
  "SELECT set_config('neoconn.me_roles', CASE WHEN " IS_SUPERUSER " THEN '{}'"            \
  " ELSE ARRAY(SELECT oid FROM pg_roles WHERE pg_has_role(oid, 'USAGE'))::text END, true)," \
  " set_config('neoconn.me_super', " IS_SUPERUSER "::text, true),"                       \
  " set_config('neoconn.me_read_all', " HOLDS("pg_read_all_data") "::text, true),"       \
  " set_config('neoconn.me_write_all', " HOLDS("pg_write_all_data") "::text, true),"     \
  " set_config('neoconn.me_maintain', " HOLDS("pg_maintain") "::text, true),"            \
  " set_config('neoconn.me_self', " SESSION_ROLE "::text, true)"
/* For a list of tables, every catalog query is written in the order it
 * should join: the listed tables first, then lookups per table. With the
 * collapse limits at 1 the planner keeps that order instead of searching
 * every order, which on a new backend cost more than it found (a test of
 * one table on a new connection, 3 rounds of 200: source 17.3 -> 15.0 ms,
 * destination 20.9 -> 18.2). For schemas or the whole catalog the best
 * order depends on the catalog's sizes (from pg_trigger or pg_attrdef into
 * the scope, not the other way): the planner's own search stays. Set with
 * the privilege set, before every catalog query and the proof. */
static const char SQL_ME_ALL[] = SQL_ME;
static const char SQL_ME_LISTED[] =
  SQL_ME ", set_config('join_collapse_limit', '1', true),"
  " set_config('from_collapse_limit', '1', true)";
#define ME_CTE                                                                           \
  " me AS MATERIALIZED (SELECT current_setting('neoconn.me_roles')::oid[] AS roles,"       \
  " current_setting('neoconn.me_super')::bool AS super,"                                 \
  " current_setting('neoconn.me_read_all')::bool AS read_all,"                           \
  " current_setting('neoconn.me_write_all')::bool AS write_all,"                         \
  " current_setting('neoconn.me_maintain')::bool AS maintain,"                           \
  " " ME_SELF " AS self)"
/* The ACL entries of relation `rel` (kind: 'r' or 's' for its default)
 * that apply to the session role. */
#define ACL_OF(rel, kind)                                                                \
  " FROM aclexplode(coalesce(" rel ".relacl, acldefault('" kind "', " rel ".relowner))) a" \
  " WHERE a.grantee = 0 OR a.grantee = ANY (me.roles)"

/* A relation's privileges as flags, from the ACL entries (ACL_OF) and what
 * superuser and the predefined roles add, for tables and sequences alike:
 * bits 0-3 SELECT, INSERT, UPDATE, DELETE, bits 4-7 TRUNCATE, REFERENCES,
 * TRIGGER, MAINTAIN (the tables query sends them as two flags columns: a
 * column name holds at most 63 bytes), bit 8 USAGE (sequences). */
#define ACL_BIT(priv, bit) " WHEN '" priv "' THEN " bit
#define ACL_FLAGS                                                                        \
  " CASE WHEN me.super THEN 511 ELSE 0 END | CASE WHEN me.read_all THEN 1 ELSE 0 END"    \
  " | CASE WHEN me.write_all THEN 14 ELSE 0 END | CASE WHEN me.maintain THEN 128 ELSE 0 END" \
  " | coalesce(bit_or(CASE a.privilege_type" ACL_BIT("SELECT", "1") ACL_BIT("INSERT", "2")  \
  ACL_BIT("UPDATE", "4") ACL_BIT("DELETE", "8") ACL_BIT("TRUNCATE", "16")                 \
  ACL_BIT("REFERENCES", "32") ACL_BIT("TRIGGER", "64") ACL_BIT("MAINTAIN", "128")         \
  ACL_BIT("USAGE", "256") " ELSE 0 END), 0)"
/* (cond)::int << bit, for flags: PostgreSQL gives | and << the same
 * precedence, so every term is in parentheses. */
#define FLAG(cond, bit) " ((" cond ")::int << " bit ")"

/* One row per table in scope, in no order: the client sorts them in byte
 * order (the server's own order for names, whose collation is "C") while
 * the server runs the queries after this one. Flags columns (result.c) carry the many
 * booleans of a row in one value each: in a large catalog each value sent
 * costs the server, the wire and the client alike. %s: MAINTAIN
 * (PostgreSQL 17 and later), the job's columns, the joins of the job's
 * columns. */
static const char SQL_TABLES[] =
  "," ME_CTE
  " SELECT s.nspname AS \"schema\", s.relname AS name,"
  " CASE s.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'"
  "  WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END AS kind,"
  /* What a relation that is not a table lets anyone write, as the server
   * decides it (rewriteHandler.c, relation_is_updatable: an automatically
   * updatable view, INSTEAD OF triggers, DO INSTEAD rules, the foreign data
   * wrapper's callbacks): the bits of CMD_UPDATE, CMD_INSERT, CMD_DELETE. */
  " CASE WHEN s.relkind IN ('v','m','f') THEN (pg_relation_is_updatable(s.oid, true) >> 2) & 7"
  " END AS \"writes{update,insert,delete}\","
  " acl.owner AS \"owner.name\", acl.owner_flags AS \"owner{is_self,is_member}\","
  " acl.low AS \"privileges{SELECT,INSERT,UPDATE,DELETE}\","
  " acl.high AS \"privileges{TRUNCATE,REFERENCES,TRIGGER%s}\","
  /* Whether row-level security applies, with the policies that let the
   * job's statements through: for tables with RLS enabled and for views
   * over such tables (the subquery runs for views only, not through a
   * lateral join on every row); for the others, applies stays false. */
  FLAG("s.relrowsecurity", "0") " |" FLAG("s.relforcerowsecurity", "1")
  " AS \"rls{enabled,forced,applies}\","
  " CASE WHEN s.relrowsecurity THEN " POLICY_FLAGS("s.oid", "") " |"
  FLAG("row_security_active(s.oid)", "3")
  " WHEN s.relkind = 'v' THEN " VIEW_RLS
  " END AS \"rls{insert_policy,update_policy,select_policy,applies}\"%s"
  /* What depends on the table's ACL and owner only, in a lateral subquery
   * the planner memoizes by (relacl, relowner): once per distinct pair, not
   * once per table (OFFSET 0 keeps it from being pulled up). Its cache key
   * is what it reads of the row: relacl and relowner once each (o), and
   * not the privilege set, read inside (measured at 100k tables: 124.6 ->
   * 101.5 ms for the query, warm, against 12 key values). A table's
   * columns are not sent: the report gives them as its privileges do
   * (report.c), and the few tables with column ACLs from SQL_COLUMN_ACLS. */
  " FROM scope s CROSS JOIN LATERAL (SELECT pg_get_userbyid(o.relowner) AS owner,"
  FLAG("o.relowner = me.self", "0") " |" FLAG("me.super OR o.relowner = ANY (me.roles)", "1") " AS owner_flags,"
  "  x.bits & 15 AS low, (x.bits >> 4) & 15 AS high"
  "  FROM (SELECT s.relacl, s.relowner OFFSET 0) o CROSS JOIN me"
  "  CROSS JOIN LATERAL (SELECT" ACL_FLAGS " AS bits" ACL_OF("o", "r") ") x OFFSET 0) acl%s";

static const char SHAPE_TABLES[] =
  "@tables schema:t! name:t! kind:t! writes{}:f owner.name:t! owner{}:f! privileges{}:f! privileges{}:f!"
  " rls{}:f! rls{}:f identity_always:a? generated:a? primary_key:a?";

/* The tables in scope with column ACLs (%s: COLUMN_ACLS_*), and what the
 * role may do to their columns (the report's rule for the others, a column
 * privilege being the table's, is the server's here too: COVERAGE).
 * Finding the few tables with one takes a scan of pg_attribute in a large
 * catalog, the costliest part of the test. As a query of its own, sent
 * after the tables query, the server scans while the client builds the
 * tables' report. The relations found are an array (an InitPlan) the
 * scope is filtered by, so the few rows are index lookups whatever join
 * order the planner keeps. */
static const char SQL_COLUMN_ACLS[] =
  " SELECT s.nspname AS \"schema\", s.relname AS name,"
  " " COVERAGE("SELECT", "") " AS \"columns.SELECT\","
  " " COVERAGE("INSERT", " AND a.attgenerated = ''") " AS \"columns.INSERT\","
  " " COVERAGE("UPDATE", " AND a.attgenerated = ''") " AS \"columns.UPDATE\""
  " FROM scope s WHERE s.oid = ANY (ARRAY(%s))";

static const char SHAPE_COLUMN_ACLS[] =
  "@column_acls schema:t! name:t! columns.SELECT:t! columns.INSERT:t! columns.UPDATE:t!";

/* The relations with column ACLs. For the whole catalog one scan of
 * pg_attribute (measured at 100k tables: 95 ms against 206 ms for the
 * probe below, the floor's scan alone 65 ms); for a scope of schemas or
 * tables one index probe per relation in scope, never a scan of all of
 * pg_attribute. */
#define COLUMN_ACLS_SCAN                                                                 \
  "SELECT ca.attrelid FROM pg_attribute ca WHERE ca.attacl IS NOT NULL AND ca.attnum > 0"
#define COLUMN_ACLS_PROBE                                                                \
  "SELECT ca.attrelid FROM pg_attribute ca"                                              \
  " WHERE ca.attrelid = ANY (ARRAY(SELECT oid FROM scope)) AND ca.attnum > 0"            \
  " AND ca.attacl IS NOT NULL"

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

static const char SHAPE_TRIGGERS[] =
  "@triggers name:t! on.schema:t! on.table:t! timing:t! level:t! events:a! function.schema:t!"
  " function.name:t! function.language:t! function.security_definer:b!";

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

static const char SHAPE_FOREIGN_KEYS[] =
  "@foreign_keys schema:t! name:t! references.schema:t! references.table:t!";

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

static const char SHAPE_CASCADE[] =
  "@truncate_cascade schema:t! name:t! privileges.TRUNCATE:b! from.schema:t! from.table:t!";

/* Sequences owned by tables in scope (serial and identity columns), and,
 * without a table list, every sequence of the schemas in scope. */
#define SEQUENCE_COLUMNS(owner_schema, owner_table)                                      \
  " SELECT sn.nspname AS \"schema\", sq.relname AS name,"                                \
  " pg_get_userbyid(sq.relowner) AS owner,"                                              \
  " " owner_schema " AS \"owned_by.schema\", " owner_table " AS \"owned_by.table\","    \
  " a.attname AS \"owned_by.column\","                                                   \
  " sacl.bits & 256 <> 0 AS \"privileges.USAGE\", sacl.bits & 1 <> 0 AS \"privileges.SELECT\"," \
  " sacl.bits & 4 <> 0 AS \"privileges.UPDATE\""

#define SEQUENCE_JOINS                                                                   \
  " JOIN pg_namespace sn ON sn.oid = sq.relnamespace"                                    \
  " LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"    \
  " CROSS JOIN me CROSS JOIN LATERAL (SELECT" ACL_FLAGS " AS bits" ACL_OF("sq", "s") ") sacl"

/* The owning table is the scope's own row: no lookup of it (each catalog
 * a query joins costs planning on a new backend). */
static const char SQL_SEQUENCES_OWNED[] =
  SEQUENCE_COLUMNS("s.nspname", "s.relname")
  " FROM scope s"
  " JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = s.oid"
  "  AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0"
  " JOIN pg_class sq ON sq.oid = d.objid AND sq.relkind = 'S'"
  SEQUENCE_JOINS;

/* Without a table list: also the sequences no table owns (alone, without
 * any option: every user schema is in scope, so no owned sequence is
 * missed and the per-table dependency lookups are saved). */
static const char SQL_SEQUENCES_IN_SCHEMAS[] =
  SEQUENCE_COLUMNS("otn.nspname", "ot.relname")
  " FROM %s"
  " LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = sq.oid"
  "  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0"
  " LEFT JOIN pg_class ot ON ot.oid = d.refobjid"
  " LEFT JOIN pg_namespace otn ON otn.oid = ot.relnamespace"
  SEQUENCE_JOINS
  " WHERE sq.relkind = 'S' AND " USER_SCHEMA("sn")
  "  AND ($1::text[] IS NULL OR sn.nspname = ANY($1::text[]))";

static const char SHAPE_SEQUENCES[] =
  "@sequences schema:t! name:t! owner:t! owned_by.schema:t owned_by.table:t owned_by.column:t"
  " privileges.USAGE:b! privileges.SELECT:b! privileges.UPDATE:b!";

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

static const char SHAPE_FUNCTIONS[] =
  "@functions schema:t! name:t! arguments:t! owner:t! privileges.EXECUTE:b! used_by.schema:t!"
  " used_by.table:t! used_by.column:t!";

static const char SQL_NOT_FOUND[] =
  "SELECT w.nsp AS \"schema\", w.rel AS name"
  " FROM" ASKED_TABLES
  " WHERE NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
  "  WHERE n.nspname = w.nsp AND c.relname = w.rel AND c.relkind IN " RELKINDS ")"
  " UNION ALL"
  " SELECT s, NULL FROM unnest($1::text[]) AS s"
  " WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s)"
  " ORDER BY 1, 2";

static const char SHAPE_NOT_FOUND[] = "@not_found schema:t! name:t";

/* The job's tgtype event bits: INSERT, and UPDATE for an upsert, TRUNCATE
 * when it truncates. */
static int trigger_events(const nc_job *job)
{
  return 4 | (job->value[NC_OPT_ON_CONFLICT] == 1 ? 16 : 0)
         | (job->value[NC_OPT_TRUNCATE] != 0 ? 32 : 0);
}

void nc_catalog_queries(lua_State *L, const nc_conn *c, const char *const *params,
                        nc_step *queries, const char **me_out,
                        const char **scope_out, const char **with_out)
{
  int version = PQserverVersion(c->pg), modern = version >= 170000;
  int dst = c->test.job.kind == NC_DST;
  int upsert = dst && c->test.job.value[NC_OPT_ON_CONFLICT] == 1;
  const char *scope, *with;

  const char *base = params[1] != NULL ? (params[0] != NULL ? SCOPE_BOTH : SCOPE_TABLES)
                                       : (params[0] != NULL ? SCOPE_SCHEMAS : SCOPE_ALL);

  scope = params[3] != NULL ? lua_pushfstring(L, SCOPE_EXCLUDING, base) : base;
  /* Queries that read the scope more than once inline it (PostgreSQL 12
   * and later) rather than write every row to a tuplestore. */
  with = lua_pushfstring(L, "WITH scope AS %s%s", version >= 120000 ? "NOT MATERIALIZED " : "",
                         scope);
  lua_pushfstring(L, "%s%s", dst ? DESTINATION_COLUMNS : "", upsert ? UPSERT_COLUMNS : "");
  lua_pushfstring(L, SQL_TABLES, modern ? ",MAINTAIN" : "", lua_tostring(L, -1),
                  dst ? DESTINATION_JOIN : "");
  queries[Q_TABLES].sql = lua_pushfstring(L, "%s%s", with, lua_tostring(L, -1));
  /* SQL_TABLES has no ORDER BY: the client sorts. Its result, the large
   * one, is flushed: the client builds it while the server runs the rest,
   * the column-ACL scan above all (at 100k tables the client's work after
   * the last result went from 53 to 7 ms). Not every result: a flush each
   * cost a one-table test about 0.5 ms. */
  queries[Q_TABLES].shape = SHAPE_TABLES;
  queries[Q_TABLES].sorted = 1;
  queries[Q_TABLES].flush = 1;
  lua_pushfstring(L, SQL_COLUMN_ACLS, base == SCOPE_ALL ? COLUMN_ACLS_SCAN : COLUMN_ACLS_PROBE);
  queries[Q_COLUMN_ACLS].sql = lua_pushfstring(L, "%s%s", with, lua_tostring(L, -1));
  queries[Q_COLUMN_ACLS].shape = SHAPE_COLUMN_ACLS;
  /* pg_sequence (PostgreSQL 10 and later) lists only the sequences: no
   * scan of every relation of a large catalog to find them. */
  lua_pushfstring(L, SQL_SEQUENCES_IN_SCHEMAS,
                  version >= 100000
                    ? "pg_sequence ps JOIN pg_class sq ON sq.oid = ps.seqrelid" : "pg_class sq");
  if (params[1] != NULL)
    queries[Q_SEQUENCES].sql = lua_pushfstring(
      L, "WITH scope AS %s," ME_CTE "%s ORDER BY 1, 2", scope, SQL_SEQUENCES_OWNED);
  else if (params[0] != NULL)
    queries[Q_SEQUENCES].sql =
      lua_pushfstring(L, "WITH scope AS %s," ME_CTE "%s UNION%s ORDER BY 1, 2", scope,
                      SQL_SEQUENCES_OWNED, lua_tostring(L, -1));
  else
    queries[Q_SEQUENCES].sql =
      lua_pushfstring(L, "WITH" ME_CTE "%s ORDER BY 1, 2", lua_tostring(L, -1));
  queries[Q_SEQUENCES].shape = SHAPE_SEQUENCES;
  queries[Q_FUNCTIONS].sql = lua_pushfstring(L, "WITH scope AS %s%s", scope, SQL_FUNCTIONS);
  queries[Q_FUNCTIONS].shape = SHAPE_FUNCTIONS;
  queries[Q_SERVER].sql = SQL_SERVER;
  queries[Q_SERVER].shape = SHAPE_SERVER;
  queries[Q_ROLE].sql = lua_pushfstring(L, SQL_ROLE, version >= 160000 ? ROLE_SET_16 : "",
                                        version >= 160000 ? ROLE_MEMBER_ONLY_16 : "");
  queries[Q_ROLE].shape = SHAPE_ROLE;
  queries[Q_SCHEMAS].sql = SQL_SCHEMAS;
  queries[Q_SCHEMAS].shape = SHAPE_SCHEMAS;
  queries[Q_NOT_FOUND].sql = SQL_NOT_FOUND;
  queries[Q_NOT_FOUND].shape = SHAPE_NOT_FOUND;
  if (dst) {
    lua_pushfstring(L, SQL_TRIGGERS, trigger_events(&c->test.job));
    queries[Q_TRIGGERS].sql = lua_pushfstring(L, "WITH scope AS %s%s", scope, lua_tostring(L, -1));
    queries[Q_TRIGGERS].shape = SHAPE_TRIGGERS;
  }
  if (dst && c->test.job.value[NC_OPT_TRUNCATE] == 1)
    queries[Q_FOREIGN_KEYS].sql = lua_pushfstring(L, "WITH scope AS %s%s", scope, SQL_FOREIGN_KEYS);
  queries[Q_FOREIGN_KEYS].shape = SHAPE_FOREIGN_KEYS;
  if (dst && c->test.job.value[NC_OPT_TRUNCATE] == 2)
    queries[Q_CASCADE].sql = lua_pushfstring(L, "WITH RECURSIVE scope AS %s%s", scope, SQL_CASCADE);
  queries[Q_CASCADE].shape = SHAPE_CASCADE;
  if (c->test.job.kind != 0)
    nc_row_checks_query(L, c, scope, &queries[Q_ROW_CHECKS]);
  if (c->test.layout)
    nc_layout_query(L, c, scope, &queries[Q_LAYOUT]);
  *me_out = base == SCOPE_TABLES ? SQL_ME_LISTED : SQL_ME_ALL;
  *scope_out = scope;
  *with_out = with;
}
