/* A loopback proxy that doctors what a PostgreSQL server answers: one
 * message of the server's, chosen by its kind and place, is changed on
 * its way to the client, as a broken pooler, a hostile server or a flipped
 * bit on a connection without TLS would change it.
 *   doctor_proxy LISTEN_PORT UPSTREAM_PORT MODE NTH COLUMN [WHICH [HOW_MANY]]
 * Serves HOW_MANY connections (default 1), each in a process of its own,
 * doctoring the WHICH-th (default 1); the client must not ask for TLS or
 * GSS encryption: every byte the server sends is then a typed message.
 * Prints "ready" once it listens; exits when they have all ended. MODE, on
 * the NTH message of its kind (from 1), for column COLUMN (from 0, modulo
 * the columns there are):
 *   rename  a RowDescription: the column's name changes case
 *   type    a RowDescription: the column's type becomes text (bool if it
 *           was text)
 *   drop    a RowDescription and the DataRows after it: the column goes
 *   null    a DataRow: the column's value becomes NULL
 *   zero    a DataRow: the value's first byte becomes a zero byte
 *   extra   a DataRow: sent twice
 *   flip    a DataRow: one bit of its body flips (lengths included)
 *   fatal   a RowDescription: replaced by the FATAL error a server shutting
 *           down sends (57P01), and the connection closed */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *mode;
static long nth, column;
static long seen_rows, seen_descriptions;
static int dropping = -1; /* the column being dropped from this result's rows */

static uint32_t get32(const unsigned char *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes message m (type, length, body) with its length fixed. */
static int send_message(int fd, unsigned char *m, size_t total)
{
  put32(m + 1, (uint32_t)(total - 1));
  return write_all(fd, m, total);
}

/* The offsets of a RowDescription's fields: each name's start and the
 * start of the next field; returns the field count. */
static int describe_fields(const unsigned char *m, size_t total, size_t *start, int max)
{
  int n = (m[5] << 8) | m[6], i;
  size_t at = 7;
  for (i = 0; i < n && i < max; i++) {
    start[i] = at;
    while (at < total && m[at] != 0)
      at++;
    at += 1 + 18;
  }
  start[i < max ? i : max - 1] = at;
  return n < max ? n : max - 1;
}

/* Changes message m (total bytes) as the mode says; writes it to fd. */
static int doctor(int fd, unsigned char *m, size_t total)
{
  static unsigned char out[1 << 20];
  if (m[0] == 'C' || m[0] == 'E')
    dropping = -1;
  if (m[0] == 'T') {
    size_t start[1025];
    int n = describe_fields(m, total, start, 1025);
    seen_descriptions++;
    if (seen_descriptions == nth && strcmp(mode, "fatal") == 0) {
      static const char fields[] = "SFATAL\0VFATAL\0C57P01\0"
                                   "Mterminating connection due to administrator command\0\0";
      out[0] = 'E';
      memcpy(out + 5, fields, sizeof fields - 1);
      send_message(fd, out, 5 + sizeof fields - 1);
      return -1; /* and the connection ends */
    }
    if (seen_descriptions == nth && n > 0) {
      int k = (int)(column % n);
      if (strcmp(mode, "rename") == 0)
        m[start[k]] ^= 0x20;
      if (strcmp(mode, "type") == 0) {
        size_t at = start[k] + strlen((char *)m + start[k]) + 1 + 6;
        put32(m + at, get32(m + at) == 25 ? 16 : 25);
      }
      if (strcmp(mode, "drop") == 0 && total <= sizeof out) {
        size_t head = start[k], tail = start[k + 1];
        memcpy(out, m, head);
        memcpy(out + head, m + tail, total - tail);
        out[5] = (unsigned char)((n - 1) >> 8);
        out[6] = (unsigned char)(n - 1);
        dropping = k;
        return send_message(fd, out, total - (tail - head));
      }
    }
  }
  if (m[0] == 'D') {
    int n = (m[5] << 8) | m[6], i, k;
    size_t at = 7, value_at = 0;
    int32_t value_len = -1;
    seen_rows++;
    k = n > 0 ? (int)((dropping >= 0 ? dropping : column) % n) : 0;
    for (i = 0; i < n && at + 4 <= total; i++) {
      int32_t len = (int32_t)get32(m + at);
      if (i == k) {
        value_at = at;
        value_len = len;
      }
      at += 4 + (len > 0 ? (size_t)len : 0);
    }
    if (dropping >= 0 && n > 0 && total <= sizeof out) {
      size_t skip = 4 + (value_len > 0 ? (size_t)value_len : 0);
      memcpy(out, m, value_at);
      memcpy(out + value_at, m + value_at + skip, total - value_at - skip);
      out[5] = (unsigned char)((n - 1) >> 8);
      out[6] = (unsigned char)(n - 1);
      return send_message(fd, out, total - skip);
    }
    if (seen_rows == nth && n > 0) {
      if (strcmp(mode, "null") == 0 && value_len >= 0 && total <= sizeof out) {
        size_t skip = (size_t)value_len;
        memcpy(out, m, value_at);
        put32(out + value_at, 0xFFFFFFFFu);
        memcpy(out + value_at + 4, m + value_at + 4 + skip, total - value_at - 4 - skip);
        return send_message(fd, out, total - skip);
      }
      if (strcmp(mode, "zero") == 0 && value_len > 0)
        m[value_at + 4] = 0;
      if (strcmp(mode, "extra") == 0 && write_all(fd, m, total) != 0)
        return -1;
      if (strcmp(mode, "flip") == 0 && total > 7)
        m[5 + (size_t)(column * 7) % (total - 5)] ^= (unsigned char)(1 << (column % 8));
    }
  }
  return write_all(fd, m, total);
}

static int listen_on(int port)
{
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0)
    return -1;
  return fd;
}

static int connect_to(int port)
{
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    return -1;
  return fd;
}

/* Relays one connection, doctoring the server's messages when asked. */
static void relay(int client, int server, int doctored)
{
  static unsigned char buf[1 << 22];
  size_t have = 0;
  for (;;) {
    struct pollfd p[2] = { { client, POLLIN, 0 }, { server, POLLIN, 0 } };
    unsigned char chunk[65536];
    ssize_t n;
    if (poll(p, 2, 30000) <= 0)
      return;
    if (p[0].revents) {
      n = read(client, chunk, sizeof chunk);
      if (n <= 0 || write_all(server, chunk, (size_t)n) != 0)
        return;
    }
    if (p[1].revents) {
      n = read(server, buf + have, sizeof buf - have);
      if (n <= 0)
        return;
      have += (size_t)n;
      while (have >= 5) {
        size_t total = 1 + get32(buf + 1);
        if (total < 5 || total > sizeof buf)
          return;
        if (have < total)
          break;
        if ((doctored ? doctor(client, buf, total) : write_all(client, buf, total)) != 0)
          return;
        memmove(buf, buf + total, have - total);
        have -= total;
      }
    }
  }
}

int main(int argc, char **argv)
{
  int listener, one = 1, which, how_many, i;
  if (argc < 6 || argc > 8) {
    fprintf(stderr, "usage: doctor_proxy LISTEN_PORT UPSTREAM_PORT MODE NTH COLUMN [WHICH [HOW_MANY]]\n");
    return 64;
  }
  mode = argv[3];
  nth = atol(argv[4]);
  column = atol(argv[5]);
  which = argc > 6 ? atoi(argv[6]) : 1;
  how_many = argc > 7 ? atoi(argv[7]) : 1;
  if ((listener = listen_on(atoi(argv[1]))) < 0) {
    perror("doctor_proxy: listen");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  for (i = 1; i <= how_many; i++) {
    struct pollfd waiting = { listener, POLLIN, 0 };
    int client, server;
    if (poll(&waiting, 1, 20000) <= 0)
      break; /* nobody came: never outlive the spec that started it */
    if ((client = accept(listener, NULL, NULL)) < 0)
      break;
    if (fork() == 0) {
      close(listener);
      if ((server = connect_to(atoi(argv[2]))) >= 0) {
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        relay(client, server, i == which);
        close(server);
      }
      close(client);
      _exit(0);
    }
    close(client);
  }
  close(listener);
  while (wait(NULL) > 0)
    ;
  return 0;
}
