/* main.c — the command line. proxy/options.c parses the options into a
 * px_config_t; main() hands it to px_run() (the proxy) or px_ca_command()
 * (`tlspeek ca ...`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/util/log.h"
#include "proxy/config.h"
#include "proxy/cli/options.h"
#include "proxy/tlsopts.h"

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

int main(int argc, char **argv) {
  px_config_t cfg;
  char **rest;
  int nrest = 0;

  px_config_defaults(&cfg);
  rest = calloc((size_t)argc + 1, sizeof(*rest));
  if (rest == NULL) return 1;
  int ca_cmd = px_opt_parse(argc, argv, &cfg, rest, &nrest);
  if (cfg.ca_dir == NULL) cfg.ca_dir = ca_default_dir();
  if (cfg.detail >= 4) cfg.show_handshake = cfg.show_wire = 1;
  if (!ca_cmd) finish_listens(&cfg);
  if (cfg.keylog_path == NULL) {
    const char *env = getenv("SSLKEYLOGFILE");
    if (env && *env) cfg.keylog_path = env;
  }
  flt_log_set_level(cfg.log_level);
  char err[1024];
  if (!ca_cmd && px_tlsopts_check(&cfg, err, sizeof(err)) != 0) px_usage_error("%s", err);

  int rc = ca_cmd ? px_ca_command(nrest, rest, &cfg) : px_run(&cfg);
  for (int i = 0; i < cfg.n_redact; i++) free((char *)cfg.redact[i]);
  px_tlsopts_free();
  free(rest);
  return rc;
}
