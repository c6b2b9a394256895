/* fuzz_tlsparse.c — libFuzzer target for the TLS dissector (tlsparse.h).
 *
 * The first input byte picks what the rest is fed to, so one target covers
 * every entry point that reads wire bytes:
 *   0  a handshake message: hello parse + describe + JA3/JA3S/JA4, the
 *      core's flt_tls_fingerprint, other-message describe, Certificate
 *      (both framings), ServerKeyExchange
 *   1  a byte stream for the wire view's record reassembly, cut into
 *      chunks whose sizes come from the input itself
 *   2  a run of handshake messages rendered as a two-leg handshake block
 * Build: clang -fsanitize=fuzzer,address -I. tests/fuzz/fuzz_tlsparse.c
 *        <filters/tls/tls*.c filters/util/strbuf.c filters/util/hexdump.c ...> -lcrypto
 * Corpus: tests/fuzz/corpus/tlsparse/ (real hellos and server flights). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "filters/tls/tlsparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Output is capped so a hostile input cannot make the harness itself slow. */
#define FUZZ_OUT_CAP (1u << 20)

static void fuzz_message(const uint8_t *p, size_t n) {
  flt_tls_hello_t h;
  flt_strbuf_t out;
  flt_tls_ske_t ske;
  char md5[33], ja3[128], ja4[FLT_TLS_JA4_LEN];

  flt_strbuf_init(&out, FUZZ_OUT_CAP);
  if (flt_tls_hello_parse(p, n, &h) == 0) {
    flt_tls_hello_describe(&out, " ", &h, 0x0301);
    flt_strbuf_reset(&out);
    if (h.client) {
      flt_tls_ja3(&h, &out, md5);
      flt_strbuf_reset(&out);
      flt_tls_ja4(&h, ja4, &out);
    } else {
      flt_tls_ja3s(&h, &out, md5);
    }
    flt_tls_hello_version(&h);
  }
  flt_tls_fingerprint(p, n, md5, ja3, sizeof(ja3), ja4);
  flt_strbuf_reset(&out);
  flt_tls_msg_describe(&out, "", p, n, 0);
  flt_tls_msg_describe(&out, "", p, n, 1);
  flt_strbuf_reset(&out);
  flt_tls_certs_describe(&out, "", p, n, 0);
  flt_tls_certs_describe(&out, "", p, n, 1);
  flt_tls_ske_parse(p, n, &ske);
  flt_strbuf_free(&out);
}

static void on_record(void *ud, const flt_tls_record_t *r) {
  volatile uint8_t sink = 0;
  (void)ud;
  /* Touch every byte the record claims to hold. */
  for (size_t i = 0; i < r->head_len; i++)
    sink ^= r->head[i];
  (void)sink;
}

static void fuzz_stream(const uint8_t *p, size_t n) {
  flt_tls_reasm_t r;
  size_t off = 0, i = 0;

  if (flt_tls_reasm_init(&r, 64) < 0) return;
  while (off < n) {
    size_t chunk = 1 + (size_t)p[i++ % n] % 97;
    if (chunk > n - off) chunk = n - off;
    flt_tls_reasm_feed(&r, p + off, chunk, on_record, NULL);
    off += chunk;
  }
  flt_tls_reasm_free(&r);
}

/* Splits the input into handshake messages by their own length fields and
 * renders them as both legs' handshake. */
static void fuzz_block(const uint8_t *p, size_t n) {
  flt_tls_msg_t msgs[16];
  flt_tls_hs_view_t v;
  flt_strbuf_t out;
  size_t k = 0, off = 0;

  while (off + 4 <= n && k < 16) {
    size_t len = 4 + ((size_t)p[off + 1] << 16 | (size_t)p[off + 2] << 8 | p[off + 3]);
    if (len > n - off) len = n - off;
    msgs[k].leg = (int)(k % 2);
    msgs[k].sent = (int)(k / 2 % 2);
    msgs[k].content_type = p[off] == 0xff ? FLT_TLS_CT_ALERT : FLT_TLS_CT_HANDSHAKE;
    msgs[k].data = p + off;
    msgs[k].len = len;
    k++;
    off += len;
  }
  memset(&v, 0, sizeof(v));
  v.client = "127.0.0.1:1";
  v.server = "fuzz.test:443";
  v.msgs = msgs;
  v.n_msgs = k;
  v.up_verify = "ok";
  v.complete = 1;
  v.explain = 1;
  flt_strbuf_init(&out, FUZZ_OUT_CAP);
  flt_tls_handshake_render(&out, &v);
  flt_strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  switch (data[0] % 3) {
    case 0:
      fuzz_message(data + 1, size - 1);
      break;
    case 1:
      fuzz_stream(data + 1, size - 1);
      break;
    default:
      fuzz_block(data + 1, size - 1);
      break;
  }
  return 0;
}
