/* The classified error object: { code, stage, message, hint [, sqlstate]
 * [, pooler] [, tried] } with a __tostring, and the few ways one is made
 * (classify.c holds the knowledge of which code and hint a failure gets). */
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

void nc_error_set(nc_error *e, const char *code, nc_stage stage, const char *message)
{
  e->code = code;
  e->stage = stage;
  e->sqlstate[0] = '\0';
  e->pooler = 0;
  set_text(&e->hint, NULL);
  set_text(&e->message, nc_one_line(message));
}

void nc_error_set_hint(nc_error *e, const char *hint)
{
  set_text(&e->hint, nc_strdup(hint));
}

void nc_error_messagef(nc_error *e, const char *fmt, ...)
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
void nc_error_from_libpq(nc_error *e, const char *raw)
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
