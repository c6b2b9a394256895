/* replay_send.c — the senders: client threads of the proxy's own
 * listener (replay.h says why), with blocking sockets bounded by
 * PX_REPLAY_IO_TIMEOUT_S per read or write, never on a worker's loop.
 * Each takes the next entry in file order, so with --concurrency 1 they
 * go one after another. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "filters/util/log.h"
#include "proxy/replay/replay_internal.h"

#define REPLAY_MAX_CONNECT_HEAD 4096 /* the proxy's answer to CONNECT */

/* A connection to the proxy; its local address into it->client (under
 * the lock) before anything is sent, for the filter to find. */
static int connect_proxy(px_replay_t *r, px_replay_item_t *it) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(r->px.port)};
  struct timeval tv = {PX_REPLAY_IO_TIMEOUT_S, 0};
  socklen_t sl = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return -1;
  }
  pthread_mutex_lock(&r->lock);
  snprintf(it->client, sizeof(it->client), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  pthread_mutex_unlock(&r->lock);
  return fd;
}

static int send_all(int fd, SSL *ssl, const char *p, size_t n) {
  while (n > 0) {
    int chunk = n > 65536 ? 65536 : (int)n;
    ssize_t k = ssl ? SSL_write(ssl, p, chunk) : send(fd, p, (size_t)chunk, MSG_NOSIGNAL);
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* CONNECT to the entry's authority; 0 when the proxy answered 200, else
 * -1 with *why set. The head is read a byte at a time: TLS follows it. */
static int tunnel(px_replay_t *r, px_replay_item_t *it, int fd, char *why, size_t wlen) {
  char buf[REPLAY_MAX_CONNECT_HEAD];
  size_t have = 0;
  int n = snprintf(buf, sizeof(buf), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n",
                   it->authority, it->authority, r->proxyauth_b64 ? "Proxy-Authorization: " : "",
                   r->proxyauth_b64 ? r->proxyauth_b64 : "", r->proxyauth_b64 ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof(buf) || send_all(fd, NULL, buf, (size_t)n) < 0) {
    snprintf(why, wlen, "cannot send CONNECT to tlspeek: %s", strerror(errno));
    return -1;
  }
  while (have < sizeof(buf) - 1 && recv(fd, buf + have, 1, 0) == 1) {
    have++;
    if (have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0) break;
  }
  buf[have] = '\0';
  if (strncmp(buf, "HTTP/1.1 200", 12) == 0 || strncmp(buf, "HTTP/1.0 200", 12) == 0) return 0;
  snprintf(why, wlen, "tlspeek refused the tunnel: %.*s", (int)strcspn(buf, "\r\n"),
           have ? buf : "no answer");
  return -1;
}

/* TLS with tlspeek, verified against its CA (the leaf it minted for the
 * entry's host). */
static SSL *tls_start(px_replay_t *r, px_replay_item_t *it, SSL_CTX *ctx, int fd, char *why,
                      size_t wlen) {
  struct in6_addr ip;
  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) return NULL;
  SSL_set_fd(ssl, fd);
  if (inet_pton(AF_INET, it->host, &ip) == 1 || inet_pton(AF_INET6, it->host, &ip) == 1) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), it->host);
  } else {
    SSL_set_tlsext_host_name(ssl, it->host);
    SSL_set1_host(ssl, it->host);
  }
  if (SSL_connect(ssl) == 1) return ssl;
  unsigned long e = ERR_get_error();
  long v = SSL_get_verify_result(ssl);
  snprintf(why, wlen, "TLS with tlspeek for %s failed: %s (CA %s)", it->host,
           v != X509_V_OK ? X509_verify_cert_error_string(v)
           : e            ? ERR_reason_error_string(e)
                          : "handshake failed",
           r->px.ca_pem);
  SSL_free(ssl);
  return NULL;
}

/* The request; an http:// one goes to the proxy itself, so with
 * --proxyauth its credentials follow the request line. */
static int send_request(const px_replay_t *r, const px_replay_item_t *it, int fd, SSL *ssl) {
  const char *p = it->request;
  if (it->tls || r->proxyauth_b64 == NULL)
    return send_all(fd, ssl, it->request, it->request_len);
  size_t line = (size_t)(strstr(p, "\r\n") - p) + 2; /* build_request wrote one */
  char auth[600];
  int n = snprintf(auth, sizeof(auth), "Proxy-Authorization: %s\r\n", r->proxyauth_b64);
  if (n < 0 || (size_t)n >= sizeof(auth)) return -1;
  if (send_all(fd, NULL, p, line) < 0 || send_all(fd, NULL, auth, (size_t)n) < 0) return -1;
  return send_all(fd, NULL, p + line, it->request_len - line);
}

/* Until the filter saw the flow end, at most PX_REPLAY_FLOW_WAIT_MS. */
static void wait_flow_end(px_replay_t *r, px_replay_item_t *it) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += PX_REPLAY_FLOW_WAIT_MS / 1000;
  ts.tv_nsec += (long)(PX_REPLAY_FLOW_WAIT_MS % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  while (!it->ended && pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0) {
  }
}

/* One entry: connect, tunnel, TLS, the request, its answer read to EOF. */
static void send_item(px_replay_t *r, SSL_CTX *ctx, px_replay_item_t *it) {
  char why[600] = "", buf[16384];
  SSL *ssl = NULL;
  uint64_t got = 0;
  int fd = connect_proxy(r, it);
  if (fd < 0) {
    snprintf(why, sizeof(why), "cannot connect to tlspeek on 127.0.0.1:%u: %s",
             (unsigned)r->px.port, strerror(errno));
    goto Exit;
  }
  if (it->tls && (tunnel(r, it, fd, why, sizeof(why)) < 0 ||
                  (ssl = tls_start(r, it, ctx, fd, why, sizeof(why))) == NULL))
    goto Exit;
  if (send_request(r, it, fd, ssl) < 0) {
    snprintf(why, sizeof(why), "sending the request to tlspeek failed: %s", strerror(errno));
    goto Exit;
  }
  for (;;) {
    int n = ssl ? SSL_read(ssl, buf, sizeof(buf)) : (int)recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got += (uint64_t)n;
  }
  if (got == 0) snprintf(why, sizeof(why), "tlspeek sent no answer");
Exit:
  if (ssl) SSL_free(ssl);
  if (fd >= 0) close(fd);
  ERR_clear_error();
  pthread_mutex_lock(&r->lock);
  if (it->claimed) wait_flow_end(r, it);
  if (it->claimed && !it->ended)
    px_replay_item_fail(it, "its flow had not ended %d ms after the connection did%s%s",
                        PX_REPLAY_FLOW_WAIT_MS, why[0] ? ": " : "", why);
  else if (!it->claimed)
    px_replay_item_fail(it, "%s", why[0] ? why : "tlspeek made no flow of it");
  if (!it->claimed) it->client[0] = '\0'; /* a later connection may get its port */
  pthread_mutex_unlock(&r->lock);
}

static void *sender_main(void *arg) {
  px_replay_t *r = arg;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx && SSL_CTX_load_verify_locations(ctx, r->px.ca_pem, NULL) == 1)
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  for (;;) {
    pthread_mutex_lock(&r->lock);
    px_replay_item_t *it = r->next < r->n_items && !r->stopping ? &r->items[r->next++] : NULL;
    if (it && it->request == NULL) px_replay_item_fail(it, "not sent: %s", it->not_sent);
    pthread_mutex_unlock(&r->lock);
    if (it == NULL) break;
    if (it->request && ctx) send_item(r, ctx, it);
    pthread_mutex_lock(&r->lock);
    if (it->request && ctx == NULL) px_replay_item_fail(it, "out of memory");
    if (it->error)
      flt_log_error("replay: entry %zu %s %s: %s", it->entry, it->method, it->url, it->error);
    pthread_mutex_unlock(&r->lock);
  }
  SSL_CTX_free(ctx);
  /* Under the lock: after a signal the main loop may be closing the handle. */
  pthread_mutex_lock(&r->lock);
  if (--r->running == 0 && r->async_open) uv_async_send(&r->async);
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

static void on_all_sent(uv_async_t *a) {
  px_replay_t *r = a->data;
  if (r->done) r->done(r->done_arg);
}

static char *basic_auth(const char *userpass) {
  size_t n = strlen(userpass);
  char *v = malloc(4 * ((n + 2) / 3) + 7);
  if (v == NULL) return NULL;
  memcpy(v, "Basic ", 6);
  EVP_EncodeBlock((unsigned char *)v + 6, (const unsigned char *)userpass, (int)n);
  return v;
}

int px_replay_start(px_replay_t *r, uv_loop_t *loop, const px_replay_proxy_t *px,
                    void (*done)(void *arg), void *arg) {
  r->px = *px;
  r->done = done;
  r->done_arg = arg;
  if (px->proxyauth && (r->proxyauth_b64 = basic_auth(px->proxyauth)) == NULL) return -1;
  if (uv_async_init(loop, &r->async, on_all_sent) != 0) return -1;
  r->async.data = r;
  pthread_mutex_lock(&r->lock);
  r->async_open = 1;
  pthread_mutex_unlock(&r->lock);
  int want = r->concurrency;
  if ((size_t)want > r->n_items) want = r->n_items ? (int)r->n_items : 1;
  if (want > PX_REPLAY_MAX_CONCURRENCY) want = PX_REPLAY_MAX_CONCURRENCY;
  pthread_mutex_lock(&r->lock);
  for (int i = 0; i < want; i++) {
    if (pthread_create(&r->threads[r->n_threads], NULL, sender_main, r) != 0) break;
    r->n_threads++;
    r->running++;
  }
  pthread_mutex_unlock(&r->lock);
  return r->n_threads > 0 ? 0 : -1;
}

void px_replay_stop(px_replay_t *r) {
  if (r == NULL) return;
  pthread_mutex_lock(&r->lock);
  r->stopping = 1;
  pthread_mutex_unlock(&r->lock);
}

void px_replay_close(px_replay_t *r) {
  if (r == NULL) return;
  pthread_mutex_lock(&r->lock);
  int open = r->async_open;
  r->async_open = 0;
  pthread_mutex_unlock(&r->lock);
  if (open) uv_close((uv_handle_t *)&r->async, NULL);
}
