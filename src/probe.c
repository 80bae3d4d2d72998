/* A second look at a service that does not speak PostgreSQL (libpq saw
 * only its first byte, or the connection broke off at TLS negotiation):
 * connect to the address libpq used, send what a PostgreSQL client sends
 * first (an SSLRequest), and keep the first bytes the service answers,
 * for the error's message (an HTTP status line, an SSH banner). A service
 * that answers that with nothing but a closed connection gets a TLS
 * ClientHello on a new connection: a TLS record back says it is a
 * TLS-only service (PostgreSQL answers the SSLRequest, always). Step by
 * step, never waiting, bounded: a failed connection's message must not
 * block nginx, nor take long. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>
#include "neoconn.h"

#define PROBE_SECONDS 1.0 /* at most this long, within the caller's deadline */

static const unsigned char ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
/* The smallest TLS 1.2 ClientHello: a record of 45 bytes holding one
 * cipher suite and no extension. A TLS server answers it with a
 * handshake or an alert record (0x16 or 0x15, then 0x03). */
static const unsigned char client_hello[50] = {
  0x16, 0x03, 0x01, 0x00, 0x2d, 0x01, 0x00, 0x00, 0x29, 0x03, 0x03,
  'n', 'e', 'o', 'c', 'o', 'n', 'n', '-', 'p', 'r', 'o', 'b', 'e', '-', 'r', 'a',
  'n', 'd', 'o', 'm', '-', 'b', 'y', 't', 'e', 's', '.', '.', '.', '.', '.', '.',
  0x00, 0x00, 0x02, 0x00, 0x9c, 0x01, 0x00
};

static int open_socket(const char *host, const char *hostaddr, const char *port)
{
  int fd = -1;
  if (hostaddr == NULL || hostaddr[0] == '\0') {
    struct sockaddr_un un;
    if (host == NULL || host[0] != '/')
      return -1;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    if ((size_t)snprintf(un.sun_path, sizeof un.sun_path, "%s/.s.PGSQL.%s", host, port)
        >= sizeof un.sun_path)
      return -1;
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      if (connect(fd, (struct sockaddr *)&un, sizeof un) != 0 && errno != EINPROGRESS
          && errno != EAGAIN) {
        close(fd);
        fd = -1;
      }
    }
  } else {
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV; /* no DNS: the address libpq used */
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(hostaddr, port, &hints, &ai) != 0 || ai == NULL)
      return -1;
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(ai);
  }
  if (fd >= 0)
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

int nc_probe_begin(nc_probe *p, const char *host, const char *hostaddr, const char *port,
                   double deadline)
{
  double until = nc_now() + PROBE_SECONDS;
  memset(p, 0, sizeof *p);
  p->until = deadline < until ? deadline : until;
  snprintf(p->host, sizeof p->host, "%s", host != NULL ? host : "");
  snprintf(p->hostaddr, sizeof p->hostaddr, "%s", hostaddr != NULL ? hostaddr : "");
  snprintf(p->port, sizeof p->port, "%s", port != NULL ? port : "");
  /* A host or port too long for these, a socket path say, is not looked at. */
  if (host == NULL || port == NULL || strlen(host) >= sizeof p->host
      || strlen(port) >= sizeof p->port)
    return 0;
  p->fd = open_socket(p->host, p->hostaddr, p->port);
  p->want_write = 1;
  return p->fd >= 0;
}

static void close_socket(nc_probe *p)
{
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
}

/* The probe's end: its socket closed. */
static int finish(nc_probe *p)
{
  close_socket(p);
  return 1;
}

/* The first look saw nothing: a second connection says TLS. */
static int try_tls(nc_probe *p)
{
  close_socket(p);
  if (p->tls_tried || nc_now() >= p->until)
    return 1;
  p->tls_tried = 1;
  p->sent = 0;
  p->len = 0;
  p->fd = open_socket(p->host, p->hostaddr, p->port);
  p->want_write = 1;
  return p->fd < 0;
}

int nc_probe_step(nc_probe *p)
{
  const unsigned char *first = p->tls_tried ? client_hello : ssl_request;
  size_t first_len = p->tls_tried ? sizeof client_hello : sizeof ssl_request;
  if (p->fd < 0)
    return 1;
  if (nc_now() >= p->until)
    return finish(p);
  if (!p->sent) {
    int err = 0;
    socklen_t len = sizeof err;
    ssize_t w;
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
      return finish(p);
    w = send(p->fd, first, first_len, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN))
      return 0; /* still connecting */
    if (w != (ssize_t)first_len)
      return p->tls_tried ? finish(p) : try_tls(p);
    p->sent = 1;
    p->want_write = 0;
  }
  for (;;) {
    ssize_t n = recv(p->fd, p->bytes + p->len, sizeof p->bytes - p->len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    /* Once something came, what is not there at once is not waited for:
     * a PostgreSQL server answers its one byte, then waits for TLS. */
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return p->len > 0 ? finish(p) : 0;
    if (n <= 0)
      return p->len == 0 && !p->tls_tried ? try_tls(p) : finish(p);
    p->len += (size_t)n;
    if (p->len == sizeof p->bytes)
      return finish(p);
  }
}

void nc_probe_close(nc_probe *p)
{
  close_socket(p);
}

int nc_probe_found_tls(const nc_probe *p)
{
  return p->tls_tried && p->len >= 2 && (p->bytes[0] == 0x15 || p->bytes[0] == 0x16)
         && p->bytes[1] == 0x03;
}

char *nc_probe_text(const nc_probe *p)
{
  /* Each zero byte written \x00 (a C string holds none); the rest as it
   * came: the message is made printable where it is shown. */
  char *out = (char *)malloc(4 * p->len + 1), *w = out;
  size_t i;
  if (out == NULL)
    return NULL;
  for (i = 0; i < p->len; i++) {
    if (p->bytes[i] == '\0') {
      memcpy(w, "\\x00", 4);
      w += 4;
    } else {
      *w++ = p->bytes[i];
    }
  }
  *w = '\0';
  return out;
}
