/* What a PostgreSQL server shutting down looks like to a client in the
 * middle of its handshake: it accepts the SSLRequest, completes TLS, reads
 * the startup packet, then ends the session with a TLS close_notify (libpq:
 * "SSL connection has been closed unexpectedly"). With "raw" it is a
 * TLS-only service instead (HTTPS, say): TLS from the first byte, no
 * SSLRequest answered.
 *   tls_closer PORT CERT KEY SECONDS [raw]
 * Serves connections one after another until SECONDS have passed. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int read_exactly(int fd, unsigned char *buf, size_t n)
{
  while (n > 0) {
    ssize_t r = read(fd, buf, n);
    if (r <= 0)
      return -1;
    buf += r;
    n -= (size_t)r;
  }
  return 0;
}

static void serve(SSL_CTX *ctx, int fd, int raw)
{
  unsigned char request[8], startup[1024];
  SSL *ssl;
  if (raw) {
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_accept(ssl); /* a PostgreSQL client's SSLRequest is no ClientHello: an alert */
    SSL_free(ssl);
    return;
  }
  /* GSSENCRequest first (80877104): refused; then the SSLRequest. */
  if (read_exactly(fd, request, 8) != 0)
    return;
  if (request[7] == 0x30 && write(fd, "N", 1) != 1)
    return;
  if (request[7] == 0x30 && read_exactly(fd, request, 8) != 0)
    return;
  if (write(fd, "S", 1) != 1)
    return;
  ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1 && SSL_read(ssl, startup, sizeof startup) > 0)
    SSL_shutdown(ssl);
  SSL_free(ssl);
}

int main(int argc, char **argv)
{
  struct sockaddr_in addr;
  int listener, one = 1;
  time_t until;
  SSL_CTX *ctx;
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: tls_closer PORT CERT KEY SECONDS [raw]\n");
    return 64;
  }
  ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL || SSL_CTX_use_certificate_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1
      || SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  listener = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 16) != 0) {
    perror("tls_closer");
    return 1;
  }
  until = time(NULL) + atoi(argv[4]);
  while (time(NULL) < until) {
    struct pollfd p = { listener, POLLIN, 0 };
    int fd;
    if (poll(&p, 1, 1000) <= 0)
      continue;
    if ((fd = accept(listener, NULL, NULL)) < 0)
      continue;
    serve(ctx, fd, argc == 6);
    close(fd);
  }
  return 0;
}
