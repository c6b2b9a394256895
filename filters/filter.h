/* filter.h — the flow-event API between the proxy core and everything that
 * observes traffic (console view, transcripts, actions, user plugins).
 *
 * The core turns decrypted bytes into events and calls every filter in the
 * chain, in order. The core knows nothing about terminals or file formats.
 *
 * Threads and lifetimes:
 *  - Events of one connection are delivered from one thread (the worker loop
 *    that owns the session), in order. Different connections may call the
 *    same filter from different threads at the same time: a filter's shared
 *    state must be protected by the filter itself.
 *  - Every pointer passed to a callback is borrowed and valid only for the
 *    duration of the call, except `flt_conn_t` and `flt_flow_t`, which stay
 *    valid from their open/head event until their close/end event returns.
 *  - Callbacks must not block for long: they run on an event loop.
 *  - Every callback is optional (NULL = not interested).
 */
#ifndef TLSPEEK_FILTER_H
#define TLSPEEK_FILTER_H

#include <stddef.h>
#include <stdint.h>

/* Version 2 added the core's actions for plugins (flt_core_ops_t: edit a
 * head, replace a body, answer a request, pass a connection through) and
 * the ops on_body_complete and on_client_hello. A v1 plugin still loads:
 * v1's structs are prefixes of v2's. */
#define FLT_ABI_VERSION 2
#define FLT_ABI_MIN_VERSION 1
#define FLT_MAX_FILTERS 16
/* Interim (1xx) responses kept per flow (flt_flow_t.interim). */
#define FLT_MAX_INTERIM 8

typedef enum flt_dir {
  FLT_DIR_REQUEST = 0, /* client -> upstream */
  FLT_DIR_RESPONSE = 1 /* upstream -> client */
} flt_dir_t;

/* The two TLS legs of an intercepted connection. */
typedef enum flt_leg {
  FLT_LEG_CLIENT = 0,  /* client <-> tlspeek (tlspeek is the server) */
  FLT_LEG_UPSTREAM = 1 /* tlspeek <-> upstream (tlspeek is the client) */
} flt_leg_t;

typedef enum flt_conn_kind {
  FLT_CONN_HTTP = 0,   /* plaintext HTTP */
  FLT_CONN_HTTPS = 1,  /* intercepted TLS carrying HTTP */
  FLT_CONN_RAW = 2,    /* not HTTP: relayed as a byte stream */
  FLT_CONN_RAW_TLS = 3 /* intercepted TLS carrying something else */
} flt_conn_kind_t;

/* One connection: a client and the upstream it talks to. */
typedef struct flt_conn {
  uint64_t id;             /* session id, unique per process */
  int worker;              /* worker thread index */
  char client[64];         /* client "ip:port" ("[v6]:port" for IPv6) */
  char server_host[256];   /* host the client asked for (CONNECT/SNI/Host) */
  uint16_t server_port;
  char server_addr[64];    /* upstream "ip:port" once connected, else "" */
  flt_conn_kind_t kind;
  int client_tls;          /* client leg is TLS */
  int upstream_tls;        /* upstream leg is TLS */
  int passthrough;         /* relayed without interception (pinned, ignored) */
  /* TLS facts of the client leg, filled before tls_established. */
  char sni[256];
  char tls_version[16];    /* "TLSv1.3" */
  char cipher[64];         /* OpenSSL name */
  char alpn[32];
  uint64_t start_us;       /* wall clock, microseconds since the epoch */
  /* Upstream leg set-up, microseconds; -1 when not applicable. Only the
   * first flow of a connection paid for them (HAR: later flows get -1) —
   * or of a reconnection: when the core closes an idle upstream
   * (--upstream-idle) it sets all three to -1 and keeps server_addr, and
   * the next request's set-up fills them again. */
  int64_t dns_us, connect_us, ssl_us;
  char up_tls_version[16]; /* TLS facts of the upstream leg */
  char up_cipher[64];
  char up_alpn[32];
  /* Upstream certificate verification: "ok", or OpenSSL's reason (with -k
   * the connection goes on anyway). Empty until the upstream TLS is up. */
  char up_verify[128];
  /* Fingerprints of the client's ClientHello (filled by the core before
   * on_tls_established when handshakes are dissected; else empty). */
  char ja3[33];            /* MD5 of the JA3 string, hex */
  char ja4[48];
  uint64_t bytes_in;       /* bytes received from the client (wire) */
  uint64_t bytes_out;      /* bytes received from upstream (wire) */
  void *fctx[FLT_MAX_FILTERS]; /* per-filter connection context */
  /* Bit i set: filter slot i's expression does not match this connection
   * (decided by host-level terms when its first bytes flow); the chain then
   * skips that filter's on_data/on_raw/on_keylog/on_wire/on_tls_message.
   * Also decided (when it can be) before on_error and on_conn_close, which
   * every filter gets: a view hides what `hidden` says is not its own. */
  uint32_t hidden;
  int hidden_decided;
  int match_ready;         /* set by the core once host and SNI are known */
  /* The client's side of the connection (wall clock, microseconds; 0 = not
   * so). client_eof_us: its FIN, close_notify or reset arrived (it may
   * still read: an HTTP/1 client may half-close after its request).
   * client_gone_us: it is known to be gone, since that moment — it reset
   * the connection, a write to it failed, or it did not take the answers
   * sent after its EOF (a closed socket answers data with a reset); then
   * client_gone_us is its EOF's time. Set before the flow_end of a flow it
   * abandoned, or at the latest before on_conn_close. */
  uint64_t client_eof_us;
  uint64_t client_gone_us;
  /* ABI 2: the core's actions (flt_conn_passthrough); set by the core. */
  const struct flt_core_ops *core;
} flt_conn_t;

/* The client gave up on a flow that ended at end_us (wall clock, us): it
 * was known gone by then. The console's "aborted by client" and the web
 * page's "aborted" state both use this rule; a flow answered after the
 * client's EOF is decided again at on_conn_close, when client_gone_us is
 * final. */
static inline int flt_client_aborted(const flt_conn_t *c, uint64_t end_us) {
  return c != NULL && c->client_gone_us != 0 && c->client_gone_us <= end_us;
}

typedef struct flt_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} flt_header_t;

/* A request or response head, as parsed (headers in wire order). */
typedef struct flt_head {
  int http_major, http_minor;
  const char *method;      /* request only, NUL-terminated */
  const char *url;         /* request only: target as sent (NUL-terminated) */
  int status;              /* response only */
  const char *reason;      /* response only (NUL-terminated) */
  const flt_header_t *headers;
  size_t n_headers;
  size_t head_bytes;       /* size of the head on the wire */
} flt_head_t;

/* One request and its response. */
typedef struct flt_flow {
  uint64_t id;             /* unique per process */
  flt_conn_t *conn;
  char scheme[8];          /* "http" / "https" */
  char *url;               /* absolute URL: scheme://host[:port]/path */
  flt_head_t req;          /* valid from on_request_head */
  flt_head_t resp;         /* valid from on_response_head */
  int has_response;
  uint64_t req_body_bytes;   /* decoded (de-chunked) body bytes so far */
  uint64_t resp_body_bytes;
  uint64_t t_start_us;     /* request head complete (wall clock) */
  uint64_t t_req_end_us;
  uint64_t t_resp_head_us;
  uint64_t t_end_us;       /* response complete */
  const char *error;       /* set when the flow ended in an error */
  void *fctx[FLT_MAX_FILTERS]; /* per-filter flow context */
  /* Bit i set: the expression of filter slot i (--har-filter, -f, ...) does
   * not match this flow, so that filter must not show or record it. Final
   * when on_flow_end is called (body terms need the whole flow). */
  uint32_t hidden;
  char tags[128];          /* space-separated; see flt_flow_tag() */
  void *chain_ctx;         /* the chain's own per-flow state */
  /* The heads as tlspeek forwarded them, when an action (--set-header,
   * --remove-header) changed them; NULL when forwarded as received. `req`
   * and `resp` stay the heads as received (expressions match those).
   * req_sent is set before on_request_head, resp_sent before
   * on_response_head; both stay valid until on_flow_end returns. The
   * rewrites every proxy makes (hop-by-hop fields, an absolute-form
   * target, Host) are not action edits and are not reflected here; the
   * target and Host of --map-remote are. When a
   * plugin edits a head in its head event (flt_flow_set_header), the
   * pointer is replaced after that event by a copy with its edits (the
   * former copy stays valid too). The framing fields a rewritten body
   * changes (bodyhold: Content-Length, ...) are not action edits either. */
  const flt_head_t *req_sent;
  const flt_head_t *resp_sent;
  /* Interim (1xx) responses relayed to the client before the final one,
   * in order (101 Switching Protocols is final, not interim). Each head
   * is valid until on_flow_end returns. At most FLT_MAX_INTERIM are kept;
   * later ones are relayed but not listed. Complete when on_response_head
   * runs (or on_flow_end, for a flow that got no final response). */
  const flt_head_t *const *interim;
  size_t n_interim;
  /* What the actions that changed this flow did, one line each ("tag:
   * detail"), separated by '\n'; NULL when none did. Added with
   * flt_flow_action(); owned by the flow. */
  char *actions;
  /* ABI 2: the core's actions (flt_flow_set_header, ...); set by the core. */
  const struct flt_core_ops *core;
  /* The response's trailers (HTTP/2 trailers: gRPC's grpc-status), set
   * before on_flow_end and valid until it returns; NULL when none. Only
   * headers are meaningful (no status, method or url). */
  const flt_head_t *resp_trailers;
} flt_flow_t;

/* The filter vtable. `self` is the filter instance's own pointer. Slot `idx`
 * (given to init) is this filter's index into fctx[] arrays. */
typedef struct flt_ops {
  int abi_version;         /* FLT_ABI_VERSION */
  const char *name;
  void (*on_conn_open)(void *self, flt_conn_t *c);
  /* TLS with the client is up (client_tls conns only). */
  void (*on_tls_established)(void *self, flt_conn_t *c);
  void (*on_request_head)(void *self, flt_flow_t *f);
  /* Body bytes, de-chunked but still content-encoded (gzip, br, ...). */
  void (*on_request_body)(void *self, flt_flow_t *f, const uint8_t *data,
                          size_t len);
  void (*on_request_end)(void *self, flt_flow_t *f);
  void (*on_response_head)(void *self, flt_flow_t *f);
  void (*on_response_body)(void *self, flt_flow_t *f, const uint8_t *data,
                           size_t len);
  /* Last event of a flow: the response is complete, or the flow ended
   * without one (f->error says why). The flow is freed after this. */
  void (*on_flow_end)(void *self, flt_flow_t *f);
  /* Bytes of a non-HTTP stream (raw conns, after an Upgrade). */
  void (*on_raw)(void *self, flt_conn_t *c, flt_dir_t dir,
                 const uint8_t *data, size_t len);
  /* A connection-level error (upstream failure, bad request, timeout). */
  void (*on_error)(void *self, flt_conn_t *c, const char *msg);
  void (*on_conn_close)(void *self, flt_conn_t *c);
  /* Called once at shutdown, from the main thread, after all workers have
   * stopped. Flush and free here. */
  void (*on_shutdown)(void *self);
  /* Bytes as received from one side, decrypted when that leg is TLS, before
   * any rewriting: the two byte streams of the connection (for PCAP). */
  void (*on_data)(void *self, flt_conn_t *c, flt_dir_t dir,
                  const uint8_t *data, size_t len);
  /* One NSS key log line (no newline) of a TLS leg of `c` (client leg and
   * upstream leg alike), as OpenSSL's keylog callback produces it. */
  void (*on_keylog)(void *self, flt_conn_t *c, const char *line);
  /* A TLS protocol message of one leg, from OpenSSL's message callback:
   * content_type 22 = a whole handshake message (4-byte header included;
   * in TLS 1.3 also the ones that travel encrypted), 20 = ChangeCipherSpec,
   * 21 = alert. `sent` is 1 when tlspeek sent it on that leg, 0 when it
   * received it. `version` is the protocol version (0x0303, 0x0304). */
  void (*on_tls_message)(void *self, flt_conn_t *c, flt_leg_t leg, int sent,
                         int content_type, int version, const uint8_t *data,
                         size_t len);
  /* Bytes exactly as they cross a socket of `leg` — what a sniffer sees
   * (TLS records on TLS legs, plaintext on plain legs). `sent` as above.
   * Delivered in order per leg and direction, before the plaintext they
   * carried (on_data) for received bytes. */
  void (*on_wire)(void *self, flt_conn_t *c, flt_leg_t leg, int sent,
                  const uint8_t *data, size_t len);
  /* ---- ABI 2 (read only when abi_version >= 2) ---- */
  /* The whole body of one side of `f`, when a filter asked for it with
   * flt_flow_want_body() (or --replace buffered it): Content-Encoding
   * removed, at most --body-cap bytes. The head of that side has not been
   * sent yet; flt_flow_replace_body() here gives the body that is sent
   * instead (identity, with Content-Length). Filters see it in chain order,
   * each the body as the previous one left it. Not called for a body that
   * went over the cap or did not decode (it is passed on untouched). */
  void (*on_body_complete)(void *self, flt_flow_t *f, flt_dir_t dir, const uint8_t *data,
                           size_t len);
  /* A TLS ClientHello arrived (host and SNI known, nothing answered yet):
   * the last moment to call flt_conn_passthrough(). */
  void (*on_client_hello)(void *self, flt_conn_t *c);
  /* A WebSocket message of flow `f` (ABI 2, like the two above): the
   * request that was answered by 101 with Upgrade: websocket. That flow stays open while the WebSocket
   * does: its on_flow_end comes when the connection closes (f->error is
   * NULL when a close frame was seen, else why it ended), and its messages
   * come between its on_response_head and on_flow_end. `dir`: who sent it
   * (FLT_DIR_REQUEST: the client). `opcode`: FLT_WS_TEXT, FLT_WS_BINARY,
   * or a control frame (FLT_WS_CLOSE: `data` is the code, two bytes big-
   * endian, and the reason; FLT_WS_PING, FLT_WS_PONG). `data`: the whole
   * message, unmasked, its fragments joined, inflated when
   * permessage-deflate compressed it; at most 16 MiB. It arrived now
   * (flt_now_us()). Body terms of expressions (~b ~bq ~bs) see the
   * messages of each direction as the request and response body. */
  void (*on_ws_message)(void *self, flt_flow_t *f, flt_dir_t dir, int opcode,
                        const uint8_t *data, size_t len);
} flt_ops_t;

/* WebSocket opcodes (RFC 6455 section 11.8). */
#define FLT_WS_TEXT 1
#define FLT_WS_BINARY 2
#define FLT_WS_CLOSE 8
#define FLT_WS_PING 9
#define FLT_WS_PONG 10

typedef struct flt_filter {
  const flt_ops_t *ops;
  void *self;
} flt_filter_t;

/* ---- plugins ------------------------------------------------------------
 * A plugin is a shared object loaded with --load FILE.so[:ARG]. It exports
 *   const flt_plugin_t tlspeek_plugin = { FLT_ABI_VERSION, ... };
 * tlspeek loads a plugin whose abi_version (and ops->abi_version) is from
 * FLT_ABI_MIN_VERSION to FLT_ABI_VERSION, and refuses others. A v1 plugin
 * gets the v1 events only. Plugins run before the console and the
 * transcripts, so tags they set in on_flow_end are shown and recorded. */
#define FLT_PLUGIN_SYMBOL "tlspeek_plugin"

typedef struct flt_plugin {
  int abi_version;         /* FLT_ABI_VERSION the plugin was built with */
  const char *name;
  const char *description;
  const flt_ops_t *ops;
  /* Makes the instance (`self` of the ops). `arg` is what followed ':' in
   * --load (NULL when none); `slot` is the plugin's index into fctx[].
   * Returns NULL with a sentence in err to refuse to start. */
  void *(*create)(const char *arg, int slot, char *err, size_t errlen);
  /* Called after on_shutdown, from the main thread. */
  void (*destroy)(void *self);
} flt_plugin_t;

/* ---- the chain ------------------------------------------------------- */

struct flt_expr;

typedef struct flt_chain {
  flt_filter_t filters[FLT_MAX_FILTERS];
  int n;
  struct flt_expr *exprs[FLT_MAX_FILTERS]; /* NULL: the filter sees all */
  int need_body;           /* an expression has body terms (~b ~bq ~bs) */
  size_t body_cap;         /* body bytes kept per message for them */
} flt_chain_t;

/* Adds a filter; returns its slot index or -1 when the chain is full or the
 * ABI version is not from FLT_ABI_MIN_VERSION to FLT_ABI_VERSION. */
int flt_chain_add(flt_chain_t *chain, const flt_ops_t *ops, void *self);

/* Gives filter `slot` an expression (the chain owns it from now on): the
 * flows it does not match are marked in f->hidden before on_flow_end.
 * Body terms are evaluated on the decoded bodies, at most `body_cap` bytes
 * each, once per flow. */
void flt_chain_set_expr(flt_chain_t *chain, int slot, struct flt_expr *e,
                        size_t body_cap);
void flt_chain_free(flt_chain_t *chain);

/* Adds `tag` to the flow's tags (shown by the console and recorded in
 * transcripts). Call before on_flow_end returns to the core. */
void flt_flow_tag(flt_flow_t *f, const char *tag);

/* An action changed the flow: adds `tag` (as flt_flow_tag) and the line
 * "tag: detail" (printf-style) to f->actions, which the console shows
 * under the flow's line and the HAR (`_actions`) and JSONL (`actions`)
 * record as an array of strings. Call before on_flow_end. */
void flt_flow_action(flt_flow_t *f, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The lines of f->actions one by one: `*p` starts at f->actions (NULL is
 * fine); returns the next line, its length in *len (no '\n'), and moves
 * *p past it; NULL after the last. */
static inline const char *flt_flow_action_next(const char **p, size_t *len) {
  const char *line = *p;
  if (line == NULL || *line == '\0') return NULL;
  const char *nl = line;
  while (*nl && *nl != '\n') nl++;
  *len = (size_t)(nl - line);
  *p = *nl ? nl + 1 : nl;
  return line;
}

/* ---- ABI 2: what a plugin may ask the core to do ------------------------
 * Each returns 0, or -1 when it is asked too late (the head already left),
 * in the wrong event, or beyond a limit. Call them from the events named;
 * they run on the connection's worker thread like every event. */

/* The table behind the calls below, filled in by the core (f->core,
 * c->core). Plugins call the functions, not the table. */
typedef struct flt_core_ops {
  int (*set_header)(flt_flow_t *f, flt_dir_t dir, const char *name, const char *value);
  int (*want_body)(flt_flow_t *f, flt_dir_t dir);
  int (*replace_body)(flt_flow_t *f, flt_dir_t dir, const uint8_t *data, size_t len);
  int (*answer)(flt_flow_t *f, int status, const char *content_type, const uint8_t *body,
                size_t len);
  int (*passthrough)(flt_conn_t *c);
} flt_core_ops_t;

/* Sets header `name` to `value` (replacing the first field of that name,
 * dropping later ones, appending it when absent), or removes every field
 * of that name when `value` is NULL, in the head of side `dir` as it is
 * sent on: the request's from on_request_head, the response's from
 * on_response_head. The same edits as --set-header / --remove-header
 * (at most 16 per head, counting theirs); f->req / f->resp stay as
 * received. Strings are copied. */
int flt_flow_set_header(flt_flow_t *f, flt_dir_t dir, const char *name, const char *value);
int flt_flow_remove_header(flt_flow_t *f, flt_dir_t dir, const char *name);
/* Asks for the whole body of side `dir` (from that side's head event):
 * the core holds the head, buffers the body up to --body-cap, and calls
 * on_body_complete when it is complete. */
int flt_flow_want_body(flt_flow_t *f, flt_dir_t dir);
/* From on_body_complete: send `data` (copied) as the body of side `dir`,
 * identity-encoded with a Content-Length. */
int flt_flow_replace_body(flt_flow_t *f, flt_dir_t dir, const uint8_t *data, size_t len);
/* From on_request_head (or on_request_end): tlspeek answers the request
 * itself with `status`, a Content-Type (NULL: none) and `body`; the request
 * is not sent upstream, and the connection closes after the answer. */
int flt_flow_answer(flt_flow_t *f, int status, const char *content_type, const uint8_t *body,
                    size_t len);
/* From on_conn_open or on_client_hello: relay the connection's TLS without
 * intercepting it (as --ignore-hosts does). */
int flt_conn_passthrough(flt_conn_t *c);

/* Emitters: call every filter that implements the event, in chain order. */
void flt_emit_conn_open(const flt_chain_t *ch, flt_conn_t *c);
void flt_emit_tls_established(const flt_chain_t *ch, flt_conn_t *c);
void flt_emit_request_head(const flt_chain_t *ch, flt_flow_t *f);
void flt_emit_request_body(const flt_chain_t *ch, flt_flow_t *f,
                           const uint8_t *data, size_t len);
void flt_emit_request_end(const flt_chain_t *ch, flt_flow_t *f);
void flt_emit_response_head(const flt_chain_t *ch, flt_flow_t *f);
void flt_emit_response_body(const flt_chain_t *ch, flt_flow_t *f,
                            const uint8_t *data, size_t len);
void flt_emit_flow_end(const flt_chain_t *ch, flt_flow_t *f);
/* ABI 2 events: only filters whose ops->abi_version >= 2 get them. */
void flt_emit_body_complete(const flt_chain_t *ch, flt_flow_t *f, flt_dir_t dir,
                            const uint8_t *data, size_t len);
void flt_emit_client_hello(const flt_chain_t *ch, flt_conn_t *c);
void flt_emit_raw(const flt_chain_t *ch, flt_conn_t *c, flt_dir_t dir,
                  const uint8_t *data, size_t len);
void flt_emit_error(const flt_chain_t *ch, flt_conn_t *c, const char *msg);
void flt_emit_conn_close(const flt_chain_t *ch, flt_conn_t *c);
void flt_emit_shutdown(const flt_chain_t *ch);
void flt_emit_data(const flt_chain_t *ch, flt_conn_t *c, flt_dir_t dir,
                   const uint8_t *data, size_t len);
void flt_emit_keylog(const flt_chain_t *ch, flt_conn_t *c, const char *line);
void flt_emit_tls_message(const flt_chain_t *ch, flt_conn_t *c, flt_leg_t leg,
                          int sent, int content_type, int version,
                          const uint8_t *data, size_t len);
void flt_emit_wire(const flt_chain_t *ch, flt_conn_t *c, flt_leg_t leg, int sent,
                   const uint8_t *data, size_t len);
void flt_emit_ws_message(const flt_chain_t *ch, flt_flow_t *f, flt_dir_t dir, int opcode,
                         const uint8_t *data, size_t len);

/* Finds a header by name (case-insensitive); returns NULL when absent. */
const flt_header_t *flt_head_find(const flt_head_t *h, const char *name);

/* Microseconds since the epoch (wall clock). */
uint64_t flt_now_us(void);

#endif
