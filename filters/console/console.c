/* console.c — the flow view filter (console.h; README.md, "What is shown").
 *
 * Per flow, everything the view needs is collected in a con_flow_t hung on
 * f->fctx[slot]: heads are rendered when they arrive (their header arrays
 * are only borrowed for the call), bodies are decoded as they stream in,
 * and the whole block is assembled and queued in one piece at flow end.
 * Per-conn state (raw stream counters) lives on c->fctx[slot]. Both are
 * touched only by the connection's own worker thread; the only shared
 * object is the output, which is thread-safe.
 */
#include "filters/console/console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define ARROW " \xe2\x86\x92 " /* " → " */
#define RAW_MARK " \xe2\x87\x84 raw " /* " ⇄ raw " */
#define ERR_MARK " \xe2\x9c\x97 " /* " ✗ " */
#define ELLIPSIS "\xe2\x80\xa6" /* "…" */

typedef struct flt_console {
  int detail;
  size_t body_limit;
  int color;          /* resolved: 0 or 1 */
  int slot;           /* index into fctx[]; -1 until set */
  size_t block_cap;
  flt_output_t *out;
} flt_console_t;

typedef struct con_flow {
  char method[64];
  char media[128];          /* response media type, for the summary line */
  flt_strbuf_t heads[2];    /* rendered heads (detail >= 2), by flt_dir_t */
  flt_con_body_t bodies[2]; /* detail >= 3, by flt_dir_t */
  int has_body[2];          /* bodies[dir] is initialised */
  size_t interim_shown;     /* f->interim heads rendered into heads[1] */
} con_flow_t;

typedef struct con_conn {
  uint64_t raw_bytes[2];    /* by flt_dir_t */
  uint64_t shown;           /* raw bytes hexdumped so far (detail 3) */
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

/* ---- flows ------------------------------------------------------------- */

static void con_flow_free(con_flow_t *cf) {
  for (int d = 0; d < 2; d++) {
    flt_strbuf_free(&cf->heads[d]);
    if (cf->has_body[d]) flt_con_body_free(&cf->bodies[d]);
  }
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
}

static void on_response_head(void *self, flt_flow_t *f) {
  flt_console_t *con = self;
  con_flow_t *cf = con_ctx(con, f->fctx);
  char ctype[FLT_CON_MAX_HEADER_VALUE];

  if (cf == NULL) return;
  flt_con_header_value(&f->resp, "Content-Type", ctype, sizeof(ctype));
  flt_con_media_type(ctype, cf->media, sizeof(cf->media));
  con_render_interims(con, cf, f);
  con_flow_head(con, cf, &f->resp, f->resp_sent, FLT_DIR_RESPONSE);
}

static void con_on_body(flt_console_t *con, flt_flow_t *f, flt_dir_t dir,
                        const uint8_t *data, size_t len) {
  con_flow_t *cf = con_ctx(con, f->fctx);
  if (cf && cf->has_body[dir]) flt_con_body_feed(&cf->bodies[dir], data, len);
}

static void on_request_body(void *self, flt_flow_t *f, const uint8_t *data,
                            size_t len) {
  con_on_body(self, f, FLT_DIR_REQUEST, data, len);
}

static void on_response_body(void *self, flt_flow_t *f, const uint8_t *data,
                             size_t len) {
  con_on_body(self, f, FLT_DIR_RESPONSE, data, len);
}

/* The detail-1 line:
 *   client → METHOD url → status media size N ms
 *   client → METHOD url → ERROR reason */
static int con_flow_line(const flt_console_t *con, const flt_flow_t *f,
                         const con_flow_t *cf, flt_strbuf_t *b) {
  int r = 0;

  r |= con_put_safe(b, f->conn ? f->conn->client : NULL);
  r |= con_put(b, ARROW);
  r |= flt_con_paint(b, con->color, FLT_CON_BOLD, cf->method, strlen(cf->method));
  r |= con_put(b, " ");
  r |= con_put_safe(b, f->url ? f->url : f->req.url);
  r |= con_put(b, ARROW);
  if (f->error || !f->has_response) {
    const char *why = f->error ? f->error : "no response";
    r |= flt_con_paint(b, con->color, FLT_CON_RED, "ERROR ", 6);
    r |= flt_con_paint(b, con->color, FLT_CON_RED, why, strlen(why));
    return r | con_put(b, "\n");
  }
  char status[16], size[32];
  uint64_t end = f->t_end_us ? f->t_end_us : flt_now_us();
  uint64_t ms = end > f->t_start_us ? (end - f->t_start_us) / 1000 : 0;
  int n = snprintf(status, sizeof(status), "%d", f->resp.status);
  flt_con_human_size(size, sizeof(size), f->resp_body_bytes);
  r |= flt_con_paint(b, con->color, con_status_sgr(f->resp.status), status,
                     (size_t)n);
  r |= con_put(b, " ");
  r |= con_put_safe(b, cf->media[0] ? cf->media : "-"); /* from the wire */
  r |= flt_strbuf_appendf(b, " %s %llu ms", size, (unsigned long long)ms);
  if (f->tags[0]) { /* set by plugins and actions */
    r |= con_put(b, " [");
    r |= con_put_safe(b, f->tags);
    r |= con_put(b, "]");
  }
  return r | con_put(b, "\n");
}

static void on_flow_end(void *self, flt_flow_t *f) {
  flt_console_t *con = self;
  con_flow_t *cf = con_ctx(con, f->fctx);
  flt_strbuf_t b;

  if (cf == NULL) return;
  f->fctx[con->slot] = NULL;
  if (f->hidden & (1u << con->slot)) { /* -f did not match */
    con_flow_free(cf);
    return;
  }
  con_render_interims(con, cf, f); /* of a flow without a final response */
  flt_strbuf_init(&b, con->block_cap);
  con_flow_line(con, f, cf, &b);
  for (int d = 0; d < 2 && con->detail >= 2; d++) {
    flt_strbuf_append(&b, cf->heads[d].data, cf->heads[d].len);
    if (cf->has_body[d] && (d == FLT_DIR_REQUEST || f->has_response))
      flt_con_body_render(&cf->bodies[d], &b, con->color);
  }
  con_emit(con, &b);
  con_flow_free(cf);
}

/* ---- raw streams and errors ------------------------------------------ */

static void on_raw(void *self, flt_conn_t *c, flt_dir_t dir,
                   const uint8_t *data, size_t len) {
  flt_console_t *con = self;
  con_conn_t *cc = con_ctx(con, c->fctx);
  uint64_t offset;

  if (con->detail < 1 || con->slot < 0 || (dir != 0 && dir != 1)) return;
  if (cc == NULL) {
    cc = calloc(1, sizeof(*cc));
    if (cc == NULL) return;
    c->fctx[con->slot] = cc;
  }
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

static void on_conn_close(void *self, flt_conn_t *c) {
  flt_console_t *con = self;
  con_conn_t *cc = con_ctx(con, c->fctx);
  uint64_t in = cc ? cc->raw_bytes[FLT_DIR_REQUEST] : 0;
  uint64_t out = cc ? cc->raw_bytes[FLT_DIR_RESPONSE] : 0;
  flt_strbuf_t b;

  if (cc) c->fctx[con->slot] = NULL;
  if (con->detail < 1 ||
      !(cc || c->kind == FLT_CONN_RAW || c->kind == FLT_CONN_RAW_TLS)) {
    free(cc);
    return;
  }
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
  free(cc);
}

static void on_error(void *self, flt_conn_t *c, const char *msg) {
  flt_console_t *con = self;
  flt_strbuf_t b;

  if (con->detail < 1) return;
  flt_strbuf_init(&b, CON_HEAD_CAP);
  con_put_safe(&b, c ? c->client : NULL);
  con_put(&b, ERR_MARK);
  flt_con_paint(&b, con->color, FLT_CON_RED, msg ? msg : "error",
                strlen(msg ? msg : "error"));
  con_put(&b, "\n");
  con_emit(con, &b);
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
};
