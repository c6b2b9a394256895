/* tag_marker.c — an example tlspeek plugin: tags the flows whose response
 * body contains a marker string (default "TODO"). The tag shows on the
 * console line ("[marker:TEXT]") and in HAR (_tags) and JSONL (tags).
 *
 *   make examples
 *   ./tlspeek --load build/examples/tag_marker.so:secret-token
 *
 * The marker is searched in the body bytes as they arrive (still
 * content-encoded): a marker split between two chunks is found by keeping
 * the last len-1 bytes of the previous chunk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/filter.h"

typedef struct tagger {
  char marker[128];
  size_t len;
  int slot;
  char tag[160];
} tagger_t;

/* Per flow: found yet, and the tail of the previous chunk. */
typedef struct seen {
  int found;
  size_t keep;
  char tail[128];
} seen_t;

static int contains(const char *hay, size_t n, const char *needle, size_t m) {
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(hay + i, needle, m) == 0) return 1;
  return 0;
}

static void on_response_body(void *self, flt_flow_t *f, const uint8_t *data, size_t len) {
  tagger_t *t = self;
  seen_t *s = f->fctx[t->slot];
  if (s == NULL) {
    s = calloc(1, sizeof(*s));
    if (s == NULL) return;
    f->fctx[t->slot] = s;
  }
  if (s->found) return;
  /* Search the seam between the kept tail and this chunk, then the chunk. */
  char seam[256];
  size_t head = len < t->len - 1 ? len : t->len - 1;
  memcpy(seam, s->tail, s->keep);
  memcpy(seam + s->keep, data, head);
  if (contains(seam, s->keep + head, t->marker, t->len) ||
      contains((const char *)data, len, t->marker, t->len)) {
    s->found = 1;
    return;
  }
  size_t keep = t->len - 1;
  if (len >= keep) {
    memcpy(s->tail, data + len - keep, keep);
    s->keep = keep;
  } else {
    size_t drop = s->keep + len > keep ? s->keep + len - keep : 0;
    memmove(s->tail, s->tail + drop, s->keep - drop);
    memcpy(s->tail + s->keep - drop, data, len);
    s->keep = s->keep - drop + len;
  }
}

static void on_flow_end(void *self, flt_flow_t *f) {
  tagger_t *t = self;
  seen_t *s = f->fctx[t->slot];
  if (s == NULL) return;
  if (s->found) flt_flow_tag(f, t->tag);
  free(s);
  f->fctx[t->slot] = NULL;
}

static const flt_ops_t ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "tag_marker",
    .on_response_body = on_response_body,
    .on_flow_end = on_flow_end,
};

static void *create(const char *arg, int slot, char *err, size_t errlen) {
  const char *marker = arg && *arg ? arg : "TODO";
  if (strlen(marker) >= sizeof(((tagger_t *)0)->marker)) {
    snprintf(err, errlen, "the marker is longer than 127 bytes");
    return NULL;
  }
  tagger_t *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(t->marker, sizeof(t->marker), "%s", marker);
  t->len = strlen(marker);
  t->slot = slot;
  snprintf(t->tag, sizeof(t->tag), "marker:%s", marker);
  return t;
}

const flt_plugin_t tlspeek_plugin = {
    .abi_version = FLT_ABI_VERSION,
    .name = "tag_marker",
    .description = "tags flows whose response contains a marker",
    .ops = &ops,
    .create = create,
    .destroy = free,
};
