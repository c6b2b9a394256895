/* answer_serve.c — the --serve-from index (answer_serve.h): a recording
 * read once by the transcript readers, copied into a hash table of keys
 * (method, URL, and with url+body the body hash), each with its responses
 * in recording order and an atomic counter to cycle through them. */
#include "proxy/answer_serve.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/transcript/reader.h"

#define SERVE_BUCKETS 4096u

typedef struct serve_key {
  char *method, *url;
  uint64_t hash;            /* body hash (0 unless match_body) */
  px_served_t **resp;       /* in recording order */
  unsigned n, cap;
  atomic_uint next;         /* the next request's index, modulo n */
  struct serve_key *chain;
} serve_key_t;

struct px_serve {
  serve_key_t *buckets[SERVE_BUCKETS];
  int match_body;
  size_t n_entries;
};

uint64_t px_serve_hash(uint64_t h, const void *data, size_t len) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static unsigned bucket_of(const char *method, const char *url) {
  uint64_t h = px_serve_hash(PX_SERVE_HASH_INIT, method, strlen(method));
  h = px_serve_hash(h, " ", 1);
  h = px_serve_hash(h, url, strlen(url));
  return (unsigned)(h % SERVE_BUCKETS);
}

static serve_key_t *find_key(const px_serve_t *sv, const char *method, const char *url,
                             uint64_t hash, int any_hash) {
  for (serve_key_t *k = sv->buckets[bucket_of(method, url)]; k; k = k->chain)
    if (strcmp(k->method, method) == 0 && strcmp(k->url, url) == 0 &&
        (any_hash || k->hash == hash))
      return k;
  return NULL;
}

/* Fields that belong to the recorded connection, not to the answer. */
static int dropped(const flt_header_t *h, int decoded) {
  static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "te",
                                    "trailer", "transfer-encoding", "upgrade", "content-length"};
  for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if (h->name_len == strlen(hop[i]) && strncasecmp(h->name, hop[i], h->name_len) == 0) return 1;
  return decoded && h->name_len == 16 && strncasecmp(h->name, "content-encoding", 16) == 0;
}

static char *dupn(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s ? s : "", n);
    d[n] = '\0';
  }
  return d;
}

static void served_free(px_served_t *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->n_headers; i++) {
    free((char *)r->headers[i].name);
    free((char *)r->headers[i].value);
  }
  free((flt_header_t *)r->headers);
  free((char *)r->reason);
  free((uint8_t *)r->body);
  free(r);
}

/* A copy of the recorded response of `rf`, ready to send. NULL when out of
 * memory. */
static px_served_t *served_copy(const flt_rec_flow_t *rf) {
  const flt_head_t *h = &rf->flow.resp;
  const flt_rec_body_t *b = &rf->body[FLT_DIR_RESPONSE];
  px_served_t *r = calloc(1, sizeof(*r));
  if (r == NULL) return NULL;
  flt_header_t *hs = calloc(h->n_headers + 1, sizeof(*hs));
  r->headers = hs;
  r->status = h->status;
  r->reason = dupn(h->reason, h->reason ? strlen(h->reason) : 0);
  r->decoded = !b->present || b->decode_error == NULL;
  r->truncated = b->present && b->truncated;
  r->body_len = b->present ? b->len : 0;
  r->body = (const uint8_t *)dupn((const char *)b->data, r->body_len);
  snprintf(r->where, sizeof(r->where), "%s", rf->where);
  if (hs == NULL || r->reason == NULL || r->body == NULL) goto fail;
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *f = &h->headers[i];
    if (r->decoded && f->name_len == 16 && strncasecmp(f->name, "content-encoding", 16) == 0)
      snprintf(r->dropped_encoding, sizeof(r->dropped_encoding), "%.*s", (int)f->value_len,
               f->value);
    if (dropped(f, r->decoded)) continue;
    flt_header_t *d = &hs[r->n_headers++];
    d->name_len = h->headers[i].name_len;
    d->value_len = h->headers[i].value_len;
    d->name = dupn(h->headers[i].name, d->name_len);
    d->value = dupn(h->headers[i].value, d->value_len);
    if (d->name == NULL || d->value == NULL) goto fail;
  }
  return r;
fail:
  served_free(r);
  return NULL;
}

static int add(px_serve_t *sv, const flt_rec_flow_t *rf) {
  const char *method = rf->flow.req.method ? rf->flow.req.method : "GET";
  const char *url = rf->flow.url ? rf->flow.url : "";
  const flt_rec_body_t *qb = &rf->body[FLT_DIR_REQUEST];
  uint64_t hash = 0;
  if (sv->match_body)
    hash = px_serve_hash(PX_SERVE_HASH_INIT, qb->present ? qb->data : NULL,
                         qb->present ? qb->len : 0);
  serve_key_t *k = find_key(sv, method, url, hash, 0);
  if (k == NULL) {
    k = calloc(1, sizeof(*k));
    if (k == NULL) return -1;
    k->method = dupn(method, strlen(method));
    k->url = dupn(url, strlen(url));
    k->hash = hash;
    unsigned b = bucket_of(method, url);
    k->chain = sv->buckets[b];
    sv->buckets[b] = k;
    if (k->method == NULL || k->url == NULL) return -1;
  }
  if (k->n == k->cap) {
    unsigned cap = k->cap ? k->cap * 2 : 2;
    px_served_t **r = realloc(k->resp, cap * sizeof(*r));
    if (r == NULL) return -1;
    k->resp = r;
    k->cap = cap;
  }
  px_served_t *r = served_copy(rf);
  if (r == NULL) return -1;
  k->resp[k->n++] = r;
  sv->n_entries++;
  return 0;
}

px_serve_t *px_serve_load(const char *path, int match_body, char *err, size_t errlen) {
  char why[1024];
  flt_rec_flow_t *rf;
  int rc;
  flt_reader_t *rd = flt_reader_open(path, why, sizeof(why));
  if (rd == NULL) {
    snprintf(err, errlen, "%s: %s", path, why);
    return NULL;
  }
  px_serve_t *sv = calloc(1, sizeof(*sv));
  if (sv == NULL) {
    flt_reader_free(rd);
    snprintf(err, errlen, "%s: out of memory", path);
    return NULL;
  }
  sv->match_body = match_body;
  while ((rc = flt_reader_next(rd, &rf, why, sizeof(why))) == 1) {
    if (!rf->flow.has_response || rf->flow.resp.status < 200) continue;
    if (add(sv, rf) != 0) {
      rc = -1;
      snprintf(why, sizeof(why), "out of memory");
      break;
    }
  }
  flt_reader_free(rd);
  if (rc == 0 && sv->n_entries == 0) {
    rc = -1;
    snprintf(why, sizeof(why), "no recorded request has a response to serve");
  }
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", path, why);
    px_serve_free(sv);
    return NULL;
  }
  return sv;
}

void px_serve_free(px_serve_t *sv) {
  if (sv == NULL) return;
  for (unsigned b = 0; b < SERVE_BUCKETS; b++) {
    serve_key_t *k = sv->buckets[b];
    while (k) {
      serve_key_t *next = k->chain;
      for (unsigned i = 0; i < k->n; i++) served_free(k->resp[i]);
      free(k->resp);
      free(k->method);
      free(k->url);
      free(k);
      k = next;
    }
  }
  free(sv);
}

size_t px_serve_count(const px_serve_t *sv) { return sv->n_entries; }

int px_serve_has(const px_serve_t *sv, const char *method, const char *url) {
  return find_key(sv, method, url, 0, 1) != NULL;
}

const px_served_t *px_serve_pick(px_serve_t *sv, const char *method, const char *url,
                                 uint64_t body_hash, unsigned *nth, unsigned *of) {
  serve_key_t *k = find_key(sv, method, url, sv->match_body ? body_hash : 0, 0);
  if (k == NULL || k->n == 0) return NULL;
  unsigned i = atomic_fetch_add(&k->next, 1) % k->n;
  *nth = i + 1;
  *of = k->n;
  return k->resp[i];
}
