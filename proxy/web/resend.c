/* resend.c — /api/resend (web_internal.h): a recorded request, edited as
 * the page asks, sent again through tlspeek's own explicit listener, so
 * the proxy handles it like any client's and the new flow appears in the
 * list. It runs on a thread of its own with blocking sockets (bounded by
 * RESEND_TIMEOUT_S per read or write), never on the web loop.
 *
 * http:// URLs go to the proxy in absolute form; https:// ones through a
 * CONNECT tunnel and TLS with SNI. The TLS peer is tlspeek itself, whose
 * certificate is checked against its own CA when that file is known. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy/web/web_internal.h"

#define RESEND_TIMEOUT_S 30
#define RESEND_MAX_READ (64u << 20)

struct px_web_resend_job {
  char proxy_host[256], proxy_port[8];
  char *ca;
  char *proxyauth_b64; /* "Basic ..." value, or NULL */
  int tls;
  char host[256], port[8], authority[300];
  char *request; /* bytes to send after the tunnel (if any) */
  size_t request_len;
  char result[600];
  void (*done)(px_web_resend_job_t *, void *);
  void *ud;
};

static int hop_by_hop(const char *name) {
  static const char *const h[] = {"connection", "keep-alive", "proxy-connection",
                                  "proxy-authorization", "te", "trailer", "transfer-encoding",
                                  "upgrade", "content-length", "host"};
  for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
    if (strcasecmp(name, h[i]) == 0) return 1;
  return 0;
}

/* scheme://host[:port]/path into the job; 0 or -1. */
static int parse_url(px_web_resend_job_t *j, const char *url, const char **path) {
  const char *a;
  if (strncasecmp(url, "https://", 8) == 0) j->tls = 1, a = url + 8;
  else if (strncasecmp(url, "http://", 7) == 0) j->tls = 0, a = url + 7;
  else return -1;
  size_t n = strcspn(a, "/?#");
  if (n == 0 || n >= sizeof(j->authority)) return -1;
  snprintf(j->authority, sizeof(j->authority), "%.*s", (int)n, a);
  *path = a[n] == '/' ? a + n : "/";
  const char *colon = j->authority[0] == '[' ? strstr(j->authority, "]:") : strrchr(j->authority, ':');
  if (colon && j->authority[0] == '[') colon++;
  const char *hb = j->authority[0] == '[' ? j->authority + 1 : j->authority;
  size_t hl = colon ? (size_t)(colon - hb) : strlen(hb);
  if (j->authority[0] == '[' && hl > 0) hl--; /* the ']' */
  if (hl == 0 || hl >= sizeof(j->host)) return -1;
  snprintf(j->host, sizeof(j->host), "%.*s", (int)hl, hb);
  snprintf(j->port, sizeof(j->port), "%s", colon ? colon + 1 : j->tls ? "443" : "80");
  return strspn(j->port, "0123456789") == strlen(j->port) && j->port[0] ? 0 : -1;
}

/* The request as the page edited it (method, url, headers, body). */
static int build_request(px_web_resend_job_t *j, const flt_web_request_t *r, cJSON *e, char *err,
                         size_t errlen) {
  cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "method");
  cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "url");
  cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "headers");
  cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "body");
  const char *method = cJSON_IsString(m) ? m->valuestring : r->method;
  const char *url = cJSON_IsString(u) ? u->valuestring : r->url, *path;
  flt_strbuf_t s;

  if (method[0] == '\0' || strcspn(method, " \r\n\t") != strlen(method)) {
    snprintf(err, errlen, "bad method");
    return -1;
  }
  if (parse_url(j, url, &path) < 0 || strcspn(url, " \r\n\t") != strlen(url)) {
    snprintf(err, errlen, "bad url: give an absolute http:// or https:// URL");
    return -1;
  }
  flt_strbuf_init(&s, PX_WEB_MAX_BODY * 2);
  flt_strbuf_appendf(&s, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, j->tls ? path : url,
                     j->authority);
  if (!j->tls && j->proxyauth_b64) flt_strbuf_appendf(&s, "Proxy-Authorization: %s\r\n", j->proxyauth_b64);
  if (cJSON_IsArray(h)) {
    cJSON *pair;
    cJSON_ArrayForEach(pair, h) {
      cJSON *n = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
      if (!cJSON_IsString(n) || !cJSON_IsString(v) || n->valuestring[0] == '\0' ||
          strpbrk(n->valuestring, "\r\n: \t") || strpbrk(v->valuestring, "\r\n")) {
        snprintf(err, errlen, "headers: each must be [\"Name\",\"value\"] without line breaks");
        flt_strbuf_free(&s);
        return -1;
      }
      if (!hop_by_hop(n->valuestring))
        flt_strbuf_appendf(&s, "%s: %s\r\n", n->valuestring, v->valuestring);
    }
  } else {
    for (size_t i = 0; i < r->n_headers; i++)
      if (!hop_by_hop(r->names[i])) flt_strbuf_appendf(&s, "%s: %s\r\n", r->names[i], r->values[i]);
  }
  const char *body = cJSON_IsString(b) ? b->valuestring : r->body;
  size_t blen = cJSON_IsString(b) ? strlen(b->valuestring) : r->body_len;
  if (blen || cJSON_IsString(b) || r->has_body) flt_strbuf_appendf(&s, "Content-Length: %zu\r\n", blen);
  flt_strbuf_append(&s, "Connection: close\r\n\r\n", 21);
  if (blen) flt_strbuf_append(&s, body, blen);
  if (s.truncated || s.data == NULL) {
    snprintf(err, errlen, "request too large");
    flt_strbuf_free(&s);
    return -1;
  }
  j->request = flt_strbuf_detach(&s, &j->request_len);
  return 0;
}

static char *basic_auth(const char *userpass) {
  size_t n = strlen(userpass), out = 4 * ((n + 2) / 3) + 7;
  char *v = malloc(out);
  if (v == NULL) return NULL;
  memcpy(v, "Basic ", 6);
  EVP_EncodeBlock((unsigned char *)v + 6, (const unsigned char *)userpass, (int)n);
  return v;
}

px_web_resend_job_t *px_web_resend_new(const px_web_opts_t *o, const flt_web_request_t *req,
                                       const char *edits, size_t edits_len, char *err,
                                       size_t errlen) {
  px_web_resend_job_t *j = calloc(1, sizeof(*j));
  cJSON *e = cJSON_ParseWithLength(edits ? edits : "{}", edits ? edits_len : 2);
  const char *colon = strrchr(o->proxy, ':');

  if (j == NULL || colon == NULL) {
    snprintf(err, errlen, "%s", j ? "no proxy listener to send through" : "out of memory");
    goto Fail;
  }
  snprintf(j->proxy_host, sizeof(j->proxy_host), "%.*s", (int)(colon - o->proxy), o->proxy);
  if (j->proxy_host[0] == '[') {
    memmove(j->proxy_host, j->proxy_host + 1, strlen(j->proxy_host));
    j->proxy_host[strcspn(j->proxy_host, "]")] = '\0';
  }
  snprintf(j->proxy_port, sizeof(j->proxy_port), "%s", colon + 1);
  j->ca = o->ca ? strdup(o->ca) : NULL;
  j->proxyauth_b64 = o->proxyauth ? basic_auth(o->proxyauth) : NULL;
  if (build_request(j, req, e, err, errlen) < 0) goto Fail;
  cJSON_Delete(e);
  return j;
Fail:
  cJSON_Delete(e);
  px_web_resend_free(j);
  return NULL;
}

void px_web_resend_free(px_web_resend_job_t *j) {
  if (j == NULL) return;
  free(j->ca);
  free(j->proxyauth_b64);
  free(j->request);
  free(j);
}

const char *px_web_resend_result(const px_web_resend_job_t *j) {
  return j->result;
}

/* ---- the thread ------------------------------------------------------------------ */

static int connect_proxy(const px_web_resend_job_t *j) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  struct timeval tv = {RESEND_TIMEOUT_S, 0};
  int fd = -1;
  if (getaddrinfo(j->proxy_host, j->proxy_port, &hints, &ai) != 0) return -1;
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  return fd;
}

static int send_all(int fd, SSL *ssl, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = ssl ? SSL_write(ssl, p, (int)(n > 65536 ? 65536 : n)) : send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* CONNECT host:port; 0 when the proxy answered 200. */
static int tunnel(px_web_resend_job_t *j, int fd) {
  char buf[4096];
  size_t have = 0;
  int n = snprintf(buf, sizeof(buf), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", j->authority,
                   j->authority, j->proxyauth_b64 ? "Proxy-Authorization: " : "",
                   j->proxyauth_b64 ? j->proxyauth_b64 : "", j->proxyauth_b64 ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof(buf) || send_all(fd, NULL, buf, (size_t)n) < 0) return -1;
  /* Byte by byte: nothing after the head may be read past (TLS follows). */
  while (have < sizeof(buf) - 1 && recv(fd, buf + have, 1, 0) == 1) {
    have++;
    if (have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0) break;
  }
  buf[have] = '\0';
  if (strncmp(buf, "HTTP/1.1 200", 12) == 0 || strncmp(buf, "HTTP/1.0 200", 12) == 0) return 0;
  snprintf(j->result, sizeof(j->result), "the proxy refused the tunnel: %.*s",
           (int)strcspn(buf, "\r\n"), buf);
  return -1;
}

static SSL *tls_start(px_web_resend_job_t *j, int fd, SSL_CTX **ctx) {
  SSL *ssl = NULL;
  *ctx = SSL_CTX_new(TLS_client_method());
  if (*ctx == NULL) return NULL;
  if (j->ca && SSL_CTX_load_verify_locations(*ctx, j->ca, NULL) == 1)
    SSL_CTX_set_verify(*ctx, SSL_VERIFY_PEER, NULL);
  if ((ssl = SSL_new(*ctx)) == NULL) return NULL;
  SSL_set_fd(ssl, fd);
  struct in6_addr ip;
  int literal = inet_pton(AF_INET, j->host, &ip) == 1 || inet_pton(AF_INET6, j->host, &ip) == 1;
  if (literal) { /* no SNI for an address; the minted certificate names it as an IP SAN */
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), j->host);
  } else {
    SSL_set_tlsext_host_name(ssl, j->host);
    SSL_set1_host(ssl, j->host);
  }
  if (SSL_connect(ssl) != 1) {
    unsigned long e = ERR_get_error();
    snprintf(j->result, sizeof(j->result), "TLS through the proxy failed: %s",
             e ? ERR_reason_error_string(e) : "handshake failed");
    SSL_free(ssl);
    return NULL;
  }
  return ssl;
}

/* Sends the request and reads the answer to its end (the flow is then
 * complete in the store when the page hears back). */
static void resend_run(px_web_resend_job_t *j) {
  SSL_CTX *ctx = NULL;
  SSL *ssl = NULL;
  char buf[16384];
  size_t total = 0;
  int fd = connect_proxy(j);

  if (fd < 0) {
    snprintf(j->result, sizeof(j->result), "cannot connect to the proxy at %s:%s", j->proxy_host,
             j->proxy_port);
    goto Exit;
  }
  if (j->tls && (tunnel(j, fd) < 0 || (ssl = tls_start(j, fd, &ctx)) == NULL)) {
    if (!j->result[0]) snprintf(j->result, sizeof(j->result), "cannot open a tunnel through the proxy");
    goto Exit;
  }
  if (send_all(fd, ssl, j->request, j->request_len) < 0) {
    snprintf(j->result, sizeof(j->result), "sending the request failed: %s", strerror(errno));
    goto Exit;
  }
  for (;;) {
    int n = ssl ? SSL_read(ssl, buf, sizeof(buf)) : (int)recv(fd, buf, sizeof(buf), 0);
    if (n <= 0 || (total += (size_t)n) > RESEND_MAX_READ) break;
  }
  if (total == 0) snprintf(j->result, sizeof(j->result), "the proxy sent no response");
Exit:
  if (ssl) SSL_free(ssl);
  SSL_CTX_free(ctx);
  if (fd >= 0) close(fd);
  ERR_clear_error();
}

static void *resend_main(void *arg) {
  px_web_resend_job_t *j = arg;
  resend_run(j);
  if (j->result[0] == '\0') {
    snprintf(j->result, sizeof(j->result), "{\"ok\":true}");
  } else {
    flt_strbuf_t b;
    flt_strbuf_init(&b, sizeof(j->result) - 1);
    flt_strbuf_append(&b, "{\"ok\":false,\"error\":", 20);
    px_web_json_string(&b, j->result);
    flt_strbuf_append(&b, "}", 1);
    snprintf(j->result, sizeof(j->result), "%s", b.data ? b.data : "{\"ok\":false}");
    flt_strbuf_free(&b);
  }
  j->done(j, j->ud);
  return NULL;
}

int px_web_resend_run(px_web_resend_job_t *j, void (*done)(px_web_resend_job_t *, void *),
                      void *ud) {
  pthread_t t;
  pthread_attr_t attr;
  j->done = done;
  j->ud = ud;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&t, &attr, resend_main, j);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : -1;
}
