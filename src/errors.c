/* Classified errors: { code, stage, message, hint [, sqlstate] } with a
 * __tostring. The stage comes from the connection state machine; the code
 * from the server's SQLSTATE where the server sent one, otherwise from
 * libpq's own (client-side, English in the C locale) messages. */
#include <stdio.h>
#include <string.h>
#include "neoconn.h"

const char *const nc_stage_names[NC_STAGE_COUNT] = {
  "config", "connect", "tls", "authenticate", "session", "introspect", "query"
};

static void copy_text(char *dst, size_t cap, const char *src)
{
  size_t n = strlen(src);
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

void nc_error_set(nc_error *e, const char *code, nc_stage stage, const char *message)
{
  e->code = code;
  e->stage = stage;
  e->sqlstate[0] = '\0';
  e->hint[0] = '\0';
  copy_text(e->message, sizeof e->message, message != NULL ? message : "");
  {
    size_t n = strlen(e->message);
    while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' '))
      e->message[--n] = '\0';
  }
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
  char lines[sizeof e->message];
  size_t cap = sizeof lines, n = 0, i;
  const char *p = raw;
  char *line, *next;

  /* First pass: logical lines separated by '\n', SQLSTATE taken out. */
  e->sqlstate[0] = '\0';
  while (*p != '\0' && n + 2 < cap) {
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
      for (i = 0; i < len && n + 2 < cap; i++) {
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
  e->message[0] = '\0';
  for (line = lines; line != NULL; line = next) {
    next = strchr(line, '\n');
    if (next != NULL)
      *next++ = '\0';
    if (*line == '\0' || strstr(e->message, line) != NULL)
      continue;
    if (e->message[0] != '\0')
      strncat(e->message, "; ", sizeof e->message - strlen(e->message) - 1);
    strncat(e->message, line, sizeof e->message - strlen(e->message) - 1);
  }
}

static int has(const char *text, const char *needle)
{
  return strstr(text, needle) != NULL;
}

/* Writes the quoted identifier into a small buffer for use in a hint. */
static const char *quoted(char *buf, size_t cap, const char *name)
{
  size_t len = strlen(name);
  if (len == 0 || 2 * len + 3 > cap)
    return "<name>";
  buf[nc_quote_ident(buf, name, len)] = '\0';
  return buf;
}

static const char config_hint[] =
  "fix the connection settings: a postgresql:// URL, key=value pairs or a table of libpq "
  "keywords; sslmode is one of disable, allow, prefer, require, verify-ca, verify-full";

void nc_config_error(nc_error *e, const char *message)
{
  nc_error_set(e, "invalid_config", NC_STAGE_CONFIG, message);
  copy_text(e->hint, sizeof e->hint, config_hint);
}

static void set_hint(nc_conn *c)
{
  nc_error *e = &c->error;
  char qu[260], qd[260];
  const char *user = quoted(qu, sizeof qu, c->user);
  const char *db = quoted(qd, sizeof qd, c->dbname);
  const char *code = e->code;
  char *h = e->hint;
  size_t cap = sizeof e->hint;

  if (strcmp(code, "invalid_config") == 0)
    snprintf(h, cap, "%s", config_hint);
  else if (strcmp(code, "dns") == 0)
    snprintf(h, cap, "the host name %s does not resolve: check the spelling, or use hostaddr "
                     "with the server's IP address", c->host);
  else if (strcmp(code, "refused") == 0)
    snprintf(h, cap, "nothing listens at %s port %s: check host and port, that the server is "
                     "running, and listen_addresses in postgresql.conf", c->host, c->port);
  else if (strcmp(code, "timeout") == 0)
    snprintf(h, cap, "no answer within the deadline during %s: check firewalls and the "
                     "host/port, or raise the timeout", nc_stage_names[e->stage]);
  else if (strcmp(code, "tls_unsupported") == 0)
    snprintf(h, cap, "the server does not offer TLS: enable ssl = on on the server, or use "
                     "sslmode=prefer or disable if an unencrypted connection is acceptable");
  else if (strcmp(code, "tls_failed") == 0)
    snprintf(h, cap, "the TLS handshake failed: with sslmode=verify-ca or verify-full give "
                     "sslrootcert (the CA that signed the server certificate) and make sure the "
                     "host name matches the certificate; sslmode=require encrypts without "
                     "verifying");
  else if (strcmp(code, "auth_failed") == 0)
    snprintf(h, cap, "user %s could not authenticate: check the user name and password "
                     "(ALTER ROLE %s PASSWORD '...'; as an administrator resets it)", user, user);
  else if (strcmp(code, "password_missing") == 0)
    snprintf(h, cap, "the server asks for a password: give password, a passfile (~/.pgpass) "
                     "or PGPASSWORD");
  else if (strcmp(code, "login_not_allowed") == 0)
    snprintf(h, cap, "role %s exists but cannot log in: ALTER ROLE %s LOGIN;", user, user);
  else if (strcmp(code, "database_missing") == 0)
    snprintf(h, cap, "database %s does not exist: check dbname, or CREATE DATABASE %s;", db, db);
  else if (strcmp(code, "connect_denied") == 0)
    snprintf(h, cap, "role %s may not connect to database %s: GRANT CONNECT ON DATABASE %s TO %s;",
             user, db, db, user);
  else if (strcmp(code, "hba_rejected") == 0)
    snprintf(h, cap, "pg_hba.conf has no line accepting this connection: add e.g. "
                     "\"hostssl %s %s <client-address>/32 scram-sha-256\" and reload the server",
             db, user);
  else if (strcmp(code, "too_many_connections") == 0)
    snprintf(h, cap, "the server or role %s has no free connection slot: close idle sessions, "
                     "raise max_connections or ALTER ROLE %s CONNECTION LIMIT", user, user);
  else if (strcmp(code, "server_starting") == 0)
    snprintf(h, cap, "the server is starting up, shutting down or recovering: retry shortly");
  else if (strcmp(code, "wrong_session_type") == 0)
    snprintf(h, cap, "the server does not match target_session_attrs (a standby where a "
                     "primary is needed, or the reverse): list the right host or change "
                     "target_session_attrs");
  else
    snprintf(h, cap, "see the message; the server log has details");
}

void nc_classify_connect_failure(nc_conn *c, const char *libpq_message, int timed_out)
{
  nc_error *e = &c->error;
  const char *m, *st;
  nc_stage stage = c->stage;
  const char *code = "unknown";

  tidy_server_message(e, libpq_message != NULL ? libpq_message : "");
  m = e->message;
  st = e->sqlstate;

  if (timed_out) {
    code = "timeout";
    snprintf(e->message, sizeof e->message, "no answer from the server within the deadline "
                                            "(stage %s)", nc_stage_names[stage]);
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
    }
  } else if (stage == NC_STAGE_CONFIG) {
    code = "invalid_config";
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
  } else if (stage == NC_STAGE_TLS || has(m, "SSL error") || has(m, "certificate")) {
    code = "tls_failed";
    stage = NC_STAGE_TLS;
  }
  e->code = code;
  e->stage = stage;
  set_hint(c);
}

void nc_classify_query_failure(nc_error *e, const PGresult *res, PGconn *pg, int timed_out,
                               nc_stage stage)
{
  const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *st = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  if (msg == NULL)
    msg = pg != NULL ? PQerrorMessage(pg) : "";
  if (*msg == '\0')
    msg = "the connection to the server was lost";
  nc_error_set(e, "query_failed", stage, msg);
  if (st != NULL && strlen(st) == 5)
    memcpy(e->sqlstate, st, 6);
  if (timed_out || (st != NULL && strcmp(st, "57014") == 0)) {
    e->code = "timeout";
    if (timed_out)
      snprintf(e->message, sizeof e->message, "no answer from the server within the deadline");
    snprintf(e->hint, sizeof e->hint, "%s",
             stage == NC_STAGE_INTROSPECT
               ? "the catalog queries did not finish within the deadline: raise the timeout "
                 "or restrict the test to some schemas or tables"
               : "the query did not finish within the deadline: raise opts.timeout");
  } else {
    snprintf(e->hint, sizeof e->hint, "the server rejected the query: see the message and "
                                      "its SQLSTATE");
  }
}

/* Replaces every occurrence of the secret, the password part of URLs
 * (scheme://user:secret@) and password=... in key/value text. */
static void scrub(char *s, const char *secret)
{
  size_t slen = secret != NULL ? strlen(secret) : 0;
  char *p;
  if (slen >= 3) {
    for (p = strstr(s, secret); p != NULL; p = strstr(p + slen, secret))
      memset(p, '*', slen);
  }
  for (p = strstr(s, "://"); p != NULL; p = strstr(p + 3, "://")) {
    char *start = p + 3, *q = start, *colon = NULL;
    while (*q != '\0' && *q != '@' && *q != '/' && *q != ' ' && *q != '"') {
      if (*q == ':' && colon == NULL)
        colon = q;
      q++;
    }
    if (*q == '@' && colon != NULL)
      memset(colon + 1, '*', (size_t)(q - colon - 1));
  }
  for (p = strstr(s, "password="); p != NULL; p = strstr(p + 9, "password=")) {
    char *q = p + 9;
    char quote = (*q == '\'') ? '\'' : 0;
    if (quote)
      q++;
    while (*q != '\0' && (quote ? *q != quote : (*q != ' ' && *q != '&' && *q != '"')))
      *q++ = '*';
  }
}

void nc_push_error(lua_State *L, const nc_error *e, const char *secret)
{
  char message[sizeof e->message], hint[sizeof e->hint];
  memcpy(message, e->message, sizeof message);
  memcpy(hint, e->hint, sizeof hint);
  scrub(message, secret);
  scrub(hint, secret);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, e->code != NULL ? e->code : "unknown");
  lua_setfield(L, -2, "code");
  lua_pushstring(L, nc_stage_names[e->stage]);
  lua_setfield(L, -2, "stage");
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, hint);
  lua_setfield(L, -2, "hint");
  if (e->sqlstate[0] != '\0') {
    lua_pushstring(L, e->sqlstate);
    lua_setfield(L, -2, "sqlstate");
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
  lua_pushfstring(L, "%s: %s: %s (hint: %s)", luaL_optstring(L, 2, "?"),
                  luaL_optstring(L, 3, "unknown"), luaL_optstring(L, 4, ""),
                  luaL_optstring(L, 5, ""));
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
