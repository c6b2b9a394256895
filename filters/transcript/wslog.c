/* wslog.c — the WebSocket messages of a recorded flow (transcript_internal.h,
 * tr_ws_log_t): kept in the flow's record as they pass, printed into its
 * HAR entry as `_webSocketMessages` (the field Chrome DevTools writes) and
 * into its JSONL object as `websocket`.
 *
 * Each message keeps its time, direction and opcode; its data is kept
 * while the flow's messages stay within the record's body_cap in all
 * (later ones are listed with the data cut), and at most TR_WS_MAX_MESSAGES
 * are listed (the rest are counted). */
#include <stdlib.h>
#include <string.h>

#include "filters/transcript/transcript_internal.h"
#include "filters/util/log.h"

typedef struct tr_ws_msg {
  uint64_t t_us;
  int dir, opcode;
  size_t size; /* as received */
  size_t len;  /* kept: size, or less when the cap cut it */
  uint8_t *data;
} tr_ws_msg_t;

struct tr_ws_log {
  tr_ws_msg_t *msgs;
  size_t n, room;
  size_t bytes;    /* data kept, against body_cap */
  uint64_t dropped; /* messages past TR_WS_MAX_MESSAGES */
};

void tr_ws_log_free(tr_ws_log_t *log) {
  if (log == NULL) return;
  for (size_t i = 0; i < log->n; i++) free(log->msgs[i].data);
  free(log->msgs);
  free(log);
}

size_t tr_ws_log_cost(const tr_ws_log_t *log) {
  return log ? log->bytes + log->room * sizeof(tr_ws_msg_t) : 0;
}

static int log_add(tr_flow_t *r, int dir, int opcode, const uint8_t *data, size_t len) {
  tr_ws_log_t *log = r->ws;
  if (log == NULL && (log = r->ws = calloc(1, sizeof(*log))) == NULL) return -1;
  if (log->n >= TR_WS_MAX_MESSAGES) {
    log->dropped++;
    return 0;
  }
  if (log->n == log->room) {
    size_t room = log->room ? log->room * 2 : 16;
    tr_ws_msg_t *m = realloc(log->msgs, room * sizeof(*m));
    if (m == NULL) return -1;
    log->msgs = m;
    log->room = room;
  }
  size_t keep = r->body_cap - log->bytes < len ? r->body_cap - log->bytes : len;
  tr_ws_msg_t *m = &log->msgs[log->n];
  m->data = keep ? malloc(keep) : NULL;
  if (keep && m->data == NULL) return -1;
  if (keep) memcpy(m->data, data, keep);
  m->t_us = flt_now_us();
  m->dir = dir;
  m->opcode = opcode;
  m->size = len;
  m->len = keep;
  log->bytes += keep;
  log->n++;
  return 0;
}

void tr_rec_on_ws_message(void *self, flt_flow_t *f, flt_dir_t dir, int opcode,
                          const uint8_t *data, size_t len) {
  tr_recorder_t *rec = self;
  tr_flow_t *r = rec->slot >= 0 ? f->fctx[rec->slot] : NULL;
  if (r == NULL || r->owner != rec) return; /* a peer's record: it feeds it */
  if (log_add(r, dir, opcode, data, len) != 0)
    flt_log_error("transcript: out of memory; a WebSocket message of flow %llu not recorded",
                  (unsigned long long)f->id);
}

/* "data" of a text message or a close reason as text, of anything else
 * as base64 (as Chrome writes binary messages). In HAR text stays text, as
 * Chrome has it (bytes that are not UTF-8 made so: tr_jw_bytes); JSONL says
 * which it is and keeps such text exactly, as base64. */
static void write_data(tr_jw_t *w, const uint8_t *p, size_t n, int text, int jsonl) {
  if (text && (!jsonl || tr_utf8_valid(p, n))) {
    tr_jw_bytes(w, "data", (const char *)p, n);
    if (jsonl) tr_jw_str(w, "encoding", "utf8");
    return;
  }
  size_t size = 0;
  char *b64 = tr_base64(p, n, &size);
  tr_jw_str(w, "data", b64 ? b64 : "");
  if (jsonl) tr_jw_str(w, "encoding", "base64");
  if (b64) tr_big_put(b64, size);
}

static void write_msg(tr_jw_t *w, const tr_ws_msg_t *m, int jsonl) {
  const uint8_t *p = m->data;
  size_t n = m->len;
  int close = m->opcode == FLT_WS_CLOSE;
  tr_jw_open(w, NULL, '{');
  tr_jw_str(w, "type", m->dir == FLT_DIR_REQUEST ? "send" : "receive");
  tr_jw_num(w, "time", (double)((m->t_us + 500) / 1000) / 1000.0);
  tr_jw_num(w, "opcode", m->opcode);
  if (close && n >= 2) {
    tr_jw_num(w, jsonl ? "closeCode" : "_closeCode", (double)(p[0] << 8 | p[1]));
    p += 2, n -= 2;
  }
  write_data(w, p ? p : (const uint8_t *)"", n, m->opcode == FLT_WS_TEXT || close, jsonl);
  if (close && jsonl) tr_jw_bytes(w, "closeReason", (const char *)(p ? p : (const uint8_t *)""), n);
  if (jsonl) tr_jw_num(w, "size", (double)m->size);
  if (m->len < m->size) tr_jw_bool(w, jsonl ? "truncated" : "_truncated", 1);
  tr_jw_close(w, '}');
}

void tr_ws_log_write(tr_jw_t *w, const char *key, const tr_flow_t *r, int jsonl) {
  const tr_ws_log_t *log = r->ws;
  if (log == NULL) return;
  tr_jw_open(w, key, '[');
  for (size_t i = 0; i < log->n; i++) write_msg(w, &log->msgs[i], jsonl);
  tr_jw_close(w, ']');
  if (log->dropped)
    tr_jw_num(w, jsonl ? "websocketDropped" : "_webSocketMessagesDropped", (double)log->dropped);
}
