/* webcmd.h — `tlspeek web FILE.har|FILE.jsonl [--web [HOST:]PORT]`: the
 * flow browser over a recorded transcript (README.md, "Flow browser"). */
#ifndef TLSPEEK_WEBCMD_H
#define TLSPEEK_WEBCMD_H

/* argv[word] is "web". Reads the whole file first (a malformed one is
 * refused with the reader's message, exit status 2), then serves the page
 * until SIGINT or SIGTERM (exit status 0). */
int px_web_command(int argc, char **argv, int word);

#endif
