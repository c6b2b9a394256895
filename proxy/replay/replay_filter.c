/* replay_filter.c — the replay's filter (replay.h): it finds the entry of
 * each flow by its connection's client address, tags the flow, and keeps
 * what came back (status, error, the SHA-256 of the decoded response
 * body, hashed as it streams: nothing of the body is kept); and the
 * comparison printed at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/replay/replay_internal.h"

#define REPORT_MAX_LISTED 3 /* changed requests named in the totals line */

void px_replay_set_slot(px_replay_t *r, int slot) { r->slot = slot; }

static px_replay_item_t *item_of(const px_replay_t *r, const flt_flow_t *f) {
  return r->slot >= 0 ? f->fctx[r->slot] : NULL;
}

static void on_request_head(void *self, flt_flow_t *f) {
  px_replay_t *r = self;
  px_replay_item_t *it = NULL;
  if (r->slot < 0 || f->conn == NULL) return;
  pthread_mutex_lock(&r->lock);
  for (size_t i = 0; i < r->n_items && it == NULL; i++)
    if (!r->items[i].claimed && r->items[i].client[0] &&
        strcmp(r->items[i].client, f->conn->client) == 0)
      it = &r->items[i];
  if (it) it->claimed = 1;
  pthread_mutex_unlock(&r->lock);
  if (it == NULL) return;
  f->fctx[r->slot] = it;
  if (it->rec_status == 0)
    flt_flow_action(f, "replayed", "from %s entry %zu (recorded without a response)", r->file,
                    it->entry);
  else if (!it->rec_hashed)
    flt_flow_action(f, "replayed", "from %s entry %zu (recorded %d, %zu bytes, body not kept whole)",
                    r->file, it->entry, it->rec_status, it->rec_len);
  else
    flt_flow_action(f, "replayed", "from %s entry %zu (recorded %d, %zu bytes, sha256 %.12s\u2026)",
                    r->file, it->entry, it->rec_status, it->rec_len, it->rec_sha);
}

static void on_response_head(void *self, flt_flow_t *f) {
  px_replay_t *r = self;
  px_replay_item_t *it = item_of(r, f);
  if (it == NULL) return;
  const flt_header_t *ce = flt_head_find(&f->resp, "content-encoding");
  it->status = f->resp.status;
  flt_strbuf_init(&it->decoded, PX_REPLAY_HASH_CHUNK);
  it->dec = flt_decoder_new(ce ? ce->value : NULL, ce ? ce->value_len : 0, &it->decoded);
  it->md = EVP_MD_CTX_new();
  it->hashed = it->dec && it->md && EVP_DigestInit_ex(it->md, EVP_sha256(), NULL) == 1;
}

/* What the decoder produced so far into the hash. */
static void hash_decoded(px_replay_item_t *it) {
  if (it->decoded.truncated) it->hashed = 0; /* more than a chunk from one read */
  if (it->hashed && it->decoded.len) EVP_DigestUpdate(it->md, it->decoded.data, it->decoded.len);
  it->len += it->decoded.len;
  flt_strbuf_reset(&it->decoded);
}

static void on_response_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len) {
  px_replay_item_t *it = item_of(self, f);
  if (it == NULL || !it->hashed) return;
  if (flt_decoder_feed(it->dec, data, len) < 0) it->hashed = 0;
  hash_decoded(it);
}

static void on_flow_end(void *self, flt_flow_t *f) {
  px_replay_t *r = self;
  px_replay_item_t *it = item_of(r, f);
  if (it == NULL) return;
  if (it->hashed && flt_decoder_finish(it->dec) < 0) it->hashed = 0;
  if (it->hashed) hash_decoded(it);
  if (it->hashed) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(it->md, md, &n);
    for (unsigned int i = 0; i < n && i < 32; i++) snprintf(it->sha + 2 * i, 3, "%02x", md[i]);
  }
  /* Done with them: a long replay keeps no decoder per entry. */
  flt_decoder_free(it->dec);
  it->dec = NULL;
  EVP_MD_CTX_free(it->md);
  it->md = NULL;
  flt_strbuf_free(&it->decoded);
  pthread_mutex_lock(&r->lock);
  if (f->error) px_replay_item_fail(it, "%s", f->error);
  else if (!f->has_response) px_replay_item_fail(it, "the flow ended without a response");
  it->ended = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

const flt_ops_t px_replay_filter_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "replay",
    .on_request_head = on_request_head,
    .on_response_head = on_response_head,
    .on_response_body = on_response_body,
    .on_flow_end = on_flow_end,
};

/* ---- the comparison ----------------------------------------------------------- */

typedef struct report_totals {
  size_t same, changed, differ, uncompared, failed;
  char listed[1024];
} report_totals_t;

static void status_text(int status, char *buf, size_t len) {
  if (status) snprintf(buf, len, "%d", status);
  else snprintf(buf, len, "no response");
}

static void report_item(const px_replay_item_t *it, FILE *out, report_totals_t *t) {
  char was[16], now[16];
  if (it->error) {
    t->failed++;
    fprintf(out, "replay: entry %zu %s %s: failed: %s\n", it->entry, it->method, it->url,
            it->error);
    return;
  }
  status_text(it->rec_status, was, sizeof(was));
  status_text(it->status, now, sizeof(now));
  const char *body = "body not compared";
  if (it->rec_hashed && it->hashed) body = strcmp(it->rec_sha, it->sha) ? "body differs" : "body same";
  t->differ += body[5] == 'd';
  t->uncompared += body[5] == 'n';
  if (it->rec_status == it->status) {
    t->same++;
  } else if (++t->changed <= REPORT_MAX_LISTED) {
    size_t used = strlen(t->listed);
    snprintf(t->listed + used, sizeof(t->listed) - used, "%s%s %s: %s -> %s",
             t->changed > 1 ? ", " : "", it->method, it->url, was, now);
  } else if (t->changed == REPORT_MAX_LISTED + 1) {
    size_t used = strlen(t->listed);
    snprintf(t->listed + used, sizeof(t->listed) - used, ", ...");
  }
  fprintf(out, "replay: entry %zu %s %s: %s -> %s, %s\n", it->entry, it->method, it->url, was,
          now, body);
}

int px_replay_report(px_replay_t *r, FILE *out) {
  report_totals_t t;
  memset(&t, 0, sizeof(t));
  px_replay_stop(r); /* after a signal, senders may still be at work */
  for (int i = 0; i < r->n_threads; i++) pthread_join(r->threads[i], NULL);
  r->n_threads = 0;
  pthread_mutex_lock(&r->lock);
  for (size_t i = 0; i < r->n_items; i++) {
    px_replay_item_t *it = &r->items[i];
    /* A stop (Ctrl-C) before its turn came. */
    if (!it->ended && it->error == NULL && it->request == NULL)
      px_replay_item_fail(it, "not sent: %s", it->not_sent);
    if (!it->ended && it->error == NULL)
      px_replay_item_fail(it, "not sent: tlspeek stopped first");
    report_item(it, out, &t);
  }
  pthread_mutex_unlock(&r->lock);
  fprintf(out, "replay: %zu request%s, %zu same status, %zu changed%s%s%s, %zu bod%s differ%s",
          r->n_items, r->n_items == 1 ? "" : "s", t.same, t.changed, t.changed ? " (" : "",
          t.listed, t.changed ? ")" : "", t.differ, t.differ == 1 ? "y" : "ies",
          t.differ == 1 ? "s" : "");
  if (t.uncompared) fprintf(out, ", %zu not compared", t.uncompared);
  if (t.failed) fprintf(out, ", %zu failed", t.failed);
  fprintf(out, "\n");
  fflush(out);
  return t.failed ? 1 : 0;
}
