/* console.c — the flow view filter (console.h; README.md, "What is shown").
 *
 * Per flow, everything the view needs is collected in a con_flow_t hung on
 * f->fctx[slot]: heads are rendered when they arrive (their header arrays
 * are only borrowed for the call), bodies are decoded as they stream in.
 * At detail >= 2 the request part is queued when its head goes upstream;
 * the rest (or, with -f, everything) is assembled and queued in one piece
 * at flow end. Per-conn state (raw stream counters, connection errors and
 * flows waiting for the client's verdict) lives on c->fctx[slot]. Both are
 * touched only by the connection's own worker thread; the only shared
 * object is the output, which is thread-safe.
 */
#include "filters/console/console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "filters/console/console_internal.h"
#include "filters/util/hexdump.h"
#include "filters/util/log.h"
#include "filters/util/output.h"

#define CON_DEFAULT_BODY_LIMIT 4096
/* One rendered head: far above any header block the proxy accepts, even
 * with every byte escaped. */
#define CON_HEAD_CAP (1024u * 1024)
/* A flow's block: two heads, and two bodies rendered at most ~5x (hexdump)
 * or 8x (pretty JSON) their size. Reaching it is a bug worth a warning. */
#define CON_BLOCK_BASE (4u * 1024 * 1024)
#define CON_BLOCK_PER_BODY_BYTE 16
/* Decoded bytes counted per response for its size, at most: past it (a
 * decompression bomb, or just a big download) the decoded size is "?". */
#define CON_COUNT_MAX (256ull * 1024 * 1024)

#define ARROW " \xe2\x86\x92 " /* " → " */
#define RAW_MARK " \xe2\x87\x84 raw " /* " ⇄ raw " */
#define ERR_MARK " \xe2\x9c\x97 " /* " ✗ " */
#define ELLIPSIS "\xe2\x80\xa6" /* "…" */

typedef struct flt_console {
  int detail;
  size_t body_limit;
  int color;          /* resolved: 0 or 1 */
  int slot;           /* index into fctx[]; -1 until set */
  int filtered;       /* -f is set: flows are shown at their end */
  size_t block_cap;
  flt_output_t *out;
} flt_console_t;

typedef struct con_flow {
  char method[64];
  char media[128];          /* response media type, for the summary line */
  char coding[64];          /* response Content-Encoding (made safe), or "" */
  flt_decoder_t *counter;   /* counts the decoded response bytes */
  int count_failed;         /* decoding failed, or passed CON_COUNT_MAX */
  int req_shown;            /* the request part was queued at its head */
  flt_strbuf_t heads[2];    /* rendered heads (detail >= 2), by flt_dir_t */
  flt_con_body_t bodies[2]; /* detail >= 3, by flt_dir_t */
  int has_body[2];          /* bodies[dir] is initialised */
  size_t interim_shown;     /* f->interim heads rendered into heads[1] */
} con_flow_t;

/* A flow that ended after the client's EOF: whether the client took the
 * answer is known when the connection closes (flt_conn_t.client_gone_us). */
typedef struct con_held_flow {
  char *line[2];            /* summary: [0] answered, [1] aborted */
  size_t line_len[2];
  char *rest;               /* the rest of its block (detail >= 2) */
  size_t rest_len;
  uint64_t t_end_us;
  struct con_held_flow *next;
} con_held_flow_t;

typedef struct con_conn {
  uint64_t raw_bytes[2];    /* by flt_dir_t */
  uint64_t shown;           /* raw bytes hexdumped so far (detail 3) */
  int raw;                  /* raw bytes passed: a close line is due */
  flt_strbuf_t errors;      /* connection errors, shown at close unless a
                               failed flow's line said it */
  con_held_flow_t *held, *held_tail;
} con_conn_t;

/* ---- helpers ---------------------------------------------------------- */

static int con_put(flt_strbuf_t *b, const char *s) {
  return flt_strbuf_append(b, s, strlen(s));
}

/* Appends untrusted text (URL, header value, error message) safely. */
static int con_put_safe(flt_strbuf_t *b, const char *s) {
  return s ? flt_con_append_safe(b, s, strlen(s), 0) : con_put(b, "-");
}

static const char *con_status_sgr(int status) {
  if (status >= 500) return FLT_CON_RED;
  if (status >= 400) return FLT_CON_YELLOW;
  if (status >= 300) return FLT_CON_CYAN;
  if (status >= 200) return FLT_CON_GREEN;
  return FLT_CON_BOLD;
}

static int con_put_version(flt_strbuf_t *b, const flt_head_t *h) {
  if (h->http_major >= 2) return flt_strbuf_appendf(b, "HTTP/%d", h->http_major);
  return flt_strbuf_appendf(b, "HTTP/%d.%d", h->http_major, h->http_minor);
}

/* "host:port", with IPv6 literals in brackets. */
static int con_put_hostport(flt_strbuf_t *b, const flt_conn_t *c) {
  int v6 = strchr(c->server_host, ':') != NULL && c->server_host[0] != '[';
  if (v6 && con_put(b, "[") < 0) return -1;
  if (con_put_safe(b, c->server_host) < 0) return -1;
  return flt_strbuf_appendf(b, "%s:%u", v6 ? "]" : "", (unsigned)c->server_port);
}

static void *con_ctx(const flt_console_t *con, void *const *fctx) {
  return con->slot >= 0 ? fctx[con->slot] : NULL;
}

/* Queues a finished block; a cut block still ends with a newline. */
static void con_emit(flt_console_t *con, flt_strbuf_t *b) {
  size_t len;
  char *data;

  if (b->truncated) {
    flt_log_warn("console: a block reached its cap of %zu bytes and was cut",
                 b->cap);
    if (b->len > 0) b->data[b->len - 1] = '\n';
  }
  data = flt_strbuf_detach(b, &len);
  if (data) flt_output_write_owned(con->out, data, len);
}

/* ---- heads -------------------------------------------------------------- */

static int con_render_head(const flt_console_t *con, flt_strbuf_t *b,
                           const flt_head_t *h, flt_dir_t dir) {
  const char *mark = dir == FLT_DIR_REQUEST ? "  > " : "  < ";
  int r = con_put(b, mark);

  if (dir == FLT_DIR_REQUEST) {
    r |= con_put_safe(b, h->method);
    r |= con_put(b, " ");
    r |= con_put_safe(b, h->url);
    r |= con_put(b, " ");
    r |= con_put_version(b, h);
  } else {
    r |= con_put_version(b, h);
    r |= flt_strbuf_appendf(b, " %d", h->status);
    if (h->reason && h->reason[0]) {
      r |= con_put(b, " ");
      r |= con_put_safe(b, h->reason);
    }
  }
  r |= con_put(b, "\n");
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    r |= con_put(b, mark);
    r |= flt_con_paint(b, con->color, FLT_CON_CYAN, hd->name, hd->name_len);
    r |= con_put(b, ": ");
    r |= flt_con_append_safe(b, hd->value, hd->value_len, 0);
    r |= con_put(b, "\n");
  }
  return r ? -1 : 0;
}

/* ---- heads as forwarded, and interim responses ------------------------ */

/* The head the other side got: the edited one when an action changed it,
 * followed by what changed ("  ~ " lines, console.h). */
static int con_render_forwarded(const flt_console_t *con, flt_strbuf_t *b,
                                const flt_head_t *received,
                                const flt_head_t *sent, flt_dir_t dir) {
  if (sent == NULL) return con_render_head(con, b, received, dir);
  int r = con_render_head(con, b, sent, dir);
  return r | flt_con_render_changes(b, received, sent, con->color);
}

/* The 1xx heads relayed so far and not yet rendered, in order, ahead of
 * the final response head. */
static void con_render_interims(const flt_console_t *con, con_flow_t *cf,
                                const flt_flow_t *f) {
  if (con->detail < 2) return;
  for (; cf->interim_shown < f->n_interim; cf->interim_shown++)
    con_render_head(con, &cf->heads[FLT_DIR_RESPONSE],
                    f->interim[cf->interim_shown], FLT_DIR_RESPONSE);
}

/* ---- per-connection state ------------------------------------------- */

/* The connection's console state, made on first use; NULL when out of
 * memory. */
static con_conn_t *con_conn_get(flt_console_t *con, flt_conn_t *c) {
  con_conn_t *cc = con_ctx(con, c->fctx);

  if (cc || con->slot < 0) return cc;
  cc = calloc(1, sizeof(*cc));
  if (cc == NULL) return NULL;
  flt_strbuf_init(&cc->errors, CON_HEAD_CAP);
  c->fctx[con->slot] = cc;
  return cc;
}

/* -f hides the connection (its host-level terms do not match). */
static int con_conn_hidden(const flt_console_t *con, const flt_conn_t *c) {
  return c && con->slot >= 0 && c->hidden_decided && (c->hidden & (1u << con->slot));
}

/* ---- flows ------------------------------------------------------------- */

static void con_flow_free(con_flow_t *cf) {
  for (int d = 0; d < 2; d++) {
    flt_strbuf_free(&cf->heads[d]);
    if (cf->has_body[d]) flt_con_body_free(&cf->bodies[d]);
  }
  flt_decoder_free(cf->counter);
  free(cf);
}

/* Records a head: rendered at detail >= 2, body state at detail >= 3. */
static void con_flow_head(flt_console_t *con, con_flow_t *cf,
                          const flt_head_t *h, const flt_head_t *sent,
                          flt_dir_t dir) {
  if (con->detail >= 2) con_render_forwarded(con, &cf->heads[dir], h, sent, dir);
  if (con->detail < 3) return;
  /* A second response head (after a 1xx) starts a new body. */
  if (cf->has_body[dir]) flt_con_body_free(&cf->bodies[dir]);
  flt_con_body_init(&cf->bodies[dir], h, con->body_limit);
  cf->has_body[dir] = 1;
}

/* "client → METHOD url": the start of every flow line. */
static int con_put_flow_prefix(const flt_console_t *con, const flt_flow_t *f,
                               const con_flow_t *cf, flt_strbuf_t *b) {
  int r = con_put_safe(b, f->conn ? f->conn->client : NULL);
  r |= con_put(b, ARROW);
  r |= flt_con_paint(b, con->color, FLT_CON_BOLD, cf->method, strlen(cf->method));
  r |= con_put(b, " ");
  r |= con_put_safe(b, f->url ? f->url : f->req.url);
  return r;
}

/* Detail >= 2 without -f: the request line and head, queued as the
 * request goes upstream; the flow's end repeats the prefix. */
static void con_show_request(flt_console_t *con, const flt_flow_t *f,
                             con_flow_t *cf) {
  flt_strbuf_t b;

  if (con->detail < 2 || con->filtered) return;
  flt_strbuf_init(&b, con->block_cap);
  con_put_flow_prefix(con, f, cf, &b);
  con_put(&b, "\n");
  flt_strbuf_append(&b, cf->heads[FLT_DIR_REQUEST].data,
                    cf->heads[FLT_DIR_REQUEST].len);
  con_emit(con, &b);
  flt_strbuf_free(&cf->heads[FLT_DIR_REQUEST]);
  cf->req_shown = 1;
}

static void on_request_head(void *self, flt_flow_t *f) {
  flt_console_t *con = self;
  con_flow_t *cf;

  if (con->detail < 1 || con->slot < 0) return;
  cf = calloc(1, sizeof(*cf));
  if (cf == NULL) {
    flt_log_error("console: out of memory; flow %llu not shown",
                  (unsigned long long)f->id);
    return;
  }
  snprintf(cf->method, sizeof(cf->method), "%s",
           f->req.method ? f->req.method : "-");
  flt_strbuf_init(&cf->heads[0], CON_HEAD_CAP);
  flt_strbuf_init(&cf->heads[1], CON_HEAD_CAP);
  con_flow_head(con, cf, &f->req, f->req_sent, FLT_DIR_REQUEST);
  f->fctx[con->slot] = cf;
  con_show_request(con, f, cf);
}

/* The response's Content-Encoding, made safe to show; "" for none. */
static void con_flow_coding(con_flow_t *cf, const flt_head_t *h) {
  char cenc[FLT_CON_MAX_HEADER_VALUE];
  flt_strbuf_t safe;

  cf->coding[0] = '\0';
  cf->count_failed = 0;
  flt_decoder_free(cf->counter);
  cf->counter = NULL;
  flt_con_header_value(h, "Content-Encoding", cenc, sizeof(cenc));
  if (cenc[0] == '\0' || strcasecmp(cenc, "identity") == 0) return;
  flt_strbuf_init(&safe, sizeof(cf->coding) - 1);
  flt_con_append_safe(&safe, cenc, strlen(cenc), 0);
  snprintf(cf->coding, sizeof(cf->coding), "%s", safe.data ? safe.data : "");
  flt_strbuf_free(&safe);
  cf->counter = flt_decoder_new(cenc, strlen(cenc), NULL);
  if (cf->counter == NULL) cf->count_failed = 1;
}

static void on_response_head(void *self, flt_flow_t *f) {
  flt_console_t *con = self;
  con_flow_t *cf = con_ctx(con, f->fctx);
  char ctype[FLT_CON_MAX_HEADER_VALUE];

  if (cf == NULL) return;
  flt_con_header_value(&f->resp, "Content-Type", ctype, sizeof(ctype));
  flt_con_media_type(ctype, cf->media, sizeof(cf->media));
  con_render_interims(con, cf, f);
  con_flow_coding(cf, &f->resp);
  con_flow_head(con, cf, &f->resp, f->resp_sent, FLT_DIR_RESPONSE);
}

/* Counts the decoded size of an encoded response, within CON_COUNT_MAX. */
static void con_count_decoded(con_flow_t *cf, const uint8_t *data, size_t len) {
  if (cf->counter == NULL || cf->count_failed) return;
  if (flt_decoder_feed(cf->counter, data, len) != 0 ||
      flt_decoder_produced(cf->counter) > CON_COUNT_MAX)
    cf->count_failed = 1;
}

static void con_on_body(flt_console_t *con, flt_flow_t *f, flt_dir_t dir,
                        const uint8_t *data, size_t len) {
  con_flow_t *cf = con_ctx(con, f->fctx);
  if (cf == NULL) return;
  if (dir == FLT_DIR_RESPONSE) con_count_decoded(cf, data, len);
  if (cf->has_body[dir]) flt_con_body_feed(&cf->bodies[dir], data, len);
}

void flt_console_body_recorded(void *self, flt_flow_t *f, flt_dir_t dir, uint64_t wire_bytes,
                               int recorded_cut) {
  flt_console_t *con = self;
  con_flow_t *cf = con_ctx(con, f->fctx);

  if (cf == NULL || (dir != FLT_DIR_REQUEST && dir != FLT_DIR_RESPONSE)) return;
  /* An encoded response's decoded size: the bytes that follow, counted. */
  if (dir == FLT_DIR_RESPONSE && cf->coding[0]) {
    flt_decoder_free(cf->counter);
    cf->counter = recorded_cut ? NULL : flt_decoder_new("", 0, NULL);
    cf->count_failed = cf->counter == NULL;
  }
  if (cf->has_body[dir]) flt_con_body_recorded(&cf->bodies[dir], wire_bytes, recorded_cut);
}

static void on_request_body(void *self, flt_flow_t *f, const uint8_t *data,
                            size_t len) {
  con_on_body(self, f, FLT_DIR_REQUEST, data, len);
}

static void on_response_body(void *self, flt_flow_t *f, const uint8_t *data,
                             size_t len) {
  con_on_body(self, f, FLT_DIR_RESPONSE, data, len);
}

/* ---- the flow's summary line ------------------------------------------ */

static uint64_t con_flow_end_us(const flt_flow_t *f) {
  return f->t_end_us ? f->t_end_us : flt_now_us();
}

/* "client → METHOD url → status media size duration [tags]" */
static int con_line_answered(const flt_console_t *con, const flt_flow_t *f,
                             con_flow_t *cf, flt_strbuf_t *b) {
  char status[16], size[96], dur[32];
  uint64_t end = con_flow_end_us(f);
  int known = cf->counter && !cf->count_failed;
  int r = con_put_flow_prefix(con, f, cf, b);

  if (known && flt_decoder_finish(cf->counter) != 0) known = 0;
  flt_con_body_size(size, sizeof(size),
                    known ? flt_decoder_produced(cf->counter) : 0, known,
                    f->resp_body_bytes, cf->coding);
  flt_con_duration(dur, sizeof(dur), end > f->t_start_us ? end - f->t_start_us : 0);
  int n = snprintf(status, sizeof(status), "%d", f->resp.status);
  r |= con_put(b, ARROW);
  r |= flt_con_paint(b, con->color, con_status_sgr(f->resp.status), status,
                     (size_t)n);
  r |= con_put(b, " ");
  r |= con_put_safe(b, cf->media[0] ? cf->media : "-"); /* from the wire */
  r |= flt_strbuf_appendf(b, " %s %s", size, dur);
  if (f->tags[0]) { /* set by plugins and actions */
    r |= con_put(b, " [");
    r |= con_put_safe(b, f->tags);
    r |= con_put(b, "]");
  }
  return r | con_put(b, "\n");
}

/* "client → METHOD url → ERROR reason" */
static int con_line_failed(const flt_console_t *con, const flt_flow_t *f,
                           const con_flow_t *cf, flt_strbuf_t *b) {
  const char *why = f->error ? f->error : "no response";
  int r = con_put_flow_prefix(con, f, cf, b);
  r |= con_put(b, ARROW);
  r |= flt_con_paint(b, con->color, FLT_CON_RED, "ERROR ", 6);
  r |= flt_con_paint(b, con->color, FLT_CON_RED, why, strlen(why));
  return r | con_put(b, "\n");
}

/* "client → METHOD url → aborted by client after 1.02 s": the client left
 * (at `left_us`) before the response reached it. */
static int con_line_aborted(const flt_console_t *con, const flt_flow_t *f,
                            const con_flow_t *cf, uint64_t left_us,
                            flt_strbuf_t *b) {
  char text[96], dur[32];
  flt_con_duration(dur, sizeof(dur),
                   left_us > f->t_start_us ? left_us - f->t_start_us : 0);
  int n = snprintf(text, sizeof(text), "aborted by client after %s", dur);
  int r = con_put_flow_prefix(con, f, cf, b);
  r |= con_put(b, ARROW);
  r |= flt_con_paint(b, con->color, FLT_CON_YELLOW, text, (size_t)n);
  return r | con_put(b, "\n");
}

/* What follows the summary line: a line per action that changed the flow
 * ("    ↳ map-remote: ..."), then at detail >= 2 the request head when it
 * was not shown at its start, the request body (detail 3) before the
 * response. */
static void con_block_rest(const flt_console_t *con, const flt_flow_t *f,
                           con_flow_t *cf, flt_strbuf_t *b) {
  const char *p = f->actions, *line;
  size_t n;
  while ((line = flt_flow_action_next(&p, &n)) != NULL) {
    con_put(b, "    \xe2\x86\xb3 "); /* "↳" */
    flt_con_paint(b, con->color, FLT_CON_YELLOW, line, n);
    con_put(b, "\n");
  }
  for (int d = 0; d < 2 && con->detail >= 2; d++) {
    if (d == FLT_DIR_RESPONSE || !cf->req_shown)
      flt_strbuf_append(b, cf->heads[d].data, cf->heads[d].len);
    if (cf->has_body[d] && (d == FLT_DIR_REQUEST || f->has_response))
      flt_con_body_render(&cf->bodies[d], b, con->color);
  }
  for (size_t i = 0; con->detail >= 2 && f->resp_trailers && i < f->resp_trailers->n_headers;
       i++) { /* "  < trailer grpc-status: 0" */
    const flt_header_t *t = &f->resp_trailers->headers[i];
    con_put(b, "  < trailer ");
    flt_con_paint(b, con->color, FLT_CON_CYAN, t->name, t->name_len);
    con_put(b, ": ");
    flt_con_append_safe(b, t->value, t->value_len, 0);
    con_put(b, "\n");
  }
}

/* ---- the flow's end ------------------------------------------------------ */

/* Holds a flow that ended after the client's EOF until the connection
 * closes: both summaries are ready, the client's verdict picks one. */
static int con_hold_flow(flt_console_t *con, flt_flow_t *f, con_flow_t *cf) {
  con_conn_t *cc = f->conn ? con_conn_get(con, f->conn) : NULL;
  con_held_flow_t *h = cc ? calloc(1, sizeof(*h)) : NULL;
  flt_strbuf_t b[3];

  if (h == NULL) return -1;
  for (int i = 0; i < 3; i++) flt_strbuf_init(&b[i], con->block_cap);
  con_line_answered(con, f, cf, &b[0]);
  con_line_aborted(con, f, cf, f->conn->client_eof_us, &b[1]);
  con_block_rest(con, f, cf, &b[2]);
  h->line[0] = flt_strbuf_detach(&b[0], &h->line_len[0]);
  h->line[1] = flt_strbuf_detach(&b[1], &h->line_len[1]);
  h->rest = flt_strbuf_detach(&b[2], &h->rest_len);
  h->t_end_us = con_flow_end_us(f);
  if (cc->held_tail)
    cc->held_tail->next = h;
  else
    cc->held = h;
  cc->held_tail = h;
  return 0;
}

/* The flow's connection errors were about it: its line says them. */
static void con_drop_conn_errors(flt_console_t *con, flt_conn_t *c) {
  con_conn_t *cc = c ? con_ctx(con, c->fctx) : NULL;
  if (cc) flt_strbuf_reset(&cc->errors);
}

static void on_flow_end(void *self, flt_flow_t *f) {
  flt_console_t *con = self;
  con_flow_t *cf = con_ctx(con, f->fctx);
  const flt_conn_t *c = f->conn;
  uint64_t end = con_flow_end_us(f);
  int aborted = flt_client_aborted(c, end);
  int failed = !aborted && (f->error || !f->has_response);
  flt_strbuf_t b;

  if (cf == NULL) return;
  f->fctx[con->slot] = NULL;
  if (aborted || failed) con_drop_conn_errors(con, f->conn);
  if (f->hidden & (1u << con->slot)) { /* -f did not match */
    con_flow_free(cf);
    return;
  }
  con_render_interims(con, cf, f); /* of a flow without a final response */
  /* Answered after the client's EOF: taken, or was it gone? */
  if (!aborted && !failed && c && c->client_eof_us && c->client_eof_us < end &&
      con_hold_flow(con, f, cf) == 0) {
    con_flow_free(cf);
    return;
  }
  flt_strbuf_init(&b, con->block_cap);
  if (aborted)
    con_line_aborted(con, f, cf, c->client_gone_us, &b);
  else if (failed)
    con_line_failed(con, f, cf, &b);
  else
    con_line_answered(con, f, cf, &b);
  con_block_rest(con, f, cf, &b);
  con_emit(con, &b);
  con_flow_free(cf);
}

/* At close: the held flows, each with the summary the client's verdict
 * chose, in the order they ended. */
static void con_release_held(flt_console_t *con, const flt_conn_t *c,
                             con_conn_t *cc) {
  con_held_flow_t *h = cc->held;

  cc->held = cc->held_tail = NULL;
  while (h) {
    con_held_flow_t *next = h->next;
    int gone = flt_client_aborted(c, h->t_end_us);
    flt_strbuf_t b;
    flt_strbuf_init(&b, con->block_cap);
    flt_strbuf_append(&b, h->line[gone], h->line_len[gone]);
    flt_strbuf_append(&b, h->rest, h->rest_len);
    con_emit(con, &b);
    free(h->line[0]);
    free(h->line[1]);
    free(h->rest);
    free(h);
    h = next;
  }
}

/* ---- raw streams, errors and the connection's close ------------------- */

static void on_raw(void *self, flt_conn_t *c, flt_dir_t dir,
                   const uint8_t *data, size_t len) {
  flt_console_t *con = self;
  con_conn_t *cc;
  uint64_t offset;

  if (con->detail < 1 || con->slot < 0 || (dir != 0 && dir != 1)) return;
  cc = con_conn_get(con, c);
  if (cc == NULL) return;
  cc->raw = 1;
  offset = cc->raw_bytes[dir];
  cc->raw_bytes[dir] += len;
  if (con->detail < 3 || cc->shown >= con->body_limit || len == 0) return;

  /* Each chunk is its own block, shown as it passes: a raw stream may
   * stay open for hours. */
  size_t n = con->body_limit - cc->shown < len ? con->body_limit - cc->shown : len;
  flt_strbuf_t b;
  flt_strbuf_init(&b, con->block_cap);
  con_put_safe(&b, c->client);
  con_put(&b, RAW_MARK);
  con_put_hostport(&b, c);
  flt_strbuf_appendf(&b, " %s %zu B\n", dir == FLT_DIR_REQUEST ? ">" : "<", len);
  flt_hexdump_prefixed(&b, FLT_CON_INDENT, data, n, offset);
  cc->shown += n;
  con_emit(con, &b);
}

/* Each WebSocket message as it passes, its own block (detail >= 2). With
 * -f a flow is decided at its end, after its messages: they are shown
 * when the connection's host-level terms match (flt_conn_t.hidden). */
static void on_ws_message(void *self, flt_flow_t *f, flt_dir_t dir, int opcode,
                          const uint8_t *data, size_t len) {
  flt_console_t *con = self;
  if (con->detail < 2 || con->slot < 0 || con_conn_hidden(con, f->conn)) return;
  flt_con_ws_t m = {f->conn ? f->conn->client : "-", f->url ? f->url : f->req.url,
                    dir, opcode, data, len, con->body_limit, con->detail, con->color};
  flt_strbuf_t b;
  flt_strbuf_init(&b, con->block_cap);
  flt_con_render_ws(&b, &m);
  con_emit(con, &b);
}

/* "client ⇄ raw host:port N B in, M B out", and the cut note. */
static void con_show_raw_close(flt_console_t *con, const flt_conn_t *c,
                               const con_conn_t *cc) {
  uint64_t in = cc ? cc->raw_bytes[FLT_DIR_REQUEST] : 0;
  uint64_t out = cc ? cc->raw_bytes[FLT_DIR_RESPONSE] : 0;
  flt_strbuf_t b;

  flt_strbuf_init(&b, con->block_cap);
  con_put_safe(&b, c->client);
  con_put(&b, RAW_MARK);
  con_put_hostport(&b, c);
  flt_strbuf_appendf(&b, " %llu B in, %llu B out%s\n", (unsigned long long)in,
                     (unsigned long long)out,
                     c->passthrough ? " (TLS passed through, not intercepted)" : "");
  if (con->detail >= 3 && cc && in + out > cc->shown) {
    char note[128];
    int n = snprintf(note, sizeof(note),
                     ELLIPSIS " raw data cut at %llu of %llu bytes (--body-limit)",
                     (unsigned long long)cc->shown,
                     (unsigned long long)(in + out));
    con_put(&b, FLT_CON_INDENT);
    flt_con_paint(&b, con->color, FLT_CON_DIM, note, (size_t)n);
    con_put(&b, "\n");
  }
  con_emit(con, &b);
}

static void on_conn_close(void *self, flt_conn_t *c) {
  flt_console_t *con = self;
  con_conn_t *cc = con_ctx(con, c->fctx);
  int hidden = con_conn_hidden(con, c);

  if (cc) c->fctx[con->slot] = NULL;
  if (cc) con_release_held(con, c, cc);
  if (cc && cc->errors.len > 0 && !hidden) {
    con_emit(con, &cc->errors);
    flt_strbuf_init(&cc->errors, 0);
  }
  if (con->detail >= 1 && !hidden &&
      ((cc && cc->raw) || c->kind == FLT_CONN_RAW || c->kind == FLT_CONN_RAW_TLS))
    con_show_raw_close(con, c, cc);
  if (cc) flt_strbuf_free(&cc->errors);
  free(cc);
}

/* "client ✗ message": shown when the connection closes, unless a failed
 * flow's line (which carries the reason) came first. */
static void on_error(void *self, flt_conn_t *c, const char *msg) {
  flt_console_t *con = self;
  con_conn_t *cc;
  flt_strbuf_t line;

  if (con->detail < 1) return;
  cc = c ? con_conn_get(con, c) : NULL;
  flt_strbuf_init(&line, CON_HEAD_CAP);
  con_put_safe(&line, c ? c->client : NULL);
  con_put(&line, ERR_MARK);
  flt_con_paint(&line, con->color, FLT_CON_RED, msg ? msg : "error",
                strlen(msg ? msg : "error"));
  con_put(&line, "\n");
  if (cc) {
    flt_strbuf_append(&cc->errors, line.data, line.len);
    flt_strbuf_free(&line);
  } else if (!con_conn_hidden(con, c)) {
    con_emit(con, &line);
  } else {
    flt_strbuf_free(&line);
  }
}

static void on_shutdown(void *self) {
  flt_console_t *con = self;
  flt_output_flush(con->out);
}

/* ---- instance ------------------------------------------------------- */

/* -1 means: colour when the output is a terminal and NO_COLOR is unset
 * (https://no-color.org); 0 and 1 are explicit choices and win. */
static int con_resolve_color(int want, int fd) {
  const char *no_color = getenv("NO_COLOR");

  if (want >= 0) return want ? 1 : 0;
  if (no_color && no_color[0]) return 0;
  return isatty(fd) ? 1 : 0;
}

void *flt_console_new(const flt_console_opts_t *opts) {
  flt_console_t *con = calloc(1, sizeof(*con));
  char name[32];
  size_t limit;

  if (con == NULL) return NULL;
  con->detail = opts->detail;
  limit = opts->body_limit ? opts->body_limit : CON_DEFAULT_BODY_LIMIT;
  con->body_limit = limit;
  con->color = con_resolve_color(opts->color, opts->fd);
  con->slot = -1;
  con->filtered = opts->filtered;
  con->block_cap = CON_BLOCK_BASE;
  if (limit <= (SIZE_MAX - CON_BLOCK_BASE) / CON_BLOCK_PER_BODY_BYTE)
    con->block_cap += limit * CON_BLOCK_PER_BODY_BYTE;
  else
    con->block_cap = SIZE_MAX - 1;
  if (opts->fd == 1)
    snprintf(name, sizeof(name), "stdout");
  else
    snprintf(name, sizeof(name), "fd %d", opts->fd);
  con->out = flt_output_new(opts->fd, name, 0, 0);
  if (con->out == NULL) {
    free(con);
    return NULL;
  }
  return con;
}

void flt_console_set_slot(void *self, int slot) {
  flt_console_t *con = self;
  con->slot = slot >= 0 && slot < FLT_MAX_FILTERS ? slot : -1;
}

void flt_console_free(void *self) {
  flt_console_t *con = self;

  if (con == NULL) return;
  flt_output_free(con->out);
  free(con);
}

flt_output_t *flt_console_output(void *console) {
  return console ? ((flt_console_t *)console)->out : NULL;
}

int flt_console_color(void *console) {
  return console ? ((flt_console_t *)console)->color : 0;
}

const flt_ops_t flt_console_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "console",
    .on_request_head = on_request_head,
    .on_request_body = on_request_body,
    .on_response_head = on_response_head,
    .on_response_body = on_response_body,
    .on_flow_end = on_flow_end,
    .on_raw = on_raw,
    .on_error = on_error,
    .on_conn_close = on_conn_close,
    .on_shutdown = on_shutdown,
    .on_ws_message = on_ws_message,
};
