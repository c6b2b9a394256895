/* fuzz_session.c — libFuzzer target for a whole plain-HTTP session: the
 * client's bytes and the origin's bytes, interleaved, through the real
 * session code (proxy/session.c, session_http.c, upstream.c), the HTTP/1
 * request and response framers (proxy/codec/http1.c), --block / --set-header /
 * --remove-header / --redact, and the filter chain into the console view
 * (detail 3, bodies shown), the HAR and the JSONL records (filters/transcript/flowbody.c,
 * flowjson.c), all three writing to /dev/null.
 *
 * How the session is driven, and why this way. A session is a libuv
 * creature: it reads its sockets from callbacks, writes with uv_write and
 * closes through uv_close callbacks. Calling its internals directly would
 * need a copy of that glue, so each fuzz iteration runs one real session on
 * one real loop instead:
 *   - px_session_new + px_session_start (the two halves of accept) with
 *     s->client.tcp opened on one end of a socketpair, in reverse (or SOCKS5) mode;
 *   - the upstream leg opened on a second socketpair and marked connected
 *     the way upstream.c's on_connected leaves a plain-HTTP origin (reads
 *     started, PX_UP_READY, px_session_upstream_ready). This is the one
 *     step taken by hand: resolving and connecting a real TCP origin on
 *     every iteration would cost a thread hop and a TCP handshake, and
 *     fill the port range with TIME_WAIT at thousands of runs per second;
 *   - every chunk of input is written into the other end of the client's
 *     or the origin's socketpair and the loop is run (UV_RUN_NOWAIT) until
 *     the session took it: each chunk is one read, as from the network;
 *   - what the session writes to either side is read and dropped;
 *   - at the end the session is closed and the loop run until it is freed.
 * Checks beyond the sanitizers: the session is freed within a bounded
 * number of loop turns after its close, and leaves no active handle behind.
 *
 * Leaks: the console, HAR and JSONL writers free their records on their own
 * threads, later, so nearly every iteration ends with more mallocs than
 * frees, and libFuzzer's per-input leak check (a rerun plus a full LSan
 * scan each time) would cut the speed fifty-fold. LLVMFuzzerInitialize
 * therefore turns it off (unless -detect_leaks= is given) and the target
 * runs LSan itself every FUZZ_LEAK_EVERY iterations; records still queued
 * are reachable, so only real leaks are reported. A leak found that way is
 * reported with its allocation stacks; the input saved with it is the one
 * that happened to be running, not necessarily the one that leaked.
 *
 * Input: byte 0 holds options (bit 0: rewrite Host, bit 1: EOF from the
 * client at the end, bit 2: EOF from the origin at the end, bit 3: a SOCKS5
 * listener instead of reverse mode, so proxy/modes/socks.c reads the client's
 * first bytes, bit 4: with --proxyauth alice:s3cret). Then chunks:
 * a header byte, whose top bit picks the side (0 client, 1 origin) and
 * whose low 7 bits are the length (1..127; 0 means that side sends EOF),
 * then that many bytes. A first client byte of 0x16 (TLS) closes the
 * session: this target builds no TLS contexts (fuzz_tlsparse covers the
 * handshake dissector).
 * Corpus: tests/fuzz/corpus/session/ (made by tests/fuzz/session_seeds.py).
 * FUZZ_SESSION_SHOW=1 in the environment shows the console view and debug
 * log on stderr, to see what an input does (build/fuzz/fuzz_session FILE). */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sanitizer/lsan_interface.h>

#include "filters/console/console.h"
#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "filters/transcript/transcript.h"
#include "proxy/session.h"
#include "proxy/worker.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_TURNS 64    /* loop turns a closed session may take to be freed */
#define FUZZ_LEAK_EVERY 4096 /* iterations between two LSan scans */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static char *args[256];
  static char no_leaks[] = "-detect_leaks=0";
  if (*argc < 1 || *argc > 254) return 0;
  for (int i = 0; i < *argc; i++) {
    if (strncmp((*argv)[i], "-detect_leaks=", 14) == 0) return 0; /* as asked */
    args[i] = (*argv)[i];
  }
  /* Ours goes right after the program name, before any corpus directory. */
  memmove(args + 2, args + 1, (size_t)(*argc - 1) * sizeof(char *));
  args[1] = no_leaks;
  *argc += 1;
  args[*argc] = NULL;
  *argv = args;
  return 0;
}

static px_config_t cfg;
static px_shared_t shared;
static px_worker_t *worker;

static void add_action(px_action_kind_t kind, const char *expr, int status, int response_side,
                       const char *name, const char *value) {
  char err[2048];
  px_action_t *a = &cfg.actions[cfg.n_actions++];
  a->kind = kind;
  a->expr = flt_expr_compile(expr, FLT_EXPR_ALL_TERMS, err, sizeof(err));
  if (a->expr == NULL) {
    fprintf(stderr, "fuzz_session: %s\n", err);
    abort();
  }
  a->status = status;
  a->response_side = response_side;
  snprintf(a->name, sizeof(a->name), "%s", name);
  a->value = value;
}

static int add_sink(void *self, const flt_ops_t *ops, void (*set_slot)(void *, int),
                    const char *expr) {
  char err[2048];
  if (self == NULL) return -1;
  int slot = flt_chain_add(&shared.chain, ops, self);
  if (slot < 0) return -1;
  set_slot(self, slot);
  flt_expr_t *e = expr ? flt_expr_compile(expr, FLT_EXPR_ALL_TERMS, err, sizeof(err)) : NULL;
  flt_chain_set_expr(&shared.chain, slot, e, cfg.body_cap);
  return 0;
}

/* Once per process: the configuration, the chain and the worker. */
static void setup(void) {
  char err[600];
  int show = getenv("FUZZ_SESSION_SHOW") != NULL;
  signal(SIGPIPE, SIG_IGN);
  flt_log_set_level(show ? FLT_LOG_DEBUG : FLT_LOG_ERROR);
  cfg.n_listens = 2;
  cfg.listens[0].mode = PX_MODE_REVERSE;
  snprintf(cfg.listens[0].target_host, sizeof(cfg.listens[0].target_host), "origin.test");
  cfg.listens[0].target_port = 8080;
  cfg.listens[1].mode = PX_MODE_SOCKS5;
  cfg.detail = 3;
  cfg.body_limit = 512;
  cfg.body_cap = 4096;
  cfg.connect_timeout_ms = cfg.handshake_timeout_ms = 10000;
  cfg.idle_timeout_ms = 60000;
  /* --block, --set-header and --remove-header on both sides, --redact */
  add_action(PX_ACT_BLOCK, "~u /blocked", 403, 0, "", NULL);
  add_action(PX_ACT_BLOCK, "~m DELETE & ~h x-deny", 451, 0, "", NULL);
  add_action(PX_ACT_SET_HEADER, "~q", 0, 0, "X-Fuzz", "1");
  add_action(PX_ACT_SET_HEADER, "~s & ~c 200", 0, 1, "Cache-Control", "no-store");
  add_action(PX_ACT_REMOVE_HEADER, "~q & ~h cookie", 0, 0, "Cookie", NULL);
  add_action(PX_ACT_REMOVE_HEADER, "~s", 0, 1, "Server", NULL);
  static const char *redact[] = {"authorization", "cookie", "set-cookie"};
  for (size_t i = 0; i < sizeof(redact) / sizeof(redact[0]); i++)
    cfg.redact[cfg.n_redact++] = redact[i];

  shared.cfg = &cfg;
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  flt_console_opts_t co = {.detail = 3, .body_limit = cfg.body_limit, .color = !show,
                           .fd = show ? 2 : devnull};
  void *har = flt_har_new("/dev/null", cfg.body_cap, PX_VERSION, err, sizeof(err));
  void *jsonl = flt_jsonl_new("/dev/null", cfg.body_cap, err, sizeof(err));
  /* The HAR keeps only flows whose response body matches: body terms. */
  if (devnull < 0 ||
      add_sink(flt_console_new(&co), &flt_console_ops, flt_console_set_slot, NULL) != 0 ||
      add_sink(har, &flt_har_ops, flt_har_set_slot, "!~bs secret") != 0 ||
      add_sink(jsonl, &flt_jsonl_ops, flt_jsonl_set_slot, NULL) != 0) {
    fprintf(stderr, "fuzz_session: cannot set up the filters: %s\n", err);
    abort();
  }
  flt_har_jsonl_share(har, jsonl);

  worker = calloc(1, sizeof(*worker));
  if (worker == NULL || uv_loop_init(&worker->loop) != 0) abort();
  worker->shared = &shared;
  uv_timer_init(&worker->loop, &worker->backlog_timer);
  worker->backlog_timer.data = worker;
}

/* Reads and drops what the session sent to one side. */
static void drain(int fd) {
  char buf[16384];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
}

static void turn(int client_peer, int origin_peer) {
  /* Two turns: the read, then the write callbacks it queued. */
  uv_run(&worker->loop, UV_RUN_NOWAIT);
  uv_run(&worker->loop, UV_RUN_NOWAIT);
  drain(client_peer);
  drain(origin_peer);
}

/* A session whose upstream leg is connected, as upstream.c leaves it. */
static int open_session(const px_listen_cfg_t *lc, int client_fd, int origin_fd) {
  px_session_t *s = px_session_new(worker, lc);
  if (s == NULL) return -1;
  if (uv_tcp_open(&s->client.tcp, client_fd) != 0) abort();
  snprintf(s->conn.client, sizeof(s->conn.client), "127.0.0.1:40000");
  px_session_start(s);
  if (px_leg_open(&s->upstream, &worker->loop, AF_UNSPEC) != 0) abort();
  s->handles_open++;
  if (uv_tcp_open(&s->upstream.tcp, origin_fd) != 0) abort();
  snprintf(s->conn.server_addr, sizeof(s->conn.server_addr), "127.0.0.1:8080");
  px_leg_read_start(&s->upstream);
  s->up = PX_UP_READY;
  px_session_upstream_ready(s);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int client[2], origin[2];
  if (worker == NULL) setup();
  if (size < 1) return 0;
  uint8_t opts = data[0];
  cfg.rewrite_host = opts & 1;
  cfg.proxyauth = (opts & 16) ? "alice:s3cret" : NULL;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) != 0) abort();
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, origin) != 0) abort();
  fcntl(client[1], F_SETFL, O_NONBLOCK);
  fcntl(origin[1], F_SETFL, O_NONBLOCK);
  if (open_session(&cfg.listens[(opts & 8) ? 1 : 0], client[0], origin[0]) != 0) abort();

  int eof[2] = {0, 0};
  size_t off = 1;
  while (off < size) {
    int side = data[off] >> 7;
    size_t len = data[off] & 0x7f;
    off++;
    int fd = side ? origin[1] : client[1];
    if (len == 0) {
      if (!eof[side]) shutdown(fd, SHUT_WR);
      eof[side] = 1;
    } else {
      if (len > size - off) len = size - off;
      if (!eof[side] && len > 0) (void)send(fd, data + off, len, MSG_NOSIGNAL);
      off += len;
    }
    turn(client[1], origin[1]);
  }
  if ((opts & 2) && !eof[0]) shutdown(client[1], SHUT_WR);
  if ((opts & 4) && !eof[1]) shutdown(origin[1], SHUT_WR);
  turn(client[1], origin[1]);

  if (worker->sessions) px_session_close(worker->sessions, "end of the fuzz input");
  for (int i = 0; i < FUZZ_MAX_TURNS && worker->n_sessions > 0; i++) turn(client[1], origin[1]);
  if (worker->n_sessions != 0) {
    fprintf(stderr, "fuzz_session: the session was not freed after its close\n");
    abort();
  }
  if (uv_loop_alive(&worker->loop)) {
    fprintf(stderr, "fuzz_session: a handle or request outlived its session\n");
    abort();
  }
  close(client[1]);
  close(origin[1]);
  static unsigned iterations;
  if (++iterations % FUZZ_LEAK_EVERY == 0 && __lsan_do_recoverable_leak_check() != 0) abort();
  return 0;
}
