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

int nc_ms(double seconds, int cap)
{
  double ms = seconds * 1000.0;
  if (!(ms > 0))
    return 0;
  if (ms >= (double)cap)
    return cap;
  return (int)ms + ((double)(int)ms < ms);
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
    ms = nc_ms(left, NC_DAY_MS); /* a far deadline: a day at a time */
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
