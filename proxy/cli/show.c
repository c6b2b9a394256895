/* show.c — `tlspeek show FILE` (show.h): its options, and the replay of a
 * transcript's flows through the console filter.
 *
 * The replay emits each recorded flow's events through a chain holding
 * the console alone, as the core would have: request head, request body,
 * (the 1xx heads, then) the response head and body, flow end. So every
 * line comes from the console's own code and stays what console.h says.
 * Transcripts keep bodies decoded; flt_console_body_recorded tells the
 * console so, except for a body whose decoding failed when recorded: that
 * one is kept as received and is fed as such, so the console fails on it
 * the same way. */
#include "proxy/cli/show.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/console/console.h"
#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "filters/util/output.h"
#include "proxy/cli/options.h"

#define SHOW_USAGE "tlspeek show [-q|-v|-vv] [-f EXPR] [--body-limit SIZE] FILE.har|FILE.jsonl|-"

static const char show_help[] =
    "Usage: " SHOW_USAGE
    "\n"
    "\n"
    "Reads a transcript back and prints its flows as the live console shows them:\n"
    "a HAR or JSON lines file tlspeek wrote (--har, --jsonl), or a HAR from a\n"
    "browser or another tool. '-' reads standard input.\n"
    "\n"
    "  -q, --quiet            detail 0: show nothing (only check the file)\n"
    "  -v                     more detail; repeat: -v headers, -vv bodies\n"
    "      --detail N         0 nothing, 1 one line per flow (default), 2 + headers,\n"
    "                         3 + bodies (decoded; binary as hexdump)\n"
    "      --body-limit SIZE  body bytes shown per message at detail 3 (default 4KiB)\n"
    "  -f, --filter EXPR      show only flows matching EXPR (see tlspeek --help)\n"
    "      --color            colour always;  --no-color: never (default: on a\n"
    "                         terminal, unless NO_COLOR is set)\n"
    "  -h, --help             this text\n"
    "\n"
    "A file that is not HAR or JSONL, JSON that does not parse, or a field of the\n"
    "wrong type stops it with a message naming the line (JSONL) or the JSON path\n"
    "(HAR, e.g. log.entries[3].response.status: expected a number), exit status 2;\n"
    "the flows before it are shown. JSONL streams, whatever its size; a HAR is read\n"
    "whole, at most 1 GiB. Not in a transcript, so not shown: handshakes and the\n"
    "wire view, connection errors without a flow, raw streams, clients that left\n"
    "early; a HAR has no client address (\"-\").\n";

typedef struct show_args {
  const char *file;
  int color; /* -1 auto */
} show_args_t;

/* ---- options -------------------------------------------------------------- */

/* The row of the option table for `name` ("--detail") or short `c`, when
 * tlspeek show takes it; NULL otherwise. */
static const px_option_t *show_row(const char *name, size_t len, char c) {
  static const char *const taken[] = {"--quiet",  "--detail",    "--body-limit",
                                      "--filter", "--log-level", NULL};
  size_t n;
  const px_option_t *o = px_options(&n);
  for (size_t i = 0; i < n; i++) {
    if (o[i].set == NULL) continue;
    if (c && o[i].shrt == c && (c == 'q' || c == 'v' || c == 'f')) return &o[i];
    if (c || o[i].lng == NULL || strncmp(o[i].lng, name, len) != 0 || o[i].lng[len] != '\0')
      continue;
    for (int t = 0; taken[t]; t++)
      if (strcmp(taken[t], o[i].lng) == 0) return &o[i];
  }
  return NULL;
}

static void show_refuse(const char *arg) {
  px_usage_error("'%s' is not an option of tlspeek show: " SHOW_USAGE, arg);
}

/* One option word (and maybe its value); returns the words used. */
static int show_option(int argc, char **argv, int i, px_config_t *cfg, show_args_t *a) {
  const char *arg = argv[i];
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
    fputs(show_help, stdout);
    exit(0);
  }
  if (strcmp(arg, "--color") == 0 || strcmp(arg, "--no-color") == 0) {
    a->color = arg[2] == 'c';
    return 1;
  }
  const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
  const px_option_t *o = arg[1] == '-' ? show_row(arg, eq ? (size_t)(eq - arg) : strlen(arg), 0)
                                       : show_row(NULL, 0, arg[1]);
  if (o == NULL) show_refuse(arg);
  char spelt[3] = {'-', arg[1], '\0'};
  const char *name = arg[1] == '-' ? o->lng : spelt; /* as written, for messages */
  if (o->meta == NULL) {                             /* -q, --quiet, -v, -vvv */
    if (eq ||
        (arg[1] != '-' && arg[2] && (o->shrt != 'v' || strspn(arg + 1, "v") != strlen(arg + 1))))
      show_refuse(arg);
    o->set(cfg, o, name, arg[1] != '-' && arg[2] ? arg + 1 : NULL);
    return 1;
  }
  if (eq || (arg[1] != '-' && arg[2])) { /* --opt=VALUE, -fVALUE */
    o->set(cfg, o, name, eq ? eq + 1 : arg + 2);
    return 1;
  }
  if (i + 1 >= argc) px_usage_error("option %s needs a value", arg);
  o->set(cfg, o, name, argv[i + 1]);
  return 2;
}

static void show_parse(int argc, char **argv, int word, px_config_t *cfg, show_args_t *a) {
  int options_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (i == word) continue;
    if (!options_done && strcmp(arg, "--") == 0) {
      options_done = 1;
    } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
      i += show_option(argc, argv, i, cfg, a) - 1;
    } else if (a->file) {
      px_usage_error("tlspeek show reads one file, not '%s' as well: " SHOW_USAGE, arg);
    } else {
      a->file = arg;
    }
  }
  if (a->file == NULL) px_usage_error("tlspeek show needs a file: " SHOW_USAGE);
}

/* ---- the replay ------------------------------------------------------------- */

/* A body as the console gets it: recorded decoded, or as received. */
static void show_body(const flt_chain_t *ch, void *console, flt_rec_flow_t *rf, flt_dir_t dir) {
  const flt_rec_body_t *b = &rf->body[dir];
  flt_flow_t *f = &rf->flow;
  if (!b->present && !b->truncated) return;
  if (b->decode_error == NULL)
    flt_console_body_recorded(console, f, dir, b->wire_bytes, b->truncated);
  if (b->len == 0) return;
  if (dir == FLT_DIR_REQUEST)
    flt_emit_request_body(ch, f, b->data, b->len);
  else
    flt_emit_response_body(ch, f, b->data, b->len);
}

static int show_matches(const struct flt_expr *expr, const flt_rec_flow_t *rf) {
  flt_expr_bodies_t bodies = {rf->body[0].data, rf->body[0].len,
                              rf->flow.has_response ? rf->body[1].data : NULL,
                              rf->flow.has_response ? rf->body[1].len : 0};
  return expr == NULL || flt_expr_match_flow(expr, &rf->flow, &bodies);
}

/* One flow's events, in the core's order. */
static void show_flow(const flt_chain_t *ch, void *console, flt_rec_flow_t *rf) {
  flt_flow_t *f = &rf->flow;
  size_t n_interim = f->n_interim;

  memset(f->fctx, 0, sizeof(f->fctx));
  f->hidden = 0;
  f->chain_ctx = NULL;
  f->n_interim = 0; /* none yet when the request goes upstream */
  flt_emit_request_head(ch, f);
  show_body(ch, console, rf, FLT_DIR_REQUEST);
  flt_emit_request_end(ch, f);
  f->n_interim = n_interim;
  if (f->has_response) {
    flt_emit_response_head(ch, f);
    show_body(ch, console, rf, FLT_DIR_RESPONSE);
  }
  for (size_t i = 0; i < rf->n_ws; i++)
    flt_emit_ws_message(ch, f, rf->ws[i].dir, rf->ws[i].opcode, rf->ws[i].data, rf->ws[i].len);
  flt_emit_flow_end(ch, f);
}

int px_show_replay(flt_reader_t *r, const flt_chain_t *chain, void *console,
                   const struct flt_expr *expr, char *err, size_t errlen) {
  flt_rec_flow_t *rf;
  int rc;
  while ((rc = flt_reader_next(r, &rf, err, errlen)) == 1) {
    if (!show_matches(expr, rf)) continue;
    show_flow(chain, console, rf);
    /* A slow terminal or pipe: wait for it rather than drop blocks. */
    if (flt_backlog() > FLT_BACKLOG_LOW) flt_output_flush(flt_console_output(console));
  }
  return rc;
}

/* ---- the command ------------------------------------------------------------ */

int px_show_command(int argc, char **argv, int word) {
  px_config_t cfg;
  show_args_t a = {NULL, -1};
  flt_chain_t chain;
  char err[1024];
  int status = 0;

  px_config_defaults(&cfg);
  show_parse(argc, argv, word, &cfg, &a);
  flt_log_set_level(cfg.log_level);
  const char *name = strcmp(a.file, "-") == 0 ? "standard input" : a.file;
  flt_reader_t *r = flt_reader_open(a.file, err, sizeof(err));
  if (r == NULL) {
    fprintf(stderr, "tlspeek: error: %s: %s\n", name, err);
    flt_expr_free(cfg.console_expr);
    return 2;
  }
  flt_console_opts_t opts = {.detail = cfg.detail > 3 ? 3 : cfg.detail,
                             .body_limit = cfg.body_limit,
                             .color = a.color,
                             .fd = 1,
                             .filtered = cfg.console_expr != NULL};
  void *console = flt_console_new(&opts);
  memset(&chain, 0, sizeof(chain));
  if (console == NULL) {
    fprintf(stderr, "tlspeek: error: out of memory\n");
    flt_reader_free(r);
    flt_expr_free(cfg.console_expr);
    return 1;
  }
  flt_console_set_slot(console, flt_chain_add(&chain, &flt_console_ops, console));
  if (px_show_replay(r, &chain, console, cfg.console_expr, err, sizeof(err)) < 0) status = 2;
  flt_emit_shutdown(&chain); /* everything shown before the error below */
  if (status) fprintf(stderr, "tlspeek: error: %s: %s\n", name, err);
  flt_console_free(console);
  flt_chain_free(&chain);
  flt_expr_free(cfg.console_expr);
  flt_reader_free(r);
  return status;
}
