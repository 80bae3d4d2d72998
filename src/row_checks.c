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

#define REFS "('pg_proc'::regclass, 'pg_operator'::regclass)"
/* The function a dependency d names: itself, or an operator's. */
#define FUNCTION_OF(d)                                                                   \
  "CASE WHEN " d ".refclassid = 'pg_proc'::regclass THEN " d ".refobjid"                 \
  " ELSE (SELECT o.oprcode FROM pg_operator o WHERE o.oid = " d ".refobjid)::oid END"
#define FUNCTION_COLUMNS(fn)                                                             \
  " fp.nspname AS \"on.schema\", p.proname AS \"on.name\","                               \
  " pg_get_function_identity_arguments(p.oid) AS \"on.arguments\""
/* The privileges the owner `who` lacks on table rel: rows of (missing, on.type,
 * on.schema, on.name). */
#define OWNER_NEEDS(who, rel, nsp)                                                       \
  " CROSS JOIN LATERAL (VALUES"                                                          \
  " ('USAGE', 'schema', NULL::name, " nsp ".nspname,"                                    \
  "  has_schema_privilege(" who ", " nsp ".oid, 'USAGE')),"                               \
  " ('SELECT', 'table', " nsp ".nspname, " rel ".relname,"                               \
  "  has_table_privilege(" who ", " rel ".oid, 'SELECT')),"                               \
  " ('UPDATE', 'table', " nsp ".nspname, " rel ".relname,"                               \
  "  has_table_privilege(" who ", " rel ".oid, 'UPDATE'))) x(missing, type, sch, nam, held)"

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

/* What a destination's rows meet. The job's tables; for a partitioned one
 * each partition a row can land in (their own constraints and indexes
 * apply to it); for a view the relations its rule reads (a row written
 * through an updatable view is its base table's: checked as the role, its
 * foreign keys as their owners), and theirs in turn, with the columns the
 * rule reads (cols; NULL: all): the others are left NULL by a row written
 * through the view, and a foreign key on them is never checked; domains whose
 * constraints call a function, the domains over them and their array
 * types; every function called per row. */
static const char DST_CTES[] =
  ", rels(tab, rel, cols) AS (SELECT s.oid, s.oid, NULL::int2[] FROM scope s"
  "  WHERE s.relkind IN ('r', 'p', 'v')"
  "  UNION SELECT r.tab, x.rel, x.cols FROM rels r JOIN pg_class c ON c.oid = r.rel"
  "  CROSS JOIN LATERAL (SELECT t.relid, r.cols FROM pg_partition_tree(c.oid) t"
  "   WHERE c.relkind = 'p' AND t.level = 1"
  "   UNION ALL SELECT d.refobjid, array_agg(d.refobjsubid)::int2[] FROM pg_rewrite rw JOIN pg_depend d"
  "   ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid"
  "   AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid"
  "   WHERE c.relkind = 'v' AND rw.ev_class = c.oid AND rw.rulename = '_RETURN'"
  "   GROUP BY d.refobjid) x(rel, cols)),"
  " doms(typ, refclassid, refobjid) AS (SELECT k.contypid, d.refclassid, d.refobjid"
  "  FROM pg_constraint k JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass"
  "  AND d.objid = k.oid AND d.refclassid IN " REFS " WHERE k.contypid <> 0"
  "  UNION SELECT t.oid, doms.refclassid, doms.refobjid FROM doms JOIN pg_type b ON b.oid = doms.typ"
  "  JOIN pg_type t ON (t.typtype = 'd' AND t.typbasetype = doms.typ) OR t.oid = b.typarray),"
  " called(tab, via, object, refclassid, refobjid) AS ("
  "  SELECT r.tab, 'check', k.conname::text, d.refclassid, d.refobjid FROM rels r"
  "  JOIN pg_constraint k ON k.conrelid = r.rel AND k.contype = 'c'"
  "  JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = k.oid"
  "   AND d.refclassid IN " REFS
  "  UNION ALL SELECT r.tab, 'generated', a.attname::text, d.refclassid, d.refobjid FROM rels r"
  "  JOIN pg_attrdef ad ON ad.adrelid = r.rel"
  "  JOIN pg_attribute a ON a.attrelid = r.rel AND a.attnum = ad.adnum AND a.attgenerated = 's'"
  /* The expression's dependencies: the default's (14+) or the column's (13). */
  "  JOIN pg_depend d ON ((d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid)"
  "   OR (d.classid = 'pg_class'::regclass AND d.objid = r.rel AND d.objsubid = a.attnum))"
  "   AND d.refclassid IN " REFS
  "  UNION ALL SELECT r.tab, CASE WHEN i.indexprs IS NULL THEN 'predicate' ELSE 'index' END,"
  "  ic.relname::text, d.refclassid, d.refobjid FROM rels r"
  "  JOIN pg_index i ON i.indrelid = r.rel AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)"
  "  JOIN pg_class ic ON ic.oid = i.indexrelid"
  "  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid"
  "   AND d.refclassid IN " REFS
  "  UNION ALL SELECT r.tab, 'domain', a.attname::text, doms.refclassid, doms.refobjid FROM doms"
  "  JOIN pg_depend cd ON cd.refclassid = 'pg_type'::regclass AND cd.refobjid = doms.typ"
  "   AND cd.classid = 'pg_class'::regclass AND cd.objsubid > 0"
  "  JOIN rels r ON r.rel = cd.objid"
  "  JOIN pg_attribute a ON a.attrelid = cd.objid AND a.attnum = cd.objsubid"
  "   AND NOT a.attisdropped AND a.attgenerated = '')";

/* Functions the role may not execute. */
static const char DST_FUNCTIONS[] =
  " UNION ALL SELECT s.nspname, s.relname, 'execute', c.object, c.via, current_user::text,"
  " 'EXECUTE', 'function'," FUNCTION_COLUMNS("p") ", NULL, NULL, NULL::bool, NULL"
  " FROM (SELECT DISTINCT tab, via, object, " FUNCTION_OF("called") " AS fn FROM called) c"
  " JOIN scope s ON s.oid = c.tab JOIN pg_proc p ON p.oid = c.fn"
  " JOIN pg_namespace fp ON fp.oid = p.pronamespace"
  " WHERE NOT has_function_privilege(c.fn, 'EXECUTE')";

/* A destination's parts: foreign keys (as the owners their checks run as)
 * and deferrable arbiters. %s: the upsert's part (UPSERT_REFERENCED_BY) or
 * "". */
static const char JOB_DST[] =
  /* Rows written: the referenced table's owner reads it. */
  " UNION ALL SELECT s.nspname, s.relname, 'foreign_key', k.conname::text, 'references',"
  " pg_get_userbyid(pc.relowner)::text, x.missing, x.type, x.sch, x.nam, NULL, NULL, NULL,"
  " NULL::bool, NULL"
  " FROM rels r JOIN scope s ON s.oid = r.tab"
  " JOIN pg_constraint k ON k.conrelid = r.rel AND k.contype = 'f'"
  "  AND (r.cols IS NULL OR k.conkey <@ r.cols)"
  " JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace"
  OWNER_NEEDS("pc.relowner", "pc", "pn") " WHERE NOT x.held"
  " UNION ALL SELECT DISTINCT s.nspname, s.relname, 'foreign_key', k.conname::text, 'references',"
  " pg_get_userbyid(pc.relowner)::text, 'EXECUTE', 'function'," FUNCTION_COLUMNS("p")
  ", NULL, NULL, NULL::bool, NULL"
  " FROM rels r JOIN scope s ON s.oid = r.tab"
  " JOIN pg_constraint k ON k.conrelid = r.rel AND k.contype = 'f'"
  "  AND (r.cols IS NULL OR k.conkey <@ r.cols)"
  " JOIN pg_class pc ON pc.oid = k.confrelid"
  " JOIN pg_operator o ON o.oid = ANY (k.conpfeqop) JOIN pg_proc p ON p.oid = o.oprcode"
  " JOIN pg_namespace fp ON fp.oid = p.pronamespace"
  " WHERE NOT has_function_privilege(pc.relowner, p.oid, 'EXECUTE')"
  "%s"
  /* Arbiters ON CONFLICT refuses on every row. */
  " UNION ALL SELECT s.nspname, s.relname, 'arbiter', coalesce(k.conname, ic.relname)::text,"
  " CASE WHEN i.indisprimary THEN 'primary key' WHEN i.indisexclusion THEN 'exclusion'"
  "  ELSE 'unique' END, NULL, NULL, NULL, NULL, NULL, NULL,"
  " coalesce(pg_get_constraintdef(k.oid), pg_get_indexdef(i.indexrelid)), NULL, NULL::bool, NULL"
  " FROM rels r JOIN scope s ON s.oid = r.tab"
  " JOIN pg_index i ON i.indrelid = r.rel AND NOT i.indimmediate"
  "  AND (i.indisunique OR i.indisexclusion)"
  " JOIN pg_class ic ON ic.oid = i.indexrelid"
  " LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid";

/* An upsert updates every column but the primary key's: a foreign key
 * referencing other columns of a job table runs its check (or action) on
 * the referencing table as that table's owner. */
static const char UPSERT_REFERENCED_BY[] =
  " UNION ALL SELECT s.nspname, s.relname, 'foreign_key', k.conname::text, 'referenced_by',"
  " pg_get_userbyid(fc.relowner)::text, x.missing, x.type, x.sch, x.nam, NULL, NULL, NULL,"
  " NULL::bool, NULL"
  " FROM rels r JOIN scope s ON s.oid = r.tab AND r.cols IS NULL"
  " JOIN pg_constraint k ON k.confrelid = r.rel AND k.contype = 'f'"
  " AND NOT k.confkey <@ coalesce((SELECT pk.conkey FROM pg_constraint pk"
  "  WHERE pk.conrelid = r.rel AND pk.contype = 'p'), '{}'::int2[])"
  " JOIN pg_class fc ON fc.oid = k.conrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace"
  OWNER_NEEDS("fc.relowner", "fc", "fn") " WHERE NOT x.held";

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
    step->sql = lua_pushfstring(L, "WITH RECURSIVE scope AS %s%s%s%s%s%s", scope, DST_CTES,
                                lua_tostring(L, -2), DST_FUNCTIONS, lua_tostring(L, -1), ORDER);
  } else {
    step->sql = lua_pushfstring(L, "WITH scope AS %s%s%s", scope, lua_tostring(L, -1), ORDER);
  }
  step->shape = SHAPE_ROW_CHECKS;
}
