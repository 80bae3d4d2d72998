/* Monotonic time and deadline-bounded waits on a socket. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <time.h>
#include "neoconn.h"

int nc_finite(double x)
{
  return x == x && x - x == 0.0; /* neither NaN nor infinite */
}

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
    /* A far deadline is waited for a day at a time (poll takes an int). */
    ms = left > 86400.0 ? 86400000 : (int)(left * 1000.0) + 1;
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
