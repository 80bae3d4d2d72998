/* The certificates of a TLS session, read through libpq's OpenSSL object:
 * the server's (subject, issuer, not_after and the seconds until then) and
 * the client's when one was sent. libpq refuses an expired server
 * certificate only under verify-ca and verify-full; sslmode=require takes
 * it, so the policy (policy.lua) judges the dates. Names are the server's
 * text: the report carries them as data, people see them printable. */
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <time.h>
#include "neoconn.h"

static void release_bio(void *p)
{
  BIO_free((BIO *)p);
}

/* Pushes a name in RFC 2253 form ("CN=db1,O=Example"), or nil. */
static void push_name(lua_State *L, const X509_NAME *name)
{
  BIO **box = (BIO **)nc_new_box(L, release_bio);
  char *text = NULL;
  long len;
  *box = BIO_new(BIO_s_mem());
  if (*box == NULL || name == NULL || X509_NAME_print_ex(*box, name, 0, XN_FLAG_RFC2253) < 0) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  len = BIO_get_mem_data(*box, &text);
  lua_pushlstring(L, text != NULL ? text : "", len > 0 ? (size_t)len : 0);
  lua_remove(L, -2); /* the box: the BIO is freed when it is collected */
}

/* t.field = "YYYY-MM-DDTHH:MM:SSZ" and t.expires_in (seconds from now,
 * negative once past) for the certificate's notAfter. */
static void set_not_after(lua_State *L, int t, const ASN1_TIME *at)
{
  struct tm tm;
  int days = 0, seconds = 0;
  char text[32];
  if (at == NULL || ASN1_TIME_to_tm(at, &tm) != 1)
    return;
  if (strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0) {
    lua_pushstring(L, text);
    lua_setfield(L, t, "not_after");
  }
  if (ASN1_TIME_diff(&days, &seconds, NULL, at) == 1) {
    lua_pushinteger(L, (lua_Integer)days * 86400 + seconds);
    lua_setfield(L, t, "expires_in");
  }
}

static void push_certificate(lua_State *L, X509 *x)
{
  int t;
  lua_createtable(L, 0, 4);
  t = lua_gettop(L);
  push_name(L, X509_get_subject_name(x));
  lua_setfield(L, t, "subject");
  push_name(L, X509_get_issuer_name(x));
  lua_setfield(L, t, "issuer");
  set_not_after(L, t, X509_get0_notAfter(x));
}

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define PEER_CERTIFICATE(ssl) SSL_get0_peer_certificate(ssl)
#else
#define PEER_CERTIFICATE(ssl) SSL_get_peer_certificate(ssl) /* counted: freed below */
#endif

void nc_set_certificates(lua_State *L, PGconn *pg, int ssl_table)
{
  SSL *ssl = (SSL *)PQsslStruct(pg, "OpenSSL");
  X509 *peer, *own;
  if (ssl == NULL)
    return;
  luaL_checkstack(L, 6, NULL);
  peer = PEER_CERTIFICATE(ssl);
  if (peer != NULL) {
#if OPENSSL_VERSION_NUMBER < 0x30000000L
    X509 **box = (X509 **)nc_new_box(L, (void (*)(void *))X509_free);
    *box = peer;
#endif
    push_certificate(L, peer);
    lua_setfield(L, ssl_table, "server_certificate");
#if OPENSSL_VERSION_NUMBER < 0x30000000L
    lua_pop(L, 1);
#endif
  }
  own = SSL_get_certificate(ssl); /* not counted */
  if (own != NULL) {
    push_certificate(L, own);
    lua_setfield(L, ssl_table, "client_certificate");
  }
}
