/* main.c — the command line. proxy/options.c parses the options into a
 * px_config_t; main() hands it to px_worker_run() (the proxy, or `tlspeek run --
 * CMD`) or px_ca_command() (`tlspeek ca ...`); `tlspeek show FILE` goes to
 * px_show_command() (show.h), which takes its own few options. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/util/log.h"
#include "proxy/config.h"
#include "proxy/cli/answer_options.h"
#include "proxy/action_replace.h"
#include "proxy/cli/options.h"
#include "proxy/cli/replaycmd.h"
#include "proxy/cli/show.h"
#include "proxy/cli/webcmd.h"
#include "proxy/tlsopts.h"
#include "proxy/web/web.h"

/* Modes without @HOST:PORT listen on --listen; two on one address clash. */
static void finish_listens(px_config_t *cfg) {
  if (cfg->n_listens == 0) cfg->listens[cfg->n_listens++].mode = PX_MODE_EXPLICIT;
  for (int i = 0; i < cfg->n_listens; i++) {
    px_listen_cfg_t *lc = &cfg->listens[i];
    if (lc->host[0] == '\0') {
      snprintf(lc->host, sizeof(lc->host), "%s", cfg->listen_host);
      lc->port = cfg->listen_port;
    }
    for (int j = 0; j < i; j++)
      if (strcmp(cfg->listens[j].host, lc->host) == 0 && cfg->listens[j].port == lc->port &&
          lc->port != 0)
        px_usage_error("two --mode listeners on %s:%u; give each its own @HOST:PORT", lc->host,
                       (unsigned)lc->port);
  }
}

#define RUN_USAGE "tlspeek run [options] -- CMD [ARGS...]"

/* The index of the first word that is neither an option nor an option's
 * value (a subcommand: run, show, ca), or argc when there is none. */
static int first_word(int argc, char **argv) {
  int r = 1;
  while (r < argc && argv[r][0] == '-' && argv[r][1] != '\0' && strcmp(argv[r], "--") != 0)
    r += px_opt_takes_next(argv[r]) ? 2 : 1;
  return r;
}

/* `tlspeek [options] run [options] -- CMD ARGS...`: the options go to opts[]
 * (with argv[0] first; *nopts words), the command is returned (NULL-
 * terminated, as argv is). NULL when the first word that is neither an
 * option nor an option's value is not "run". */
static char **split_run(int argc, char **argv, char **opts, int *nopts) {
  int r = first_word(argc, argv);
  if (r >= argc || strcmp(argv[r], "run") != 0) return NULL;
  int dd = r + 1;
  while (dd < argc && strcmp(argv[dd], "--") != 0) dd++;
  if (dd == argc) px_usage_error("tlspeek run needs '--' before the command: " RUN_USAGE);
  if (dd + 1 == argc) px_usage_error("tlspeek run needs a command after '--': " RUN_USAGE);
  *nopts = 0;
  for (int i = 0; i < dd; i++)
    if (i != r) opts[(*nopts)++] = argv[i];
  return &argv[dd + 1];
}

/* tlspeek run (and tlspeek replay, `cmd`) listens in explicit mode (or
 * upstream mode, to reach the servers through another proxy) on 127.0.0.1
 * at a port the kernel picks. */
static void finish_run(px_config_t *cfg, const char *cmd) {
  if (strcmp(cfg->listen_host, "127.0.0.1") != 0 || cfg->listen_port != 8080)
    px_usage_error("tlspeek %s listens on 127.0.0.1 at a free port: --listen is not taken", cmd);
  if (cfg->n_listens > 1 ||
      (cfg->n_listens == 1 && ((cfg->listens[0].mode != PX_MODE_EXPLICIT &&
                                cfg->listens[0].mode != PX_MODE_UPSTREAM) ||
                               cfg->listens[0].host[0] != '\0')))
    px_usage_error("tlspeek %s takes one --mode, explicit or upstream:http://HOST:PORT, "
                   "without @HOST:PORT", cmd);
  if (cfg->n_listens == 0) cfg->listens[cfg->n_listens++].mode = PX_MODE_EXPLICIT;
  snprintf(cfg->listens[0].host, sizeof(cfg->listens[0].host), "127.0.0.1");
  cfg->listens[0].port = 0; /* the kernel picks; the command is told which */
  cfg->shutdown_grace_ms = 1000; /* the command's connections closed with it */
}

int main(int argc, char **argv) {
  px_config_t cfg;
  char **rest;
  int nrest = 0;

  int word = first_word(argc, argv);
  if (word < argc && strcmp(argv[word], "show") == 0) return px_show_command(argc, argv, word);
  if (word < argc && strcmp(argv[word], "web") == 0) return px_web_command(argc, argv, word);
  px_config_defaults(&cfg);
  rest = calloc((size_t)argc + 1, sizeof(*rest));
  char **opts = calloc((size_t)argc + 1, sizeof(*opts));
  if (rest == NULL || opts == NULL) return 1;
  int nopts = 0;
  px_replay_cli_t replay;
  int replaying = word < argc && strcmp(argv[word], "replay") == 0;
  if (replaying) nopts = px_replay_cli_split(argc, argv, word, opts, &replay);
  else cfg.run_argv = split_run(argc, argv, opts, &nopts);
  int ca_cmd = cfg.run_argv || replaying ? px_opt_parse(nopts, opts, &cfg, rest, &nrest)
                                         : px_opt_parse(argc, argv, &cfg, rest, &nrest);
  if (ca_cmd && cfg.run_argv) px_usage_error("'ca' is not an option of " RUN_USAGE);
  if (ca_cmd && replaying) px_usage_error("'ca' is not an option of tlspeek replay");
  if (cfg.ca_dir == NULL) cfg.ca_dir = ca_default_dir();
  if (cfg.detail >= 4) cfg.show_handshake = cfg.show_wire = 1;
  if (cfg.run_argv || replaying) finish_run(&cfg, replaying ? "replay" : "run");
  if (!ca_cmd) finish_listens(&cfg);
  if (cfg.keylog_path == NULL) {
    const char *env = getenv("SSLKEYLOGFILE");
    if (env && *env) cfg.keylog_path = env;
  }
  flt_log_set_level(cfg.log_level);
  char err[1024];
  if (!ca_cmd && px_tlsopts_check(&cfg, err, sizeof(err)) != 0) px_usage_error("%s", err);
  if (!ca_cmd) px_opt_load_serve(&cfg);
  px_web_opts_t web;
  if (!ca_cmd && cfg.web && px_web_parse_addr(cfg.web, &web, err, sizeof(err)) != 0)
    px_usage_error("%s", err);
  if (!ca_cmd) px_opt_check_intercept(&cfg);

  int rc = ca_cmd      ? px_ca_command(nrest, rest, &cfg)
           : replaying ? px_replay_cli_run(&cfg, &replay)
                       : px_worker_run(&cfg);
  for (int i = 0; i < cfg.n_redact; i++) free((char *)cfg.redact[i]);
  px_opt_free_answers(&cfg);
  for (int i = 0; i < cfg.n_replaces; i++) px_replace_free(cfg.replaces[i]);
  px_tlsopts_free();
  free(rest);
  free(opts);
  return rc;
}
