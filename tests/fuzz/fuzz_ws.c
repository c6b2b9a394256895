/* fuzz_ws.c — libFuzzer target for the WebSocket frame reader
 * (proxy/codec/ws.c), both directions, with and without permessage-deflate.
 *
 * Input: byte 0 chooses the codec (bit 0: the client's direction, masked;
 * bit 1: permessage-deflate; bits 2-3: client_/server_no_context_takeover),
 * byte 1 seeds the piece sizes; the rest is the byte stream of one
 * direction. It is fed whole to one codec and in pieces of 1..32 bytes to
 * another. Checks:
 *   - the messages (opcode, length, a hash of the data) and the error are
 *     the same whatever the split;
 *   - what is forwarded is exactly the pieces accepted, in order, and
 *     nothing after a failure; a failed codec refuses more input;
 *   - no message is over PX_WS_MAX_MESSAGE, no control message over 125
 *     bytes, and every opcode reported is a valid one.
 * Corpus: tests/fuzz/corpus/ws/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/codec/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct run {
  uint64_t digest;   /* over every message: opcode, length, data */
  size_t messages;
  size_t forwarded;  /* bytes forwarded */
  const uint8_t *in; /* the stream, to compare what is forwarded */
  int opcode, errors;
  char why[256];
} run_t;

static void mix(run_t *r, uint64_t v) { r->digest = (r->digest ^ v) * 1099511628211ull; }

static int on_head(void *owner, px_codec_t *c, const px_codec_head_t *h) {
  run_t *r = owner;
  (void)c;
  r->opcode = h->opcode;
  if (h->opcode != PX_WS_TEXT && h->opcode != PX_WS_BINARY && h->opcode != PX_WS_CLOSE &&
      h->opcode != PX_WS_PING && h->opcode != PX_WS_PONG)
    abort();
  return 0;
}

static void on_body(void *owner, px_codec_t *c, uint32_t stream, const char *d, size_t n) {
  run_t *r = owner;
  (void)c, (void)stream;
  if (n > PX_WS_MAX_MESSAGE) abort();
  if ((r->opcode & 8) && n > PX_WS_MAX_CONTROL) abort();
  mix(r, (uint64_t)r->opcode << 32 | n);
  for (size_t i = 0; i < n; i++) mix(r, (unsigned char)d[i]);
  r->messages++;
}

static void on_forward(void *owner, px_codec_t *c, uint32_t stream, const char *d, size_t n) {
  run_t *r = owner;
  (void)c, (void)stream;
  if (r->errors || memcmp(d, r->in + r->forwarded, n) != 0) abort();
  r->forwarded += n;
}

static void on_end(void *owner, px_codec_t *c, uint32_t stream) { (void)owner, (void)c, (void)stream; }

static void on_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  run_t *r = owner;
  (void)c, (void)stream;
  if (r->errors++) abort(); /* once */
  snprintf(r->why, sizeof(r->why), "%s", why);
}

static const px_codec_sink_t sink = {on_head, on_body, on_forward, on_end, on_error, NULL};

static void feed(const px_ws_params_t *p, int client, const uint8_t *in, size_t n, uint32_t seed,
                 run_t *r) {
  memset(r, 0, sizeof(*r));
  r->in = in;
  r->digest = 14695981039346656037ull;
  px_codec_t *c = px_codec_ws_new(client, p, &sink, r);
  if (c == NULL) abort();
  size_t at = 0;
  while (at < n) {
    size_t piece = n - at;
    if (seed) {
      seed = seed * 1103515245u + 12345u;
      size_t k = 1 + (seed >> 16) % 32;
      if (k < piece) piece = k;
    }
    /* A heap copy of exactly the piece: ASan sees a read past it. */
    uint8_t *copy = malloc(piece);
    if (copy == NULL) abort();
    memcpy(copy, in + at, piece);
    size_t before = r->forwarded;
    int rc = px_codec_input(c, (const char *)copy, piece);
    free(copy);
    if ((rc != 0) != (r->errors != 0)) abort();
    if (rc != 0) {
      if (r->forwarded != before || px_codec_phase(c) != PX_CODEC_FAILED) abort();
      if (px_codec_input(c, "\x81", 1) != -1) abort();
      break;
    }
    if (r->forwarded != at + piece) abort();
    at += piece;
  }
  px_codec_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int flags = data[0], client = flags & 1;
  uint32_t seed = data[1] | 0x100u; /* never 0: 0 means whole */
  px_ws_params_t p;
  char why[200];
  const char *ext = (flags & 2) ? "permessage-deflate" : NULL;
  if (px_ws_params_parse(ext, ext ? strlen(ext) : 0, &p, why, sizeof(why)) != 0) abort();
  p.client_no_context_takeover = (flags >> 2) & 1;
  p.server_no_context_takeover = (flags >> 3) & 1;
  data += 2;
  size -= 2;
  run_t whole, split;
  feed(&p, client, data, size, 0, &whole);
  feed(&p, client, data, size, seed, &split);
  if (whole.digest != split.digest || whole.messages != split.messages ||
      whole.errors != split.errors || strcmp(whole.why, split.why) != 0)
    abort(); /* depends on the split */
  return 0;
}
