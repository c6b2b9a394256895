/* reader.h — transcripts read back: HAR 1.2 and tlspeek's JSON lines, parsed
 * (cJSON) into flows shaped as the proxy core makes them, so that the
 * console view (`tlspeek show`) and other views can replay them.
 *
 * Formats (README.md, "Transcripts"; the writers document the fields:
 * har.c, jsonl.c):
 *  - JSONL as tlspeek writes it: one object per line, read line by line
 *    (a file of any size streams; a line may hold at most
 *    FLT_READER_MAX_LINE bytes). Blank lines are skipped.
 *  - HAR 1.2 as tlspeek writes it, or as browsers and other tools write it
 *    (only standard fields are required: request.method, request.url,
 *    response.status). Loaded whole: at most FLT_READER_MAX_HAR bytes.
 * Which one is decided by the content: a first line that is a whole JSON
 * object without "log" is JSONL; anything else starting with '{' is HAR
 * (unless the name ends in .jsonl or .ndjson: then it is JSONL and the
 * first line must parse). Anything else is refused.
 *
 * Errors are values: every problem gets a sentence in `err`, naming the
 * line (JSONL, "line 3: ...") or the JSON path (HAR,
 * "log.entries[3].response.status: expected a number"), or, for JSON that
 * does not parse, the line and column. Nothing in the input can make the
 * reader crash or allocate without bound (fuzzed by
 * tests/fuzz/fuzz_transcript_reader.c).
 *
 * What a recorded flow holds, and what a transcript cannot know:
 *  - the heads as forwarded (flow.req / flow.resp); with JSONL's
 *    requestReceived / responseReceived, flow.req / flow.resp are the
 *    heads as received and flow.req_sent / resp_sent as forwarded, as the
 *    core sets them when an action changed a head;
 *  - the request target: only the absolute URL is recorded, so the target
 *    is rebuilt: absolute-form for http:// flows of a tlspeek transcript
 *    (what a client of the explicit proxy sends), origin-form otherwise;
 *  - bodies as recorded (body[]: Content-Encoding removed unless
 *    decode_error says it could not be), cut at the recording's --body-cap
 *    (truncated);
 *  - the client address: JSONL has it, HAR does not ("-");
 *  - WebSocket messages (ws[]: direction, opcode, data as recorded), but
 *    not their times;
 *  - times: t_start_us from the start time, the other stamps from the
 *    send / wait / receive timings (microseconds are kept exactly);
 *  - not recorded at all: connection errors without a flow, raw streams,
 *    handshakes and the wire, and whether the client left early.
 */
#ifndef TLSPEEK_TRANSCRIPT_READER_H
#define TLSPEEK_TRANSCRIPT_READER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "filters/filter.h"

/* Size caps: a HAR document, and one JSONL line. */
#define FLT_READER_MAX_HAR (1024u * 1024 * 1024)
#define FLT_READER_MAX_LINE (1024u * 1024 * 1024)

typedef enum flt_reader_format { FLT_READER_JSONL = 1, FLT_READER_HAR = 2 } flt_reader_format_t;

/* One message body as the transcript kept it. */
typedef struct flt_rec_body {
  int present;         /* the transcript holds a body for it */
  const uint8_t *data; /* the body: decoded, or as received when
                          decode_error is set */
  size_t len;
  int truncated;            /* the recording cut it (--body-cap) */
  const char *decode_error; /* "gzip: incorrect header check", or NULL */
  uint64_t wire_bytes;      /* body bytes as received (still encoded) */
} flt_rec_body_t;

/* One WebSocket message of a recorded flow (filter.h, on_ws_message):
 * its data as recorded (a close's code and reason as on the wire again). */
typedef struct flt_rec_ws {
  flt_dir_t dir;
  int opcode;
  const uint8_t *data;
  size_t len;
} flt_rec_ws_t;

/* One recorded flow. flow.conn points at conn (one connection per flow:
 * transcripts record facts of the connection with each flow). */
typedef struct flt_rec_flow {
  flt_conn_t conn;
  flt_flow_t flow;
  flt_rec_body_t body[2]; /* by flt_dir_t */
  char where[48];         /* "line 12" or "log.entries[3]", for messages */
  const flt_rec_ws_t *ws; /* WebSocket messages, in order (n_ws), or NULL */
  size_t n_ws;
} flt_rec_flow_t;

typedef struct flt_reader flt_reader_t;

/* Opens `path` ("-" reads standard input) and decides its format (a HAR
 * is read and parsed here). Returns NULL with a sentence in err (naming
 * no file: the caller does) when it cannot be opened or is not a
 * transcript. */
flt_reader_t *flt_reader_open(const char *path, char *err, size_t errlen);
/* The same over `len` bytes in memory (copied). `name` only decides the
 * format by its ending as above; it may be NULL. */
flt_reader_t *flt_reader_open_mem(const void *data, size_t len, const char *name, char *err,
                                  size_t errlen);
flt_reader_format_t flt_reader_format(const flt_reader_t *r);

/* The next flow: 1 with *out set (valid until the next call or
 * flt_reader_free), 0 at the end, -1 with a sentence in err. After -1
 * the reader gives nothing more. */
int flt_reader_next(flt_reader_t *r, flt_rec_flow_t **out, char *err, size_t errlen);
void flt_reader_free(flt_reader_t *r);

#endif
