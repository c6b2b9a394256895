/* web_internal.h — what the web server's files share:
 *  - http.c: one request parsed from bytes with http-parser (px_web_req_t,
 *    bounded by PX_WEB_MAX_HEAD and PX_WEB_MAX_BODY), the query string,
 *    and responses built into one buffer (px_web_resp_t). No sockets.
 *  - api.c: px_web_route(), a request to its response: the Host and
 *    token checks, the static assets, every /api route. No sockets, so
 *    the fuzz target drives it directly (tests/fuzz/fuzz_web_request.c).
 *  - intercept_api.c: --intercept's routes and event (proxy/intercept.h).
 *  - resend.c: /api/resend's request sent through tlspeek's own listener
 *    on a thread of its own (blocking sockets, never the web loop).
 *  - server.c: the loop, the connections, SSE.
 */
#ifndef TLSPEEK_WEB_INTERNAL_H
#define TLSPEEK_WEB_INTERNAL_H

#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/util/strbuf.h"
#include "proxy/web/web.h"

#define PX_WEB_MAX_HEADERS 64

/* ---- http.c --------------------------------------------------------------- */

typedef struct px_web_req {
  http_parser parser;
  flt_strbuf_t url;
  flt_strbuf_t names[PX_WEB_MAX_HEADERS], values[PX_WEB_MAX_HEADERS];
  int n_headers;
  int in_value;
  flt_strbuf_t body;
  size_t head_bytes;
  int complete;   /* a whole request is here */
  int error;      /* a status to answer with (400, 413, 431) and close */
  const char *why;
  const char *method; /* "GET", ... once complete */
  int keep_alive;
} px_web_req_t;

void px_web_req_init(px_web_req_t *r);
void px_web_req_free(px_web_req_t *r);
/* Empties it for the next request on the connection. */
void px_web_req_reset(px_web_req_t *r);
/* Feeds bytes; returns how many were used. Stops after a complete request
 * (r->complete) or an error (r->error). */
size_t px_web_req_feed(px_web_req_t *r, const char *data, size_t len);
/* A header's value (case-insensitive name), or NULL. */
const char *px_web_req_header(const px_web_req_t *r, const char *name);
/* The path of the target (no query), percent-decoding left to the caller:
 * into buf; and one query parameter, percent-decoded (1 found, 0 not). */
void px_web_req_path(const px_web_req_t *r, char *buf, size_t size);
int px_web_req_query(const px_web_req_t *r, const char *key, flt_strbuf_t *out);

typedef struct px_web_resp {
  int status;
  flt_strbuf_t head;   /* extra header lines, each ending in \r\n */
  char *body;          /* malloc()ed */
  size_t body_len;
  const char *type;    /* Content-Type */
  int sse;             /* answered by the event stream instead */
  int resend;          /* answered when the resend ends */
  int close;           /* close after it */
} px_web_resp_t;

void px_web_resp_init(px_web_resp_t *p);
void px_web_resp_free(px_web_resp_t *p);
/* Sets a JSON body (copied) or one with a message: {"error":"..."}. */
void px_web_resp_json(px_web_resp_t *p, int status, const char *json, size_t len);
void px_web_resp_error(px_web_resp_t *p, int status, const char *msg);
/* `s` as a JSON string, quotes included. */
void px_web_json_string(flt_strbuf_t *b, const char *s);
/* The whole response (status line, security headers, p->head, body) as
 * one malloc()ed buffer; for an event stream only the head. */
char *px_web_resp_bytes(const px_web_resp_t *p, size_t *len);
/* `s` quoted for a POSIX shell (single quotes; a quote inside as '\''). */
void px_web_shell_quote(flt_strbuf_t *out, const char *s, size_t len);

/* ---- api.c ------------------------------------------------------------------ */

struct px_web_resend_job;

typedef struct px_web_ctx {
  px_web_opts_t o;
  char token[33];
  char bound[300]; /* "HOST:PORT" as bound ("[::1]:8081") */
  uint16_t port;
  /* Set by a route that answers later: the event stream's filter and
   * start, or the resend to start. */
  struct flt_expr *sse_filter;
  uint64_t sse_after;
  struct px_web_resend_job *resend;
} px_web_ctx_t;

/* Answers `req` into `resp` (status 0 never: every path answers). */
void px_web_route(px_web_ctx_t *ctx, const px_web_req_t *req, px_web_resp_t *resp);

/* The event stream's next event(s) for one client: the "clear", "dropped"
 * and "flows" events since its last ones (appended to out; nothing when
 * nothing changed). */
typedef struct px_web_sse_pos {
  uint64_t after, dropped, cleared;
  uint64_t intercepts; /* px_icpt_generation() when last sent */
} px_web_sse_pos_t;
void px_web_sse_events(px_web_ctx_t *ctx, const struct flt_expr *filter, px_web_sse_pos_t *pos,
                       flt_strbuf_t *out);

/* ---- intercept_api.c -------------------------------------------------------- */

/* --intercept's routes (GET /api/intercepts, POST /api/flows/ID/resume and
 * /kill): 1 when `path` is one of them (answered into p), else 0. */
int px_web_icpt_route(px_web_ctx_t *ctx, const px_web_req_t *req, const char *path, int post,
                      px_web_resp_t *p);
/* The "intercepts" event (the waiting flows) when they changed since
 * *generation. */
void px_web_icpt_events(px_web_ctx_t *ctx, uint64_t *generation, flt_strbuf_t *out);

/* ---- resend.c ------------------------------------------------------------------ */

typedef struct px_web_resend_job px_web_resend_job_t;
/* A job for `req` edited by the JSON body `edits`; NULL with a message. */
px_web_resend_job_t *px_web_resend_new(const px_web_opts_t *o, const flt_web_request_t *req,
                                       const char *edits, size_t edits_len, char *err,
                                       size_t errlen);
/* Runs it on a thread; `done(job, ud)` is called on that thread at the end. */
int px_web_resend_run(px_web_resend_job_t *job, void (*done)(px_web_resend_job_t *, void *),
                      void *ud);
/* {"ok":true} or {"ok":false,"error":...} once done. */
const char *px_web_resend_result(const px_web_resend_job_t *job);
void px_web_resend_free(px_web_resend_job_t *job);

/* ---- the assets (generated at build time from filters/web/assets/) ---------- */

typedef struct px_web_asset {
  const char *name; /* "index.html" */
  const char *type; /* "text/html; charset=utf-8" */
  const unsigned char *data;
  size_t len;
} px_web_asset_t;
extern const px_web_asset_t px_web_assets[];
extern const size_t px_web_n_assets;

#endif
