/* libFuzzer target for the HTTP/1 framer (proxy/codec/http1.c, proxy/codec/http1_check.c):
 * arbitrary bytes, split at a point the input chooses, as requests and as
 * responses; request heads are also rebuilt as sent upstream (hop-by-hop
 * fields stripped, Host replaced), and the bytes are sniffed as the start of
 * a connection. Checks that every byte fed is either passed on or held,
 * never invented. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/http1.h"

typedef struct count {
  size_t forwarded;
  int skip;
} count_t;

flt_head_t *px_http_copy_head(px_http_t *h);

static int on_head(void *ud, px_http_t *h, const char *raw, size_t len) {
  count_t *c = ud;
  flt_head_t *copy = px_http_copy_head(h);
  free(copy);
  if (h->type == HTTP_REQUEST) { /* the head as sent upstream */
    px_head_edit_t e;
    flt_strbuf_t out;
    memset(&e, 0, sizeof(e));
    e.strip_hop = px_http_has_hop_by_hop(h);
    e.host = "example.test:8080";
    flt_strbuf_init(&out, PX_HTTP_MAX_HEAD + 8192);
    px_http_head_build(h, &e, &out);
    flt_strbuf_free(&out);
  }
  c->forwarded += len;
  return c->skip;
}
static void on_forward(void *ud, const char *data, size_t len) {
  (void)data;
  ((count_t *)ud)->forwarded += len;
}
static void on_body(void *ud, const char *data, size_t len) {
  (void)ud;
  (void)data;
  (void)len;
}
static void on_end(void *ud, px_http_t *h) {
  (void)ud;
  if (h->await_verdict) px_http_resume_http(h);
}
static const px_http_cbs_t cbs = {on_head, on_forward, on_body, on_end};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t split = data[0] % (size - 1);
  int skip = data[1] & 1;
  data += 2;
  size -= 2;
  px_http_sniff((const char *)data, size);
  for (int type = 0; type < 2; type++) {
    px_http_t h;
    count_t c = {0, skip};
    px_http_init(&h, type == 0 ? HTTP_REQUEST : HTTP_RESPONSE, &cbs, &c);
    int rc = px_http_feed(&h, (const char *)data, split);
    if (rc == 0) rc = px_http_feed(&h, (const char *)data + split, size - split);
    if (rc == 0) px_http_eof(&h);
    if (c.forwarded + h.raw.len > size) abort(); /* bytes out of nowhere */
    px_http_free(&h);
  }
  return 0;
}
