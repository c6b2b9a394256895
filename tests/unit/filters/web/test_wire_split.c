/* test_wire_split.c — a leg's bytes cut into one Wire entry per TLS record
 * (filters/web/wire_split.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "filters/web/wire_split.h"

typedef struct entry {
  uint8_t kind;
  uint32_t len;
  uint8_t head[FLT_WEB_WIRE_HEX];
  size_t head_len;
} entry_t;

typedef struct seen {
  entry_t e[32];
  size_t n;
} seen_t;

static void collect(void *ud, uint8_t kind, uint32_t len, const uint8_t *head, size_t head_len) {
  seen_t *s = ud;
  assert_true(s->n < 32);
  assert_true(head_len <= FLT_WEB_WIRE_HEX);
  s->e[s->n].kind = kind;
  s->e[s->n].len = len;
  memcpy(s->e[s->n].head, head, head_len);
  s->e[s->n].head_len = head_len;
  s->n++;
}

/* A record of `type` with `body` bytes of value `fill`; returns its size. */
static size_t record(uint8_t *out, uint8_t type, size_t body, uint8_t fill) {
  out[0] = type;
  out[1] = 3;
  out[2] = 3;
  out[3] = (uint8_t)(body >> 8);
  out[4] = (uint8_t)body;
  memset(out + 5, fill, body);
  return 5 + body;
}

/* CCS + Finished + application data in one read: three entries. */
static void test_several_records_in_one_read(void **state) {
  uint8_t buf[200];
  size_t n = record(buf, 20, 1, 1);
  n += record(buf + n, 22, 40, 0xaa);
  n += record(buf + n, 23, 100, 0xbb);
  web_split_t sp = {0};
  seen_t s = {0};
  (void)state;
  web_split_feed(&sp, buf, n, 1, collect, &s);
  assert_int_equal(s.n, 3);
  assert_int_equal(s.e[0].kind, 20);
  assert_int_equal(s.e[0].len, 6);
  assert_int_equal(s.e[0].head_len, 6);
  assert_int_equal(s.e[1].kind, 22);
  assert_int_equal(s.e[1].len, 45);
  assert_memory_equal(s.e[1].head, buf + 6, 45);
  assert_int_equal(s.e[2].kind, 23);
  assert_int_equal(s.e[2].len, 105);
  assert_int_equal(s.e[2].head_len, FLT_WEB_WIRE_HEX);
  assert_memory_equal(s.e[2].head, buf + 51, FLT_WEB_WIRE_HEX);
}

/* A record cut inside its header, then inside its body, then the next one
 * begins in the same read: one entry each, with the right first bytes. */
static void test_records_spanning_reads(void **state) {
  uint8_t buf[400];
  size_t n = record(buf, 23, 300, 0x11);
  size_t m = n + record(buf + n, 21, 2, 0x22);
  web_split_t sp = {0};
  seen_t s = {0};
  (void)state;
  web_split_feed(&sp, buf, 3, 1, collect, &s); /* 3 bytes of the header */
  assert_int_equal(s.n, 0);
  web_split_feed(&sp, buf + 3, 20, 1, collect, &s); /* header + 18 body bytes */
  assert_int_equal(s.n, 0);
  web_split_feed(&sp, buf + 23, 100, 1, collect, &s); /* past 64 bytes: the entry */
  assert_int_equal(s.n, 1);
  assert_int_equal(s.e[0].kind, 23);
  assert_int_equal(s.e[0].len, 305);
  assert_memory_equal(s.e[0].head, buf, FLT_WEB_WIRE_HEX);
  web_split_feed(&sp, buf + 123, m - 123 - 1, 1, collect, &s); /* all but the last byte */
  assert_int_equal(s.n, 1);
  web_split_feed(&sp, buf + m - 1, 1, 1, collect, &s);
  assert_int_equal(s.n, 2);
  assert_int_equal(s.e[1].kind, 21);
  assert_int_equal(s.e[1].len, 7);
  assert_memory_equal(s.e[1].head, buf + n, 7);
  /* byte by byte: the same entries */
  web_split_t sp2 = {0};
  seen_t s2 = {0};
  for (size_t i = 0; i < m; i++) web_split_feed(&sp2, buf + i, 1, 1, collect, &s2);
  assert_int_equal(s2.n, 2);
  assert_int_equal(s2.e[0].len, 305);
  assert_int_equal(s2.e[1].len, 7);
}

/* A length over the maximum: the stream is lost; that read's rest and
 * every later read are one "unparsed" entry each. */
static void test_bogus_length(void **state) {
  uint8_t buf[64];
  size_t n = record(buf, 22, 4, 0);
  uint8_t bad[] = {23, 3, 3, 0xff, 0xff, 1, 2, 3};
  web_split_t sp = {0};
  seen_t s = {0};
  (void)state;
  memcpy(buf + n, bad, sizeof(bad));
  web_split_feed(&sp, buf, n + sizeof(bad), 1, collect, &s);
  assert_int_equal(s.n, 2);
  assert_int_equal(s.e[0].kind, 22);
  assert_int_equal(s.e[1].kind, WEB_KIND_UNPARSED);
  assert_int_equal(s.e[1].len, sizeof(bad));
  assert_memory_equal(s.e[1].head, bad, sizeof(bad));
  web_split_feed(&sp, buf, 20, 1, collect, &s);
  assert_int_equal(s.n, 3);
  assert_int_equal(s.e[2].kind, WEB_KIND_UNPARSED);
  assert_int_equal(s.e[2].len, 20);
}

/* A bad header that began in an earlier read: its kept bytes count. */
static void test_bogus_header_across_reads(void **state) {
  uint8_t bad[] = {22, 3, 1, 0x7f, 0xff, 9, 9};
  web_split_t sp = {0};
  seen_t s = {0};
  (void)state;
  sp.records = 1; /* inside a TLS stream */
  web_split_feed(&sp, bad, 2, 1, collect, &s);
  assert_int_equal(s.n, 0);
  web_split_feed(&sp, bad + 2, sizeof(bad) - 2, 1, collect, &s);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.e[0].kind, WEB_KIND_UNPARSED);
  assert_int_equal(s.e[0].len, sizeof(bad));
  assert_memory_equal(s.e[0].head, bad, sizeof(bad));
}

/* A plain leg: one entry per read, however it looks later. */
static void test_plain_reads(void **state) {
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  web_split_t sp = {0};
  seen_t s = {0};
  (void)state;
  web_split_feed(&sp, (const uint8_t *)req, strlen(req), 0, collect, &s);
  web_split_feed(&sp, (const uint8_t *)req, 5, 0, collect, &s);
  assert_int_equal(s.n, 2);
  assert_int_equal(s.e[0].kind, WEB_KIND_PLAIN);
  assert_int_equal(s.e[0].len, strlen(req));
  assert_int_equal(s.e[1].kind, WEB_KIND_PLAIN);
  assert_int_equal(s.e[1].len, 5);
  assert_false(sp.lost);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_several_records_in_one_read),
      cmocka_unit_test(test_records_spanning_reads),
      cmocka_unit_test(test_bogus_length),
      cmocka_unit_test(test_bogus_header_across_reads),
      cmocka_unit_test(test_plain_reads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
