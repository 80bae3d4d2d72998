/* What a failure is: the knowledge that turns libpq's and the server's
 * answers into a code, a stage and a hint, kept as tables a reader can scan
 * (errors.c makes the error object from them). The code comes from the
 * server's SQLSTATE where the server sent one, otherwise from libpq's own
 * messages (client-side, English in the C locale); the stage is the
 * handshake's, unless the SQLSTATE proves the server got further. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "neoconn.h"

/* "a|b|c": whether text holds any of the phrases (case-sensitive). */
static int has_any(const char *text, const char *phrases)
{
  const char *p = phrases;
  while (p != NULL && *p != '\0') {
    const char *bar = strchr(p, '|');
    size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
    const char *t;
    for (t = text; *t != '\0'; t++)
      if (strncmp(t, p, len) == 0)
        return 1;
    p = bar != NULL ? bar + 1 : NULL;
  }
  return 0;
}

/* Case-insensitive: pgbouncer's capitals changed between releases ("no such
 * database", "No such database"). */
static int has_nocase(const char *text, const char *needle)
{
  size_t n = strlen(needle), i;
  for (; *text != '\0'; text++) {
    for (i = 0; i < n; i++) {
      char a = text[i], b = needle[i];
      if (a >= 'A' && a <= 'Z')
        a = (char)(a - 'A' + 'a');
      if (b >= 'A' && b <= 'Z')
        b = (char)(b - 'A' + 'a');
      if (a == '\0' || a != b)
        break;
    }
    if (i == n)
      return 1;
  }
  return 0;
}

/* 1. Which code a failed connection gets: the first rule that matches.
 * sqlstate: the server's (NULL: it sent none); phrases: any of them in the
 * message (NULL: any message); unless: none of these; when: a condition
 * on where the handshake was. stage: where it is said (KEEP: the stage
 * the handshake was in). */
#define KEEP -1
enum { ANY_STAGE, AT_CONFIG, AT_CONNECT, AT_TLS };
static const struct {
  const char *sqlstate;
  const char *phrases;
  const char *unless;
  int when;
  const char *code;
  int stage;
} connect_rules[] = {
  { "28P01", NULL, NULL, ANY_STAGE, "auth_failed", NC_STAGE_AUTHENTICATE },
  /* 28000 has three causes: pg_hba.conf rejects before authentication,
   * the LOGIN check comes after it. */
  { "28000", "pg_hba.conf", NULL, ANY_STAGE, "hba_rejected", NC_STAGE_AUTHENTICATE },
  { "28000", "requires a valid client certificate|certificate authentication failed", NULL,
    ANY_STAGE, "client_cert_rejected", NC_STAGE_AUTHENTICATE },
  { "28000", "not permitted to log in", NULL, ANY_STAGE, "login_not_allowed", NC_STAGE_SESSION },
  { "28000", NULL, NULL, ANY_STAGE, "auth_failed", NC_STAGE_AUTHENTICATE },
  { "3D000", NULL, NULL, ANY_STAGE, "database_missing", NC_STAGE_SESSION },
  { "42501", "walsender|WAL sender", NULL, ANY_STAGE, "replication_not_allowed", NC_STAGE_SESSION },
  { "42501", NULL, NULL, ANY_STAGE, "connect_denied", NC_STAGE_SESSION },
  /* The server refuses a session: no slot left, for the server, the
   * database or the role. */
  { "53300", NULL, NULL, ANY_STAGE, "too_many_connections", NC_STAGE_SESSION },
  { "57P03", NULL, NULL, ANY_STAGE, "server_starting", KEEP },
  /* No SQLSTATE: libpq's own words. */
  { NULL, NULL, NULL, AT_CONFIG, "invalid_config", NC_STAGE_CONFIG },
  { NULL, "invalid integer value|for connection option", NULL, ANY_STAGE, "invalid_config",
    NC_STAGE_CONFIG },
  { NULL, "could not translate host name", NULL, ANY_STAGE, "dns", NC_STAGE_CONNECT },
  { NULL, "no password supplied", NULL, ANY_STAGE, "password_missing", NC_STAGE_AUTHENTICATE },
  { NULL, "server does not support SSL", NULL, ANY_STAGE, "tls_unsupported", NC_STAGE_TLS },
  { NULL, "Connection refused|No such file or directory", NULL, AT_CONNECT, "refused", KEEP },
  { NULL, "read-only|hot standby|is not in recovery", NULL, ANY_STAGE, "wrong_session_type",
    NC_STAGE_SESSION },
  { NULL, "private key file|client certificate|certificate file", "root certificate file",
    ANY_STAGE, "client_key", NC_STAGE_TLS },
  /* Something else answers: its first byte is not what PostgreSQL sends
   * (an HTTP server, an SSH banner, a TLS-only service). */
  { NULL, "received invalid response to SSL negotiation|expected authentication request from "
    "server|unexpected message from server during startup|invalid response to GSSAPI negotiation",
    NULL, ANY_STAGE, "not_postgres", KEEP },
  /* Closed by the other end: plainly, or with a TLS close_notify in the
   * middle of the handshake (a server shutting down). */
  { NULL, "server closed the connection unexpectedly|EOF detected|Connection reset by peer|"
    "SSL connection has been closed unexpectedly", NULL, ANY_STAGE, "connection_lost", KEEP },
  { NULL, NULL, NULL, AT_TLS, "tls_failed", NC_STAGE_TLS },
  { NULL, "SSL error|certificate", NULL, ANY_STAGE, "tls_failed", NC_STAGE_TLS },
};

/* 2. What pgbouncer answers a login with: FATAL, SQLSTATE 08P01 for every
 * cause, told apart by the text (case-insensitively). Most specific
 * first: with sslmode=prefer libpq retries without TLS, and the message
 * ends with that attempt's "SSL required". Its upstream's own refusal
 * arrives as "password authentication failed for user" (pgbouncer's for
 * the client lacks "for user"). */
#define POOLER "the connection pooler in front of the server (pgbouncer) answered, not PostgreSQL: "
static const struct {
  const char *phrase;
  const char *code;
  nc_stage stage;
  const char *hint;
} pooler_answers[] = {
  { "password authentication failed for user", "upstream_failed", NC_STAGE_SESSION,
    POOLER "it could not log in to the PostgreSQL server behind it for database {db} (the user or "
    "password of its [databases] entry): its log has the server's answer" },
  { "server login has been failing", "upstream_failed", NC_STAGE_SESSION,
    POOLER "it could not log in to the PostgreSQL server behind it for database {db} (the user or "
    "password of its [databases] entry, or that database missing there): its log has the "
    "server's answer; after a failure it waits server_login_retry before trying again" },
  { "cannot connect to server", "upstream_failed", NC_STAGE_SESSION,
    POOLER "it cannot reach the PostgreSQL server behind it for database {db}: check that server "
    "and the host and port of the pooler's [databases] entry" },
  { "query_wait_timeout", "upstream_failed", NC_STAGE_SESSION,
    POOLER "it got no server connection for database {db} in time (query_wait_timeout): the server "
    "behind it is down or refuses the pooler's login, or the pool is full; its log says which" },
  { "database does not allow connections", "upstream_failed", NC_STAGE_SESSION,
    POOLER "database {db} is disabled or paused in the pooler (its admin console's DISABLE or "
    "PAUSE): ENABLE or RESUME it there" },
  { "no such database", "database_missing", NC_STAGE_SESSION,
    POOLER "it has no entry for database {db}: check dbname against its [databases] section" },
  { "no such user", "auth_failed", NC_STAGE_AUTHENTICATE,
    POOLER "it knows no user {user}: add the user to its auth_file, or check its auth_user and "
    "auth_query" },
  { "authentication failed", "auth_failed", NC_STAGE_AUTHENTICATE,
    POOLER "user {user} could not authenticate: check the password (the pooler checks it against "
    "its auth_file or auth_query), and dbname {db} (pgbouncer answers a database it has no entry "
    "for the same way, so as not to tell which exist)" },
  { "no more connections allowed", "too_many_connections", NC_STAGE_SESSION,
    POOLER "it has no free client slot (max_client_conn): close idle clients or raise it" },
  { "unsupported startup parameter: replication", "replication_through_pooler",
    NC_STAGE_REPLICATION,
    POOLER "it does not pass replication connections (replication=database) through: point the "
    "CDC connection at the PostgreSQL server itself, its own host and port, not the pooler's "
    "(Supavisor, Neon's pooler and RDS Proxy refuse them too)" },
  { "login rejected", "hba_rejected", NC_STAGE_AUTHENTICATE,
    POOLER "its auth_hba_file refuses user {user} to database {db}: add a line accepting it" },
  { "SSL required", "hba_rejected", NC_STAGE_AUTHENTICATE,
    POOLER "it accepts only TLS connections: connect with sslmode=require (verify-full with "
    "sslrootcert to check it too)" },
};

/* 3. The hint each code gets: the first row whose phrases (in the message)
 * and condition match. {user} and {db} are written quoted, {host},
 * {port}, {stage}, {passfile} and {seconds} as they are. */
enum { ALWAYS, IF_SSLCERT, IF_PASSFILE_OPEN, IF_TCP_OPEN, IF_CONNECT_TIMEOUT };
static const struct {
  const char *code;
  const char *phrases;
  int condition;
  const char *hint;
} hints[] = {
  { "dns", NULL, ALWAYS, "the host name {host} does not resolve: check the spelling, or use "
    "hostaddr with the server's IP address" },
  { "refused", NULL, ALWAYS, "nothing listens at {host} port {port}: check host and port, that the "
    "server is running, and listen_addresses in postgresql.conf" },
  { "timeout", NULL, IF_CONNECT_TIMEOUT, "the connection was not made within connect_timeout "
    "({seconds} s, the connection's own setting; the test's deadline did not end first): raise "
    "connect_timeout, or check the host and port and the network" },
  { "timeout", NULL, IF_TCP_OPEN, "the server at {host} port {port} accepted the connection but "
    "never answered (during {stage}): a proxy or firewall holding it, another service that waits "
    "for the client to speak, or an overloaded server; check that host and port are PostgreSQL's, "
    "or raise the timeout" },
  { "timeout", NULL, ALWAYS, "no answer to the connection attempt to {host} port {port} within the "
    "deadline: a firewall dropping packets, a wrong host or address, or the server down; check "
    "host and port, or raise the timeout" },
  { "tls_unsupported", NULL, ALWAYS, "the server does not offer TLS: enable ssl = on on the server, "
    "or use sslmode=prefer or disable if an unencrypted connection is acceptable" },
  { "tls_failed", "does not match host name", ALWAYS, "the server's certificate is for another name "
    "than {host}: connect with the name it was issued for, or have one issued for this name" },
  { "tls_failed", "certificate verify failed", ALWAYS, "the server's certificate is not signed by "
    "the CA in sslrootcert (libpq verifies it whenever a root certificate is given, with "
    "sslmode=require too): give the CA that signed it" },
  { "tls_failed", "root certificate file", ALWAYS, "verifying the server needs its CA: give "
    "sslrootcert, or put the CA in ~/.postgresql/root.crt" },
  { "tls_failed", "alert unknown ca", ALWAYS, "the server does not trust the client certificate: "
    "have sslcert issued by a CA in the server's ssl_ca_file" },
  { "tls_failed", NULL, ALWAYS, "the TLS handshake failed: with sslmode=verify-ca or verify-full "
    "give sslrootcert (the CA that signed the server certificate) and make sure the host name "
    "matches the certificate" },
  { "hba_rejected", "no encryption|SSL off", ALWAYS, "the server refuses unencrypted connections "
    "for {user}: connect with sslmode=require (verify-full with sslrootcert to check the server "
    "too)" },
  { "hba_rejected", NULL, ALWAYS, "pg_hba.conf has no line accepting this connection: add e.g. "
    "\"hostssl {db} {user} <client-address>/32 scram-sha-256\" and reload the server" },
  { "client_cert_rejected", "requires a valid client", ALWAYS, "pg_hba.conf requires a client "
    "certificate for user {user} here (method cert, or clientcert=verify-ca/verify-full): give "
    "sslcert and sslkey, a certificate issued by a CA in the server's ssl_ca_file (for method "
    "cert, with CN {user})" },
  { "client_cert_rejected", NULL, ALWAYS, "the client certificate's common name (CN) is not "
    "{user}, and no pg_ident.conf map lets it log in as {user}: use a certificate issued for "
    "{user}, connect as the user it names, or add a map (map= on the pg_hba.conf line)" },
  { "auth_failed", NULL, IF_SSLCERT, "user {user} could not authenticate: check the user name and "
    "password (ALTER ROLE {user} PASSWORD '...'; as an administrator resets it); a client "
    "certificate was given, and with clientcert=verify-full in pg_hba.conf one whose CN is not "
    "{user} fails the same way (the server log says which)" },
  { "auth_failed", NULL, ALWAYS, "user {user} could not authenticate: check the user name and "
    "password (ALTER ROLE {user} PASSWORD '...'; as an administrator resets it)" },
  { "password_missing", NULL, IF_PASSFILE_OPEN, "the server asks for a password, and libpq "
    "ignored the password file {passfile}: others may read it (libpq wants 0600 or less); "
    "chmod 0600 {passfile}, or give password or PGPASSWORD" },
  { "password_missing", NULL, ALWAYS, "the server asks for a password: give password, a passfile "
    "(~/.pgpass) or PGPASSWORD" },
  { "login_not_allowed", NULL, ALWAYS, "role {user} exists but cannot log in: ALTER ROLE {user} "
    "LOGIN;" },
  { "database_missing", NULL, ALWAYS, "database {db} does not exist: check dbname, or CREATE "
    "DATABASE {db};" },
  { "connect_denied", NULL, ALWAYS, "role {user} may not connect to database {db}: GRANT CONNECT "
    "ON DATABASE {db} TO {user};" },
  { "replication_not_allowed", NULL, ALWAYS, "role {user} may not open a replication connection: "
    "ALTER ROLE {user} REPLICATION; (on the login role itself: REPLICATION held by a group role "
    "does not count, the attribute is not inherited; on a managed service, grant its replication "
    "role, e.g. rds_replication)" },
  { "too_many_connections", "max_wal_senders", ALWAYS, "every WAL sender is in use "
    "(max_wal_senders): stop an unused replication client or raise max_wal_senders (a restart "
    "applies it)" },
  { "too_many_connections", NULL, ALWAYS, "the server or role {user} has no free connection slot: "
    "close idle sessions, raise max_connections or ALTER ROLE {user} CONNECTION LIMIT" },
  { "server_starting", NULL, ALWAYS, "the server is starting up, shutting down or recovering: "
    "retry shortly" },
  { "wrong_session_type", NULL, ALWAYS, "the server does not match target_session_attrs (a standby "
    "where a primary is needed, or the reverse): list the right host or change "
    "target_session_attrs" },
  { "client_key", "group or world access", ALWAYS, "the client key must be readable by its owner "
    "only: chmod 0600 it (0640 when root owns it)" },
  /* OpenSSL's reason varies with a wrong passphrase ("bad decrypt", or an
   * ASN.1 error when the garbage happens to pad correctly). */
  { "client_key", "could not load private key file", ALWAYS, "the client key could not be opened: "
    "if it is encrypted, give its passphrase as sslpassword (it is missing or wrong; neoconn never "
    "asks on the terminal); else check that sslkey is a private key" },
  { "client_key", NULL, ALWAYS, "check sslcert and sslkey: both files must exist, be readable, and "
    "belong together" },
  { "not_postgres", NULL, ALWAYS, "something other than PostgreSQL answers at {host} port {port}: "
    "check host and port (PostgreSQL listens on 5432 unless told otherwise), or what sits in "
    "front of the server (a TLS terminator, an HTTP proxy)" },
  { "connection_lost", NULL, ALWAYS, "the connection was closed before the server answered: the "
    "server may be shutting down or restarting (retry shortly), or host and port are not "
    "PostgreSQL's (another service, a proxy or a pooler refusing it); the server log says which" },
};

/* 4. Hints about a setting, by a topic the message names. */
static const struct {
  const char *topic;
  const char *hint;
} setting_hints[] = {
  { "target_session_attrs", "target_session_attrs is one of any, read-write, read-only, primary, "
    "standby, prefer-standby" },
  { "sslmode", "sslmode is one of disable, allow, prefer, require, verify-ca, verify-full" },
  { "port", "port is an integer 1-65535 (a list of them for several hosts)" },
  { "percent-encode", "in a URL, write @ as %40, / as %2F and : as %3A in the user name and "
    "password (a password p@ss/1 is written p%40ss%2F1), or give the password as a field of its "
    "own (password = ..., or PGPASSWORD)" },
  { "regular file", "give the path of a regular file (not a FIFO, a device or a directory)" },
  { "COPY", "conn:query returns rows: run COPY with a client that streams it (psql's \\copy), or "
    "SELECT the rows" },
  { "too wide", "select fewer columns (or fewer flags a column), or run it under Lua 5.4, whose "
    "stack holds more than LuaJIT's" },
};

/* libpq's own words for a message from the server that breaks the protocol
 * (a length, a type, a field count it cannot read). */
static const char protocol_phrases[] =
  "insufficient data in|extraneous data in|message contents do not agree with length|"
  "lost synchronization with server|unexpected field count in|without prior row description|"
  "unexpected response from server|unexpected message type|invalid message format";

static const char lost_phrases[] =
  "server closed the connection unexpectedly|EOF detected|Connection reset by peer|"
  "SSL connection has been closed unexpectedly|no connection to the server";

/* The quoted identifier as a heap string ("<name>" unknown). */
static char *quoted(const char *name)
{
  size_t len = name != NULL ? strlen(name) : 0;
  char *buf;
  if (len == 0)
    return nc_strdup("<name>");
  if ((buf = (char *)malloc(nc_quote_ident(NULL, name, len) + 1)) != NULL)
    buf[nc_quote_ident(buf, name, len)] = '\0';
  return buf;
}

/* What fills a hint's placeholders. */
typedef struct {
  const char *user, *db, *host, *port, *stage, *passfile, *seconds;
} hint_values;

/* The hint text: the template with its placeholders filled. */
static char *fill(const char *template, const hint_values *v)
{
  static const char *const names[] = { "{user}", "{db}", "{host}", "{port}", "{stage}",
                                       "{passfile}", "{seconds}" };
  const char *values[7];
  size_t size = strlen(template) + 1, k;
  const char *p;
  char *out, *w;
  values[0] = v->user;
  values[1] = v->db;
  values[2] = v->host;
  values[3] = v->port;
  values[4] = v->stage;
  values[5] = v->passfile;
  values[6] = v->seconds;
  for (p = template; *p != '\0'; p++)
    for (k = 0; k < 7; k++)
      if (strncmp(p, names[k], strlen(names[k])) == 0)
        size += strlen(values[k] != NULL ? values[k] : "");
  if ((out = (char *)malloc(size)) == NULL)
    return NULL;
  for (p = template, w = out; *p != '\0';) {
    for (k = 0; k < 7; k++) {
      size_t n = strlen(names[k]);
      if (strncmp(p, names[k], n) == 0) {
        const char *value = values[k] != NULL ? values[k] : "";
        memcpy(w, value, strlen(value));
        w += strlen(value);
        p += n;
        break;
      }
    }
    if (k == 7)
      *w++ = *p++;
  }
  *w = '\0';
  return out;
}

static int condition_holds(int condition, const nc_conn *c)
{
  switch (condition) {
  case IF_SSLCERT:
    return c->sslcert_given;
  case IF_PASSFILE_OPEN: /* libpq ignores it: conn.c kept it from libpq */
    return c->ignored_passfile != NULL;
  case IF_TCP_OPEN:
    return c->error.stage > NC_STAGE_CONNECT;
  case IF_CONNECT_TIMEOUT:
    return c->connect_timeout_hit;
  default:
    return 1;
  }
}

static void set_hint(nc_conn *c)
{
  nc_error *e = &c->error;
  char *user = quoted(c->user), *db = quoted(c->dbname), seconds[32];
  hint_values v;
  size_t i;
  snprintf(seconds, sizeof seconds, "%g", c->connect_timeout);
  v.user = user;
  v.db = db;
  v.host = c->host != NULL ? c->host : "";
  v.port = c->port != NULL ? c->port : "";
  v.stage = nc_stage_names[e->stage];
  v.passfile = c->ignored_passfile != NULL ? c->ignored_passfile : "";
  v.seconds = seconds;
  free(e->hint);
  e->hint = NULL;
  if (e->pooler) {
    e->hint = fill(pooler_answers[e->pooler - 1].hint, &v);
  } else {
    for (i = 0; i < sizeof hints / sizeof hints[0] && e->hint == NULL; i++)
      if (strcmp(hints[i].code, e->code) == 0
          && (hints[i].phrases == NULL || has_any(e->message != NULL ? e->message : "",
                                                  hints[i].phrases))
          && condition_holds(hints[i].condition, c))
        e->hint = fill(hints[i].hint, &v);
  }
  if (e->hint == NULL)
    e->hint = nc_strdup(strcmp(e->code, "invalid_config") == 0
                          ? nc_setting_hint(e->message) : "see the message; the server log has details");
  free(user);
  free(db);
}

/* A pooler's answer (SQLSTATE 08P01): sets code and stage and marks the
 * error; 0 when the message is none of pgbouncer's (PostgreSQL also uses
 * 08P01 at login, for protocol violations). */
static int classify_pooler_answer(nc_error *e, const char *message)
{
  size_t i;
  for (i = 0; i < sizeof pooler_answers / sizeof pooler_answers[0]; i++) {
    if (has_nocase(message, pooler_answers[i].phrase)) {
      e->code = pooler_answers[i].code;
      e->stage = pooler_answers[i].stage;
      e->pooler = (int)i + 1;
      return 1;
    }
  }
  return 0;
}

void nc_classify_connect_failure(nc_conn *c, const char *libpq_message, int timed_out)
{
  nc_error *e = &c->error;
  const char *m;
  size_t i;

  nc_error_from_libpq(e, libpq_message != NULL ? libpq_message : "");
  m = e->message != NULL ? e->message : "";
  e->code = "unknown";
  e->stage = c->stage;
  if (timed_out) {
    e->code = "timeout";
    if (c->connect_timeout_hit)
      nc_error_messagef(e, "no connection within connect_timeout (%g s), at stage %s",
                        c->connect_timeout, nc_stage_names[c->stage]);
    else
      nc_error_messagef(e, "no answer from the server within the deadline (stage %s)",
                        nc_stage_names[c->stage]);
  } else if (strcmp(e->sqlstate, "08P01") == 0 && classify_pooler_answer(e, m)) {
    /* code and stage set */
  } else {
    for (i = 0; i < sizeof connect_rules / sizeof connect_rules[0]; i++) {
      int when = connect_rules[i].when;
      if ((connect_rules[i].sqlstate == NULL ? e->sqlstate[0] != '\0'
                                             : strcmp(connect_rules[i].sqlstate, e->sqlstate) != 0)
          || (connect_rules[i].phrases != NULL && !has_any(m, connect_rules[i].phrases))
          || (connect_rules[i].unless != NULL && has_any(m, connect_rules[i].unless))
          || (when == AT_CONFIG && c->stage != NC_STAGE_CONFIG)
          || (when == AT_CONNECT && c->stage != NC_STAGE_CONNECT)
          || (when == AT_TLS && c->stage != NC_STAGE_TLS))
        continue;
      e->code = connect_rules[i].code;
      if (connect_rules[i].stage != KEEP)
        e->stage = (nc_stage)connect_rules[i].stage;
      break;
    }
  }
  set_hint(c);
}

void nc_classify_not_postgres(nc_conn *c)
{
  c->error.code = "not_postgres";
  c->error.pooler = 0;
  c->error.sqlstate[0] = '\0';
  set_hint(c);
}

void nc_classify_query_failure(nc_error *e, const PGresult *res, PGconn *pg, int timed_out,
                               nc_stage stage)
{
  const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *st = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (msg != NULL) {
    nc_error_set(e, "query_failed", stage, msg);
    if (st != NULL && strlen(st) == 5)
      memcpy(e->sqlstate, st, 6);
  } else {
    /* The connection's own message, verbose ("FATAL:  57P01: ... LOCATION:
     * ..."): read like a failed connection's, its SQLSTATE kept. */
    const char *raw = pg != NULL ? PQerrorMessage(pg) : "";
    nc_error_set(e, "query_failed", stage, NULL);
    nc_error_from_libpq(e, *raw != '\0' ? raw : "the connection to the server was lost");
  }
  msg = e->message != NULL ? e->message : "";
  st = e->sqlstate;
  if (timed_out || strcmp(st, "57014") == 0) {
    e->code = "timeout";
    if (timed_out)
      nc_error_messagef(e, "no answer from the server within the deadline");
    nc_error_set_hint(e, stage == NC_STAGE_INTROSPECT
                           ? "the catalog queries did not finish within the deadline: raise the "
                             "timeout or restrict the test to some schemas or tables"
                           : "the query did not finish within the deadline: raise opts.timeout");
  } else if (strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0) {
    e->code = "connection_lost";
    nc_error_set_hint(e, "the server ended the session: it is shutting down or restarting, or an "
                         "administrator terminated the session (pg_terminate_backend); retry "
                         "shortly");
  } else if (stage == NC_STAGE_REPLICATION && strcmp(st, "42601") == 0) {
    /* IDENTIFY_SYSTEM read as SQL: the replication connection logged in but
     * reached a normal session (a pooler or proxy dropped the parameter). */
    e->code = "replication_through_pooler";
    nc_error_set_hint(e, "the replication connection reached a normal session, not a WAL sender: "
                         "a pooler or proxy in front of the server dropped replication=database; "
                         "point the CDC connection at the PostgreSQL server itself, its own host "
                         "and port");
  } else if (strcmp(st, "57P03") == 0) {
    e->code = "server_starting";
    nc_error_set_hint(e, "the server is starting up, shutting down or recovering: retry shortly");
  } else if (st[0] == '\0' && has_any(msg, protocol_phrases)) {
    char *copy = nc_strdup(msg);
    nc_protocol_error(e, stage, copy != NULL ? copy : "");
    free(copy);
  } else if (st[0] == '\0' && has_any(msg, lost_phrases)) {
    e->code = "connection_lost";
    nc_error_set_hint(e, "the connection was lost: the server may be shutting down or restarting, "
                         "or something between neoconn and it closed the connection; retry "
                         "shortly");
  } else {
    nc_error_set_hint(e, "the server rejected the query: see the message and its SQLSTATE");
  }
}

const char *nc_setting_hint(const char *message)
{
  size_t i;
  for (i = 0; message != NULL && i < sizeof setting_hints / sizeof setting_hints[0]; i++)
    if (strstr(message, setting_hints[i].topic) != NULL)
      return setting_hints[i].hint;
  return "fix the connection settings: a postgresql:// URL, key=value pairs or a table of libpq "
         "keywords";
}

void nc_config_error(nc_error *e, const char *message)
{
  nc_error_set(e, "invalid_config", NC_STAGE_CONFIG, message);
  nc_error_set_hint(e, nc_setting_hint(message));
}

void nc_protocol_error(nc_error *e, nc_stage stage, const char *message)
{
  nc_error_set(e, "protocol_error", stage, NULL);
  nc_error_messagef(e, "the server's answer is not what the query asked for: %s", message);
  nc_error_set_hint(e, "something between neoconn and PostgreSQL changed the answer, or the server "
                       "is not PostgreSQL: a pooler or proxy that does not speak PostgreSQL's "
                       "protocol faithfully, or a corrupted connection; connect to the server "
                       "directly, with TLS (sslmode=require or verify-full), which detects "
                       "tampering");
}
