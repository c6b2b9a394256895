/* answer_local.c — --map-local: the rule, a request path resolved below a
 * directory without leaving it, content types (answer_local.h). */
#include "proxy/answer_local.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filters/expr/expr.h"

/* ---- the rule ------------------------------------------------------------- */

int px_map_local_parse(const char *val, px_map_local_t *out, char *err, size_t errlen) {
  char expr[4200], why[2048] = "";
  memset(out, 0, sizeof(*out));
  for (const char *c = strrchr(val, ':'); c; ) {
    struct stat st;
    const char *path = c + 1;
    if (*path && stat(path, &st) == 0 && (size_t)(c - val) < sizeof(expr)) {
      memcpy(expr, val, (size_t)(c - val));
      expr[c - val] = '\0';
      out->expr = flt_expr_compile(expr, FLT_EXPR_ALL_TERMS, why, sizeof(why));
      if (out->expr) {
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
          snprintf(err, errlen, "'%s' is neither a regular file nor a directory", path);
          px_map_local_free(out);
          return -1;
        }
        out->root = realpath(path, NULL);
        if (out->root == NULL) {
          snprintf(err, errlen, "cannot resolve '%s': %s", path, strerror(errno));
          px_map_local_free(out);
          return -1;
        }
        out->is_dir = S_ISDIR(st.st_mode);
        return 0;
      }
    }
    if (c == val) break;
    const char *prev = c - 1;
    while (prev > val && *prev != ':') prev--;
    c = *prev == ':' ? prev : NULL;
  }
  if (why[0])
    snprintf(err, errlen, "the expression before PATH does not compile: %s", why);
  else
    snprintf(err, errlen, "no existing file or directory after a ':' (use EXPR:PATH)");
  return -1;
}

void px_map_local_free(px_map_local_t *m) {
  flt_expr_free(m->expr);
  free(m->root);
  memset(m, 0, sizeof(*m));
}

/* ---- content types -------------------------------------------------------- */

static const struct {
  const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},   {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"}, {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"}, {"xml", "application/xml"},
    {"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
    {"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"webp", "image/webp"},
    {"ico", "image/x-icon"}, {"avif", "image/avif"}, {"wasm", "application/wasm"},
    {"pdf", "application/pdf"}, {"woff", "font/woff"}, {"woff2", "font/woff2"},
    {"ttf", "font/ttf"}, {"otf", "font/otf"}, {"mp4", "video/mp4"},
    {"webm", "video/webm"}, {"mp3", "audio/mpeg"}, {"wav", "audio/wav"},
    {"zip", "application/zip"}, {"gz", "application/gzip"},
    {"map", "application/json"}, {"webmanifest", "application/manifest+json"},
};

const char *px_map_local_type(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  if (dot && dot[1])
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
      if (strcasecmp(dot + 1, types[i].ext) == 0) return types[i].type;
  return "application/octet-stream";
}

/* ---- a request path below the directory ------------------------------------ */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

/* The path of `url` (without query and fragment), percent-decoded into
 * out. 0, or -1 with why: what is refused before any file is looked at. */
static int decode_path(const char *url, char *out, size_t outlen, char *why, size_t whylen) {
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : url;
  if (p == NULL) p = "/";
  size_t n = 0;
  for (; *p && *p != '?' && *p != '#'; p++) {
    char c = *p;
    if (c == '%') {
      int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
      if (lo < 0) return snprintf(why, whylen, "bad percent-encoding"), -1;
      c = (char)(hi * 16 + lo);
      if (c == '/' || c == '\\' || c == '\0')
        return snprintf(why, whylen, "an encoded '/', '\\' or NUL (%%%c%c)", p[1], p[2]), -1;
      p += 2;
    }
    if (c == '\\') return snprintf(why, whylen, "a backslash in the path"), -1;
    if (n + 1 >= outlen) return snprintf(why, whylen, "path too long"), -1;
    out[n++] = c;
  }
  out[n] = '\0';
  /* ".." as a segment, however it was written. */
  for (const char *s = out; (s = strstr(s, "..")) != NULL; s += 2)
    if ((s == out || s[-1] == '/') && (s[2] == '\0' || s[2] == '/'))
      return snprintf(why, whylen, "a '..' segment"), -1;
  return 0;
}

/* Is `real` the root or below it? */
static int below(const char *root, const char *real) {
  size_t n = strlen(root);
  if (strcmp(root, "/") == 0) return 1;
  return strncmp(real, root, n) == 0 && (real[n] == '\0' || real[n] == '/');
}

static void missing(px_local_file_t *out, const char *why) {
  out->status = 404;
  snprintf(out->why, sizeof(out->why), "%s", why);
}

static void refused(px_local_file_t *out, const char *why) {
  out->status = 403;
  snprintf(out->why, sizeof(out->why), "%s", why);
}

/* Opens out->path, a resolved path inside the root: a regular file only. */
static void open_file(px_local_file_t *out) {
  struct stat st;
  int fd = open(out->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) missing(out, "no such file");
    else refused(out, errno == ELOOP ? "a symbolic link" : strerror(errno));
    return;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    refused(out, "not a regular file");
    return;
  }
  out->fd = fd;
  out->size = (uint64_t)st.st_size;
  out->type = px_map_local_type(out->path);
  out->status = 200;
}

void px_map_local_resolve(const px_map_local_t *m, const char *url, px_local_file_t *out) {
  char rel[2048], why[128], want[sizeof(out->path)];
  memset(out, 0, sizeof(*out));
  out->fd = -1;
  if (!m->is_dir) {
    snprintf(out->path, sizeof(out->path), "%.4000s", m->root);
    open_file(out);
    return;
  }
  if (decode_path(url, rel, sizeof(rel), why, sizeof(why)) != 0) {
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : url;
    snprintf(out->path, sizeof(out->path), "%.4000s", p ? p : "/");
    refused(out, why);
    return;
  }
  size_t rl = strlen(rel);
  if (strlen(m->root) > 2000) {
    missing(out, "the directory's path is too long");
    return;
  }
  snprintf(want, sizeof(want), "%.2000s%s%.2047s%s", m->root, rel[0] == '/' ? "" : "/", rel,
           rl == 0 || rel[rl - 1] == '/' ? "index.html" : "");
  snprintf(out->path, sizeof(out->path), "%.4000s", want);
  for (int tries = 0; tries < 2; tries++) {
    char *real = realpath(want, NULL);
    if (real == NULL) {
      missing(out, errno == ENOENT || errno == ENOTDIR ? "no such file" : strerror(errno));
      return;
    }
    int inside = below(m->root, real);
    struct stat st;
    int dir = inside && stat(real, &st) == 0 && S_ISDIR(st.st_mode);
    snprintf(out->path, sizeof(out->path), "%.4000s", inside ? real : want);
    free(real);
    if (!inside) {
      refused(out, "a symbolic link that leads outside the directory");
      return;
    }
    if (!dir) {
      open_file(out);
      return;
    }
    snprintf(want, sizeof(want), "%.4000s/index.html", out->path); /* a directory: its index */
    snprintf(out->path, sizeof(out->path), "%.4000s", want);
  }
  missing(out, "no such file");
}
