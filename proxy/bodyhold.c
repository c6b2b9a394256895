/* bodyhold.c — a message held until its body is complete, then rewritten
 * by --replace rules and ABI 2 plugins (bodyhold.h). */
#include "proxy/bodyhold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/expr/expr.h"
#include "filters/util/decode.h"
#include "filters/util/log.h"
#include "proxy/action_replace.h"
#include "proxy/flowact.h"
#include "proxy/worker.h"

/* Chunk framing kept beside a held body may exceed the body by this much
 * (tiny chunks), then the body is passed on as received. */
#define HOLD_FRAMING_SLACK (1024 * 1024)

static const char *const side_name[2] = {"request", "response"};

static void send_side(px_session_t *s, int response_side, const char *data, size_t len) {
  if (len == 0) return;
  if (response_side)
    px_send_client(s, data, len);
  else
    px_send_upstream(s, data, len);
}

static const flt_head_t *head_of(const px_flow_t *n, int response_side) {
  return response_side ? &n->flow.resp : &n->flow.req;
}

/* Which --replace rules apply to this side of the flow (bit i: rule i). */
static uint32_t matching_rules(px_session_t *s, px_flow_t *n, int response_side) {
  const px_config_t *cfg = s->w->shared->cfg;
  uint32_t bits = 0;
  for (int i = 0; i < cfg->n_replaces; i++)
    if (cfg->replaces[i]->response_side == response_side &&
        flt_expr_match_flow(cfg->replaces[i]->expr, &n->flow, NULL))
      bits |= 1u << i;
  return bits;
}

/* Messages without a body to rewrite: a response to HEAD, 1xx, 204, 304,
 * a tunnel's 2xx, a switch; a request that asks to upgrade. */
static int has_body(const px_flow_t *n, int response_side, const px_codec_head_t *hd) {
  if (!response_side) return !n->upgrade_asked;
  return !n->head_only && hd->status >= 200 && hd->status != 204 && hd->status != 304 &&
         !(strcmp(n->flow.req.method, "CONNECT") == 0 && hd->status < 300);
}

/* The head for a rewritten body, without its final CRLF: the same edits
 * and the fields that described the old body dropped. */
static int build_new_head(px_codec_t *c, const px_codec_head_t *hd, const px_head_edit_t *e,
                          int response_side, flt_strbuf_t *out) {
  static const char *const drop[] = {"Content-Encoding", "Content-Length", "Transfer-Encoding",
                                     "ETag", "Content-MD5", "Trailer", "Expect"};
  px_head_edit_t e2 = *e;
  for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]) - (response_side ? 1 : 0); i++)
    if (e2.n_remove < PX_HEAD_MAX_EDITS) e2.remove[e2.n_remove++] = drop[i];
  if (px_codec_head_build(c, hd->stream, &e2, out) != 0 || out->len < 4) return -1;
  out->len -= 2; /* the empty line; Content-Length comes before it */
  out->data[out->len] = '\0';
  return 0;
}

int px_hold_head(px_session_t *s, px_flow_t *n, int response_side, px_codec_t *c,
                 const px_codec_head_t *hd, const px_head_edit_t *e, const char *head,
                 size_t len) {
  px_flow_act_t *a = px_flow_act_of(&n->flow);
  if (a) a->head_sent[response_side] = 1;
  if (!has_body(n, response_side, hd)) return 0;
  uint32_t rules = matching_rules(s, n, response_side);
  if (rules == 0 && !(a && a->want_body[response_side])) return 0;
  if ((a = px_flow_act_get(&n->flow)) == NULL) return 0;
  px_hold_t *h = &a->hold[response_side];
  size_t cap = s->w->shared->cfg->body_cap;
  flt_strbuf_init(&h->head_orig, 0);
  flt_strbuf_init(&h->head_new, 0);
  flt_strbuf_init(&h->wire, cap + HOLD_FRAMING_SLACK);
  flt_strbuf_init(&h->body, cap);
  if (flt_strbuf_append(&h->head_orig, head, len) != 0 ||
      build_new_head(c, hd, e, response_side, &h->head_new) != 0)
    return 0; /* out of memory: sent as it is */
  h->rules = rules;
  h->active = 1;
  return 1;
}

static void human_size(size_t n, char *out, size_t outlen) {
  if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
    snprintf(out, outlen, "%zu MiB", n / (1024 * 1024));
  else if (n >= 1024 && n % 1024 == 0)
    snprintf(out, outlen, "%zu KiB", n / 1024);
  else
    snprintf(out, outlen, "%zu bytes", n);
}

/* Sends what was held as it came; the rest of the message is relayed. */
static void pass_untouched(px_session_t *s, px_hold_t *h, int response_side) {
  send_side(s, response_side, h->head_orig.data, h->head_orig.len);
  send_side(s, response_side, h->wire.data, h->wire.len);
  h->active = 0;
}

/* The body passed --body-cap: no rewrite; what was held goes on now. */
static void spill(px_session_t *s, px_flow_t *n, px_hold_t *h, int response_side) {
  char cap[32];
  human_size(s->w->shared->cfg->body_cap, cap, sizeof(cap));
  px_session_log(s, FLT_LOG_WARN, "%s %s: body over --body-cap (%s), passed on untouched",
                 n->flow.url, side_name[response_side], cap);
  flt_flow_action(&n->flow, "replaced", "not applied: %s body over --body-cap (%s), passed on "
                  "untouched", side_name[response_side], cap);
  pass_untouched(s, h, response_side);
  h->spilled = 1;
}

int px_hold_forward(px_session_t *s, px_flow_t *n, int response_side, const char *data,
                    size_t len) {
  px_flow_act_t *a = px_flow_act_of(&n->flow);
  px_hold_t *h = a ? &a->hold[response_side] : NULL;
  if (h == NULL || !h->active) return 0;
  size_t had = h->wire.len;
  if (flt_strbuf_append(&h->wire, data, len) == 0) return 1;
  h->wire.len = had; /* the part that fit goes with the rest, below */
  spill(s, n, h, response_side);
  return 0; /* this piece is relayed by the caller */
}

void px_hold_body(px_session_t *s, px_flow_t *n, int response_side, const char *data, size_t len) {
  px_flow_act_t *a = px_flow_act_of(&n->flow);
  px_hold_t *h = a ? &a->hold[response_side] : NULL;
  if (h == NULL || !h->active) return;
  size_t had = h->body.len;
  if (flt_strbuf_append(&h->body, data, len) == 0) return;
  h->body.len = had;
  spill(s, n, h, response_side); /* before these bytes' framing is forwarded */
}

/* The body as the user reads it, into `out` (cap: --body-cap): the
 * Content-Encoding of the received head removed. -1 with a warning when it
 * does not decode or passes the cap; `coding` receives the coding. */
static int decode_held(px_session_t *s, px_flow_t *n, px_hold_t *h, int response_side,
                       flt_strbuf_t *out, char *coding, size_t codinglen) {
  const flt_header_t *ce = flt_head_find(head_of(n, response_side), "content-encoding");
  coding[0] = '\0';
  if (ce == NULL || ce->value_len == 0 ||
      (ce->value_len == 8 && strncasecmp(ce->value, "identity", 8) == 0))
    return flt_strbuf_append(out, h->body.data, h->body.len);
  snprintf(coding, codinglen, "%.*s", (int)ce->value_len, ce->value);
  flt_decoder_t *d = flt_decoder_new(ce->value, ce->value_len, out);
  if (d == NULL) return -1;
  int rc = flt_decoder_feed(d, (const uint8_t *)h->body.data, h->body.len);
  if (rc == 0) rc = flt_decoder_finish(d);
  char why[300];
  if (rc != 0)
    snprintf(why, sizeof(why), "does not decode as %s (%s)", coding,
             flt_decoder_error(d) ? flt_decoder_error(d) : "error");
  else if (flt_decoder_stopped(d) || out->truncated)
    snprintf(why, sizeof(why), "is over --body-cap once decoded");
  flt_decoder_free(d);
  if (rc == 0 && !out->truncated) return 0;
  px_session_log(s, FLT_LOG_WARN, "%s %s: body %s, passed on untouched", n->flow.url,
                 side_name[response_side], why);
  flt_flow_action(&n->flow, "replaced", "not applied: %s body %s, passed on untouched",
                  side_name[response_side], why);
  return -1;
}

/* The --replace rules that matched at the head, in order, on `body`
 * (swapped with `tmp` after each rule that changed it). */
static void apply_rules(px_session_t *s, px_flow_t *n, px_hold_t *h, int response_side,
                        flt_strbuf_t **body, flt_strbuf_t **tmp, int *changed, char *lines,
                        size_t lineslen) {
  const px_config_t *cfg = s->w->shared->cfg;
  size_t used = 0;
  for (int i = 0; i < cfg->n_replaces; i++) {
    if (!(h->rules & (1u << i))) continue;
    char err[300];
    int k = px_replace_apply(cfg->replaces[i], (*body)->data ? (*body)->data : "", (*body)->len,
                             *tmp, err, sizeof(err));
    if (k < 0) {
      px_session_log(s, FLT_LOG_WARN, "%s %s: --replace %s not applied: %s", n->flow.url,
                     side_name[response_side], cfg->replaces[i]->shown, err);
      continue;
    }
    if (k == 0) continue;
    flt_strbuf_t *t = *body;
    *body = *tmp;
    *tmp = t;
    *changed = 1;
    int w = snprintf(lines + used, lineslen - used, "%s%d match%s of %s", used ? "; " : "", k,
                     k == 1 ? "" : "es", cfg->replaces[i]->shown);
    if (w > 0 && (size_t)w < lineslen - used) used += (size_t)w;
  }
}

/* Plugins that implement on_body_complete see the body (filter.h); one
 * that calls flt_flow_replace_body gives the body sent instead. */
static int run_plugins(px_session_t *s, px_flow_t *n, px_flow_act_t *a, int response_side,
                       flt_strbuf_t **body) {
  a->completing[response_side] = 1;
  a->replaced[response_side] = 0;
  flt_emit_body_complete(&s->w->shared->chain, &n->flow,
                         response_side ? FLT_DIR_RESPONSE : FLT_DIR_REQUEST,
                         (const uint8_t *)((*body)->data ? (*body)->data : ""), (*body)->len);
  a->completing[response_side] = 0;
  if (!a->replaced[response_side]) return 0;
  *body = &a->replacement[response_side];
  return 1;
}

/* The rewritten message: the new head, its length, the body. */
static void send_rewritten(px_session_t *s, px_hold_t *h, int response_side,
                           const flt_strbuf_t *body) {
  char cl[64];
  int w = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n\r\n", body->len);
  send_side(s, response_side, h->head_new.data, h->head_new.len);
  send_side(s, response_side, cl, (size_t)w);
  send_side(s, response_side, body->data, body->len);
  h->active = 0;
}

void px_hold_end(px_session_t *s, px_flow_t *n, int response_side) {
  px_flow_act_t *a = px_flow_act_of(&n->flow);
  px_hold_t *h = a ? &a->hold[response_side] : NULL;
  if (h == NULL || !h->active) return;
  size_t cap = s->w->shared->cfg->body_cap;
  flt_strbuf_t bufs[2], *body = &bufs[0], *tmp = &bufs[1];
  char coding[64], lines[400] = "";
  int changed = 0;
  flt_strbuf_init(&bufs[0], cap);
  flt_strbuf_init(&bufs[1], cap);
  if (decode_held(s, n, h, response_side, body, coding, sizeof(coding)) != 0) {
    pass_untouched(s, h, response_side);
    goto Exit;
  }
  apply_rules(s, n, h, response_side, &body, &tmp, &changed, lines, sizeof(lines));
  if (changed)
    flt_flow_action(&n->flow, "replaced", "%s body, %s (%s%s, %zu -> %zu bytes)",
                    side_name[response_side], lines, coding[0] ? coding : "identity",
                    coding[0] ? " decoded, sent identity" : "", h->body.len, body->len);
  if (run_plugins(s, n, a, response_side, &body)) {
    changed = 1;
    flt_flow_action(&n->flow, "replaced", "%s body by a plugin (%s%s, %zu -> %zu bytes)",
                    side_name[response_side], coding[0] ? coding : "identity",
                    coding[0] ? " decoded, sent identity" : "", h->body.len, body->len);
  }
  if (changed)
    send_rewritten(s, h, response_side, body);
  else
    pass_untouched(s, h, response_side); /* nothing matched: as it came */
Exit:
  flt_strbuf_free(&bufs[0]);
  flt_strbuf_free(&bufs[1]);
  flt_strbuf_free(&h->wire);
  flt_strbuf_free(&h->body);
}

int px_hold_active(const px_flow_t *n, int response_side) {
  const px_flow_act_t *a = n->act;
  return a && a->hold[response_side].active;
}
