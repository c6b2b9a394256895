/* dns.c — c-ares on a worker's libuv loop (see dns.h). c-ares tells us
 * which sockets to watch (ARES_OPT_SOCK_STATE_CB) and when it next needs
 * to run (ares_timeout); we own neither socket nor clock. The per-lookup
 * deadline is ours: every lookup of a resolver has the same timeout, so
 * pending lookups expire in the order they started (one FIFO, one timer). */
#include "proxy/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ares.h>

#include "filters/util/log.h"

typedef struct dns_watch {
  uv_poll_t poll;
  ares_socket_t fd;
  px_dns_t *r;
  struct dns_watch *next;
} dns_watch_t;

struct px_dns_query {
  px_dns_t *r;
  px_dns_cb cb;             /* NULL once cancelled or answered */
  void *arg;
  px_dns_query_t **slot;
  char host[256];
  uint16_t port;
  uint64_t deadline;        /* uv_now() when the lookup times out */
  px_dns_query_t *prev, *next; /* pending lookups, oldest first */
};

struct px_dns {
  uv_loop_t *loop;
  ares_channel ch;
  uv_timer_t ares_timer;    /* c-ares' own retransmissions */
  uv_timer_t expiry_timer;  /* our per-lookup deadline */
  int handles;              /* open uv handles; freed at 0 once closing */
  int closing;
  uint64_t timeout_ms;
  dns_watch_t *watches;
  px_dns_query_t *head, *tail;
  int socket_errno;         /* errno of the last failed socket(), 0 after a success */
  char servers[200];
};

/* ---- sockets and timers ---------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) {
  px_dns_t *r = h->data;
  if (h->type == UV_POLL) free(h);
  if (--r->handles == 0 && r->closing) free(r);
}

static void on_ares_timer(uv_timer_t *t);

static void rearm_ares_timer(px_dns_t *r) {
  struct timeval tv;
  if (r->closing) return;
  if (ares_timeout(r->ch, NULL, &tv) == NULL) {
    uv_timer_stop(&r->ares_timer);
    return;
  }
  uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)(tv.tv_usec + 999) / 1000;
  uv_timer_start(&r->ares_timer, on_ares_timer, ms, 0);
}

static void on_ares_timer(uv_timer_t *t) {
  px_dns_t *r = t->data;
  ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  rearm_ares_timer(r);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  dns_watch_t *wt = (dns_watch_t *)p; /* the poll handle is its first member */
  px_dns_t *r = wt->r;
  /* An error on the socket: let c-ares read it and notice. */
  int rd = status < 0 || (events & UV_READABLE), wr = status < 0 || (events & UV_WRITABLE);
  ares_process_fd(r->ch, rd ? wt->fd : ARES_SOCKET_BAD, wr ? wt->fd : ARES_SOCKET_BAD);
  rearm_ares_timer(r);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable) {
  px_dns_t *r = data;
  dns_watch_t **pp = &r->watches, *wt;
  while ((wt = *pp) != NULL && wt->fd != fd) pp = &wt->next;
  if (!readable && !writable) {
    /* c-ares closes the socket right after this: stop watching first. */
    if (wt == NULL) return;
    *pp = wt->next;
    uv_close((uv_handle_t *)&wt->poll, on_handle_closed);
    return;
  }
  if (wt == NULL) {
    wt = calloc(1, sizeof(*wt));
    if (wt == NULL || uv_poll_init_socket(r->loop, &wt->poll, fd) != 0) {
      free(wt);
      flt_log_error("DNS: cannot watch a resolver socket");
      return;
    }
    wt->fd = fd;
    wt->r = r;
    wt->poll.data = r;
    wt->next = r->watches;
    r->watches = wt;
    r->handles++;
  }
  uv_poll_start(&wt->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

/* c-ares opens its sockets through these so that a failed socket() keeps
 * its errno: c-ares itself reports it only as "connection refused", which
 * would hide that the process ran out of file descriptors. */
static ares_socket_t sock_open(int family, int type, int proto, void *data) {
  px_dns_t *r = data;
  int fd = socket(family, type, proto);
  r->socket_errno = fd < 0 ? errno : 0;
  return fd;
}

static int sock_close(ares_socket_t fd, void *data) {
  (void)data;
  return close(fd);
}

static int sock_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len,
                        void *data) {
  (void)data;
  return connect(fd, sa, len);
}

static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
                                  struct sockaddr *from, ares_socklen_t *fromlen, void *data) {
  (void)data;
  return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *data) {
  (void)data;
  return writev(fd, iov, n);
}

static const struct ares_socket_functions sock_funcs = {sock_open, sock_close, sock_connect,
                                                        sock_recvfrom, sock_sendv};

/* ---- the pending list and its deadline ---------------------------------- */

static void unlink_query(px_dns_query_t *q) {
  px_dns_t *r = q->r;
  if (q->prev)
    q->prev->next = q->next;
  else if (r->head == q)
    r->head = q->next;
  if (q->next)
    q->next->prev = q->prev;
  else if (r->tail == q)
    r->tail = q->prev;
  q->prev = q->next = NULL;
}

/* Hands the outcome to the caller, once; the query itself stays until
 * c-ares calls back (it cannot cancel one lookup alone). */
static void deliver(px_dns_query_t *q, int status, const char *why, const px_dns_addrs_t *a) {
  px_dns_cb cb = q->cb;
  if (cb == NULL) return;
  q->cb = NULL;
  unlink_query(q);
  if (q->slot) *q->slot = NULL;
  q->slot = NULL;
  cb(q->arg, status, why, a);
}

static void on_expiry_timer(uv_timer_t *t);

static void rearm_expiry(px_dns_t *r) {
  if (r->closing) return;
  if (r->head == NULL) {
    uv_timer_stop(&r->expiry_timer);
    return;
  }
  uint64_t now = uv_now(r->loop);
  uv_timer_start(&r->expiry_timer, on_expiry_timer,
                 r->head->deadline > now ? r->head->deadline - now : 0, 0);
}

/* Whichever notices first (our deadline or c-ares' last retry), the
 * client reads the same words. */
static void deliver_timeout(px_dns_query_t *q) {
  char why[1024];
  snprintf(why, sizeof(why),
           "DNS lookup of %s timed out after %.1f s: no answer from the DNS server (%s); "
           "see --dns-timeout and --dns-server",
           q->host, (double)q->r->timeout_ms / 1000.0, q->r->servers);
  deliver(q, 504, why, NULL);
}

static void on_expiry_timer(uv_timer_t *t) {
  px_dns_t *r = t->data;
  uint64_t now = uv_now(r->loop);
  while (r->head && r->head->deadline <= now) deliver_timeout(r->head);
  rearm_expiry(r);
}

/* ---- answers ----------------------------------------------------------------- */

static void set_port(struct sockaddr_storage *ss, uint16_t port) {
  if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
  else
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

static int add_addr(px_dns_addrs_t *out, const struct sockaddr *sa, size_t len, uint16_t port) {
  if (out->n >= PX_DNS_MAX_ADDRS || len > sizeof(out->a[0])) return -1;
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return -1;
  memset(&out->a[out->n], 0, sizeof(out->a[0]));
  memcpy(&out->a[out->n], sa, len);
  set_port(&out->a[out->n], port);
  out->n++;
  return 0;
}

static const char *cause_text(px_dns_t *r, int status, int *http) {
  *http = 502;
  switch (status) {
    case ARES_ENOTFOUND:
      return "no such host (NXDOMAIN, and not in /etc/hosts)";
    case ARES_ENODATA:
      return "the name has no address (no A or AAAA record)";
    case ARES_ESERVFAIL:
      return "the DNS server failed to answer (SERVFAIL)";
    case ARES_EREFUSED:
      return "the DNS server refused the query (REFUSED)";
    case ARES_EFORMERR:
    case ARES_EBADRESP:
      return "the DNS server sent a malformed answer";
    case ARES_EBADNAME:
      return "not a valid host name";
    case ARES_ECONNREFUSED:
      if (r->socket_errno == EMFILE || r->socket_errno == ENFILE)
        return "no file descriptor left for a DNS socket (the open-file limit, ulimit -n, "
               "is reached)";
      /* c-ares also ends here when every server answered REFUSED or
       * SERVFAIL: it moves on to the next server instead of reporting. */
      return "no DNS server gave a usable answer (each refused, failed or could not be "
             "reached)";
    case ARES_ENOMEM:
      return "out of memory";
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
      return "the resolver is shutting down";
    default:
      return ares_strerror(status);
  }
}

static void on_ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *res) {
  px_dns_query_t *q = arg;
  (void)timeouts;
  if (q->cb) {
    px_dns_addrs_t a = {0};
    if (status == ARES_SUCCESS && res) {
      for (struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next)
        add_addr(&a, n->ai_addr, n->ai_addrlen, q->port);
    }
    if (status == ARES_SUCCESS && a.n > 0) {
      deliver(q, 0, NULL, &a);
    } else if (status == ARES_ETIMEOUT) {
      deliver_timeout(q);
    } else {
      int http;
      const char *cause = status == ARES_SUCCESS ? "the answer holds no IPv4 or IPv6 address"
                                                 : cause_text(q->r, status, &http);
      char why[1024];
      if (status == ARES_SUCCESS) http = 502;
      snprintf(why, sizeof(why), "cannot resolve %s: %s (DNS server %s)", q->host, cause,
               q->r->servers);
      deliver(q, http, why, NULL);
    }
  }
  if (res) ares_freeaddrinfo(res);
  free(q);
}

/* ---- the public functions ------------------------------------------------------ */

/* Why by hand: c-ares 1.18 takes only the strict dotted quad, while
 * getaddrinfo, curl and browsers take every inet_aton spelling (127.1,
 * 2130706433, 0x7f000001); a proxy that looked those up in DNS would
 * answer differently from the system resolver its users know. */
int px_dns_resolve_local(const char *host, uint16_t port, px_dns_addrs_t *out) {
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  memset(out, 0, sizeof(*out));
  memset(&v4, 0, sizeof(v4));
  memset(&v6, 0, sizeof(v6));
  v4.sin_family = AF_INET;
  v6.sin6_family = AF_INET6;
  size_t len = strlen(host);
  if (len == 0) return 0;
  for (size_t i = 0; i < len; i++)
    if (isspace((unsigned char)host[i])) return 0; /* inet_aton stops at a space */
  if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) {
    add_addr(out, (struct sockaddr *)&v6, sizeof(v6), port);
    return 1;
  }
  if (inet_aton(host, &v4.sin_addr) != 0) {
    add_addr(out, (struct sockaddr *)&v4, sizeof(v4), port);
    return 1;
  }
  /* RFC 6761 §6.3: "localhost." and names below it are the loopback. */
  const char *name = host;
  size_t nl = len;
  if (name[nl - 1] == '.') nl--;
  if ((nl == 9 && strncasecmp(name, "localhost", 9) == 0) ||
      (nl > 10 && strncasecmp(name + nl - 10, ".localhost", 10) == 0)) {
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    v6.sin6_addr = in6addr_loopback;
    add_addr(out, (struct sockaddr *)&v4, sizeof(v4), port);
    add_addr(out, (struct sockaddr *)&v6, sizeof(v6), port);
    return 1;
  }
  return 0;
}

static void servers_text(px_dns_t *r) {
  struct ares_addr_port_node *list = NULL;
  size_t used = 0;
  r->servers[0] = '\0';
  if (ares_get_servers_ports(r->ch, &list) != ARES_SUCCESS) return;
  for (struct ares_addr_port_node *n = list; n && used + 60 < sizeof(r->servers); n = n->next) {
    char ip[INET6_ADDRSTRLEN] = "?";
    inet_ntop(n->family, &n->addr, ip, sizeof(ip));
    int port = n->udp_port ? n->udp_port : 53;
    int k = snprintf(r->servers + used, sizeof(r->servers) - used, "%s%s%s%s:%d",
                     used ? ", " : "", n->family == AF_INET6 ? "[" : "", ip,
                     n->family == AF_INET6 ? "]" : "", port);
    if (k > 0) used += (size_t)k;
  }
  ares_free_data(list);
  if (used == 0) snprintf(r->servers, sizeof(r->servers), "none configured");
}

int px_dns_new(px_dns_t **out, uv_loop_t *loop, const char *servers, uint64_t timeout_ms,
               char *err, size_t errlen) {
  struct ares_options o;
  px_dns_t *r = calloc(1, sizeof(*r));
  *out = NULL;
  if (r == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  r->loop = loop;
  r->timeout_ms = timeout_ms;
  memset(&o, 0, sizeof(o));
  o.sock_state_cb = on_sock_state;
  o.sock_state_cb_data = r;
  /* Two tries: c-ares doubles the second one's wait (t + 2t), so together
   * they end just after our own deadline. */
  o.timeout = (int)(timeout_ms / 3 + 20);
  o.tries = 2;
  o.lookups = (char *)"fb"; /* /etc/hosts, then DNS */
  int rc = ares_init_options(&r->ch, &o,
                             ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                                 ARES_OPT_LOOKUPS);
  if (rc != ARES_SUCCESS) {
    snprintf(err, errlen, "cannot start the DNS resolver: %s", ares_strerror(rc));
    free(r);
    return -1;
  }
  ares_set_socket_functions(r->ch, &sock_funcs, r);
  if (servers && (rc = ares_set_servers_ports_csv(r->ch, servers)) != ARES_SUCCESS) {
    snprintf(err, errlen, "bad --dns-server '%s': %s (IP[:PORT], comma-separated)", servers,
             ares_strerror(rc));
    ares_destroy(r->ch);
    free(r);
    return -1;
  }
  servers_text(r);
  uv_timer_init(loop, &r->ares_timer);
  uv_timer_init(loop, &r->expiry_timer);
  r->ares_timer.data = r->expiry_timer.data = r;
  r->handles = 2;
  *out = r;
  return 0;
}

void px_dns_free(px_dns_t *r) {
  if (r == NULL) return;
  /* Abandon every lookup first: ares_destroy calls them back. */
  while (r->head) {
    px_dns_query_t *q = r->head;
    if (q->slot) *q->slot = NULL;
    q->cb = NULL;
    unlink_query(q);
  }
  ares_destroy(r->ch); /* closes its sockets through on_sock_state */
  r->closing = 1;
  uv_close((uv_handle_t *)&r->ares_timer, on_handle_closed);
  uv_close((uv_handle_t *)&r->expiry_timer, on_handle_closed);
}

void px_dns_lookup(px_dns_t *r, const char *host, uint16_t port, px_dns_cb cb, void *arg,
                   px_dns_query_t **slot) {
  struct ares_addrinfo_hints hints;
  px_dns_query_t *q = calloc(1, sizeof(*q));
  *slot = NULL;
  if (q == NULL) {
    char why[300];
    snprintf(why, sizeof(why), "cannot resolve %s: out of memory", host);
    cb(arg, 502, why, NULL);
    return;
  }
  q->r = r;
  q->cb = cb;
  q->arg = arg;
  q->slot = slot;
  q->port = port;
  snprintf(q->host, sizeof(q->host), "%s", host);
  q->deadline = uv_now(r->loop) + r->timeout_ms;
  q->prev = r->tail;
  if (r->tail)
    r->tail->next = q;
  else
    r->head = q;
  r->tail = q;
  *slot = q;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* No sorting: c-ares would open a UDP socket per address to sort them. */
  hints.ai_flags = ARES_AI_NOSORT;
  ares_getaddrinfo(r->ch, q->host, NULL, &hints, on_ares_done, q); /* may call back at once */
  rearm_ares_timer(r);
  rearm_expiry(r);
}

void px_dns_cancel(px_dns_query_t **slot) {
  px_dns_query_t *q = *slot;
  *slot = NULL;
  if (q == NULL) return;
  q->cb = NULL;
  q->slot = NULL;
  unlink_query(q);
  rearm_expiry(q->r);
}

int px_dns_check_servers(const char *servers, char *err, size_t errlen) {
  ares_channel ch;
  struct ares_options o;
  memset(&o, 0, sizeof(o));
  int rc = ares_init_options(&ch, &o, 0);
  if (rc != ARES_SUCCESS) {
    snprintf(err, errlen, "cannot start the DNS resolver: %s", ares_strerror(rc));
    return -1;
  }
  rc = ares_set_servers_ports_csv(ch, servers);
  ares_destroy(ch);
  if (rc != ARES_SUCCESS) {
    snprintf(err, errlen, "bad --dns-server '%s': %s (IP[:PORT], comma-separated)", servers,
             ares_strerror(rc));
    return -1;
  }
  return 0;
}
