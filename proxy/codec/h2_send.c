/* h2_send.c — the heads the h2 codec submits (h2.h: px_h2_request,
 * px_h2_response), each with a data provider reading the stream's queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/h2_internal.h"

/* ---- heads sent ---------------------------------------------------------------------- */

int32_t px_h2_request(px_codec_t *c, const flt_head_t *hd, const px_head_edit_t *e,
                      const char *authority, const char *scheme) {
  h2_t *h = (h2_t *)c;
  nghttp2_nv *nva = NULL;
  size_t n = 0;
  void *store = NULL;
  h2_stream_t *st = NULL;
  int32_t id = -1;
  if (h->failed || px_h2_nv_build(hd, e, authority, scheme, &nva, &n, &store) != 0) goto Exit;
  if (px_h2_stream_open(h, -1, &st) != 0) goto Exit;
  nghttp2_data_provider prov = px_h2_provider(st);
  id = nghttp2_submit_request(h->ng, NULL, nva, n, &prov, st);
  if (id < 0) {
    snprintf(h->err, sizeof(h->err), "cannot open an HTTP/2 stream: %s", nghttp2_strerror(id));
    px_h2_stream_drop(h, st);
    id = -1;
    goto Exit;
  }
  st->id = id;
  px_h2_flush(h);
Exit:
  free(store);
  return id;
}

int px_h2_response(px_codec_t *c, uint32_t stream, const flt_head_t *hd, const px_head_edit_t *e) {
  h2_t *h = (h2_t *)c;
  nghttp2_nv *nva = NULL;
  size_t n = 0;
  void *store = NULL;
  int rc = -1;
  h2_stream_t *st = px_h2_stream(h, (int32_t)stream);
  if (st == NULL || h->failed) return -1;
  if (px_h2_nv_build(hd, e, NULL, NULL, &nva, &n, &store) != 0) return -1;
  if (hd->status >= 100 && hd->status < 200) {
    rc = nghttp2_submit_headers(h->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nva, n, NULL) < 0 ? -1 : 0;
  } else {
    nghttp2_data_provider prov = px_h2_provider(st);
    rc = nghttp2_submit_response(h->ng, st->id, nva, n, &prov) != 0 ? -1 : 0;
  }
  free(store);
  px_h2_flush(h);
  return rc;
}
