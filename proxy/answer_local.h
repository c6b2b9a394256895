/* answer_local.h — --map-local EXPR:PATH: which file answers a request
 * (proxy/README.md). No I/O on sockets and no session: the rule, the
 * resolution of a request path below a directory (directory traversal
 * refused), the content type of a file name. session_answer.c sends what
 * this finds. */
#ifndef TLSPEEK_ANSWER_LOCAL_H
#define TLSPEEK_ANSWER_LOCAL_H

#include <stddef.h>
#include <stdint.h>

struct flt_expr;

/* One --map-local rule. */
typedef struct px_map_local {
  struct flt_expr *expr; /* which flows */
  char *root;            /* the file or directory, resolved (realpath, malloc'd) */
  int is_dir;            /* a directory: the request path is looked up below it */
} px_map_local_t;

/* Parses "EXPR:PATH". EXPR may hold ':' itself: the first ':' (from the
 * right) after which an existing file or directory follows and before
 * which the expression compiles is the split. 0, or -1 with a sentence in
 * err (naming neither the option nor the value: the caller does). */
int px_map_local_parse(const char *val, px_map_local_t *out, char *err, size_t errlen);
void px_map_local_free(px_map_local_t *m);

/* What a request path resolved to. */
typedef struct px_local_file {
  int status;       /* 200 (fd open), 404 no such file, 403 refused */
  int fd;           /* 200: the open file (the caller closes it), else -1 */
  uint64_t size;    /* 200: its size */
  const char *type; /* 200: its content type */
  char path[4096];  /* the file (200, 404) or the request path (403) */
  char why[256];    /* 403 / 404: why, one phrase */
} px_local_file_t;

/* Resolves the absolute URL `url` (scheme://host[:port]/path?query) under
 * rule `m`: the file itself for a file rule; for a directory, the URL's
 * path, percent-decoded, below it ("/" and directories: index.html).
 * Refused (403): "..", encoded '/' or '\' (%2f, %5c), NUL, backslashes,
 * bad percent-encoding, and any path whose real path (symbolic links
 * followed) leaves the directory. The final open uses O_NOFOLLOW; only
 * regular files are served. Blocking file-system calls (realpath, open,
 * fstat) on the caller's thread. */
void px_map_local_resolve(const px_map_local_t *m, const char *url, px_local_file_t *out);

/* The content type for a file name by its extension (a small table,
 * case-insensitive); "application/octet-stream" for the rest. */
const char *px_map_local_type(const char *path);

#endif
