/* flow.h — what links the client-side exchange of a request with the
 * upstream-side one (proxy/README.md).
 *
 * A flow (px_flow_t) is one request and its response as the session sees
 * them: the filters' view of it (flt_flow_t, filters/filter.h) and the head
 * copies behind that view, which the flow owns. A session keeps its flows in
 * a px_flows_t: in the order the requests came, with the one whose request
 * is still arriving. Each flow carries the stream ids it has on each leg's
 * codec (proxy/codec/codec.h); the session finds flows by them: on HTTP/1
 * (stream 0 on both legs) the response belongs to the oldest flow, the
 * request body to the newest; a multiplexing codec finds its stream's flow
 * by id. flow.c knows no session: it allocates, links, finds and ends flows
 * and emits nothing but the flow's end.
 */
#ifndef TLSPEEK_FLOW_H
#define TLSPEEK_FLOW_H

#include <stdint.h>

#include "filters/filter.h"

typedef struct px_flow {
  flt_flow_t flow;
  flt_head_t *req_copy;  /* storage behind flow.req / flow.resp */
  flt_head_t *resp_copy;
  flt_head_t *req_sent;  /* storage behind flow.req_sent / flow.resp_sent */
  flt_head_t *resp_sent;
  const flt_head_t *interim[FLT_MAX_INTERIM]; /* flow.interim; owned */
  flt_head_t *trailers_copy; /* storage behind flow.resp_trailers, or NULL */
  struct px_flow *next;
  uint32_t client_stream;   /* the request's stream on the client leg's codec */
  uint32_t upstream_stream; /* the response's stream on the upstream leg's codec */
  int head_only;     /* request was HEAD: the response has no body */
  int upgrade_asked; /* request had Upgrade (with Connection: upgrade) or was CONNECT */
  int throttled;     /* --throttle rations the session's legs for it (throttle.h) */
  struct px_flow_act *act; /* flowact.h: plugins' requests, held bodies; NULL: none */
} px_flow_t;

typedef struct px_flows {
  px_flow_t *head; /* flows waiting for a response, oldest first */
  px_flow_t *tail;
  px_flow_t *req;  /* the flow whose request is still arriving, or NULL */
} px_flows_t;

/* A new flow for the request head `req_copy` (a px_head_copy; the flow owns
 * it from here, also when NULL is returned), with `id`, on `conn`, its URL
 * (`url`, malloc'd, owned) and the time it began. NULL when out of memory. */
px_flow_t *px_flow_new(uint64_t id, const flt_conn_t *conn, flt_head_t *req_copy, char *url,
                       uint32_t client_stream);
/* Frees the flow and every head it owns (it must be unlinked). */
void px_flow_free(px_flow_t *f);
/* Appends `f` as the newest flow, whose request is arriving. */
void px_flows_push(px_flows_t *q, px_flow_t *f);
/* The flow whose request arrives on the client leg's `stream`, or NULL. */
px_flow_t *px_flows_request(const px_flows_t *q, uint32_t stream);
/* The flow that the response on the upstream leg's `stream` answers: on
 * HTTP/1 the oldest one. NULL when none waits. */
px_flow_t *px_flows_response(const px_flows_t *q, uint32_t stream);
/* Takes `f` out of `q` (nothing when it is not there). */
void px_flows_unlink(px_flows_t *q, px_flow_t *f);
/* Ends the flow `f` (unlinked from `q`): its end time and `error` (NULL
 * for none, kept as a pointer: a string that outlives the event), the
 * flow-end event to `chain`, then frees it. */
void px_flows_finish(px_flows_t *q, px_flow_t *f, const flt_chain_t *chain, const char *error);
/* Adds a 1xx head (owned from here; NULL is ignored) to the flow's
 * interim responses; dropped past FLT_MAX_INTERIM. */
void px_flow_add_interim(px_flow_t *f, flt_head_t *copy);
static inline int px_flows_empty(const px_flows_t *q) { return q->head == NULL; }

#endif
