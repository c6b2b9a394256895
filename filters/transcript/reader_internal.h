/* reader_internal.h — the pieces of the transcript reader (reader.h):
 * reader.c opens the input, tells HAR from JSONL and walks lines or
 * entries; reader_json.c checks types along a JSON path; reader_flow.c
 * turns one JSONL object or HAR entry into a flt_rec_flow_t.
 */
#ifndef TLSPEEK_TRANSCRIPT_READER_INTERNAL_H
#define TLSPEEK_TRANSCRIPT_READER_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/transcript/reader.h"

/* Blocks allocated for the current flow, all freed before the next one. */
typedef struct rd_arena {
  void **blocks;
  size_t n, cap;
} rd_arena_t;

/* malloc() kept in the arena; NULL when out of memory. */
void *rd_alloc(rd_arena_t *a, size_t size);
char *rd_strdup(rd_arena_t *a, const char *s);
void rd_arena_reset(rd_arena_t *a);

/* Where a value is, for messages: a prefix ("line 3: " or "") and the JSON
 * path walked so far ("log.entries[3].response"). */
typedef struct rd_ctx {
  char prefix[32];
  char path[224];
  size_t len;
  char *err;
  size_t errlen;
} rd_ctx_t;

/* Appends ".key" (or "key" at the root) / "[i]"; returns the length to
 * give back to rd_pop. */
size_t rd_push_key(rd_ctx_t *c, const char *key);
size_t rd_push_index(rd_ctx_t *c, int i);
void rd_pop(rd_ctx_t *c, size_t len);
/* Writes "<prefix><path>.<key>: <what>" into err; returns -1. `key` may
 * be NULL (the path itself). */
int rd_fail(rd_ctx_t *c, const char *key, const char *what);

/* Typed members of `obj`. `required`: a missing member (or null) is an
 * error; otherwise it leaves *out NULL (numbers: *present = 0). A member of
 * another type is an error ("expected a string"). 0 or -1. */
int rd_string(rd_ctx_t *c, const cJSON *obj, const char *key, int required, const char **out);
int rd_object(rd_ctx_t *c, const cJSON *obj, const char *key, int required, const cJSON **out);
int rd_array(rd_ctx_t *c, const cJSON *obj, const char *key, int required, const cJSON **out);
int rd_bool(rd_ctx_t *c, const cJSON *obj, const char *key, int *out);
/* A finite number within [lo, hi]; `integral` refuses fractions. */
int rd_number(rd_ctx_t *c, const cJSON *obj, const char *key, int required, double lo, double hi,
              int integral, double *out, int *present);

/* Standard base64 (padding optional, whitespace skipped) into the arena;
 * -1 on a character outside the alphabet or a misplaced '='. */
int rd_base64(rd_arena_t *a, const char *s, uint8_t **out, size_t *len);

/* The current flow and the storage its pointers lead to. */
typedef struct rd_flow {
  flt_rec_flow_t rec;
  flt_head_t fwd[2]; /* heads as forwarded, by flt_dir_t */
  flt_head_t rcv[2]; /* as received, when recorded apart */
  flt_head_t interim[FLT_MAX_INTERIM];
  const flt_head_t *interim_ptr[FLT_MAX_INTERIM];
} rd_flow_t;

/* Fills *f (cleared first) from one JSONL object / one HAR entry.
 * `tlspeek_har`: the HAR's creator is tlspeek (request targets of http://
 * flows were absolute-form). 0, or -1 with the message in c->err. */
int rd_flow_from_jsonl(rd_flow_t *f, rd_arena_t *a, const cJSON *obj, rd_ctx_t *c);
int rd_flow_from_har(rd_flow_t *f, rd_arena_t *a, const cJSON *entry, int tlspeek_har, rd_ctx_t *c);
/* reader_ws.c: the WebSocket messages under `key` (HAR's
 * _webSocketMessages when `har`, else JSONL's websocket) into f->ws; none
 * when absent. 0, or -1 with the message in c->err. */
int rd_ws_messages(rd_ctx_t *c, rd_arena_t *a, const cJSON *obj, const char *key, int har,
                   flt_rec_flow_t *f);

#endif
