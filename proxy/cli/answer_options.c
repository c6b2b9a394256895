/* answer_options.c — the options with which tlspeek answers requests
 * itself (answer_options.h). */
#include "proxy/cli/answer_options.h"

#include <stdio.h>
#include <string.h>

#include "proxy/answer_local.h"
#include "proxy/answer_serve.h"

void px_opt_set_map_local(px_config_t *cfg, const px_option_t *o, const char *name,
                          const char *val) {
  char err[2300];
  (void)o;
  if (cfg->n_map_local == PX_MAX_ACTIONS) px_usage_error("at most %d %s", PX_MAX_ACTIONS, name);
  if (px_map_local_parse(val, &cfg->map_local[cfg->n_map_local], err, sizeof(err)) != 0)
    px_usage_error("bad %s '%s': %s", name, val, err);
  cfg->n_map_local++;
}

void px_opt_set_serve_from(px_config_t *cfg, const px_option_t *o, const char *name,
                           const char *val) {
  (void)o;
  if (cfg->serve_from) px_usage_error("%s is given twice; one recording is served", name);
  if (val[0] == '\0') px_usage_error("option %s needs a HAR or JSONL file", name);
  cfg->serve_from = val;
}

void px_opt_set_serve_match(px_config_t *cfg, const px_option_t *o, const char *name,
                            const char *val) {
  (void)o;
  if (strcmp(val, "url") == 0)
    cfg->serve_match_body = 0;
  else if (strcmp(val, "url+body") == 0)
    cfg->serve_match_body = 1;
  else
    px_usage_error("bad %s '%s' (use url or url+body)", name, val);
}

void px_opt_set_serve_miss(px_config_t *cfg, const px_option_t *o, const char *name,
                           const char *val) {
  (void)o;
  if (strcmp(val, "forward") == 0)
    cfg->serve_miss_404 = 0;
  else if (strcmp(val, "404") == 0)
    cfg->serve_miss_404 = 1;
  else
    px_usage_error("bad %s '%s' (use forward or 404)", name, val);
}

void px_opt_load_serve(px_config_t *cfg) {
  char err[1400];
  if (cfg->serve_from == NULL) return;
  cfg->serve = px_serve_load(cfg->serve_from, cfg->serve_match_body, err, sizeof(err));
  if (cfg->serve == NULL) px_usage_error("cannot serve from --serve-from %s", err);
}

void px_opt_free_answers(px_config_t *cfg) {
  for (int i = 0; i < cfg->n_map_local; i++) px_map_local_free(&cfg->map_local[i]);
  cfg->n_map_local = 0;
  px_serve_free(cfg->serve);
  cfg->serve = NULL;
}
