/* hsload.c — full-handshake load generator for the benchmark.
 *
 *   hsload -c HOST:PORT [-n CONNS] [-t SECONDS] [-p PATH]
 *
 * Keeps CONNS connections in flight from one thread (epoll, non-blocking
 * sockets). Each connection: TCP connect, a full TLS handshake (no session
 * cache, no tickets, nothing offered for resumption), one
 * `GET PATH HTTP/1.1` with `Connection: close`, the response read to the
 * server's close, then close. The certificate chain is not checked
 * (SSL_VERIFY_NONE; `openssl s_time` checks it and ignores the verdict): the
 * point is the server's cost, and the client's own stays low. The server's
 * handshake signature is still verified, as in any handshake. Runs for
 * SECONDS (bounded), then prints one line:
 *
 *   hsload: N ok in S s = R/s; errors E (...); bytes B; cpu C s = U us per connection
 *
 * A connection counts as ok when the response starts with "HTTP/1.x 200" and
 * the server closed it after the response; connections still in flight at
 * the end are not counted. Everything else is an error, counted by kind.
 * Exit status 0 when at least one connection was ok.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define HSLOAD_MAX_CONNS 1024
#define HSLOAD_HEAD_KEEP 16 /* bytes of the response kept to check the status */

enum { ERR_CONNECT, ERR_HANDSHAKE, ERR_IO, ERR_STATUS, ERR_KINDS };
static const char *const err_names[ERR_KINDS] = {"connect", "handshake", "io", "status"};

typedef enum { C_CONNECTING, C_HANDSHAKE, C_WRITE, C_READ } conn_state_t;

typedef struct {
  int fd;
  SSL *ssl;
  conn_state_t state;
  size_t sent;
  size_t got;
  char head[HSLOAD_HEAD_KEEP];
} conn_t;

typedef struct {
  SSL_CTX *ctx;
  int ep;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char request[512];
  size_t request_len;
  unsigned long ok, errors[ERR_KINDS];
  unsigned long long bytes;
} load_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int conn_start(load_t *L, conn_t *c) {
  memset(c, 0, sizeof(*c));
  c->fd = socket(L->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(c->fd, (struct sockaddr *)&L->addr, L->addrlen) != 0 && errno != EINPROGRESS) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  c->state = C_CONNECTING;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  return 0;
}

static void conn_end(load_t *L, conn_t *c, int err_kind) {
  if (err_kind < 0)
    L->ok++;
  else
    L->errors[err_kind]++;
  if (c->ssl) SSL_free(c->ssl); /* no close_notify: the server closed first */
  close(c->fd);                  /* also drops it from the epoll set */
  c->ssl = NULL;
  c->fd = -1;
  ERR_clear_error();
}

static void want(load_t *L, conn_t *c, int ssl_err) {
  struct epoll_event ev = {.events = ssl_err == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN,
                           .data.ptr = c};
  epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Moves one connection as far as it can go without blocking. */
static void conn_step(load_t *L, conn_t *c) {
  if (c->state == C_CONNECTING) {
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
      conn_end(L, c, ERR_CONNECT);
      return;
    }
    c->ssl = SSL_new(L->ctx);
    if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd)) {
      conn_end(L, c, ERR_HANDSHAKE);
      return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = C_HANDSHAKE;
  }
  if (c->state == C_HANDSHAKE) {
    int rc = SSL_do_handshake(c->ssl);
    if (rc != 1) {
      int e = SSL_get_error(c->ssl, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        want(L, c, e);
      else
        conn_end(L, c, ERR_HANDSHAKE);
      return;
    }
    c->state = C_WRITE;
  }
  if (c->state == C_WRITE) {
    size_t n = 0;
    if (!SSL_write_ex(c->ssl, L->request + c->sent, L->request_len - c->sent, &n)) {
      int e = SSL_get_error(c->ssl, 0);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        want(L, c, e);
      else
        conn_end(L, c, ERR_IO);
      return;
    }
    c->sent += n;
    if (c->sent < L->request_len) {
      want(L, c, SSL_ERROR_WANT_WRITE);
      return;
    }
    c->state = C_READ;
    want(L, c, SSL_ERROR_WANT_READ);
  }
  for (;;) { /* C_READ */
    char buf[16384];
    size_t n = 0;
    if (SSL_read_ex(c->ssl, buf, sizeof(buf), &n)) {
      if (c->got < HSLOAD_HEAD_KEEP) {
        size_t k = n < HSLOAD_HEAD_KEEP - c->got ? n : HSLOAD_HEAD_KEEP - c->got;
        memcpy(c->head + c->got, buf, k);
      }
      c->got += n;
      L->bytes += n;
      continue;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      want(L, c, e);
      return;
    }
    /* The end: close_notify (ZERO_RETURN) or a TCP close without one (SYSCALL
     * or SSL error "unexpected eof", as many servers close after HTTP/1.0). */
    int ok_status = c->got >= 12 && memcmp(c->head, "HTTP/1.", 7) == 0 &&
                    memcmp(c->head + 8, " 200", 4) == 0;
    if (c->got == 0)
      conn_end(L, c, ERR_IO);
    else
      conn_end(L, c, ok_status ? -1 : ERR_STATUS);
    return;
  }
}

static int parse_target(load_t *L, const char *target) {
  char host[256];
  const char *colon = strrchr(target, ':');
  if (colon == NULL || (size_t)(colon - target) >= sizeof(host)) return -1;
  memcpy(host, target, (size_t)(colon - target));
  host[colon - target] = '\0';
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
  if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL) return -1;
  memcpy(&L->addr, res->ai_addr, res->ai_addrlen);
  L->addrlen = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: hsload -c HOST:PORT [-n CONNS (16)] [-t SECONDS (10)] [-p PATH (/1k)]\n");
  exit(2);
}

int main(int argc, char **argv) {
  load_t L;
  const char *target = NULL, *path = "/1k";
  int nconns = 16, opt;
  double seconds = 10;
  static conn_t conns[HSLOAD_MAX_CONNS];

  memset(&L, 0, sizeof(L));
  while ((opt = getopt(argc, argv, "c:n:t:p:")) != -1) {
    switch (opt) {
    case 'c': target = optarg; break;
    case 'n': nconns = atoi(optarg); break;
    case 't': seconds = atof(optarg); break;
    case 'p': path = optarg; break;
    default: usage();
    }
  }
  if (target == NULL || nconns < 1 || nconns > HSLOAD_MAX_CONNS || seconds <= 0 ||
      seconds > 3600 || strlen(path) > 256)
    usage();
  if (parse_target(&L, target) != 0) {
    fprintf(stderr, "hsload: cannot resolve %s\n", target);
    return 2;
  }
  L.request_len = (size_t)snprintf(L.request, sizeof(L.request),
                                   "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                                   path, target);
  signal(SIGPIPE, SIG_IGN); /* a server that closes early is an error, not our end */
  L.ctx = SSL_CTX_new(TLS_client_method());
  if (L.ctx == NULL) return 2;
  SSL_CTX_set_min_proto_version(L.ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(L.ctx, SSL_VERIFY_NONE, NULL);
  /* Every handshake full: no session kept, no ticket asked for or offered. */
  SSL_CTX_set_session_cache_mode(L.ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(L.ctx, SSL_OP_NO_TICKET);
  /* Read whole socket buffers, not a record header and then its body. */
  SSL_CTX_set_read_ahead(L.ctx, 1);
  L.ep = epoll_create1(EPOLL_CLOEXEC);
  if (L.ep < 0) return 2;

  double t0 = now_s(), end = t0 + seconds;
  for (int i = 0; i < nconns; i++)
    if (conn_start(&L, &conns[i]) != 0) L.errors[ERR_CONNECT]++;
  struct epoll_event evs[256];
  while (now_s() < end) {
    int ms = (int)((end - now_s()) * 1000) + 1;
    int n = epoll_wait(L.ep, evs, 256, ms < 100 ? ms : 100);
    for (int i = 0; i < n; i++) conn_step(&L, evs[i].data.ptr);
    /* Replace every finished connection, unless time is up. */
    for (int i = 0; i < nconns && now_s() < end; i++)
      if (conns[i].fd < 0 && conn_start(&L, &conns[i]) != 0) {
        L.errors[ERR_CONNECT]++;
        conns[i].fd = -1;
      }
  }
  double wall = now_s() - t0;
  for (int i = 0; i < nconns; i++) {
    if (conns[i].ssl) SSL_free(conns[i].ssl);
    if (conns[i].fd >= 0) close(conns[i].fd);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  unsigned long nerr = 0;
  char detail[200] = "";
  size_t off = 0;
  for (int k = 0; k < ERR_KINDS; k++) {
    nerr += L.errors[k];
    if (L.errors[k] && off < sizeof(detail))
      off += (size_t)snprintf(detail + off, sizeof(detail) - off, "%s%s %lu", off ? ", " : "",
                              err_names[k], L.errors[k]);
  }
  printf("hsload: %lu ok in %.2f s = %.1f/s; errors %lu%s%s%s; bytes %llu; cpu %.2f s = %.0f us "
         "per connection\n",
         L.ok, wall, (double)L.ok / wall, nerr, nerr ? " (" : "", detail, nerr ? ")" : "",
         L.bytes, cpu, L.ok ? cpu * 1e6 / (double)L.ok : 0.0);
  SSL_CTX_free(L.ctx);
  close(L.ep);
  return L.ok > 0 ? 0 : 1;
}
