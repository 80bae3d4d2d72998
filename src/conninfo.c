/* Turns a Lua target (URL, key=value string, or table of libpq keywords)
 * into a table keyword -> string, validated before libpq sees it. Strings
 * go through PQconninfoParse, so they are parsed exactly as libpq would;
 * nothing is ever concatenated into a conninfo string. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "neoconn.h"

/* The libpq keywords a table may use, and "url": a postgres:// URL or
 * key=value string read first, which the other fields then override. */
static const char *const table_keywords[] = {
  "url", "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
  "sslcert", "sslkey", "sslpassword", "connect_timeout", "application_name",
  "target_session_attrs", "options", "service", "passfile", "replication", NULL
};

/* Files libpq opens, with the environment variable that also names each:
 * a FIFO or a device there would block the handshake forever. */
static const char *const file_keywords[][2] = {
  { "sslrootcert", "PGSSLROOTCERT" }, { "sslcert", "PGSSLCERT" }, { "sslkey", "PGSSLKEY" },
  { "sslcrl", "PGSSLCRL" }, { "passfile", "PGPASSFILE" },
};

static int in_list(const char *s, const char *const *list)
{
  for (; *list != NULL; list++)
    if (strcmp(s, *list) == 0)
      return 1;
  return 0;
}

/* Where a URL's text after "://" begins, or NULL for a key=value string. */
static const char *url_rest(const char *raw)
{
  if (strncmp(raw, "postgresql://", 13) == 0)
    return raw + 13;
  if (strncmp(raw, "postgres://", 11) == 0)
    return raw + 11;
  return NULL;
}

/* Whether the user information of a URL holds an unencoded '@' or '/', read
 * as libpq reads it: the user information ends at the first '@' unless a
 * '/' comes first, and the query starts at the first '?' after it. A
 * password holding one (postgresql://u:a@b@host, u:a/b@host, u:a@b/c@host)
 * moves part of itself into the host, port or database, where a message
 * would show it: an '@' left between the user information (or the start,
 * where libpq found none) and the query says so. (A database name holding
 * a raw '@' is refused too: encoded as %40 it works.) */
static int url_userinfo_broken(const char *rest)
{
  const char *p = rest, *after, *query;
  while (*p != '\0' && *p != '@' && *p != '/')
    p++;
  after = *p == '@' ? p + 1 : rest;
  query = strchr(after, '?');
  p = strchr(after, '@');
  return p != NULL && (query == NULL || p < query);
}

/* The refusal of such a URL: it shows the scheme and what follows the last
 * '@', never what lies between (a password's pieces). */
static void refuse_url_userinfo(lua_State *L, const char *raw, const char *rest, nc_error *e)
{
  const char *last = strrchr(rest, '@');
  lua_pushlstring(L, raw, (size_t)(rest - raw));
  lua_pushfstring(L, "the URL %s***@%s has an unencoded @ or / in its user name or password: "
                     "percent-encode them", lua_tostring(L, -1), last != NULL ? last + 1 : "");
  nc_config_error(e, lua_tostring(L, -1));
  lua_pop(L, 2);
}

/* The part of a connection string a password may be in, [*from, *to):
 * in a URL everything from "://" to its last '@' (the user information,
 * with whatever of the password an unencoded '@' or '/' moved further),
 * in key=value text everything from "password" on. 0: none. */
static int secret_part(const char *raw, const char **from, const char **to)
{
  const char *rest = url_rest(raw), *last;
  if (rest != NULL) {
    last = strrchr(rest, '@');
    if (last == NULL)
      return 0;
    *from = rest;
    *to = last;
    return 1;
  }
  *from = strstr(raw, "password");
  *to = raw + strlen(raw);
  return *from != NULL;
}

/* Whether token (len bytes) occurs in raw overlapping [from, to). */
static int overlaps(const char *token, size_t len, const char *raw, const char *from,
                    const char *to)
{
  const char *p;
  for (p = raw; *p != '\0' && p < to; p++)
    if (strncmp(p, token, len) == 0 && p + len > from)
      return 1;
  return 0;
}

/* libpq's parse error, with every "quoted" token that comes from the part
 * of the string a password may be in masked: the password is not known
 * yet. */
static void push_parse_error(lua_State *L, const char *errmsg, const char *raw)
{
  const char *from = NULL, *to = NULL, *p;
  int has_secret = secret_part(raw, &from, &to);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (p = errmsg; *p != '\0';) {
    const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;
    if (close != NULL) {
      size_t len = (size_t)(close - p - 1);
      int secret = has_secret && len > 0 && overlaps(p + 1, len, raw, from, to);
      luaL_addchar(&b, '"');
      if (secret)
        luaL_addstring(&b, "***");
      else
        luaL_addlstring(&b, p + 1, len);
      luaL_addchar(&b, '"');
      p = close + 1;
    } else {
      luaL_addchar(&b, *p++);
    }
  }
  luaL_pushresult(&b);
}

/* Parses the string at idx into the params table at index params. */
static int from_string(lua_State *L, int idx, int params, nc_error *e, int arg)
{
  char *errmsg = NULL;
  PQconninfoOption *o;
  PQconninfoOption **box;
  size_t len;
  const char *raw = lua_tolstring(L, idx, &len);
  if (memchr(raw, '\0', len) != NULL)
    luaL_argerror(L, arg, "target: the connection string contains a zero byte");
  if (len > NC_MAX_TARGET) {
    lua_pushfstring(L, "the connection string has %d bytes, more than %d", (int)len,
                    NC_MAX_TARGET);
    nc_config_error(e, lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
  }
  if (url_rest(raw) != NULL && url_userinfo_broken(url_rest(raw))) {
    refuse_url_userinfo(L, raw, url_rest(raw), e);
    return 0;
  }
  box = nc_new_options_box(L);
  *box = PQconninfoParse(raw, &errmsg);
  if (*box == NULL) {
    push_parse_error(L, errmsg != NULL ? errmsg : "out of memory parsing the connection string",
                     raw);
    PQfreemem(errmsg);
    nc_config_error(e, lua_tostring(L, -1));
    if (url_rest(raw) != NULL && strchr(url_rest(raw), '@') != NULL)
      nc_error_set_hint(e, nc_setting_hint("percent-encode")); /* the user information may be why */
    lua_pop(L, 2);
    return 0;
  }
  for (o = *box; o->keyword != NULL; o++) {
    if (o->val != NULL) {
      lua_pushstring(L, o->val);
      lua_setfield(L, params, o->keyword);
    }
  }
  PQconninfoFree(*box); /* now, rather than when the box is collected */
  *box = NULL;
  lua_pop(L, 1);
  return 1;
}

static void from_table(lua_State *L, int idx)
{
  int params = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    const char *key;
    size_t klen, vlen;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_argerror(L, idx, "connection table keys must be libpq keyword strings");
    key = lua_tolstring(L, -2, &klen);
    if (klen != strlen(key) || !in_list(key, table_keywords))
      luaL_argerror(L, idx, lua_pushfstring(L, "unknown connection keyword '%s'", key));
    if (strcmp(key, "url") == 0) {
      lua_pop(L, 1); /* read by nc_push_params before the other fields */
      continue;
    }
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
      lua_tolstring(L, -1, &vlen);
      if (memchr(lua_tostring(L, -1), '\0', vlen) != NULL)
        luaL_argerror(L, idx, lua_pushfstring(L, "field '%s' contains a zero byte", key));
      break;
    case LUA_TNUMBER:
      if (!nc_isinteger(L, -1))
        luaL_argerror(L, idx, lua_pushfstring(L, "field '%s' must be an integer", key));
      lua_tostring(L, -1); /* converts the value in place: "5432" */
      break;
    default:
      luaL_argerror(L, idx, lua_pushfstring(L, "field '%s' must be a string, got %s", key,
                                            luaL_typename(L, -1)));
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_settable(L, params);
  }
}

static const char *field(lua_State *L, int t, const char *key)
{
  const char *v;
  lua_getfield(L, t, key);
  v = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays alive in the table */
  return v;
}

static int valid_ports(const char *s)
{
  while (*s != '\0') {
    char *end;
    long port = strtol(s, &end, 10);
    if (end == s || port < 1 || port > 65535)
      return 0;
    s = end;
    if (*s == ',')
      s++;
    else if (*s != '\0')
      return 0;
  }
  return 1;
}

/* Every value within NC_MAX_FIELD bytes; the files libpq will open are
 * regular files (or absent: libpq reports that itself). */
static int check_sizes_and_files(lua_State *L, int t)
{
  size_t i;
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    size_t len;
    lua_tolstring(L, -1, &len);
    if (len > NC_MAX_FIELD) {
      lua_pushfstring(L, "%s has %d bytes, more than %d", lua_tostring(L, -2), (int)len,
                      NC_MAX_FIELD);
      lua_replace(L, -3);
      lua_pop(L, 1);
      return 0;
    }
    lua_pop(L, 1);
  }
  for (i = 0; i < sizeof file_keywords / sizeof file_keywords[0]; i++) {
    const char *path = field(L, t, file_keywords[i][0]);
    struct stat st;
    if (path == NULL)
      path = getenv(file_keywords[i][1]);
    if (path != NULL && strcmp(path, "system") != 0 && stat(path, &st) == 0
        && !S_ISREG(st.st_mode)) {
      lua_pushfstring(L, "%s %s is not a regular file", file_keywords[i][0], path);
      return 0;
    }
  }
  return 1;
}

static int validate(lua_State *L, int t, nc_error *e)
{
  static const char *const sslmodes[] = { "disable", "allow", "prefer", "require",
                                          "verify-ca", "verify-full", NULL };
  static const char *const session_attrs[] = { "any", "read-write", "read-only", "primary",
                                                "standby", "prefer-standby", NULL };
  const char *v;
  if ((v = field(L, t, "sslmode")) != NULL && !in_list(v, sslmodes)) {
    lua_pushfstring(L, "invalid sslmode \"%s\": expected disable, allow, prefer, require, "
                       "verify-ca or verify-full", v);
  } else if ((v = field(L, t, "target_session_attrs")) != NULL && !in_list(v, session_attrs)) {
    lua_pushfstring(L, "invalid target_session_attrs \"%s\": expected any, read-write, "
                       "read-only, primary, standby or prefer-standby", v);
  } else if ((v = field(L, t, "port")) != NULL && !valid_ports(v)) {
    lua_pushfstring(L, "invalid port \"%s\": expected an integer 1-65535", v);
  } else if (check_sizes_and_files(L, t)) {
    /* Names are compared with the catalog's UTF-8 text: never let
     * PGCLIENTENCODING or the string choose another encoding. */
    lua_pushliteral(L, "UTF8");
    lua_setfield(L, t, "client_encoding");
    return 1;
  }
  nc_config_error(e, lua_tostring(L, -1));
  lua_pop(L, 1);
  return 0;
}

int nc_push_params(lua_State *L, int idx, nc_error *e)
{
  idx = nc_absindex(L, idx);
  lua_newtable(L);
  lua_pushliteral(L, "neoconn");
  lua_setfield(L, -2, "application_name");
  if (lua_type(L, idx) == LUA_TSTRING) {
    if (!from_string(L, idx, lua_gettop(L), e, idx))
      return 0;
  } else if (lua_type(L, idx) == LUA_TTABLE) {
    lua_getfield(L, idx, "url");
    if (lua_type(L, -1) == LUA_TSTRING) {
      int ok = from_string(L, lua_gettop(L), lua_gettop(L) - 1, e, idx);
      lua_pop(L, 1);
      if (!ok)
        return 0;
    } else if (!lua_isnil(L, -1)) {
      luaL_argerror(L, idx, lua_pushfstring(L, "field 'url' must be a string, got %s",
                                            luaL_typename(L, -1)));
    } else {
      lua_pop(L, 1);
    }
    from_table(L, idx);
  } else {
    luaL_argerror(L, idx, lua_pushfstring(L, "target: a connection URL, key=value string or "
                                             "table expected, got %s", luaL_typename(L, idx)));
  }
  return validate(L, lua_gettop(L), e);
}

/* neoconn.target_settings(target) -> { keyword = value } | nil, err
 * The settings a target gives libpq, as libpq itself parses a URL or a
 * key=value string (quotes, escapes, blanks around '=', repeated keys: the
 * last wins), the table's fields over its url: never a password or an
 * sslpassword, however it was written. What custom rules see of a target. */
int nc_l_target_settings(lua_State *L)
{
  static const char *const secrets[] = { "password", "sslpassword", "client_encoding" };
  nc_error e;
  size_t i;
  memset(&e, 0, sizeof e);
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  if (!nc_push_params(L, 1, &e)) {
    lua_pushnil(L);
    nc_push_error(L, &e, NULL);
    nc_error_free(&e);
    return 2;
  }
  for (i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
    lua_pushnil(L);
    lua_setfield(L, -2, secrets[i]);
  }
  return 1;
}
