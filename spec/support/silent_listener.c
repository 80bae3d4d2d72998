/* A TCP listener that accepts connections and never answers: what a
 * firewalled or hung server looks like; with a third argument "close", it
 * closes each connection at once instead, before a byte is sent (a proxy or
 * another service refusing it). Prints nothing; exits on SIGTERM or after
 * the number of seconds given as the second argument. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  struct sockaddr_in addr;
  int fd, one = 1, closing;
  time_t until;
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: silent_listener PORT SECONDS [close]\n");
    return 64;
  }
  closing = argc == 4;
  until = time(NULL) + atoi(argv[2]);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 128) != 0) {
    perror("silent_listener");
    return 1;
  }
  while (time(NULL) < until) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 500) > 0) {
      int client = accept(fd, NULL, NULL); /* held open, never written to */
      if (closing && client >= 0)
        close(client);
    }
  }
  return 0;
}
