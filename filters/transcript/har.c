/* har.c — the HAR 1.2 transcript (transcript.h; README.md, "Transcripts").
 *
 * Crash safety: the file always ends with the tail "\n]}}\n". An entry is
 * one pwritev(2) at the tail's offset of ",\n" (nothing before the first
 * entry), the entry, and the tail again, so after every completed write
 * the file is a whole HAR document, even if the process is then killed.
 * The write is done on the writer thread (one per file), as soon as the
 * flow ends: nothing waits in user space.
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
  tr_behind_t behind; /* never past tail_off: the tail is rewritten */
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

/* Adds {"name","value"} pairs of "a=1&b=2" (decoded) to arr. */
static void add_form_pairs(cJSON *arr, const char *s, size_t n) {
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
      cJSON *o = cJSON_CreateObject();
      form_decode(s + start, eq - start, &name);
      form_decode(s + eq + (eq < i), i - eq - (eq < i), &value);
      if (o && cJSON_AddItemToArray(arr, o)) {
        tr_json_add_bytes(o, "name", name.data, name.len);
        tr_json_add_bytes(o, "value", value.data, value.len);
      } else {
        cJSON_Delete(o);
      }
    }
    i++; /* past '&' */
  }
  flt_strbuf_free(&name);
  flt_strbuf_free(&value);
}

static cJSON *query_string(const char *url) {
  cJSON *arr = cJSON_CreateArray();
  const char *q = url ? strchr(url, '?') : NULL;

  if (arr && q) {
    q++;
    add_form_pairs(arr, q, strcspn(q, "#"));
  }
  return arr;
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

/* {"name","value"} from "name=value"; NULL for an empty part. */
static cJSON *cookie_pair(const char *s, size_t n) {
  const char *eq = memchr(s, '=', n);
  size_t nlen = eq ? (size_t)(eq - s) : n;
  cJSON *o;

  if (n == 0 || (o = cJSON_CreateObject()) == NULL) return NULL;
  tr_json_add_bytes(o, "name", s, nlen);
  tr_json_add_bytes(o, "value", eq ? eq + 1 : "", eq ? n - nlen - 1 : 0);
  return o;
}

static void add_item(cJSON *arr, cJSON *item) {
  if (item && !cJSON_AddItemToArray(arr, item)) cJSON_Delete(item);
}

static cJSON *request_cookies(const flt_head_t *h) {
  cJSON *arr = cJSON_CreateArray();

  for (size_t i = 0; arr && i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    const char *p = hd->value, *end = hd->value + hd->value_len, *s;
    size_t n;
    if (hd->name_len != 6 || strncasecmp(hd->name, "Cookie", 6) != 0) continue;
    while (next_part(&p, end, &s, &n))
      add_item(arr, cookie_pair(s, n));
  }
  return arr;
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
static cJSON *set_cookie(const char *v, size_t len) {
  const char *p = v, *end = v + len, *s;
  size_t n;
  cJSON *o;

  if (!next_part(&p, end, &s, &n) || (o = cookie_pair(s, n)) == NULL) return NULL;
  while (next_part(&p, end, &s, &n)) {
    const char *eq = memchr(s, '=', n);
    size_t klen = eq ? (size_t)(eq - s) : n, vlen = eq ? n - klen - 1 : 0;
    const char *val = eq ? eq + 1 : "";
    char iso[TR_ISO_LEN];
    if (klen == 4 && strncasecmp(s, "path", 4) == 0) {
      tr_json_add_bytes(o, "path", val, vlen);
    } else if (klen == 6 && strncasecmp(s, "domain", 6) == 0) {
      tr_json_add_bytes(o, "domain", val, vlen);
    } else if (klen == 7 && strncasecmp(s, "expires", 7) == 0) {
      if (cookie_expires(val, vlen, iso, sizeof(iso))) tr_json_add_str(o, "expires", iso);
    } else if (klen == 8 && strncasecmp(s, "httponly", 8) == 0) {
      cJSON_AddTrueToObject(o, "httpOnly");
    } else if (klen == 6 && strncasecmp(s, "secure", 6) == 0) {
      cJSON_AddTrueToObject(o, "secure");
    } else if (klen == 8 && strncasecmp(s, "samesite", 8) == 0) {
      tr_json_add_bytes(o, "sameSite", val, vlen);
    }
  }
  return o;
}

static cJSON *response_cookies(const flt_head_t *h) {
  cJSON *arr = cJSON_CreateArray();

  for (size_t i = 0; arr && i < h->n_headers; i++) {
    const flt_header_t *hd = &h->headers[i];
    if (hd->name_len == 10 && strncasecmp(hd->name, "Set-Cookie", 10) == 0)
      add_item(arr, set_cookie(hd->value, hd->value_len));
  }
  return arr;
}

static void add_header_value(cJSON *o, const char *key, const flt_head_t *h, const char *name) {
  const flt_header_t *hd = flt_head_find(h, name);
  tr_json_add_bytes(o, key, hd ? hd->value : "", hd ? hd->value_len : 0);
}

static double size_or_unknown(size_t n) {
  return n > 0 ? (double)n : -1;
}

/* ---- the entry ---------------------------------------------------------- */

/* The body text itself is spliced in when the entry is written. */
static void add_body_text(cJSON *o, const tr_body_t *b, flt_dir_t dir) {
  cJSON_AddItemToObject(o, "text", tr_json_body_ref(dir));
  if (b->base64) cJSON_AddStringToObject(o, "encoding", "base64");
  if (b->decode_error) tr_json_add_str(o, "_decodeError", b->decode_error);
}

static int is_form(const flt_head_t *h) {
  const flt_header_t *ct = flt_head_find(h, "Content-Type");
  static const char form[] = "application/x-www-form-urlencoded";
  return ct && ct->value_len >= sizeof(form) - 1 &&
         strncasecmp(ct->value, form, sizeof(form) - 1) == 0;
}

static cJSON *har_request(tr_flow_t *r, const tr_body_t *body) {
  const flt_flow_t *f = &r->flow;
  cJSON *o = cJSON_CreateObject();
  char ver[16];

  if (o == NULL) return NULL;
  tr_http_version(&f->req, ver, sizeof(ver));
  tr_json_add_str(o, "method", f->req.method);
  tr_json_add_str(o, "url", f->url);
  cJSON_AddStringToObject(o, "httpVersion", ver);
  cJSON_AddItemToObject(o, "cookies", request_cookies(&f->req));
  cJSON_AddItemToObject(o, "headers", tr_json_headers(&f->req));
  cJSON_AddItemToObject(o, "queryString", query_string(f->url));
  if (f->req_body_bytes > 0 || body->truncated) {
    cJSON *pd = cJSON_AddObjectToObject(o, "postData");
    if (pd) {
      add_header_value(pd, "mimeType", &f->req, "Content-Type");
      add_body_text(pd, body, FLT_DIR_REQUEST);
      if (is_form(&f->req) && !body->base64 && !body->decode_error) {
        cJSON *params = cJSON_AddArrayToObject(pd, "params");
        if (params) add_form_pairs(params, body->text, body->len);
      }
    }
  }
  cJSON_AddNumberToObject(o, "headersSize", size_or_unknown(f->req.head_bytes));
  cJSON_AddNumberToObject(o, "bodySize", (double)f->req_body_bytes);
  if (body->truncated) cJSON_AddTrueToObject(o, "_bodyTruncated");
  return o;
}

static cJSON *har_content(const flt_flow_t *f, const tr_body_t *body) {
  cJSON *c = cJSON_CreateObject();

  if (c == NULL) return NULL;
  cJSON_AddNumberToObject(c, "size", (double)body->size);
  if (body->decoded && !body->truncated && body->size >= f->resp_body_bytes)
    cJSON_AddNumberToObject(c, "compression", (double)(body->size - f->resp_body_bytes));
  add_header_value(c, "mimeType", &f->resp, "Content-Type");
  if (f->has_response) add_body_text(c, body, FLT_DIR_RESPONSE);
  return c;
}

static cJSON *har_response(tr_flow_t *r, const tr_body_t *body) {
  const flt_flow_t *f = &r->flow;
  flt_head_t none = {0};
  const flt_head_t *h = f->has_response ? &f->resp : &none;
  cJSON *o = cJSON_CreateObject();
  char ver[16];

  if (o == NULL) return NULL;
  tr_http_version(h, ver, sizeof(ver));
  cJSON_AddNumberToObject(o, "status", f->has_response ? h->status : 0);
  tr_json_add_str(o, "statusText", h->reason ? h->reason : "");
  cJSON_AddStringToObject(o, "httpVersion", ver);
  cJSON_AddItemToObject(o, "cookies", response_cookies(h));
  cJSON_AddItemToObject(o, "headers", tr_json_headers(h));
  cJSON_AddItemToObject(o, "content", har_content(f, body));
  add_header_value(o, "redirectURL", h, "Location");
  cJSON_AddNumberToObject(o, "headersSize", size_or_unknown(h->head_bytes));
  cJSON_AddNumberToObject(o, "bodySize", f->has_response ? (double)f->resp_body_bytes : -1);
  if (f->has_response && body->truncated) cJSON_AddTrueToObject(o, "_bodyTruncated");
  if (r->n_interim > 0) cJSON_AddItemToObject(o, "_interimResponses", tr_json_interim(r));
  return o;
}

static void har_timings(cJSON *entry, const tr_timings_t *t) {
  cJSON *o = cJSON_AddObjectToObject(entry, "timings");

  if (o == NULL) return;
  cJSON_AddNumberToObject(o, "blocked", -1);
  cJSON_AddNumberToObject(o, "dns", t->dns);
  cJSON_AddNumberToObject(o, "connect", t->connect);
  cJSON_AddNumberToObject(o, "ssl", t->ssl);
  cJSON_AddNumberToObject(o, "send", t->send);
  cJSON_AddNumberToObject(o, "wait", t->wait);
  cJSON_AddNumberToObject(o, "receive", t->receive);
}

/* "1.2.3.4" of "1.2.3.4:443", "::1" of "[::1]:443". */
static void add_server_ip(cJSON *entry, const char *addr) {
  const char *colon = strrchr(addr, ':');

  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (close) tr_json_add_bytes(entry, "serverIPAddress", addr + 1, (size_t)(close - addr - 1));
  } else if (colon) {
    tr_json_add_bytes(entry, "serverIPAddress", addr, (size_t)(colon - addr));
  }
}

static void add_tls(cJSON *entry, const flt_flow_t *f) {
  const flt_conn_t *c = f->conn;
  cJSON *o;

  if (!c->client_tls && strcmp(f->scheme, "https") != 0) return;
  o = cJSON_AddObjectToObject(entry, "_tls");
  if (o == NULL) return;
  tr_json_add_str(o, "version", c->tls_version);
  tr_json_add_str(o, "cipher", c->cipher);
  tr_json_add_str(o, "sni", c->sni);
  tr_json_add_str(o, "alpn", c->alpn);
  tr_json_add_str(o, "ja3", c->ja3);
  tr_json_add_str(o, "ja4", c->ja4);
  if (c->up_tls_version[0]) {
    cJSON *up = cJSON_AddObjectToObject(o, "upstream");
    if (up == NULL) return;
    tr_json_add_str(up, "version", c->up_tls_version);
    tr_json_add_str(up, "cipher", c->up_cipher);
    tr_json_add_str(up, "alpn", c->up_alpn);
    tr_json_add_str(up, "verify", c->up_verify);
  }
}

/* Builds one entry, without the bodies' text (tr_json_splice adds it). */
static cJSON *har_entry(tr_flow_t *r, const tr_body_t bodies[2]) {
  const flt_flow_t *f = &r->flow;
  cJSON *e = cJSON_CreateObject();
  tr_timings_t t;
  char iso[TR_ISO_LEN], id[24];

  if (e == NULL) return NULL;
  tr_timings_of(r, &t);
  tr_iso_time(f->t_start_us, iso, sizeof(iso));
  cJSON_AddStringToObject(e, "startedDateTime", iso);
  cJSON_AddNumberToObject(e, "time", t.total);
  cJSON_AddItemToObject(e, "request", har_request(r, &bodies[0]));
  cJSON_AddItemToObject(e, "response", har_response(r, &bodies[1]));
  cJSON_AddObjectToObject(e, "cache");
  har_timings(e, &t);
  add_server_ip(e, f->conn->server_addr);
  snprintf(id, sizeof(id), "%llu", (unsigned long long)f->conn->id);
  cJSON_AddStringToObject(e, "connection", id);
  add_tls(e, f);
  if (f->error) tr_json_add_str(e, "_error", f->error);
  if (f->tags[0]) tr_json_add_str(e, "_tags", f->tags);
  return e;
}

/* ---- the file ------------------------------------------------------------ */

/* Appends an entry given as iovecs (tr_json_splice) in one pwritev(2). */
static int har_append(flt_har_t *har, const struct iovec *entry, int n) {
  struct iovec iov[TR_SPLICE_IOV + 2];
  size_t step;
  int rc;

  iov[0].iov_base = (void *)(har->n_entries ? ",\n" : "\n");
  iov[0].iov_len = har->n_entries ? 2 : 1;
  step = iov[0].iov_len;
  for (int i = 0; i < n; i++) {
    iov[1 + i] = entry[i];
    step += entry[i].iov_len;
  }
  iov[1 + n].iov_base = (void *)HAR_TAIL;
  iov[1 + n].iov_len = HAR_TAIL_LEN;
  rc = tr_writev_all(har->fd, iov, n + 2, har->tail_off);
  if (rc) {
    /* Best effort: put the tail back so the file stays a valid HAR. */
    if (pwrite(har->fd, HAR_TAIL, HAR_TAIL_LEN, har->tail_off) == (ssize_t)HAR_TAIL_LEN &&
        ftruncate(har->fd, har->tail_off + (off_t)HAR_TAIL_LEN) < 0) {
      /* the entry stays cut; the warning that follows says why */
    }
    return rc;
  }
  har->tail_off += (off_t)step;
  har->n_entries++;
  tr_behind_advance(&har->behind, har->fd, har->tail_off);
  return 0;
}

static int har_write(void *sink, tr_job_t *job) {
  flt_har_t *har = sink;
  tr_flow_t *r = ((tr_flow_job_t *)job)->rec;
  const tr_body_t *bodies;
  struct iovec iov[TR_SPLICE_IOV];
  cJSON *entry = NULL;
  char *text = NULL;
  int rc = 0;

  if (tr_flow_bodies(r, &bodies) == 0 && (entry = har_entry(r, bodies)) != NULL)
    text = cJSON_PrintUnformatted(entry);
  if (text)
    rc = har_append(har, iov, tr_json_splice(text, strlen(text), bodies, iov));
  else
    flt_log_error("HAR file %s: out of memory; flow %llu not recorded", har->path,
                  (unsigned long long)r->flow.id);
  free(text);
  cJSON_Delete(entry);
  return rc;
}

static const tr_sink_ops_t har_sink = {
    .write = har_write,
    .free_job = tr_flow_job_free,
};

/* {"log":{"version":"1.2","creator":{...},"_bodyCap":N,"entries":[ */
static char *har_head(const char *creator_version, size_t body_cap) {
  cJSON *log = cJSON_CreateObject(), *creator;
  char *text = NULL, *out = NULL;
  size_t len;

  if (log == NULL) return NULL;
  cJSON_AddStringToObject(log, "version", "1.2");
  creator = cJSON_AddObjectToObject(log, "creator");
  if (creator) {
    cJSON_AddStringToObject(creator, "name", "tlspeek");
    tr_json_add_str(creator, "version", creator_version ? creator_version : "");
  }
  cJSON_AddNumberToObject(log, "_bodyCap", (double)body_cap);
  text = cJSON_PrintUnformatted(log);
  cJSON_Delete(log);
  if (text == NULL) return NULL;
  len = strlen(text); /* "{...}": drop the '}' and open "entries" */
  out = malloc(len + 32);
  if (out) snprintf(out, len + 32, "{\"log\":%.*s,\"entries\":[", (int)(len - 1), text);
  free(text);
  return out;
}

void *flt_har_new(const char *path, size_t body_cap, const char *creator_version, char *err,
                  size_t errlen) {
  flt_har_t *har = calloc(1, sizeof(*har));
  char *head = NULL;
  int rc;

  if (har == NULL || (head = har_head(creator_version, body_cap)) == NULL) {
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
  tr_behind_init(&har->behind, har->fd, har->tail_off);
  har->rec.w = tr_writer_new("HAR file", path, &har_sink, har, err, errlen);
  if (har->rec.w == NULL) goto fail;
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
};
