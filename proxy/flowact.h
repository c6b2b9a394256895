/* flowact.h — what actions asked of one flow beyond its heads: the edits,
 * body requests, body replacements and local answers of ABI 2 plugins
 * (filter.h, flt_core_ops_t), and the head and body a --replace or a
 * plugin holds back until the body is complete (bodyhold.c).
 *
 * A flow's px_flow_act_t is made on first use (px_flow_act_get) and freed
 * with the flow (px_flow_free). flowact.c fills px_core_ops, the table the
 * core gives every flow (flow.c) and connection (session.c); it only
 * records what a plugin asks: session_http.c and bodyhold.c act on it. */
#ifndef TLSPEEK_FLOWACT_H
#define TLSPEEK_FLOWACT_H

#include <stdint.h>

#include "filters/filter.h"
#include "filters/util/strbuf.h"
#include "proxy/codec/http1.h"

/* One side's message held back (bodyhold.c): its head as it would have
 * been sent, the head for a rewritten body (without its final CRLF), the
 * body as framed on the wire and de-chunked. */
typedef struct px_hold {
  int active;             /* head and body are being held */
  int spilled;            /* went over --body-cap: the rest is relayed */
  uint32_t rules;         /* bit i: --replace rule i matched at the head */
  flt_strbuf_t head_orig;
  flt_strbuf_t head_new;
  flt_strbuf_t wire;
  flt_strbuf_t body;
} px_hold_t;

/* [0]: the request side, [1]: the response side. */
typedef struct px_flow_act {
  char *set_name[2][PX_HEAD_MAX_EDITS]; /* plugins' edits (owned strings) */
  char *set_value[2][PX_HEAD_MAX_EDITS];
  int n_set[2];
  char *remove[2][PX_HEAD_MAX_EDITS];
  int n_remove[2];
  int head_sent[2];        /* that side's head went on (or is held): too late to edit */
  int want_body[2];        /* a plugin asked for the whole body */
  int completing[2];       /* on_body_complete runs: replace_body is allowed */
  int replaced[2];
  flt_strbuf_t replacement[2];
  int answer_status;       /* a plugin answers the request itself (0: no) */
  char *answer_type;
  char *answer_body;
  size_t answer_len;
  px_hold_t hold[2];
  flt_head_t *old_sent[2]; /* a sent-head copy replaced after the head event */
} px_flow_act_t;

extern const flt_core_ops_t px_core_ops;

/* The flow's action state, made when missing (NULL when out of memory).
 * `f` must be the flow of a px_flow_t (flow.h). */
px_flow_act_t *px_flow_act_get(flt_flow_t *f);
/* The state when it exists, else NULL. */
px_flow_act_t *px_flow_act_of(const flt_flow_t *f);
void px_flow_act_free(px_flow_act_t *a);
/* Adds the plugins' edits of side `response_side` to `e` (strings stay
 * owned by the flow); 1 when there were any. */
int px_flow_act_edits(const flt_flow_t *f, int response_side, px_head_edit_t *e);

#endif
