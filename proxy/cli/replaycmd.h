/* replaycmd.h — the command line of `tlspeek replay FILE.har|FILE.jsonl
 * [-f EXPR] [--concurrency N] [options]` (README.md, "Replay"): its own
 * words are taken out here, the other options are the proxy's and go to
 * px_opt_parse; the run itself is proxy/replay/replay.h's. */
#ifndef TLSPEEK_REPLAYCMD_H
#define TLSPEEK_REPLAYCMD_H

#include "proxy/config.h"

struct flt_expr;

typedef struct px_replay_cli {
  const char *file;
  struct flt_expr *select; /* -f EXPR, or NULL */
  int concurrency;         /* --concurrency N (default 1) */
} px_replay_cli_t;

/* argv[word] is "replay". Takes the file, -f/--filter, --concurrency and
 * -h/--help (which prints the replay's help and exits 0); every other
 * word goes to opts[] (argv[0] first; opts holds argc pointers) for
 * px_opt_parse. Returns how many words opts holds. Bad usage exits 2. */
int px_replay_cli_split(int argc, char **argv, int word, char **opts, px_replay_cli_t *a);

/* Reads the file (a bad one: "tlspeek: error: FILE: ..." and 2), runs the
 * proxy with the senders (px_worker_run), then prints the comparison.
 * Returns the exit status: 0 every request sent and answered, 1 one was
 * not (or the proxy could not start), 2 the file. Frees a->select. */
int px_replay_cli_run(px_config_t *cfg, px_replay_cli_t *a);

#endif
