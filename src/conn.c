/* The connection object and the connect state machine. Connecting is
 * PQconnectStartParams + PQconnectPoll, bounded by neoconn's own deadline;
 * the same steps are exposed (connect_start/connect_poll) so that an event
 * loop (nginx, a fleet check) can drive them without blocking. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "neoconn.h"

nc_conn *nc_check_conn(lua_State *L, int idx)
{
  return (nc_conn *)luaL_checkudata(L, idx, NC_CONN_MT);
}

nc_conn *nc_test_conn(lua_State *L, int idx)
{
  return (nc_conn *)luaL_testudata(L, idx, NC_CONN_MT);
}

void nc_conn_close(nc_conn *c)
{
  if (c->probing) {
    nc_probe_close(&c->probe);
    c->probing = 0;
  }
  if (c->pg != NULL) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
  c->ready = 0;
  nc_free_secret(&c->secret);
}

static char *conninfo_value(PGconn *pg, const char *keyword);

static void set_field(char **dst, const char *value)
{
  free(*dst);
  *dst = nc_strdup(value);
}

double nc_opt_timeout(lua_State *L, int opts, const char *fname)
{
  double t = NC_DEFAULT_TIMEOUT;
  if (lua_isnoneornil(L, opts))
    return t;
  if (lua_type(L, opts) != LUA_TTABLE)
    luaL_argerror(L, opts, lua_pushfstring(L, "opts: options table expected, got %s",
                                           luaL_typename(L, opts)));
  lua_getfield(L, opts, "timeout");
  if (!lua_isnil(L, -1)) {
    t = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
    /* NaN fails every comparison: !(t > 0) catches it. */
    if (!(t > 0) || !nc_finite(t))
      luaL_argerror(L, opts, lua_pushfstring(L, "%s: timeout must be a positive, finite number "
                                                "of seconds", fname));
  }
  lua_pop(L, 1);
  return t;
}

nc_conn *nc_new_conn(lua_State *L)
{
  nc_conn *c = (nc_conn *)nc_newuserdata(L, sizeof *c);
  int i;
  memset(c, 0, sizeof *c);
  for (i = 0; i < NC_STAGE_COUNT; i++)
    c->stage_done[i] = -1;
  c->test.state_ref = LUA_NOREF;
  nc_setmetatable(L, NC_CONN_MT);
  return c;
}

static nc_stage stage_of(ConnStatusType s)
{
  switch (s) {
  case CONNECTION_SSL_STARTUP:
  case CONNECTION_GSS_STARTUP:
    return NC_STAGE_TLS;
  case CONNECTION_AWAITING_RESPONSE:
    return NC_STAGE_AUTHENTICATE;
  case CONNECTION_AUTH_OK:
  case CONNECTION_SETENV:
  case CONNECTION_CHECK_WRITABLE:
  case CONNECTION_CONSUME:
  case CONNECTION_CHECK_TARGET:
  case CONNECTION_CHECK_STANDBY:
    return NC_STAGE_SESSION;
  default:
    return NC_STAGE_CONNECT;
  }
}

/* Records the time at which each stage was left behind. */
static void observe(nc_conn *c, nc_stage now_in)
{
  double t = nc_now() - c->started;
  int s;
  for (s = c->stage; s < (int)now_in; s++)
    if (c->stage_done[s] < 0)
      c->stage_done[s] = t;
  if (now_in == NC_STAGE_TLS)
    c->tls_seen = 1;
  c->stage = now_in;
}

void nc_remember_endpoint(nc_conn *c)
{
  if (c->pg == NULL)
    return;
  set_field(&c->user, PQuser(c->pg));
  set_field(&c->host, PQhost(c->pg));
  set_field(&c->port, PQport(c->pg));
  set_field(&c->dbname, PQdb(c->pg));
}

double nc_handshake_deadline(const nc_conn *c, double deadline)
{
  if (c->connect_timeout > 0 && c->started + c->connect_timeout < deadline)
    return c->started + c->connect_timeout;
  return deadline;
}

static void fail(nc_conn *c, const char *message, int timed_out)
{
  if (c->probing) { /* the failure is classified already: only the look ends */
    nc_probe_close(&c->probe);
    c->probing = 0;
    c->failed = 1;
    return;
  }
  if (timed_out) /* which deadline ended it: connect_timeout, or the caller's */
    c->connect_timeout_hit = c->connect_timeout > 0
                             && nc_now() >= c->started + c->connect_timeout - 0.001;
  nc_remember_endpoint(c); /* the host libpq tried last, for the hint */
  nc_classify_connect_failure(c, message, timed_out); /* copies before PQfinish */
  c->failed = 1;
  c->failed_after = c->started > 0 ? nc_now() - c->started : 0;
  if (c->pg != NULL) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
}

/* What the hints of a failure need to know of the settings libpq resolved
 * (from the target, a service file or the environment); connect_timeout
 * becomes the connection phase's deadline when it ends first. */
static void remember_settings(nc_conn *c)
{
  char *cert = conninfo_value(c->pg, "sslcert"), *timeout = conninfo_value(c->pg, "connect_timeout");
  /* libpq fills no default for sslcert (its ~/.postgresql path is found at
   * connect time): a value is one the connection was given. */
  c->sslcert_given = cert != NULL;
  free(cert);
  c->connect_timeout = timeout != NULL ? atof(timeout) : 0;
  /* libpq reads a value below 2 as 2 seconds, and 0 or less as none. */
  if (c->connect_timeout > 0 && c->connect_timeout < 2)
    c->connect_timeout = 2;
  free(timeout);
}

/* The password file libpq would read when it needs a password (none when
 * one is given), as libpq finds it: passfile, PGPASSFILE, ~/.pgpass. */
static char *password_file(const char *const *kw, const char *const *val)
{
  const char *given = NULL, *home;
  int i;
  for (i = 0; kw[i] != NULL; i++) {
    if (strcmp(kw[i], "password") == 0 && val[i] != NULL && val[i][0] != '\0')
      return NULL;
    if (strcmp(kw[i], "passfile") == 0)
      given = val[i];
  }
  if (given == NULL)
    given = getenv("PGPASSFILE");
  if (given != NULL)
    return nc_strdup(given);
  if ((home = getenv("HOME")) == NULL)
    return NULL;
  return nc_join(home, "/.pgpass");
}

/* libpq ignores a password file others may read, and says so on standard
 * error, which a library must not write to: such a file is kept from
 * libpq (its path replaced by one that does not exist, which libpq skips
 * without a word) and remembered for the hint. Returns the settings to
 * use: kw and val, or copies (*owned, to free). */
static const char **without_open_passfile(nc_conn *c, const char *const *kw,
                                          const char *const *val, const char ***owned)
{
  struct stat st;
  char *path = password_file(kw, val);
  const char **copy;
  int n, i, replaced = 0;
  *owned = NULL;
  free(c->ignored_passfile);
  c->ignored_passfile = NULL;
  if (path == NULL || stat(path, &st) != 0 || !S_ISREG(st.st_mode)
      || (st.st_mode & (S_IRWXG | S_IRWXO)) == 0) {
    free(path);
    return NULL;
  }
  for (n = 0; kw[n] != NULL; n++)
    ;
  copy = (const char **)calloc((size_t)(2 * n + 4), sizeof(char *));
  if (copy == NULL) {
    free(path);
    return NULL;
  }
  for (i = 0; i < n; i++) {
    copy[i] = kw[i];
    copy[n + 2 + i] = val[i];
    if (strcmp(kw[i], "passfile") == 0) {
      copy[n + 2 + i] = "/nonexistent/neoconn-ignored-passfile";
      replaced = 1;
    }
  }
  if (!replaced) {
    copy[n] = "passfile";
    copy[n + 2 + n] = "/nonexistent/neoconn-ignored-passfile";
  }
  c->ignored_passfile = path;
  *owned = copy;
  return copy;
}

/* Starts the handshake with these settings (libpq copies them). */
static int start(nc_conn *c, const char *const *kw, const char *const *val)
{
  int i, n;
  const char **owned, **swapped;
  for (i = 0; kw[i] != NULL; i++) {
    if (strcmp(kw[i], "password") == 0) { /* kept only to scrub it from messages */
      nc_free_secret(&c->secret);
      c->secret = nc_strdup(val[i]);
    }
  }
  c->started = nc_now();
  c->connect_deadline = c->started + NC_DEFAULT_TIMEOUT; /* connect_start sets its own */
  c->stage = NC_STAGE_CONNECT;
  for (n = 0; kw[n] != NULL; n++)
    ;
  swapped = without_open_passfile(c, kw, val, &owned);
  if (swapped != NULL)
    c->pg = PQconnectStartParams(swapped, swapped + n + 2, 0);
  else
    c->pg = PQconnectStartParams(kw, val, 0);
  free(owned);
  if (c->pg == NULL) {
    nc_error_set(&c->error, "unknown", NC_STAGE_CONNECT, "out of memory");
    c->failed = 1;
    return 0;
  }
  PQsetErrorVerbosity(c->pg, PQERRORS_VERBOSE);
  nc_remember_endpoint(c);
  remember_settings(c);
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    const char *m = PQerrorMessage(c->pg);
    /* libpq fails at once either on its options or on the first host. */
    if (strstr(m, "connection to server") == NULL && strstr(m, "could not translate host") == NULL)
      c->stage = NC_STAGE_CONFIG;
    fail(c, m, 0);
    return 0;
  }
  c->want_write = 1;
  return 1;
}

/* Starts a handshake with the settings of the connection `like`, on the
 * server it actually uses (its host, port and address: not the list it
 * was given, not target_session_attrs), with one setting changed or added
 * (key = value). The password travels inside libpq, never through Lua. */
int nc_connect_begin_like(nc_conn *c, PGconn *like, const char *key, const char *value)
{
  PQconninfoOption *options = PQconninfo(like), *o;
  const char **kw, **val;
  int n = 0, r;
  const char *host = PQhost(like), *port = PQport(like), *addr = PQhostaddr(like);
  for (o = options; o != NULL && o->keyword != NULL; o++)
    n++;
  kw = (const char **)calloc((size_t)(2 * n + 2), sizeof(char *));
  if (options == NULL || kw == NULL) {
    PQconninfoFree(options);
    free(kw);
    nc_error_set(&c->error, "unknown", NC_STAGE_CONNECT, "out of memory");
    c->failed = 1;
    return 0;
  }
  val = kw + n + 1;
  n = 0;
  for (o = options; o->keyword != NULL; o++) {
    const char *v = o->val;
    if (strcmp(o->keyword, key) == 0 || strcmp(o->keyword, "target_session_attrs") == 0)
      continue;
    if (strcmp(o->keyword, "host") == 0)
      v = host;
    else if (strcmp(o->keyword, "port") == 0)
      v = port;
    else if (strcmp(o->keyword, "hostaddr") == 0)
      v = addr != NULL && addr[0] != '\0' ? addr : NULL;
    if (v == NULL)
      continue;
    kw[n] = o->keyword;
    val[n++] = v;
  }
  kw[n] = key;
  val[n++] = value;
  kw[n] = val[n] = NULL;
  r = start(c, kw, val);
  free(kw);
  PQconninfoFree(options);
  return r;
}

int nc_connect_begin(lua_State *L, nc_conn *c, int target)
{
  int top = lua_gettop(L), n = 0, params, r;
  const char **kw, **val;

  c->stage = NC_STAGE_CONFIG;
  if (!nc_push_params(L, target, &c->error)) {
    c->failed = 1;
    lua_settop(L, top);
    return 0;
  }
  params = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, params) != 0) {
    n++;
    lua_pop(L, 1);
  }
  kw = (const char **)nc_newuserdata(L, sizeof(char *) * (size_t)(2 * n + 2));
  val = kw + n + 1;
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, params) != 0) {
    kw[n] = lua_tostring(L, -2);
    val[n] = lua_tostring(L, -1); /* anchored in the params table */
    n++;
    lua_pop(L, 1);
  }
  kw[n] = val[n] = NULL;

  r = start(c, kw, val); /* libpq copies every value */
  lua_settop(L, top);
  return r;
}

/* The value of a connection's setting (a heap copy; NULL: unset or empty). */
static char *conninfo_value(PGconn *pg, const char *keyword)
{
  PQconninfoOption *options = PQconninfo(pg), *o;
  char *value = NULL;
  for (o = options; o != NULL && o->keyword != NULL && value == NULL; o++)
    if (strcmp(o->keyword, keyword) == 0 && o->val != NULL && o->val[0] != '\0')
      value = nc_strdup(o->val);
  if (options != NULL)
    PQconninfoFree(options);
  return value;
}

/* libpq's own key-password callback asks on the terminal (/dev/tty) when a
 * client key is encrypted and no sslpassword was given, ignoring every
 * deadline. This one only ever gives the connection's sslpassword (none:
 * the key fails to load, a classified error). */
static int key_password(char *buf, int size, PGconn *pg)
{
  char *password = conninfo_value(pg, "sslpassword");
  size_t len = password != NULL ? strlen(password) : 0;
  int n = 0;
  if (size > 0 && len > 0 && len < (size_t)size) {
    memcpy(buf, password, len + 1);
    n = (int)len;
  }
  nc_free_secret(&password);
  if (n == 0 && size > 0)
    buf[0] = '\0';
  return n;
}

void nc_install_key_password_hook(void)
{
  PQsetSSLKeyPassHook_OpenSSL(key_password);
}

/* A library must not write to stderr: server notices are dropped. */
static void ignore_notice(void *arg, const char *message)
{
  (void)arg;
  (void)message;
}

int nc_conn_socket(const nc_conn *c)
{
  if (c->probing)
    return c->probe.fd;
  return c->pg != NULL ? PQsocket(c->pg) : -1;
}

/* The handshake failed. Where something else than PostgreSQL answered,
 * a second look (probe.c) first reads what it says, for the message: 0
 * while it runs; -1 once the failure is final. */
static int fail_or_probe(nc_conn *c)
{
  char *host = NULL, *addr = NULL, *port = NULL;
  int looked;
  if (c->pg != NULL) {
    host = nc_strdup(PQhost(c->pg));
    addr = nc_strdup(PQhostaddr(c->pg));
    port = nc_strdup(PQport(c->pg));
  }
  fail(c, c->pg != NULL ? PQerrorMessage(c->pg) : "", 0);
  /* Another service (libpq saw its first byte), a TLS handshake that
   * broke off (an SSH server's banner starts with 'S', which reads as
   * "TLS accepted"), or a connection closed at the startup message before
   * anything was said (a TLS-only service). */
  looked = (strcmp(c->error.code, "not_postgres") == 0
            || (c->error.stage == NC_STAGE_TLS && strcmp(c->error.code, "tls_failed") == 0)
            || ((c->error.stage == NC_STAGE_TLS || c->error.stage == NC_STAGE_AUTHENTICATE)
                && strcmp(c->error.code, "connection_lost") == 0))
           && nc_probe_begin(&c->probe, host, addr, port,
                             nc_handshake_deadline(c, c->connect_deadline));
  free(host);
  free(addr);
  free(port);
  if (!looked)
    return -1;
  c->probing = 1;
  c->failed = 0; /* until the probe ends */
  c->want_write = 1;
  return 0;
}

/* A second look has ended: what the service said goes into the message. */
static int probe_step(nc_conn *c)
{
  char *said;
  if (!nc_probe_step(&c->probe)) {
    c->want_write = c->probe.want_write;
    return 0;
  }
  c->probing = 0;
  c->failed = 1;
  /* PostgreSQL answers an SSLRequest with one byte, S or N: then the first
   * failure stands as it was. */
  if (!c->probe.tls_tried && c->probe.len == 1
      && (c->probe.bytes[0] == 'S' || c->probe.bytes[0] == 'N'))
    return -1;
  said = nc_probe_text(&c->probe);
  if (said != NULL && said[0] != '\0' && (!c->probe.tls_tried || nc_probe_found_tls(&c->probe))) {
    char *libpq = nc_strdup(c->error.message != NULL ? c->error.message : "");
    if (strcmp(c->error.code, "not_postgres") != 0)
      nc_classify_not_postgres(c);
    if (c->probe.tls_tried)
      nc_error_messagef(&c->error, "%s; it closes the connection at a PostgreSQL client's first "
                        "message, and answers TLS from the first byte: a TLS-only service",
                        libpq != NULL ? libpq : "");
    else
      nc_error_messagef(&c->error, "%s; to a PostgreSQL client's first message it answers \"%s\"",
                        libpq != NULL ? libpq : "", said);
    free(libpq);
  }
  free(said);
  return -1;
}

int nc_connect_step(nc_conn *c)
{
  PostgresPollingStatusType st;
  if (c->probing)
    return probe_step(c);
  st = PQconnectPoll(c->pg);
  if (PQstatus(c->pg) != CONNECTION_BAD) /* a failure keeps the stage it happened in */
    observe(c, stage_of(PQstatus(c->pg)));
  switch (st) {
  case PGRES_POLLING_OK:
    observe(c, NC_STAGE_INTROSPECT);
    c->ready = 1;
    nc_remember_endpoint(c); /* the host and port of a list libpq really used */
    PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
    nc_free_secret(&c->secret);
    if (PQsetnonblocking(c->pg, 1) != 0) {
      fail(c, "could not switch the connection to non-blocking mode", 0);
      return -1;
    }
    return 1;
  case PGRES_POLLING_FAILED:
    return fail_or_probe(c);
  case PGRES_POLLING_READING:
    c->want_write = 0;
    return 0;
  default:
    c->want_write = 1;
    return 0;
  }
}

nc_conn *nc_connect(lua_State *L, int target, double timeout)
{
  nc_conn *c = nc_new_conn(L);
  double deadline;
  if (!nc_connect_begin(L, c, target))
    return c;
  deadline = nc_handshake_deadline(c, c->started + timeout);
  for (;;) {
    int w = nc_wait_fd(nc_conn_socket(c), c->want_write, deadline);
    if (w <= 0) {
      fail(c, w == 0 ? "" : "waiting on the connection's socket failed", w == 0);
      return c;
    }
    if (nc_connect_step(c) != 0)
      return c;
  }
}

/* Pushes nil, err for a failed connection and forgets the password. */
static int push_failure(lua_State *L, nc_conn *c)
{
  lua_pushnil(L);
  nc_push_error(L, &c->error, c->secret);
  nc_free_secret(&c->secret);
  return 2;
}

/* neoconn.connect(target [, opts]) -> conn | nil, err */
static int l_connect(lua_State *L)
{
  double timeout = nc_opt_timeout(L, 2, "connect");
  nc_conn *c;
  if (lua_isnone(L, 1))
    luaL_argerror(L, 1, "target: a connection URL, key=value string or table expected");
  c = nc_connect(L, 1, timeout);
  if (c->failed)
    return push_failure(L, c);
  return 1;
}

/* neoconn.connect_start(target [, opts]) -> conn | nil, err
 * The handshake is then driven with conn:connect_poll(), which gives up at
 * opts.timeout (default 10 s) as neoconn.connect does. */
static int l_connect_start(lua_State *L)
{
  nc_conn *c;
  double timeout;
  luaL_checkany(L, 1);
  timeout = nc_opt_timeout(L, 2, "connect_start");
  c = nc_new_conn(L);
  if (!nc_connect_begin(L, c, 1))
    return push_failure(L, c);
  c->connect_deadline = c->started + timeout;
  return 1;
}

/* conn:connect_poll() -> true | false, "read"|"write", fd, seconds_left
 * | nil, err. Never waits: call it again when fd is ready or the time has
 * passed; past the deadline it fails with `timeout`. */
static int l_connect_poll(lua_State *L)
{
  nc_conn *c = nc_check_conn(L, 1);
  double left;
  int r;
  if (c->ready) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (c->failed || (c->pg == NULL && !c->probing))
    luaL_argerror(L, 1, "connection is closed");
  r = nc_connect_step(c);
  left = nc_handshake_deadline(c, c->connect_deadline) - nc_now();
  if (r == 0 && left <= 0) {
    fail(c, "", 1);
    r = -1;
  }
  if (r < 0)
    return push_failure(L, c);
  lua_pushboolean(L, r > 0);
  if (r > 0)
    return 1;
  lua_pushstring(L, c->want_write ? "write" : "read");
  lua_pushinteger(L, nc_conn_socket(c));
  lua_pushnumber(L, left);
  return 4;
}

void nc_connect_give_up(nc_conn *c)
{
  fail(c, "", 1);
}

void nc_release_test(lua_State *L, nc_conn *c)
{
  /* A test abandoned in its replication phase: its connection closes now,
   * not when the collector gets to its userdata (still held by the state
   * here; freed with it). */
  if (c->test.repl != NULL)
    nc_conn_close(c->test.repl);
  if (c->test.state_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, c->test.state_ref);
    c->test.state_ref = LUA_NOREF;
  }
  c->test.repl = NULL;
  c->test.repl_phase = 0;
  c->test.state = NC_TEST_NONE;
}

/* close, __gc and __close: idempotent; frees everything the userdata owns. */
static int l_close(lua_State *L)
{
  nc_conn *c = nc_check_conn(L, 1);
  nc_conn_close(c);
  nc_release_test(L, c); /* a test abandoned half-way */
  c->pipe.phase = 0;
  nc_error_free(&c->error);
  nc_error_free(&c->tolerated_error);
  nc_error_free(&c->query_error);
  set_field(&c->user, NULL);
  set_field(&c->host, NULL);
  set_field(&c->port, NULL);
  set_field(&c->dbname, NULL);
  set_field(&c->ignored_passfile, NULL);
  return 0;
}

static int l_tostring(lua_State *L)
{
  nc_conn *c = nc_check_conn(L, 1);
  const char *state = c->ready ? "" : c->pg != NULL ? " connecting" : " closed";
  if (c->host == NULL)
    lua_pushfstring(L, "neoconn.connection{%s}: %p", state + 1, (void *)c);
  else
    lua_pushfstring(L, "neoconn.connection{%s@%s:%s/%s%s}: %p", c->user != NULL ? c->user : "",
                    c->host, c->port != NULL ? c->port : "", c->dbname != NULL ? c->dbname : "",
                    state, (void *)c);
  return 1;
}

void nc_register_conn(lua_State *L, const luaL_Reg *more)
{
  static const luaL_Reg methods[] = {
    { "close", l_close },
    { "connect_poll", l_connect_poll },
    { NULL, NULL }
  };
  static const luaL_Reg meta[] = {
    { "__gc", l_close },
    { "__close", l_close },
    { "__tostring", l_tostring },
    { NULL, NULL }
  };
  luaL_newmetatable(L, NC_CONN_MT);
  luaL_setfuncs(L, meta, 0);
  lua_pushliteral(L, NC_CONN_MT);
  lua_setfield(L, -2, "__name");
  luaL_newlib(L, methods);
  luaL_setfuncs(L, more, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void nc_register_connect(lua_State *L)
{
  lua_pushcfunction(L, l_connect);
  lua_setfield(L, -2, "connect");
  lua_pushcfunction(L, l_connect_start);
  lua_setfield(L, -2, "connect_start");
}
