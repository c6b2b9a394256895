/* console_internal.h — the pieces of the console view (console.c) that
 * render text, kept apart so each can be tested on its own.
 *
 * Everything here appends to a flt_strbuf_t and returns 0, or -1 when the
 * buffer hit its cap (what fit is kept). Nothing here writes or locks.
 */
#ifndef TLSPEEK_CONSOLE_INTERNAL_H
#define TLSPEEK_CONSOLE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "filters/util/decode.h"
#include "filters/filter.h"
#include "filters/util/strbuf.h"

/* Every body line starts with this. */
#define FLT_CON_INDENT "    "
/* Encoded bytes of one message fed to the decoder at most: a compressed
 * body that never fills body_limit must not keep a worker busy forever. */
#define FLT_CON_MAX_ENCODED (4u * 1024 * 1024)
/* Content-Type / Content-Encoding values kept per message (longer values
 * are cut; only the media type, charset and coding names matter). */
#define FLT_CON_MAX_HEADER_VALUE 256

/* SGR colour codes; used only when colour is on. */
#define FLT_CON_BOLD "1"
#define FLT_CON_DIM "2"
#define FLT_CON_RED "31"
#define FLT_CON_GREEN "32"
#define FLT_CON_YELLOW "33"
#define FLT_CON_CYAN "36"

/* Appends `s` in colour `sgr` when `color` is set, plainly otherwise.
 * Control characters and invalid UTF-8 in `s` are escaped (see below). */
int flt_con_paint(flt_strbuf_t *out, int color, const char *sgr,
                  const char *s, size_t len);

/* Appends bytes that came off the wire so that they cannot drive the
 * terminal: valid UTF-8 and '\t' pass through; other control characters
 * (C0, DEL, C1) and bytes that are not valid UTF-8 become "\xNN". With
 * `latin1`, bytes are ISO-8859-1 and are converted to UTF-8. */
int flt_con_append_safe(flt_strbuf_t *out, const char *s, size_t len,
                        int latin1);

/* "0 B", "999 B", "1.2 kB", "50.0 MB", "3.1 GB" (decimal units). */
void flt_con_human_size(char *buf, size_t size, uint64_t bytes);

/* A flow's duration: "0.42 ms" below 1 ms, "3.1 ms" below 10 ms, "35 ms"
 * below 1 s, "1.02 s" below 10 s, "12.3 s" below 100 s, then "250 s"
 * (each step where rounding would reach the next one). */
void flt_con_duration(char *buf, size_t size, uint64_t us);
/* A response body's size: "266 B" as received; when it came
 * content-encoded (`coding` is the Content-Encoding, shown as given)
 * "266 B (235 B gzip)": decoded size, then the size on the wire with its
 * coding; "? (235 B gzip)" when the decoded size is not known. An empty
 * body is "0 B" whatever its coding. */
void flt_con_body_size(char *buf, size_t size, uint64_t decoded, int decoded_known,
                       uint64_t wire, const char *coding);

/* Content-Type helpers: the media type (lower-case, without parameters)
 * and the charset parameter (lower-case, "" when absent). */
void flt_con_media_type(const char *ctype, char *buf, size_t size);
void flt_con_charset(const char *ctype, char *buf, size_t size);

/* A media type whose bodies are text (text/..., JSON, JavaScript, XML,
 * form data). */
int flt_con_media_is_text(const char *media);
/* Valid UTF-8 without control characters other than \t \r \n. With
 * `cut`, a multi-byte sequence broken by the cut at the end is allowed. */
int flt_con_utf8_is_clean(const uint8_t *p, size_t len, int cut);

/* Text as lines, each prefixed with FLT_CON_INDENT; "\r\n", "\n" and "\r"
 * end lines; a last line without a line break is still ended with "\n". */
int flt_con_render_text(flt_strbuf_t *out, const uint8_t *p, size_t len,
                        int latin1);
/* JSON re-indented by two spaces per level ("key": value, one member per
 * line), each line prefixed with FLT_CON_INDENT. The tokens are kept
 * exactly as sent (numbers are not rounded through a double). Returns 0,
 * or -1 with `out` untouched when cJSON does not accept the whole input
 * or the pretty form would be unreasonably large. */
int flt_con_render_json(flt_strbuf_t *out, const uint8_t *p, size_t len);
/* console_grpc.c: a gRPC body (application/grpc), `cut` when it is cut at
 * the limit: "    gRPC message N: LEN bytes", then its protobuf wire
 * format as field lines ("1: 150 (varint)", "2: \"text\"", "3 {" ... "}",
 * "4: bytes[N] hex", fixed32/fixed64 in hex), nested two spaces a level;
 * a compressed or cut message, or bytes that do not parse, as a hexdump.
 * 0, or -1 when out of memory. */
int flt_con_render_grpc(flt_strbuf_t *out, const uint8_t *p, size_t len, int cut);

/* Every line stating a change tlspeek made to a forwarded head starts
 * with this (console.h). */
#define FLT_CON_CHANGE_MARK "  ~ "

/* The changes between a head as received and as forwarded, by header name
 * (case-insensitive), one line each (FLT_CON_CHANGE_MARK, then the text in
 * yellow when `color`):
 *   "  ~ removed: NAME"         a name `received` has and `sent` lacks;
 *   "  ~ set: NAME: VALUE"      a name `sent` has with other values than
 *                               `received` (or that it lacked): its first
 *                               value as forwarded.
 * Names as spelled in the head they come from; removals first, each in
 * wire order. Bytes are escaped as by flt_con_append_safe. Nothing when
 * the heads carry the same fields. */
int flt_con_render_changes(flt_strbuf_t *out, const flt_head_t *received,
                           const flt_head_t *sent, int color);

/* Copies the value of header `name` (first occurrence) into buf, cut to
 * fit; "" when absent. */
void flt_con_header_value(const flt_head_t *h, const char *name, char *buf,
                          size_t size);

/* One message body (request or response) as seen by the console at
 * detail 3: the decoded bytes up to the limit, and, for encoded bodies,
 * the encoded bytes up to the limit for the hexdump shown when decoding
 * fails. */
typedef struct flt_con_body {
  char ctype[FLT_CON_MAX_HEADER_VALUE]; /* Content-Type as sent, or "" */
  char cenc[FLT_CON_MAX_HEADER_VALUE];  /* Content-Encoding, or "" */
  size_t limit;          /* body_limit */
  flt_decoder_t *dec;    /* created with the first body byte */
  flt_strbuf_t decoded;  /* cap: limit */
  flt_strbuf_t raw;      /* cap: limit; only when cenc is set */
  uint64_t wire_bytes;   /* body bytes received (still encoded) */
  int input_capped;      /* stopped feeding at FLT_CON_MAX_ENCODED */
  int oom;               /* no decoder could be made */
  /* A body read back from a transcript (flt_con_body_recorded): fed
   * decoded, with the size as received and the recording's cut given. */
  int recorded;
  uint64_t recorded_wire;
  int recorded_cut;
} flt_con_body_t;

/* Takes Content-Type and Content-Encoding from `h` (copied). */
void flt_con_body_init(flt_con_body_t *b, const flt_head_t *h, size_t limit);
void flt_con_body_feed(flt_con_body_t *b, const uint8_t *p, size_t len);
/* The bytes fed from now on are already decoded (a transcript's body):
 * `wire` is the body's size as received, `cut` says the transcript kept
 * only part of it (console.h, flt_console_body_recorded). */
void flt_con_body_recorded(flt_con_body_t *b, uint64_t wire, int cut);
/* Appends the body as the console shows it (see console.h); an empty body
 * adds nothing. */
int flt_con_body_render(flt_con_body_t *b, flt_strbuf_t *out, int color);
void flt_con_body_free(flt_con_body_t *b);

/* One WebSocket message (console_ws.c), as console.h shows it: the line
 * "CLIENT ⇄ ws URL > text 12 B" (or "close 1000 reason", "ping 4 B"), and
 * at `detail` 3 the payload of a text or binary message under it, at most
 * `limit` bytes: clean UTF-8 text as lines, anything else as a hexdump,
 * then the cut note when it was cut. */
typedef struct flt_con_ws {
  const char *client, *url;
  flt_dir_t dir;
  int opcode;
  const uint8_t *data;
  size_t len, limit;
  int detail, color;
} flt_con_ws_t;
int flt_con_render_ws(flt_strbuf_t *out, const flt_con_ws_t *m);

#endif
