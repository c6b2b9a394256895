/* answer_options.h — setters and rows of the option table (options.c) for
 * the options with which tlspeek answers requests itself: --map-local,
 * --serve-from, --serve-match, --serve-miss (proxy/session_answer.h). */
#ifndef TLSPEEK_ANSWER_OPTIONS_H
#define TLSPEEK_ANSWER_OPTIONS_H

#include "proxy/cli/options.h"

/* --map-local EXPR:PATH (repeatable; answer_local.h says how it is split). */
void px_opt_set_map_local(px_config_t *cfg, const px_option_t *o, const char *name,
                          const char *val);
/* --serve-from FILE: stored here, loaded by px_opt_load_serve after parsing. */
void px_opt_set_serve_from(px_config_t *cfg, const px_option_t *o, const char *name,
                           const char *val);
/* --serve-match url|url+body, --serve-miss forward|404. */
void px_opt_set_serve_match(px_config_t *cfg, const px_option_t *o, const char *name,
                            const char *val);
void px_opt_set_serve_miss(px_config_t *cfg, const px_option_t *o, const char *name,
                           const char *val);
/* After parsing: loads --serve-from's recording into cfg->serve (a file
 * that cannot be read ends the process with status 2 and the reader's
 * message). */
void px_opt_load_serve(px_config_t *cfg);
/* Frees what the setters and px_opt_load_serve allocated. */
void px_opt_free_answers(px_config_t *cfg);

/* The rows, in --help order (after --block in the Actions section). */
#define PX_OPT_ANSWER_ROWS                                                            \
  {"--map-local", 0, "EXPR:PATH",                                                     \
   "answer matching requests from a file, or from a\n"                                 \
   "directory: the URL's path below it (/ and folders:\n"                              \
   "index.html; type from the extension; no file: 404;\n"                              \
   "../, %2e%2e, %2f, symlinks out: 403); not sent\n"                                  \
   "upstream. The split is at the last ':' followed by\n"                              \
   "an existing path (repeatable; first match wins)",                                 \
   px_opt_set_map_local},                                                               \
  {"--serve-from", 0, "FILE",                                                          \
   "answer requests from a HAR or JSONL recording\n"                                   \
   "(method and URL match; repeats cycle through the\n"                                \
   "recorded responses in order)",                                                      \
   px_opt_set_serve_from},                                                              \
  {"--serve-match", 0, "HOW",                                                          \
   "url (default) or url+body: also the request body", px_opt_set_serve_match},       \
  {"--serve-miss", 0, "WHAT",                                                          \
   "forward (default): not recorded goes upstream;\n"                                  \
   "404: answered 404 by tlspeek",                                                      \
   px_opt_set_serve_miss}

#endif
