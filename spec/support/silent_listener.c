/* A TCP listener that accepts connections and never answers: what a
 * firewalled or hung server looks like. With a third argument it is
 * another service: "close" closes each connection at once, before a byte
 * is sent (a proxy or a service refusing it); "http" answers what the
 * client sends with an HTTP 400 status line, as a web server does; "ssh"
 * greets each client with an SSH banner first, as an SSH server does.
 * Prints nothing; exits on SIGTERM or after the number of seconds given as
 * the second argument. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Waits up to a second for what the client sends, and reads it. */
static void read_some(int client)
{
  char buf[512];
  struct pollfd p = { client, POLLIN, 0 };
  if (poll(&p, 1, 1000) > 0 && read(client, buf, sizeof buf) < 0)
    return;
}

static void write_text(int client, const char *text)
{
  if (write(client, text, strlen(text)) < 0)
    return;
}

int main(int argc, char **argv)
{
  struct sockaddr_in addr;
  int fd, one = 1;
  const char *mode;
  time_t until;
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: silent_listener PORT SECONDS [close|http|ssh]\n");
    return 64;
  }
  mode = argc == 4 ? argv[3] : "";
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
      int client = accept(fd, NULL, NULL); /* silent: held open, never written to */
      if (client < 0 || mode[0] == '\0')
        continue;
      if (strcmp(mode, "http") == 0) {
        read_some(client);
        write_text(client, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      } else if (strcmp(mode, "ssh") == 0) {
        write_text(client, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
        read_some(client);
      }
      close(client);
    }
  }
  return 0;
}
