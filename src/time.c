/* Monotonic time and deadline-bounded waits on a socket. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <time.h>
#include "neoconn.h"

double nc_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int nc_wait_fd(int fd, int mode, double deadline)
{
  struct pollfd p;
  p.fd = fd;
  p.events = mode == 0 ? POLLIN : mode == 1 ? POLLOUT : (POLLIN | POLLOUT);
  for (;;) {
    double left = deadline - nc_now();
    int ms, rc;
    if (left <= 0)
      return 0;
    ms = (int)(left * 1000.0) + 1;
    p.revents = 0;
    rc = poll(&p, 1, ms);
    if (rc > 0)
      return 1; /* readable, writable, or an error libpq will report */
    if (rc == 0)
      continue; /* re-check the deadline; poll may wake early */
    if (errno != EINTR)
      return -1;
  }
}
