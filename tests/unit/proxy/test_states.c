/* Unit tests for the lifecycle tables (proxy/fsm.c and the tables of
 * session_state.c, upstream.c and modes/socks.c: state, end, reading,
 * upstream, binding, SOCKS5): each table allows exactly
 * the transitions listed here, each allowed one is traced at trace level,
 * and one outside the table is refused with an error line, the state left
 * as it was. The lists below are written out by hand on purpose: they are
 * what the tables must say, not a copy of them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/util/log.h"
#include "proxy/session.h"

/* ---- capturing the log (stderr) --------------------------------------------- */

static FILE *captured;
static int saved_stderr = -1;

static void capture_start(void) {
  fflush(stderr);
  captured = tmpfile();
  assert_non_null(captured);
  saved_stderr = dup(2);
  dup2(fileno(captured), 2);
}

/* The text logged since capture_start (malloc'd). */
static char *capture_end(void) {
  dup2(saved_stderr, 2);
  close(saved_stderr);
  off_t n = lseek(fileno(captured), 0, SEEK_END);
  assert_true(n >= 0);
  char *text = calloc(1, (size_t)n + 1);
  assert_non_null(text);
  lseek(fileno(captured), 0, SEEK_SET);
  assert_int_equal(read(fileno(captured), text, (size_t)n), n);
  fclose(captured);
  return text;
}

/* ---- the expected tables ---------------------------------------------------- */

typedef struct edge {
  int from, to;
} edge_t;

static int listed(const edge_t *e, size_t n, int from, int to) {
  for (size_t i = 0; i < n; i++)
    if (e[i].from == from && e[i].to == to) return 1;
  return 0;
}

/* The table allows exactly `e`; each allowed step is traced as
 * "session 42: WHAT: A -> B" and each other one is refused. */
static void check_table(const px_fsm_t *m, const edge_t *e, size_t n_edges) {
  flt_log_set_level(FLT_LOG_TRACE);
  for (int from = 0; from < m->n; from++) {
    for (int to = 0; to < m->n; to++) {
      int want = listed(e, n_edges, from, to);
      assert_int_equal(px_fsm_allowed(m, from, to), want);
      char line[200];
      snprintf(line, sizeof(line), "session 42: %s: %s -> %s", m->what, px_fsm_name(m, from),
               px_fsm_name(m, to));
      capture_start();
      int rc = px_fsm_check(m, 42, from, to);
      char *log = capture_end();
      if (want) {
        assert_int_equal(rc, 0);
        assert_non_null(strstr(log, line));
      } else {
        assert_int_equal(rc, -1);
        assert_non_null(strstr(log, "refused the transition"));
      }
      free(log);
    }
  }
  /* Out of range is refused too, with a name for the log. */
  assert_false(px_fsm_allowed(m, 0, m->n));
  assert_false(px_fsm_allowed(m, -1, 0));
  assert_string_equal(px_fsm_name(m, m->n), "?");
  flt_log_set_level(FLT_LOG_INFO);
}

static void test_session_state_table(void **state) {
  (void)state;
  static const edge_t e[] = {
      {PX_S_NEW, PX_S_PROXY_HTTP},
      {PX_S_NEW, PX_S_SOCKS},
      {PX_S_NEW, PX_S_PEEK},
      {PX_S_NEW, PX_S_CLOSING},
      {PX_S_PROXY_HTTP, PX_S_PEEK},
      {PX_S_PROXY_HTTP, PX_S_RAW},
      {PX_S_PROXY_HTTP, PX_S_CLOSING},
      {PX_S_SOCKS, PX_S_PEEK},
      {PX_S_SOCKS, PX_S_CLOSING},
      {PX_S_PEEK, PX_S_CLIENT_HELLO},
      {PX_S_PEEK, PX_S_HTTP},
      {PX_S_PEEK, PX_S_RAW},
      {PX_S_PEEK, PX_S_CLOSING},
      {PX_S_CLIENT_HELLO, PX_S_CLIENT_TLS},
      {PX_S_CLIENT_HELLO, PX_S_ERROR_REPLY},
      {PX_S_CLIENT_HELLO, PX_S_RAW},
      {PX_S_CLIENT_HELLO, PX_S_CLOSING},
      {PX_S_CLIENT_TLS, PX_S_HTTP},
      {PX_S_CLIENT_TLS, PX_S_ERROR_REPLY},
      {PX_S_CLIENT_TLS, PX_S_CLOSING},
      {PX_S_HTTP, PX_S_RAW},
      {PX_S_HTTP, PX_S_ERROR_REPLY},
      {PX_S_HTTP, PX_S_CLOSING},
      {PX_S_RAW, PX_S_CLOSING},
      {PX_S_ERROR_REPLY, PX_S_HTTP},
      {PX_S_ERROR_REPLY, PX_S_CLOSING},
  };
  assert_int_equal(px_session_fsm.n, PX_S_COUNT);
  check_table(&px_session_fsm, e, sizeof(e) / sizeof(e[0]));
}

static void test_end_table(void **state) {
  (void)state;
  static const edge_t e[] = {
      {PX_END_OPEN, PX_END_DRAINING},
      {PX_END_OPEN, PX_END_FLUSHING},
      {PX_END_DRAINING, PX_END_FLUSHING},
      {PX_END_FLUSHING, PX_END_LINGER},
  };
  assert_int_equal(px_end_fsm.n, PX_END_COUNT);
  check_table(&px_end_fsm, e, sizeof(e) / sizeof(e[0]));
}

static void test_upstream_table(void **state) {
  (void)state;
  static const edge_t e[] = {
      {PX_UP_IDLE, PX_UP_RESOLVING},      {PX_UP_RESOLVING, PX_UP_CONNECTING},
      {PX_UP_RESOLVING, PX_UP_FAILED},    {PX_UP_CONNECTING, PX_UP_PROXY_CONNECT},
      {PX_UP_CONNECTING, PX_UP_TLS},      {PX_UP_CONNECTING, PX_UP_READY},
      {PX_UP_CONNECTING, PX_UP_FAILED},   {PX_UP_PROXY_CONNECT, PX_UP_TLS},
      {PX_UP_PROXY_CONNECT, PX_UP_READY}, {PX_UP_PROXY_CONNECT, PX_UP_FAILED},
      {PX_UP_TLS, PX_UP_READY},           {PX_UP_TLS, PX_UP_FAILED},
      {PX_UP_READY, PX_UP_FAILED},        {PX_UP_READY, PX_UP_RELEASED},
      {PX_UP_READY, PX_UP_CLOSED},        {PX_UP_CLOSED, PX_UP_IDLE},
      {PX_UP_RELEASED, PX_UP_RESOLVING}, {PX_UP_FAILED, PX_UP_IDLE},
  };
  assert_int_equal(px_up_fsm.n, PX_UP_COUNT);
  check_table(&px_up_fsm, e, sizeof(e) / sizeof(e[0]));
}

static void test_bind_table(void **state) {
  (void)state;
  static const edge_t e[] = {
      {PX_BIND_FREE, PX_BIND_PINNED},
  };
  assert_int_equal(px_bind_fsm.n, PX_BIND_COUNT);
  check_table(&px_bind_fsm, e, sizeof(e) / sizeof(e[0]));
}

static void test_reading_table(void **state) {
  (void)state;
  static const edge_t e[] = {
      {PX_READ_ON, PX_READ_HELD},
      {PX_READ_ON, PX_READ_BACKLOG},
      {PX_READ_HELD, PX_READ_ON},
      {PX_READ_HELD, PX_READ_HELD_BACKLOG},
      {PX_READ_BACKLOG, PX_READ_ON},
      {PX_READ_BACKLOG, PX_READ_HELD_BACKLOG},
      {PX_READ_HELD_BACKLOG, PX_READ_HELD},
      {PX_READ_HELD_BACKLOG, PX_READ_BACKLOG},
  };
  assert_int_equal(px_reading_fsm.n, PX_READ_COUNT);
  check_table(&px_reading_fsm, e, sizeof(e) / sizeof(e[0]));
}

static void test_socks_table(void **state) {
  (void)state;
  static const edge_t e[] = {
      {PX_SOCKS_GREETING, PX_SOCKS_AUTH},    {PX_SOCKS_GREETING, PX_SOCKS_REQUEST},
      {PX_SOCKS_GREETING, PX_SOCKS_REFUSED}, {PX_SOCKS_AUTH, PX_SOCKS_REQUEST},
      {PX_SOCKS_AUTH, PX_SOCKS_REFUSED},     {PX_SOCKS_REQUEST, PX_SOCKS_DONE},
      {PX_SOCKS_REQUEST, PX_SOCKS_REFUSED},
  };
  assert_int_equal(px_socks_fsm.n, PX_SOCKS_COUNT);
  check_table(&px_socks_fsm, e, sizeof(e) / sizeof(e[0]));
}

/* ---- the setters keep the state when they refuse ---------------------------- */

static void test_setters_refuse_and_keep_the_state(void **state) {
  (void)state;
  px_session_t *s = calloc(1, sizeof(*s));
  assert_non_null(s);
  s->conn.id = 7;

  capture_start();
  px_upstream_set_state(s, PX_UP_READY); /* idle -> ready skips the set-up */
  char *log = capture_end();
  assert_int_equal(s->up, PX_UP_IDLE);
  assert_non_null(strstr(log, "session 7: upstream: refused the transition idle -> ready"));
  free(log);
  px_upstream_set_state(s, PX_UP_RESOLVING);
  assert_int_equal(s->up, PX_UP_RESOLVING);

  capture_start();
  px_session_set_end(s, PX_END_LINGER); /* no FIN before the output is flushed */
  log = capture_end();
  assert_int_equal(s->end, PX_END_OPEN);
  assert_non_null(strstr(log, "session 7: end: refused the transition open -> linger"));
  free(log);
  px_session_set_end(s, PX_END_FLUSHING);
  assert_int_equal(s->end, PX_END_FLUSHING);
  px_session_set_end(s, PX_END_DRAINING); /* behind it: nothing, and no complaint */
  assert_int_equal(s->end, PX_END_FLUSHING);

  /* A released leg comes back through a new set-up, never straight to ready. */
  s->up = PX_UP_READY;
  px_upstream_set_state(s, PX_UP_RELEASED);
  assert_int_equal(s->up, PX_UP_RELEASED);
  assert_true(px_upstream_unconnected(s));
  capture_start();
  px_upstream_set_state(s, PX_UP_READY);
  log = capture_end();
  assert_int_equal(s->up, PX_UP_RELEASED);
  assert_non_null(strstr(log, "session 7: upstream: refused the transition released -> ready"));
  free(log);

  /* Pinned stays pinned. */
  px_upstream_set_bind(s, PX_BIND_PINNED);
  assert_int_equal(s->up_bind, PX_BIND_PINNED);
  px_upstream_set_bind(s, PX_BIND_PINNED); /* again: nothing, and no complaint */
  capture_start();
  px_upstream_set_bind(s, PX_BIND_FREE);
  log = capture_end();
  assert_int_equal(s->up_bind, PX_BIND_PINNED);
  assert_non_null(strstr(log, "session 7: binding: refused the transition pinned -> free"));
  free(log);

  /* Held and paused for the backlog come and go independently. */
  px_session_set_reading(s, PX_READ_HELD, 1);
  px_session_set_reading(s, PX_READ_BACKLOG, 1);
  assert_int_equal(s->reading, PX_READ_HELD_BACKLOG);
  px_session_set_reading(s, PX_READ_HELD, 0);
  assert_int_equal(s->reading, PX_READ_BACKLOG);
  px_session_set_reading(s, PX_READ_BACKLOG, 0);
  assert_int_equal(s->reading, PX_READ_ON);
  capture_start();
  px_session_set_reading(s, PX_READ_HELD_BACKLOG, 1); /* both at once */
  log = capture_end();
  assert_int_equal(s->reading, PX_READ_ON);
  assert_non_null(
      strstr(log, "session 7: reading: refused the transition reading -> held+backlog"));
  free(log);

  px_session_set_state(s, PX_S_CLOSING); /* new -> closing: a session that never started */
  assert_int_equal(s->state, PX_S_CLOSING);
  capture_start();
  px_session_set_state(s, PX_S_HTTP);
  log = capture_end();
  assert_int_equal(s->state, PX_S_CLOSING);
  assert_non_null(strstr(log, "session 7: state: refused the transition closing -> http"));
  free(log);
  free(s);
}

static void test_timer_names(void **state) {
  (void)state;
  for (int a = PX_T_CLIENT_TLS; a < PX_T_COUNT; a++) {
    assert_true(strlen(px_session_timer_name((px_timer_t)a)) > 0);
    assert_string_not_equal(px_session_timer_name((px_timer_t)a), "?");
    for (int b = a + 1; b < PX_T_COUNT; b++)
      assert_string_not_equal(px_session_timer_name((px_timer_t)a), px_session_timer_name((px_timer_t)b));
  }
  /* The names the log lines and the tests of the deadlines know. */
  assert_string_equal(px_session_timer_name(PX_T_CLIENT_TLS), "TLS handshake");
  assert_string_equal(px_session_timer_name(PX_T_DNS), "DNS lookup");
  assert_string_equal(px_session_timer_name(PX_T_COUNT), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_session_state_table),
      cmocka_unit_test(test_end_table),
      cmocka_unit_test(test_upstream_table),
      cmocka_unit_test(test_bind_table),
      cmocka_unit_test(test_reading_table),
      cmocka_unit_test(test_socks_table),
      cmocka_unit_test(test_setters_refuse_and_keep_the_state),
      cmocka_unit_test(test_timer_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
