/* replaycmd.c — `tlspeek replay` on the command line (replaycmd.h). */
#include "proxy/cli/replaycmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/cli/options.h"
#include "proxy/replay/replay.h"

#define REPLAY_USAGE                                                                           \
  "tlspeek replay [-f EXPR] [--concurrency N] [options] FILE.har|FILE.jsonl|-"

static const char replay_help[] =
    "Usage: " REPLAY_USAGE
    "\n"
    "\n"
    "Sends the requests of a transcript (a HAR or JSON lines file tlspeek wrote,\n"
    "or a HAR from a browser) again, through tlspeek itself: the same upstream\n"
    "verification, --upstream-ca, -k, -m upstream:http://HOST:PORT, actions and\n"
    "views as live traffic. The console shows each new flow with the line\n"
    "    \xe2\x86\xb3 replayed: from FILE entry N (recorded 200, 1234 bytes, sha256 ...)\n"
    "and --har/--jsonl/--pcap/--keylog/--web record them (with --web, tlspeek\n"
    "keeps serving the page after the last request, until Ctrl-C). At the end,\n"
    "one line per request and the totals compare status and response body\n"
    "(SHA-256 of the decoded body) with the recording:\n"
    "    replay: entry 2 GET https://api.test/x: 200 -> 404, body differs\n"
    "    replay: 3 requests, 2 same status, 1 changed (GET https://api.test/x:\n"
    "    200 -> 404), 1 body differs\n"
    "\n"
    "  -f, --filter EXPR      send only the entries matching EXPR (see tlspeek\n"
    "                         --help, Expressions; body terms see recorded bodies)\n"
    "      --concurrency N    requests in flight at once, 1..64 (default 1: one\n"
    "                         after another, in file order)\n"
    "  -h, --help             this text\n"
    "Every other option of tlspeek is taken (tlspeek --help), except --listen\n"
    "and --mode other than upstream:http://HOST:PORT: tlspeek listens on\n"
    "127.0.0.1 at a free port for its own senders only.\n"
    "\n"
    "Sent: method, URL, the headers the client sent (hop-by-hop ones and Expect\n"
    "removed, Host from the URL, Content-Length recomputed), the body as recorded\n"
    "(decoded: sent as identity, Content-Encoding removed). Each request on a\n"
    "connection of its own, over HTTP/1.1 (also entries recorded over HTTP/2).\n"
    "An entry whose request body was cut by --body-cap is not sent.\n"
    "\n"
    "Exit status: 0 every request was sent and answered (changed answers are\n"
    "reported, not failures), 1 one was not (its error is printed), 2 bad usage\n"
    "or a file that is not a readable transcript.\n";

/* "--name VALUE", "--name=VALUE", or for short `c`, "-c VALUE", "-cVALUE":
 * the value (advancing *i past it), or NULL when `arg` is not this option. */
static const char *own_value(int argc, char **argv, int *i, const char *name, char c) {
  const char *arg = argv[*i];
  size_t n = strlen(name);
  const char *v = NULL;
  if (strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) v = arg[n] ? arg + n + 1 : "";
  else if (c && arg[0] == '-' && arg[1] == c) v = arg + 2;
  else return NULL;
  if (*v) return v;
  if (*i + 1 >= argc) px_usage_error("option %s needs a value", arg);
  return argv[++*i];
}

static void set_concurrency(px_replay_cli_t *a, const char *v) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end || n < 1 || n > PX_REPLAY_MAX_CONCURRENCY)
    px_usage_error("bad --concurrency '%s' (a number from 1 to %d)", v, PX_REPLAY_MAX_CONCURRENCY);
  a->concurrency = (int)n;
}

static void set_select(px_replay_cli_t *a, const char *v) {
  char err[FLT_EXPR_MAX_LEN + 512];
  if (a->select) px_usage_error("-f given twice (combine the expressions with & or |)");
  if ((a->select = flt_expr_compile(v, FLT_EXPR_ALL_TERMS, err, sizeof(err))) == NULL)
    px_usage_error("bad -f expression: %s", err);
}

int px_replay_cli_split(int argc, char **argv, int word, char **opts, px_replay_cli_t *a) {
  int n = 0, options_done = 0;
  const char *v;
  memset(a, 0, sizeof(*a));
  a->concurrency = 1;
  opts[n++] = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (i == word) continue;
    if (!options_done && strcmp(arg, "--") == 0) {
      options_done = 1;
    } else if (!options_done && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
      fputs(replay_help, stdout);
      exit(0);
    } else if (!options_done && (v = own_value(argc, argv, &i, "--concurrency", 0)) != NULL) {
      set_concurrency(a, v);
    } else if (!options_done && (v = own_value(argc, argv, &i, "--filter", 'f')) != NULL) {
      set_select(a, v);
    } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
      opts[n++] = argv[i];
      if (px_opt_takes_next(arg) && i + 1 < argc) opts[n++] = argv[++i];
    } else if (a->file) {
      px_usage_error("tlspeek replay reads one file, not '%s' as well: " REPLAY_USAGE, arg);
    } else {
      a->file = arg;
    }
  }
  if (a->file == NULL) px_usage_error("tlspeek replay needs a file: " REPLAY_USAGE);
  return n;
}

int px_replay_cli_run(px_config_t *cfg, px_replay_cli_t *a) {
  char err[1024];
  const char *name = strcmp(a->file, "-") == 0 ? "standard input" : a->file;
  int status = 2;
  px_replay_t *r = px_replay_load(a->file, a->select, a->concurrency, err, sizeof(err));
  if (r == NULL) {
    fprintf(stderr, "tlspeek: error: %s: %s\n", name, err);
    goto Exit;
  }
  if (px_replay_count(r) == 0) { /* nothing to send: no proxy to start */
    flt_log_warn("replay: %s %s", name, a->select ? "has no entry that -f matches" : "has no entry");
    printf("replay: 0 requests\n");
    status = 0;
    px_replay_free(r);
    goto Exit;
  }
  flt_log_info("replay: %zu request%s from %s, %d at a time", px_replay_count(r),
               px_replay_count(r) == 1 ? "" : "s", name, a->concurrency);
  cfg->replay = r;
  status = px_worker_run(cfg) != 0 ? 1 : 0;
  /* The console's last lines are out (its writer is flushed at shutdown). */
  int sent = px_replay_report(r, stdout);
  if (status == 0) status = sent;
  cfg->replay = NULL;
  px_replay_free(r);
Exit:
  flt_expr_free(a->select);
  a->select = NULL;
  return status;
}
