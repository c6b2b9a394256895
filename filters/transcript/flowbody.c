/* flowbody.c — message bodies as the transcripts store them
 * (transcript_internal.h): UTF-8 text when the decoded body is valid UTF-8,
 * else base64; prepared once per record, whichever writer asks first, and
 * written into the entries from where they are.
 *
 * A body can be body_cap bytes (10 MiB by default): it is checked for
 * UTF-8, base64-encoded or escaped for JSON once, here, for both HAR and
 * JSON lines, and large ones are written from where they are (tr_jw_body).
 * tr_json_escape escapes exactly as the JSON writer (and cJSON) do.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "filters/transcript/transcript_internal.h"

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the longest valid prefix without NUL bytes. */
static size_t utf8_valid_prefix(const uint8_t *p, size_t len) {
  size_t i = 0;
  while (i < len && p[i] != 0) {
    if (p[i] < 0x80) { /* ASCII runs are most of any text body */
      i++;
      continue;
    }
    size_t n = flt_utf8_seq_len(p + i, len - i);
    if (n == 0) break;
    i += n;
  }
  return i;
}

int tr_utf8_valid(const uint8_t *p, size_t len) {
  return utf8_valid_prefix(p, len) == len;
}

/* The bytes after `valid` are the start of a sequence the cap cut. */
static int utf8_cut_tail(const uint8_t *p, size_t valid, size_t len) {
  size_t rest = len - valid;
  if (rest == 0 || rest > 3 || p[valid] < 0xc2 || p[valid] > 0xf4) return 0;
  for (size_t i = valid + 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  return 1;
}

/* ---- base64 -------------------------------------------------------------- */

static const char b64_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/* The two characters of every 12-bit value, as they lie in memory: 3 input
 * bytes take two lookups instead of four (about 1.7x as fast). */
static uint16_t b64_pairs[4096];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static void b64_init(void) {
  for (int i = 0; i < 4096; i++) {
    char two[2] = {b64_tab[i >> 6], b64_tab[i & 63]};
    memcpy(&b64_pairs[i], two, 2);
  }
}

char *tr_base64(const uint8_t *p, size_t len, size_t *size) {
  size_t i = 0, got;
  char *out, *o;

  if (len > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
  out = size ? tr_big_get((len + 2) / 3 * 4 + 1, &got) : malloc((len + 2) / 3 * 4 + 1);
  if (out == NULL) return NULL;
  if (size) *size = got;
  pthread_once(&b64_once, b64_init);
  o = out;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    memcpy(o, &b64_pairs[v >> 12], 2);
    memcpy(o + 2, &b64_pairs[v & 4095], 2);
    o += 4;
  }
  if (i < len) { /* one or two bytes left: padding */
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < len) v |= (uint32_t)p[i + 1] << 8;
    *o++ = b64_tab[(v >> 18) & 63];
    *o++ = b64_tab[(v >> 12) & 63];
    *o++ = i + 1 < len ? b64_tab[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o = '\0';
  return out;
}

/* ---- JSON strings --------------------------------------------------------- */

/* cJSON's string printer escapes '"', '\\' and every byte below 0x20
 * (\b \f \n \r \t by name, the others as \u00XX in lower-case hex) and
 * passes every other byte through. Returns a malloc'd copy escaped that
 * way, or NULL with *out_len = len when nothing needs escaping (and NULL
 * with *out_len = 0 when out of memory). */
static char *tr_json_escape(const char *s, size_t len, size_t *out_len) {
  size_t extra = 0;
  char *out, *o;

  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
      extra += 1;
    else if (c < 0x20)
      extra += 5;
  }
  *out_len = len;
  if (extra == 0) return NULL;
  out = malloc(len + extra + 1);
  if (out == NULL) {
    *out_len = 0;
    return NULL;
  }
  o = out;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      *o++ = (char)c;
      continue;
    }
    o = tr_json_escape_byte(o, c);
  }
  *o = '\0';
  *out_len = (size_t)(o - out);
  return out;
}

/* ---- bodies -------------------------------------------------------------- */

/* Prepares msg[dir]'s body; 0, or -1 when out of memory. May cut the
 * record's buffer (a sequence the cap cut in half): call once. */
static int body_prepare(tr_flow_t *r, flt_dir_t dir, tr_body_t *out) {
  tr_msg_t *m = &r->msg[dir];
  flt_strbuf_t *b = &m->decoded;
  uint64_t wire = dir == FLT_DIR_REQUEST ? r->flow.req_body_bytes : r->flow.resp_body_bytes;

  memset(out, 0, sizeof(*out));
  out->truncated = m->truncated;
  out->decoded = m->cenc[0] != '\0';
  /* Identity: the size on the wire is the size, cut or not. Encoded: what
   * was decoded (a lower bound when cut). */
  out->size = out->decoded ? b->len : wire;
  if (m->decode_error[0]) {
    b = &m->raw; /* keep the body as received, and say why */
    out->decode_error = m->decode_error;
    out->decoded = 0;
    out->size = wire;
    out->truncated = m->truncated || b->truncated;
  }
  if (b->len == 0) {
    out->text = out->json = "";
    return 0;
  }
  const uint8_t *p = (const uint8_t *)b->data;
  size_t valid = utf8_valid_prefix(p, b->len);
  if (valid == b->len || (out->truncated && utf8_cut_tail(p, valid, b->len))) {
    b->data[valid] = '\0'; /* drops a sequence the cap cut in half */
    out->text = b->data;
    out->len = valid;
    out->json_alloc = tr_json_escape(out->text, out->len, &out->json_len);
    if (out->json_alloc == NULL && out->json_len != out->len) return -1;
    out->json = out->json_alloc ? out->json_alloc : out->text;
    return 0;
  }
  out->alloc = tr_base64(p, b->len, &out->alloc_size);
  if (out->alloc == NULL) return -1;
  out->text = out->json = out->alloc;
  out->len = out->json_len = (b->len + 2) / 3 * 4;
  out->base64 = 1;
  return 0;
}

static void body_free(tr_body_t *b) {
  if (b->alloc) tr_big_put(b->alloc, b->alloc_size);
  free(b->json_alloc);
  memset(b, 0, sizeof(*b));
}

int tr_flow_bodies(tr_flow_t *r, const tr_body_t **bodies) {
  int state;

  pthread_mutex_lock(&r->body_mu);
  if (r->bodies_state == 0) {
    int ok = body_prepare(r, FLT_DIR_REQUEST, &r->bodies[0]) == 0 &&
             body_prepare(r, FLT_DIR_RESPONSE, &r->bodies[1]) == 0;
    r->bodies_state = ok ? 1 : -1;
  }
  state = r->bodies_state;
  pthread_mutex_unlock(&r->body_mu);
  *bodies = r->bodies;
  return state > 0 ? 0 : -1;
}

void tr_flow_bodies_free(tr_flow_t *r) {
  body_free(&r->bodies[0]);
  body_free(&r->bodies[1]);
}

/* ---- large buffers -------------------------------------------------------- */

static pthread_mutex_t big_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  char *p;
  size_t size;
} big[TR_BIG_KEEP];

char *tr_big_get(size_t size, size_t *got) {
  char *p = NULL;

  *got = size;
  if (size >= TR_BIG_MIN && size <= TR_BIG_MAX) {
    pthread_mutex_lock(&big_mu);
    for (int i = 0; i < TR_BIG_KEEP && p == NULL; i++) {
      if (big[i].p && big[i].size >= size) {
        p = big[i].p;
        *got = big[i].size;
        big[i].p = NULL;
      }
    }
    pthread_mutex_unlock(&big_mu);
  }
  return p ? p : malloc(size);
}

void tr_big_put(char *p, size_t size) {
  if (p && size >= TR_BIG_MIN && size <= TR_BIG_MAX) {
    pthread_mutex_lock(&big_mu);
    for (int i = 0; i < TR_BIG_KEEP && p; i++) {
      if (big[i].p == NULL) {
        big[i].p = p;
        big[i].size = size;
        p = NULL;
      }
    }
    pthread_mutex_unlock(&big_mu);
  }
  free(p);
}
