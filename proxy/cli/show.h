/* show.h — `tlspeek show FILE.har|FILE.jsonl|-`: a transcript read back
 * (filters/transcript/reader.h) and printed through the console view
 * (filters/console/console.h) at any detail level, as the live console
 * printed those flows. What a transcript cannot tell, and so what differs
 * from the live view, is listed in reader.h and README.md ("Reading
 * transcripts back"). */
#ifndef TLSPEEK_SHOW_H
#define TLSPEEK_SHOW_H

#include <stddef.h>

#include "filters/filter.h"
#include "filters/transcript/reader.h"

struct flt_expr;

/* `tlspeek [options] show [options] FILE`: argv[word] is the word "show".
 * Returns the exit status: 0, or 2 for bad usage and for a file that is
 * not a readable transcript (the message names the line or JSON path;
 * the flows before the problem are shown), 1 when out of memory. */
int px_show_command(int argc, char **argv, int word);

/* Replays every flow of `r` into `chain`, whose console instance is
 * `console` (flt_console_new with .filtered set when `expr` is given):
 * each flow's events in the order the core emits them, its bodies as
 * recorded (flt_console_body_recorded). Flows `expr` does not match
 * (NULL: none) are skipped; body terms see the recorded bodies. Waits for
 * the console's writer when it holds more than FLT_BACKLOG_LOW. Returns 0
 * at the end, or -1 with the reader's sentence in err. */
int px_show_replay(flt_reader_t *r, const flt_chain_t *chain, void *console,
                   const struct flt_expr *expr, char *err, size_t errlen);

#endif
