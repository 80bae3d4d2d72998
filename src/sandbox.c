/* core.sandbox_start(fn, limits) -> a sandbox; sandbox:step() -> nil, fd,
 * seconds_left while it runs (never waiting), then true, text | false,
 * reason, then where the child's Lua code last was ("source:line" or nil)
 * and whether a bound (not the code's own error) ended it;
 * core.sandbox(fn, limits) does both, waiting.
 * Runs fn in a child process with real bounds on CPU time (RLIMIT_CPU),
 * memory (RLIMIT_AS above what the process maps now) and wall-clock time
 * (the child's own timer, and a kill by the parent a second later): bounds
 * that hold inside C functions too, where an instruction hook never runs
 * (a backtracking string.find, string.rep). fn returns a string (the
 * caller serializes its data); nothing else crosses back, and nothing the
 * child does changes the parent. The child keeps only standard error and
 * the pipe: the parent's sockets are closed in it, so nothing it does (a
 * collected connection's PQfinish included) can touch the parent's
 * sessions. How the child ended is read from the pipe, not from waitpid:
 * inside nginx the worker's own SIGCHLD handler reaps children, and a step
 * that never waits lets the worker serve other requests meanwhile. Also
 * core.file_kind(path). */
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
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "neoconn.h"

#define NC_SANDBOX_MT "neoconn.sandbox"
#define MAX_RESULT (64 * 1024 * 1024) /* bytes a child may send back */
#define KILL_GRACE 1.0 /* seconds the parent waits past the child's own timer */

/* What the child's first byte says: its answer ('+' ok, '-' an error), or
 * the bound that stopped it (written by its signal handler). */
enum { ANSWER_OK = '+', ANSWER_ERROR = '-', STOPPED_CPU = 'C', STOPPED_WALL = 'T' };

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

/* The child's own state, set in the child only: a forked process has one
 * Lua state and one pipe, and its signal handlers reach nothing else. */
static whereabouts *where_now;
static char watched[240]; /* the source whose lines count ("" any) */
static int answer_fd = -1;
static volatile sig_atomic_t answering;

/* A sandbox in the parent: the child, the pipe, what it sent so far. */
typedef struct {
  pid_t pid;                   /* 0: ended and reaped (or reaped by nginx) */
  int fd;                      /* the pipe's read end; -1 once closed */
  int finished;
  double cpu, wall, deadline;
  whereabouts *where;          /* MAP_FAILED once unmapped */
  char *answer;
  size_t len, cap;
  int too_long, timed_out;
} nc_sandbox;

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

/* A bound reached in the child: say which on the pipe, unless the answer
 * is being written (then the answer wins, and the hard CPU limit still
 * holds), and end. */
static void on_bound(int sig)
{
  if (!answering) {
    char c = sig == SIGXCPU ? STOPPED_CPU : STOPPED_WALL;
    ssize_t w = write(answer_fd, &c, 1);
    (void)w;
    _exit(0);
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


static void run_child(lua_State *L, int out, double cpu, double wall, double memory,
                      whereabouts *w)
{
  static const int defaults[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2,
                                  SIGWINCH, SIGIO, SIGPIPE };
  struct rlimit r;
  struct itimerval timer;
  struct sigaction sa;
  sigset_t none;
  const char *text;
  size_t len, i;
  int ok;
  close_others(out);
  answer_fd = out;
  /* nginx's handlers and signal mask are the worker's, not the child's. */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
    sigaction(defaults[i], &sa, NULL);
  sa.sa_handler = on_bound;
  sigaction(SIGXCPU, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* Whole seconds, rounded up (the soft limit signals, the hard one, a
   * second later, kills a child that ignores the signal). */
  r.rlim_cur = (rlim_t)cpu + ((double)(rlim_t)cpu < cpu ? 1 : 0);
  r.rlim_max = r.rlim_cur + 1;
  setrlimit(RLIMIT_CPU, &r);
  r.rlim_cur = r.rlim_max = (rlim_t)(mapped_bytes() + memory);
  setrlimit(RLIMIT_AS, &r);
  memset(&timer, 0, sizeof timer);
  timer.it_value.tv_sec = (time_t)wall;
  timer.it_value.tv_usec = (suseconds_t)((wall - (double)(time_t)wall) * 1e6);
  if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0)
    timer.it_value.tv_usec = 1;
  setitimer(ITIMER_REAL, &timer, NULL);
  where_now = w;
  lua_sethook(L, record_where, LUA_MASKCALL | LUA_MASKCOUNT, 1000);
  lua_pushvalue(L, 1);
  ok = lua_pcall(L, 0, 1, 0) == 0 && lua_type(L, -1) == LUA_TSTRING;
  if (!ok && lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "the sandboxed function returned no text");
  }
  text = lua_tolstring(L, -1, &len);
  answering = 1;
  write_all(out, ok ? "+" : "-", 1);
  write_all(out, text, len);
  _exit(0); /* no atexit, no GC, no stdio flush: the parent owns all that */
}

static nc_sandbox *check_sandbox(lua_State *L)
{
  return (nc_sandbox *)luaL_checkudata(L, 1, NC_SANDBOX_MT);
}

/* Reaps the child: at once if it has ended, or waiting, which is only
 * asked once it was killed or has closed its pipe (it is then ending).
 * Inside nginx the worker may have reaped it already (ECHILD): then how it
 * ended is what the pipe said. Returns the wait status, or -1 if unknown. */
static int reap(nc_sandbox *sb, int wait)
{
  int status = 0;
  pid_t r;
  if (sb->pid <= 0)
    return -1;
  do {
    r = waitpid(sb->pid, &status, wait ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0)
    return -1;
  sb->pid = 0;
  return r < 0 ? -1 : status;
}

/* Frees what the parent holds: kills a child still running, closes the
 * pipe, the buffer, the shared page. Idempotent: close, __gc and __close. */
static void release(nc_sandbox *sb)
{
  if (sb->pid > 0) {
    kill(sb->pid, SIGKILL);
    reap(sb, 1);
  }
  if (sb->fd >= 0) {
    close(sb->fd);
    sb->fd = -1;
  }
  free(sb->answer);
  sb->answer = NULL;
  sb->len = sb->cap = 0;
  if (sb->where != MAP_FAILED) {
    munmap(sb->where, sizeof *sb->where);
    sb->where = MAP_FAILED;
  }
}

static int sandbox_close(lua_State *L)
{
  nc_sandbox *sb = check_sandbox(L);
  release(sb);
  sb->finished = 1;
  return 0;
}

/* Reads what the pipe has without waiting; 1 at its end, 0 more to come. */
static int read_available(nc_sandbox *sb)
{
  char chunk[4096];
  for (;;) {
    ssize_t n = read(sb->fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    if (n == 0)
      return 1;
    if (sb->len + (size_t)n > MAX_RESULT) {
      sb->too_long = 1;
      return 1;
    }
    if (sb->len + (size_t)n > sb->cap) {
      size_t cap = sb->cap > 0 ? sb->cap : 4096;
      char *grown;
      while (cap < sb->len + (size_t)n)
        cap *= 2;
      if ((grown = (char *)realloc(sb->answer, cap)) == NULL) {
        sb->too_long = 1;
        return 1;
      }
      sb->answer = grown;
      sb->cap = cap;
    }
    memcpy(sb->answer + sb->len, chunk, (size_t)n);
    sb->len += (size_t)n;
  }
}

/* Pushes ok, text-or-reason, where, stopped: how the child ended (stopped:
 * by a bound, or by something else than its own code's error); releases
 * it. */
static int push_outcome(lua_State *L, nc_sandbox *sb)
{
  char number[32];
  int ok = 0, status, stopped = 1;
  char first = sb->len > 0 ? sb->answer[0] : '\0';
  if ((sb->timed_out || sb->too_long) && sb->pid > 0)
    kill(sb->pid, SIGKILL);
  status = reap(sb, 1);
  if (sb->timed_out || first == STOPPED_WALL) {
    snprintf(number, sizeof number, "%g", sb->wall);
    lua_pushfstring(L, "ran longer than %s s", number);
  } else if (sb->too_long) {
    lua_pushfstring(L, "sent back more than %d bytes", MAX_RESULT);
  } else if (first == STOPPED_CPU
             || (first == '\0' && status >= 0 && WIFSIGNALED(status)
                 && (WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL))) {
    snprintf(number, sizeof number, "%g", sb->cpu);
    lua_pushfstring(L, "used more than %s s of CPU time", number);
  } else if (first == '\0' && status >= 0 && WIFSIGNALED(status)) {
    lua_pushfstring(L, "died of signal %d", WTERMSIG(status));
  } else if (first != ANSWER_OK && first != ANSWER_ERROR) {
    lua_pushliteral(L, "ended without an answer (out of memory?)");
  } else {
    ok = first == ANSWER_OK;
    stopped = 0;
    lua_pushlstring(L, sb->answer + 1, sb->len - 1);
  }
  lua_pushboolean(L, ok);
  lua_insert(L, -2);
  /* The third result: where the code was last seen, "source:line". */
  if (sb->where != MAP_FAILED && sb->where->current >= 0)
    lua_pushfstring(L, "%s:%d", sb->where->slot[sb->where->current].source,
                    sb->where->slot[sb->where->current].line);
  else
    lua_pushnil(L);
  lua_pushboolean(L, stopped);
  sb->finished = 1;
  release(sb);
  return 4;
}

/* sandbox:step() -> nil, fd, seconds_left | ok, text, where, stopped */
static int sandbox_step(lua_State *L)
{
  nc_sandbox *sb = check_sandbox(L);
  double now;
  if (sb->finished)
    luaL_argerror(L, 1, "the sandbox has finished");
  if (read_available(sb))
    return push_outcome(L, sb);
  now = nc_now();
  if (now >= sb->deadline) {
    sb->timed_out = 1;
    return push_outcome(L, sb);
  }
  lua_pushnil(L);
  lua_pushinteger(L, sb->fd);
  lua_pushnumber(L, sb->deadline - now);
  return 3;
}

/* false, why: the child could not be started (the sandbox, finished,
 * stays below them on the stack). */
static int not_started(lua_State *L, nc_sandbox *sb)
{
  int err = errno;
  release(sb);
  sb->finished = 1;
  lua_pushboolean(L, 0);
  lua_pushfstring(L, "could not start the sandbox: %s", strerror(err));
  return 2;
}

/* Starts fn (argument 1) under limits (argument 2): pushes the sandbox and
 * returns 1, or returns 2 with false, why pushed. */
static int start(lua_State *L)
{
  double cpu, wall, memory;
  int fds[2];
  nc_sandbox *sb;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  cpu = limit_field(L, 2, "cpu");
  wall = limit_field(L, 2, "wall");
  memory = limit_field(L, 2, "memory");
  lua_settop(L, 2);
  sb = (nc_sandbox *)nc_newuserdata(L, sizeof *sb);
  memset(sb, 0, sizeof *sb);
  sb->fd = -1;
  sb->where = MAP_FAILED;
  sb->cpu = cpu;
  sb->wall = wall;
  nc_setmetatable(L, NC_SANDBOX_MT);
  sb->where = (whereabouts *)mmap(NULL, sizeof *sb->where, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sb->where == MAP_FAILED || pipe(fds) != 0)
    return not_started(L, sb);
  memset(sb->where, 0, sizeof *sb->where);
  sb->where->current = -1;
  fflush(NULL);
  sb->pid = fork();
  if (sb->pid < 0) {
    sb->pid = 0;
    close(fds[0]);
    close(fds[1]);
    return not_started(L, sb);
  }
  if (sb->pid == 0) {
    close(fds[0]);
    run_child(L, fds[1], cpu, wall, memory, sb->where);
  }
  close(fds[1]);
  sb->fd = fds[0];
  fcntl(sb->fd, F_SETFL, fcntl(sb->fd, F_GETFL) | O_NONBLOCK);
  fcntl(sb->fd, F_SETFD, FD_CLOEXEC);
  sb->deadline = nc_now() + wall + KILL_GRACE;
  return 1;
}

static int l_sandbox_start(lua_State *L)
{
  return start(L);
}

/* core.sandbox(fn, limits): the same, waiting on the pipe. */
static int l_sandbox(lua_State *L)
{
  nc_sandbox *sb;
  if (start(L) != 1)
    return 2;
  sb = (nc_sandbox *)lua_touserdata(L, -1);
  lua_replace(L, 1);
  lua_settop(L, 1);
  for (;;) {
    int results = sandbox_step(L);
    if (!lua_isnil(L, -results))
      return results;
    lua_pop(L, results);
    nc_wait_fd(sb->fd, 0, sb->deadline);
  }
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
  static const luaL_Reg methods[] = {
    { "step", sandbox_step },
    { "close", sandbox_close },
    { NULL, NULL }
  };
  static const luaL_Reg functions[] = {
    { "sandbox", l_sandbox },
    { "sandbox_start", l_sandbox_start },
    { "sandbox_watch", l_sandbox_watch },
    { "file_kind", l_file_kind },
    { NULL, NULL }
  };
  luaL_newmetatable(L, NC_SANDBOX_MT);
  lua_pushcfunction(L, sandbox_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, sandbox_close);
  lua_setfield(L, -2, "__close");
  lua_pushliteral(L, NC_SANDBOX_MT);
  lua_setfield(L, -2, "__name");
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
}
