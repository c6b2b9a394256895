/* flow.c — a session's flows: allocation, order, lookup by stream, end. */
#include "proxy/flow.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/flowact.h"

px_flow_t *px_flow_new(uint64_t id, const flt_conn_t *conn, flt_head_t *req_copy, char *url,
                       uint32_t client_stream) {
  px_flow_t *f = req_copy ? calloc(1, sizeof(*f)) : NULL;
  if (f == NULL) {
    free(req_copy);
    free(url);
    return NULL;
  }
  f->req_copy = req_copy;
  f->flow.id = id;
  f->flow.conn = (flt_conn_t *)conn;
  f->flow.req = *req_copy;
  f->flow.url = url;
  f->flow.t_start_us = flt_now_us();
  f->flow.core = &px_core_ops;
  f->client_stream = client_stream;
  f->head_only = strcmp(f->flow.req.method, "HEAD") == 0;
  return f;
}

void px_flow_free(px_flow_t *f) {
  free(f->flow.url);
  free(f->flow.actions);
  free(f->req_copy);
  free(f->resp_copy);
  free(f->req_sent);
  free(f->resp_sent);
  px_flow_act_free(f->act);
  free(f->trailers_copy);
  for (size_t i = 0; i < f->flow.n_interim; i++) free((flt_head_t *)f->interim[i]);
  free(f);
}

void px_flows_push(px_flows_t *q, px_flow_t *f) {
  f->next = NULL;
  if (q->tail)
    q->tail->next = f;
  else
    q->head = f;
  q->tail = f;
  q->req = f;
}

px_flow_t *px_flows_request(const px_flows_t *q, uint32_t stream) {
  return q->req && q->req->client_stream == stream ? q->req : NULL;
}

px_flow_t *px_flows_response(const px_flows_t *q, uint32_t stream) {
  /* HTTP/1 answers in order: the oldest waiting flow. A multiplexing
   * upstream codec would look for its stream among all of them. */
  for (px_flow_t *f = q->head; f; f = f->next)
    if (f->upstream_stream == stream) return f;
  return NULL;
}

void px_flows_unlink(px_flows_t *q, px_flow_t *f) {
  px_flow_t **p = &q->head, *prev = NULL;
  while (*p && *p != f) {
    prev = *p;
    p = &(*p)->next;
  }
  if (*p == NULL) return;
  *p = f->next;
  if (q->tail == f) q->tail = prev;
  if (q->req == f) q->req = NULL;
  f->next = NULL;
}

void px_flows_finish(px_flows_t *q, px_flow_t *f, const flt_chain_t *chain, const char *error) {
  px_flows_unlink(q, f);
  f->flow.t_end_us = flt_now_us();
  f->flow.error = error;
  flt_emit_flow_end(chain, &f->flow);
  px_flow_free(f);
}

void px_flow_add_interim(px_flow_t *f, flt_head_t *copy) {
  if (copy == NULL) return;
  if (f->flow.n_interim >= FLT_MAX_INTERIM) {
    free(copy);
    return;
  }
  f->interim[f->flow.n_interim++] = copy;
  f->flow.interim = f->interim;
}
