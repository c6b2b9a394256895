/* test_options.c — proxy/options.c: the option table, the --help text made
 * from it, and command lines parsed through it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "filters/expr/expr.h"
#include "filters/util/log.h"
#include "proxy/cli/answer_options.h"
#include "proxy/cli/options.h"

static char *help_text(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  size_t n;
  const px_option_t *options = px_options(&n);
  px_opt_write_help(f, options, n);
  fclose(f);
  return buf;
}

static int is_option(const px_option_t *o) {
  return o->set != NULL && !(o->flags & PX_OPT_HIDDEN);
}

/* "--mode MODE", "--tproxy", "-v": how a row names itself in --help. */
static void signature(const px_option_t *o, char *buf, size_t cap) {
  char shrt[3] = {'-', o->shrt, '\0'};
  snprintf(buf, cap, "%s%s%s", o->lng ? o->lng : shrt, o->meta ? " " : "",
           o->meta ? o->meta : "");
}

/* Where an option is defined rather than mentioned: at the start of a line
 * (after the indentation), after its short name ("-m, --mode MODE"), or
 * after ", " on a line that lists several ("--har-filter EXPR, ..."). */
static int at_definition(const char *help, const char *at, const px_option_t *o) {
  const char *p = at;
  while (p > help && p[-1] == ' ') p--;
  if (p == help || p[-1] == '\n') return 1;
  if (o->shrt && at - help >= 4 && at[-4] == '-' && at[-3] == o->shrt && at[-2] == ',')
    return 1;
  return at - help >= 2 && at[-2] == ',' && at[-1] == ' ' && at[-3] != ' ';
}

static int definitions(const char *help, const px_option_t *o) {
  char sig[128];
  int n = 0;
  signature(o, sig, sizeof(sig));
  for (const char *at = strstr(help, sig); at; at = strstr(at + 1, sig)) {
    char next = at[strlen(sig)];
    if ((next == ' ' || next == ',' || next == '\n') && at_definition(help, at, o)) n++;
  }
  return n;
}

static void test_every_option_is_in_the_help_once(void **state) {
  (void)state;
  size_t n;
  const px_option_t *t = px_options(&n);
  char *help = help_text();
  for (size_t i = 0; i < n; i++) {
    if (!is_option(&t[i])) continue;
    char sig[128];
    signature(&t[i], sig, sizeof(sig));
    if (definitions(help, &t[i]) != 1)
      fail_msg("'%s' is defined %d times in --help, not once", sig, definitions(help, &t[i]));
    if (t[i].shrt && t[i].lng) {
      char both[160];
      snprintf(both, sizeof(both), "\n  -%c, %s\n", t[i].shrt, sig);
      both[strlen(both) - 1] = '\0';
      if (strstr(help, both) == NULL) fail_msg("--help lacks '-%c, %s'", t[i].shrt, sig);
    }
    if (!(t[i].flags & PX_OPT_JOIN) && (t[i].help == NULL || t[i].help[0] == '\0'))
      fail_msg("%s has no help text", sig);
    for (size_t j = 0; j < i; j++) {
      if (t[j].set == NULL) continue;
      if (t[i].lng && t[j].lng && strcmp(t[i].lng, t[j].lng) == 0)
        fail_msg("%s is in the table twice", t[i].lng);
      if (t[i].shrt && t[i].shrt == t[j].shrt) fail_msg("-%c is in the table twice", t[i].shrt);
    }
  }
  free(help);
}

static const px_option_t *find(const px_option_t *t, size_t n, const char *lng, char shrt) {
  for (size_t i = 0; i < n; i++)
    if (is_option(&t[i]) &&
        (lng ? t[i].lng && strcmp(t[i].lng, lng) == 0 : t[i].shrt == shrt))
      return &t[i];
  return NULL;
}

/* Checks one "-x" / "-xxx" / "--name" token of the help text. */
static void check_token(const px_option_t *t, size_t n, const char *tok, size_t len) {
  char word[80];
  snprintf(word, sizeof(word), "%.*s", (int)len, tok);
  if (word[1] == '-') {
    if (find(t, n, word, 0) == NULL) fail_msg("--help mentions %s, which is no option", word);
    return;
  }
  const px_option_t *o = find(t, n, NULL, word[1]);
  if (o == NULL) fail_msg("--help mentions %s, which is no option", word);
  if (len > 2 && (!(o->flags & PX_OPT_REPEAT) || strspn(word + 1, word + 2) != len - 1))
    fail_msg("--help mentions %s, which is no option", word);
}

static void test_every_option_in_the_help_is_in_the_table(void **state) {
  (void)state;
  size_t n, seen = 0;
  const px_option_t *t = px_options(&n);
  char *help = help_text();
  for (char *line = help; *line;) {
    char *end = strchr(line, '\n');
    size_t ll = end ? (size_t)(end - line) : strlen(line);
    const char *first = line + strspn(line, " ");
    /* The examples show another program's command line too. */
    if (strncmp(first, "curl ", 5) != 0) {
      for (size_t i = 0; i < ll; i++) {
        char prev = i ? line[i - 1] : ' ';
        if (line[i] != '-' || !strchr(" (/[,'\"", prev)) continue;
        size_t j = i + 1 + (line[i + 1] == '-');
        if (j >= ll || !isalnum((unsigned char)line[j])) continue;
        while (j < ll && (isalnum((unsigned char)line[j]) || (line[j] == '-' && line[i + 1] == '-')))
          j++;
        check_token(t, n, line + i, j - i);
        seen++;
        i = j;
      }
    }
    line += ll + (end != NULL);
  }
  assert_true(seen > 60); /* the scan did look at the option list */
  free(help);
}

static void test_hidden_options_are_not_in_the_help(void **state) {
  (void)state;
  size_t n;
  const px_option_t *t = px_options(&n);
  char *help = help_text();
  for (size_t i = 0; i < n; i++) {
    if (t[i].set == NULL || !(t[i].flags & PX_OPT_HIDDEN)) continue;
    char sig[128];
    signature(&t[i], sig, sizeof(sig));
    if (definitions(help, &t[i]) != 0) fail_msg("hidden %s is defined in --help", sig);
  }
  free(help);
}

static int parse(px_config_t *cfg, char **rest, int *nrest, const char **argv) {
  int argc = 0;
  while (argv[argc]) argc++;
  px_config_defaults(cfg);
  return px_opt_parse(argc, (char **)argv, cfg, rest, nrest);
}

/* What parsing allocated: compiled expressions and --redact names. (The
 * forked children of parse_in_child inherit the heap: anything left here
 * would be reported by LeakSanitizer when they exit, and change their
 * status.) */
static void config_release(px_config_t *cfg) {
  for (int i = 0; i < cfg->n_redact; i++) free((char *)cfg->redact[i]);
  for (int i = 0; i < cfg->n_actions; i++) flt_expr_free(cfg->actions[i].expr);
  for (int i = 0; i < cfg->n_ignore_exprs; i++) flt_expr_free(cfg->ignore_exprs[i]);
  flt_expr_t *views[] = {cfg->console_expr, cfg->har_expr, cfg->jsonl_expr, cfg->pcap_expr,
                         cfg->keylog_expr};
  for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) flt_expr_free(views[i]);
}

/* The answering options (answer_options.c): rules and choices stored. */
static void test_answer_options(void **state) {
  (void)state;
  const char *argv[] = {"tlspeek", "--map-local", "~h 'a: b' & ~d x:/tmp", "--map-local=~u /f:/",
                        "--serve-from", "rec.har", "--serve-match", "url+body",
                        "--serve-miss=404", NULL};
  char *rest[16];
  int nrest;
  px_config_t cfg;
  assert_int_equal(parse(&cfg, rest, &nrest, argv), 0);
  assert_int_equal(cfg.n_map_local, 2);
  assert_true(cfg.map_local[0].is_dir);
  assert_non_null(cfg.map_local[0].expr);
  assert_string_equal(cfg.map_local[1].root, "/");
  assert_string_equal(cfg.serve_from, "rec.har");
  assert_int_equal(cfg.serve_match_body, 1);
  assert_int_equal(cfg.serve_miss_404, 1);
  assert_null(cfg.serve); /* loaded after parsing (px_opt_load_serve) */
  px_opt_free_answers(&cfg);
  config_release(&cfg);
}

static void test_a_command_line_parses_into_the_config(void **state) {
  (void)state;
  const char *argv[] = {"tlspeek", "--mode=socks5@127.0.0.1:1080", "-m", "explicit",
                  "-l127.0.0.1:9090", "--ignore-hosts", "a\\.test", "--ignore-hosts=b\\.test",
                  "--ignore-hosts", "~sni c", "--load", "a.so", "--load=b.so:arg", "-vvv",
                  "--har=/tmp/x.har", "--jsonl", "/tmp/y.jsonl", "--body-limit", "64k",
                  "--wire-limit=16", "--connect-timeout", "2.5", "--upstream-idle=0", "-t4",
                  "-k", "--no-auto-passthrough", "--redact", "X-A,X-B", "--redact-auth",
                  "--block", "~d evil:451", "--set-header", "~q:X-Debug:1", "--cert-cache=10",
                  "--ca-dir", "/tmp/ca", "--leaf-key", "rsa2048", "--log-level=debug",
                  "--mark", "7", "--proxyauth", "u:p", "-f", "~d x", "--pcap-filter=~sni x",
                  "--rewrite-host", "--explain", NULL};
  char *rest[64];
  int nrest;
  px_config_t cfg;
  assert_int_equal(parse(&cfg, rest, &nrest, argv), 0);
  assert_int_equal(nrest, 0);
  assert_int_equal(cfg.n_listens, 2);
  assert_int_equal(cfg.listens[0].mode, PX_MODE_SOCKS5);
  assert_int_equal(cfg.listens[0].port, 1080);
  assert_int_equal(cfg.listens[1].mode, PX_MODE_EXPLICIT);
  assert_int_equal(cfg.listen_port, 9090);
  assert_int_equal(cfg.n_ignore_hosts, 2);
  assert_string_equal(cfg.ignore_hosts[1], "b\\.test");
  assert_int_equal(cfg.n_ignore_exprs, 1);
  assert_int_equal(cfg.n_plugins, 2);
  assert_string_equal(cfg.plugins[1], "b.so:arg");
  assert_int_equal(cfg.detail, 4);
  assert_string_equal(cfg.har_path, "/tmp/x.har");
  assert_string_equal(cfg.jsonl_path, "/tmp/y.jsonl");
  assert_int_equal(cfg.body_limit, 65536);
  assert_int_equal(cfg.wire_limit, 16);
  assert_int_equal(cfg.connect_timeout_ms, 2500);
  assert_int_equal(cfg.upstream_idle_ms, 0);
  assert_int_equal(cfg.threads, 4);
  assert_int_equal(cfg.insecure, 1);
  assert_int_equal(cfg.auto_passthrough, 0);
  assert_int_equal(cfg.n_redact, 6);
  assert_string_equal(cfg.redact[1], "X-B");
  assert_string_equal(cfg.redact[5], "Set-Cookie");
  assert_int_equal(cfg.n_actions, 2);
  assert_int_equal(cfg.actions[0].kind, PX_ACT_BLOCK);
  assert_int_equal(cfg.actions[0].status, 451);
  assert_int_equal(cfg.actions[1].kind, PX_ACT_SET_HEADER);
  assert_string_equal(cfg.actions[1].name, "X-Debug");
  assert_string_equal(cfg.actions[1].value, "1");
  assert_int_equal(cfg.actions[1].response_side, 0);
  assert_int_equal(cfg.cert_cache, 10);
  assert_string_equal(cfg.ca_dir, "/tmp/ca");
  assert_int_equal(cfg.leaf_key_type, CA_KEY_RSA2048);
  assert_int_equal(cfg.log_level, FLT_LOG_DEBUG);
  assert_int_equal(cfg.mark, 7);
  assert_string_equal(cfg.proxyauth, "u:p");
  assert_non_null(cfg.console_expr);
  assert_non_null(cfg.pcap_expr);
  assert_null(cfg.har_expr);
  assert_int_equal(cfg.rewrite_host, 1);
  assert_int_equal(cfg.explain, 1);
  assert_int_equal(cfg.show_wire, 0);
  config_release(&cfg);
}

static void test_verbosity_adds_up_and_stops_at_4(void **state) {
  (void)state;
  char *rest[8];
  int nrest;
  px_config_t cfg;
  const char *vv[] = {"tlspeek", "-vv", NULL};
  parse(&cfg, rest, &nrest, vv);
  assert_int_equal(cfg.detail, 3);
  const char *many[] = {"tlspeek", "-v", "-vvvvv", NULL};
  parse(&cfg, rest, &nrest, many);
  assert_int_equal(cfg.detail, 4);
  const char *quiet[] = {"tlspeek", "-vv", "--quiet", "--detail=2", "-q", NULL};
  parse(&cfg, rest, &nrest, quiet);
  assert_int_equal(cfg.detail, 0);
}

static void test_auto_passthrough_is_off_by_default(void **state) {
  (void)state;
  char *rest[8];
  int nrest;
  px_config_t cfg;
  const char *none[] = {"tlspeek", NULL};
  parse(&cfg, rest, &nrest, none);
  assert_int_equal(cfg.auto_passthrough, 0);
  assert_int_equal(cfg.auto_passthrough_ttl_ms, 600000);
  const char *on[] = {"tlspeek", "--auto-passthrough", "--auto-passthrough-ttl", "2.5", NULL};
  parse(&cfg, rest, &nrest, on);
  assert_int_equal(cfg.auto_passthrough, 1);
  assert_int_equal(cfg.auto_passthrough_ttl_ms, 2500);
}

static void test_the_ca_command_keeps_its_words(void **state) {
  (void)state;
  const char *argv[] = {"tlspeek", "--ca-dir=/tmp/ca", "ca",        "mint", "--cert-cache", "5",
                  "host",    "-v",               "--out",     "f",    "--leaf-key=p384", NULL};
  char *rest[16];
  int nrest;
  px_config_t cfg;
  assert_int_equal(parse(&cfg, rest, &nrest, argv), 1);
  assert_int_equal(nrest, 5);
  assert_string_equal(rest[0], "mint");
  assert_string_equal(rest[1], "host");
  assert_string_equal(rest[2], "-v");
  assert_string_equal(rest[3], "--out");
  assert_string_equal(rest[4], "f");
  assert_int_equal(cfg.cert_cache, 5);
  assert_int_equal(cfg.leaf_key_type, CA_KEY_P384);
  assert_int_equal(cfg.detail, 1);
}

/* Runs the parser in a child; returns its exit status, stderr in err. */
static int parse_in_child(const char **argv, char *err, size_t cap) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char *rest[16];
    int nrest;
    px_config_t cfg;
    dup2(fds[1], 2);
    dup2(open("/dev/null", O_WRONLY), 1);
    parse(&cfg, rest, &nrest, argv);
    _exit(0);
  }
  close(fds[1]);
  ssize_t got, len = 0;
  while ((got = read(fds[0], err + len, cap - 1 - (size_t)len)) > 0) len += got;
  err[len] = '\0';
  close(fds[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_bad_usage_exits_2_with_a_message(void **state) {
  (void)state;
  static const struct {
    const char *args[4];
    const char *message;
  } cases[] = {
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"-kq"}, "unknown option '-kq'"},
      {{"-vx"}, "unknown option '-vx'"},
      {{"--mode"}, "option --mode needs a value"},
      {{"-t"}, "option -t needs a value"},
      {{"--insecure=1"}, "option --insecure takes no value"},
      {{"stray"}, "unexpected argument 'stray'"},
      {{"--detail=9"}, "--detail takes 0 to 4, not '9'"},
      {{"--har="}, "option --har needs a file name"},
      {{"--auto-passthrough-ttl", "0"}, "bad --auto-passthrough-ttl '0' (seconds, at least 1)"},
      {{"--map-local", "~d x:/no/such/dir"}, "bad --map-local '~d x:/no/such/dir': no existing "
                                             "file or directory after a ':'"},
      {{"--serve-match", "body"}, "bad --serve-match 'body' (use url or url+body)"},
      {{"--serve-miss", "drop"}, "bad --serve-miss 'drop' (use forward or 404)"},
      {{"--serve-from", "a.har", "--serve-from=b.har"}, "--serve-from is given twice"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *argv[6] = {"tlspeek"};
    char err[1024];
    for (int k = 0; cases[i].args[k]; k++) argv[k + 1] = cases[i].args[k];
    assert_int_equal(parse_in_child(argv, err, sizeof(err)), 2);
    if (strstr(err, cases[i].message) == NULL || strstr(err, "Try 'tlspeek --help'.") == NULL)
      fail_msg("for %s: expected '%s', got '%s'", cases[i].args[0], cases[i].message, err);
  }
  const char *help[] = {"tlspeek", "-h", NULL};
  char err[64];
  assert_int_equal(parse_in_child(help, err, sizeof(err)), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_option_is_in_the_help_once),
      cmocka_unit_test(test_every_option_in_the_help_is_in_the_table),
      cmocka_unit_test(test_hidden_options_are_not_in_the_help),
      cmocka_unit_test(test_a_command_line_parses_into_the_config),
      cmocka_unit_test(test_answer_options),
      cmocka_unit_test(test_verbosity_adds_up_and_stops_at_4),
      cmocka_unit_test(test_auto_passthrough_is_off_by_default),
      cmocka_unit_test(test_the_ca_command_keeps_its_words),
      cmocka_unit_test(test_bad_usage_exits_2_with_a_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
