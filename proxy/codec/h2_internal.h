/* h2_internal.h — what the files of the h2 codec (h2.c, h2_send.c,
 * h2_head.c) share: the codec's state and its per-stream records. Nothing
 * outside proxy/codec/h2*.c includes it. */
#ifndef TLSPEEK_H2_INTERNAL_H
#define TLSPEEK_H2_INTERNAL_H

#include <nghttp2/nghttp2.h>

#include "proxy/codec/h2.h"

/* Fields of one header list at most (with PX_H2_MAX_HEADER_LIST). */
#define PX_H2_MAX_FIELDS 512

/* One stream as this leg sees it. */
typedef struct h2_stream {
  int32_t id;
  flt_strbuf_t hbuf; /* the header list being received: "name\0value\0"... */
  size_t n_fields;
  flt_head_t *head;    /* the last head received (a px_head_copy), or NULL */
  int final_head;      /* a final (non-1xx) head was received: next HEADERS are trailers */
  int remote_end;      /* the peer's END_STREAM came */
  int ended_with_head; /* ... on the HEADERS frame itself (no body) */
  size_t unconsumed;   /* DATA received and not yet given back (px_h2_consume) */
  flt_strbuf_t out;    /* DATA to send, from out_off */
  size_t out_off;
  int out_end;     /* END_STREAM (or trailers) after `out` */
  int deferred;    /* the data provider waits for px_h2_data / px_h2_end */
  nghttp2_nv *trl; /* trailers to send after `out` (inside trl_store), or NULL */
  size_t n_trl;
  void *trl_store;
  struct h2_stream *next;
} h2_stream_t;

typedef struct h2 {
  px_codec_t base; /* first: the codec's address is its state's */
  const px_h2_io_t *io;
  nghttp2_session *ng;
  int server;
  int depth;  /* inside nghttp2 (recv or send): no mem_send now */
  int failed; /* the connection ended with an error (err says why) */
  int told;   /* on_error was called */
  h2_stream_t *streams;
  size_t n_streams;
  char err[256];
} h2_t;

/* h2.c */
h2_stream_t *px_h2_stream(h2_t *h, int32_t id);
int px_h2_stream_open(h2_t *h, int32_t id, h2_stream_t **out);
void px_h2_stream_drop(h2_t *h, h2_stream_t *st);
nghttp2_data_provider px_h2_provider(h2_stream_t *st);
void px_h2_flush(h2_t *h);
/* h2_head.c: the received header list of `st` as a head (fields point
 * into st->hbuf, `fields` holds at least st->n_fields). */
void px_h2_head_from_list(h2_stream_t *st, int request, flt_header_t *fields, flt_head_t *out);

#endif
