/* Unit tests of the `ws` codec (proxy/codec/ws.h): frames built here,
 * fed whole, split at every byte, and one byte at a time; masking,
 * lengths of every size, fragments with control frames between them,
 * close codes, permessage-deflate (zlib here compresses what the codec
 * must inflate), the extension header, and every error. A recording sink
 * stands in for the session: the messages in order, the bytes forwarded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "proxy/codec/ws.h"

typedef struct rec {
  flt_strbuf_t log;     /* "1:Hello|9:p|" (opcode:payload, binary as hex) */
  flt_strbuf_t forward; /* bytes forwarded */
  int opcode, client, errors, heads, ends;
  char why[256];
} rec_t;

static int rec_head(void *owner, px_codec_t *c, const px_codec_head_t *h) {
  rec_t *r = owner;
  (void)c;
  assert_int_equal(h->request, r->client);
  r->opcode = h->opcode;
  r->heads++;
  return 0;
}

static void rec_body(void *owner, px_codec_t *c, uint32_t stream, const char *d, size_t n) {
  rec_t *r = owner;
  (void)c, (void)stream;
  flt_strbuf_appendf(&r->log, "%d:", r->opcode);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)d[i];
    if (r->opcode == PX_WS_BINARY || ch < 0x20 || ch > 0x7e)
      flt_strbuf_appendf(&r->log, "\\%02x", ch);
    else
      flt_strbuf_append(&r->log, &d[i], 1);
  }
  flt_strbuf_append(&r->log, "|", 1);
}

static void rec_forward(void *owner, px_codec_t *c, uint32_t stream, const char *d, size_t n) {
  rec_t *r = owner;
  (void)c, (void)stream;
  flt_strbuf_append(&r->forward, d, n);
}

static void rec_end(void *owner, px_codec_t *c, uint32_t stream) {
  rec_t *r = owner;
  (void)c, (void)stream;
  r->ends++;
}

static void rec_error(void *owner, px_codec_t *c, uint32_t stream, const char *why) {
  rec_t *r = owner;
  (void)c, (void)stream;
  r->errors++;
  snprintf(r->why, sizeof(r->why), "%s", why);
}

static const px_codec_sink_t sink = {rec_head, rec_body, rec_forward, rec_end, rec_error, NULL};

static void rec_init(rec_t *r, int client) {
  memset(r, 0, sizeof(*r));
  r->client = client;
  flt_strbuf_init(&r->log, 0);
  flt_strbuf_init(&r->forward, 0);
}

static void rec_free(rec_t *r) {
  flt_strbuf_free(&r->log);
  flt_strbuf_free(&r->forward);
}

/* ---- building frames ---------------------------------------------------------- */

static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one frame: flags in b0's top bits (0x80 FIN, 0x40 RSV1 ...). */
static void frame(flt_strbuf_t *out, uint8_t b0, int masked, const void *payload, size_t n) {
  uint8_t h[14];
  size_t hl = 2;
  h[0] = b0;
  if (n < 126) {
    h[1] = (uint8_t)n;
  } else if (n < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    hl = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  if (masked) {
    h[1] |= 0x80;
    memcpy(h + hl, key, 4);
    hl += 4;
  }
  flt_strbuf_append(out, h, hl);
  const uint8_t *p = payload;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = masked ? p[i] ^ key[i & 3] : p[i];
    flt_strbuf_append(out, &b, 1);
  }
}

/* Raw deflate with a sync flush, the 4-byte tail taken off (RFC 7692). */
static size_t deflate_msg(z_stream *z, const char *text, uint8_t *out, size_t size) {
  if (text[0] == '\0') { /* RFC 7692 section 7.2.3.6: an empty message */
    out[0] = 0x00;
    return 1;
  }
  z->next_in = (Bytef *)text;
  z->avail_in = (uInt)strlen(text);
  z->next_out = out;
  z->avail_out = (uInt)size;
  assert_int_equal(deflate(z, Z_SYNC_FLUSH), Z_OK);
  size_t n = size - z->avail_out;
  assert_true(n >= 4);
  assert_memory_equal(out + n - 4, "\x00\x00\xff\xff", 4);
  return n - 4;
}

/* Feeds `in` in two pieces split at `cut` (or byte by byte when cut is
 * SIZE_MAX) to a new codec; returns the log. */
static void run(const flt_strbuf_t *in, int client, const px_ws_params_t *p, size_t cut,
                rec_t *r) {
  rec_init(r, client);
  px_codec_t *c = px_codec_ws_new(client, p, &sink, r);
  assert_non_null(c);
  if (cut == SIZE_MAX) {
    for (size_t i = 0; i < in->len; i++) px_codec_input(c, in->data + i, 1);
  } else {
    px_codec_input(c, in->data, cut);
    px_codec_input(c, in->data + cut, in->len - cut);
  }
  px_codec_free(c);
}

/* The same messages and forwarded bytes whatever the split. */
static void expect_every_split(const flt_strbuf_t *in, int client, const px_ws_params_t *p,
                               const char *want) {
  rec_t r;
  for (size_t cut = 0; cut <= in->len; cut++) {
    run(in, client, p, cut, &r);
    assert_int_equal(r.errors, 0);
    assert_string_equal(r.log.data ? r.log.data : "", want);
    assert_int_equal(r.forward.len, in->len);
    assert_memory_equal(r.forward.data, in->data, in->len);
    rec_free(&r);
  }
  run(in, client, p, SIZE_MAX, &r);
  assert_string_equal(r.log.data ? r.log.data : "", want);
  assert_int_equal(r.forward.len, in->len);
  rec_free(&r);
}

/* ---- tests -------------------------------------------------------------------- */

static void test_ws_masked_and_unmasked_messages(void **state) {
  (void)state;
  flt_strbuf_t in;
  flt_strbuf_init(&in, 0);
  frame(&in, 0x81, 1, "Hello", 5);
  frame(&in, 0x82, 1, "\x00\x01\xff", 3);
  frame(&in, 0x81, 1, "", 0);
  expect_every_split(&in, 1, NULL, "1:Hello|2:\\00\\01\\ff|1:|");
  flt_strbuf_reset(&in);
  frame(&in, 0x81, 0, "from the server", 15);
  expect_every_split(&in, 0, NULL, "1:from the server|");
  flt_strbuf_free(&in);
}

static void test_ws_lengths_16_and_64_bit(void **state) {
  (void)state;
  size_t sizes[] = {125, 126, 65535, 65536, 70000};
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    size_t n = sizes[k];
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (char)('a' + i % 26);
    flt_strbuf_t in;
    flt_strbuf_init(&in, 0);
    frame(&in, 0x81, 1, p, n);
    rec_t r;
    run(&in, 1, NULL, 7, &r);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.log.len, n + 3); /* "1:" ... "|" */
    assert_memory_equal(r.log.data + 2, p, n);
    rec_free(&r);
    flt_strbuf_free(&in);
    free(p);
  }
}

static void test_ws_fragments_with_control_frames_between(void **state) {
  (void)state;
  flt_strbuf_t in;
  flt_strbuf_init(&in, 0);
  frame(&in, 0x01, 1, "Hel", 3);        /* text, not FIN */
  frame(&in, 0x89, 1, "p1", 2);         /* ping between fragments */
  frame(&in, 0x00, 1, "lo, ", 4);       /* continuation */
  frame(&in, 0x8a, 1, "", 0);           /* empty pong */
  frame(&in, 0x80, 1, "world", 5);      /* last fragment */
  frame(&in, 0x88, 1, "\x03\xe8" "bye", 5); /* close 1000 "bye" */
  expect_every_split(&in, 1, NULL, "9:p1|10:|1:Hello, world|8:\\03\\e8bye|");
  flt_strbuf_free(&in);
}

static void deflate_case(int server_reset, int fragmented) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  uint8_t buf[512];
  flt_strbuf_t in;
  flt_strbuf_init(&in, 0);
  const char *msgs[] = {"a message that repeats, a message that repeats",
                        "a message that repeats once more", ""};
  for (int i = 0; i < 3; i++) {
    size_t n = deflate_msg(&z, msgs[i], buf, sizeof(buf));
    if (fragmented && n > 4) {
      frame(&in, 0x41, 0, buf, 3); /* RSV1 on the first frame only */
      frame(&in, 0x89, 0, "", 0);
      frame(&in, 0x80, 0, buf + 3, n - 3);
    } else {
      frame(&in, 0xc1, 0, buf, n);
    }
    if (server_reset) deflateReset(&z);
  }
  frame(&in, 0x81, 0, "plain", 5); /* uncompressed messages may follow */
  deflateEnd(&z);
  px_ws_params_t p;
  char why[200];
  const char *ext = server_reset ? "permessage-deflate; server_no_context_takeover; "
                                   "server_max_window_bits=10"
                                 : "permessage-deflate";
  assert_int_equal(px_ws_params_parse(ext, strlen(ext), &p, why, sizeof(why)), 0);
  assert_int_equal(p.server_no_context_takeover, server_reset);
  char want[400];
  snprintf(want, sizeof(want), "%s1:%s|%s1:%s|%s1:|1:plain|", fragmented ? "9:|" : "", msgs[0],
           fragmented ? "9:|" : "", msgs[1], "");
  expect_every_split(&in, 0, &p, want);
  flt_strbuf_free(&in);
}

static void test_ws_permessage_deflate(void **state) {
  (void)state;
  deflate_case(0, 0); /* the second message refers back to the first */
  deflate_case(1, 0);
  deflate_case(0, 1);
}

/* A large compressed message: the output outgrows the buffer many times,
 * with output still pending inside zlib each time the room runs out. */
static void test_ws_large_inflated_message(void **state) {
  (void)state;
  size_t n = 300000;
  char *text = malloc(n + 1);
  uint32_t x = 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    text[i] = (char)('a' + (x >> 16) % 4); /* compressible, not trivially */
  }
  text[n] = '\0';
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
  size_t size = deflateBound(&z, n) + 16;
  uint8_t *buf = malloc(size);
  size_t clen = deflate_msg(&z, text, buf, size);
  deflateEnd(&z);
  flt_strbuf_t in;
  flt_strbuf_init(&in, 0);
  frame(&in, 0xc1, 1, buf, clen);
  px_ws_params_t p;
  char why[200];
  assert_int_equal(px_ws_params_parse("permessage-deflate", 18, &p, why, sizeof(why)), 0);
  size_t cuts[] = {0, 5, 14, in.len / 2, in.len - 1};
  for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
    rec_t r;
    run(&in, 1, &p, cuts[k], &r);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.log.len, n + 3);
    assert_memory_equal(r.log.data + 2, text, n);
    rec_free(&r);
  }
  flt_strbuf_free(&in);
  free(buf);
  free(text);
}

static void test_ws_extension_header(void **state) {
  (void)state;
  px_ws_params_t p;
  char why[200];
  assert_int_equal(px_ws_params_parse(NULL, 0, &p, why, sizeof(why)), 0);
  assert_int_equal(p.deflate, 0);
  const char *ok = "permessage-deflate; client_max_window_bits=\"12\"; client_no_context_takeover";
  assert_int_equal(px_ws_params_parse(ok, strlen(ok), &p, why, sizeof(why)), 0);
  assert_int_equal(p.deflate, 1);
  assert_int_equal(p.client_max_window_bits, 12);
  assert_int_equal(p.client_no_context_takeover, 1);
  assert_int_equal(p.server_max_window_bits, 15);
  const char *other = "x-webkit-deflate-frame";
  assert_int_equal(px_ws_params_parse(other, strlen(other), &p, why, sizeof(why)), -1);
  assert_non_null(strstr(why, "x-webkit-deflate-frame"));
  const char *badparam = "permessage-deflate; server_max_window_bits=20";
  assert_int_equal(px_ws_params_parse(badparam, strlen(badparam), &p, why, sizeof(why)), -1);
  assert_non_null(strstr(why, "server_max_window_bits=20"));
}

/* A good frame, then `bad`: the good one is reported, the bad piece is
 * not forwarded, the error names the fault, and the codec stays failed. */
static void expect_error(int client, const px_ws_params_t *p, const flt_strbuf_t *bad,
                         const char *fault) {
  for (size_t cut = 0; cut <= bad->len; cut++) {
    rec_t r;
    rec_init(&r, client);
    px_codec_t *c = px_codec_ws_new(client, p, &sink, &r);
    flt_strbuf_t good;
    flt_strbuf_init(&good, 0);
    frame(&good, 0x81, client, "ok", 2);
    assert_int_equal(px_codec_input(c, good.data, good.len), 0);
    int rc = px_codec_input(c, bad->data, cut);
    if (rc == 0) rc = px_codec_input(c, bad->data + cut, bad->len - cut);
    assert_int_equal(rc, -1);
    assert_int_equal(r.errors, 1);
    assert_non_null(strstr(r.why, fault));
    assert_string_equal(px_codec_error(c), r.why);
    assert_int_equal(px_codec_phase(c), PX_CODEC_FAILED);
    assert_string_equal(r.log.data, "1:ok|");
    assert_true(r.forward.len <= good.len + cut); /* the failing piece is not forwarded */
    assert_int_equal(px_codec_input(c, good.data, good.len), -1);
    assert_int_equal(r.errors, 1);
    flt_strbuf_free(&good);
    px_codec_free(c);
    rec_free(&r);
  }
}

static void test_ws_errors(void **state) {
  (void)state;
  flt_strbuf_t b;
  px_ws_params_t deflate;
  char why[200];
  assert_int_equal(px_ws_params_parse("permessage-deflate", 18, &deflate, why, sizeof(why)), 0);
  char big[126];
  memset(big, 'x', sizeof(big));
  flt_strbuf_init(&b, 0);
#define BAD(client, params, build, fault)                                                 \
  do {                                                                                    \
    flt_strbuf_reset(&b);                                                                 \
    build;                                                                                \
    expect_error(client, params, &b, fault);                                              \
  } while (0)
  BAD(1, NULL, frame(&b, 0x83, 1, "x", 1), "reserved opcode 3");
  BAD(1, NULL, frame(&b, 0x8b, 1, "x", 1), "reserved opcode 11");
  BAD(1, NULL, frame(&b, 0xa1, 1, "x", 1), "RSV2/RSV3");
  BAD(1, NULL, frame(&b, 0x91, 1, "x", 1), "RSV2/RSV3");
  BAD(1, NULL, frame(&b, 0xc1, 1, "x", 1), "RSV1 set, but permessage-deflate was not agreed");
  BAD(1, &deflate, frame(&b, 0xc9, 1, "x", 1), "RSV1 set on a control frame");
  BAD(1, &deflate, (frame(&b, 0x01, 1, "a", 1), frame(&b, 0xc0, 1, "b", 1)),
      "RSV1 set on a continuation frame");
  BAD(1, NULL, frame(&b, 0x81, 0, "x", 1), "unmasked frame from the client");
  BAD(0, NULL, frame(&b, 0x81, 1, "x", 1), "masked frame from the server");
  BAD(1, NULL, frame(&b, 0x89, 1, big, 126), "longer than 125 bytes");
  BAD(1, NULL, frame(&b, 0x09, 1, "x", 1), "fragmented control frame");
  BAD(1, NULL, frame(&b, 0x80, 1, "x", 1), "continuation frame with no message begun");
  BAD(1, NULL, (frame(&b, 0x01, 1, "a", 1), frame(&b, 0x81, 1, "b", 1)),
      "a new message began before the last fragment");
  BAD(1, NULL, frame(&b, 0x88, 1, "\x03", 1), "close frame with a 1-byte payload");
  BAD(0, &deflate, frame(&b, 0xc1, 0, "\xff\xff\xff", 3), "does not inflate");
  /* Lengths: the header alone decides (no payload needs to follow). */
  BAD(0, NULL, flt_strbuf_append(&b, "\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10),
      "top bit set");
  BAD(0, NULL, flt_strbuf_append(&b, "\x82\x7f\x00\x00\x00\x00\x01\x00\x00\x01", 10),
      "over the 16 MiB cap");
#undef BAD
  flt_strbuf_free(&b);
}

/* Fragments that add up past the cap fail at the frame that crosses it. */
static void test_ws_message_cap_across_fragments(void **state) {
  (void)state;
  rec_t r;
  rec_init(&r, 0);
  px_codec_t *c = px_codec_ws_new(0, NULL, &sink, &r);
  size_t half = PX_WS_MAX_MESSAGE / 2 + 1;
  char *p = calloc(1, half);
  flt_strbuf_t in;
  flt_strbuf_init(&in, 0);
  frame(&in, 0x02, 0, p, half);
  assert_int_equal(px_codec_input(c, in.data, in.len), 0);
  flt_strbuf_reset(&in);
  frame(&in, 0x80, 0, p, half);
  assert_int_equal(px_codec_input(c, in.data, 10), -1);
  assert_non_null(strstr(r.why, "16 MiB cap"));
  flt_strbuf_free(&in);
  free(p);
  px_codec_free(c);
  rec_free(&r);
}

/* A deflate bomb: a small frame that inflates past the cap fails. */
static void test_ws_inflated_past_the_cap(void **state) {
  (void)state;
  size_t n = PX_WS_MAX_MESSAGE + 4096;
  char *zeros = calloc(1, n);
  uLongf size = compressBound(n);
  uint8_t *out = malloc(size);
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)zeros;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)size;
  assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
  size_t clen = size - z.avail_out - 4;
  deflateEnd(&z);
  flt_strbuf_t in;
  flt_strbuf_init(&in, 0);
  frame(&in, 0xc2, 0, out, clen);
  px_ws_params_t p;
  char why[200];
  px_ws_params_parse("permessage-deflate", 18, &p, why, sizeof(why));
  rec_t r;
  rec_init(&r, 0);
  px_codec_t *c = px_codec_ws_new(0, &p, &sink, &r);
  assert_int_equal(px_codec_input(c, in.data, in.len), -1);
  assert_non_null(strstr(r.why, "inflates past the 16 MiB cap"));
  px_codec_free(c);
  rec_free(&r);
  flt_strbuf_free(&in);
  free(out);
  free(zeros);
}

static void test_ws_eof_in_a_frame(void **state) {
  (void)state;
  rec_t r;
  rec_init(&r, 1);
  px_codec_t *c = px_codec_ws_new(1, NULL, &sink, &r);
  flt_strbuf_t in;
  flt_strbuf_init(&in, 0);
  frame(&in, 0x81, 1, "Hello", 5);
  assert_int_equal(px_codec_input(c, in.data, in.len), 0);
  assert_int_equal(px_codec_eof(c), 0);
  assert_int_equal(px_codec_input(c, in.data, 3), 0);
  assert_int_equal(px_codec_eof(c), -1);
  assert_non_null(strstr(px_codec_error(c), "middle of a message"));
  flt_strbuf_free(&in);
  px_codec_free(c);
  rec_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ws_masked_and_unmasked_messages),
      cmocka_unit_test(test_ws_lengths_16_and_64_bit),
      cmocka_unit_test(test_ws_fragments_with_control_frames_between),
      cmocka_unit_test(test_ws_permessage_deflate),
      cmocka_unit_test(test_ws_large_inflated_message),
      cmocka_unit_test(test_ws_extension_header),
      cmocka_unit_test(test_ws_errors),
      cmocka_unit_test(test_ws_message_cap_across_fragments),
      cmocka_unit_test(test_ws_inflated_past_the_cap),
      cmocka_unit_test(test_ws_eof_in_a_frame),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
