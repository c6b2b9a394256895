/* intercept.h — the flows that --intercept holds, as the web thread and
 * the worker threads share them (README.md, "Intercept").
 *
 * A worker that holds a flow publishes an entry (px_icpt_publish) naming
 * the flow's id and the uv_async_t of its hold, on its own loop. The flow
 * browser (proxy/web/, its own thread) lists the entries (px_icpt_json)
 * and posts the user's decision (px_icpt_decide): the registry keeps it in
 * the entry and wakes the worker through that async handle; the worker
 * takes it (px_icpt_take) and applies it on its own thread, so the web
 * thread never touches a session. The worker withdraws the entry when the
 * hold ends (decided, timed out, the connection gone); after that
 * px_icpt_decide no longer finds it, so the async handle is never sent
 * once it may be closing. One mutex guards the list; it is held for short
 * steps only (no I/O, no expression).
 */
#ifndef TLSPEEK_INTERCEPT_H
#define TLSPEEK_INTERCEPT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "filters/util/strbuf.h"

/* Body bytes a held request keeps for editing; past that the client is not
 * read until the decision, and the body cannot be replaced. */
#define PX_ICPT_MAX_BODY (1024u * 1024)
/* Headers an edit may carry. */
#define PX_ICPT_MAX_HEADERS 100

typedef enum px_icpt_verdict {
  PX_ICPT_WAITING = 0,
  PX_ICPT_RESUME, /* send it on, with the edits (if any) */
  PX_ICPT_KILL    /* answer 502 and close */
} px_icpt_verdict_t;

/* The user's decision. Each field is NULL (or has_* 0) when not edited;
 * every string is malloc()ed and owned by whoever holds the decision. */
typedef struct px_icpt_decision {
  px_icpt_verdict_t verdict;
  char *method;       /* a request's */
  char *url;
  int status;         /* a response's (0: not edited) */
  int has_headers;
  char **names, **values;
  size_t n_headers;
  int has_body;
  char *body;
  size_t body_len;
} px_icpt_decision_t;

void px_icpt_decision_free(px_icpt_decision_t *d);

typedef struct px_icpt_entry px_icpt_entry_t;

/* ---- worker threads ----------------------------------------------------------- */

/* Publishes flow `flow_id` as waiting (`response`: its response is held,
 * else its request); an edited URL must begin with `origin` (its first
 * `origin_len` bytes: "https://host:port"), followed by '/', '?' or
 * nothing. `wake` must stay open until px_icpt_withdraw. NULL when out of
 * memory. */
px_icpt_entry_t *px_icpt_publish(uint64_t flow_id, int response, const char *origin,
                                 size_t origin_len, uv_async_t *wake);
/* What the page shows and edits: the head as it would be forwarded and
 * the body held so far (copied). */
typedef enum px_icpt_body {
  PX_ICPT_BODY_PENDING = 0, /* the request is still arriving */
  PX_ICPT_BODY_COMPLETE,
  PX_ICPT_BODY_TOO_LARGE,   /* over PX_ICPT_MAX_BODY: not shown, can be replaced */
  PX_ICPT_BODY_CHUNKED      /* framed on the wire: not shown, can be replaced */
} px_icpt_body_t;
void px_icpt_set_message(px_icpt_entry_t *e, const char *head, size_t head_len, const char *body,
                         size_t body_len, px_icpt_body_t state);
/* Moves the decision out (1), or 0 while the flow still waits. */
int px_icpt_take(px_icpt_entry_t *e, px_icpt_decision_t *out);
/* Unlinks and frees the entry (NULL is fine). */
void px_icpt_withdraw(px_icpt_entry_t *e);

/* ---- the web thread ------------------------------------------------------------- */

/* Posts a decision for flow `flow_id` (ownership of d's strings passes to
 * the registry, also on failure). 0; -1 when the flow is not waiting, -2
 * when it does not fit the flow: a URL naming another origin, a method or
 * URL for a response, a status for a request (err says why). */
int px_icpt_decide(uint64_t flow_id, px_icpt_decision_t *d, char *err, size_t errlen);
/* Copies of what px_icpt_set_message gave for waiting flow `flow_id`
 * (malloc()ed, NUL-terminated; free() them; *body NULL when none), and
 * its origin into origin[300]. 0, or -1 when it does not wait. */
int px_icpt_message(uint64_t flow_id, char **head, char **body, size_t *body_len,
                    px_icpt_body_t *state, char *origin);
/* 1 when flow `flow_id` is waiting. */
int px_icpt_waiting(uint64_t flow_id);
/* Appends the waiting flows, oldest first, as JSON objects separated by
 * commas (the caller opens and closes the array): {"id":ID,"flow":FLOW,
 * "side":"request"|"response","since":MS (wall clock),"origin":"..."}.
 * `map` (may be NULL) turns the flow id into ID, the id the caller shows;
 * entries it maps to 0 are left out. Returns the number written. */
size_t px_icpt_json(flt_strbuf_t *out, uint64_t (*map)(void *ud, uint64_t flow_id), void *ud);
/* Changes since the start: the event stream sends the list again when this
 * moved. */
uint64_t px_icpt_generation(void);
/* `notify(ud)` after every publish and withdraw (on the worker's thread):
 * the web server passes uv_async_send. */
void px_icpt_set_notify(void (*notify)(void *), void *ud);

#endif
