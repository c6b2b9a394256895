/* action_options.c — the option setters of the traffic-changing actions
 * (action_options.h). */
#include "proxy/cli/action_options.h"

#include "proxy/action_replace.h"

void px_opt_set_replace(px_config_t *cfg, const px_option_t *o, const char *name,
                        const char *val) {
  char err[2048];
  (void)o, (void)name;
  if (cfg->n_replaces == PX_MAX_REPLACE) px_usage_error("at most %d --replace", PX_MAX_REPLACE);
  px_replace_t *r = px_replace_parse(val, err, sizeof(err));
  if (r == NULL) px_usage_error("bad --replace '%s': %s", val, err);
  cfg->replaces[cfg->n_replaces++] = r;
}
