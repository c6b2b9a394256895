/* server.c — the web page's server (web.h): its own thread and libuv
 * loop, the browser connections (at most PX_WEB_MAX_CLIENTS; then 503),
 * requests parsed by http.c and answered by api.c, the event stream.
 *
 * The event stream: the flow store calls on_store_change (uv_async_send,
 * from any thread, only while a stream is open); the first change starts
 * a 200 ms timer, and when it fires each stream gets one write holding
 * what changed for it since its last one (a flow changed three times is
 * sent once, as it is now). A stream whose unsent bytes pass
 * PX_WEB_SSE_BACKLOG is closed rather than buffered without bound; the
 * page reconnects and catches up with Last-Event-ID.
 *
 * Idle connections: a connection that has not sent a complete request
 * within PX_WEB_REQUEST_MS of its accept or of its last answer is closed
 * (a once-a-second sweep, running while there are connections), so a
 * local process cannot hold every slot without the token. An event
 * stream (only ever opened by a request that passed the token check) and
 * one waiting for its resend have no deadline. */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <uv.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/intercept.h"
#include "proxy/web/web_internal.h"

#define BATCH_MS 200
#define PING_MS 15000
/* Bytes read and dropped after a final answer before the connection is cut. */
#define DRAIN_MAX (4u << 20)

typedef struct client {
  uv_tcp_t tcp;
  struct px_web *srv;
  struct client *next;
  px_web_req_t req;
  flt_strbuf_t rest; /* bytes after a request that is answered later */
  int sse;
  struct flt_expr *filter;
  px_web_sse_pos_t pos;
  px_web_resend_job_t *waiting;
  int closing, close_after_write;
  uv_shutdown_t shutdown;
  size_t drained; /* bytes read and dropped after the last answer */
  uint64_t deadline; /* uv_now() by which a complete request must come; 0: none */
} client_t;

struct px_web {
  px_web_ctx_t ctx;
  uv_loop_t loop;
  uv_thread_t thread;
  uv_tcp_t listener;
  uv_async_t changed, stop, resent;
  uv_timer_t batch, ping, idle;
  client_t *clients;
  int n_clients, n_sse;
  pthread_mutex_t mu; /* the finished resends */
  px_web_resend_job_t *done[64];
  int n_done, stopped;
  atomic_int resends;
};

typedef struct write_req {
  uv_write_t w;
  client_t *cl;
  char *data;
} write_req_t;

static void on_client_closed(uv_handle_t *h) {
  client_t *cl = h->data;
  px_web_req_free(&cl->req);
  flt_strbuf_free(&cl->rest);
  flt_expr_free(cl->filter);
  free(cl);
}

static void client_close(client_t *cl) {
  struct px_web *srv = cl->srv;
  if (cl->closing) return;
  cl->closing = 1;
  for (client_t **p = &srv->clients; *p; p = &(*p)->next)
    if (*p == cl) {
      *p = cl->next;
      break;
    }
  srv->n_clients--;
  if (cl->sse) {
    srv->n_sse--;
    flt_web_store_watch(srv->ctx.o.store, -1);
  }
  uv_close((uv_handle_t *)&cl->tcp, on_client_closed);
}

static void on_shutdown(uv_shutdown_t *sh, int status) {
  client_t *cl = sh->data;
  if (status < 0) client_close(cl);
}

/* After the last answer: FIN, then the client's remaining bytes are read
 * and dropped until it closes (closing at once with unread bytes would
 * reset the connection before the client read the answer). */
static void on_written(uv_write_t *w, int status) {
  write_req_t *wr = (write_req_t *)w;
  client_t *cl = wr->cl;
  free(wr->data);
  free(wr);
  if (status < 0) {
    client_close(cl);
  } else if (cl->close_after_write && !cl->closing &&
             uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp) == 0) {
    cl->shutdown.data = cl;
    if (uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->tcp, on_shutdown) < 0) client_close(cl);
  }
}

/* Takes `data` (malloc()ed). */
static void client_send(client_t *cl, char *data, size_t len) {
  write_req_t *wr = malloc(sizeof(*wr));
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  if (cl->closing || wr == NULL) {
    free(wr);
    free(data);
    return;
  }
  wr->cl = cl;
  wr->data = data;
  if (uv_write(&wr->w, (uv_stream_t *)&cl->tcp, &b, 1, on_written) < 0) {
    free(data);
    free(wr);
    client_close(cl);
  }
}

static void send_resp(client_t *cl, px_web_resp_t *p) {
  size_t len;
  char *bytes = px_web_resp_bytes(p, &len);
  if (p->close) cl->close_after_write = 1;
  if (bytes) client_send(cl, bytes, len);
  else client_close(cl);
}

/* ---- the event stream -------------------------------------------------------------- */

static void sse_push(client_t *cl) {
  flt_strbuf_t out;
  size_t len;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->tcp) > PX_WEB_SSE_BACKLOG) {
    flt_log_warn("web: a page does not read its event stream; closing it (it reconnects)");
    client_close(cl);
    return;
  }
  flt_strbuf_init(&out, 0);
  px_web_sse_events(&cl->srv->ctx, cl->filter, &cl->pos, &out);
  char *data = flt_strbuf_detach(&out, &len);
  if (data && len) client_send(cl, data, len);
  else free(data);
}

static void on_batch(uv_timer_t *t) {
  struct px_web *srv = t->data;
  for (client_t *cl = srv->clients, *next; cl; cl = next) {
    next = cl->next;
    if (cl->sse) sse_push(cl);
  }
}

static void on_changed(uv_async_t *a) {
  struct px_web *srv = a->data;
  if (srv->n_sse > 0 && !uv_is_active((uv_handle_t *)&srv->batch))
    uv_timer_start(&srv->batch, on_batch, BATCH_MS, 0);
}

static void on_store_change(void *ud) {
  uv_async_send(ud);
}

static void on_ping(uv_timer_t *t) {
  struct px_web *srv = t->data;
  for (client_t *cl = srv->clients; cl; cl = cl->next) {
    char *ping = cl->sse ? strdup(": ping\n\n") : NULL;
    if (ping) client_send(cl, ping, 8);
  }
}

static void sse_start(client_t *cl, px_web_resp_t *p) {
  struct px_web *srv = cl->srv;
  flt_web_counts_t c;
  cl->sse = 1;
  srv->n_sse++;
  flt_web_store_watch(srv->ctx.o.store, +1);
  cl->filter = srv->ctx.sse_filter;
  srv->ctx.sse_filter = NULL;
  flt_web_store_counts(srv->ctx.o.store, &c);
  cl->pos.after = srv->ctx.sse_after;
  cl->pos.cleared = c.cleared;
  send_resp(cl, p);
  sse_push(cl); /* what there is now, at once */
}

/* ---- requests ------------------------------------------------------------------------ */

static void client_feed(client_t *cl, const char *data, size_t len);
static void client_resume(client_t *cl);

static void on_resent(uv_async_t *a) {
  struct px_web *srv = a->data;
  px_web_resend_job_t *jobs[64];
  int n;
  pthread_mutex_lock(&srv->mu);
  n = srv->n_done;
  memcpy(jobs, srv->done, sizeof(jobs[0]) * (size_t)n);
  srv->n_done = 0;
  pthread_mutex_unlock(&srv->mu);
  for (int i = 0; i < n; i++) {
    const char *r = px_web_resend_result(jobs[i]);
    for (client_t *cl = srv->clients; cl; cl = cl->next) {
      if (cl->waiting != jobs[i]) continue;
      px_web_resp_t p;
      px_web_resp_init(&p);
      px_web_resp_json(&p, 200, r, strlen(r));
      send_resp(cl, &p);
      px_web_resp_free(&p);
      cl->waiting = NULL;
      px_web_req_reset(&cl->req);
      client_resume(cl);
      break;
    }
    px_web_resend_free(jobs[i]);
    atomic_fetch_sub(&srv->resends, 1);
  }
}

/* On the resend's thread. */
static void on_resend_done(px_web_resend_job_t *job, void *ud) {
  struct px_web *srv = ud;
  pthread_mutex_lock(&srv->mu);
  if (srv->stopped || srv->n_done == 64) {
    pthread_mutex_unlock(&srv->mu);
    px_web_resend_free(job);
    atomic_fetch_sub(&srv->resends, 1);
    return;
  }
  srv->done[srv->n_done++] = job;
  uv_async_send(&srv->resent);
  pthread_mutex_unlock(&srv->mu);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Answers one complete request; 1 when the connection waits (resend). */
static int client_answer(client_t *cl) {
  struct px_web *srv = cl->srv;
  px_web_resp_t p;
  int waits = 0;

  px_web_resp_init(&p);
  if (cl->req.error) {
    px_web_resp_error(&p, cl->req.error, cl->req.why ? cl->req.why : "bad request");
    p.close = 1;
  } else {
    px_web_route(&srv->ctx, &cl->req, &p);
    if (!cl->req.keep_alive) p.close = 1;
  }
  if (p.sse) {
    sse_start(cl, &p);
  } else if (p.resend) {
    px_web_resend_job_t *job = srv->ctx.resend;
    srv->ctx.resend = NULL;
    atomic_fetch_add(&srv->resends, 1);
    if (px_web_resend_run(job, on_resend_done, srv) < 0) {
      atomic_fetch_sub(&srv->resends, 1);
      px_web_resend_free(job);
      px_web_resp_json(&p, 200, "{\"ok\":false,\"error\":\"cannot start a thread\"}", 45);
      send_resp(cl, &p);
    } else {
      cl->waiting = job;
      uv_read_stop((uv_stream_t *)&cl->tcp);
      waits = 1;
    }
  } else {
    send_resp(cl, &p);
  }
  px_web_resp_free(&p);
  cl->deadline = cl->sse || waits ? 0 : uv_now(&srv->loop) + PX_WEB_REQUEST_MS;
  return waits;
}

static void client_feed(client_t *cl, const char *data, size_t len) {
  while (!cl->closing && !cl->sse && !cl->close_after_write) {
    size_t used = px_web_req_feed(&cl->req, data, len);
    data += used;
    len -= used;
    if (!cl->req.complete && !cl->req.error) return;
    if (client_answer(cl)) {
      flt_strbuf_append(&cl->rest, data, len);
      return;
    }
    px_web_req_reset(&cl->req);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  client_t *cl = s->data;
  if (nread > 0 && cl->close_after_write) {
    cl->drained += (size_t)nread;
    if (cl->drained > DRAIN_MAX) client_close(cl);
  } else if (nread > 0) {
    client_feed(cl, buf->base, (size_t)nread);
  } else if (nread < 0) {
    client_close(cl);
  }
  free(buf->base);
}

/* Reads again after a resend was answered, the bytes that came after it first. */
static void client_resume(client_t *cl) {
  size_t len;
  char *rest = flt_strbuf_detach(&cl->rest, &len);
  if (cl->closing || cl->close_after_write) {
    free(rest);
    return;
  }
  cl->deadline = uv_now(&cl->srv->loop) + PX_WEB_REQUEST_MS;
  uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
  if (rest && len) client_feed(cl, rest, len);
  free(rest);
}

/* ---- connections --------------------------------------------------------------------- */

/* Bytes that arrived but were not read yet (timers run before the loop
 * reads): a request a browser just sent on a kept-alive connection. */
static int has_unread(client_t *cl) {
  uv_os_fd_t fd;
  char b;
  return uv_fileno((uv_handle_t *)&cl->tcp, &fd) == 0 &&
         recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Closes the connections past their deadline; stops when there are none. */
static void on_idle_sweep(uv_timer_t *t) {
  struct px_web *srv = t->data;
  uint64_t now = uv_now(&srv->loop);
  client_t *cl = srv->clients, *next;

  for (; cl; cl = next) {
    next = cl->next;
    if (cl->deadline && now >= cl->deadline && !cl->sse && !cl->waiting && !has_unread(cl))
      client_close(cl);
  }
  if (srv->clients == NULL) uv_timer_stop(t);
}

static void on_connection(uv_stream_t *l, int status) {
  struct px_web *srv = l->data;
  client_t *cl;

  if (status < 0 || (cl = calloc(1, sizeof(*cl))) == NULL) return;
  cl->srv = srv;
  px_web_req_init(&cl->req);
  flt_strbuf_init(&cl->rest, PX_WEB_MAX_HEAD + PX_WEB_MAX_BODY);
  uv_tcp_init(&srv->loop, &cl->tcp);
  cl->tcp.data = cl;
  cl->next = srv->clients;
  srv->clients = cl;
  srv->n_clients++;
  cl->deadline = uv_now(&srv->loop) + PX_WEB_REQUEST_MS;
  if (!uv_is_active((uv_handle_t *)&srv->idle)) uv_timer_start(&srv->idle, on_idle_sweep, 1000, 1000);
  if (uv_accept(l, (uv_stream_t *)&cl->tcp) < 0) {
    client_close(cl);
    return;
  }
  if (srv->n_clients > PX_WEB_MAX_CLIENTS) {
    px_web_resp_t p;
    px_web_resp_init(&p);
    px_web_resp_error(&p, 503, "too many browser connections");
    p.close = 1;
    send_resp(cl, &p);
    px_web_resp_free(&p);
    return;
  }
  uv_read_start((uv_stream_t *)&cl->tcp, on_alloc, on_read);
}

static void on_stop(uv_async_t *a) {
  struct px_web *srv = a->data;
  while (srv->clients) client_close(srv->clients);
  uv_close((uv_handle_t *)&srv->listener, NULL);
  uv_close((uv_handle_t *)&srv->changed, NULL);
  uv_close((uv_handle_t *)&srv->stop, NULL);
  uv_close((uv_handle_t *)&srv->resent, NULL);
  uv_close((uv_handle_t *)&srv->batch, NULL);
  uv_close((uv_handle_t *)&srv->ping, NULL);
  uv_close((uv_handle_t *)&srv->idle, NULL);
}

static void web_main(void *arg) {
  struct px_web *srv = arg;
  uv_run(&srv->loop, UV_RUN_DEFAULT);
}

/* ---- start and stop -------------------------------------------------------------------- */

int px_web_parse_addr(const char *spec, px_web_opts_t *o, char *err, size_t errlen) {
  const char *colon = strrchr(spec, ':');
  const char *port = colon ? colon + 1 : spec;
  char *end;
  unsigned long p = strtoul(port, &end, 10);

  if (*port == '\0' || *end || p > 65535 || (colon && colon == spec)) {
    snprintf(err, errlen, "--web '%s': expected [HOST:]PORT, e.g. 8081 or 127.0.0.1:8081", spec);
    return -1;
  }
  o->port = (uint16_t)p;
  if (colon == NULL) {
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
  } else if (spec[0] == '[' && colon[-1] == ']') {
    snprintf(o->host, sizeof(o->host), "%.*s", (int)(colon - spec - 2), spec + 1);
  } else {
    snprintf(o->host, sizeof(o->host), "%.*s", (int)(colon - spec), spec);
  }
  if (strcmp(o->host, "localhost") == 0) snprintf(o->host, sizeof(o->host), "127.0.0.1");
  struct in6_addr a6;
  struct in_addr a4;
  if (inet_pton(AF_INET, o->host, &a4) != 1 && inet_pton(AF_INET6, o->host, &a6) != 1) {
    snprintf(err, errlen, "--web '%s': HOST must be an IP address or localhost", spec);
    return -1;
  }
  return 0;
}

static int is_loopback(const char *host) {
  return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

static int web_listen(struct px_web *srv, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  int len = sizeof(ss), rc;
  const char *host = srv->ctx.o.host;
  int v6 = strchr(host, ':') != NULL;

  rc = v6 ? uv_ip6_addr(host, srv->ctx.o.port, (struct sockaddr_in6 *)&ss)
          : uv_ip4_addr(host, srv->ctx.o.port, (struct sockaddr_in *)&ss);
  if (rc == 0) rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->listener, 64, on_connection);
  if (rc == 0) rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
  if (rc < 0) {
    snprintf(err, errlen, "web: cannot listen on %s%s%s:%u: %s", v6 ? "[" : "", host, v6 ? "]" : "",
             (unsigned)srv->ctx.o.port, uv_strerror(rc));
    return -1;
  }
  srv->ctx.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
  snprintf(srv->ctx.bound, sizeof(srv->ctx.bound), "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
           (unsigned)srv->ctx.port);
  return 0;
}

static int web_token(char token[33]) {
  unsigned char r[16];
  if (RAND_bytes(r, sizeof(r)) != 1) return -1;
  for (int i = 0; i < 16; i++) snprintf(token + 2 * i, 3, "%02x", r[i]);
  return 0;
}

px_web_t *px_web_start(const px_web_opts_t *o, char *err, size_t errlen) {
  struct px_web *srv = calloc(1, sizeof(*srv));
  if (srv == NULL || web_token(srv->ctx.token) < 0) {
    snprintf(err, errlen, "web: %s", srv ? "cannot make a token (RAND_bytes)" : "out of memory");
    free(srv);
    return NULL;
  }
  srv->ctx.o = *o;
  pthread_mutex_init(&srv->mu, NULL);
  atomic_init(&srv->resends, 0);
  uv_loop_init(&srv->loop);
  uv_tcp_init(&srv->loop, &srv->listener);
  srv->listener.data = srv;
  if (web_listen(srv, err, errlen) < 0) {
    uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv->loop);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    return NULL;
  }
  uv_async_init(&srv->loop, &srv->changed, on_changed);
  uv_async_init(&srv->loop, &srv->stop, on_stop);
  uv_async_init(&srv->loop, &srv->resent, on_resent);
  uv_timer_init(&srv->loop, &srv->batch);
  uv_timer_init(&srv->loop, &srv->ping);
  uv_timer_init(&srv->loop, &srv->idle);
  srv->changed.data = srv->stop.data = srv->resent.data = srv;
  srv->batch.data = srv->ping.data = srv->idle.data = srv;
  uv_timer_start(&srv->ping, on_ping, PING_MS, PING_MS);
  flt_web_store_set_notify(o->store, on_store_change, &srv->changed);
  if (o->file == NULL) px_icpt_set_notify(on_store_change, &srv->changed);
  if (!is_loopback(o->host))
    flt_log_warn("web: listening on %s, not loopback: anyone who can reach it and learns the "
                 "token reads every flow", srv->ctx.bound);
  fprintf(stderr, "tlspeek: web: http://%s/?token=%s\n", srv->ctx.bound, srv->ctx.token);
  fflush(stderr);
  if (uv_thread_create(&srv->thread, web_main, srv) != 0) {
    snprintf(err, errlen, "web: cannot start its thread");
    return NULL; /* the process exits */
  }
  return srv;
}

void px_web_stop(px_web_t *srv) {
  if (srv == NULL) return;
  flt_web_store_set_notify(srv->ctx.o.store, NULL, NULL);
  if (srv->ctx.o.file == NULL) px_icpt_set_notify(NULL, NULL);
  uv_async_send(&srv->stop);
  uv_thread_join(&srv->thread);
  pthread_mutex_lock(&srv->mu);
  srv->stopped = 1;
  for (int i = 0; i < srv->n_done; i++) {
    px_web_resend_free(srv->done[i]);
    atomic_fetch_sub(&srv->resends, 1);
  }
  srv->n_done = 0;
  pthread_mutex_unlock(&srv->mu);
  /* A resend ends within its timeout; the proxy it talks to has stopped. */
  while (atomic_load(&srv->resends) > 0) usleep(10000);
  uv_loop_close(&srv->loop);
  flt_expr_free(srv->ctx.sse_filter);
  pthread_mutex_destroy(&srv->mu);
  free(srv);
}
