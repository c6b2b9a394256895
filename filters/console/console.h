/* console.h — the traffic view on stdout (README.md, "What is shown").
 *
 * Detail levels, and the exact lines (end-to-end tests grep them; without
 * colour the output is byte-exact as shown):
 *   0  nothing
 *   1  one line per flow, when it ends:
 *        127.0.0.1:51234 → GET https://example.test/path → 200 application/json 1.2 kB 35 ms
 *      i.e. client, method, flow URL, status, the Content-Type's media type
 *      (lower-case, no parameters; "-" when absent), the response body size
 *      and the flow's duration.
 *      Size (decimal units: "0 B", "512 B", "1.2 kB", "50.0 MB"): the body
 *      as received when it has no Content-Encoding; when it has one, the
 *      decoded size, then the size on the wire with the coding as sent:
 *        266 B (235 B gzip)          1.4 MB (212.9 kB gzip, br)
 *      and "? (235 B gzip)" when the decoded size is not known (the body
 *      does not decode, or passes 256 MiB decoded). An empty body is "0 B".
 *      Duration: from the request head's arrival (f->t_start_us) to the
 *      response's end — the HAR's send + wait + receive of the flow (the
 *      HAR's "time" adds the first flow's DNS and connect). Shown as
 *      "0.42 ms" below 1 ms, "3.1 ms" below 10 ms, "35 ms" below 1 s,
 *      "1.02 s" below 10 s, "12.3 s" below 100 s, then "250 s".
 *      A flow whose client left before the response reached it (a reset, a
 *      failed write, or a close before the answer: flt_conn_t's
 *      client_gone_us), with the time from the request head to the moment
 *      it left:
 *        127.0.0.1:51234 → GET https://example.test/slow → aborted by client after 1.02 s
 *      A flow that ended in an error (or without a response) — one line,
 *      the connection error that caused it is not shown again:
 *        127.0.0.1:51234 → GET https://example.test/path → ERROR <f->error>
 *      A flow answered after the client's EOF (an HTTP/1 client may
 *      half-close and still read) is shown when its connection closes,
 *      once the core knows whether the client took the answer; a flow that
 *      never finishes ends, and is shown, when its connection does.
 *   2  + the heads, header names and order as on the wire. The request part
 *      is written when the request goes upstream, before any answer; the
 *      rest when the flow ends, after the flow's line repeated in full
 *      (client, method and URL tie it to its request):
 *        127.0.0.1:51234 → GET https://example.test/path
 *          > GET /path HTTP/1.1
 *          > Name: value ...
 *        ... (other flows' blocks) ...
 *        127.0.0.1:51234 → GET https://example.test/path → 200 text/html 1.2 kB 35 ms
 *          < HTTP/1.1 200 OK
 *          < Name: value ...
 *      With -f (opts.filtered) a flow is decided at its end, so its request
 *      part waits and the flow is one block: the line, "  > " lines, then
 *      "  < " lines.
 *      Interim (1xx) responses relayed before the final one (100 Continue,
 *      103 Early Hints) come first, in order, each a head of its own:
 *        "  < HTTP/1.1 100 Continue"
 *        "  < HTTP/1.1 200 OK" ...
 *      (a flow that got a 1xx and then no final response still shows it).
 *      A head that --set-header / --remove-header changed is shown as
 *      forwarded (to the upstream, or to the client for a response), and
 *      right after it one line per changed header name (flt_flow_t.req_sent,
 *      resp_sent; console_edits.c):
 *        "  ~ removed: Cookie"       the name is no longer in the head
 *        "  ~ set: X-Debug: 1"       added, or given another value
 *      Removals first, then sets, each in wire order; "~" lines in yellow.
 *      The rewrites every proxy makes (hop-by-hop fields such as
 *      Proxy-Connection, an absolute-form target, Host) are not shown as
 *      changes. Detail 1 shows neither interim heads nor changes.
 *   3  + each body, every line indented by four spaces, the request body
 *      after the flow's line (or after the request head, with -f), the
 *      response body after its head:
 *      content-decoded (gzip, x-gzip, deflate, br, zstd, stacked); text
 *      (text/..., JSON, JavaScript, XML, form data, or clean UTF-8; charset
 *      ISO-8859-1 is converted) as lines; JSON re-indented two spaces per
 *      level; anything else as an xxd-style hexdump (hexdump.h). Empty
 *      bodies add nothing. Cuts and failures are stated:
 *        "    … body cut at 4096 of 52428800 bytes (--body-limit)"
 *        "    … body cut at 4096 decoded bytes of 81234 bytes gzip (--body-limit)"
 *        "    (gzip: could not decode: incorrect header check)" + a hexdump of
 *        the bytes as received
 *      A gRPC body (application/grpc) is its length-prefixed messages, each
 *      as protobuf wire format without a schema (console_grpc.c):
 *        "    gRPC message 1: 9 bytes"
 *        "      1: 150 (varint)"      "      2: \"hello\""
 *        "      3 {" ... "      }"     (a nested message, two more spaces)
 *        "      4: bytes[3] 0a0b0c"   "      5: 0x00000001 (fixed32)"
 *      a compressed or cut message as a hexdump.
 *      At detail >= 2, a response's trailers (HTTP/2: grpc-status) come
 *      last in the flow's block, one line each:
 *        "  < trailer grpc-status: 0"
 *   4  + (later) TLS handshake dissection and the wire view.
 * Raw (non-HTTP) streams, at close, at level >= 1:
 *        127.0.0.1:51234 ⇄ raw db.test:5432 120 B in, 4096 B out
 *   and at level 3 each chunk as it passes, up to body_limit bytes per
 *   connection ("> " client to server, "< " server to client; offsets count
 *   per direction), plus a cut note after the close line:
 *        127.0.0.1:51234 ⇄ raw db.test:5432 > 6 B
 *            00000000: 4845 4c4c 4f00                           HELLO.
 *            … raw data cut at 4096 of 10000 bytes (--body-limit)
 * WebSocket messages (on_ws_message), each as it passes, at level >= 2
 * ("> " client to server, "< " server to client; control frames by name,
 * a close with its code and reason):
 *        127.0.0.1:51234 ⇄ ws https://example.test/chat > text 21 B
 *        127.0.0.1:51234 ⇄ ws https://example.test/chat < binary 40 B
 *        127.0.0.1:51234 ⇄ ws https://example.test/chat > ping 4 B
 *        127.0.0.1:51234 ⇄ ws https://example.test/chat < close 1000 bye
 *   and at level 3, under a text or binary message, its data cut at
 *   body_limit bytes: clean UTF-8 text as lines, anything else as a
 *   hexdump, then
 *            … message cut at 4096 of 10000 bytes (--body-limit)
 *   With -f the messages are shown when the connection's host-level terms
 *   match (the flow itself is decided at its end, after them). The
 *   upgrade's flow line (→ 101) comes when the WebSocket ends.
 * Connection errors (on_error), at level >= 1, when the connection closes,
 * unless a failed flow's line said it first; hidden when -f does not match
 * the connection (its host-level terms, flt_conn_t.hidden):
 *        127.0.0.1:51234 ✗ <message>
 * Bytes from the wire never reach the terminal raw: control characters and
 * invalid UTF-8 are shown as \xNN.
 *
 * Every block (a request part, a flow's end, a raw chunk, an error line)
 * is assembled in memory and written in one piece, so output of
 * concurrent flows never interleaves inside a block. Writing happens on a writer thread (filters/util/output.h): the event
 * loop never blocks on stdout. Callbacks may run on several workers at
 * once: per-flow and per-connection state lives in fctx[slot], and the
 * instance itself is read-only after flt_console_set_slot().
 */
#ifndef TLSPEEK_CONSOLE_H
#define TLSPEEK_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"
#include "filters/util/output.h"

typedef struct flt_console_opts {
  int detail;        /* 0..4 */
  size_t body_limit; /* decoded body bytes shown per message, and raw bytes
                        shown per connection (0 = the default, 4096) */
  int color;         /* -1: auto (fd is a tty and NO_COLOR unset), 0 never,
                        1 always (an explicit choice beats NO_COLOR) */
  int fd;            /* where to write (1 = stdout); not closed */
  int filtered;      /* an expression (-f) chooses the flows shown: each is
                        decided at its end, so at detail >= 2 its request
                        part waits for it too */
} flt_console_opts_t;

extern const flt_ops_t flt_console_ops;

/* Creates the console filter instance (`self` for flt_chain_add), with its
 * writer thread. Returns NULL when out of memory or threads. */
void *flt_console_new(const flt_console_opts_t *opts);
/* Tells the instance its slot: the index flt_chain_add returned. Call it
 * before any event; until then the instance shows nothing but errors. */
void flt_console_set_slot(void *self, int slot);
/* Frees it; call after the chain's shutdown event. */
void flt_console_free(void *self);
/* Reading a transcript back (tlspeek show, proxy/cli/show.h): the body
 * bytes of `dir` that follow for flow `f` are the body as HAR and JSONL
 * keep it, its Content-Encoding already removed. The flow is shown as the
 * live view showed it: the body as decoded, the cut and the size line
 * counted against `wire_bytes`, the body's size as received. With
 * `recorded_cut`, the transcript kept only the bytes that follow
 * (--body-cap): an encoded response's decoded size is then "?", and a
 * body not already cut by --body-limit ends with
 *   "    … body cut at 100 of 5000 bytes (--body-cap, when recorded)"
 * (or "… body cut at N decoded bytes of M bytes gzip (--body-cap, when
 * recorded)"). Call after the head event of `dir`, before its body. */
void flt_console_body_recorded(void *console, flt_flow_t *f, flt_dir_t dir, uint64_t wire_bytes,
                               int recorded_cut);

/* The console's writer and its resolved colour choice (0 or 1), for other
 * views that write to the same stdout without interleaving blocks (the
 * TLS view). Valid at any detail level, 0 included, until
 * flt_console_free(). */
flt_output_t *flt_console_output(void *console);
int flt_console_color(void *console);

#endif
