/* tlsview.c — the filter behind --handshake, --wire and --explain
 * (tlsview.h): collects each connection's TLS messages and shows them as
 * one handshake block when the client leg is up; shows every chunk that
 * crosses a socket as records "on the wire" and, for TLS legs, the
 * plaintext tlspeek decrypted from them.
 *
 * Per-connection state lives in c->fctx[slot] and is touched only by the
 * connection's worker; the instance is read-only after set_slot. Every
 * block is assembled in a strbuf and queued whole on the console's output,
 * so blocks of different connections never interleave. */
#include "filters/tls/tlsview.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/console/console_internal.h"
#include "filters/util/hexdump.h"
#include "filters/util/log.h"
#include "filters/tls/tlsparse.h"

#define TV_DEFAULT_WIRE_LIMIT 64
/* TLS messages kept per connection until the handshake block is written
 * (a full TLS 1.2 handshake on two legs is ~20), and their bytes. */
#define TV_MAX_MSGS 48
#define TV_MAX_MSG_BYTES (1024u * 1024)
/* Plaintext shown per leg and direction (wire bytes of plain legs, or
 * what tlspeek decrypted on TLS legs). Enough for the small files the view
 * is meant for; a cut is stated. */
#define TV_PLAIN_LIMIT (64u * 1024)
/* One block: a handshake with long certificate chains is ~30 KiB of text;
 * a wire chunk is at most 64 KiB of plaintext as hexdump (~5x). */
#define TV_BLOCK_CAP (1024u * 1024)

#define ARROW "\xe2\x86\x92"
#define BOTH "\xe2\x87\x84"
#define DOT " \xc2\xb7 "
#define ELLIPSIS "\xe2\x80\xa6"

typedef struct flt_tlsview {
  flt_tlsview_opts_t o;
  int slot;
} flt_tlsview_t;

typedef struct tv_conn {
  flt_tls_msg_t msgs[TV_MAX_MSGS];
  size_t n_msgs, n_dropped, msg_bytes;
  int shown;                     /* handshake block written */
  uint16_t record_version[2][2]; /* [leg][sent] first handshake record */
  flt_tls_reasm_t reasm[2][2];   /* [leg][sent] */
  int reasm_ready;
  uint64_t plain_shown[2][2]; /* [leg][sent] plaintext bytes shown */
  int cut_said[2][2];
  int encrypted[2][2];  /* [leg][sent] records are ciphertext now */
  int record_explained; /* --explain's record note given */
} tv_conn_t;

static const char *tv_dir(int leg, int sent) {
  if (leg == FLT_LEG_CLIENT) return sent ? "tlspeek " ARROW " client" : "client " ARROW " tlspeek";
  return sent ? "tlspeek " ARROW " upstream" : "upstream " ARROW " tlspeek";
}

static void tv_emit(const flt_tlsview_t *tv, flt_strbuf_t *b) {
  size_t len;
  char *data;

  if (b->truncated) {
    flt_log_warn("tlsview: a block reached its cap of %zu bytes and was cut", b->cap);
    if (b->len > 0) b->data[b->len - 1] = '\n';
  }
  data = flt_strbuf_detach(b, &len);
  if (data) flt_output_write_owned(tv->o.out, data, len);
}

static void tv_conn_free(tv_conn_t *tc) {
  for (size_t i = 0; i < tc->n_msgs; i++)
    free((void *)tc->msgs[i].data);
  for (int l = 0; l < 2; l++)
    for (int s = 0; s < 2; s++)
      flt_tls_reasm_free(&tc->reasm[l][s]);
  free(tc);
}

static tv_conn_t *tv_get(const flt_tlsview_t *tv, flt_conn_t *c) {
  tv_conn_t *tc;

  if (tv->slot < 0) return NULL;
  tc = c->fctx[tv->slot];
  if (tc) return tc;
  tc = calloc(1, sizeof(*tc));
  if (tc == NULL) return NULL;
  for (int l = 0; l < 2; l++)
    for (int s = 0; s < 2; s++)
      if (flt_tls_reasm_init(&tc->reasm[l][s], tv->o.wire ? tv->o.wire_limit : 0) < 0) {
        tv_conn_free(tc);
        return NULL;
      }
  c->fctx[tv->slot] = tc;
  return tc;
}

/* "127.0.0.1:5000 ⇄ example.test:443" with the host escaped. */
static void tv_put_conn(flt_strbuf_t *b, const flt_conn_t *c) {
  flt_tls_put_escaped(b, (const uint8_t *)c->client, strnlen(c->client, sizeof(c->client)));
  flt_strbuf_append(b, " " BOTH " ", strlen(" " BOTH " "));
  if (c->server_host[0] == '\0') { /* e.g. the CONNECT that names it */
    flt_strbuf_appendf(b, "(upstream not known yet)");
    return;
  }
  flt_tls_put_escaped(b, (const uint8_t *)c->server_host,
                      strnlen(c->server_host, sizeof(c->server_host)));
  flt_strbuf_appendf(b, ":%u", (unsigned)c->server_port);
}

/* ---- the handshake block ------------------------------------------------------ */

static int tv_leg_is13(const tv_conn_t *tc, int leg) {
  flt_tls_hello_t h;
  for (size_t i = 0; i < tc->n_msgs; i++) {
    const flt_tls_msg_t *m = &tc->msgs[i];
    if (m->leg == leg && m->data && m->len > 0 && m->data[0] == FLT_TLS_HS_SERVER_HELLO &&
        m->content_type == FLT_TLS_CT_HANDSHAKE && flt_tls_hello_parse(m->data, m->len, &h) == 0)
      return flt_tls_hello_version(&h) == 0x0304;
  }
  return 0;
}

static void tv_show_handshake(const flt_tlsview_t *tv, flt_conn_t *c, tv_conn_t *tc, int complete) {
  char server[300];
  flt_strbuf_t b, who;
  flt_tls_hs_view_t v;

  tc->shown = 1;
  if (!tv->o.handshake || tc->n_msgs == 0) return;
  flt_strbuf_init(&who, sizeof(server));
  flt_tls_put_escaped(&who, (const uint8_t *)c->server_host,
                      strnlen(c->server_host, sizeof(c->server_host)));
  snprintf(server, sizeof(server), "%s:%u", who.data ? who.data : "", (unsigned)c->server_port);
  flt_strbuf_free(&who);
  memset(&v, 0, sizeof(v));
  v.client = c->client;
  v.server = server;
  v.conn_id = c->id;
  v.msgs = tc->msgs;
  v.n_msgs = tc->n_msgs;
  v.n_dropped = tc->n_dropped;
  memcpy(v.record_version, tc->record_version, sizeof(v.record_version));
  v.up_verify = c->up_verify;
  v.alpn = c->alpn;
  v.up_alpn = c->up_alpn;
  v.complete = complete;
  v.explain = tv->o.explain;
  v.color = tv->o.color;
  flt_strbuf_init(&b, TV_BLOCK_CAP);
  flt_tls_handshake_render(&b, &v);
  tv_emit(tv, &b);
}

/* A message after the handshake block (NewSessionTicket, KeyUpdate,
 * alerts): a small block of its own. */
static void tv_show_late(const flt_tlsview_t *tv, flt_conn_t *c, tv_conn_t *tc,
                         const flt_tls_msg_t *m) {
  flt_strbuf_t b;

  flt_strbuf_init(&b, TV_BLOCK_CAP);
  tv_put_conn(&b, c);
  flt_strbuf_append(&b, DOT "after the handshake:\n", strlen(DOT "after the handshake:\n"));
  flt_tls_message_render(&b, m, tv_leg_is13(tc, m->leg), 0);
  tv_emit(tv, &b);
}

static void on_tls_message(void *self, flt_conn_t *c, flt_leg_t leg, int sent, int content_type,
                           int version, const uint8_t *data, size_t len) {
  const flt_tlsview_t *tv = self;
  tv_conn_t *tc;
  flt_tls_msg_t m = {.leg = leg == FLT_LEG_UPSTREAM,
                     .sent = sent != 0,
                     .content_type = content_type,
                     .data = NULL,
                     .len = len};
  (void)version;

  if (!tv->o.handshake || (tc = tv_get(tv, c)) == NULL) return;
  if (len <= FLT_TLS_MAX_HANDSHAKE && len > 0) {
    uint8_t *copy = malloc(len);
    if (copy) memcpy(copy, data, len);
    m.data = copy;
  }
  if (tc->shown) {
    tv_show_late(tv, c, tc, &m);
    free((void *)m.data);
    return;
  }
  if (tc->n_msgs == TV_MAX_MSGS || tc->msg_bytes + len > TV_MAX_MSG_BYTES) {
    tc->n_dropped++;
    free((void *)m.data);
    return;
  }
  tc->msg_bytes += len;
  tc->msgs[tc->n_msgs++] = m;
}

static void on_tls_established(void *self, flt_conn_t *c) {
  const flt_tlsview_t *tv = self;
  tv_conn_t *tc = tv->slot >= 0 ? c->fctx[tv->slot] : NULL;
  if (tc && !tc->shown) tv_show_handshake(tv, c, tc, 1);
}

/* ---- the wire view ------------------------------------------------------------ */

/* A request or response head at the start: a token in capitals (a method,
 * or "HTTP/") and a blank line within the bytes. Returns the head's length
 * including the blank line, or 0. */
static size_t tv_http_head_len(const uint8_t *p, size_t len) {
  if (len < 4 || p[0] < 'A' || p[0] > 'Z') return 0;
  for (size_t i = 0; i + 3 < len; i++)
    if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return i + 4;
  return 0;
}

/* Plaintext as the console would show a body: text as indented lines,
 * anything else as a hexdump; an HTTP head first, as text. Capped at
 * TV_PLAIN_LIMIT per leg and direction. */
static void tv_put_plain(flt_strbuf_t *b, tv_conn_t *tc, int leg, int sent, const uint8_t *p,
                         size_t len) {
  uint64_t shown = tc->plain_shown[leg][sent];
  size_t room = shown < TV_PLAIN_LIMIT ? (size_t)(TV_PLAIN_LIMIT - shown) : 0;
  size_t n = len < room ? len : room;
  size_t head = tv_http_head_len(p, n);

  tc->plain_shown[leg][sent] += n;
  if (head) flt_con_render_text(b, p, head, 0);
  if (n > head) {
    if (flt_con_utf8_is_clean(p + head, n - head, 1))
      flt_con_render_text(b, p + head, n - head, 0);
    else
      flt_hexdump_prefixed(b, FLT_CON_INDENT, p + head, n - head, 0);
  }
  if (n < len && !tc->cut_said[leg][sent]) {
    tc->cut_said[leg][sent] = 1;
    flt_strbuf_appendf(b,
                       FLT_CON_INDENT ELLIPSIS
                       " plaintext shown up to %u bytes per "
                       "direction; the rest is not shown\n",
                       TV_PLAIN_LIMIT);
  }
}

typedef struct tv_feed {
  const flt_tlsview_t *tv;
  tv_conn_t *tc;
  flt_strbuf_t *b; /* NULL: only learn record versions */
  int leg, sent;
} tv_feed_t;

static void tv_put_record(tv_feed_t *f, const flt_tls_record_t *r, int encrypted) {
  flt_strbuf_t *b = f->b;
  const char *what = encrypted ? "encrypted: unreadable without this leg's keys"
                     : r->type == FLT_TLS_CT_CHANGE_CIPHER_SPEC ? "clear text"
                                                                : "clear text, readable by anyone";

  flt_strbuf_appendf(b, "  record %llu: %s (%u), %s (0x%04x), %zu bytes \xe2\x80\x94 %s\n",
                     (unsigned long long)r->index + 1, flt_tls_content_type_name(r->type), r->type,
                     flt_tls_version_name(r->version), (unsigned)r->version, r->len, what);
  flt_hexdump_prefixed(b, FLT_CON_INDENT, r->head, r->head_len, 0);
  if (r->len > r->head_len)
    flt_strbuf_appendf(b, FLT_CON_INDENT ELLIPSIS " %zu more bytes not shown (--wire-limit %zu)\n",
                       r->len - r->head_len, f->tv->o.wire_limit);
  if (r->type == FLT_TLS_CT_APPLICATION_DATA && f->tv->o.explain && !f->tc->record_explained) {
    f->tc->record_explained = 1;
    flt_tls_explain_record(b, "  ");
  }
}

static void tv_on_record(void *ud, const flt_tls_record_t *r) {
  tv_feed_t *f = ud;
  tv_conn_t *tc = f->tc;
  /* After ChangeCipherSpec (TLS 1.2) or once application_data flows, the
   * direction's records are encrypted, whatever their content type says. */
  static const int ccs = FLT_TLS_CT_CHANGE_CIPHER_SPEC;

  if (r->type == FLT_TLS_CT_HANDSHAKE && tc->record_version[f->leg][f->sent] == 0)
    tc->record_version[f->leg][f->sent] = r->version;
  if (f->b == NULL) return;
  if (r->type == 0) {
    flt_strbuf_appendf(f->b,
                       "  %zu bytes that are not TLS records: not encrypted, anyone on "
                       "the path reads them as they are\n",
                       r->len);
    tv_put_plain(f->b, tc, f->leg, f->sent, r->head, r->head_len);
    return;
  }
  int encrypted =
      r->type == FLT_TLS_CT_APPLICATION_DATA || (tc->encrypted[f->leg][f->sent] && r->type != ccs);
  tv_put_record(f, r, encrypted);
  if (r->type == ccs || r->type == FLT_TLS_CT_APPLICATION_DATA) tc->encrypted[f->leg][f->sent] = 1;
}

static void tv_block_head(flt_strbuf_t *b, const flt_tlsview_t *tv, const flt_conn_t *c, int leg,
                          int sent, const char *what, size_t len) {
  tv_put_conn(b, c);
  flt_strbuf_appendf(b, DOT "%s" DOT, tv_dir(leg, sent));
  if (tv->o.color)
    flt_strbuf_appendf(b, "\x1b[1m%s\x1b[0m", what);
  else
    flt_strbuf_append(b, what, strlen(what));
  flt_strbuf_appendf(b, ": %zu bytes\n", len);
}

static void on_wire(void *self, flt_conn_t *c, flt_leg_t leg, int sent, const uint8_t *data,
                    size_t len) {
  const flt_tlsview_t *tv = self;
  tv_conn_t *tc = tv_get(tv, c);
  flt_strbuf_t b;
  int l = leg == FLT_LEG_UPSTREAM, s = sent != 0;
  tv_feed_t f = {tv, tc, NULL, l, s};

  if (tc == NULL || len == 0) return;
  if (!tv->o.wire) { /* only the record versions, for the handshake view */
    flt_tls_reasm_feed(&tc->reasm[l][s], data, len, tv_on_record, &f);
    return;
  }
  flt_strbuf_init(&b, TV_BLOCK_CAP);
  f.b = &b;
  tv_block_head(&b, tv, c, l, s, "on the wire (what a sniffer sees)", len);
  size_t before = flt_tls_reasm_pending(&tc->reasm[l][s]);
  if (before)
    flt_strbuf_appendf(&b, "  (continues a record: %zu of its bytes came in earlier chunks)\n",
                       before);
  flt_tls_reasm_feed(&tc->reasm[l][s], data, len, tv_on_record, &f);
  size_t after = flt_tls_reasm_pending(&tc->reasm[l][s]);
  if (after)
    flt_strbuf_appendf(&b,
                       "  (a record continues in the next chunk: %zu of its bytes so "
                       "far)\n",
                       after);
  tv_emit(tv, &b);
}

/* Plaintext tlspeek decrypted: shown for TLS legs only (on a plain leg the
 * wire view already showed these very bytes). */
static void on_data(void *self, flt_conn_t *c, flt_dir_t dir, const uint8_t *data, size_t len) {
  const flt_tlsview_t *tv = self;
  int l = dir == FLT_DIR_RESPONSE; /* requests come in on the client leg */
  int leg_tls = l ? c->upstream_tls : c->client_tls;
  tv_conn_t *tc;
  flt_strbuf_t b;

  if (!tv->o.wire || !leg_tls || len == 0 || (tc = tv_get(tv, c)) == NULL) return;
  flt_strbuf_init(&b, TV_BLOCK_CAP);
  tv_block_head(&b, tv, c, l, 0, "decrypted by tlspeek", len);
  tv_put_plain(&b, tc, l, 0, data, len);
  tv_emit(tv, &b);
}

static void on_conn_close(void *self, flt_conn_t *c) {
  const flt_tlsview_t *tv = self;
  tv_conn_t *tc = tv->slot >= 0 ? c->fctx[tv->slot] : NULL;

  if (tc == NULL) return;
  if (!tc->shown) tv_show_handshake(tv, c, tc, 0);
  c->fctx[tv->slot] = NULL;
  tv_conn_free(tc);
}

static void on_shutdown(void *self) {
  const flt_tlsview_t *tv = self;
  flt_output_flush(tv->o.out);
}

/* ---- instance ------------------------------------------------------------------ */

void *flt_tlsview_new(const flt_tlsview_opts_t *opts) {
  flt_tlsview_t *tv;

  if (opts == NULL || opts->out == NULL) return NULL;
  tv = calloc(1, sizeof(*tv));
  if (tv == NULL) return NULL;
  tv->o = *opts;
  if (tv->o.wire_limit == 0) tv->o.wire_limit = TV_DEFAULT_WIRE_LIMIT;
  if (tv->o.wire_limit > FLT_TLS_MAX_RECORD) tv->o.wire_limit = FLT_TLS_MAX_RECORD;
  tv->slot = -1;
  return tv;
}

void flt_tlsview_set_slot(void *self, int slot) {
  flt_tlsview_t *tv = self;
  tv->slot = slot >= 0 && slot < FLT_MAX_FILTERS ? slot : -1;
}

void flt_tlsview_free(void *self) {
  free(self);
}

const flt_ops_t flt_tlsview_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "tlsview",
    .on_tls_established = on_tls_established,
    .on_conn_close = on_conn_close,
    .on_shutdown = on_shutdown,
    .on_data = on_data,
    .on_tls_message = on_tls_message,
    .on_wire = on_wire,
};
