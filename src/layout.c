/* What a copy between two servers depends on, read once per side for a
 * job that pairs this connection with another (opts.layout): every column
 * of the tables in scope (type, typmod, NOT NULL, default, identity,
 * generated), the types they use (enum labels, domain constraints, array
 * elements, and the casts this server accepts into each), the tables'
 * constraints and unique indexes, and, for a destination, the types this
 * server knows. One statement in the test's pipeline; the pair judges
 * itself in Lua (pair.lua), each side decided by its own server. */
#include "neoconn.h"

#define NAMED "named AS (SELECT t.oid, tn.nspname || '.' || t.typname AS name FROM pg_type t"  \
  " JOIN pg_namespace tn ON tn.oid = t.typnamespace)"
#define NO_TYPE ", NULL::text AS kind, NULL::text AS category, NULL::text AS element,"          \
  " NULL::text AS base, NULL::text[] AS labels, NULL::text[] AS checks,"                       \
  " NULL::text[] AS implicit_from, NULL::text[] AS assignment_from"
#define NO_KEY_VALUES ", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
#define NO_CONSTRAINT ", NULL::text[] AS columns, NULL::text AS definition,"                   \
  " NULL::boolean AS deferrable, NULL::boolean AS deferred, NULL::boolean AS partial, NULL::text AS \"references.schema\"," \
  " NULL::text AS \"references.table\", NULL::text[] AS \"references.columns\""
#define ATTNAMES(rel, keys, extra)                                                          \
  "ARRAY(SELECT a.attname::text FROM unnest(" keys ") WITH ORDINALITY u(n, o)"               \
  " JOIN pg_attribute a ON a.attrelid = " rel " AND a.attnum = u.n" extra " ORDER BY u.o)"

/* %s: the scope CTE's body; %s: the destination's known types (or ""). */
static const char SQL_LAYOUT[] =
  "WITH RECURSIVE scope AS %s,"
  " cols AS (SELECT s.nspname, s.relname, a.attnum, a.attname, a.atttypid, a.atttypmod,"
  "  a.attnotnull, a.atthasdef, a.attidentity, a.attgenerated FROM scope s"
  "  JOIN pg_attribute a ON a.attrelid = s.oid AND a.attnum > 0 AND NOT a.attisdropped),"
  " types(oid) AS (SELECT atttypid FROM cols"
  "  UNION SELECT v.x FROM types t JOIN pg_type y ON y.oid = t.oid, LATERAL (VALUES"
  "   (CASE WHEN y.typcategory = 'A' THEN y.typelem END), (nullif(y.typbasetype, 0))) v(x)"
  "   WHERE v.x IS NOT NULL AND v.x <> 0), " NAMED
  " SELECT 'column' AS what, c.nspname AS schema, c.relname AS \"table\", c.attname::text AS name,"
  "  c.attnum::int AS position, format_type(c.atttypid, c.atttypmod) AS type,"
  "  tn.name AS type_name, c.atttypmod AS typmod, c.attnotnull AS not_null,"
  "  c.atthasdef AS has_default, nullif(c.attidentity::text, '') AS identity,"
  "  nullif(c.attgenerated::text, '') AS generated" NO_TYPE NO_CONSTRAINT
  " FROM cols c JOIN named tn ON tn.oid = c.atttypid"
  " UNION ALL SELECT 'type', NULL, NULL, tn.name, NULL, format_type(t.oid, NULL), NULL,"
  "  t.typtypmod, t.typnotnull, NULL, NULL, NULL, t.typtype::text, t.typcategory::text,"
  "  (SELECT e.name FROM named e WHERE e.oid = t.typelem AND t.typcategory = 'A'),"
  "  (SELECT e.name FROM named e WHERE e.oid = t.typbasetype AND t.typtype = 'd'),"
  "  CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e"
  "   WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END,"
  "  CASE WHEN t.typtype = 'd' THEN ARRAY(SELECT k.conname || ' ' || pg_get_constraintdef(k.oid)"
  "   FROM pg_constraint k WHERE k.contypid = t.oid ORDER BY k.conname) END,"
  "  ARRAY(SELECT e.name FROM pg_cast k JOIN named e ON e.oid = k.castsource"
  "   WHERE k.casttarget = t.oid AND k.castcontext = 'i' ORDER BY 1),"
  "  ARRAY(SELECT e.name FROM pg_cast k JOIN named e ON e.oid = k.castsource"
  "   WHERE k.casttarget = t.oid AND k.castcontext = 'a' ORDER BY 1)" NO_KEY_VALUES
  " FROM types x JOIN pg_type t ON t.oid = x.oid JOIN named tn ON tn.oid = t.oid"
  " UNION ALL SELECT 'constraint', s.nspname, s.relname, k.conname::text, NULL, NULL, NULL,"
  "  NULL, NULL, NULL, NULL, NULL, k.contype::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
  "  " ATTNAMES("k.conrelid", "k.conkey", "") ", pg_get_constraintdef(k.oid), k.condeferrable,"
  "  k.condeferred, NULL, rn.nspname, rc.relname,"
  "  CASE WHEN k.contype = 'f' THEN " ATTNAMES("k.confrelid", "k.confkey", "") " END"
  " FROM scope s JOIN pg_constraint k ON k.conrelid = s.oid AND k.contype IN ('p', 'u', 'c', 'f', 'x')"
  " LEFT JOIN pg_class rc ON rc.oid = k.confrelid LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace"
  " UNION ALL SELECT 'index', s.nspname, s.relname, ic.relname::text, NULL, NULL, NULL, NULL,"
  "  NULL, NULL, NULL, NULL, 'u', NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
  "  CASE WHEN 0 <> ALL (i.indkey::int2[]) THEN "
  ATTNAMES("i.indrelid", "i.indkey::int2[]", " WHERE u.o <= i.indnkeyatts") " END,"
  "  pg_get_indexdef(i.indexrelid), NOT i.indimmediate, false, i.indpred IS NOT NULL, NULL, NULL, NULL"
  " FROM scope s JOIN pg_index i ON i.indrelid = s.oid AND i.indisunique"
  " JOIN pg_class ic ON ic.oid = i.indexrelid WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k"
  "  WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)"
  "%s ORDER BY 1, 2, 3, 5, 4";

/* Every type a CREATE TABLE on this server could name: base, enum, range,
 * multirange and domain types, arrays left out (an element known is its
 * array known). */
static const char KNOWN_TYPES[] =
  " UNION ALL SELECT 'known_types', NULL, NULL, 'known', NULL, NULL, NULL, NULL, NULL, NULL,"
  "  NULL, NULL, NULL, NULL, NULL, NULL, ARRAY(SELECT n.name FROM pg_type t"
  "  JOIN named n ON n.oid = t.oid WHERE t.typtype IN ('b', 'e', 'r', 'm', 'd')"
  "  AND t.typcategory <> 'A' ORDER BY 1), NULL, NULL, NULL" NO_KEY_VALUES;

static const char SHAPE_LAYOUT[] =
  "@layout what:t! schema:t table:t name:t! position:i type:t type_name:t typmod:i not_null:b"
  " has_default:b identity:t generated:t kind:t category:t element:t base:t labels:a checks:a"
  " implicit_from:a assignment_from:a columns:a definition:t deferrable:b deferred:b partial:b"
  " references.schema:t references.table:t references.columns:a";

void nc_layout_query(lua_State *L, const nc_conn *c, const char *scope, nc_step *step)
{
  step->sql = lua_pushfstring(L, SQL_LAYOUT, scope, c->test.job.kind == NC_DST ? KNOWN_TYPES : "");
  step->shape = SHAPE_LAYOUT;
}
