/* session.h — one client connection and the upstream connection it pairs
 * with (proxy/README.md).
 *
 * A session lives on one worker loop from accept to close. It owns its two
 * legs (leg.h: the client's and the upstream's socket and TLS, one type for
 * both), each leg's codec (codec.h: http1, h2 or raw, what the leg's bytes
 * mean) and its flows (flow.h), and turns what the codecs report into flow
 * events for the filter chain. The legs call back through their ops. Its life is driven by one
 * state variable, changed only by px_session_set_state().
 */
#ifndef TLSPEEK_SESSION_H
#define TLSPEEK_SESSION_H

#include <stdint.h>

#include <uv.h>

#include "filters/filter.h"
#include "filters/util/log.h"
#include "filters/util/strbuf.h"
#include "proxy/config.h"
#include "proxy/dns.h"
#include "proxy/fsm.h"
#include "proxy/leg.h"
#include "proxy/codec/codec.h"
#include "proxy/flow.h"
#include "proxy/tls.h"

struct px_worker;

/* The client side's state: what the next bytes from the client mean.
 * Changed by px_session_set_state() only, along px_session_fsm. */
typedef enum px_state {
  PX_S_NEW = 0,      /* allocated, not started */
  PX_S_PROXY_HTTP,   /* explicit mode: CONNECT or absolute-form requests */
  PX_S_SOCKS,        /* SOCKS5 greeting, authentication and request */
  PX_S_PEEK,         /* waiting for the first bytes: TLS, HTTP or raw? */
  PX_S_CLIENT_HELLO, /* ClientHello seen; handshake paused for upstream */
  PX_S_CLIENT_TLS,   /* our certificate is set; handshake finishing */
  PX_S_HTTP,         /* HTTP over the tunnel / TLS / reverse listener */
  PX_S_RAW,          /* not HTTP: bytes relayed as they are */
  PX_S_ERROR_REPLY,  /* upstream failed: answer the next request, close */
  PX_S_CLOSING,
  PX_S_COUNT
} px_state_t;

/* How the client connection ends, apart from what its bytes mean: it only
 * moves forward (px_session_set_end, along px_end_fsm). */
typedef enum px_end {
  PX_END_OPEN = 0, /* serving */
  PX_END_DRAINING, /* shutting down or the client half-closed: close after the last flow */
  PX_END_FLUSHING, /* close once the client has everything (close_notify, FIN) */
  PX_END_LINGER,   /* FIN sent; reading (and dropping) until the client's EOF */
  PX_END_COUNT
} px_end_t;

/* The session timer's phase deadlines: what times out. Each has a name
 * (for "... timed out") and a handler, in the table of session_timer.c. */
typedef enum px_timer {
  PX_T_NONE = 0,
  PX_T_CLIENT_TLS,   /* "TLS handshake": the client's */
  PX_T_DNS,          /* "DNS lookup" (a backstop: the resolver has its own) */
  PX_T_CONNECT,      /* "connect" */
  PX_T_UPSTREAM_TLS, /* "upstream TLS handshake" */
  PX_T_DELIVERY,     /* "delivery": did the client take the answers? (delivery.c) */
  PX_T_LINGER,       /* "linger": after our FIN, the client's EOF */
  PX_T_COUNT
} px_timer_t;

/* What tlspeek waits for from the client, against a deadline (session_timer.c):
 * slow clients (slowloris) are cut off, whatever the upstream does. */
typedef enum px_client_wait {
  PX_WAIT_NONE = 0,
  PX_WAIT_FIRST,   /* first bytes / a complete ClientHello (or SOCKS5 set-up) */
  PX_WAIT_HEAD,    /* the rest of a request head whose first byte came */
  PX_WAIT_NEXT     /* the next request on an idle keep-alive connection */
} px_client_wait_t;

/* The upstream leg's own progress. */
typedef enum px_up_state {
  PX_UP_IDLE = 0,
  PX_UP_RESOLVING,
  PX_UP_CONNECTING,
  PX_UP_PROXY_CONNECT, /* upstream mode: waiting for the next proxy's 200 */
  PX_UP_TLS,
  PX_UP_READY,
  PX_UP_FAILED,
  PX_UP_CLOSED,   /* closing, to reconnect to another origin */
  PX_UP_RELEASED, /* closed while idle (--upstream-idle): the next request reconnects */
  PX_UP_COUNT
} px_up_state_t;

/* Whether the upstream connection may be closed while idle (upstream.c,
 * along px_bind_fsm): once connection-bound authentication (NTLM,
 * Negotiate) is seen it is kept for the rest of the session. */
typedef enum px_up_bind {
  PX_BIND_FREE = 0, /* may be released when idle */
  PX_BIND_PINNED,   /* connection-bound auth seen: kept */
  PX_BIND_COUNT
} px_up_bind_t;

/* Whether the client's bytes are read (session_state.c, along
 * px_reading_fsm), apart from flow control and the end: held while a
 * request to another origin waits for the switch of the upstream leg
 * (explicit plain HTTP), paused while the writers (transcripts, console)
 * are behind. The two are independent bits and change one at a time. */
typedef enum px_reading {
  PX_READ_ON = 0,
  PX_READ_HELD = 1,         /* a request waits in the client codec (PX_CODEC_HELD) */
  PX_READ_BACKLOG = 2,      /* counted in the worker's backlog_waiters */
  PX_READ_HELD_BACKLOG = 3, /* both */
  PX_READ_COUNT
} px_reading_t;

/* SOCKS5 set-up (socks.c): which message comes next, then how it ended. */
typedef enum px_socks_step {
  PX_SOCKS_GREETING = 0,
  PX_SOCKS_AUTH,    /* username/password (--proxyauth) */
  PX_SOCKS_REQUEST, /* CONNECT */
  PX_SOCKS_DONE,    /* answered "succeeded": the tunnel's bytes follow */
  PX_SOCKS_REFUSED,
  PX_SOCKS_COUNT
} px_socks_step_t;

/* The tables (session_state.c, upstream.c, modes/socks.c). */
extern const px_fsm_t px_session_fsm;
extern const px_fsm_t px_end_fsm;
extern const px_fsm_t px_up_fsm;
extern const px_fsm_t px_socks_fsm;
extern const px_fsm_t px_bind_fsm;
extern const px_fsm_t px_reading_fsm;


typedef struct px_session px_session_t;

/* What setting up the upstream leg needs and an idle connection does not
 * (upstream.c): allocated when a connect starts (px_upstream_start), freed
 * once the leg is ready, or with the session when it failed (the failure's
 * text stays in the session's up_error). */
typedef struct px_up_setup {
  px_dns_query_t *dnsq;        /* the pending lookup, or NULL */
  px_dns_addrs_t addrs;        /* where the upstream may be reached */
  int addr_next;               /* the next of `addrs` to try */
  uv_connect_t connect_req;
  flt_strbuf_t proxy_resp;     /* upstream mode: the next proxy's answer */
  char last_err[128];          /* the last address's connect error */
  uint64_t t_phase;            /* uv_hrtime() when the current set-up phase began */
} px_up_setup_t;

/* How the files below the session reach it. session.c fills one table
 * (with the functions of session.c, session_codec.c, session_http.c,
 * session_state.c and session_timer.c) and
 * every session points at it; the legs' owners, the upstream set-up, the
 * modes, the deadlines and the worker call the session back through it (the
 * static inline px_* functions below), not by linking to those files: the
 * session owns and calls down, the rest calls back (tests/check_calls.py
 * finds no two files of the core calling each other both ways). */
typedef struct px_session_ops {
  void (*close)(px_session_t *s, const char *why);
  void (*fail_with)(px_session_t *s, int level, const char *about, const char *text, int then);
  void (*drain)(px_session_t *s);
  void (*maybe_finish)(px_session_t *s);
  void (*update_reading)(px_session_t *s);
  void (*send)(px_session_t *s, int to_upstream, const void *data, size_t len);
  void (*batch)(px_session_t *s, int to_upstream, int begin);
  void (*write_owned)(px_session_t *s, px_leg_t *to, void *buf, size_t len);
  void (*flush_tls)(px_session_t *s, px_leg_t *leg);
  void (*set_target)(px_session_t *s, const char *host, uint16_t port);
  void (*peek)(px_session_t *s, const char *data, size_t len);
  void (*upstream_ready)(px_session_t *s);
  void (*upstream_failed)(px_session_t *s);
  void (*upstream_plaintext)(px_session_t *s, const char *data, size_t len);
  void (*upstream_closed)(px_session_t *s);
  void (*reply_error)(px_session_t *s, int status, const char *reason, const char *extra,
                      const char *text);
  void (*set_deadline)(px_session_t *s, uint64_t ms, px_timer_t what);
  void (*relay)(px_session_t *s, int passthrough);
  void (*flow_finish)(px_session_t *s, const char *error); /* ends the oldest flow */
} px_session_ops_t;

struct px_session {
  const px_session_ops_t *ops; /* session.c's table, set by px_session_new */
  struct px_worker *w;
  const px_listen_cfg_t *lc;   /* the listener's mode */
  px_state_t state;
  flt_conn_t conn;

  px_leg_t client;             /* the two sides (leg.h) */
  px_leg_t upstream;
  uv_timer_t timer;
  int handles_open;            /* close callbacks still to come */
  int loopguard_registered;    /* upstream's local address is in loopguard */
  int leaf_set;                /* our certificate is on client.tls */
  int client_app_data;         /* the client sent data over its TLS */
  int rejection_noted;         /* passthrough.c reported this session */
  int plugin_passthrough;      /* a plugin asked to pass it through (flowact.c) */
  px_socks_step_t socks_step;  /* socks.c, along px_socks_fsm */
  int up_tunnel;               /* upstream mode: CONNECT through the next proxy */

  /* client side */
  flt_strbuf_t peek;           /* first bytes, until the protocol is known */
  flt_strbuf_t hello_raw;      /* TLS bytes until we decide to intercept:
                                  replayed upstream for a passthrough */
  const unsigned char *alpn_offer; /* client's ALPN list (wire format) filtered
                                  to what we speak: a constant, or NULL */
  size_t alpn_offer_len;

  /* upstream side */
  px_up_state_t up;            /* changed by px_upstream_set_state() only */
  char *up_host;               /* where to connect (exact size; "" until set) */
  uint16_t up_port;
  char *up_name;               /* name to verify (and send as SNI), the same way */
  int up_tls_wanted;
  px_up_setup_t *up_setup;     /* while the leg is being set up, else NULL */
  char *up_error;              /* why the upstream leg failed (exact size), or NULL */
  int up_error_status;         /* 502, 504 ... */
  X509 *up_cert;               /* upstream leaf certificate (ref held) */
  const char *up_cert_file;    /* --client-cert file offered upstream, or NULL */
  int up_cert_requested;       /* the upstream asked for a client certificate */
  px_up_bind_t up_bind;        /* changed by px_upstream_set_bind() only */
  int up_idle_counted;         /* counted in the worker's idle_upstreams */
  int up_idle_fast;            /* ... beyond its limit when counted: released soon */
  uint64_t quiet_at;           /* last_activity when the connection last went
                                  quiet (px_upstream_quiet) */

  /* HTTP: each leg's codec is client.codec and upstream.codec (codec.h) */
  px_flows_t flows;            /* flow.h: in order; the one whose request arrives */
  int resp_status;             /* status of the upstream's last response head */
  size_t resp_head_mark;       /* client.batch.len before the current response's
                                  head, SIZE_MAX when not in this batch */
  int tls_sniffed;             /* the first decrypted bytes were classified */
  int auth_mask;               /* px_proxyauth_mask_stream state of client reads */
  struct px_answer *answer;    /* tlspeek's own answer pending or being sent
                                  (session_answer.h), or NULL */
  struct px_ws *ws;            /* session_ws.c: after a WebSocket upgrade, its flow
                                  and frame readers; else NULL */
  struct px_h2_line *h2_line;  /* an h2 client's requests to an HTTP/1 upstream
                                  (session_h2_h1.c), or NULL */

  px_end_t end;                /* how the client connection ends (px_session_set_end) */
  px_reading_t reading;        /* held / paused for backlog (px_session_set_reading) */
  struct px_icpt_hold *icpt;   /* session_intercept.c: a flow held by --intercept */
  int icpt_pause;              /* ... and until it is decided, 1: the client is not
                                  read, 2: the upstream is not */
  px_client_wait_t client_wait; /* session_timer.c: what the client must send */
  uint64_t client_deadline;    /* uv_now by which it must have sent it */
  uint64_t last_activity;      /* uv_now of the last byte moved */
  uint64_t deadline;           /* uv_now when the current phase times out */
  int answered_after_eof;      /* a flow ended after the client's EOF */
  uint64_t delivery_until;     /* uv_now until which delivery.c waits to
                                  learn whether the client took them */
  px_timer_t deadline_what;    /* what times out at `deadline`, PX_T_NONE for nothing */

  /* actions that need state of their own, allocated only while used */
  struct px_remote_home *remote_home; /* action_remote.h: the connection's own origin,
                                         once a request was mapped away from it */
  struct px_throttle *throttle; /* throttle.h: while a throttled flow is in progress */

  struct px_session *prev, *next; /* worker's list of live sessions */
};

/* The two halves of accepting (accept.c calls both for each accepted
 * connection), apart so that a session can also be run on a
 * socket that was not accepted (tests/fuzz/fuzz_session.c opens socketpair
 * ends into s->client). px_session_new allocates and links the session with
 * s->client initialised but not connected (NULL when out of memory; close it
 * with px_session_close). px_session_start sets the state for the listener's
 * mode, announces the connection and starts reading s->client. */
px_session_t *px_session_new(struct px_worker *w, const px_listen_cfg_t *lc);
void px_session_start(px_session_t *s);
/* A log line about the session: "session N: " and the rest (`fmt` must be a
 * string literal). Formats nothing when `level` is not logged. */
#define px_session_log(s, level, fmt, ...)                                                     \
  do {                                                                                         \
    if (flt_log_level() >= (level))                                                            \
      flt_log((level), "session %llu: " fmt, (unsigned long long)(s)->conn.id, ##__VA_ARGS__); \
  } while (0)

/* The one failure path of a session: one log line at `level` ("session N:
 * CLIENT: ABOUT: TEXT", ABOUT left out when NULL), the error event with
 * TEXT, then `then`: PX_FAIL_CLOSE closes, an HTTP status (400, 502, 504,
 * 508 ...) answers the client with it and closes once it is sent
 * (px_reply_error), PX_FAIL_KEEP leaves the rest to the caller. */
#define PX_FAIL_CLOSE 0
#define PX_FAIL_KEEP (-1)
static inline void px_session_fail(px_session_t *s, int level, const char *about, const char *text,
                                   int then) {
  s->ops->fail_with(s, level, about, text, then);
}
/* The reason phrase tlspeek answers `status` with ("Bad Gateway"). */
const char *px_session_status_reason(int status);
/* Closes the session (idempotent). `why` is logged at debug level. */
static inline void px_session_close(px_session_t *s, const char *why) { s->ops->close(s, why); }
/* Stop reading new requests; close when idle (used at shutdown). */
static inline void px_session_drain(px_session_t *s) { s->ops->drain(s); }

/* Changes the state (the only place that does) when px_session_fsm allows
 * it, tracing the transition; refuses (an error line) otherwise. */
void px_session_set_state(px_session_t *s, px_state_t next);
/* Moves the end forward to `next` (nothing when it is there or beyond). */
void px_session_set_end(px_session_t *s, px_end_t next);
/* Sets or clears `bit` (PX_READ_HELD or PX_READ_BACKLOG) of the client's
 * reading, the same way along px_reading_fsm. */
void px_session_set_reading(px_session_t *s, px_reading_t bit, int on);
/* The upstream side's state (upstream.c), the same way along px_up_fsm. */
void px_upstream_set_state(px_session_t *s, px_up_state_t next);
/* Pins the upstream connection (upstream.c, along px_bind_fsm). */
void px_upstream_set_bind(px_session_t *s, px_up_bind_t next);
/* No upstream connection: none yet (IDLE) or closed while idle (RELEASED). */
static inline int px_upstream_unconnected(const px_session_t *s) {
  return s->up == PX_UP_IDLE || s->up == PX_UP_RELEASED;
}

/* ---- between session.c, session_http.c and upstream.c ----------------- */

static inline void px_send_client(px_session_t *s, const void *data, size_t len) {
  s->ops->send(s, 0, data, len);
}
/* Writes bytes to a leg of the session; takes ownership of `buf`
 * (malloc'd) and frees it when the write completes. A failure closes the
 * session. */
static inline void px_write_owned(px_session_t *s, px_leg_t *to, void *buf, size_t len) {
  s->ops->write_owned(s, to, buf, len);
}
/* Writes out what the leg's TLS wants to send (px_write_owned). */
static inline void px_flush_tls(px_session_t *s, px_leg_t *leg) { s->ops->flush_tls(s, leg); }
/* The loop's clock (uv_now) of the session's worker, in ms. */
static inline uint64_t px_session_now(const px_session_t *s) { return uv_now(s->timer.loop); }
static inline void px_send_upstream(px_session_t *s, const void *data, size_t len) {
  s->ops->send(s, 1, data, len);
}
/* Between begin and end, sends to that side are gathered and go out as one
 * write (one TLS record run) at the end. The events of the input (e.g. a
 * flow's end, and so its transcript entry) thereby come before its bytes
 * reach the peer. A close waiting for the client's output (px_maybe_finish)
 * waits for the gathered bytes too; ending a client batch checks again. */
static inline void px_batch_begin(px_session_t *s, int to_upstream) { s->ops->batch(s, to_upstream, 1); }
static inline void px_batch_end(px_session_t *s, int to_upstream) { s->ops->batch(s, to_upstream, 0); }
static inline void px_update_reading(px_session_t *s) { s->ops->update_reading(s); }
/* Arms the phase deadline: `what` times out after `ms`; PX_T_NONE clears it. */
static inline void px_set_deadline(px_session_t *s, uint64_t ms, px_timer_t what) {
  s->ops->set_deadline(s, ms, what);
}
/* Once the end is PX_END_FLUSHING: once every write is out (a batch for the
 * client included), close_notify, FIN and close. */
static inline void px_maybe_finish(px_session_t *s) { s->ops->maybe_finish(s); }

/* session_timer.c: the name of a phase deadline ("TLS handshake"). */
const char *px_session_timer_name(px_timer_t what);
/* Restarts the session timer for the soonest of its deadlines. */
void px_session_timer_restart(px_session_t *s);

/* delivery.c: whether the client is still there (flt_conn_t's
 * client_eof_us and client_gone_us). px_delivery_client_left(): its EOF (FIN,
 * close_notify or reset) arrived. px_delivery_client_gone(): it is known to be gone
 * (reset, failed write). px_delivery_pending(): called before the
 * close that follows the answers sent after the client's EOF; returns 1
 * while its kernel has neither acknowledged them nor reset the connection
 * (then the "delivery" deadline calls px_maybe_finish again, for at most
 * PX_DELIVERY_WAIT_MS; not known by then counts as taken), 0 when that is
 * decided. px_delivery_check_gone(): at close, a client that reset after
 * its EOF is gone. */
#define PX_DELIVERY_WAIT_MS 2000
#define PX_DELIVERY_POLL_MS 5
void px_delivery_client_left(px_session_t *s);
void px_delivery_client_gone(px_session_t *s);
int px_delivery_pending(px_session_t *s);
void px_delivery_check_gone(px_session_t *s);

/* session_timer.c: client deadlines. px_session_timer_deadline_update() looks at the
 * session's state and framer and arms (from now) what the client must send
 * next, keeps a deadline already running for the same thing, or clears it;
 * call it whenever that may have changed. px_session_timer_deadline_start() arms
 * `what` from now whatever ran before (a new connection, a new tunnel).
 * px_session_timer_deadline_expired() is the timer's verdict: 408 for an
 * incomplete request head when no response has begun, else close; one log
 * line, rate-limited per worker thread. */
void px_session_timer_deadline_update(px_session_t *s);
void px_session_timer_deadline_start(px_session_t *s, px_client_wait_t what);
void px_session_timer_deadline_expired(px_session_t *s);
/* "session N: CLIENT: text" at info level, for what a client did wrong
 * (too slow, no credentials); at most a few per 10 s and worker thread, the
 * rest at debug level and counted. */
void px_session_timer_log_client(px_session_t *s, const char *text);

/* upstream.c */
/* Starts setting the upstream leg up (allocating s->up_setup): resolve,
 * connect, CONNECT through the next proxy, TLS. Nothing when closing. */
void px_upstream_start(px_session_t *s);
/* Sets up_host (unless `host` is NULL) and up_name to exact-size copies of
 * `host` and `name`; (NULL, NULL) sets both to "" (a new session). 0, or -1
 * when out of memory: the session is closed, the name is "". */
int px_upstream_set_names(px_session_t *s, const char *host, const char *name);
/* Cancels a lookup in progress (its callback never runs). */
void px_upstream_cancel_lookup(px_session_t *s);
/* Frees what the session's upstream side holds (the set-up, the failure's
 * text, up_host and up_name): at the end of the session. */
void px_upstream_free(px_session_t *s);
/* The upstream side failed: `status` (502, 504, 508) and the text for the
 * client and the log go to up_error*, the state to FAILED, then
 * px_session_upstream_failed() answers or closes. The text is kept at its
 * length ("out of memory" when even that fails). */
void px_upstream_fail(px_session_t *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when `host`:`port` names one of tlspeek's own listeners without a
 * lookup (a numeric address in any spelling, or localhost); `why` then
 * says so. Names that need DNS are checked after resolution instead. */
int px_upstream_targets_us(const char *host, uint16_t port, char *why, size_t len);
void px_upstream_on_read(px_session_t *s, const char *data, size_t len);
/* Between requests with nothing in flight: may the upstream leg be closed
 * (and reopened by the next request)? */
int px_upstream_releasable(const px_session_t *s);
/* How long an idle upstream stays open (ms): --upstream-idle, or a short
 * while when the worker already held many idle upstreams as it became
 * idle (px_upstream_count_idle decides). */
uint64_t px_upstream_release_delay(const px_session_t *s);
/* Counts (or stops counting) the session's upstream as idle. */
void px_upstream_count_idle(px_session_t *s, int idle);
/* When (uv_now) the connection is due to go quiet, UINT64_MAX when it is
 * not between requests with its upstream open (as px_upstream_releasable
 * asks, whatever --upstream-idle and the binding say) or already quiet
 * since its last byte moved. */
uint64_t px_upstream_quiet_due(const px_session_t *s);
/* Gives back both legs' framers and empty memory BIOs, keeping both
 * connections open; the next bytes make them again. */
void px_upstream_quiet(px_session_t *s);
/* Forgets the upstream's TLS, certificate, addresses and response framer:
 * the leg is IDLE, ready to connect again (the socket is closed apart). */
void px_upstream_reset(px_session_t *s);
/* Closes the idle upstream leg, keeping the client's connection. */
void px_upstream_release(px_session_t *s);
/* Reopens a released upstream leg for the next request. */
void px_upstream_reconnect(px_session_t *s);
/* Re-arms the session timer when a sooner wake-up is due (a flow ended). */
void px_session_timer_rearm(px_session_t *s);
/* The upstream leg is about to end: send TLS close_notify when its handshake
 * finished cleanly, so its session stays resumable (see upstream.c). */
void px_upstream_tls_close(px_session_t *s);
/* Close callback bookkeeping for the upstream socket; returns the session,
 * or NULL when the session is closing (it was told and may be gone). */
px_session_t *px_upstream_handle_closed(uv_handle_t *h);
/* The upstream socket is about to close: drop it from the loop guard. */
void px_upstream_forget(px_session_t *s);
/* Called by upstream.c when the leg is usable or has failed. */
static inline void px_session_upstream_ready(px_session_t *s) { s->ops->upstream_ready(s); }
static inline void px_session_upstream_failed(px_session_t *s) { s->ops->upstream_failed(s); }
/* Sets where the upstream leg goes (and what the conn shows). */
static inline void px_session_set_target(px_session_t *s, const char *host, uint16_t port) {
  s->ops->set_target(s, host, port);
}
/* transparent.c: the original destination (SO_ORIGINAL_DST or TPROXY) as
 * the target; refuses (and closes, returning -1) loops. */
int px_transparent_destination(px_session_t *s);
/* passthrough.c: at the first ClientHello (its JA4 known), relays the
 * connection untouched (returns 1) when --ignore-hosts says so, or an
 * automatic passthrough still runs for this client program and host. */
int px_passthrough_maybe(px_session_t *s);
/* passthrough.c: the client failed the handshake after our certificate:
 * `err` is OpenSSL's first error (an alert received), `closed` says it
 * closed the connection. When that means it refuses the certificate,
 * reports it (once per client program and host every 10 minutes, on the
 * console and on stderr) and, with --auto-passthrough, decides a
 * passthrough for that client program and host. */
void px_passthrough_note_rejection(px_session_t *s, unsigned long err, int closed);
/* passthrough.c: the same for a client that finished the handshake and then
 * closed, or sent an alert (`err`), before any application data — clients
 * that check the certificate after the handshake (GnuTLS, Node) do that. */
void px_passthrough_note_early_close(px_session_t *s, unsigned long err);
/* socks.c: SOCKS5 bytes from the client. */
void px_socks_input(px_session_t *s, const char *data, size_t len);
/* Bytes that arrived after CONNECT's 200: decide TLS, HTTP or raw. */
static inline void px_session_peek(px_session_t *s, const char *data, size_t len) {
  s->ops->peek(s, data, len);
}

/* session_codec.c: from here on the client's bytes are relayed as they
 * are, both ways: the state becomes PX_S_RAW and both legs run the raw
 * codec (raw TCP, TLS that is not HTTP). With `passthrough`, the client's
 * TLS itself is relayed untouched (passthrough.c): the connection is marked
 * so (conn.passthrough, kind raw TLS), the upstream leg gets no TLS of its
 * own and the client leg's TLS is dropped. */
static inline void px_session_relay(px_session_t *s, int passthrough) {
  s->ops->relay(s, passthrough);
}

/* session_codec.c: each leg's plaintext goes to its codec; the upstream's
 * EOF. session_http.c: error replies. */
static inline void px_upstream_plaintext(px_session_t *s, const char *data, size_t len) {
  s->ops->upstream_plaintext(s, data, len);
}
static inline void px_upstream_closed(px_session_t *s) { s->ops->upstream_closed(s); }
/* Answers the client with an error response and closes after it is sent. */
static inline void px_reply_error(px_session_t *s, int status, const char *reason,
                                  const char *text) {
  s->ops->reply_error(s, status, reason, "", text);
}
/* The same with `extra` header lines ("Name: value\r\n" each, or ""). */
static inline void px_reply_error_hdr(px_session_t *s, int status, const char *reason,
                                      const char *extra, const char *text) {
  s->ops->reply_error(s, status, reason, extra, text);
}

#endif
