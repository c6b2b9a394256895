/* webcmd.c — `tlspeek web FILE` (webcmd.h): the transcript read with the
 * transcript reader (filters/transcript/reader.h) into a flow store, and
 * the page's server (proxy/web/web.h) over it. */
#include "proxy/cli/webcmd.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/transcript/reader.h"
#include "filters/util/log.h"
#include "filters/web/store.h"
#include "proxy/cli/options.h"
#include "proxy/config.h"
#include "proxy/web/web.h"

#define WEB_USAGE "tlspeek web [--web [HOST:]PORT] [--web-flows N] FILE.har|FILE.jsonl|-"

static const char web_help[] =
    "Usage: " WEB_USAGE
    "\n"
    "\n"
    "Serves the flow browser page over a transcript: a HAR or JSON lines file\n"
    "tlspeek wrote (--har, --jsonl), or a HAR from a browser or another tool.\n"
    "The URL, with its token, is printed at start; Ctrl-C stops it.\n"
    "\n"
    "      --web [HOST:]PORT  where the page is served (default 127.0.0.1:8081)\n"
    "      --web-flows N      flows kept (default 10000; the oldest are dropped)\n"
    "      --log-level LEVEL  error, warn, info (default), debug, trace\n"
    "  -h, --help             this text\n"
    "\n"
    "A file that is not HAR or JSONL, JSON that does not parse, or a field of the\n"
    "wrong type is refused with a message naming the line (JSONL) or the JSON\n"
    "path (HAR), exit status 2. Handshakes and the wire are not in a transcript:\n"
    "the page says so.\n";

typedef struct web_args {
  const char *file;
  const char *addr;
} web_args_t;

/* The option's value: "--opt=V" or the next word. */
static const char *value_of(int argc, char **argv, int *i, const char *name) {
  size_t n = strlen(name);
  if (argv[*i][n] == '=') return argv[*i] + n + 1;
  if (*i + 1 >= argc) px_usage_error("option %s needs a value", name);
  return argv[++*i];
}

static int is_opt(const char *arg, const char *name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static void web_parse(int argc, char **argv, int word, px_config_t *cfg, web_args_t *a) {
  size_t n;
  const px_option_t *o = px_options(&n);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (i == word) continue;
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      fputs(web_help, stdout);
      exit(0);
    }
    const char *names[] = {"--web", "--web-flows", "--log-level"};
    int done = 0;
    for (size_t k = 0; k < 3 && !done; k++) {
      if (!is_opt(arg, names[k])) continue;
      const char *v = value_of(argc, argv, &i, names[k]);
      for (size_t r = 0; r < n; r++)
        if (o[r].lng && strcmp(o[r].lng, names[k]) == 0) o[r].set(cfg, &o[r], names[k], v);
      done = 1;
    }
    if (done) continue;
    if (arg[0] == '-' && arg[1] != '\0')
      px_usage_error("'%s' is not an option of tlspeek web: " WEB_USAGE, arg);
    if (a->file) px_usage_error("tlspeek web reads one file, not '%s' as well: " WEB_USAGE, arg);
    a->file = arg;
  }
  if (a->file == NULL) px_usage_error("tlspeek web needs a file: " WEB_USAGE);
  a->addr = cfg->web ? cfg->web : "127.0.0.1:8081";
}

/* Every flow of the file into the store; 0, or -1 with a message in err. */
static int web_load(flt_reader_t *r, flt_web_store_t *store, char *err, size_t errlen) {
  flt_rec_flow_t *rf;
  int rc;
  while ((rc = flt_reader_next(r, &rf, err, errlen)) == 1)
    if (flt_web_store_add_recorded(store, rf) < 0) {
      snprintf(err, errlen, "%s: out of memory", rf->where);
      return -1;
    }
  return rc;
}

int px_web_command(int argc, char **argv, int word) {
  px_config_t cfg;
  web_args_t a = {NULL, NULL};
  px_web_opts_t o;
  char err[1024];
  sigset_t set;
  int sig, status = 2;

  px_config_defaults(&cfg);
  web_parse(argc, argv, word, &cfg, &a);
  flt_log_set_level(cfg.log_level);
  memset(&o, 0, sizeof(o));
  if (px_web_parse_addr(a.addr, &o, err, sizeof(err)) < 0) px_usage_error("%s", err);
  const char *name = strcmp(a.file, "-") == 0 ? "standard input" : a.file;
  flt_reader_t *r = flt_reader_open(a.file, err, sizeof(err));
  flt_web_store_t *store = flt_web_store_new(cfg.web_flows, cfg.body_cap);
  if (r == NULL || store == NULL || web_load(r, store, err, sizeof(err)) < 0) {
    fprintf(stderr, "tlspeek: error: %s: %s\n", name, store ? err : "out of memory");
    goto Exit;
  }
  flt_web_counts_t c;
  flt_web_store_counts(store, &c);
  flt_log_info("web: %llu flows read from %s", (unsigned long long)(c.count + c.dropped), name);
  o.store = store;
  o.file = a.file;
  o.version = PX_VERSION;
  /* The server's thread inherits the mask: the signals come here. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  px_web_t *web = px_web_start(&o, err, sizeof(err));
  if (web == NULL) {
    flt_log_error("%s", err);
    status = 1;
    goto Exit;
  }
  sigwait(&set, &sig);
  px_web_stop(web);
  status = 0;
Exit:
  flt_web_store_free(store);
  flt_reader_free(r);
  flt_log_flush();
  return status;
}
