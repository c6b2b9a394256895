/* h2.c — the `h2` codec (h2.h): nghttp2's session API behind the codec
 * interface. nghttp2 decodes frames and HPACK; this file keeps one small
 * record per stream (the head received, the bytes waiting to go out) and
 * turns nghttp2's callbacks into the sink's events. */
#include "proxy/codec/h2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "proxy/codec/h2_internal.h"

static h2_t *h2_of(px_codec_t *c) {
  return (h2_t *)c;
}

/* ---- streams -------------------------------------------------------------------------- */

h2_stream_t *px_h2_stream(h2_t *h, int32_t id) {
  return h->ng ? nghttp2_session_get_stream_user_data(h->ng, id) : NULL;
}

static h2_stream_t *stream_new(h2_t *h, int32_t id) {
  h2_stream_t *st = calloc(1, sizeof(*st));
  if (st == NULL) return NULL;
  st->id = id;
  flt_strbuf_init(&st->hbuf, PX_H2_MAX_HEADER_LIST + 1024);
  flt_strbuf_init(&st->out, 0); /* bounded by the flow-control windows */
  st->next = h->streams;
  h->streams = st;
  h->n_streams++;
  return st;
}

static void stream_free(h2_t *h, h2_stream_t *st) {
  for (h2_stream_t **p = &h->streams; *p; p = &(*p)->next)
    if (*p == st) {
      *p = st->next;
      break;
    }
  h->n_streams--;
  flt_strbuf_free(&st->hbuf);
  flt_strbuf_free(&st->out);
  free(st->head);
  free(st->trl_store);
  free(st);
}

void px_h2_stream_drop(h2_t *h, h2_stream_t *st) {
  stream_free(h, st);
}

/* ---- output ----------------------------------------------------------------------------- */

/* Everything nghttp2 wants to send goes to io->send; never from inside one
 * of nghttp2's callbacks (depth), where the caller's loop picks it up. */
void px_h2_flush(h2_t *h) {
  if (h->depth > 0 || h->ng == NULL) return;
  h->depth++;
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(h->ng, &data);
    if (n < 0) {
      snprintf(h->err, sizeof(h->err), "HTTP/2 send failed: %s", nghttp2_strerror((int)n));
      h->failed = 1;
      break;
    }
    if (n == 0) break;
    h->io->send(h->base.owner, &h->base, (const char *)data, (size_t)n);
  }
  h->depth--;
}

static ssize_t on_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud) {
  h2_t *h = ud;
  h2_stream_t *st = src->ptr;
  (void)ng;
  size_t avail = st->out.len - st->out_off;
  size_t n = avail < length ? avail : length;
  if (n == 0 && !st->out_end) {
    st->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (n > 0) memcpy(buf, st->out.data + st->out_off, n);
  st->out_off += n;
  if (st->out_off == st->out.len) {
    st->out.len = st->out_off = 0;
  } else if (st->out_off > 64 * 1024 && st->out_off * 2 > st->out.len) {
    memmove(st->out.data, st->out.data + st->out_off, st->out.len - st->out_off);
    st->out.len -= st->out_off;
    st->out_off = 0;
  }
  if (st->out_end && st->out.len == st->out_off) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (st->trl && nghttp2_submit_trailer(ng, id, st->trl, st->n_trl) == 0)
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  }
  if (n > 0) h->io->on_sent(h->base.owner, &h->base, (uint32_t)id, n);
  return (ssize_t)n;
}

nghttp2_data_provider px_h2_provider(h2_stream_t *st) {
  nghttp2_data_provider p;
  p.source.ptr = st;
  p.read_callback = on_data_read;
  return p;
}

/* ---- input -------------------------------------------------------------------------------- */

static int h2_input(px_codec_t *c, const char *data, size_t len) {
  h2_t *h = h2_of(c);
  if (h->failed) return -1;
  h->depth++;
  ssize_t n = nghttp2_session_mem_recv(h->ng, (const uint8_t *)data, len);
  h->depth--;
  if (n < 0 && !h->failed) {
    snprintf(h->err, sizeof(h->err), "%s%s", nghttp2_strerror((int)n),
             n == NGHTTP2_ERR_BAD_CLIENT_MAGIC ? " (not the HTTP/2 connection preface)" : "");
    nghttp2_session_terminate_session(h->ng, NGHTTP2_PROTOCOL_ERROR);
    h->failed = 1;
    px_h2_flush(h);
    c->sink->on_error(c->owner, c, 0, h->err);
    return -1;
  }
  px_h2_flush(h);
  if (h->failed) {
    if (!h->told) {
      h->told = 1;
      c->sink->on_error(c->owner, c, 0, h->err);
    }
    return -1;
  }
  return 0;
}

static int h2_eof(px_codec_t *c) {
  h2_t *h = h2_of(c);
  if (h->n_streams == 0) return 0;
  snprintf(h->err, sizeof(h->err), "the connection closed with %zu HTTP/2 stream%s open",
           h->n_streams, h->n_streams == 1 ? "" : "s");
  return -1;
}

static int h2_nothing(px_codec_t *c) {
  (void)c;
  return 0;
}

static void h2_void(px_codec_t *c) {
  (void)c;
}

static px_codec_phase_t h2_phase(const px_codec_t *c) {
  const h2_t *h = (const h2_t *)c;
  if (h->failed) return PX_CODEC_FAILED;
  return h->n_streams ? PX_CODEC_BODY : PX_CODEC_IDLE;
}

static const char *h2_error(const px_codec_t *c) {
  return ((const h2_t *)c)->err;
}

static void h2_refuse(px_codec_t *c, uint32_t stream, const char *why) {
  h2_t *h = h2_of(c);
  (void)why;
  nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, (int32_t)stream, NGHTTP2_REFUSED_STREAM);
}

static void h2_head_view(px_codec_t *c, uint32_t stream, flt_head_t *out) {
  h2_stream_t *st = px_h2_stream(h2_of(c), (int32_t)stream);
  if (st && st->head)
    *out = *st->head;
  else
    memset(out, 0, sizeof(*out));
}

static flt_head_t *h2_head_copy(px_codec_t *c, uint32_t stream) {
  h2_stream_t *st = px_h2_stream(h2_of(c), (int32_t)stream);
  return st && st->head ? px_head_copy(st->head) : NULL;
}

/* An HTTP/2 head is never forwarded as bytes: the session rebuilds it. */
static int h2_head_build(px_codec_t *c, uint32_t stream, const px_head_edit_t *e,
                         flt_strbuf_t *out) {
  h2_stream_t *st = px_h2_stream(h2_of(c), (int32_t)stream);
  if (st == NULL || st->head == NULL || st->head->method == NULL || st->head->method[0] == '\0')
    return -1;
  return px_h2_head_to_http1(st->head, e, !st->ended_with_head, out);
}

static int h2_head_hop(px_codec_t *c, uint32_t stream) {
  (void)c, (void)stream;
  return 0; /* RFC 9113 §8.2.2: nghttp2 refuses connection-specific fields */
}

static void h2_free(px_codec_t *c) {
  h2_t *h = h2_of(c);
  if (h->ng) nghttp2_session_del(h->ng); /* frees nothing of ours */
  while (h->streams)
    stream_free(h, h->streams);
  free(h);
}

/* An h2 upstream leg is pinned (session_h2.c): never reconnected, so its
 * connection state is never forgotten while the codec lives. */
static void h2_reset_conn(px_codec_t *c) {
  (void)c;
}

static const px_codec_ops_t h2_ops = {
    .name = "h2",
    .input = h2_input,
    .eof = h2_eof,
    .release = h2_nothing,
    .resume = h2_nothing,
    .set_raw = h2_void,
    .phase = h2_phase,
    .trim = h2_void,
    .reset = h2_reset_conn,
    .error = h2_error,
    .refuse = h2_refuse,
    .head_view = h2_head_view,
    .head_copy = h2_head_copy,
    .head_build = h2_head_build,
    .head_has_hop_by_hop = h2_head_hop,
    .free = h2_free,
};

int px_codec_is_h2(const px_codec_t *c) {
  return c && c->ops == &h2_ops;
}

/* ---- nghttp2's callbacks --------------------------------------------------------------- */

/* http_parser's method number for a method name (HTTP_GET ...), -1 when
 * it has none. */
static int method_number(const char *name) {
  for (int m = 0; m <= HTTP_SOURCE; m++)
    if (strcmp(http_method_str((enum http_method)m), name) == 0) return m;
  return -1;
}

/* The header list is in a head copy now: its buffer goes back (a stream
 * that streams for hours keeps no 64 KiB of it). */
static void list_done(h2_stream_t *st) {
  flt_strbuf_free(&st->hbuf);
  flt_strbuf_init(&st->hbuf, PX_H2_MAX_HEADER_LIST + 1024);
  st->n_fields = 0;
}

static int trailers_in(h2_t *h, h2_stream_t *st) {
  flt_header_t *fields = calloc(st->n_fields + 1, sizeof(*fields));
  flt_head_t t;
  if (fields == NULL) return NGHTTP2_ERR_CALLBACK_FAILURE;
  px_h2_head_from_list(st, 0, fields, &t);
  t.status = 0;
  h->io->on_trailers(h->base.owner, &h->base, (uint32_t)st->id, &t);
  free(fields);
  list_done(st);
  return 0;
}

/* A complete head: kept (the views read it until the stream closes) and
 * reported. */
static int head_in(h2_t *h, h2_stream_t *st, int end_stream) {
  flt_header_t *fields = calloc(st->n_fields + 1, sizeof(*fields));
  flt_head_t view;
  if (fields == NULL) return NGHTTP2_ERR_CALLBACK_FAILURE;
  px_h2_head_from_list(st, h->server, fields, &view);
  flt_head_t *copy = px_head_copy(&view);
  free(fields);
  list_done(st);
  if (copy == NULL) return NGHTTP2_ERR_CALLBACK_FAILURE;
  free(st->head);
  st->head = copy;
  int interim = !h->server && copy->status >= 100 && copy->status < 200;
  if (!interim) st->final_head = 1;
  st->ended_with_head = end_stream;
  if (end_stream) st->remote_end = 1;
  px_codec_head_t hd;
  memset(&hd, 0, sizeof(hd));
  hd.stream = (uint32_t)st->id;
  hd.request = h->server;
  hd.raw = "";
  hd.method = copy->method ? method_number(copy->method) : -1;
  hd.status = copy->status;
  hd.target = copy->url ? copy->url : "";
  hd.target_len = strlen(hd.target);
  int rc = h->base.sink->on_head(h->base.owner, &h->base, &hd);
  if (rc < 0) {
    nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  /* The stream may have been reset by on_head: look it up again. */
  if (end_stream && !interim && px_h2_stream(h, (int32_t)hd.stream))
    h->base.sink->on_end(h->base.owner, &h->base, hd.stream);
  return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  h2_t *h = ud;
  h2_stream_t *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
  int end_stream = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (f->hd.type == NGHTTP2_GOAWAY && h->io->on_goaway)
    h->io->on_goaway(h->base.owner, &h->base, f->goaway.error_code);
  if (st == NULL) return 0;
  if (f->hd.type == NGHTTP2_HEADERS) {
    if (st->final_head) {
      int rc = trailers_in(h, st);
      if (rc == 0 && end_stream) {
        st->remote_end = 1;
        h->base.sink->on_end(h->base.owner, &h->base, (uint32_t)st->id);
      }
      return rc;
    }
    return head_in(h, st, end_stream);
  }
  if (f->hd.type == NGHTTP2_DATA && end_stream) {
    st->remote_end = 1;
    h->base.sink->on_end(h->base.owner, &h->base, (uint32_t)st->id);
  }
  return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  h2_t *h = ud;
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  h2_stream_t *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
  if (st == NULL) {
    if (!h->server) return 0; /* a push: refused by SETTINGS, nghttp2 resets it */
    st = stream_new(h, f->hd.stream_id);
    if (st == NULL) return NGHTTP2_ERR_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
  }
  st->hbuf.len = 0;
  st->n_fields = 0;
  return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
  h2_t *h = ud;
  (void)flags;
  h2_stream_t *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
  if (st == NULL) return 0;
  /* RFC 9113 §10.5.1: the size counts 32 bytes per field. */
  if (st->hbuf.len + 32 * (st->n_fields + 1) + namelen + valuelen > PX_H2_MAX_HEADER_LIST ||
      st->n_fields >= PX_H2_MAX_FIELDS) {
    if (h->io->on_refused)
      h->io->on_refused(h->base.owner, &h->base, (uint32_t)f->hd.stream_id,
                        "its header list is over " PX_H2_MAX_HEADER_LIST_TEXT
                        " (SETTINGS_MAX_HEADER_LIST_SIZE)");
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets that stream only */
  }
  if (flt_strbuf_append(&st->hbuf, (const char *)name, namelen) != 0 ||
      flt_strbuf_append(&st->hbuf, "\0", 1) != 0 ||
      flt_strbuf_append(&st->hbuf, (const char *)value, valuelen) != 0 ||
      flt_strbuf_append(&st->hbuf, "\0", 1) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  st->n_fields++;
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud) {
  h2_t *h = ud;
  (void)flags;
  h2_stream_t *st = nghttp2_session_get_stream_user_data(ng, id);
  if (st == NULL) {
    nghttp2_session_consume(ng, id, len);
    return 0;
  }
  st->unconsumed += len;
  h->base.sink->on_body(h->base.owner, &h->base, (uint32_t)id, (const char *)data, len);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud) {
  h2_t *h = ud;
  h2_stream_t *st = nghttp2_session_get_stream_user_data(ng, id);
  if (st == NULL) return 0;
  nghttp2_session_set_stream_user_data(ng, id, NULL);
  if (st->unconsumed) nghttp2_session_consume_connection(ng, st->unconsumed);
  stream_free(h, st);
  h->io->on_close(h->base.owner, &h->base, (uint32_t)id, code);
  return 0;
}

static int on_error2(nghttp2_session *ng, int code, const char *msg, size_t len, void *ud) {
  h2_t *h = ud;
  (void)ng, (void)code;
  snprintf(h->err, sizeof(h->err), "%.*s", (int)len, msg);
  return 0;
}

/* We end the connection with an error code (nghttp2 does, on a protocol
 * error it found): the sink hears why, once. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud) {
  h2_t *h = ud;
  (void)ng;
  if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR) {
    h->failed = 1;
    if (h->err[0] == '\0')
      snprintf(h->err, sizeof(h->err), "%s", nghttp2_http2_strerror(f->goaway.error_code));
  }
  return 0;
}

static int make_session(h2_t *h) {
  nghttp2_session_callbacks *cb;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cb) != 0) return -1;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return -1;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(cb, on_error2);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  int rc = h->server ? nghttp2_session_server_new2(&h->ng, cb, h, opt)
                     : nghttp2_session_client_new2(&h->ng, cb, h, opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  if (rc != 0) return -1;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, PX_H2_MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PX_H2_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, PX_H2_MAX_HEADER_LIST},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  size_t n = h->server ? 3 : 4; /* ENABLE_PUSH is a client's setting */
  if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, n) != 0 ||
      nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, PX_H2_CONN_WINDOW) != 0)
    return -1;
  return 0;
}

px_codec_t *px_codec_h2_new(int server, const px_codec_sink_t *sink, const px_h2_io_t *io,
                            void *owner) {
  h2_t *h = calloc(1, sizeof(*h));
  if (h == NULL) return NULL;
  h->base.ops = &h2_ops;
  h->base.sink = sink;
  h->base.owner = owner;
  h->io = io;
  h->server = server;
  if (make_session(h) != 0) {
    h2_free(&h->base);
    return NULL;
  }
  return &h->base;
}

/* ---- what the owner sends ------------------------------------------------------------- */

int px_h2_stream_open(h2_t *h, int32_t id, h2_stream_t **out) {
  h2_stream_t *st = stream_new(h, id);
  if (st == NULL) return -1;
  *out = st;
  return 0;
}

int px_h2_data(px_codec_t *c, uint32_t stream, const char *data, size_t len) {
  h2_t *h = h2_of(c);
  h2_stream_t *st = px_h2_stream(h, (int32_t)stream);
  if (st == NULL || st->out_end) return -1;
  if (flt_strbuf_append(&st->out, data, len) != 0) return -1;
  if (st->deferred) {
    st->deferred = 0;
    nghttp2_session_resume_data(h->ng, st->id);
  }
  px_h2_flush(h);
  return 0;
}

int px_h2_end(px_codec_t *c, uint32_t stream, const flt_head_t *trailers) {
  h2_t *h = h2_of(c);
  h2_stream_t *st = px_h2_stream(h, (int32_t)stream);
  if (st == NULL || st->out_end) return -1;
  st->out_end = 1;
  if (trailers && trailers->n_headers > 0) {
    flt_head_t t = *trailers;
    t.method = NULL, t.url = NULL, t.status = 0; /* no pseudo-headers in trailers */
    if (px_h2_nv_build(&t, NULL, NULL, NULL, &st->trl, &st->n_trl, &st->trl_store) != 0) return -1;
  }
  if (st->deferred) {
    st->deferred = 0;
    nghttp2_session_resume_data(h->ng, st->id);
  }
  px_h2_flush(h);
  return 0;
}

void px_h2_reset(px_codec_t *c, uint32_t stream, uint32_t code) {
  h2_t *h = h2_of(c);
  nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, (int32_t)stream, code);
  px_h2_flush(h);
}

void px_h2_consume(px_codec_t *c, uint32_t stream, size_t len) {
  h2_t *h = h2_of(c);
  h2_stream_t *st = px_h2_stream(h, (int32_t)stream);
  if (st == NULL) return;
  if (len > st->unconsumed) len = st->unconsumed;
  st->unconsumed -= len;
  nghttp2_session_consume(h->ng, (int32_t)stream, len);
  px_h2_flush(h);
}

void px_h2_goaway(px_codec_t *c, uint32_t code) {
  h2_t *h = h2_of(c);
  nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                        code, NULL, 0);
  px_h2_flush(h);
}

void px_h2_flush_codec(px_codec_t *c) {
  px_h2_flush(h2_of(c));
}

int px_h2_ended_with_head(px_codec_t *c, uint32_t stream) {
  h2_stream_t *st = px_h2_stream(h2_of(c), (int32_t)stream);
  return st ? st->ended_with_head : 1;
}

size_t px_h2_queued(px_codec_t *c, uint32_t stream) {
  h2_stream_t *st = px_h2_stream(h2_of(c), (int32_t)stream);
  return st ? st->out.len - st->out_off : 0;
}

size_t px_h2_open_streams(const px_codec_t *c) {
  return ((const h2_t *)c)->n_streams;
}

int px_h2_done(const px_codec_t *c) {
  const h2_t *h = (const h2_t *)c;
  return h->failed || (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng));
}
