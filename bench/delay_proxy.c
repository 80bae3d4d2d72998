/* A loopback TCP proxy that delays every chunk by a fixed time in each
 * direction: a far-away database for benchmarks.
 *   delay_proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS SECONDS
 * Listens on 127.0.0.1:LISTEN_PORT, forwards to 127.0.0.1:UPSTREAM_PORT,
 * exits after SECONDS. One thread per direction of each connection: a
 * chunk read at t is written at t + DELAY_MS. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long delay_ns;
static int upstream_port;

typedef struct {
  int from, to;
} pipe_ends;

static void sleep_until(const struct timespec *t)
{
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) != 0) {
  }
}

static void *forward(void *arg)
{
  pipe_ends ends = *(pipe_ends *)arg;
  char buf[65536];
  free(arg);
  for (;;) {
    struct timespec due;
    ssize_t n = read(ends.from, buf, sizeof buf), off = 0;
    if (n <= 0)
      break;
    clock_gettime(CLOCK_MONOTONIC, &due);
    due.tv_nsec += delay_ns;
    due.tv_sec += due.tv_nsec / 1000000000L;
    due.tv_nsec %= 1000000000L;
    sleep_until(&due);
    while (off < n) {
      ssize_t w = write(ends.to, buf + off, (size_t)(n - off));
      if (w <= 0)
        goto done;
      off += w;
    }
  }
done:
  shutdown(ends.to, SHUT_WR);
  shutdown(ends.from, SHUT_RD);
  return NULL;
}

static int connect_upstream(void)
{
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)upstream_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void start(int from, int to)
{
  pthread_t t;
  pipe_ends *ends = malloc(sizeof *ends);
  ends->from = from;
  ends->to = to;
  pthread_create(&t, NULL, forward, ends);
  pthread_detach(t);
}

static void stop(int sig)
{
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv)
{
  struct sockaddr_in a;
  int lfd, one = 1;
  if (argc != 5) {
    fprintf(stderr, "usage: delay_proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS SECONDS\n");
    return 64;
  }
  upstream_port = atoi(argv[2]);
  delay_ns = atol(argv[3]) * 1000000L;
  signal(SIGALRM, stop);
  signal(SIGPIPE, SIG_IGN);
  alarm((unsigned)atoi(argv[4]));
  lfd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 512) != 0) {
    perror("delay_proxy");
    return 1;
  }
  for (;;) {
    int c = accept(lfd, NULL, NULL), u;
    if (c < 0)
      continue;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if ((u = connect_upstream()) < 0) {
      close(c);
      continue;
    }
    start(c, u);
    start(u, c);
  }
}
