/* accept.c — accepting client connections, and the descriptor limit:
 * px_accept_* (worker.h), and a session (px_session_new/start) for each connection.
 *
 * The listening sockets are watched with uv_poll and accepted with
 * accept4() here rather than with uv_listen/uv_accept. libuv's accept loop
 * keeps calling accept() until it stops failing, and handles EMFILE with one
 * reserve descriptor per loop (uv__emfile_trick in src/unix/stream.c): close
 * it, accept and drop the waiting connections, reopen it. With two worker
 * threads sharing one descriptor table, the other thread can take the freed
 * slot; the reserve is then gone, and the loop calls back with EMFILE
 * forever without returning to the event loop — no reads, no timers, no
 * shutdown. libuv offers no way to pause a listener, so this file does it:
 * when the process is out of descriptors, a worker stops watching its
 * listeners for PX_ACCEPT_BACKOFF_MS and then tries again. Meanwhile its
 * open sessions keep being served and closed, and new clients wait in the
 * kernel's backlog. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>
#include <uv.h>

#include "filters/util/log.h"
#include "proxy/loopguard.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define PX_ACCEPT_BATCH 64        /* accepts per wake-up, so other events get their turn */
#define PX_ACCEPT_BACKOFF_MS 200  /* pause after running out of descriptors */
#define PX_FDS_PER_CONNECTION 2   /* the client's socket and the upstream's */
#define PX_FD_SLACK 32            /* for files, DNS and transcripts opened later */

static void on_listener_readable(uv_poll_t *p, int status, int events);

/* ---- one accepted connection ------------------------------------------- */

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof(ip));
    snprintf(out, len, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof(ip));
    snprintf(out, len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  }
}

/* A session for `fd`, just accepted on one of w's listeners (non-blocking):
 * px_session_new, the fd into s->client, the loop check, then
 * px_session_start. The session owns the fd from here on, even when it
 * cannot start. */
static void accept_session(px_worker_t *w, const px_listen_cfg_t *lc, int fd) {
  px_session_t *s = px_session_new(w, lc);
  if (s == NULL) {
    close(fd);
    return;
  }
  if (uv_tcp_open(&s->client.tcp, fd) != 0) {
    close(fd); /* the handle did not take it */
    px_session_close(s, "accept failed");
    return;
  }
  struct sockaddr_storage ss;
  int sl = sizeof(ss);
  memset(&ss, 0, sizeof(ss));
  if (uv_tcp_getpeername(&s->client.tcp, (struct sockaddr *)&ss, &sl) == 0)
    format_addr(&ss, s->conn.client, sizeof(s->conn.client));
  uv_tcp_nodelay(&s->client.tcp, 1);
  if (lc->mode != PX_MODE_TRANSPARENT && px_loopguard_is_ours(fd)) {
    /* Transparent mode explains its redirect loops itself. */
    const char *msg = "this connection comes from one of tlspeek's own upstream sockets: "
                      "tlspeek was made to connect to itself; refusing the loop";
    px_session_log(s, FLT_LOG_WARN, "%s: %s", s->conn.client, msg);
    px_session_close(s, msg);
    return;
  }
  px_session_start(s);
}

int px_accept_listener_start(px_worker_t *w, px_listener_t *l) {
  int rc = uv_poll_init(&w->loop, &l->poll, l->fd);
  if (rc < 0) return rc;
  l->poll.data = l;
  l->open = 1;
  if (listen(l->fd, PX_LISTEN_BACKLOG) != 0) return -errno;
  return uv_poll_start(&l->poll, UV_READABLE, on_listener_readable);
}

void px_accept_listener_close(px_listener_t *l) {
  if (l->open) {
    if (!uv_is_closing((uv_handle_t *)&l->poll)) uv_close((uv_handle_t *)&l->poll, NULL);
    l->open = 0;
  }
  /* uv_poll never owns the descriptor; it is stopped now, so close it. */
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}

static void on_accept_resume(uv_timer_t *t) {
  px_worker_t *w = t->data;
  if (w->stopping) return;
  for (int i = 0; i < w->n_listeners; i++) {
    px_listener_t *l = &w->listeners[i];
    if (l->open) uv_poll_start(&l->poll, UV_READABLE, on_listener_readable);
  }
}

/* Out of descriptors (or another error that would fail again at once):
 * stop watching every listener of this worker for a while. */
static void accept_pause(px_worker_t *w, const px_listener_t *l, int err) {
  struct rlimit rl;
  char limit[64] = "";
  for (int i = 0; i < w->n_listeners; i++)
    if (w->listeners[i].open) uv_poll_stop(&w->listeners[i].poll);
  uv_timer_start(&w->accept_timer, on_accept_resume, PX_ACCEPT_BACKOFF_MS, 0);
  if ((err == EMFILE || err == ENFILE) && getrlimit(RLIMIT_NOFILE, &rl) == 0)
    snprintf(limit, sizeof(limit), " (descriptor limit %llu)", (unsigned long long)rl.rlim_cur);
  /* No worker index or counter in the text: the log's repeat limiter turns
   * a long overload into one line per second. */
  flt_log_warn("cannot accept connections on %s:%u: %s%s; new clients wait, retrying every %d ms",
               l->lc->host, (unsigned)l->lc->port, strerror(err), limit, PX_ACCEPT_BACKOFF_MS);
}

static void on_listener_readable(uv_poll_t *p, int status, int events) {
  px_listener_t *l = p->data;
  px_worker_t *w = l->w;
  (void)events;
  if (w->stopping) return;
  if (status < 0) {
    flt_log_warn("listener %s:%u: %s", l->lc->host, (unsigned)l->lc->port, uv_strerror(status));
    accept_pause(w, l, -status);
    return;
  }
  for (int i = 0; i < PX_ACCEPT_BATCH && !w->stopping; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      accept_session(w, l->lc, fd);
      continue;
    }
    switch (errno) {
      case EAGAIN: return;
      /* That one connection failed (see accept(2)): take the next. */
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
      case ENETDOWN:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case EOPNOTSUPP:
      case ENETUNREACH: continue;
      default: accept_pause(w, l, errno); return;
    }
  }
}

/* ---- descriptor limit ---------------------------------------------------- */

void px_accept_fd_limit_raise(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  if (rl.rlim_max == RLIM_INFINITY) return; /* Linux refuses it for descriptors */
  rlim_t old = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    flt_log_warn("cannot raise the descriptor limit from %llu to %llu: %s",
                 (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(errno));
}

/* Descriptors open now, or -1 when /proc cannot tell. */
static long fds_in_use(void) {
  DIR *d = opendir("/proc/self/fd");
  long n = -1; /* the directory's own descriptor is listed too */
  if (d == NULL) return -1;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

void px_accept_fd_limit_report(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur == RLIM_INFINITY) {
    flt_log_info("descriptor limit: none");
    return;
  }
  long used = fds_in_use();
  long room = (long)rl.rlim_cur - (used < 0 ? 64 : used) - PX_FD_SLACK;
  if (room < 0) room = 0;
  flt_log_info("descriptor limit %llu (hard limit %llu): room for about %ld concurrent "
               "connections (%d descriptors each)",
               (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
               room / PX_FDS_PER_CONNECTION, PX_FDS_PER_CONNECTION);
}
