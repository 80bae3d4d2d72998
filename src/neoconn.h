/* Declarations shared by the C files of neoconn.core. Everything here is
 * hidden: the shared object exports luaopen_neoconn_core and nothing else. */
#ifndef NEOCONN_H
#define NEOCONN_H

#include <stdarg.h>
#include <stddef.h>
#include <libpq-fe.h>
#include "compat.h"

#define NC_PRIVATE __attribute__((visibility("hidden")))
#define TEXTARRAYOID 1009 /* text[]: catalog parameters, and rows read back */

#define NC_CONN_MT "neoconn.connection"
#define NC_ERROR_MT "neoconn.error"
#define NC_DEFAULT_TIMEOUT 10.0
#define NC_MAX_FIELD 4096   /* bytes in one connection setting, a password included */
#define NC_MAX_TARGET 16384 /* bytes in a connection string */
#define NC_MAX_NAME 1024    /* bytes in a schema or table name */
#define NC_MAX_LIST 100000  /* names in a list of tables or schemas */
#define NC_MAX_PARAMS 65535 /* parameters of one statement: the protocol counts them in 16 bits */
/* Jobs of up to this many tables are proven by the executor by default
 * (opts.proof = "auto"); see the README for the measurements behind it. */
#define NC_PROOF_AUTO_LIMIT 5000
/* The share of the time left that the executor proof may take. */
#define NC_PROOF_BUDGET_SHARE 0.5

/* Stages of a test, in the order they happen. */
typedef enum {
  NC_STAGE_CONFIG,
  NC_STAGE_CONNECT,
  NC_STAGE_TLS,
  NC_STAGE_AUTHENTICATE,
  NC_STAGE_SESSION,
  NC_STAGE_INTROSPECT,
  NC_STAGE_REPLICATION, /* a CDC job's replication connection, after introspect */
  NC_STAGE_QUERY, /* conn:query, outside any test */
  NC_STAGE_COUNT
} nc_stage;

NC_PRIVATE extern const char *const nc_stage_names[NC_STAGE_COUNT];

/* A classified failure, filled in C and pushed to Lua as one table. Its
 * message and hint are heap strings of any length (NULL when empty), freed
 * by nc_error_free; every nc_error lives in a connection userdata, so its
 * __gc frees them whatever happens. */
typedef struct {
  const char *code;
  nc_stage stage;
  char sqlstate[6];
  int pooler;           /* answered by a pooler: 1 + its answer's index in errors.c */
  char *message;
  char *hint;
} nc_error;

/* A sync job (requirements.c): its kind and the value of each option, an
 * index into that option's values (false, true, then its choices); an
 * option naming an object (a slot, a publication) has its name instead,
 * "" when not given. Names are at most 63 bytes (NAMEDATALEN - 1): the
 * server keeps none longer, and longer ones are refused, not cut. */
enum { NC_SRC = 1, NC_DST = 2, NC_JOB = 4 }; /* NC_JOB: a source and destination pair */
enum { NC_OPT_ON_CONFLICT, NC_OPT_TRUNCATE, NC_OPT_RESET_SEQUENCES, NC_OPT_INIT_SCHEMA,
       NC_OPT_CDC, NC_OPT_SLOT, NC_OPT_PUBLICATION, NC_OPT_COUNT };
#define NC_NAME_MAX 63
typedef struct {
  int kind;   /* 0: no job given */
  int value[NC_OPT_COUNT];
  char name[NC_OPT_COUNT][NC_NAME_MAX + 1];
} nc_job;

/* One step of a pipeline: a statement (sql != NULL) or the sync that ends
 * it. Rows of a statement go to lists[list] when list > 0, in byte order
 * of their first two columns when `sorted` (nc_push_rows). A failing
 * statement fails the test, unless it is `tolerated`: then its error is
 * kept in c->tolerated_error and the test goes on (the server skips what
 * follows, up to the sync; a ROLLBACK then ends the transaction). With
 * `flush` the server sends the statement's result as soon as it is
 * complete (not when its buffer fills or at the sync), so the client can
 * build a large one while the server runs what follows. */
/* A test sends at most 23: BEGIN, its settings, the privilege set, 11
 * catalog queries, 4 of a CDC job, 3 of the proof, COMMIT and the sync. */
#define NC_MAX_STEPS 32
typedef struct {
  const char *sql;
  int nparams;
  const char *const *params;
  const Oid *types;
  int list;
  int tolerated;
  int sorted;
  int flush;
  const char *shape;           /* a statement with a list: what its answer must be (shape.c) */
} nc_step;

/* The pipeline in flight on a connection (pipeline.c). */
typedef struct {
  int phase;                     /* 0 idle, else the pipeline or its ROLLBACK */
  int expect;                    /* the step whose result comes next */
  int nsteps;
  struct { int list, tolerated, sorted, sync; const char *shape; } steps[NC_MAX_STEPS];
  int tolerated_failed;          /* a tolerated step failed: see tolerated_error */
  int awaiting_null;             /* each query's result is followed by a NULL */
  int flushing;                  /* output not yet all sent */
  int failed;                    /* a query failed or the connection was lost: see `error` */
} nc_pipeline;

/* Where a test is: one state, moved forward by test.c's advance(). */
typedef enum {
  NC_TEST_NONE,                  /* no test on this connection */
  NC_TEST_CONNECTING,            /* the test's own connection, handshake in progress */
  NC_TEST_CATALOG,               /* the catalog pipeline: not sent yet, or in flight */
  NC_TEST_REPLICATION            /* a CDC job's replication connection (replication.c) */
} nc_test_state;

/* A test in progress. Its rows and the replication connection's userdata
 * live in its Lua state (a registry table). */
typedef struct {
  nc_test_state state;
  int state_ref;                 /* registry ref of the test's Lua state, or LUA_NOREF */
  int owned;                     /* the test opened this connection and closes it */
  double started, deadline, introspect_started; /* introspect_started < 0: not sent */
  nc_job job;                    /* the test's job (kind 0: none given) */
  long proof_limit;              /* prove up to this many tables; 0: no proof */
  int layout;                    /* read the tables' layout (opts.layout) */
  struct nc_conn *repl;          /* the replication connection, in NC_TEST_REPLICATION */
  int repl_phase;                /* its own progress (replication.c) */
  double repl_started, repl_ms;
} nc_test;

/* A second look at a service that does not speak PostgreSQL (probe.c). */
typedef struct {
  int fd;                        /* -1: not running */
  int sent;                      /* the first message is sent */
  int tls_tried;                 /* the second connection, with a TLS ClientHello */
  int want_write;
  double until;
  size_t len;
  char bytes[64];                /* the first bytes it answered */
  char host[256], hostaddr[64], port[16];
} nc_probe;

/* A connection userdata. `pg` is NULL once closed. */
typedef struct nc_conn {
  PGconn *pg;
  int ready;                     /* handshake finished */
  int failed;                    /* handshake failed; `error` says why */
  nc_stage stage;                /* stage of the handshake in progress */
  double started;                /* monotonic seconds */
  double stage_done[NC_STAGE_COUNT]; /* seconds after `started`, < 0 if not reached */
  double failed_after;           /* seconds after `started` the handshake failed */
  int tls_seen;                  /* the handshake went through TLS negotiation */
  int want_write;                /* the handshake waits for the socket to be writable */
  double connect_deadline;       /* connect_start's: connect_poll gives up after it */
  nc_pipeline pipe;              /* statements in flight (pipeline.c) */
  nc_test test;                  /* a test in progress (test.c) */
  char *secret;                  /* the password, kept only to scrub it from messages */
  char *ignored_passfile;        /* one kept from libpq: others may read it */
  int sslcert_given;             /* a client certificate was set (for a hint) */
  double connect_timeout;        /* the connection's connect_timeout (0: none) */
  int connect_timeout_hit;       /* the handshake ended at connect_timeout */
  int probing;                   /* a failed handshake's second look is running */
  nc_probe probe;
  char *user, *host, *port, *dbname; /* what libpq used (heap strings; NULL: unknown) */
  nc_error error;
  nc_error tolerated_error;
  nc_error query_error;          /* conn:query's */
} nc_conn;

/* time.c */
NC_PRIVATE double nc_now(void);
NC_PRIVATE int nc_finite(double x);
/* Seconds as whole milliseconds, rounded up and kept within [0, cap]: for
 * poll(2) (an int) and statement_timeout (at most INT_MAX ms). */
NC_PRIVATE int nc_ms(double seconds, int cap);
#define NC_DAY_MS 86400000
/* Waits until fd is readable (mode 0), writable (1) or either (2);
 * 1 ready, 0 deadline passed, -1 error. */
NC_PRIVATE int nc_wait_fd(int fd, int mode, double deadline);

/* ident.c */
NC_PRIVATE size_t nc_quote_ident(char *out, const char *s, size_t len);
NC_PRIVATE int nc_l_quote_ident(lua_State *L);
NC_PRIVATE int nc_l_quote_literal(lua_State *L);

/* names.c */
NC_PRIVATE const char *nc_parse_qualified(lua_State *L, const char *s);
NC_PRIVATE int nc_l_parse_name(lua_State *L);

/* args.c: a string argument (numbers convert, as Lua's own do), its error
 * naming it: "bad argument #2 to 'query' (sql: string expected, got nil)";
 * nc_check_text also refuses a zero byte (C would cut the text there):
 * "sql: contains a zero byte". */
NC_PRIVATE const char *nc_check_string(lua_State *L, int idx, const char *name, size_t *len);
NC_PRIVATE const char *nc_check_text(lua_State *L, int idx, const char *name, size_t *len);

/* text.c: heap strings, secrets, and untrusted text made fit to show. */
NC_PRIVATE char *nc_strdup(const char *s); /* NULL for NULL or no memory */
NC_PRIVATE void nc_free_secret(char **secret); /* zeroes it first */
NC_PRIVATE char *nc_vformat(const char *fmt, va_list ap); /* a heap string, however long */
NC_PRIVATE char *nc_join(const char *a, const char *b); /* a .. b, a heap string */
/* One line: runs of white space holding a line break become one space
 * (libpq's "\n\t" continuation lines); trailing white space goes. */
NC_PRIVATE char *nc_one_line(const char *message);
/* What the character at s (len bytes left) is, its length *n and code
 * point *cp: plain (shown as itself), control (C0, DEL, C1 and invisible
 * or direction-changing code points: never shown raw), or a byte that is
 * not UTF-8. The printable form and quote_ident agree through it. */
typedef enum { NC_CHAR_PLAIN, NC_CHAR_CONTROL, NC_CHAR_INVALID } nc_char_kind;
NC_PRIVATE nc_char_kind nc_char_at(const char *s, size_t len, size_t *n, unsigned long *cp);
/* The one printable form of text shown to people (messages, hints, the
 * human report, SQL comments): every character that is not plain escaped
 * (\n, \r, \t, \x1B, \u{202E}). */
NC_PRIVATE void nc_add_printable(luaL_Buffer *b, const char *s, size_t len);
NC_PRIVATE void nc_push_printable(lua_State *L, const char *s, size_t len);
NC_PRIVATE int nc_l_printable(lua_State *L); /* neoconn.printable(text) */
/* The one redactor: text with every occurrence of the secret (when given),
 * URL passwords (scheme://user:SECRET@) and password=... values masked. */
NC_PRIVATE void nc_push_redacted(lua_State *L, const char *text, const char *secret);
NC_PRIVATE int nc_l_redact(lua_State *L); /* neoconn.redact(text [, secret]) */

/* errors.c: the error object. */
NC_PRIVATE void nc_error_set(nc_error *e, const char *code, nc_stage stage, const char *message);
NC_PRIVATE void nc_error_set_hint(nc_error *e, const char *hint);
NC_PRIVATE void nc_error_messagef(nc_error *e, const char *fmt, ...);
/* The message of libpq's verbose text, on one line, its SQLSTATE kept. */
NC_PRIVATE void nc_error_from_libpq(nc_error *e, const char *raw);
NC_PRIVATE void nc_error_free(nc_error *e);
NC_PRIVATE void nc_push_error(lua_State *L, const nc_error *e, const char *secret);
NC_PRIVATE void nc_register_error_mt(lua_State *L);

/* classify.c: which code, stage and hint a failure gets (tables). */
NC_PRIVATE void nc_classify_connect_failure(nc_conn *c, const char *libpq_message, int timed_out);
NC_PRIVATE void nc_classify_query_failure(nc_error *e, const PGresult *res, PGconn *pg, int timed_out,
                                          nc_stage stage);
NC_PRIVATE void nc_config_error(nc_error *e, const char *message); /* invalid_config, its hint */
/* protocol_error: the server's answer is not what the query asked for. */
NC_PRIVATE void nc_protocol_error(nc_error *e, nc_stage stage, const char *message);
/* The hint about a setting (or topic: "percent-encode", "COPY", "too wide")
 * the message names. */
NC_PRIVATE const char *nc_setting_hint(const char *message);
/* A failure that another service's answer explains: not_postgres. */
NC_PRIVATE void nc_classify_not_postgres(nc_conn *c);

/* conninfo.c: pushes a table keyword -> string for a Lua target (arg idx). */
NC_PRIVATE int nc_push_params(lua_State *L, int idx, nc_error *e);
NC_PRIVATE int nc_l_target_settings(lua_State *L); /* neoconn.target_settings(target) */

/* conn.c */
NC_PRIVATE nc_conn *nc_check_conn(lua_State *L, int idx);
NC_PRIVATE nc_conn *nc_test_conn(lua_State *L, int idx);
NC_PRIVATE nc_conn *nc_new_conn(lua_State *L); /* pushed on the stack */
/* The handshake step by step: begin 1 started / 0 failed (c->failed);
 * step 1 ready, 0 wait on the socket (c->want_write), -1 failed. */
NC_PRIVATE int nc_connect_begin(lua_State *L, nc_conn *c, int target);
NC_PRIVATE int nc_connect_begin_like(nc_conn *c, PGconn *like, const char *key, const char *value);
NC_PRIVATE int nc_connect_step(nc_conn *c);
NC_PRIVATE void nc_connect_give_up(nc_conn *c); /* deadline passed: failed with timeout */
/* The handshake's deadline: the caller's, or connect_timeout's when that
 * ends first (libpq does not enforce it when driven step by step). */
NC_PRIVATE double nc_handshake_deadline(const nc_conn *c, double deadline);
NC_PRIVATE nc_conn *nc_connect(lua_State *L, int target, double timeout);
NC_PRIVATE void nc_conn_close(nc_conn *c);
NC_PRIVATE void nc_remember_endpoint(nc_conn *c); /* user, host, port, dbname from libpq */
NC_PRIVATE void nc_install_key_password_hook(void); /* never a terminal prompt */
NC_PRIVATE void nc_release_test(lua_State *L, nc_conn *c); /* drops the test's Lua state */
/* The connection's metatable; methods: more methods (query, test_step),
 * from the modules above conn.c, so that conn.c calls none of them. */
NC_PRIVATE void nc_register_conn(lua_State *L, const luaL_Reg *methods);
NC_PRIVATE void nc_register_connect(lua_State *L); /* into the module table on top */
NC_PRIVATE double nc_opt_timeout(lua_State *L, int opts, const char *fname);

/* probe.c: begin 1 started (0: nothing to look at); step 1 finished (its
 * socket closed), 0 wait (p->want_write); text: the bytes it got, a heap
 * string. */
NC_PRIVATE int nc_probe_begin(nc_probe *p, const char *host, const char *hostaddr,
                              const char *port, double deadline);
NC_PRIVATE int nc_probe_step(nc_probe *p);
NC_PRIVATE void nc_probe_close(nc_probe *p);
NC_PRIVATE char *nc_probe_text(const nc_probe *p);
NC_PRIVATE int nc_probe_found_tls(const nc_probe *p); /* a TLS record answered a ClientHello */
/* The socket a connection waits on now: libpq's, or its probe's (-1). */
NC_PRIVATE int nc_conn_socket(const nc_conn *c);

/* box.c: GC-owned holders for libpq allocations (see box.c). */
/* take: the next result of pg (NULL at a query's end), in a box pushed on
 * the stack; drop: frees the boxed result on top and pops the box. */
NC_PRIVATE PGresult *nc_take_result(lua_State *L, PGconn *pg);
NC_PRIVATE void nc_drop_result(lua_State *L);
NC_PRIVATE PQconninfoOption **nc_new_options_box(lua_State *L);
/* Any allocation, freed by release when the box is collected. */
NC_PRIVATE void **nc_new_box(lua_State *L, void (*release)(void *));

/* certificate.c: the TLS session's certificates (the server's, and the
 * client's when one was sent) into the ssl table at index ssl. */
NC_PRIVATE void nc_set_certificates(lua_State *L, PGconn *pg, int ssl);
NC_PRIVATE void nc_register_box(lua_State *L);

/* shape.c: pushes what is wrong with res for the shape (a static string
 * next to its query) and returns 1, or returns 0 when it fits. */
NC_PRIVATE int nc_shape_problem(lua_State *L, const PGresult *res, const char *shape);

/* result.c */
NC_PRIVATE int nc_push_rows(lua_State *L, const PGresult *res, int share, int sorted);
NC_PRIVATE int nc_l_query(lua_State *L); /* conn:query */

/* pipeline.c: statements and sync points sent in one round trip, step by
 * step. begin: 1 sent (or buffered), 0 failed (c->error, connection
 * closed). step: 1 finished (c->query_failed tells whether it failed),
 * 0 wait for the socket (c->want_write). timeout: gives up, closing the
 * connection. The last step must be a sync, and the connection must be
 * idle after it (else it is closed). */
NC_PRIVATE int nc_pipeline_begin(nc_conn *c, const nc_step *steps, int nsteps);
NC_PRIVATE int nc_pipeline_step(lua_State *L, nc_conn *c, int lists);
NC_PRIVATE int nc_pipeline_timeout(nc_conn *c);

/* replication.c: a CDC job's catalog queries (appended to steps from
 * index n, their rows in lists first_list, +1, +2, +3; returns the new
 * step count), the replication connection as a phase of the test (step: 1
 * finished, 0 waiting on the replication connection's socket), and its part of the
 * report. */
#define NC_REPLICATION_LISTS 4
NC_PRIVATE int nc_replication_queries(lua_State *L, nc_conn *c, const char *with,
                                      const char *const *scope, nc_step *steps, int n,
                                      int first_list);
NC_PRIVATE int nc_replication_wanted(const nc_conn *c);
NC_PRIVATE int nc_replication_step(lua_State *L, nc_conn *c, int state);
NC_PRIVATE void nc_replication_report(lua_State *L, const nc_conn *c, int report, int lists,
                                      int first_list, int state);

/* catalog_sql.c: the test's catalog queries; each query's rows go to the
 * list numbered its Q_ value + 1 in the test's state. */
enum { Q_SERVER, Q_ROLE, Q_SCHEMAS, Q_TABLES, Q_SEQUENCES, Q_FUNCTIONS,
       Q_NOT_FOUND, Q_TRIGGERS, Q_FOREIGN_KEYS, Q_CASCADE, Q_COLUMN_ACLS, Q_ROW_CHECKS,
       Q_LAYOUT, Q_PROOF_STATUS,
       Q_PROOF_ROWS, Q_REPLICATION, Q_COUNT = Q_REPLICATION + NC_REPLICATION_LISTS };
/* Fills queries[Q_...] (zeroed by the caller; sql NULL: not sent) with each
 * query's SQL and how it is read (sorted, flush), for the test on c with
 * scope parameters params ($1..$3; the strings are pushed on the stack);
 * the caller binds the parameters and the list. Gives the statement to run
 * before them all (the session role's privilege set, which they read), the
 * scope CTE's body and "WITH scope AS ..." for other queries. */
NC_PRIVATE void nc_catalog_queries(lua_State *L, const nc_conn *c, const char *const *params,
                                   nc_step *queries, const char **me, const char **scope,
                                   const char **with);

/* row_checks.c: what the server checks per written row beyond the plan
 * (a job's functions, foreign keys' owners, arbiters, policies): the
 * statement for the test on c over the scope CTE's body, into step. */
NC_PRIVATE void nc_row_checks_query(lua_State *L, const nc_conn *c, const char *scope,
                                    nc_step *step);

/* layout.c: the columns, types and constraints of the tables in scope,
 * for a job pairing this connection with another (opts.layout): the
 * statement for the test on c over the scope CTE's body, into step. */
NC_PRIVATE void nc_layout_query(lua_State *L, const nc_conn *c, const char *scope, nc_step *step);

/* scope.c: pushes $1 (schemas), $2 and $3 (table schemas and names) from
 * opts.schemas and opts.tables (nil: not given); errors name argument arg. */
NC_PRIVATE void nc_push_scope_params(lua_State *L, int opts, int arg);

/* report_parts.c (below report.c, replication.c and test.c): t[key] = v;
 * seconds as milliseconds rounded to 0.01; a stage { name, ok, ms }
 * appended to the stages list at index stages (the entry left on the
 * stack); the list of row lists of the test in progress; the first row of
 * lists[i], or nil (the list of a query not sent is nil). */
NC_PRIVATE void nc_set_number(lua_State *L, int t, const char *key, double v);
NC_PRIVATE void nc_set_bool(lua_State *L, int t, const char *key, int v);
NC_PRIVATE double nc_report_ms(double seconds);
NC_PRIVATE void nc_add_stage(lua_State *L, int stages, const char *name, int ok, double seconds);
NC_PRIVATE int nc_push_test_lists(lua_State *L, const nc_conn *c);
NC_PRIVATE void nc_push_first_row(lua_State *L, int lists, int i);

/* report.c: the finished test's report, and a failed connection's. */
NC_PRIVATE void nc_push_test_report(lua_State *L, nc_conn *c);
NC_PRIVATE void nc_push_connect_failure_report(lua_State *L, nc_conn *c);

/* test.c */
NC_PRIVATE int nc_l_test(lua_State *L);
NC_PRIVATE int nc_l_test_begin(lua_State *L);
NC_PRIVATE int nc_l_test_step(lua_State *L); /* conn:test_step */

/* sandbox.c: core.sandbox and core.file_kind, into the module table on top. */
NC_PRIVATE void nc_register_sandbox(lua_State *L);

/* requirements.c */
NC_PRIVATE int nc_l_requirements(lua_State *L);
NC_PRIVATE int nc_l_job_options(lua_State *L);
/* The kind at idx: "source" -> NC_SRC, "destination" -> NC_DST; else an
 * error on argument arg naming it. */
NC_PRIVATE int nc_check_kind(lua_State *L, int idx, int arg, const char *name);
/* Reads the job options at opts into job (raises on a bad one, as argument
 * arg); with_kind: the table may also carry `kind`. */
NC_PRIVATE void nc_check_job(lua_State *L, int kind, int opts, int arg, int with_kind, nc_job *job);
NC_PRIVATE const char *nc_job_choice(const nc_job *job, int option); /* "false", "update", ... */
NC_PRIVATE void nc_push_job(lua_State *L, const nc_job *job); /* { kind =, <option> = value } */

/* proof.c: the executor proof of a job's statements (EXPLAIN as the role). */
NC_PRIVATE extern const char nc_proof_sql[];      /* the DO block; reads neoconn.* settings */
NC_PRIVATE extern const char nc_proof_rows_sql[]; /* its per-table results */
NC_PRIVATE extern const char nc_proof_status_sql[];
NC_PRIVATE extern const char nc_proof_rows_shape[];
NC_PRIVATE extern const char nc_proof_status_shape[];

#endif
