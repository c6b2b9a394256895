/* reader.c — opening a transcript, telling HAR from JSONL, and walking its
 * flows (reader.h). JSONL is read line by line through a fixed buffer, so
 * a file of any size streams in bounded memory (one line at a time, at
 * most FLT_READER_MAX_LINE); a HAR is one JSON document and is parsed
 * whole, at most FLT_READER_MAX_HAR bytes. */
#include "filters/transcript/reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "filters/transcript/reader_internal.h"
#include "filters/util/strbuf.h"

#define RD_CHUNK 65536
#define RD_HAR_TOO_BIG \
  "larger than 1 GiB, the cap of a HAR file (JSONL files stream, whatever their size)"

struct flt_reader {
  flt_reader_format_t format;
  FILE *fp;
  int own_fp;
  char *mem;         /* the copy behind open_mem's stream */
  int jsonl_by_name; /* the name ends in .jsonl / .ndjson */
  /* lines */
  char chunk[RD_CHUNK];
  size_t pos, have;
  int eof;
  flt_strbuf_t line; /* the current line, without its '\n' */
  uint64_t lineno;
  cJSON *pending; /* JSONL: the first object, parsed while deciding */
  uint64_t pending_line;
  /* HAR */
  cJSON *doc;
  const cJSON *next_entry;
  int index;
  int tlspeek_har;
  /* the current flow */
  cJSON *cur;
  rd_arena_t arena;
  rd_flow_t flow;
  int failed;
};

/* ---- lines ------------------------------------------------------------- */

/* The next line into r->line: 1, 0 at the end, -1 with err set. */
static int rd_read_line(flt_reader_t *r, char *err, size_t errlen) {
  flt_strbuf_reset(&r->line);
  int any = 0;
  for (;;) {
    if (r->pos == r->have) {
      if (r->eof) return any ? 1 : 0;
      r->have = fread(r->chunk, 1, sizeof(r->chunk), r->fp);
      r->pos = 0;
      if (r->have == 0) {
        if (ferror(r->fp)) {
          int e = errno ? errno : EIO;
          if (r->lineno == 0)
            snprintf(err, errlen, "cannot read it: %s", strerror(e));
          else
            snprintf(err, errlen, "read error after line %llu: %s", (unsigned long long)r->lineno,
                     strerror(e));
          return -1;
        }
        r->eof = 1;
        continue;
      }
    }
    if (!any) r->lineno++;
    any = 1;
    char *nl = memchr(r->chunk + r->pos, '\n', r->have - r->pos);
    size_t n = nl ? (size_t)(nl - (r->chunk + r->pos)) : r->have - r->pos;
    if (flt_strbuf_append(&r->line, r->chunk + r->pos, n) < 0) {
      snprintf(err, errlen, "line %llu: %s", (unsigned long long)r->lineno,
               r->line.truncated ? "longer than 1 GiB, the cap of a JSONL line" : "out of memory");
      return -1;
    }
    r->pos += n + (nl != NULL);
    if (nl) return 1;
  }
}

static int rd_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
  return 1;
}

/* "line L, column C" of byte `off` in text that starts at line `first`. */
static void rd_position(const char *text, size_t off, uint64_t first, char *buf, size_t size) {
  uint64_t line = first, col = 1;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') {
      line++;
      col = 1;
    } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
      col++;
    }
  }
  snprintf(buf, size, "line %llu, column %llu", (unsigned long long)line, (unsigned long long)col);
}

/* Parses text[0..len) (NUL-terminated) as one JSON value; NULL with a
 * message naming the position when it does not parse. */
static cJSON *rd_parse(const char *text, size_t len, uint64_t first_line, char *err,
                       size_t errlen) {
  const char *end = NULL;
  char where[64];
  const char *nul = memchr(text, '\0', len);
  if (nul) {
    rd_position(text, (size_t)(nul - text), first_line, where, sizeof(where));
    snprintf(err, errlen, "%s: a NUL byte: not JSON text", where);
    return NULL;
  }
  cJSON *v = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
  if (v) return v;
  size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
  rd_position(text, off, first_line, where, sizeof(where));
  snprintf(err, errlen, "%s: malformed JSON%s", where, off >= len ? " (it ends too early)" : "");
  return NULL;
}

/* ---- HAR ------------------------------------------------------------------ */

/* Reads the rest of the input after `head` and parses it as a HAR. */
static int rd_open_har(flt_reader_t *r, flt_strbuf_t *text, char *err, size_t errlen) {
  rd_ctx_t c = {.err = err, .errlen = errlen};
  const cJSON *log, *entries, *creator;
  const char *name = NULL;

  struct stat st;
  int fd = fileno(r->fp);
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (uint64_t)st.st_size > FLT_READER_MAX_HAR) { /* said before reading it */
    snprintf(err, errlen, "%s", RD_HAR_TOO_BIG);
    return -1;
  }
  if (r->pos < r->have) flt_strbuf_append(text, r->chunk + r->pos, r->have - r->pos);
  r->pos = r->have;
  while (!r->eof && !text->truncated) {
    size_t n = fread(r->chunk, 1, sizeof(r->chunk), r->fp);
    if (n == 0) {
      if (ferror(r->fp)) {
        snprintf(err, errlen, "read error: %s", strerror(errno ? errno : EIO));
        return -1;
      }
      break;
    }
    if (flt_strbuf_append(text, r->chunk, n) < 0 && !text->truncated) {
      snprintf(err, errlen, "out of memory reading the HAR file");
      return -1;
    }
  }
  if (text->truncated) {
    snprintf(err, errlen, "%s", RD_HAR_TOO_BIG);
    return -1;
  }
  r->doc = rd_parse(text->data ? text->data : "", text->len, 1, err, errlen);
  flt_strbuf_free(text); /* the tree holds copies */
  if (r->doc == NULL) return -1;
  if (!cJSON_IsObject(r->doc)) return rd_fail(&c, NULL, "expected a JSON object");
  if (rd_object(&c, r->doc, "log", 1, &log) < 0) return -1;
  rd_push_key(&c, "log");
  if (rd_array(&c, log, "entries", 1, &entries) < 0 ||
      rd_object(&c, log, "creator", 0, &creator) < 0)
    return -1;
  rd_push_key(&c, "creator");
  if (creator && rd_string(&c, creator, "name", 0, &name) < 0) return -1;
  r->tlspeek_har = name && strcmp(name, "tlspeek") == 0;
  r->next_entry = entries->child;
  r->format = FLT_READER_HAR;
  return 0;
}

/* ---- deciding the format ------------------------------------------------- */

/* Reads the first lines that are not blank; decides. 0 or -1. */
static int rd_decide(flt_reader_t *r, char *err, size_t errlen) {
  flt_strbuf_t seen; /* every byte read so far: a HAR needs them back */
  int rc;
  char parse_err[160];

  flt_strbuf_init(&seen, FLT_READER_MAX_HAR);
  while ((rc = rd_read_line(r, err, errlen)) == 1 && rd_blank(r->line.data, r->line.len)) {
    flt_strbuf_append(&seen, r->line.data, r->line.len);
    flt_strbuf_append(&seen, "\n", 1);
  }
  if (rc <= 0) {
    if (rc == 0) snprintf(err, errlen, "empty: not a HAR or JSONL transcript");
    goto fail;
  }
  const char *s = r->line.data;
  size_t skip = r->lineno == 1 && r->line.len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
  skip += strspn(s + skip, " \t\r");
  if (s[skip] != '{') {
    unsigned char ch = (unsigned char)s[skip];
    snprintf(err, errlen,
             ch > 0x20 && ch < 0x7f ? "line %llu starts with '%c': not a HAR or JSONL transcript "
                                      "(both are JSON objects)"
                                    : "line %llu starts with byte 0x%02x: not a HAR or JSONL "
                                      "transcript (both are JSON objects)",
             (unsigned long long)r->lineno, ch);
    goto fail;
  }
  cJSON *first = rd_parse(s + skip, r->line.len - skip, r->lineno, parse_err, sizeof(parse_err));
  if (first && !cJSON_HasObjectItem(first, "log") && !cJSON_HasObjectItem(first, "url") &&
      !cJSON_HasObjectItem(first, "method")) {
    snprintf(err, errlen,
             "line %llu: not a HAR or JSONL transcript: a JSON object without "
             "\"log\" (HAR) or \"url\" (JSONL)",
             (unsigned long long)r->lineno);
    cJSON_Delete(first);
    goto fail;
  }
  if (first && !cJSON_HasObjectItem(first, "log")) {
    r->format = FLT_READER_JSONL;
    r->pending = first;
    r->pending_line = r->lineno;
    flt_strbuf_free(&seen);
    return 0;
  }
  cJSON_Delete(first);
  if (first == NULL && r->jsonl_by_name) {
    snprintf(err, errlen, "%s", parse_err);
    goto fail;
  }
  flt_strbuf_append(&seen, s + skip, r->line.len - skip);
  flt_strbuf_append(&seen, "\n", 1);
  if (rd_open_har(r, &seen, err, errlen) == 0) return 0;
fail:
  flt_strbuf_free(&seen);
  return -1;
}

/* ---- opening ---------------------------------------------------------------- */

static int rd_name_is_jsonl(const char *name) {
  size_t n = name ? strlen(name) : 0;
  return (n >= 6 && strcasecmp(name + n - 6, ".jsonl") == 0) ||
         (n >= 7 && strcasecmp(name + n - 7, ".ndjson") == 0);
}

static flt_reader_t *rd_new(FILE *fp, int own, const char *name) {
  flt_reader_t *r = calloc(1, sizeof(*r));
  if (r == NULL) return NULL;
  r->fp = fp;
  r->own_fp = own;
  r->jsonl_by_name = rd_name_is_jsonl(name);
  flt_strbuf_init(&r->line, FLT_READER_MAX_LINE);
  return r;
}

static flt_reader_t *rd_start(flt_reader_t *r, char *err, size_t errlen) {
  if (r == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (rd_decide(r, err, errlen) < 0) {
    flt_reader_free(r);
    return NULL;
  }
  return r;
}

flt_reader_t *flt_reader_open(const char *path, char *err, size_t errlen) {
  int std = strcmp(path, "-") == 0;
  FILE *fp = std ? stdin : fopen(path, "rb");
  if (fp == NULL) {
    snprintf(err, errlen, "cannot open it: %s", strerror(errno));
    return NULL;
  }
  flt_reader_t *r = rd_new(fp, !std, path);
  if (r == NULL && !std) fclose(fp);
  return rd_start(r, err, errlen);
}

flt_reader_t *flt_reader_open_mem(const void *data, size_t len, const char *name, char *err,
                                  size_t errlen) {
  if (len == 0) {
    snprintf(err, errlen, "empty: not a HAR or JSONL transcript");
    return NULL;
  }
  char *copy = malloc(len);
  FILE *fp = copy ? fmemopen(copy, len, "rb") : NULL;
  if (fp == NULL) {
    free(copy);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  memcpy(copy, data, len);
  flt_reader_t *r = rd_new(fp, 1, name);
  if (r == NULL) {
    fclose(fp);
    free(copy);
  } else {
    r->mem = copy;
  }
  return rd_start(r, err, errlen);
}

flt_reader_format_t flt_reader_format(const flt_reader_t *r) {
  return r->format;
}

/* ---- flows ----------------------------------------------------------------- */

static int rd_next_jsonl(flt_reader_t *r, char *err, size_t errlen) {
  rd_ctx_t c = {.err = err, .errlen = errlen};
  uint64_t line = r->pending_line;
  cJSON *obj = r->pending;
  char perr[160];

  r->pending = NULL;
  while (obj == NULL) {
    int rc = rd_read_line(r, err, errlen);
    if (rc <= 0) return rc;
    if (rd_blank(r->line.data, r->line.len)) continue;
    line = r->lineno;
    obj = rd_parse(r->line.data, r->line.len, line, perr, sizeof(perr));
    if (obj == NULL) {
      snprintf(err, errlen, "%s", perr);
      return -1;
    }
  }
  r->cur = obj;
  snprintf(c.prefix, sizeof(c.prefix), "line %llu: ", (unsigned long long)line);
  if (rd_flow_from_jsonl(&r->flow, &r->arena, obj, &c) < 0) return -1;
  snprintf(r->flow.rec.where, sizeof(r->flow.rec.where), "line %llu", (unsigned long long)line);
  return 1;
}

static int rd_next_har(flt_reader_t *r, char *err, size_t errlen) {
  rd_ctx_t c = {.err = err, .errlen = errlen};
  const cJSON *e = r->next_entry;

  if (e == NULL) return 0;
  r->next_entry = e->next;
  snprintf(c.path, sizeof(c.path), "log.entries[%d]", r->index);
  c.len = strlen(c.path);
  if (rd_flow_from_har(&r->flow, &r->arena, e, r->tlspeek_har, &c) < 0) return -1;
  snprintf(r->flow.rec.where, sizeof(r->flow.rec.where), "log.entries[%d]", r->index);
  r->index++;
  return 1;
}

int flt_reader_next(flt_reader_t *r, flt_rec_flow_t **out, char *err, size_t errlen) {
  *out = NULL;
  if (r->failed) {
    snprintf(err, errlen, "no more flows after an error");
    return -1;
  }
  cJSON_Delete(r->cur);
  r->cur = NULL;
  rd_arena_reset(&r->arena);
  int rc =
      r->format == FLT_READER_HAR ? rd_next_har(r, err, errlen) : rd_next_jsonl(r, err, errlen);
  if (rc < 0) r->failed = 1;
  if (rc == 1) *out = &r->flow.rec;
  return rc;
}

void flt_reader_free(flt_reader_t *r) {
  if (r == NULL) return;
  cJSON_Delete(r->cur);
  cJSON_Delete(r->pending);
  cJSON_Delete(r->doc);
  rd_arena_reset(&r->arena);
  free(r->arena.blocks);
  flt_strbuf_free(&r->line);
  if (r->own_fp) fclose(r->fp);
  free(r->mem);
  free(r);
}
