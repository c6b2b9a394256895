/* reader_ws.c — the WebSocket messages of a recorded flow (reader.h):
 * HAR `_webSocketMessages` (tlspeek's, and Chrome's: type, time, opcode,
 * data; binary data is base64) and JSONL `websocket` (wslog.c: the same
 * with "encoding", and a close's code apart from its reason). */
#include <stdlib.h>
#include <string.h>

#include "filters/transcript/reader_internal.h"

#define RD_REQUIRED 1
#define RD_OPTIONAL 0

/* A close's payload again: the code (two bytes, big-endian), the reason. */
static int rd_ws_close(rd_arena_t *a, double code, const uint8_t *reason, size_t n,
                       flt_rec_ws_t *m) {
  uint8_t *p = rd_alloc(a, n + 2);
  if (p == NULL) return -2;
  p[0] = (uint8_t)((int)code >> 8);
  p[1] = (uint8_t)((int)code & 0xff);
  if (n) memcpy(p + 2, reason, n);
  m->data = p;
  m->len = n + 2;
  return 0;
}

static int rd_ws_one(rd_ctx_t *c, rd_arena_t *a, const cJSON *o, int har, flt_rec_ws_t *m) {
  const char *type, *data, *enc = NULL;
  double opcode, code;
  int has_code = 0;
  if (!cJSON_IsObject(o)) return rd_fail(c, NULL, "expected an object (one message)");
  if (rd_string(c, o, "type", RD_REQUIRED, &type) < 0 ||
      rd_number(c, o, "opcode", RD_REQUIRED, 0, 15, 1, &opcode, NULL) < 0 ||
      rd_string(c, o, "data", RD_OPTIONAL, &data) < 0 ||
      (!har && rd_string(c, o, "encoding", RD_OPTIONAL, &enc) < 0) ||
      rd_number(c, o, har ? "_closeCode" : "closeCode", RD_OPTIONAL, 0, 65535, 1, &code,
                &has_code) < 0)
    return -1;
  if (strcmp(type, "send") != 0 && strcmp(type, "receive") != 0)
    return rd_fail(c, "type", "expected \"send\" or \"receive\"");
  m->dir = strcmp(type, "send") == 0 ? FLT_DIR_REQUEST : FLT_DIR_RESPONSE;
  m->opcode = (int)opcode;
  int b64 = har ? m->opcode == FLT_WS_BINARY || (m->opcode != FLT_WS_TEXT && m->opcode != FLT_WS_CLOSE)
                : enc != NULL && strcmp(enc, "base64") == 0;
  uint8_t *p = (uint8_t *)(data ? data : "");
  size_t n = data ? strlen(data) : 0;
  int rc = b64 && data ? rd_base64(a, data, &p, &n) : 0;
  if (rc == 0 && m->opcode == FLT_WS_CLOSE && has_code) rc = rd_ws_close(a, code, p, n, m);
  else if (rc == 0) m->data = p, m->len = n;
  if (rc == -2) return rd_fail(c, NULL, "out of memory");
  if (rc < 0) return rd_fail(c, "data", "invalid base64");
  return 0;
}

int rd_ws_messages(rd_ctx_t *c, rd_arena_t *a, const cJSON *obj, const char *key, int har,
                   flt_rec_flow_t *f) {
  const cJSON *arr;
  if (rd_array(c, obj, key, RD_OPTIONAL, &arr) < 0) return -1;
  if (arr == NULL) return 0;
  int n = cJSON_GetArraySize(arr);
  if (n == 0) return 0;
  flt_rec_ws_t *ws = rd_alloc(a, (size_t)n * sizeof(*ws));
  if (ws == NULL) return rd_fail(c, key, "out of memory");
  size_t at = rd_push_key(c, key);
  int i = 0;
  for (const cJSON *o = arr->child; o; o = o->next, i++) {
    size_t at_i = rd_push_index(c, i);
    memset(&ws[i], 0, sizeof(ws[i]));
    if (rd_ws_one(c, a, o, har, &ws[i]) < 0) return -1;
    rd_pop(c, at_i);
  }
  rd_pop(c, at);
  f->ws = ws;
  f->n_ws = (size_t)n;
  return 0;
}
