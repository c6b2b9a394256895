/* argv.c — the command line's words read against the option table
 * (options.c's px_options): short and long forms, values attached or
 * following, and the `ca` subcommand's words left for ca_cmd.c. */
#include "proxy/cli/options.h"

#include <string.h>

/* ---- parsing ------------------------------------------------------------- */

static const px_option_t *find_long(const char *name, size_t len) {
  size_t n;
  const px_option_t *options = px_options(&n);
  for (size_t i = 0; i < n; i++)
    if (options[i].set && options[i].lng && strncmp(options[i].lng, name, len) == 0 &&
        options[i].lng[len] == '\0')
      return &options[i];
  return NULL;
}

static const px_option_t *find_short(char c) {
  size_t n;
  const px_option_t *options = px_options(&n);
  for (size_t i = 0; i < n; i++)
    if (options[i].set && options[i].shrt == c) return &options[i];
  return NULL;
}

int px_opt_takes_next(const char *arg) {
  size_t n;
  const px_option_t *o = px_options(&n);
  for (size_t i = 0; i < n; i++) {
    if (o[i].set == NULL || o[i].meta == NULL) continue;
    if (arg[1] == '-' ? o[i].lng && strcmp(arg, o[i].lng) == 0
                      : o[i].shrt == arg[1] && arg[2] == '\0')
      return 1;
  }
  return 0;
}

/* A short option word: -k, -mVALUE, -m VALUE, -vvv (a PX_OPT_REPEAT flag
 * repeated). Other bundles of flags are not taken. */
static int parse_short(int argc, char **argv, int i, px_config_t *cfg) {
  const char *arg = argv[i];
  const px_option_t *o = arg[1] ? find_short(arg[1]) : NULL;
  char name[3] = {'-', arg[1], '\0'};
  if (o == NULL) px_usage_error("unknown option '%s'", arg);
  if (o->meta == NULL) {
    if (arg[2] != '\0' &&
        (!(o->flags & PX_OPT_REPEAT) || strspn(arg + 1, name + 1) != strlen(arg + 1)))
      px_usage_error("unknown option '%s'", arg);
    o->set(cfg, o, name, arg[2] ? arg + 1 : NULL);
    return 1;
  }
  if (arg[2] != '\0') {
    o->set(cfg, o, name, arg + 2);
    return 1;
  }
  if (i + 1 >= argc) px_usage_error("option %s needs a value", name);
  o->set(cfg, o, name, argv[i + 1]);
  return 2;
}

/* A long option word: --flag, --opt=VALUE, --opt VALUE. After `ca` only
 * PX_OPT_GLOBAL options are taken; 0 leaves the word to the CA command. */
static int parse_long(int argc, char **argv, int i, px_config_t *cfg, int after_ca) {
  const char *arg = argv[i];
  const char *eq = strchr(arg, '=');
  const px_option_t *o = find_long(arg, eq ? (size_t)(eq - arg) : strlen(arg));
  if (after_ca && (o == NULL || !(o->flags & PX_OPT_GLOBAL))) return 0;
  if (o == NULL) px_usage_error("unknown option '%s'", arg);
  if (eq && o->meta == NULL) px_usage_error("option %s takes no value, not '%s'", o->lng, eq + 1);
  if (o->meta == NULL || eq) {
    o->set(cfg, o, o->lng, eq ? eq + 1 : NULL);
    return 1;
  }
  if (i + 1 >= argc) px_usage_error("option %s needs a value", o->lng);
  o->set(cfg, o, o->lng, argv[i + 1]);
  return 2;
}

int px_opt_parse(int argc, char **argv, px_config_t *cfg, char **rest, int *nrest) {
  int ca_cmd = 0;
  *nrest = 0;
  for (int i = 1; i < argc;) {
    const char *arg = argv[i];
    int used = 0;
    if (arg[0] == '-' && arg[1] == '-')
      used = parse_long(argc, argv, i, cfg, ca_cmd);
    else if (arg[0] == '-' && !ca_cmd)
      used = parse_short(argc, argv, i, cfg);
    if (used > 0) {
      i += used;
    } else if (ca_cmd) {
      rest[(*nrest)++] = argv[i++];
    } else if (strcmp(arg, "ca") == 0) {
      /* The first bare word "ca" selects the CA subcommand; the words
       * after it belong to that command. */
      ca_cmd = 1;
      i++;
    } else {
      px_usage_error("unexpected argument '%s'", arg);
    }
  }
  return ca_cmd;
}
