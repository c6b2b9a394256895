/* intercept_api.c — the flow browser's side of --intercept (web_internal.h):
 * GET /api/intercepts, POST /api/flows/ID/resume and /kill, and the
 * event stream's "intercepts" event. A decision is checked here, strictly
 * (every bad field is a 400 naming it), and handed to the registry
 * (proxy/intercept.h), which wakes the worker holding the flow; the web
 * thread never touches the session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "proxy/intercept.h"
#include "proxy/web/web_internal.h"

#define ICPT_MAX_METHOD 32
#define ICPT_MAX_URL 8192
#define ICPT_MAX_NAME 256
#define ICPT_MAX_HEAD_BYTES (64u * 1024) /* names and values of an edit together */

static int is_token(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
        !((*s | 0x20) >= 'a' && (*s | 0x20) <= 'z'))
      return 0;
  return 1;
}

/* No control bytes but tab (RFC 9110 §5.5). */
static int field_value_ok(const char *s) {
  for (; *s; s++)
    if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f) return 0;
  return 1;
}

static int url_ok(const char *u) {
  if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0) return 0;
  for (; *u; u++)
    if ((unsigned char)*u <= 0x20 || *u == 0x7f) return 0;
  return 1;
}

static int parse_headers(const cJSON *h, px_icpt_decision_t *d, char *err, size_t errlen) {
  size_t n = (size_t)cJSON_GetArraySize(h), bytes = 0, i = 0;
  const cJSON *pair;
  if (!cJSON_IsArray(h)) return snprintf(err, errlen, "headers: give an array of [\"Name\",\"value\"] pairs"), -1;
  if (n > PX_ICPT_MAX_HEADERS)
    return snprintf(err, errlen, "headers: at most %d", PX_ICPT_MAX_HEADERS), -1;
  d->has_headers = 1;
  d->names = calloc(n ? n : 1, sizeof(char *));
  d->values = calloc(n ? n : 1, sizeof(char *));
  if (d->names == NULL || d->values == NULL) return snprintf(err, errlen, "out of memory"), -1;
  cJSON_ArrayForEach(pair, h) {
    const cJSON *nm = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
    if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsString(nm) ||
        !cJSON_IsString(v))
      return snprintf(err, errlen, "headers[%zu]: give [\"Name\",\"value\"]", i), -1;
    if (!is_token(nm->valuestring) || strlen(nm->valuestring) > ICPT_MAX_NAME)
      return snprintf(err, errlen, "headers[%zu]: bad name (a token: letters, digits, -, ...)", i), -1;
    if (!field_value_ok(v->valuestring))
      return snprintf(err, errlen, "headers[%zu] (%s): the value holds a line break or control "
                      "byte", i, nm->valuestring), -1;
    bytes += strlen(nm->valuestring) + strlen(v->valuestring) + 4;
    if (bytes > ICPT_MAX_HEAD_BYTES)
      return snprintf(err, errlen, "headers: more than %u bytes", ICPT_MAX_HEAD_BYTES), -1;
    d->names[i] = strdup(nm->valuestring);
    d->values[i] = strdup(v->valuestring);
    d->n_headers = ++i;
    if (d->names[i - 1] == NULL || d->values[i - 1] == NULL)
      return snprintf(err, errlen, "out of memory"), -1;
  }
  return 0;
}

/* The edits of POST /api/flows/ID/resume (an empty body: none). */
static int parse_decision(const px_web_req_t *req, px_icpt_decision_t *d, char *err,
                          size_t errlen) {
  int rc = -1;
  if (req->body.len == 0) return 0;
  cJSON *j = cJSON_ParseWithLength(req->body.data, req->body.len), *f;
  if (!cJSON_IsObject(j)) {
    snprintf(err, errlen, "the body must be a JSON object: {\"method\",\"url\",\"headers\":"
             "[[name,value]...],\"body\"} (a response: \"status\" for method and url), each "
             "optional");
    goto Exit;
  }
  cJSON_ArrayForEach(f, j) {
    const char *k = f->string;
    if (strcmp(k, "method") == 0) {
      if (!cJSON_IsString(f) || !is_token(f->valuestring) || strlen(f->valuestring) > ICPT_MAX_METHOD) {
        snprintf(err, errlen, "method: give a method name such as \"POST\" (a token of at most %d "
                 "characters)", ICPT_MAX_METHOD);
        goto Exit;
      }
      d->method = strdup(f->valuestring);
    } else if (strcmp(k, "url") == 0) {
      if (!cJSON_IsString(f) || strlen(f->valuestring) > ICPT_MAX_URL || !url_ok(f->valuestring)) {
        snprintf(err, errlen, "url: give an absolute http:// or https:// URL without spaces or "
                 "control bytes");
        goto Exit;
      }
      d->url = strdup(f->valuestring);
    } else if (strcmp(k, "status") == 0) {
      if (!cJSON_IsNumber(f) || f->valuedouble != (double)(int)f->valuedouble ||
          f->valueint < 200 || f->valueint > 599) {
        snprintf(err, errlen, "status: give a number from 200 to 599");
        goto Exit;
      }
      d->status = f->valueint;
    } else if (strcmp(k, "headers") == 0) {
      if (parse_headers(f, d, err, errlen) < 0) goto Exit;
    } else if (strcmp(k, "body") == 0) {
      if (!cJSON_IsString(f)) {
        snprintf(err, errlen, "body: give a string");
        goto Exit;
      }
      d->has_body = 1;
      d->body_len = strlen(f->valuestring);
      d->body = strdup(f->valuestring);
    } else {
      snprintf(err, errlen, "unknown field \"%.40s\": give method, url, status, headers or body",
               k);
      goto Exit;
    }
  }
  rc = 0;
Exit:
  cJSON_Delete(j);
  return rc;
}

static void answer_error(px_web_resp_t *p, int status, const char *msg) {
  px_web_resp_error(p, status, msg);
}

/* POST /api/flows/ID/resume | /kill */
static void decide(px_web_ctx_t *ctx, const px_web_req_t *req, uint64_t id, int kill,
                   px_web_resp_t *p) {
  char err[400];
  px_icpt_decision_t d;
  memset(&d, 0, sizeof(d));
  if (!kill && parse_decision(req, &d, err, sizeof(err)) < 0) {
    px_icpt_decision_free(&d);
    answer_error(p, 400, err);
    return;
  }
  uint64_t flow = ctx->o.file ? 0 : flt_web_store_flow_id(ctx->o.store, id);
  if (flow == 0) {
    px_icpt_decision_free(&d);
    if (ctx->o.file)
      answer_error(p, 409, "intercept needs the live proxy: this page shows a transcript");
    else
      answer_error(p, 404, "no such flow (dropped or never seen)");
    return;
  }
  d.verdict = kill ? PX_ICPT_KILL : PX_ICPT_RESUME;
  int rc = px_icpt_decide(flow, &d, err, sizeof(err));
  if (rc == -1) {
    answer_error(p, 409, err);
  } else if (rc < 0) {
    answer_error(p, 400, err);
  } else {
    char ok[80];
    int n = snprintf(ok, sizeof(ok), "{\"ok\":true,\"id\":%llu}", (unsigned long long)id);
    px_web_resp_json(p, 200, ok, (size_t)n);
  }
}

/* Text the page can edit: UTF-8 without NUL. */
static int editable_text(const char *p, size_t n) {
  const unsigned char *u = (const unsigned char *)p;
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (c == 0 || k < 0 || i + (size_t)k >= n) return 0;
    for (int j = 1; j <= k; j++)
      if ((u[i + (size_t)j] & 0xC0) != 0x80) return 0;
    i += (size_t)k + 1;
  }
  return 1;
}

/* The forwarded head ("M T HTTP/1.1\r\nName: value\r\n...") into j. */
static void head_json(cJSON *j, const char *head, const char *origin) {
  size_t ml = strcspn(head, " \r\n"), tl = head[ml] == ' ' ? strcspn(head + ml + 1, " \r\n") : 0;
  char *m = strndup(head, ml), *t = head[ml] == ' ' ? strndup(head + ml + 1, tl) : strdup("");
  int response = strncmp(head, "HTTP/", 5) == 0;
  cJSON_AddStringToObject(j, "side", response ? "response" : "request");
  if (response) { /* "HTTP/1.1 200 OK" */
    const char *reason = head + ml + (head[ml] == ' ') + tl;
    if (*reason == ' ') reason++;
    char *r = strndup(reason, strcspn(reason, "\r\n"));
    cJSON_AddNumberToObject(j, "status", t ? atoi(t) : 0);
    cJSON_AddStringToObject(j, "reason", r ? r : "");
    free(r);
  } else { /* "METHOD TARGET HTTP/1.1": the URL from an origin-form target */
    cJSON_AddStringToObject(j, "method", m ? m : "");
    size_t n = strlen(origin) + (t ? strlen(t) : 0) + 1;
    char *u = t && t[0] == '/' ? malloc(n) : NULL;
    if (u) snprintf(u, n, "%s%s", origin, t);
    cJSON_AddStringToObject(j, "url", u ? u : t ? t : "");
    free(u);
  }
  free(m);
  free(t);
  cJSON *hs = cJSON_AddArrayToObject(j, "headers");
  for (const char *p = strstr(head, "\r\n"); p && p[2] && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
    const char *line = p + 2, *end = strstr(line, "\r\n"), *colon = strchr(line, ':');
    if (end == NULL || colon == NULL || colon > end) continue;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    char *n = strndup(line, (size_t)(colon - line)), *val = strndup(v, (size_t)(end - v));
    cJSON *pair = cJSON_CreateArray();
    cJSON_AddItemToArray(pair, cJSON_CreateString(n ? n : ""));
    cJSON_AddItemToArray(pair, cJSON_CreateString(val ? val : ""));
    cJSON_AddItemToArray(hs, pair);
    free(n);
    free(val);
  }
}

/* GET /api/flows/ID/intercept: what the editor starts from. */
static void held_message(px_web_ctx_t *ctx, uint64_t id, px_web_resp_t *p) {
  static const char *const states[] = {"pending", "complete", "too_large", "chunked"};
  char *head, *body, origin[300];
  size_t blen;
  px_icpt_body_t st;
  uint64_t flow = flt_web_store_flow_id(ctx->o.store, id);
  if (flow == 0 || px_icpt_message(flow, &head, &body, &blen, &st, origin) < 0) {
    answer_error(p, flow ? 409 : 404, flow ? "this flow is not waiting" : "no such flow");
    return;
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "id", (double)id);
  cJSON_AddNumberToObject(j, "flow", (double)flow);
  head_json(j, head, origin);
  int text = body && editable_text(body, blen);
  if (text) cJSON_AddStringToObject(j, "body", body);
  else cJSON_AddNullToObject(j, "body");
  cJSON_AddStringToObject(j, "body_state", body && !text ? "binary" : states[st]);
  char *out = cJSON_PrintUnformatted(j);
  if (out) px_web_resp_json(p, 200, out, strlen(out));
  else answer_error(p, 500, "out of memory");
  free(out);
  cJSON_Delete(j);
  free(head);
  free(body);
}

static uint64_t list_id(void *ud, uint64_t flow) {
  return flt_web_store_list_id(ud, flow);
}

int px_web_icpt_route(px_web_ctx_t *ctx, const px_web_req_t *req, const char *path, int post,
                      px_web_resp_t *p) {
  if (strcmp(path, "/api/intercepts") == 0) {
    if (post) {
      answer_error(p, 405, "use GET");
      flt_strbuf_append(&p->head, "Allow: GET\r\n", 12);
      return 1;
    }
    flt_strbuf_t b;
    flt_strbuf_init(&b, 0);
    flt_strbuf_append(&b, "{\"waiting\":[", 12);
    px_icpt_json(&b, list_id, ctx->o.store);
    flt_strbuf_append(&b, "]}", 2);
    px_web_resp_json(p, 200, b.data ? b.data : "{\"waiting\":[]}", b.data ? b.len : 14);
    flt_strbuf_free(&b);
    return 1;
  }
  if (strncmp(path, "/api/flows/", 11) != 0) return 0;
  char *end;
  uint64_t id = strtoull(path + 11, &end, 10);
  int kill = strcmp(end, "/kill") == 0;
  if (end != path + 11 && strcmp(end, "/intercept") == 0) {
    if (post) {
      answer_error(p, 405, "use GET");
      flt_strbuf_append(&p->head, "Allow: GET\r\n", 12);
    } else {
      held_message(ctx, id, p);
    }
    return 1;
  }
  if (end == path + 11 || (!kill && strcmp(end, "/resume") != 0)) return 0;
  if (!post) {
    answer_error(p, 405, "use POST");
    flt_strbuf_append(&p->head, "Allow: POST\r\n", 13);
    return 1;
  }
  decide(ctx, req, id, kill, p);
  return 1;
}

void px_web_icpt_events(px_web_ctx_t *ctx, uint64_t *generation, flt_strbuf_t *out) {
  uint64_t g = px_icpt_generation();
  if (g == *generation || ctx->o.file) return;
  *generation = g;
  flt_strbuf_append(out, "event: intercepts\ndata: [", 25);
  px_icpt_json(out, list_id, ctx->o.store);
  flt_strbuf_append(out, "]\n\n", 3);
}
