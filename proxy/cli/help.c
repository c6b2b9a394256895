/* help.c — the --help text, written from the option table (options.c), so
 * that no option is accepted without being documented, and the one way a
 * bad command line ends. It calls nothing of options.c: the table comes in
 * as an argument. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "proxy/cli/options.h"

#define HELP_COL 27 /* where the help text of every option starts */

/* "  -m, --mode MODE", "      --tproxy", "  -v", then the help text. */
static void write_option(FILE *out, const px_option_t *o) {
  char names[128];
  int len = o->shrt ? snprintf(names, 64, "  -%c%s%s", o->shrt, o->lng ? ", " : "",
                               o->lng ? o->lng : "")
                    : snprintf(names, 64, "      %s", o->lng);
  if (o->meta) len += snprintf(names + len, 64, " %s", o->meta);
  /* Long names push the text right by one or two spaces. */
  int col = o->col ? o->col : len < HELP_COL - 1 ? HELP_COL : len + (len == HELP_COL - 1 ? 1 : 2);
  fprintf(out, "%s%*s", names, col - len, "");
  for (const char *line = o->help; line;) {
    const char *nl = strchr(line, '\n');
    if (nl == NULL) {
      fprintf(out, "%s\n", line);
      break;
    }
    fprintf(out, "%.*s\n%*s", (int)(nl - line), line, HELP_COL, "");
    line = nl + 1;
  }
}

void px_usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "tlspeek: error: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'tlspeek --help'.\n");
  exit(2);
}

void px_opt_write_help(FILE *out, const px_option_t *options, size_t n) {
  int joining = 0;
  for (size_t i = 0; i < n; i++) {
    const px_option_t *o = &options[i];
    if (o->set == NULL) {
      fputs(o->help, out);
    } else if (o->flags & PX_OPT_HIDDEN) {
      continue;
    } else if (o->flags & PX_OPT_JOIN) {
      fprintf(out, "%s%s %s,", joining ? " " : "      ", o->lng, o->meta);
      joining = 1;
    } else {
      if (joining) fputc('\n', out);
      joining = 0;
      write_option(out, o);
    }
  }
}

void px_opt_show_version(px_config_t *cfg, const px_option_t *o, const char *name,
                         const char *val) {
  (void)cfg, (void)o, (void)name, (void)val;
  printf("tlspeek %s\n", PX_VERSION);
  printf("OpenSSL: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION),
         OPENSSL_VERSION_TEXT);
  printf("libuv: %s (built with %d.%d.%d)\n", uv_version_string(),
         UV_VERSION_MAJOR, UV_VERSION_MINOR, UV_VERSION_PATCH);
  exit(0);
}
