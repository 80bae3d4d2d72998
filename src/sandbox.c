/* core.sandbox(fn, limits) -> true, text | false, reason; then where the
 * child's Lua code last was ("source:line") or nil
 * Runs fn in a child process with real bounds on CPU time (RLIMIT_CPU),
 * memory (RLIMIT_AS above what the process maps now) and wall-clock time
 * (killed by the parent): bounds that hold inside C functions too, where
 * an instruction hook never runs (a backtracking string.find, string.rep).
 * fn returns a string (the caller serializes its data); nothing else
 * crosses back, and nothing the child does changes the parent. The child
 * keeps only standard error and the pipe: the parent's sockets are closed
 * in it, so nothing it does (a collected connection's PQfinish included)
 * can touch the parent's sessions. Also core.file_kind(path). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "neoconn.h"

#define MAX_RESULT (64 * 1024 * 1024) /* bytes a child may send back */

/* Where the child's Lua code is, recorded by a count hook in a page the
 * parent shares: the line a config or rule was at when a bound stopped it,
 * even inside a C function, even after a kill. A kill can land in the
 * middle of a record, so each goes into the slot not in use, which then
 * becomes current with one store: the parent always reads a whole one. */
typedef struct {
  volatile int current; /* the slot last written whole; -1 none */
  struct {
    int line;
    char source[240];
  } slot[2];
} whereabouts;

static whereabouts *where_now; /* set in the child only, before its hook runs */
static char watched[240];      /* the source whose lines count ("" any) */

static void record_where(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  if (where_now != NULL) {
    lua_Debug d;
    int level;
    /* The innermost Lua function (a C function has no line). */
    for (level = 0; lua_getstack(L, level, &d); level++) {
      if (lua_getinfo(L, "Sl", &d) && d.currentline > 0
          && (watched[0] == '\0' || strcmp(d.source, watched) == 0)) {
        int next = where_now->current == 0 ? 1 : 0;
        where_now->slot[next].line = d.currentline;
        snprintf(where_now->slot[next].source, sizeof where_now->slot[next].source, "%s",
                 d.source);
        __sync_synchronize(); /* the record is written before it is made current */
        where_now->current = next;
        return;
      }
    }
  }
}

/* Closes every descriptor but standard error and keep. */
static void close_others(int keep)
{
  DIR *d = opendir("/proc/self/fd");
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1); /* a rule's print must not reach the tool's output */
  }
  if (d != NULL) {
    struct dirent *e;
    int self = dirfd(d);
    while ((e = readdir(d)) != NULL) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd > 2 && fd != keep && fd != self)
        close(fd);
    }
    closedir(d);
  } else {
    int fd;
    for (fd = 3; fd < 4096; fd++)
      if (fd != keep)
        close(fd);
  }
}

/* Bytes of address space the process maps now (0 if unknown). */
static double mapped_bytes(void)
{
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f != NULL) {
    if (fscanf(f, "%lu", &pages) != 1)
      pages = 0;
    fclose(f);
  }
  return (double)pages * (double)sysconf(_SC_PAGESIZE);
}

static void write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= (size_t)w;
  }
}

static double limit_field(lua_State *L, int t, const char *key)
{
  double v;
  lua_getfield(L, t, key);
  v = lua_type(L, -1) == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : -1;
  lua_pop(L, 1);
  if (!(v > 0) || !nc_finite(v))
    luaL_argerror(L, t, lua_pushfstring(L, "limits.%s: a positive number expected", key));
  return v;
}

static void run_child(lua_State *L, int out, double cpu, double memory, whereabouts *w)
{
  struct rlimit r;
  const char *text;
  size_t len;
  int ok;
  close_others(out);
  r.rlim_cur = (rlim_t)cpu + 1; /* whole seconds: round up */
  r.rlim_max = (rlim_t)cpu + 2;
  setrlimit(RLIMIT_CPU, &r);
  r.rlim_cur = r.rlim_max = (rlim_t)(mapped_bytes() + memory);
  setrlimit(RLIMIT_AS, &r);
  signal(SIGPIPE, SIG_DFL);
  where_now = w;
  lua_sethook(L, record_where, LUA_MASKCALL | LUA_MASKCOUNT, 1000);
  lua_pushvalue(L, 1);
  ok = lua_pcall(L, 0, 1, 0) == 0 && lua_type(L, -1) == LUA_TSTRING;
  if (!ok && lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "the sandboxed function returned no text");
  }
  text = lua_tolstring(L, -1, &len);
  write_all(out, ok ? "+" : "-", 1);
  write_all(out, text, len);
  _exit(0); /* no atexit, no GC, no stdio flush: the parent owns all that */
}

/* Reads the child's answer into b until EOF or the deadline; 1 EOF, 0
 * deadline, -1 too long or failed. */
static int read_answer(int fd, double deadline, luaL_Buffer *b)
{
  char chunk[4096];
  size_t total = 0;
  for (;;) {
    ssize_t n;
    int w = nc_wait_fd(fd, 0, deadline);
    if (w <= 0)
      return w;
    n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      return 1;
    total += (size_t)n;
    if (total > MAX_RESULT)
      return -1;
    luaL_addlstring(b, chunk, (size_t)n);
  }
}

/* false, why: the child could not be started. */
static int not_started(lua_State *L, whereabouts *w)
{
  int err = errno;
  if (w != MAP_FAILED)
    munmap(w, sizeof *w);
  lua_pushboolean(L, 0);
  lua_pushfstring(L, "could not start the sandbox: %s", strerror(err));
  return 2;
}

static int l_sandbox(lua_State *L)
{
  double cpu, wall, memory;
  int fds[2], status = 0, r, ok = 0;
  pid_t pid;
  whereabouts *w;
  luaL_Buffer b;
  const char *answer;
  size_t len;
  char number[32];

  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  cpu = limit_field(L, 2, "cpu");
  wall = limit_field(L, 2, "wall");
  memory = limit_field(L, 2, "memory");
  lua_settop(L, 2);
  w = (whereabouts *)mmap(NULL, sizeof *w, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                          0);
  if (w != MAP_FAILED)
    w->current = -1;
  if (w == MAP_FAILED || pipe(fds) != 0)
    return not_started(L, w);
  memset(w, 0, sizeof *w);
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return not_started(L, w);
  }
  if (pid == 0) {
    close(fds[0]);
    run_child(L, fds[1], cpu, memory, w);
  }
  close(fds[1]);
  luaL_buffinit(L, &b);
  r = read_answer(fds[0], nc_now() + wall, &b);
  close(fds[0]);
  if (r <= 0)
    kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  luaL_pushresult(&b);
  answer = lua_tolstring(L, -1, &len);
  if (r == 0) {
    snprintf(number, sizeof number, "%g", wall);
    lua_pushfstring(L, "ran longer than %s s", number);
  } else if (r < 0) {
    lua_pushfstring(L, "sent back more than %d bytes", MAX_RESULT);
  } else if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL)) {
    snprintf(number, sizeof number, "%g", cpu);
    lua_pushfstring(L, "used more than %s s of CPU time", number);
  } else if (WIFSIGNALED(status)) {
    lua_pushfstring(L, "died of signal %d", WTERMSIG(status));
  } else if (len == 0) {
    lua_pushliteral(L, "ended without an answer (out of memory?)");
  } else {
    ok = answer[0] == '+';
    lua_pushlstring(L, answer + 1, len - 1);
  }
  lua_pushboolean(L, ok);
  lua_insert(L, -2);
  /* The third result: where the code was last seen, "source:line". */
  if (w->current >= 0)
    lua_pushfstring(L, "%s:%d", w->slot[w->current].source, w->slot[w->current].line);
  else
    lua_pushnil(L);
  munmap(w, sizeof *w);
  return 3;
}

/* core.sandbox_watch(source): in the child, only lines of this source (a
 * chunk name, "@file") are recorded: neoconn's own code running after the
 * config or rule failed must not move the line its message names. */
static int l_sandbox_watch(lua_State *L)
{
  snprintf(watched, sizeof watched, "%s", luaL_checkstring(L, 1));
  return 0;
}

/* core.file_kind(path) -> "file" | "directory" | "other" | nil, message */
static int l_file_kind(lua_State *L)
{
  const char *path = nc_check_text(L, 1, "path", NULL);
  struct stat st;
  if (stat(path, &st) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
  lua_pushnumber(L, (double)st.st_size);
  return 2;
}

void nc_register_sandbox(lua_State *L)
{
  static const luaL_Reg functions[] = {
    { "sandbox", l_sandbox },
    { "sandbox_watch", l_sandbox_watch },
    { "file_kind", l_file_kind },
    { NULL, NULL }
  };
  luaL_setfuncs(L, functions, 0);
}
