/* har.c — the HAR 1.2 transcript (transcript.h; README.md, "Transcripts").
 *
 * Crash safety: the file always ends with the tail "\n]}}\n". A write
 * (tr_out_write, trout.c) puts at the tail's offset the entries of every
 * flow the writer thread found queued (each after ",\n", nothing before
 * the first entry of the file), then the tail again, so after every
 * completed write the file is a whole HAR document, even if the process
 * is then killed.
 * The writer thread (one per file) runs within TR_GATHER_NS of a flow's
 * end; batches stay under TR_BATCH_MAX and TR_BATCH_HOLES.
 *
 * Order: entries are written in the order flows *complete*. Across
 * concurrent connections that may differ from the order requests started
 * (HAR readers sort by startedDateTime anyway); for a client that sends one
 * request after another, completion order is start order. Keeping a
 * reorder buffer would hold finished flows hostage to a slow one.
 *
 * What goes where (beyond HAR 1.2; extras start with "_"):
 *  - request.postData and response.content carry the body: text when it is
 *    valid UTF-8 (after removing Content-Encoding), else base64 with
 *    "encoding": "base64" — on postData too, where HAR 1.2 does not define
 *    the field; we use the same name in both places.
 *  - "_bodyTruncated": true on request/response when body_cap cut the body
 *    kept (then content.size is a lower bound for encoded bodies);
 *    "_decodeError" on content/postData when the Content-Encoding could
 *    not be removed (then the body is as received); "_tls" on HTTPS
 *    entries; "_error" on flows that ended in an error (without a response:
 *    status 0, headersSize and bodySize -1); log._bodyCap;
 *    "_trailers" on response: the HTTP/2 trailers ([{"name", "value"}],
 *    gRPC's grpc-status), when the response had any;
 *    "_interimResponses" on response when 1xx responses (100 Continue,
 *    103 Early Hints) came before it: [{"status", "reason", "httpVersion",
 *    "headers"}], in order.
 *  - request and response are the heads as forwarded: with the changes
 *    of --set-header / --remove-header (what the server and the client
 *    saw). The JSONL transcript keeps the heads as received too.
 *  - timings: connect includes ssl (HAR 1.2 §timings); dns/connect/ssl only
 *    on the first flow of a connection (and the first after an idle
 *    upstream was reopened), -1 on later ones; "time" is the sum
 *    of the available timings.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "filters/util/log.h"
#include "filters/transcript/transcript.h"
#include "filters/transcript/transcript_internal.h"

#define HAR_TAIL "\n]}}\n"
#define HAR_TAIL_LEN (sizeof(HAR_TAIL) - 1)

typedef struct flt_har {
  tr_recorder_t rec; /* first: the shared handlers cast self to it */
  int fd;
  char path[512];
  /* Writer thread only: */
  off_t tail_off; /* where HAR_TAIL starts */
  int n_entries;
  tr_out_t out; /* never final past tail_off: the tail is rewritten */
  tr_jw_t jw;         /* the batch being written */
} flt_har_t;

/* ---- small parsers ------------------------------------------------------ */

static int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* application/x-www-form-urlencoded decoding: %XX and '+' for space. */
static void form_decode(const char *s, size_t n, flt_strbuf_t *out) {
  flt_strbuf_reset(out);
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < n && hex_val(s[i + 1]) >= 0 && hex_val(s[i + 2]) >= 0) {
      c = (char)(hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]));
      i += 2;
    }
    flt_strbuf_append(out, &c, 1);
  }
}

/* {"name","value"} pairs of "a=1&b=2" (decoded), as array elements. */
static void add_form_pairs(tr_jw_t *w, const char *s, size_t n) {
  flt_strbuf_t name, value;
  size_t i = 0;

  flt_strbuf_init(&name, 0);
  flt_strbuf_init(&value, 0);
  while (i < n) {
    size_t start = i, eq;
    while (i < n && s[i] != '&')
      i++;
    for (eq = start; eq < i && s[eq] != '='; eq++) {
    }
    if (i > start) {
      form_decode(s + start, eq - start, &name);
      form_decode(s + eq + (eq < i), i - eq - (eq < i), &value);
      if (name.truncated || value.truncated) w->oom = 1;
      tr_jw_open(w, NULL, '{');
      tr_jw_bytes(w, "name", name.data, name.len);
      tr_jw_bytes(w, "value", value.data, value.len);
      tr_jw_close(w, '}');
    }
    i++; /* past '&' */
  }
  flt_strbuf_free(&name);
  flt_strbuf_free(&value);
}

static void query_string(tr_jw_t *w, const char *url) {
  const char *q = url ? strchr(url, '?') : NULL;

  tr_jw_open(w, "queryString", '[');
  if (q) {
    q++;
    add_form_pairs(w, q, strcspn(q, "#"));
  }
  tr_jw_close(w, ']');
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

/* The next ';'-separated part of [*p, end), trimmed; 0 at the end. */
static int next_part(const char **p, const char *end, const char **s, size_t *n) {
  const char *b = *p, *e;

  if (b >= end) return 0;
  e = memchr(b, ';', (size_t)(end - b));
  if (e == NULL) e = end;
  *p = e + 1;
  while (b < e && is_ows(*b))
    b++;
  while (e > b && is_ows(e[-1]))
    e--;
  *s = b;
  *n = (size_t)(e - b);
  return 1;
}

/* Opens {"name","value"} from "name=value" (the caller closes it); 0 and
 * nothing for an empty part. */
static int cookie_pair(tr_jw_t *w, const char *s, size_t n) {
  const char *eq = memchr(s, '=', n);
  size_t nlen = eq ? (size_t)(eq - s) : n;

  if (n == 0) return 0;
  tr_jw_open(w, NULL, '{');
  tr_jw_bytes(w, "name", s, nlen);
  tr_jw_bytes(w, "value", eq ? eq + 1 : "", eq ? n - nlen - 1 : 0);
  return 1;
}

static void request_cookies(tr_jw_t *w, const flt_head_t *h) {
  tr_jw_open(w, "cookies", '[');
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    const char *p = hd->value, *end = hd->value + hd->value_len, *s;
    size_t n;
    if (hd->name_len != 6 || strncasecmp(hd->name, "Cookie", 6) != 0) continue;
    while (next_part(&p, end, &s, &n))
      if (cookie_pair(w, s, n)) tr_jw_close(w, '}');
  }
  tr_jw_close(w, ']');
}

/* "Wed, 21 Oct 2015 07:28:00 GMT" as ISO 8601; 0 when it does not parse. */
static int cookie_expires(const char *s, size_t n, char *buf, size_t size) {
  char tmp[64];
  struct tm tm;
  const char *end;

  if (n >= sizeof(tmp)) return 0;
  memcpy(tmp, s, n);
  tmp[n] = '\0';
  memset(&tm, 0, sizeof(tm));
  end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == NULL) end = strptime(tmp, "%a, %d-%b-%Y %H:%M:%S GMT", &tm);
  if (end == NULL) return 0;
  tr_iso_time((uint64_t)timegm(&tm) * 1000000u, buf, size);
  return 1;
}

/* One Set-Cookie value: name=value, then attributes. */
static void set_cookie(tr_jw_t *w, const char *v, size_t len) {
  const char *p = v, *end = v + len, *s;
  size_t n;

  if (!next_part(&p, end, &s, &n) || !cookie_pair(w, s, n)) return;
  while (next_part(&p, end, &s, &n)) {
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n, vlen = eq ? n - klen - 1 : 0;
    const char *val = eq ? eq + 1 : "";
    char iso[TR_ISO_LEN];
    if (klen == 4 && strncasecmp(s, "path", 4) == 0) {
      tr_jw_bytes(w, "path", val, vlen);
    } else if (klen == 6 && strncasecmp(s, "domain", 6) == 0) {
      tr_jw_bytes(w, "domain", val, vlen);
    } else if (klen == 7 && strncasecmp(s, "expires", 7) == 0) {
      if (cookie_expires(val, vlen, iso, sizeof(iso))) tr_jw_str(w, "expires", iso);
    } else if (klen == 8 && strncasecmp(s, "httponly", 8) == 0) {
      tr_jw_bool(w, "httpOnly", 1);
    } else if (klen == 6 && strncasecmp(s, "secure", 6) == 0) {
      tr_jw_bool(w, "secure", 1);
    } else if (klen == 8 && strncasecmp(s, "samesite", 8) == 0) {
      tr_jw_bytes(w, "sameSite", val, vlen);
    }
  }
  tr_jw_close(w, '}');
}

static void response_cookies(tr_jw_t *w, const flt_head_t *h) {
  tr_jw_open(w, "cookies", '[');
  for (size_t i = 0; i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    if (hd->name_len == 10 && strncasecmp(hd->name, "Set-Cookie", 10) == 0)
      set_cookie(w, hd->value, hd->value_len);
  }
  tr_jw_close(w, ']');
}

static void add_header_value(tr_jw_t *w, const char *key, const flt_head_t *h, const char *name) {
  const flt_header_t *hd = flt_head_find(h, name);
  tr_jw_bytes(w, key, hd ? hd->value : "", hd ? hd->value_len : 0);
}

static double size_or_unknown(size_t n) {
  return n > 0 ? (double)n : -1;
}

/* ---- the entry ---------------------------------------------------------- */

static void add_body_text(tr_jw_t *w, const tr_body_t *b) {
  tr_jw_body(w, "text", b);
  if (b->base64) tr_jw_str(w, "encoding", "base64");
  if (b->decode_error) tr_jw_str(w, "_decodeError", b->decode_error);
}

static int is_form(const flt_head_t *h) {
  const flt_header_t *ct = flt_head_find(h, "Content-Type");
  static const char form[] = "application/x-www-form-urlencoded";
  return ct && ct->value_len >= sizeof(form) - 1 &&
         strncasecmp(ct->value, form, sizeof(form) - 1) == 0;
}

static void har_request(tr_jw_t *w, tr_flow_t *r, const tr_body_t *body) {
  const flt_flow_t *f = &r->flow;
  char ver[16];

  tr_http_version(&f->req, ver, sizeof(ver));
  tr_jw_open(w, "request", '{');
  tr_jw_str(w, "method", f->req.method);
  tr_jw_str(w, "url", f->url);
  tr_jw_str(w, "httpVersion", ver);
  request_cookies(w, &f->req);
  tr_jw_headers(w, "headers", &f->req);
  query_string(w, f->url);
  if (f->req_body_bytes > 0 || body->truncated) {
    tr_jw_open(w, "postData", '{');
    add_header_value(w, "mimeType", &f->req, "Content-Type");
    add_body_text(w, body);
    if (is_form(&f->req) && !body->base64 && !body->decode_error) {
      tr_jw_open(w, "params", '[');
      add_form_pairs(w, body->text, body->len);
      tr_jw_close(w, ']');
    }
    tr_jw_close(w, '}');
  }
  tr_jw_num(w, "headersSize", size_or_unknown(f->req.head_bytes));
  tr_jw_num(w, "bodySize", (double)f->req_body_bytes);
  if (body->truncated) tr_jw_bool(w, "_bodyTruncated", 1);
  tr_jw_close(w, '}');
}

static void har_content(tr_jw_t *w, const flt_flow_t *f, const tr_body_t *body) {
  tr_jw_open(w, "content", '{');
  tr_jw_num(w, "size", (double)body->size);
  if (body->decoded && !body->truncated && body->size >= f->resp_body_bytes)
    tr_jw_num(w, "compression", (double)(body->size - f->resp_body_bytes));
  add_header_value(w, "mimeType", &f->resp, "Content-Type");
  if (f->has_response) add_body_text(w, body);
  tr_jw_close(w, '}');
}

static void har_response(tr_jw_t *w, tr_flow_t *r, const tr_body_t *body) {
  const flt_flow_t *f = &r->flow;
  flt_head_t none = {0};
  const flt_head_t *h = f->has_response ? &f->resp : &none;
  char ver[16];

  tr_http_version(h, ver, sizeof(ver));
  tr_jw_open(w, "response", '{');
  tr_jw_num(w, "status", f->has_response ? h->status : 0);
  tr_jw_str(w, "statusText", h->reason ? h->reason : "");
  tr_jw_str(w, "httpVersion", ver);
  response_cookies(w, h);
  tr_jw_headers(w, "headers", h);
  har_content(w, f, body);
  add_header_value(w, "redirectURL", h, "Location");
  tr_jw_num(w, "headersSize", size_or_unknown(h->head_bytes));
  tr_jw_num(w, "bodySize", f->has_response ? (double)f->resp_body_bytes : -1);
  if (f->has_response && body->truncated) tr_jw_bool(w, "_bodyTruncated", 1);
  if (r->n_interim > 0) tr_jw_interim(w, "_interimResponses", r);
  if (r->has_trailers) tr_jw_headers(w, "_trailers", &r->trailers);
  tr_jw_close(w, '}');
}

static void har_timings(tr_jw_t *w, const tr_timings_t *t) {
  tr_jw_open(w, "timings", '{');
  tr_jw_num(w, "blocked", -1);
  tr_jw_num(w, "dns", t->dns);
  tr_jw_num(w, "connect", t->connect);
  tr_jw_num(w, "ssl", t->ssl);
  tr_jw_num(w, "send", t->send);
  tr_jw_num(w, "wait", t->wait);
  tr_jw_num(w, "receive", t->receive);
  tr_jw_close(w, '}');
}

/* "1.2.3.4" of "1.2.3.4:443", "::1" of "[::1]:443". */
static void add_server_ip(tr_jw_t *w, const char *addr) {
  const char *colon = strrchr(addr, ':');

  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (close) tr_jw_bytes(w, "serverIPAddress", addr + 1, (size_t)(close - addr - 1));
  } else if (colon) {
    tr_jw_bytes(w, "serverIPAddress", addr, (size_t)(colon - addr));
  }
}

/* The value of "_tls": the connection's facts only (tr_jw_kcached). */
static void tls_value(tr_jw_t *w, const void *arg) {
  const flt_conn_t *c = arg;

  tr_jw_raw(w, "{", 1);
  tr_jw_str(w, "version", c->tls_version);
  tr_jw_str(w, "cipher", c->cipher);
  tr_jw_str(w, "sni", c->sni);
  tr_jw_str(w, "alpn", c->alpn);
  tr_jw_str(w, "ja3", c->ja3);
  tr_jw_str(w, "ja4", c->ja4);
  if (c->up_tls_version[0]) {
    tr_jw_open(w, "upstream", '{');
    tr_jw_str(w, "version", c->up_tls_version);
    tr_jw_str(w, "cipher", c->up_cipher);
    tr_jw_str(w, "alpn", c->up_alpn);
    tr_jw_str(w, "verify", c->up_verify);
    tr_jw_close(w, '}');
  }
  tr_jw_close(w, '}');
}

static void add_tls(tr_jw_t *w, const tr_flow_t *r) {
  const flt_flow_t *f = &r->flow;

  if (!f->conn->client_tls && strcmp(f->scheme, "https") != 0) return;
  tr_jw_kcached(w, "_tls", 4, r->conn, TR_FRAG_HAR_TLS, tls_value, f->conn);
}

/* Appends one entry. */
void tr_har_entry(tr_jw_t *w, tr_flow_t *r, const tr_body_t bodies[2]) {
  const flt_flow_t *f = &r->flow;
  tr_timings_t t;
  char iso[TR_ISO_LEN], id[24];

  tr_timings_of(r, &t);
  tr_iso_time(f->t_start_us, iso, sizeof(iso));
  tr_jw_open(w, NULL, '{');
  tr_jw_str(w, "startedDateTime", iso);
  tr_jw_num(w, "time", t.total);
  har_request(w, r, &bodies[0]);
  har_response(w, r, &bodies[1]);
  tr_jw_lit(w, "cache", "{}");
  har_timings(w, &t);
  add_server_ip(w, f->conn->server_addr);
  {
    char *e = id + sizeof(id), *b = e; /* without snprintf: one per entry */
    unsigned long long v = (unsigned long long)f->conn->id;
    do {
      *--b = (char)('0' + v % 10);
      v /= 10;
    } while (v);
    tr_jw_bytes(w, "connection", b, (size_t)(e - b));
  }
  add_tls(w, r);
  if (f->error) tr_jw_str(w, "_error", f->error);
  if (f->tags[0]) tr_jw_str(w, "_tags", f->tags);
  if (f->actions) tr_jw_actions(w, "_actions", f->actions);
  tr_ws_log_write(w, "_webSocketMessages", r, 0);
  tr_jw_close(w, '}');
}

/* ---- the file ------------------------------------------------------------ */

/* Appends what w holds (entries, each after its ",\n") and the tail at the
 * tail's offset: after it the file is a whole HAR again. */
static int har_append(flt_har_t *har, int entries) {
  struct iovec *iov;
  size_t step = har->jw.len + har->jw.hole_bytes;
  int n = tr_jw_iov(&har->jw, 1, &iov), rc;

  if (n < 0) return ENOMEM;
  iov[n].iov_base = (void *)HAR_TAIL;
  iov[n].iov_len = HAR_TAIL_LEN;
  rc = tr_out_write(&har->out, iov, n + 1, har->tail_off, har->tail_off + (off_t)step);
  if (rc) {
    /* Best effort: put the tail back so the file stays a valid HAR. */
    if (pwrite(har->fd, HAR_TAIL, HAR_TAIL_LEN, har->tail_off) == (ssize_t)HAR_TAIL_LEN &&
        ftruncate(har->fd, har->tail_off + (off_t)HAR_TAIL_LEN) < 0) {
      /* the entry stays cut; the warning that follows says why */
    }
    return rc;
  }
  har->tail_off += (off_t)step;
  har->n_entries += entries;
  return 0;
}

/* Entry `n` of a batch: after the entries already in the file and the n
 * before it in this batch. */
static void har_batch_entry(void *sink, tr_jw_t *w, tr_flow_t *r, const tr_body_t *bodies,
                            int n) {
  flt_har_t *har = sink;
  if (har->n_entries + n)
    tr_jw_raw(w, ",\n", 2);
  else
    tr_jw_raw(w, "\n", 1);
  tr_har_entry(w, r, bodies);
}

static int har_batch_append(void *sink, int n) { return har_append(sink, n); }

static const tr_batch_ops_t har_batch = {har_batch_entry, har_batch_append, "HAR file"};

static int har_write_list(void *sink, tr_job_t *list) {
  flt_har_t *har = sink;
  return tr_jw_write_list(har, &har->jw, list, har->path, &har_batch);
}

static const tr_sink_ops_t har_sink = {
    .write_list = har_write_list,
    .free_job = tr_flow_job_free,
};

/* {"log":{"version":"1.2","creator":{...},"_bodyCap":N,"entries":[ */
char *tr_har_head(const char *creator_version, size_t body_cap) {
  tr_jw_t w;
  char *out;

  tr_jw_init(&w);
  tr_jw_open(&w, NULL, '{');
  tr_jw_open(&w, "log", '{');
  tr_jw_str(&w, "version", "1.2");
  tr_jw_open(&w, "creator", '{');
  tr_jw_str(&w, "name", "tlspeek");
  tr_jw_str(&w, "version", creator_version ? creator_version : "");
  tr_jw_close(&w, '}');
  tr_jw_num(&w, "_bodyCap", (double)body_cap);
  tr_jw_open(&w, "entries", '[');
  tr_jw_raw(&w, "", 1); /* the NUL */
  out = w.oom ? NULL : w.buf;
  if (out == NULL) free(w.buf);
  free(w.holes);
  free(w.iov);
  return out;
}

void *flt_har_new(const char *path, size_t body_cap, const char *creator_version, char *err,
                  size_t errlen) {
  flt_har_t *har = calloc(1, sizeof(*har));
  char *head = NULL;
  int rc;

  if (har == NULL || (head = tr_har_head(creator_version, body_cap)) == NULL) {
    snprintf(err, errlen, "HAR file %s: out of memory", path);
    goto fail;
  }
  har->fd = -1;
  har->rec.slot = -1;
  har->rec.body_cap = body_cap;
  snprintf(har->path, sizeof(har->path), "%s", path);
  har->fd = tr_open("HAR file", path, O_WRONLY | O_TRUNC, 0600, err, errlen);
  if (har->fd < 0) goto fail;
  /* The tail is rewritten in place: a pipe or terminal cannot do that. */
  if (lseek(har->fd, 0, SEEK_END) < 0) {
    snprintf(err, errlen, "HAR file %s: needs a regular file (%s)", path, strerror(errno));
    goto fail;
  }
  if ((rc = tr_write_all(har->fd, head, strlen(head))) != 0 ||
      (rc = tr_write_all(har->fd, HAR_TAIL, HAR_TAIL_LEN)) != 0) {
    snprintf(err, errlen, "cannot write HAR file %s: %s", path, strerror(rc));
    goto fail;
  }
  har->tail_off = (off_t)strlen(head);
  tr_out_init(&har->out, har->fd, har->tail_off + (off_t)HAR_TAIL_LEN);
  har->rec.w = tr_writer_new("HAR file", path, &har_sink, har, err, errlen);
  if (har->rec.w == NULL) {
    tr_out_free(&har->out);
    goto fail;
  }
  free(head);
  return har;
fail:
  if (har && har->fd >= 0) close(har->fd);
  free(head);
  free(har);
  return NULL;
}

void flt_har_set_slot(void *self, int slot) {
  flt_har_t *har = self;
  tr_rec_set_slot(&har->rec, slot);
}

void flt_har_free(void *self) {
  flt_har_t *har = self;

  if (har == NULL) return;
  tr_writer_free(har->rec.w);
  tr_jw_free(&har->jw);
  tr_out_free(&har->out);
  if (close(har->fd) < 0) flt_log_warn("HAR file %s: close: %s", har->path, strerror(errno));
  free(har);
}

const flt_ops_t flt_har_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "har",
    .on_request_head = tr_rec_on_request_head,
    .on_request_body = tr_rec_on_request_body,
    .on_response_head = tr_rec_on_response_head,
    .on_response_body = tr_rec_on_response_body,
    .on_flow_end = tr_rec_on_flow_end,
    .on_conn_close = tr_rec_on_conn_close,
    .on_shutdown = tr_rec_on_shutdown,
    .on_ws_message = tr_rec_on_ws_message,
};
