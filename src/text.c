/* Text helpers below everything else: heap strings, secrets, and the two
 * ways untrusted text leaves neoconn for people. Everything read from a
 * server (names, messages) or given in a config may hold any byte; text
 * shown to people goes through the printable form here, and secrets through
 * the one redactor. Nothing here calls another file of the core. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "neoconn.h"

char *nc_strdup(const char *s)
{
  char *copy;
  size_t n;
  if (s == NULL)
    return NULL;
  n = strlen(s) + 1;
  copy = (char *)malloc(n);
  if (copy != NULL)
    memcpy(copy, s, n);
  return copy;
}

void nc_free_secret(char **secret)
{
  if (*secret != NULL) {
    volatile char *p = *secret;
    while (*p != '\0')
      *p++ = '\0';
    free(*secret);
    *secret = NULL;
  }
}

char *nc_vformat(const char *fmt, va_list ap)
{
  va_list copy;
  int n;
  char *out;
  va_copy(copy, ap);
  n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0 || (out = (char *)malloc((size_t)n + 1)) == NULL)
    return NULL;
  vsnprintf(out, (size_t)n + 1, fmt, ap);
  return out;
}

char *nc_join(const char *dir, const char *name)
{
  size_t a = strlen(dir), b = strlen(name);
  char *out = (char *)malloc(a + b + 1);
  if (out != NULL) {
    memcpy(out, dir, a);
    memcpy(out + a, name, b + 1);
  }
  return out;
}

char *nc_one_line(const char *message)
{
  char *out = nc_strdup(message != NULL ? message : ""), *w;
  const char *r;
  if (out == NULL)
    return NULL;
  for (r = w = out; *r != '\0';) {
    if (*r == '\n' || *r == '\r' || *r == '\t' || *r == ' ') {
      const char *run = r;
      int newline = 0;
      while (*r == '\n' || *r == '\r' || *r == '\t' || *r == ' ')
        newline |= (*r++ != ' ');
      if (newline)
        *w++ = ' ';
      else
        while (run < r)
          *w++ = *run++;
    } else {
      *w++ = *r++;
    }
  }
  while (w > out && w[-1] == ' ')
    w--;
  *w = '\0';
  return out;
}

/* Code points a terminal or an editor does not show as themselves: C1
 * controls (U+0080-U+009F: 8-bit CSI among them), zero-width and
 * direction marks, line and paragraph separators, bidirectional
 * embeddings, overrides and isolates, and the byte order mark. */
static int is_hidden_code_point(unsigned long cp)
{
  return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x200B && cp <= 0x200F)
         || (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF;
}

nc_char_kind nc_char_at(const char *s, size_t len, size_t *n, unsigned long *cp)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t need, i;
  unsigned long v;
  *n = 1;
  *cp = u[0];
  if (u[0] < 0x20 || u[0] == 0x7F)
    return NC_CHAR_CONTROL;
  if (u[0] < 0x80)
    return NC_CHAR_PLAIN;
  if (u[0] >= 0xC2 && u[0] <= 0xDF) {
    need = 1;
    v = u[0] & 0x1F;
  } else if (u[0] >= 0xE0 && u[0] <= 0xEF) {
    need = 2;
    v = u[0] & 0x0F;
  } else if (u[0] >= 0xF0 && u[0] <= 0xF4) {
    need = 3;
    v = u[0] & 0x07;
  } else {
    return NC_CHAR_INVALID;
  }
  if (len < need + 1)
    return NC_CHAR_INVALID;
  for (i = 1; i <= need; i++) {
    if ((u[i] & 0xC0) != 0x80)
      return NC_CHAR_INVALID;
    v = (v << 6) | (u[i] & 0x3F);
  }
  /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
  if ((need == 2 && v < 0x800) || (need == 3 && (v < 0x10000 || v > 0x10FFFF))
      || (v >= 0xD800 && v <= 0xDFFF))
    return NC_CHAR_INVALID;
  *n = need + 1;
  *cp = v;
  return is_hidden_code_point(v) ? NC_CHAR_CONTROL : NC_CHAR_PLAIN;
}

/* Appends the escape of the character at s: \n, \r, \t, \xHH for other
 * controls and bytes that are not UTF-8, \u{HHHH} for code points. */
static void add_escape(luaL_Buffer *b, nc_char_kind kind, const char *s, unsigned long cp)
{
  static const char hex[] = "0123456789ABCDEF";
  char esc[24];
  int n = 0, shift;
  esc[n++] = '\\';
  if (kind == NC_CHAR_INVALID || cp < 0x80) {
    unsigned byte = (unsigned char)s[0];
    if (byte == '\n' || byte == '\r' || byte == '\t') {
      esc[n++] = byte == '\n' ? 'n' : byte == '\r' ? 'r' : 't';
    } else {
      esc[n++] = 'x';
      esc[n++] = hex[byte >> 4];
      esc[n++] = hex[byte & 15];
    }
  } else {
    esc[n++] = 'u';
    esc[n++] = '{';
    for (shift = cp > 0xFFFF ? 20 : 12; shift >= 0; shift -= 4)
      esc[n++] = hex[(cp >> shift) & 15];
    esc[n++] = '}';
  }
  luaL_addlstring(b, esc, (size_t)n);
}

void nc_add_printable(luaL_Buffer *b, const char *s, size_t len)
{
  size_t i = 0;
  while (i < len) {
    size_t n;
    unsigned long cp;
    nc_char_kind kind = nc_char_at(s + i, len - i, &n, &cp);
    if (kind == NC_CHAR_PLAIN)
      luaL_addlstring(b, s + i, n);
    else
      add_escape(b, kind, s + i, cp);
    i += n;
  }
}

void nc_push_printable(lua_State *L, const char *s, size_t len)
{
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  nc_add_printable(&b, s, len);
  luaL_pushresult(&b);
}

/* neoconn.printable(text) -> text as it may be shown to people: every
 * control character, C1 control, invisible or direction-changing code
 * point and byte that is not UTF-8 written as an escape (\n, \r, \t,
 * \x1B, \u{202E}); everything else as it is. One line, whatever it holds. */
int nc_l_printable(lua_State *L)
{
  size_t len;
  const char *s = nc_check_string(L, 1, "text", &len);
  nc_push_printable(L, s, len);
  return 1;
}

/* The end of a URL's user information: the last '@' before the URL ends
 * (a blank, a quote, the end of the text). A password with an unencoded
 * '@', '/' or '?' then stays masked whole; an '@' later in the URL masks
 * more than the password, never less. NULL: no user info. */
static char *userinfo_end(char *start)
{
  char *q, *at = NULL;
  for (q = start; *q != '\0' && *q != ' ' && *q != '"' && *q != '\''; q++)
    if (*q == '@')
      at = q;
  return at;
}

/* Replaces every occurrence of the secret, the password part of URLs
 * (scheme://user:secret@, up to the last '@' of the user information) and
 * password=... in key/value text. */
static void scrub(char *s, const char *secret)
{
  size_t slen = secret != NULL ? strlen(secret) : 0;
  char *p;
  if (slen >= 3) {
    for (p = strstr(s, secret); p != NULL; p = strstr(p + slen, secret))
      memset(p, '*', slen);
  }
  for (p = strstr(s, "://"); p != NULL; p = strstr(p + 3, "://")) {
    char *start = p + 3, *end = userinfo_end(start), *colon = start;
    while (end != NULL && colon < end && *colon != ':')
      colon++;
    if (end != NULL && colon < end)
      memset(colon + 1, '*', (size_t)(end - colon - 1));
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

void nc_push_redacted(lua_State *L, const char *text, const char *secret)
{
  size_t len = text != NULL ? strlen(text) : 0;
  char *buf = (char *)nc_newuserdata(L, len + 1);
  memcpy(buf, text != NULL ? text : "", len + 1);
  scrub(buf, secret);
  lua_pushlstring(L, buf, len);
  lua_remove(L, -2);
}

/* neoconn.redact(text [, secret]) -> text with secrets masked: the same
 * redaction every error message gets, for Lua code. */
int nc_l_redact(lua_State *L)
{
  size_t len;
  const char *text = nc_check_text(L, 1, "text", &len);
  const char *secret = lua_isnoneornil(L, 2) ? NULL : nc_check_text(L, 2, "secret", NULL);
  nc_push_redacted(L, text, secret);
  return 1;
}
