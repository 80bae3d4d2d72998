/* The executor proof: the job's exact statements for each table, planned by
 * the server as the role with EXPLAIN (never executed). EXPLAIN runs the
 * executor's own permission checks (table and column privileges,
 * predefined roles, views' base relations as the view owner or, for
 * security_invoker views, as the role, the kind of relation) and is allowed
 * in a READ ONLY transaction without a transaction ID.
 *
 * The statements depend on each table's columns, and the test is one round
 * trip, so they are built by the server, in a DO block: the identifiers are
 * quoted there by quote_ident() and regclass output, the server's own
 * quoting (neoconn's quote_ident quotes everything neoconn writes itself).
 * Each EXPLAIN runs in its own subtransaction (a plpgsql exception block),
 * so a refusal is recorded and the others go on. The DO block reads its
 * inputs from transaction-local settings (neoconn.*, set by the test's
 * settings step with bound parameters) and leaves its results in others,
 * which the two queries below read. %s: the scope subquery (catalog_sql.c),
 * whose $1..$4 are bound by EXECUTE ... USING. */
#include "neoconn.h"

const char nc_proof_sql[] =
  "DO $neoconn$\n"
  "DECLARE\n"
  "  dst boolean := current_setting('neoconn.kind') = 'destination';\n"
  "  upsert boolean := current_setting('neoconn.on_conflict') = 'update';\n"
  "  stop_at timestamptz := clock_timestamp()\n"
  "    + current_setting('neoconn.proof_budget_ms')::int * interval '1 millisecond';\n"
  "  sch text[] := nullif(current_setting('neoconn.scope_schemas'), '')::text[];\n"
  "  tsch text[] := nullif(current_setting('neoconn.scope_table_schemas'), '')::text[];\n"
  "  tnam text[] := nullif(current_setting('neoconn.scope_table_names'), '')::text[];\n"
  "  xs text[] := nullif(current_setting('neoconn.scope_exclude'), '')::text[];\n"
  "  n bigint;\n"
  "  t record;\n"
  "  c record;\n"
  "  stmt text;\n"
  "  status text := 'complete';\n"
  "  o_schema text[] := '{}'; o_name text[] := '{}'; o_stmt text[] := '{}';\n"
  "  o_state text[] := '{}'; o_msg text[] := '{}';\n"
  "BEGIN\n"
  "  EXECUTE $q$SELECT count(*) FROM %s s$q$ INTO n USING sch, tsch, tnam, xs;\n"
  "  IF n > current_setting('neoconn.proof_limit')::bigint THEN\n"
  "    status := 'over_limit';\n"
  "  ELSE\n"
  "    FOR t IN EXECUTE $q$SELECT s.oid, s.nspname::text AS nspname, s.relname::text AS relname"
  "      FROM %s s ORDER BY 2, 3$q$ USING sch, tsch, tnam, xs LOOP\n"
  "      IF clock_timestamp() > stop_at THEN\n"
  "        status := 'out_of_time';\n"
  "        EXIT;\n"
  "      END IF;\n"
  "      SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) AS all_cols,\n"
  "        string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)\n"
  "          FILTER (WHERE a.attgenerated = '') AS ins_cols,\n"
  "        string_agg('NULL', ', ') FILTER (WHERE a.attgenerated = '') AS ins_vals,\n"
  "        coalesce(bool_or(a.attidentity = 'a'), false) AS always,\n"
  "        string_agg(quote_ident(a.attname) || ' = EXCLUDED.' || quote_ident(a.attname), ', '\n"
  "          ORDER BY a.attnum) FILTER (WHERE a.attgenerated = '' AND a.attidentity <> 'a'\n"
  "          AND k.pos IS NULL) AS sets,\n"
  "        string_agg(quote_ident(a.attname), ', ' ORDER BY k.pos)\n"
  "          FILTER (WHERE k.pos IS NOT NULL) AS keys\n"
  "      INTO c FROM pg_attribute a\n"
  "      LEFT JOIN LATERAL (SELECT array_position(i.indkey::int2[], a.attnum) AS pos\n"
  "        FROM pg_index i WHERE i.indrelid = t.oid AND i.indisprimary\n"
  "        AND a.attnum = ANY (i.indkey::int2[])) k ON true\n"
  "      WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped;\n"
  "      IF NOT dst THEN\n"
  "        stmt := 'SELECT ' || coalesce(c.all_cols, '') || ' FROM ' || t.oid::regclass::text;\n"
  "      ELSE\n"
  "        stmt := 'INSERT INTO ' || t.oid::regclass::text\n"
  "          || CASE WHEN c.ins_cols IS NULL THEN ' DEFAULT VALUES'\n"
  "             ELSE ' (' || c.ins_cols || ')'\n"
  "               || CASE WHEN c.always THEN ' OVERRIDING SYSTEM VALUE' ELSE '' END\n"
  "               || ' VALUES (' || c.ins_vals || ')' END\n"
  "          || CASE WHEN upsert AND c.keys IS NOT NULL THEN ' ON CONFLICT (' || c.keys\n"
  "               || ') DO ' || coalesce('UPDATE SET ' || c.sets, 'NOTHING')\n"
  "             ELSE ' ON CONFLICT DO NOTHING' END;\n"
  "      END IF;\n"
  "      BEGIN\n"
  "        EXECUTE 'EXPLAIN (COSTS OFF) ' || stmt;\n"
  "        o_state := o_state || NULL::text;\n"
  "        o_msg := o_msg || NULL::text;\n"
  "      EXCEPTION WHEN OTHERS THEN\n"
  "        o_state := o_state || SQLSTATE::text;\n"
  "        o_msg := o_msg || SQLERRM::text;\n"
  "      END;\n"
  "      o_schema := o_schema || t.nspname;\n"
  "      o_name := o_name || t.relname;\n"
  "      o_stmt := o_stmt || stmt;\n"
  "    END LOOP;\n"
  "  END IF;\n"
  "  PERFORM set_config('neoconn.proof_status', status, true),\n"
  "    set_config('neoconn.proof_tables', n::text, true),\n"
  "    set_config('neoconn.proof_schema', o_schema::text, true),\n"
  "    set_config('neoconn.proof_name', o_name::text, true),\n"
  "    set_config('neoconn.proof_statement', o_stmt::text, true),\n"
  "    set_config('neoconn.proof_sqlstate', o_state::text, true),\n"
  "    set_config('neoconn.proof_message', o_msg::text, true);\n"
  "END\n"
  "$neoconn$";

const char nc_proof_status_sql[] =
  "SELECT current_setting('neoconn.proof_status') AS status,"
  " current_setting('neoconn.proof_tables')::bigint AS tables";

const char nc_proof_rows_sql[] =
  "SELECT p.schema, p.name, p.statement, p.sqlstate, p.message"
  " FROM unnest(current_setting('neoconn.proof_schema')::text[],"
  "  current_setting('neoconn.proof_name')::text[],"
  "  current_setting('neoconn.proof_statement')::text[],"
  "  current_setting('neoconn.proof_sqlstate')::text[],"
  "  current_setting('neoconn.proof_message')::text[])"
  "  AS p(schema, name, statement, sqlstate, message)";

const char nc_proof_status_shape[] = "@proof_status/1 status:t! tables:i!";
const char nc_proof_rows_shape[] = "@proof_rows schema:t! name:t! statement:t sqlstate:t message:t";
