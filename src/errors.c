/* Classified errors: { code, stage, message, hint [, sqlstate] } with a
 * __tostring. The stage comes from the connection state machine; the code
 * from the server's SQLSTATE where the server sent one, otherwise from
 * libpq's own (client-side, English in the C locale) messages. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "neoconn.h"

const char *const nc_stage_names[NC_STAGE_COUNT] = {
  "config", "connect", "tls", "authenticate", "session", "introspect", "replication", "query"
};

static void set_text(char **dst, char *owned)
{
  free(*dst);
  *dst = owned;
}

void nc_error_free(nc_error *e)
{
  set_text(&e->message, NULL);
  set_text(&e->hint, NULL);
}

static void set_hintf(nc_error *e, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  set_text(&e->hint, nc_vformat(fmt, ap));
  va_end(ap);
}

void nc_error_set(nc_error *e, const char *code, nc_stage stage, const char *message)
{
  e->code = code;
  e->stage = stage;
  e->sqlstate[0] = '\0';
  e->pooler = 0;
  set_text(&e->hint, NULL);
  set_text(&e->message, nc_one_line(message));
}

static void set_messagef(nc_error *e, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  set_text(&e->message, nc_vformat(fmt, ap));
  va_end(ap);
}

static int is_sqlstate_char(char ch)
{
  return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z');
}

/* libpq is asked for verbose errors, which read "FATAL:  28P01: text" and
 * end with a "LOCATION:" line. Keeps the last SQLSTATE and rewrites the
 * message as one line a person expects: continuation lines joined with a
 * space, repeated attempts (sslmode=prefer retries without TLS) said once,
 * separate attempts (several hosts) joined with "; ". */
static void tidy_server_message(nc_error *e, const char *raw)
{
  size_t cap = 2 * strlen(raw) + 3, n = 0, i, used = 0;
  char *lines = (char *)malloc(cap), *out = (char *)malloc(cap);
  const char *p = raw;
  char *line, *next;

  e->sqlstate[0] = '\0';
  e->pooler = 0;
  if (lines == NULL || out == NULL) {
    free(lines);
    free(out);
    set_text(&e->message, NULL);
    return;
  }
  /* First pass: logical lines separated by '\n', SQLSTATE taken out. */
  while (*p != '\0') {
    const char *end = strchr(p, '\n');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    int continuation = (*p == '\t' || *p == ' ');
    if (strncmp(p, "LOCATION:", 9) != 0) {
      while (len > 0 && (*p == '\t' || *p == ' ')) {
        p++;
        len--;
      }
      if (len > 0 && n > 0)
        lines[n++] = continuation ? ' ' : '\n';
      for (i = 0; i < len; i++) {
        const char *q = p + i;
        if (len - i >= 10 && q[0] == ':' && q[1] == ' ' && q[2] == ' ' && is_sqlstate_char(q[3])
            && is_sqlstate_char(q[4]) && is_sqlstate_char(q[5]) && is_sqlstate_char(q[6])
            && is_sqlstate_char(q[7]) && q[8] == ':' && q[9] == ' ') {
          memcpy(e->sqlstate, q + 3, 5);
          e->sqlstate[5] = '\0';
          lines[n++] = ':';
          lines[n++] = ' ';
          i += 9;
          continue;
        }
        lines[n++] = *q;
      }
    }
    if (end == NULL)
      break;
    p = end + 1;
  }
  lines[n] = '\0';

  /* Second pass: join with "; ", each distinct line once. */
  out[0] = '\0';
  for (line = lines; line != NULL; line = next) {
    size_t len;
    next = strchr(line, '\n');
    if (next != NULL)
      *next++ = '\0';
    if (*line == '\0' || strstr(out, line) != NULL)
      continue;
    len = strlen(line);
    if (used > 0) {
      memcpy(out + used, "; ", 2);
      used += 2;
    }
    memcpy(out + used, line, len + 1);
    used += len;
  }
  free(lines);
  set_text(&e->message, nc_one_line(out));
  free(out);
}

static int has(const char *text, const char *needle)
{
  return strstr(text, needle) != NULL;
}

/* The quoted identifier as a heap string for a hint ("<name>" unknown). */
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

static const char *or_empty(const char *s)
{
  return s != NULL ? s : "";
}

/* The hint for a settings mistake: about the setting the message names. */
static const char *config_hint(const char *message)
{
  const char *m = message != NULL ? message : "";
  if (strstr(m, "target_session_attrs") != NULL)
    return "target_session_attrs is one of any, read-write, read-only, primary, standby, "
           "prefer-standby";
  if (strstr(m, "sslmode") != NULL)
    return "sslmode is one of disable, allow, prefer, require, verify-ca, verify-full";
  if (strstr(m, "port") != NULL)
    return "port is an integer 1-65535 (a list of them for several hosts)";
  if (strcmp(m, "wide") == 0)
    return "select fewer columns (or fewer flags a column), or run it under Lua 5.4, whose stack "
           "holds more than LuaJIT's";
  if (strcmp(m, "COPY") == 0)
    return "conn:query returns rows: run COPY with a client that streams it (psql's \\copy), "
           "or SELECT the rows";
  if (strstr(m, "percent-encode") != NULL)
    return "in a URL, write @ as %40, / as %2F and : as %3A in the user name and password "
           "(a password p@ss/1 is written p%40ss%2F1), or give the password as a field of its "
           "own (password = ..., or PGPASSWORD)";
  if (strstr(m, "regular file") != NULL)
    return "give the path of a regular file (not a FIFO, a device or a directory)";
  return "fix the connection settings: a postgresql:// URL, key=value pairs or a table of "
         "libpq keywords";
}

void nc_config_error(nc_error *e, const char *message)
{
  nc_error_set(e, "invalid_config", NC_STAGE_CONFIG, message);
  set_text(&e->hint, nc_strdup(config_hint(message)));
}

void nc_protocol_error(nc_error *e, nc_stage stage, const char *message)
{
  nc_error_set(e, "protocol_error", stage, NULL);
  set_messagef(e, "the server's answer is not what the query asked for: %s", message);
  set_hintf(e, "something between neoconn and PostgreSQL changed the answer, or the server is not "
               "PostgreSQL: a pooler or proxy that does not speak PostgreSQL's protocol faithfully, "
               "or a corrupted connection; connect to the server directly, with TLS "
               "(sslmode=require or verify-full), which detects tampering");
}

void nc_error_hint_for(nc_error *e, const char *topic)
{
  set_text(&e->hint, nc_strdup(config_hint(topic)));
}

/* What pgbouncer answers a login with: FATAL, SQLSTATE 08P01 for every
 * cause, told apart by the text. Most specific first: with sslmode=prefer
 * libpq retries without TLS, and the message ends with that attempt's
 * "SSL required". Its upstream's own refusal arrives as "password
 * authentication failed for user" (pgbouncer's for the client lacks "for
 * user"). */
/* hint: a format naming the user (USER), the database (DB), both (BOTH:
 * user first) or neither. */
enum { NAMES_NONE, NAMES_USER, NAMES_DB, NAMES_BOTH };
#define POOLER "the connection pooler in front of the server (pgbouncer) answered, not PostgreSQL: "
static const struct {
  const char *phrase;
  const char *code;
  nc_stage stage;
  int names;
  const char *hint;
} pooler_answers[] = {
  { "password authentication failed for user", "upstream_failed", NC_STAGE_SESSION, NAMES_DB,
    POOLER "it could not log in to the PostgreSQL server behind it for database %s (the user or "
    "password of its [databases] entry): its log has the server's answer" },
  { "server login has been failing", "upstream_failed", NC_STAGE_SESSION, NAMES_DB,
    POOLER "it could not log in to the PostgreSQL server behind it for database %s (the user or "
    "password of its [databases] entry, or that database missing there): its log has the "
    "server's answer; after a failure it waits server_login_retry before trying again" },
  { "cannot connect to server", "upstream_failed", NC_STAGE_SESSION, NAMES_DB,
    POOLER "it cannot reach the PostgreSQL server behind it for database %s: check that server "
    "and the host and port of the pooler's [databases] entry" },
  { "query_wait_timeout", "upstream_failed", NC_STAGE_SESSION, NAMES_DB,
    POOLER "it got no server connection for database %s in time (query_wait_timeout): the server "
    "behind it is down or refuses the pooler's login, or the pool is full; its log says which" },
  { "database does not allow connections", "upstream_failed", NC_STAGE_SESSION, NAMES_DB,
    POOLER "database %s is disabled or paused in the pooler (its admin console's DISABLE or "
    "PAUSE): ENABLE or RESUME it there" },
  { "no such database", "database_missing", NC_STAGE_SESSION, NAMES_DB,
    POOLER "it has no entry for database %s: check dbname against its [databases] section" },
  { "no such user", "auth_failed", NC_STAGE_AUTHENTICATE, NAMES_USER,
    POOLER "it knows no user %s: add the user to its auth_file, or check its auth_user and "
    "auth_query" },
  { "authentication failed", "auth_failed", NC_STAGE_AUTHENTICATE, NAMES_BOTH,
    POOLER "user %s could not authenticate: check the password (the pooler checks it against its "
    "auth_file or auth_query), and dbname %s (pgbouncer answers a database it has no entry for "
    "the same way, so as not to tell which exist)" },
  { "no more connections allowed", "too_many_connections", NC_STAGE_SESSION, NAMES_NONE,
    POOLER "it has no free client slot (max_client_conn): close idle clients or raise it" },
  { "login rejected", "hba_rejected", NC_STAGE_AUTHENTICATE, NAMES_BOTH,
    POOLER "its auth_hba_file refuses user %s to database %s: add a line accepting it" },
  { "SSL required", "hba_rejected", NC_STAGE_AUTHENTICATE, NAMES_NONE,
    POOLER "it accepts only TLS connections: connect with sslmode=require (verify-full with "
    "sslrootcert to check it too)" },
};

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

/* A pooler's answer: sets code and stage and marks the error; 0 when the
 * message is none of pgbouncer's (PostgreSQL also uses 08P01 at login,
 * for protocol violations). */
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

/* e->pooler is the pooler answer's place in pooler_answers, plus one. */
static void set_pooler_hint(nc_error *e, const char *user, const char *db)
{
  const char *hint = pooler_answers[e->pooler - 1].hint;
  switch (pooler_answers[e->pooler - 1].names) {
  case NAMES_USER:
    set_hintf(e, hint, user);
    break;
  case NAMES_DB:
    set_hintf(e, hint, db);
    break;
  case NAMES_BOTH:
    set_hintf(e, hint, user, db);
    break;
  default:
    set_hintf(e, "%s", hint);
  }
}

static void set_hint(nc_conn *c)
{
  nc_error *e = &c->error;
  char *qu = quoted(c->user), *qd = quoted(c->dbname);
  const char *user = or_empty(qu), *db = or_empty(qd), *host = or_empty(c->host);
  const char *code = e->code, *m = or_empty(e->message);
  /* libpq fills no default for sslcert (its ~/.postgresql path is found
   * at connect time): a value is one the connection was given. */
  char *sslcert = strcmp(code, "auth_failed") == 0 && c->pg != NULL
                    ? nc_conninfo_value(c->pg, "sslcert") : NULL;
  int sslcert_given = sslcert != NULL;

  if (e->pooler)
    set_pooler_hint(e, user, db);
  else if (strcmp(code, "invalid_config") == 0)
    set_hintf(e, "%s", config_hint(m));
  else if (strcmp(code, "dns") == 0)
    set_hintf(e, "the host name %s does not resolve: check the spelling, or use hostaddr "
                     "with the server's IP address", host);
  else if (strcmp(code, "refused") == 0)
    set_hintf(e, "nothing listens at %s port %s: check host and port, that the server is "
                     "running, and listen_addresses in postgresql.conf", host, or_empty(c->port));
  else if (strcmp(code, "timeout") == 0)
    set_hintf(e, "no answer within the deadline during %s: check firewalls and the "
                     "host/port, or raise the timeout", nc_stage_names[e->stage]);
  else if (strcmp(code, "tls_unsupported") == 0)
    set_hintf(e, "the server does not offer TLS: enable ssl = on on the server, or use "
                     "sslmode=prefer or disable if an unencrypted connection is acceptable");
  else if (strcmp(code, "tls_failed") == 0 && has(m, "does not match host name"))
    set_hintf(e, "the server's certificate is for another name than %s: connect with the name "
                 "it was issued for, or have one issued for this name", host);
  else if (strcmp(code, "tls_failed") == 0 && has(m, "certificate verify failed"))
    set_hintf(e, "the server's certificate is not signed by the CA in sslrootcert (libpq "
                 "verifies it whenever a root certificate is given, with sslmode=require too): "
                 "give the CA that signed it");
  else if (strcmp(code, "tls_failed") == 0 && has(m, "root certificate file"))
    set_hintf(e, "verifying the server needs its CA: give sslrootcert, or put the CA in "
                 "~/.postgresql/root.crt");
  else if (strcmp(code, "tls_failed") == 0 && has(m, "alert unknown ca"))
    set_hintf(e, "the server does not trust the client certificate: have sslcert issued by a "
                 "CA in the server's ssl_ca_file");
  else if (strcmp(code, "tls_failed") == 0)
    set_hintf(e, "the TLS handshake failed: with sslmode=verify-ca or verify-full give "
                 "sslrootcert (the CA that signed the server certificate) and make sure the "
                 "host name matches the certificate");
  else if (strcmp(code, "hba_rejected") == 0 && (has(m, "no encryption") || has(m, "SSL off")))
    set_hintf(e, "the server refuses unencrypted connections for %s: connect with "
                 "sslmode=require (verify-full with sslrootcert to check the server too)", user);
  else if (strcmp(code, "client_cert_rejected") == 0 && has(m, "requires a valid client"))
    set_hintf(e, "pg_hba.conf requires a client certificate for user %s here (method cert, or "
                 "clientcert=verify-ca/verify-full): give sslcert and sslkey, a certificate "
                 "issued by a CA in the server's ssl_ca_file (for method cert, with CN %s)",
              user, user);
  else if (strcmp(code, "client_cert_rejected") == 0)
    set_hintf(e, "the client certificate's common name (CN) is not %s, and no pg_ident.conf "
                 "map lets it log in as %s: use a certificate issued for %s, connect as the "
                 "user it names, or add a map (map= on the pg_hba.conf line)", user, user, user);
  else if (strcmp(code, "auth_failed") == 0 && sslcert_given)
    set_hintf(e, "user %s could not authenticate: check the user name and password "
                 "(ALTER ROLE %s PASSWORD '...'; as an administrator resets it); a client "
                 "certificate was given, and with clientcert=verify-full in pg_hba.conf one whose "
                 "CN is not %s fails the same way (the server log says which)", user, user, user);
  else if (strcmp(code, "auth_failed") == 0)
    set_hintf(e, "user %s could not authenticate: check the user name and password "
                     "(ALTER ROLE %s PASSWORD '...'; as an administrator resets it)", user, user);
  else if (strcmp(code, "password_missing") == 0)
    set_hintf(e, "the server asks for a password: give password, a passfile (~/.pgpass) "
                     "or PGPASSWORD");
  else if (strcmp(code, "login_not_allowed") == 0)
    set_hintf(e, "role %s exists but cannot log in: ALTER ROLE %s LOGIN;", user, user);
  else if (strcmp(code, "database_missing") == 0)
    set_hintf(e, "database %s does not exist: check dbname, or CREATE DATABASE %s;", db, db);
  else if (strcmp(code, "connect_denied") == 0)
    set_hintf(e, "role %s may not connect to database %s: GRANT CONNECT ON DATABASE %s TO %s;",
             user, db, db, user);
  else if (strcmp(code, "hba_rejected") == 0)
    set_hintf(e, "pg_hba.conf has no line accepting this connection: add e.g. "
                     "\"hostssl %s %s <client-address>/32 scram-sha-256\" and reload the server",
             db, user);
  else if (strcmp(code, "replication_not_allowed") == 0)
    set_hintf(e, "role %s may not open a replication connection: ALTER ROLE %s REPLICATION; "
                 "(on the login role itself: REPLICATION held by a group role does not count, "
                 "the attribute is not inherited; on a managed service, grant its replication "
                 "role, e.g. rds_replication)", user, user);
  else if (strcmp(code, "too_many_connections") == 0 && has(m, "max_wal_senders"))
    set_hintf(e, "every WAL sender is in use (max_wal_senders): stop an unused replication "
                 "client or raise max_wal_senders (a restart applies it)");
  else if (strcmp(code, "too_many_connections") == 0)
    set_hintf(e, "the server or role %s has no free connection slot: close idle sessions, "
                     "raise max_connections or ALTER ROLE %s CONNECTION LIMIT", user, user);
  else if (strcmp(code, "server_starting") == 0)
    set_hintf(e, "the server is starting up, shutting down or recovering: retry shortly");
  else if (strcmp(code, "wrong_session_type") == 0)
    set_hintf(e, "the server does not match target_session_attrs (a standby where a "
                     "primary is needed, or the reverse): list the right host or change "
                     "target_session_attrs");
  else if (strcmp(code, "client_key") == 0 && (has(m, "group or world access")))
    set_hintf(e, "the client key must be readable by its owner only: chmod 0600 it (0640 when "
                 "root owns it)");
  else if (strcmp(code, "client_key") == 0 && has(m, "could not load private key file"))
    /* OpenSSL's reason varies with a wrong passphrase ("bad decrypt", or
     * an ASN.1 error when the garbage happens to pad correctly). */
    set_hintf(e, "the client key could not be opened: if it is encrypted, give its passphrase "
                 "as sslpassword (it is missing or wrong; neoconn never asks on the terminal); "
                 "else check that sslkey is a private key");
  else if (strcmp(code, "client_key") == 0)
    set_hintf(e, "check sslcert and sslkey: both files must exist, be readable, and belong "
                 "together");
  else if (strcmp(code, "connection_lost") == 0)
    set_hintf(e, "the connection was closed before the server answered: the server may be "
                 "shutting down or restarting (retry shortly), or host and port are not "
                 "PostgreSQL's (another service, a proxy or a pooler refusing it); the server log "
                 "says which");
  else
    set_hintf(e, "see the message; the server log has details");
  free(qu);
  free(qd);
  free(sslcert);
}

/* libpq's words for a connection the other end closed: plain, or under
 * TLS (a close_notify mid-handshake reads "SSL connection has been closed
 * unexpectedly": a server shutting down does that). */
static int is_connection_lost(const char *m)
{
  return has(m, "server closed the connection unexpectedly") || has(m, "EOF detected")
         || has(m, "Connection reset by peer") || has(m, "SSL connection has been closed unexpectedly")
         || has(m, "no connection to the server");
}

void nc_classify_connect_failure(nc_conn *c, const char *libpq_message, int timed_out)
{
  nc_error *e = &c->error;
  const char *m, *st;
  nc_stage stage = c->stage;
  const char *code = "unknown";

  tidy_server_message(e, libpq_message != NULL ? libpq_message : "");
  m = or_empty(e->message);
  st = e->sqlstate;

  if (timed_out) {
    code = "timeout";
    set_messagef(e, "no answer from the server within the deadline (stage %s)",
                 nc_stage_names[stage]);
  } else if (st[0] != '\0') {
    if (strcmp(st, "28P01") == 0) {
      code = "auth_failed";
      stage = NC_STAGE_AUTHENTICATE;
    } else if (strcmp(st, "28000") == 0) {
      /* One SQLSTATE for three causes: pg_hba rejection happens before
       * authentication, the LOGIN check after it. */
      if (has(m, "pg_hba.conf")) {
        code = "hba_rejected";
        stage = NC_STAGE_AUTHENTICATE;
      } else if (has(m, "requires a valid client certificate")
                 || has(m, "certificate authentication failed")) {
        code = "client_cert_rejected";
        stage = NC_STAGE_AUTHENTICATE;
      } else if (has(m, "not permitted to log in")) {
        code = "login_not_allowed";
        stage = NC_STAGE_SESSION;
      } else {
        code = "auth_failed";
        stage = NC_STAGE_AUTHENTICATE;
      }
    } else if (strcmp(st, "3D000") == 0) {
      code = "database_missing";
      stage = NC_STAGE_SESSION;
    } else if (strcmp(st, "42501") == 0 && (has(m, "walsender") || has(m, "WAL sender"))) {
      code = "replication_not_allowed";
      stage = NC_STAGE_SESSION;
    } else if (strcmp(st, "42501") == 0) {
      code = "connect_denied";
      stage = NC_STAGE_SESSION;
    } else if (strcmp(st, "53300") == 0) {
      /* The server refuses a session: no slot left, for the server, the
       * database or the role. */
      code = "too_many_connections";
      stage = NC_STAGE_SESSION;
    } else if (strcmp(st, "57P03") == 0) {
      code = "server_starting";
    } else if (strcmp(st, "08P01") == 0 && classify_pooler_answer(e, m)) {
      code = e->code;
      stage = e->stage;
    }
  } else if (stage == NC_STAGE_CONFIG || has(m, "invalid integer value")
             || has(m, "for connection option")) {
    code = "invalid_config";
    stage = NC_STAGE_CONFIG;
  } else if (has(m, "could not translate host name")) {
    code = "dns";
    stage = NC_STAGE_CONNECT;
  } else if (has(m, "no password supplied")) {
    code = "password_missing";
    stage = NC_STAGE_AUTHENTICATE;
  } else if (has(m, "server does not support SSL")) {
    code = "tls_unsupported";
    stage = NC_STAGE_TLS;
  } else if (stage == NC_STAGE_CONNECT
             && (has(m, "Connection refused") || has(m, "No such file or directory"))) {
    code = "refused";
  } else if (has(m, "read-only") || has(m, "hot standby") || has(m, "is not in recovery")) {
    code = "wrong_session_type";
    stage = NC_STAGE_SESSION;
  } else if (has(m, "private key file") || has(m, "client certificate")
             || (has(m, "certificate file") && !has(m, "root certificate file"))) {
    code = "client_key";
    stage = NC_STAGE_TLS;
  } else if (is_connection_lost(m)) {
    code = "connection_lost";
  } else if (stage == NC_STAGE_TLS || has(m, "SSL error") || has(m, "certificate")) {
    code = "tls_failed";
    stage = NC_STAGE_TLS;
  }
  e->code = code;
  e->stage = stage;
  set_hint(c);
}

/* libpq's own words for a message from the server that breaks the
 * protocol (a length, a type, a field count it cannot read). */
static const char *const protocol_phrases[] = {
  "insufficient data in", "extraneous data in", "message contents do not agree with length",
  "lost synchronization with server", "unexpected field count in", "without prior row description",
  "unexpected response from server", "unexpected message type", "invalid message format",
};

static int is_protocol_violation(const char *message)
{
  size_t i;
  for (i = 0; i < sizeof protocol_phrases / sizeof protocol_phrases[0]; i++)
    if (has(message, protocol_phrases[i]))
      return 1;
  return 0;
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
    tidy_server_message(e, *raw != '\0' ? raw : "the connection to the server was lost");
  }
  msg = e->message != NULL ? e->message : "";
  st = e->sqlstate;
  if (timed_out || strcmp(st, "57014") == 0) {
    e->code = "timeout";
    if (timed_out)
      set_messagef(e, "no answer from the server within the deadline");
    set_hintf(e, "%s", stage == NC_STAGE_INTROSPECT
               ? "the catalog queries did not finish within the deadline: raise the timeout "
                 "or restrict the test to some schemas or tables"
               : "the query did not finish within the deadline: raise opts.timeout");
  } else if (strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0) {
    e->code = "connection_lost";
    set_hintf(e, "the server ended the session: it is shutting down or restarting, or an "
                 "administrator terminated the session (pg_terminate_backend); retry shortly");
  } else if (strcmp(st, "57P03") == 0) {
    e->code = "server_starting";
    set_hintf(e, "the server is starting up, shutting down or recovering: retry shortly");
  } else if (st[0] == '\0' && is_protocol_violation(msg)) {
    char *copy = nc_strdup(msg);
    nc_protocol_error(e, stage, copy != NULL ? copy : "");
    free(copy);
  } else if (st[0] == '\0' && is_connection_lost(msg)) {
    e->code = "connection_lost";
    set_hintf(e, "the connection was lost: the server may be shutting down or restarting, or "
                 "something between neoconn and it closed the connection; retry shortly");
  } else {
    set_hintf(e, "the server rejected the query: see the message and its SQLSTATE");
  }
}

/* err.tried: every server libpq tried, in order ("host:port" or the
 * socket), read from its message: one attempt per "connection to server"
 * clause, which libpq writes for each host of a list. */
static void push_tried(lua_State *L, const char *message)
{
  static const char at[] = "connection to server at \"", on[] = "connection to server on socket \"";
  const char *p = message;
  int n = 0;
  lua_newtable(L);
  while (p != NULL && (p = strstr(p, "connection to server ")) != NULL) {
    int socket = strncmp(p, on, sizeof on - 1) == 0;
    const char *name = p + (socket ? sizeof on - 1 : sizeof at - 1), *end;
    if (!socket && strncmp(p, at, sizeof at - 1) != 0) {
      p += 20;
      continue;
    }
    end = strchr(name, '"');
    if (end == NULL)
      break;
    lua_pushlstring(L, name, (size_t)(end - name));
    if (!socket) {
      const char *port = strstr(end, ", port ");
      size_t digits = 0;
      if (port != NULL)
        while (port[7 + digits] >= '0' && port[7 + digits] <= '9')
          digits++;
      lua_pushliteral(L, ":");
      if (digits > 0)
        lua_pushlstring(L, port + 7, digits);
      else
        lua_pushliteral(L, "?");
      lua_concat(L, 3);
    }
    lua_rawseti(L, -2, ++n);
    p = end;
  }
}

/* A message or hint as people see it: secrets masked, then in the
 * printable form (a name the server echoes may hold any byte). */
static void push_shown(lua_State *L, const char *text, const char *secret)
{
  size_t len;
  const char *redacted;
  nc_push_redacted(L, text, secret);
  redacted = lua_tolstring(L, -1, &len);
  nc_push_printable(L, redacted, len);
  lua_remove(L, -2);
}

void nc_push_error(lua_State *L, const nc_error *e, const char *secret)
{
  lua_createtable(L, 0, 5);
  lua_pushstring(L, e->code != NULL ? e->code : "unknown");
  lua_setfield(L, -2, "code");
  lua_pushstring(L, nc_stage_names[e->stage]);
  lua_setfield(L, -2, "stage");
  push_shown(L, e->message, secret);
  lua_setfield(L, -2, "message");
  push_shown(L, e->hint, secret);
  lua_setfield(L, -2, "hint");
  if (e->stage != NC_STAGE_QUERY && e->stage != NC_STAGE_INTROSPECT && e->message != NULL
      && strstr(e->message, "connection to server ") != NULL) {
    push_tried(L, e->message);
    lua_setfield(L, -2, "tried");
  }
  if (e->sqlstate[0] != '\0') {
    lua_pushstring(L, e->sqlstate);
    lua_setfield(L, -2, "sqlstate");
  }
  if (e->pooler) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "pooler");
  }
  nc_setmetatable(L, NC_ERROR_MT);
}

static int error_tostring(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "stage");
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "message");
  lua_getfield(L, 1, "hint");
  if (lua_isstring(L, 5) && lua_rawlen(L, 5) > 0)
    lua_pushfstring(L, "%s: %s: %s (hint: %s)", luaL_optstring(L, 2, "?"),
                    luaL_optstring(L, 3, "unknown"), luaL_optstring(L, 4, ""), lua_tostring(L, 5));
  else
    lua_pushfstring(L, "%s: %s: %s", luaL_optstring(L, 2, "?"), luaL_optstring(L, 3, "unknown"),
                    luaL_optstring(L, 4, ""));
  return 1;
}

void nc_register_error_mt(lua_State *L)
{
  luaL_newmetatable(L, NC_ERROR_MT);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "neoconn.error");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}
