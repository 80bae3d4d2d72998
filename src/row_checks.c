/* What the server checks for each row a job writes, beyond what EXPLAIN
 * proves: the executor prepares these only when the first row arrives
 * (execMain.c ExecRelCheck: CHECK constraints; nodeModifyTable.c and
 * execMain.c: stored generated columns; execIndexing.c FormIndexDatum and
 * ExecCheckIndexConstraints: index expressions, partial-index predicates
 * and ON CONFLICT's arbiters; ri_triggers.c: foreign keys), so a plan that
 * passes can still fail on every row. One statement of the test's
 * pipeline, for a job: only what fails (or, for row-level security, what
 * applies), so a healthy catalog sends nothing back.
 *
 * Each row names a job table (a partitioned one for each partition a row
 * can land in) and one cause:
 *   execute      a function the server calls per row, as the role, that
 *                the role may not EXECUTE (via: check, domain, generated,
 *                index, predicate), found through pg_depend from the
 *                constraint, default or index to pg_proc (an operator:
 *                its function), never by reading expression text;
 *   foreign_key  what a foreign key's check needs of the role it runs as
 *                (ri_triggers.c ri_PlanCheck and ri_PerformCheck run the
 *                query as the owner of the table it reads): for rows
 *                written, the referenced table's owner (via: references)
 *                needs USAGE on its schema, SELECT and UPDATE (FOR KEY
 *                SHARE) on it and EXECUTE on the key's equality operators;
 *                for an upsert that changes a referenced key, the
 *                referencing table's owner (via: referenced_by) on that
 *                table;
 *   arbiter      a deferrable unique, primary key or exclusion constraint,
 *                which INSERT ... ON CONFLICT refuses as an arbiter on
 *                every row (execIndexing.c);
 *   policy       a row-level security policy that applies to the role on
 *                the table, with its expressions (pg_get_expr).
 * Functions with no dependency record (the built-in, pinned ones) are not
 * listed: PUBLIC may execute them unless an administrator revoked it. */
#include "neoconn.h"

#define FUNCTION_COLUMNS(fn)                                                             \
  " fp.nspname AS \"on.schema\", " fn ".proname AS \"on.name\","                           \
  " pg_get_function_identity_arguments(" fn ".oid) AS \"on.arguments\""

/* Row-level security: every policy that applies to the role for the job's
 * commands (%s), where row-level security applies. First, so its names
 * are the columns'. */
static const char POLICIES[] =
  " SELECT s.nspname AS \"schema\", s.relname AS name, 'policy' AS \"check\","
  " pol.polname::text AS object,"
  " CASE WHEN pol.polpermissive THEN 'permissive' ELSE 'restrictive' END AS via,"
  " NULL AS role, NULL AS missing, NULL AS \"on.type\", NULL AS \"on.schema\", NULL AS \"on.name\","
  " NULL AS \"on.arguments\", pg_get_expr(pol.polqual, pol.polrelid) AS expression,"
  " pg_get_expr(pol.polwithcheck, pol.polrelid) AS with_check, pol.polpermissive AS permissive,"
  " CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'"
  "  WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command"
  " FROM scope s JOIN pg_policy pol ON pol.polrelid = s.oid AND pol.polcmd IN %s"
  " WHERE s.relrowsecurity AND row_security_active(s.oid)"
  " AND EXISTS (SELECT 1 FROM unnest(pol.polroles) pr"
  "  WHERE CASE WHEN pr = 0 THEN true ELSE pg_has_role(pr, 'USAGE') END)";

static const char ORDER[] = " ORDER BY 1, 2, 3, 4, 5, 7, 9, 10";

/* What a destination's rows meet. The relations a row of a job table is
 * written to, with the job table's names: the table; for a partitioned
 * one, each partition a row can land in (their own constraints and
 * indexes apply to it); for a view, the relations its rule reads (a row
 * written through an updatable view is its base table's: checked as the
 * role, its foreign keys as their owners), with the columns the rule reads
 * (cols; NULL: all): the others are left NULL by a row written through the
 * view, and a foreign key on them is never checked. Partitions through
 * pg_inherits: pg_partition_tree cost a one-table test on a new backend
 * 10 ms more (A/B, 101 runs each). */
static const char DST_CTES[] =
  ", parts(nspname, relname, rel) AS (SELECT s.nspname, s.relname, i.inhrelid FROM scope s"
  "  JOIN pg_inherits i ON i.inhparent = s.oid WHERE s.relkind = 'p'"
  "  UNION ALL SELECT p.nspname, p.relname, i.inhrelid FROM parts p"
  "  JOIN pg_inherits i ON i.inhparent = p.rel),"
  " rels(nspname, relname, rel, cols) AS (SELECT s.nspname, s.relname, s.oid, NULL::int2[]"
  "  FROM scope s WHERE s.relkind IN ('r', 'p', 'v')"
  "  UNION ALL SELECT nspname, relname, rel, NULL FROM parts"
  "  UNION ALL SELECT s.nspname, s.relname, d.refobjid, array_agg(d.refobjsubid)::int2[]"
  "  FROM scope s JOIN pg_rewrite rw ON rw.ev_class = s.oid AND rw.rulename = '_RETURN'"
  "  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid"
  "   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> s.oid"
  "  WHERE s.relkind = 'v' GROUP BY 1, 2, 3),"
  /* Functions the role may not execute: user functions (the built-in ones
   * have no dependency records) whose ACL is not the default, which lets
   * PUBLIC execute them; what depends on them (themselves, or an operator
   * on them), and where that is evaluated per written row. Found from the
   * few such functions, so a catalog where the role may execute them all
   * costs next to nothing however large it is. */
  " bad(fn) AS (SELECT p.oid FROM pg_proc p WHERE p.oid >= 16384 AND p.proacl IS NOT NULL"
  "  AND NOT has_function_privilege(p.oid, 'EXECUTE')),"
  " deps AS (SELECT d.classid, d.objid, d.objsubid, u.fn FROM (SELECT 'pg_proc'::regclass, fn, fn"
  "  FROM bad UNION ALL SELECT 'pg_operator'::regclass, o.oid, o.oprcode FROM bad"
  "  JOIN pg_operator o ON o.oprcode = bad.fn) u(cls, obj, fn)"
  "  JOIN pg_depend d ON d.refclassid = u.cls AND d.refobjid = u.obj),"
  /* Domains whose constraints call one, the domains over them and their
   * array types. */
  " doms(typ, fn) AS (SELECT k.contypid, deps.fn FROM deps JOIN pg_constraint k"
  "  ON deps.classid = 'pg_constraint'::regclass AND k.oid = deps.objid AND k.contypid <> 0"
  "  UNION SELECT x.typ, doms.fn FROM doms CROSS JOIN LATERAL (SELECT t.oid FROM pg_type t"
  "   WHERE t.typtype = 'd' AND t.typbasetype = doms.typ"
  "   UNION ALL SELECT b.typarray FROM pg_type b WHERE b.oid = doms.typ AND b.typarray <> 0) x(typ)),"
  " called(rel, via, object, fn) AS ("
  "  SELECT k.conrelid, 'check', k.conname::text, deps.fn FROM deps JOIN pg_constraint k"
  "  ON deps.classid = 'pg_constraint'::regclass AND k.oid = deps.objid AND k.contype = 'c'"
  /* A generated column's expression depends on it through its default
   * (14+) or the column itself (13). */
  "  UNION ALL SELECT a.attrelid, 'generated', a.attname::text, deps.fn FROM deps"
  "  JOIN pg_attrdef ad ON deps.classid = 'pg_attrdef'::regclass AND ad.oid = deps.objid"
  "  JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum AND a.attgenerated = 's'"
  "  UNION ALL SELECT a.attrelid, 'generated', a.attname::text, deps.fn FROM deps"
  "  JOIN pg_attribute a ON deps.classid = 'pg_class'::regclass AND deps.objsubid > 0"
  "  AND a.attrelid = deps.objid AND a.attnum = deps.objsubid AND a.attgenerated = 's'"
  "  UNION ALL SELECT i.indrelid, CASE WHEN i.indexprs IS NULL THEN 'predicate' ELSE 'index' END,"
  "  ic.relname::text, deps.fn FROM deps JOIN pg_index i ON deps.classid = 'pg_class'::regclass"
  "  AND deps.objsubid = 0 AND i.indexrelid = deps.objid JOIN pg_class ic ON ic.oid = i.indexrelid"
  "  UNION ALL SELECT a.attrelid, 'domain', a.attname::text, doms.fn FROM doms"
  "  JOIN pg_depend cd ON cd.refclassid = 'pg_type'::regclass AND cd.refobjid = doms.typ"
  "   AND cd.classid = 'pg_class'::regclass AND cd.objsubid > 0"
  "  JOIN pg_attribute a ON a.attrelid = cd.objid AND a.attnum = cd.objsubid"
  "   AND NOT a.attisdropped AND a.attgenerated = ''),"
  /* The relation each is evaluated on, and the partitioned tables above. */
  " ups(tab, via, object, fn) AS (SELECT rel, via, object, fn FROM called"
  "  UNION ALL SELECT i.inhparent, u.via, u.object, u.fn FROM ups u"
  "  JOIN pg_inherits i ON i.inhrelid = u.tab)";

/* Each such function, for the job tables a row of which reaches the
 * relation it is evaluated on: the relation itself, a partitioned table
 * above it, a view whose rule reads either. */
static const char DST_FUNCTIONS[] =
  " UNION ALL SELECT s.nspname, s.relname, 'execute', c.object, c.via, current_user::text,"
  " 'EXECUTE', 'function'," FUNCTION_COLUMNS("p") ", NULL, NULL, NULL::bool, NULL"
  " FROM (SELECT DISTINCT t.tab, u.via, u.object, u.fn FROM ups u"
  "  CROSS JOIN LATERAL (SELECT u.tab UNION SELECT rw.ev_class FROM pg_depend d"
  "   JOIN pg_rewrite rw ON rw.oid = d.objid AND rw.rulename = '_RETURN'"
  "   WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass"
  "   AND d.refobjid = u.tab) t(tab)) c"
  " JOIN scope s ON s.oid = c.tab JOIN pg_proc p ON p.oid = c.fn"
  " JOIN pg_namespace fp ON fp.oid = p.pronamespace";

/* What the owner `who` lacks on table rel in schema nsp to run a foreign
 * key's check on it, as rows (missing, type, schema, name, arguments):
 * USAGE on the schema, SELECT and UPDATE (FOR KEY SHARE) on the table,
 * EXECUTE on the key's equality operators' functions (a NULL ACL: PUBLIC
 * may). */
#define OWNER_LACKS(who, rel, nsp, operators)                                            \
  " CROSS JOIN LATERAL (SELECT * FROM (VALUES"                                           \
  " ('USAGE', 'schema', NULL::name, " nsp ".nspname, NULL, has_schema_privilege(" who ", " nsp ".oid, 'USAGE')),"\
  " ('SELECT', 'table', " nsp ".nspname, " rel ".relname, NULL,"                         \
  "  has_table_privilege(" who ", " rel ".oid, 'SELECT')),"                               \
  " ('UPDATE', 'table', " nsp ".nspname, " rel ".relname, NULL,"                         \
  "  has_table_privilege(" who ", " rel ".oid, 'UPDATE'))) v(missing, type, sch, nam, args, held)" \
  "  UNION ALL SELECT 'EXECUTE', 'function', fp.nspname, p.proname,"                     \
  "  pg_get_function_identity_arguments(p.oid), false FROM pg_operator o"                \
  "  JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_namespace fp ON fp.oid = p.pronamespace" \
  "  WHERE o.oid = ANY (" operators ") AND p.proacl IS NOT NULL"                          \
  "  AND NOT has_function_privilege(" who ", p.oid, 'EXECUTE')) x WHERE NOT x.held"
#define FK_COLUMNS(via, who)                                                             \
  " SELECT r.nspname, r.relname, 'foreign_key', k.conname::text, '" via "',"             \
  " pg_get_userbyid(" who ")::text, x.missing, x.type, x.sch, x.nam, x.args, NULL, NULL," \
  " NULL::bool, NULL"

/* A destination's parts: foreign keys (as the owners their checks run as)
 * and deferrable arbiters. %s: the upsert's part (UPSERT_REFERENCED_BY) or
 * "". */
static const char JOB_DST[] =
  /* Rows written: the referenced table's owner reads it. */
  " UNION ALL" FK_COLUMNS("references", "pc.relowner")
  " FROM rels r JOIN pg_constraint k ON k.conrelid = r.rel AND k.contype = 'f'"
  "  AND (r.cols IS NULL OR k.conkey <@ r.cols)"
  " JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace"
  OWNER_LACKS("pc.relowner", "pc", "pn", "k.conpfeqop")
  "%s"
  /* Arbiters ON CONFLICT refuses on every row. */
  " UNION ALL SELECT r.nspname, r.relname, 'arbiter', coalesce(k.conname, ic.relname)::text,"
  " CASE WHEN i.indisprimary THEN 'primary key' WHEN i.indisexclusion THEN 'exclusion'"
  "  ELSE 'unique' END, NULL, NULL, NULL, NULL, NULL, NULL,"
  " coalesce(pg_get_constraintdef(k.oid), pg_get_indexdef(i.indexrelid)), NULL, NULL::bool, NULL"
  " FROM rels r JOIN pg_index i ON i.indrelid = r.rel AND NOT i.indimmediate"
  "  AND (i.indisunique OR i.indisexclusion)"
  " JOIN pg_class ic ON ic.oid = i.indexrelid"
  " LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid";

/* An upsert updates every column but the primary key's: a foreign key
 * referencing other columns of a job table runs its check (or action) on
 * the referencing table as that table's owner. Found through the
 * referenced table's dependency records (pg_constraint has no index on
 * confrelid). */
static const char UPSERT_REFERENCED_BY[] =
  " UNION ALL" FK_COLUMNS("referenced_by", "fc.relowner")
  " FROM rels r JOIN pg_depend d ON r.cols IS NULL AND d.refclassid = 'pg_class'::regclass"
  "  AND d.refobjid = r.rel AND d.classid = 'pg_constraint'::regclass AND d.refobjsubid > 0"
  " JOIN pg_constraint k ON k.oid = d.objid AND k.contype = 'f' AND k.confrelid = r.rel"
  "  AND d.refobjsubid = k.confkey[1]"
  "  AND NOT k.confkey <@ coalesce((SELECT pk.conkey FROM pg_constraint pk"
  "  WHERE pk.conrelid = r.rel AND pk.contype = 'p'), '{}'::int2[])"
  " JOIN pg_class fc ON fc.oid = k.conrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace"
  OWNER_LACKS("fc.relowner", "fc", "fn", "k.conffeqop");

static const char SHAPE_ROW_CHECKS[] =
  "@row_checks schema:t! name:t! check:t! object:t! via:t role:t missing:t on.type:t on.schema:t"
  " on.name:t on.arguments:t expression:t with_check:t permissive:b command:t";

void nc_row_checks_query(lua_State *L, const nc_conn *c, const char *scope, nc_step *step)
{
  int dst = c->test.job.kind == NC_DST;
  int upsert = dst && c->test.job.value[NC_OPT_ON_CONFLICT] == 1;
  /* The commands whose policies the job's statements meet: a source reads;
   * a destination inserts, and an upsert also updates what it sees. */
  lua_pushfstring(L, POLICIES, !dst ? "('r', '*')" : upsert ? "('a', 'w', 'r', '*')" : "('a', '*')");
  if (dst) {
    lua_pushfstring(L, JOB_DST, upsert ? UPSERT_REFERENCED_BY : "");
    step->sql = lua_pushfstring(L, "WITH RECURSIVE scope AS NOT MATERIALIZED %s%s%s%s%s%s", scope,
                                DST_CTES,
                                lua_tostring(L, -2), DST_FUNCTIONS, lua_tostring(L, -1), ORDER);
  } else {
    step->sql = lua_pushfstring(L, "WITH scope AS %s%s%s", scope, lua_tostring(L, -1), ORDER);
  }
  step->shape = SHAPE_ROW_CHECKS;
}
