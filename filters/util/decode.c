#include "filters/util/decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

/* Content-Encoding may stack codings; more than this is not real traffic. */
#define DEC_MAX_STAGES 4
/* Bytes a stage decodes before handing them on to the next stage. */
#define DEC_CHUNK 16384
/* RFC 8878 §3.1.1.1.2: HTTP zstd decoders need at most an 8 MiB window.
 * Refusing larger windows keeps one decoder's memory bounded. */
#define DEC_ZSTD_WINDOW_LOG_MAX 23

typedef enum dec_kind {
  DEC_GZIP,    /* gzip, x-gzip */
  DEC_DEFLATE, /* deflate: zlib-wrapped, or raw as some servers send it */
  DEC_BR,
  DEC_ZSTD
} dec_kind_t;

typedef struct dec_stage {
  dec_kind_t kind;
  const char *name;
  int started;        /* the library state is initialised */
  int done;           /* end of the compressed stream seen */
  uint8_t sniff[2];   /* deflate: first bytes, to tell zlib from raw */
  size_t sniff_len;
  z_stream z;
  BrotliDecoderState *br;
  ZSTD_DStream *zs;
  uint8_t buf[DEC_CHUNK];
} dec_stage_t;

struct flt_decoder {
  flt_strbuf_t *out;
  int n;               /* stages, in decoding order (last coding first) */
  dec_stage_t *stages[DEC_MAX_STAGES];
  int full;            /* `out` reached its cap: decoding stopped */
  uint64_t fed;        /* encoded bytes fed */
  uint64_t produced;   /* decoded bytes, kept or not */
  char coding[32];     /* coding that failed (or is unsupported) */
  char err[128];       /* NULL-able through flt_decoder_error */
};

static int dec_fail(flt_decoder_t *d, const char *coding, const char *why) {
  if (d->err[0] == '\0') {
    snprintf(d->coding, sizeof(d->coding), "%s", coding);
    snprintf(d->err, sizeof(d->err), "%s", why);
  }
  return -1;
}

/* Parses one token of the header value into a stage kind. */
static int dec_kind_of(const char *tok, size_t len, dec_kind_t *kind,
                       const char **name) {
  static const struct {
    const char *token;
    dec_kind_t kind;
  } known[] = {{"gzip", DEC_GZIP},     {"x-gzip", DEC_GZIP},
               {"deflate", DEC_DEFLATE}, {"br", DEC_BR},
               {"zstd", DEC_ZSTD}};
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
    if (strlen(known[i].token) == len &&
        strncasecmp(known[i].token, tok, len) == 0) {
      *kind = known[i].kind;
      *name = known[i].token;
      return 0;
    }
  }
  return -1;
}

static int dec_add_stage(flt_decoder_t *d, const char *tok, size_t len) {
  dec_kind_t kind;
  const char *name;
  char shown[32];
  dec_stage_t *s;

  if (len == 8 && strncasecmp(tok, "identity", 8) == 0) return 0;
  if (dec_kind_of(tok, len, &kind, &name) < 0) {
    snprintf(shown, sizeof(shown), "%.*s", (int)len, tok);
    return dec_fail(d, shown, "unsupported coding");
  }
  if (d->n == DEC_MAX_STAGES) return dec_fail(d, name, "too many codings");
  s = calloc(1, sizeof(*s));
  if (s == NULL) return -2;
  s->kind = kind;
  s->name = name;
  /* The header lists codings in the order they were applied; decoding
   * undoes them last first, so each new stage goes to the front. */
  memmove(&d->stages[1], &d->stages[0], (size_t)d->n * sizeof(d->stages[0]));
  d->stages[0] = s;
  d->n++;
  return 0;
}

flt_decoder_t *flt_decoder_new(const char *encoding, size_t enc_len,
                               flt_strbuf_t *out) {
  flt_decoder_t *d = calloc(1, sizeof(*d));
  size_t i = 0;

  if (d == NULL) return NULL;
  d->out = out;
  if (encoding == NULL) enc_len = 0;
  while (i < enc_len) {
    size_t start, end;
    while (i < enc_len && (encoding[i] == ' ' || encoding[i] == '\t' ||
                           encoding[i] == ','))
      i++;
    start = i;
    while (i < enc_len && encoding[i] != ',') i++;
    end = i;
    while (end > start && (encoding[end - 1] == ' ' || encoding[end - 1] == '\t'))
      end--;
    if (end == start) continue;
    if (dec_add_stage(d, encoding + start, end - start) == -2) {
      flt_decoder_free(d);
      return NULL;
    }
    if (d->err[0]) break; /* the decoder reports it on every feed */
  }
  return d;
}

static int dec_push(flt_decoder_t *d, int stage, const uint8_t *data,
                    size_t len);

/* Hands a stage's output to the next stage, or to `out` after the last. */
static int dec_emit(flt_decoder_t *d, int stage, const uint8_t *data,
                    size_t len) {
  if (len == 0) return 0;
  if (stage + 1 < d->n) return dec_push(d, stage + 1, data, len);
  d->produced += len;
  if (d->out && flt_strbuf_append(d->out, data, len) < 0) d->full = 1;
  return 0;
}

/* A deflate body starts with a zlib header (RFC 1950) when the low nibble
 * of the first byte is 8 (the deflate method) and the first two bytes, as a
 * big-endian number, are a multiple of 31. Anything else is raw deflate. */
static int dec_looks_zlib(const uint8_t b[2]) {
  return (b[0] & 0x0f) == 8 && (b[0] >> 4) <= 7 &&
         (((unsigned)b[0] << 8) | b[1]) % 31 == 0;
}

static int dec_zlib_start(flt_decoder_t *d, dec_stage_t *s, int window_bits) {
  if (inflateInit2(&s->z, window_bits) != Z_OK)
    return dec_fail(d, s->name, "out of memory");
  s->started = 1;
  return 0;
}

/* Inflates one slice; zlib counts input in uInt, so callers slice. */
static int dec_zlib_slice(flt_decoder_t *d, int stage, const uint8_t *data,
                          uInt len) {
  dec_stage_t *s = d->stages[stage];

  s->z.next_in = (Bytef *)data;
  s->z.avail_in = len;
  while ((s->z.avail_in > 0 || s->z.avail_out == 0) && !d->full) {
    int r;
    s->z.next_out = s->buf;
    s->z.avail_out = sizeof(s->buf);
    r = inflate(&s->z, Z_NO_FLUSH);
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
      return dec_fail(d, s->name, s->z.msg ? s->z.msg : zError(r));
    if (dec_emit(d, stage, s->buf, sizeof(s->buf) - s->z.avail_out) < 0)
      return -1;
    if (r == Z_STREAM_END) {
      s->done = 1;
      /* gzip allows several members back to back (RFC 1952 §2.2). */
      if (s->kind != DEC_GZIP || s->z.avail_in == 0) break;
      inflateReset(&s->z);
      s->done = 0;
    }
    if (r == Z_BUF_ERROR && s->z.avail_in == 0) break;
  }
  return 0;
}

static int dec_zlib(flt_decoder_t *d, int stage, const uint8_t *data,
                    size_t len) {
  const size_t slice = 1u << 30;

  while (len > 0 && !d->stages[stage]->done) {
    uInt n = (uInt)(len < slice ? len : slice);
    if (dec_zlib_slice(d, stage, data, n) < 0) return -1;
    data += n;
    len -= n;
  }
  return 0;
}

static int dec_deflate(flt_decoder_t *d, int stage, const uint8_t *data,
                       size_t len) {
  dec_stage_t *s = d->stages[stage];

  if (!s->started) {
    /* Hold back the first two bytes until we know which framing it is. */
    while (s->sniff_len < 2 && len > 0) {
      s->sniff[s->sniff_len++] = *data++;
      len--;
    }
    if (s->sniff_len < 2) return 0;
    if (s->kind == DEC_GZIP) {
      /* 15 + 32: gzip, or zlib from servers that mislabel it. */
      if (dec_zlib_start(d, s, 15 + 32) < 0) return -1;
    } else if (dec_zlib_start(d, s, dec_looks_zlib(s->sniff) ? 15 : -15) < 0) {
      return -1;
    }
    if (dec_zlib(d, stage, s->sniff, 2) < 0) return -1;
  }
  if (len == 0 || s->done || d->full) return 0;
  return dec_zlib(d, stage, data, len);
}

static int dec_brotli(flt_decoder_t *d, int stage, const uint8_t *data,
                      size_t len) {
  dec_stage_t *s = d->stages[stage];
  const uint8_t *in = data;
  size_t avail_in = len;

  if (!s->started) {
    s->br = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (s->br == NULL) return dec_fail(d, s->name, "out of memory");
    s->started = 1;
  }
  while (!d->full) {
    uint8_t *next_out = s->buf;
    size_t avail_out = sizeof(s->buf);
    BrotliDecoderResult r = BrotliDecoderDecompressStream(
        s->br, &avail_in, &in, &avail_out, &next_out, NULL);
    if (r == BROTLI_DECODER_RESULT_ERROR)
      return dec_fail(d, s->name,
                      BrotliDecoderErrorString(BrotliDecoderGetErrorCode(s->br)));
    if (dec_emit(d, stage, s->buf, sizeof(s->buf) - avail_out) < 0) return -1;
    if (r == BROTLI_DECODER_RESULT_SUCCESS) {
      s->done = 1;
      break;
    }
    if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) break;
  }
  return 0;
}

static int dec_zstd(flt_decoder_t *d, int stage, const uint8_t *data,
                    size_t len) {
  dec_stage_t *s = d->stages[stage];
  ZSTD_inBuffer in = {data, len, 0};

  if (!s->started) {
    s->zs = ZSTD_createDStream();
    if (s->zs == NULL) return dec_fail(d, s->name, "out of memory");
    ZSTD_DCtx_setParameter(s->zs, ZSTD_d_windowLogMax, DEC_ZSTD_WINDOW_LOG_MAX);
    s->started = 1;
  }
  while (!d->full) {
    ZSTD_outBuffer out = {s->buf, sizeof(s->buf), 0};
    size_t in_before = in.pos;
    size_t r = ZSTD_decompressStream(s->zs, &out, &in);
    if (ZSTD_isError(r)) return dec_fail(d, s->name, ZSTD_getErrorName(r));
    if (dec_emit(d, stage, s->buf, out.pos) < 0) return -1;
    /* 0 means a frame ended; more input may start another frame. A call
     * that moved nothing (the frame's end filled the buffer exactly, and
     * zstd now waits for a next frame) changes nothing. */
    if (r == 0)
      s->done = 1;
    else if (out.pos > 0 || in.pos > in_before)
      s->done = 0;
    /* A full output buffer may hide more output: go round again. */
    if (in.pos == in.size && out.pos < out.size) break;
  }
  return 0;
}

static int dec_push(flt_decoder_t *d, int stage, const uint8_t *data,
                    size_t len) {
  dec_stage_t *s = d->stages[stage];

  if (s->done) {
    /* A new gzip member may follow the previous one (RFC 1952 §2.2) and
     * zstd decodes frame after frame by itself; after the end of a
     * deflate or brotli stream, bytes carry nothing to show. */
    if (s->kind == DEC_GZIP) {
      inflateReset(&s->z);
      s->done = 0;
    } else if (s->kind != DEC_ZSTD) {
      return 0;
    }
  }
  switch (s->kind) {
  case DEC_GZIP:
  case DEC_DEFLATE:
    return dec_deflate(d, stage, data, len);
  case DEC_BR:
    return dec_brotli(d, stage, data, len);
  case DEC_ZSTD:
    return dec_zstd(d, stage, data, len);
  }
  return dec_fail(d, s->name, "internal error");
}

int flt_decoder_feed(flt_decoder_t *d, const uint8_t *data, size_t len) {
  if (d->err[0]) return -1;
  if (d->full || len == 0) return 0;
  d->fed += len;
  if (d->n == 0) {
    d->produced += len;
    if (d->out && flt_strbuf_append(d->out, data, len) < 0) d->full = 1;
    return 0;
  }
  return dec_push(d, 0, data, len);
}

int flt_decoder_finish(flt_decoder_t *d) {
  if (d->err[0]) return -1;
  /* Stopping at the cap, or an empty body (HEAD, 204, 304 with a
   * Content-Encoding header), is not an error. */
  if (d->full || d->fed == 0) return 0;
  for (int i = 0; i < d->n; i++) {
    if (!d->stages[i]->done)
      return dec_fail(d, d->stages[i]->name, "truncated stream");
  }
  return 0;
}

const char *flt_decoder_error(const flt_decoder_t *d) {
  return d->err[0] ? d->err : NULL;
}

const char *flt_decoder_error_coding(const flt_decoder_t *d) {
  return d->err[0] ? d->coding : NULL;
}

int flt_decoder_stopped(const flt_decoder_t *d) { return d->full; }

uint64_t flt_decoder_produced(const flt_decoder_t *d) { return d->produced; }

void flt_decoder_free(flt_decoder_t *d) {
  if (d == NULL) return;
  for (int i = 0; i < d->n; i++) {
    dec_stage_t *s = d->stages[i];
    if (s->started) {
      if (s->kind == DEC_GZIP || s->kind == DEC_DEFLATE) inflateEnd(&s->z);
      if (s->br) BrotliDecoderDestroyInstance(s->br);
      if (s->zs) ZSTD_freeDStream(s->zs);
    }
    free(s);
  }
  free(d);
}
