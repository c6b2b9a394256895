/* reader_json.c — typed access to a parsed transcript, each value checked
 * where it is read and a wrong one named by its JSON path
 * (reader_internal.h); the arena the current flow lives in; base64. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/transcript/reader_internal.h"

/* ---- the arena -------------------------------------------------------- */

void *rd_alloc(rd_arena_t *a, size_t size) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    void **b = realloc(a->blocks, cap * sizeof(*b));
    if (b == NULL) return NULL;
    a->blocks = b;
    a->cap = cap;
  }
  void *p = malloc(size ? size : 1);
  if (p) a->blocks[a->n++] = p;
  return p;
}

char *rd_strdup(rd_arena_t *a, const char *s) {
  size_t n = strlen(s);
  char *p = rd_alloc(a, n + 1);
  if (p) memcpy(p, s, n + 1);
  return p;
}

void rd_arena_reset(rd_arena_t *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->blocks[i]);
  a->n = 0;
}

/* ---- paths and messages ------------------------------------------------ */

/* Appends `seg` to the path; returns the length before it. */
static size_t rd_push(rd_ctx_t *c, const char *seg) {
  size_t old = c->len;
  int n = snprintf(c->path + c->len, sizeof(c->path) - c->len, "%s", seg);
  if (n > 0) c->len += (size_t)n;
  if (c->len >= sizeof(c->path)) c->len = sizeof(c->path) - 1; /* cut; still a message */
  return old;
}

size_t rd_push_key(rd_ctx_t *c, const char *key) {
  size_t old = c->len;
  if (c->len) rd_push(c, ".");
  rd_push(c, key);
  return old;
}

size_t rd_push_index(rd_ctx_t *c, int i) {
  char seg[16];
  snprintf(seg, sizeof(seg), "[%d]", i);
  return rd_push(c, seg);
}

void rd_pop(rd_ctx_t *c, size_t len) {
  c->len = len;
  c->path[len] = '\0';
}

int rd_fail(rd_ctx_t *c, const char *key, const char *what) {
  snprintf(c->err, c->errlen, "%s%s%s%s: %s", c->prefix, c->path, key && c->len ? "." : "",
           key ? key : "", what);
  return -1;
}

/* ---- typed members ------------------------------------------------------- */

/* The member, or NULL when absent; a null value counts as absent. */
static const cJSON *rd_member(const cJSON *obj, const char *key) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsNull(item) ? NULL : item;
}

static int rd_absent(rd_ctx_t *c, const char *key, int required) {
  return required ? rd_fail(c, key, "missing") : 0;
}

int rd_string(rd_ctx_t *c, const cJSON *obj, const char *key, int required, const char **out) {
  const cJSON *item = rd_member(obj, key);
  *out = NULL;
  if (item == NULL) return rd_absent(c, key, required);
  if (!cJSON_IsString(item) || item->valuestring == NULL)
    return rd_fail(c, key, "expected a string");
  *out = item->valuestring;
  return 0;
}

int rd_object(rd_ctx_t *c, const cJSON *obj, const char *key, int required, const cJSON **out) {
  const cJSON *item = rd_member(obj, key);
  *out = NULL;
  if (item == NULL) return rd_absent(c, key, required);
  if (!cJSON_IsObject(item)) return rd_fail(c, key, "expected an object");
  *out = item;
  return 0;
}

int rd_array(rd_ctx_t *c, const cJSON *obj, const char *key, int required, const cJSON **out) {
  const cJSON *item = rd_member(obj, key);
  *out = NULL;
  if (item == NULL) return rd_absent(c, key, required);
  if (!cJSON_IsArray(item)) return rd_fail(c, key, "expected an array");
  *out = item;
  return 0;
}

int rd_bool(rd_ctx_t *c, const cJSON *obj, const char *key, int *out) {
  const cJSON *item = rd_member(obj, key);
  *out = 0;
  if (item == NULL) return 0;
  if (!cJSON_IsBool(item)) return rd_fail(c, key, "expected true or false");
  *out = cJSON_IsTrue(item);
  return 0;
}

int rd_number(rd_ctx_t *c, const cJSON *obj, const char *key, int required, double lo, double hi,
              int integral, double *out, int *present) {
  const cJSON *item = rd_member(obj, key);
  char what[96];
  *out = 0;
  if (present) *present = 0;
  if (item == NULL) return rd_absent(c, key, required);
  if (!cJSON_IsNumber(item)) return rd_fail(c, key, "expected a number");
  double v = item->valuedouble;
  if (!isfinite(v) || v < lo || v > hi || (integral && v != (double)(int64_t)v)) {
    snprintf(what, sizeof(what), "expected %s from %.0f to %.0f",
             integral ? "an integer" : "a number", lo, hi);
    return rd_fail(c, key, what);
  }
  *out = v;
  if (present) *present = 1;
  return 0;
}

/* ---- base64 ---------------------------------------------------------------- */

static int b64_value(char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

int rd_base64(rd_arena_t *a, const char *s, uint8_t **out, size_t *len) {
  size_t n = strlen(s), o = 0;
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  uint8_t *p = rd_alloc(a, n / 4 * 3 + 3);

  if (p == NULL) return -2;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
    if (ch == '=') {
      pad++;
      continue;
    }
    int v = b64_value(ch);
    if (v < 0 || pad) return -1; /* nothing but padding after padding */
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      p[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (pad > 2) return -1;
  *out = p;
  *len = o;
  return 0;
}
