/* flowact.c — the core's side of filter ABI 2 (flowact.h): what a plugin
 * asks of a flow or a connection is recorded here, checked for being in
 * time; session_http.c, bodyhold.c and passthrough.c act on it. */
#include "proxy/flowact.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/flow.h"
#include "proxy/session.h"

px_flow_act_t *px_flow_act_of(const flt_flow_t *f) {
  return ((const px_flow_t *)(const void *)f)->act;
}

px_flow_act_t *px_flow_act_get(flt_flow_t *f) {
  px_flow_t *n = (px_flow_t *)(void *)f; /* the flow is px_flow_t's first member */
  if (n->act == NULL) n->act = calloc(1, sizeof(*n->act));
  return n->act;
}

static void free_hold(px_hold_t *h) {
  flt_strbuf_free(&h->head_orig);
  flt_strbuf_free(&h->head_new);
  flt_strbuf_free(&h->wire);
  flt_strbuf_free(&h->body);
}

void px_flow_act_free(px_flow_act_t *a) {
  if (a == NULL) return;
  for (int d = 0; d < 2; d++) {
    for (int i = 0; i < a->n_set[d]; i++) {
      free(a->set_name[d][i]);
      free(a->set_value[d][i]);
    }
    for (int i = 0; i < a->n_remove[d]; i++) free(a->remove[d][i]);
    flt_strbuf_free(&a->replacement[d]);
    free_hold(&a->hold[d]);
    free(a->old_sent[d]);
  }
  free(a->answer_type);
  free(a->answer_body);
  free(a);
}

int px_flow_act_edits(const flt_flow_t *f, int response_side, px_head_edit_t *e) {
  const px_flow_act_t *a = px_flow_act_of(f);
  int any = 0;
  if (a == NULL) return 0;
  for (int i = 0; i < a->n_set[response_side] && e->n_set < PX_HEAD_MAX_EDITS; i++, any = 1) {
    e->set_name[e->n_set] = a->set_name[response_side][i];
    e->set_value[e->n_set++] = a->set_value[response_side][i];
  }
  for (int i = 0; i < a->n_remove[response_side] && e->n_remove < PX_HEAD_MAX_EDITS; i++, any = 1)
    e->remove[e->n_remove++] = a->remove[response_side][i];
  return any;
}

/* ---- the table given to plugins (filter.h, flt_core_ops_t) ---------------- */

static int in_list(char *const *names, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcasecmp(names[i], name) == 0) return i;
  return -1;
}

static int op_set_header(flt_flow_t *f, flt_dir_t dir, const char *name, const char *value) {
  px_flow_act_t *a = px_flow_act_get(f);
  int d = dir == FLT_DIR_RESPONSE;
  if (a == NULL || a->head_sent[d] || name[0] == '\0' || strpbrk(name, ": \r\n") ||
      (value && strpbrk(value, "\r\n")))
    return -1;
  if (value == NULL) {
    if (in_list(a->remove[d], a->n_remove[d], name) >= 0) return 0;
    if (a->n_remove[d] == PX_HEAD_MAX_EDITS) return -1;
    if ((a->remove[d][a->n_remove[d]] = strdup(name)) == NULL) return -1;
    a->n_remove[d]++;
    return 0;
  }
  int k = in_list(a->set_name[d], a->n_set[d], name);
  char *v = strdup(value);
  if (v == NULL) return -1;
  if (k >= 0) {
    free(a->set_value[d][k]);
    a->set_value[d][k] = v;
    return 0;
  }
  if (a->n_set[d] == PX_HEAD_MAX_EDITS || (a->set_name[d][a->n_set[d]] = strdup(name)) == NULL) {
    free(v);
    return -1;
  }
  a->set_value[d][a->n_set[d]++] = v;
  return 0;
}

static int op_want_body(flt_flow_t *f, flt_dir_t dir) {
  px_flow_act_t *a = px_flow_act_get(f);
  int d = dir == FLT_DIR_RESPONSE;
  if (a == NULL || a->head_sent[d]) return -1;
  a->want_body[d] = 1;
  return 0;
}

static int op_replace_body(flt_flow_t *f, flt_dir_t dir, const uint8_t *data, size_t len) {
  px_flow_act_t *a = px_flow_act_of(f);
  int d = dir == FLT_DIR_RESPONSE;
  if (a == NULL || !a->completing[d]) return -1;
  flt_strbuf_reset(&a->replacement[d]);
  if (flt_strbuf_append(&a->replacement[d], data, len) != 0) return -1;
  a->replaced[d] = 1;
  return 0;
}

static int op_answer(flt_flow_t *f, int status, const char *content_type, const uint8_t *body,
                     size_t len) {
  px_flow_act_t *a = px_flow_act_get(f);
  if (a == NULL || a->head_sent[0] || f->has_response) return -1;
  char *t = content_type ? strdup(content_type) : NULL;
  char *b = malloc(len + 1);
  if ((content_type && t == NULL) || b == NULL || (t && strpbrk(t, "\r\n"))) {
    free(t);
    free(b);
    return -1;
  }
  if (len) memcpy(b, body, len);
  free(a->answer_type);
  free(a->answer_body);
  a->answer_type = t;
  a->answer_body = b;
  a->answer_len = len;
  a->answer_status = status;
  return 0;
}

static int op_passthrough(flt_conn_t *c) {
  px_session_t *s = (px_session_t *)(void *)((char *)c - offsetof(px_session_t, conn));
  if (c->tls_version[0] != '\0' || s->leaf_set) return -1; /* intercepted already */
  s->plugin_passthrough = 1;
  return 0;
}

const flt_core_ops_t px_core_ops = {op_set_header, op_want_body, op_replace_body, op_answer,
                                    op_passthrough};
