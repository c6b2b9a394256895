/* session_answer.h — tlspeek answers a request itself, without the
 * upstream, and the client connection stays usable (proxy/README.md).
 *
 * One function, px_answer_flow(), answers a flow locally with a head and a
 * body held in memory or a file streamed from disk. --map-local and
 * --serve-from use it (px_answer_request_head decides which flows, from
 * the rules in config.h), and it is meant for filter plugins too (filter
 * ABI v2's "answer a request itself"): whoever calls it adds its own action
 * line (flt_flow_action) to the flow first.
 *
 * How the connection stays usable, unlike --block's answer (which closes):
 *  - the answer waits until its request has fully arrived (the request's
 *    body is read and dropped, never sent upstream) and until every earlier
 *    flow of the connection has its response, so pipelined answers keep
 *    their order;
 *  - while a local answer is pending or being sent, the next request head
 *    is held unparsed in the client's codec (PX_CODEC_HOLD, PX_READ_HELD)
 *    and parsed once the answer is out; nothing of a later request goes
 *    upstream before, so no upstream response can overtake it;
 *  - the response carries Content-Length (a HEAD gets none of the body) and
 *    closes only when the client asked for it (Connection: close, HTTP/1.0
 *    without keep-alive).
 * The flow goes through the usual events: request head and end, response
 * head and body, flow end (console line, HAR, JSONL, the web store).
 *
 * Files are streamed with libuv's file-system requests (uv_fs_read on the
 * loop's thread pool), 64 KiB at a time; the next read starts only once the
 * client leg's queue is below PX_HIGH_WATER (px_answer_drained, called when
 * a write to the client completes), so a 1 GiB file never sits in memory.
 *
 * The session files call these (session_http.c, session_codec.c,
 * session.c); this file calls the session back through its ops table and
 * session_state.c only. */
#ifndef TLSPEEK_SESSION_ANSWER_H
#define TLSPEEK_SESSION_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"
#include "filters/util/strbuf.h"
#include "proxy/flow.h"

typedef struct px_session px_session_t;
typedef struct px_answer px_answer_t;

/* What to answer with. */
typedef struct px_reply {
  int status;
  const char *reason;          /* NULL: the usual phrase for status */
  const flt_header_t *headers; /* without Content-Length, Transfer-Encoding and
                                  Connection, which px_answer_flow adds */
  size_t n_headers;
  const uint8_t *body;         /* copied; ignored when fd >= 0 */
  size_t body_len;
  int fd;                      /* >= 0: the body is this file's next file_len
                                  bytes, streamed; px_answer_flow owns (closes) it */
  uint64_t file_len;
} px_reply_t;

/* Answers flow `n` of session `s` (a flow of s->flows whose request is
 * arriving or has arrived, not forwarded upstream) with `r`: sent at once
 * when it can be, else once its request is complete and the flows before
 * it are answered. 0, or -1 when out of memory (the fd is closed; the
 * caller decides, e.g. closes the session). At most one local answer is
 * pending per session (others wait behind its hold). */
int px_answer_flow(px_session_t *s, px_flow_t *n, const px_reply_t *r);

/* A request head became flow `n` (not --block'ed): 1 when --map-local or
 * --serve-from answers it (it must not go upstream), 0 to forward it, 2
 * when its body decides (--serve-match url+body): its head is built as for
 * upstream but kept here (px_answer_keep) and the upstream is not
 * contacted; px_answer_request_end says what became of it. */
int px_answer_request_head(px_session_t *s, px_flow_t *n);
/* A client waiting for 100 Continue before the body of a request that is
 * answered here (px_answer_flow) gets it, when no earlier answer is still
 * to come: the body is then read and dropped. px_answer_request_head does
 * it for its own answers; other callers of px_answer_flow call it after. */
void px_answer_continue(px_session_t *s, px_flow_t *n);
/* 1 while the request arriving now is kept (px_answer_request_head's 2):
 * what would go upstream for it goes to px_answer_keep instead (up to
 * PX_ANSWER_KEEP_MAX bytes, head and body; beyond, it is answered 413 if
 * it must be forwarded). */
#define PX_ANSWER_KEEP_MAX (8u * 1024 * 1024)
int px_answer_keeps_request(const px_session_t *s);
void px_answer_keep(px_session_t *s, const char *data, size_t len);
/* 1 while a local answer is pending or being sent: the next request head
 * waits. px_answer_hold() marks it held and returns PX_CODEC_HOLD. */
int px_answer_busy(const px_session_t *s);
int px_answer_hold(px_session_t *s);
/* Request body bytes as framed (the codec's on_forward) and decoded (on_body)
 * of the request arriving now: px_answer_take_body returns 1 when they are
 * not for upstream (answered locally: dropped; or kept, see above). */
int px_answer_take_body(px_session_t *s, const char *data, size_t len);
void px_answer_request_body(px_session_t *s, const char *data, size_t len);
/* The request of flow `f` is complete. 1 when it was kept and must go
 * upstream now after all (no recorded body matched, --serve-miss forward):
 * the caller takes it with px_answer_take_kept and sends it. */
int px_answer_request_end(px_session_t *s, const px_flow_t *f);
/* Moves the kept head and body into *out (the caller frees it) and drops
 * the pending answer: the flow is forwarded like any other. 0, or -1 when
 * nothing is kept. */
int px_answer_take_kept(px_session_t *s, flt_strbuf_t *out);
/* A flow ended (session_http.c): the oldest may now be answered locally. */
void px_answer_next(px_session_t *s);
/* px_answer_drained and px_answer_mints_alone are session.c's (in
 * session_internal.h). */
/* Flow `n` is ended by someone else (an error, the session's close): the
 * local answer for it, if any, is dropped (a read in flight finishes
 * alone). NULL drops whatever is pending. */
void px_answer_forget(px_session_t *s, const px_flow_t *n);

#endif
