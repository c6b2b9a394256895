/* leg.c — one side of a session: its socket, its TLS, its writes (leg.h).
 *
 * Nothing here knows what the bytes mean or which side the leg is: the
 * owner is told through leg->ops, and decides. */
#include "proxy/leg.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

typedef struct px_leg_wreq {
  uv_write_t req;
  px_leg_t *leg;
  void *buf;
} px_leg_wreq_t;

static px_leg_t *leg_of(void *handle) {
  return (px_leg_t *)handle; /* tcp is the first member */
}

void px_leg_init(px_leg_t *leg, flt_leg_t side, const px_leg_ops_t *ops, void *owner, char *readbuf,
                 size_t pending_cap) {
  memset(leg, 0, sizeof(*leg));
  leg->side = side;
  leg->ops = ops;
  leg->owner = owner;
  leg->readbuf = readbuf;
  leg->tcp.data = owner;
  flt_strbuf_init(&leg->batch, 0);
  flt_strbuf_init(&leg->pending, pending_cap);
}

void px_leg_free(px_leg_t *leg) {
  px_tls_free(&leg->tls);
  flt_strbuf_free(&leg->batch);
  flt_strbuf_free(&leg->pending);
}

int px_leg_open(px_leg_t *leg, uv_loop_t *loop, unsigned family) {
  int rc = uv_tcp_init_ex(loop, &leg->tcp, family);
  if (rc < 0) return rc;
  leg->tcp.data = leg->owner;
  leg->tcp_open = 1;
  return 0;
}

int px_leg_close(px_leg_t *leg, uv_close_cb cb) {
  if (!leg->tcp_open || uv_is_closing((uv_handle_t *)&leg->tcp)) return 0;
  uv_close((uv_handle_t *)&leg->tcp, cb);
  return 1;
}

void px_leg_closed(px_leg_t *leg) {
  leg->tcp_open = 0;
  leg->wanted = 0;
}

/* ---- reading ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  /* One buffer per loop: every read is consumed before the next one. */
  px_leg_t *leg = leg_of(h);
  buf->base = leg->readbuf;
  buf->len = PX_LEG_READ_BUF;
  if (leg->budgeted && leg->budget < (int64_t)buf->len) /* throttled: no more than is left */
    buf->len = leg->budget > 0 ? (size_t)leg->budget : 1;
}

static int budget_ok(const px_leg_t *leg) {
  return !leg->budgeted || leg->budget >= (int64_t)leg->budget_min;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  px_leg_t *leg = leg_of(stream);
  if (nread == 0) return;
  if (nread > 0 && leg->budgeted) {
    leg->budget -= nread;
    if (!budget_ok(leg) && !leg->paused) { /* until px_leg_set_budget tops it up */
      leg->paused = 1;
      uv_read_stop(stream);
    }
  }
  leg->ops->on_read(leg, nread, buf->base);
}

int px_leg_read_start(px_leg_t *leg) {
  leg->wanted = 1;
  leg->paused = 0;
  if (!budget_ok(leg)) {
    leg->paused = 1;
    return 0;
  }
  return uv_read_start((uv_stream_t *)&leg->tcp, on_alloc, on_read);
}

void px_leg_set_budget(px_leg_t *leg, int on, int64_t add, int64_t cap, size_t min) {
  leg->budgeted = on;
  leg->budget = on ? leg->budget + add : 0;
  if (leg->budget > cap) leg->budget = cap;
  leg->budget_min = min;
  if (leg->tcp_open && leg->wanted && !uv_is_closing((uv_handle_t *)&leg->tcp))
    px_leg_want_read(leg, 1);
}

void px_leg_want_read(px_leg_t *leg, int want) {
  leg->wanted = want;
  if (!budget_ok(leg)) want = 0;
  if (want && leg->paused) {
    leg->paused = 0;
    uv_read_start((uv_stream_t *)&leg->tcp, on_alloc, on_read);
  } else if (!want && !leg->paused) {
    leg->paused = 1;
    uv_read_stop((uv_stream_t *)&leg->tcp);
  }
}

int px_leg_room(const px_leg_t *leg, size_t queued, size_t low, size_t high) {
  return leg->paused ? queued < low : queued < high;
}

size_t px_leg_queued(const px_leg_t *leg) {
  return leg->tcp_open ? uv_stream_get_write_queue_size((const uv_stream_t *)&leg->tcp) : 0;
}

px_leg_read_t px_leg_tls_read(px_leg_t *leg) {
  for (;;) {
    size_t have = 0, n = 0;
    int e = SSL_ERROR_NONE;
    if (!leg->ops->may_read(leg)) return PX_LEG_READ_STOPPED;
    /* The ciphertext in the read buffer has already gone to OpenSSL. Every
     * record it holds is decrypted before the owner sees the plaintext, in
     * one piece: what the owner sends in answer (an HTTP/2 leg's frames of
     * many streams) then leaves in one write, not one per record. */
    while (have < PX_LEG_READ_BUF) {
      if (!SSL_read_ex(leg->tls.ssl, leg->readbuf + have, PX_LEG_READ_BUF - have, &n)) {
        e = SSL_get_error(leg->tls.ssl, 0);
        break;
      }
      have += n;
    }
    if (have > 0) {
      leg->ops->on_plaintext(leg, leg->readbuf, have);
      if (e != SSL_ERROR_WANT_READ && !leg->ops->may_read(leg)) return PX_LEG_READ_STOPPED;
    }
    if (e == SSL_ERROR_NONE) continue; /* the buffer was full: more may wait */
    if (e == SSL_ERROR_WANT_READ) return PX_LEG_READ_AGAIN;
    return e == SSL_ERROR_ZERO_RETURN ? PX_LEG_READ_CLOSED : PX_LEG_READ_ERROR;
  }
}

/* ---- writing ------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
  px_leg_wreq_t *wr = (px_leg_wreq_t *)req;
  px_leg_t *leg = wr->leg;
  free(wr->buf);
  free(wr);
  leg->writes--;
  leg->ops->on_written(leg, status, 0);
}

int px_leg_write_owned(px_leg_t *leg, void *buf, size_t len) {
  px_leg_wreq_t *wr = malloc(sizeof(*wr));
  if (wr == NULL) {
    free(buf);
    return UV_ENOMEM;
  }
  wr->leg = leg;
  wr->buf = buf;
  if (leg->ops->on_wire_out) leg->ops->on_wire_out(leg, buf, len);
  uv_buf_t b = uv_buf_init(buf, (unsigned)len);
  int rc = uv_write(&wr->req, (uv_stream_t *)&leg->tcp, &b, 1, on_write);
  if (rc < 0) {
    free(buf);
    free(wr);
    return rc;
  }
  leg->writes++;
  return 0;
}

int px_leg_flush_tls(px_leg_t *leg) {
  size_t len;
  void *out;
  while ((out = px_tls_take_output(&leg->tls, &len)) != NULL) {
    int rc = px_leg_write_owned(leg, out, len);
    if (rc < 0) return rc;
  }
  return 0;
}

int px_leg_send(px_leg_t *leg, const void *data, size_t len) {
  if (leg->tls.ssl) {
    size_t done = 0;
    if (px_tls_wake(&leg->tls) != 0) return UV_ENOMEM;
    if (!SSL_write_ex(leg->tls.ssl, data, len, &done) || done != len) return -1;
    return px_leg_flush_tls(leg);
  }
  void *copy = malloc(len ? len : 1);
  if (copy == NULL) return UV_ENOMEM;
  memcpy(copy, data, len);
  return px_leg_write_owned(leg, copy, len);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  px_leg_t *leg = req->data;
  free(req);
  leg->writes--;
  leg->ops->on_written(leg, status, 1);
}

int px_leg_shutdown(px_leg_t *leg, int notify) {
  if (notify && leg->tls.ssl && SSL_is_init_finished(leg->tls.ssl) &&
      !(SSL_get_shutdown(leg->tls.ssl) & SSL_SENT_SHUTDOWN)) {
    if (px_tls_wake(&leg->tls) != 0) return UV_ENOMEM;
    SSL_shutdown(leg->tls.ssl);
    int rc = px_leg_flush_tls(leg);
    if (rc < 0) return rc;
  }
  uv_shutdown_t *req = malloc(sizeof(*req));
  if (req == NULL) return UV_ENOMEM;
  req->data = leg;
  int rc = uv_shutdown(req, (uv_stream_t *)&leg->tcp, on_shutdown);
  if (rc < 0) {
    free(req);
    return rc;
  }
  leg->writes++;
  return 0;
}

int px_leg_tls_close_now(px_leg_t *leg) {
  SSL *ssl = leg->tls.ssl;
  if (ssl == NULL || !SSL_is_init_finished(ssl) || (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
    return 0;
  if (px_tls_wake(&leg->tls) != 0 || SSL_shutdown(ssl) < 0) {
    ERR_clear_error();
    return 0;
  }
  size_t len;
  void *out = px_tls_take_output(&leg->tls, &len);
  int n = 0;
  if (out == NULL) return 0;
  if (leg->tcp_open && !uv_is_closing((uv_handle_t *)&leg->tcp)) {
    uv_buf_t b = uv_buf_init(out, (unsigned)len);
    n = uv_try_write((uv_stream_t *)&leg->tcp, &b, 1);
    if (n > 0 && leg->ops->on_wire_out) leg->ops->on_wire_out(leg, out, (size_t)n);
  }
  free(out);
  return n > 0 ? n : 0;
}

flt_strbuf_t px_leg_batch_take(px_leg_t *leg) {
  flt_strbuf_t b = leg->batch;
  leg->batching = 0;
  flt_strbuf_init(&leg->batch, 0);
  return b;
}
