/* json_field.c — an example tlspeek plugin (filter ABI 2) that rewrites a
 * field of JSON responses: every member named FIELD, at any depth, gets
 * the value VALUE (parsed as JSON; anything that is not JSON is taken as
 * a string).
 *
 *   make examples
 *   ./tlspeek --load build/examples/json_field.so:admin=true
 *
 * It asks for the whole body of responses whose Content-Type says JSON
 * (flt_flow_want_body in on_response_head); tlspeek holds the head,
 * buffers and decodes the body (up to --body-cap) and hands it to
 * on_body_complete, where the plugin gives the rewritten document back
 * (flt_flow_replace_body). tlspeek sends it identity-encoded with a
 * Content-Length; the console line says what changed:
 *     ↳ json-field: "admin" set to true (1 place)
 *     ↳ replaced: response body by a plugin (gzip decoded, sent identity, ...) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "filters/filter.h"

typedef struct json_field {
  char field[128];
  char value_text[256];
  cJSON *value; /* never changed after create: shared by every thread */
} json_field_t;

static void on_response_head(void *self, flt_flow_t *f) {
  (void)self;
  const flt_header_t *ct = flt_head_find(&f->resp, "content-type");
  if (ct == NULL) return;
  for (size_t i = 0; i + 4 <= ct->value_len; i++)
    if (strncasecmp(ct->value + i, "json", 4) == 0) {
      flt_flow_want_body(f, FLT_DIR_RESPONSE);
      return;
    }
}

/* Replaces every member named `field` under `node`; returns how many. */
static int set_field(cJSON *node, const json_field_t *j) {
  int n = 0;
  for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
    if (c->string && strcmp(c->string, j->field) == 0) {
      cJSON *v = cJSON_Duplicate(j->value, 1);
      if (v) v->string = strdup(c->string); /* freed with the item (cJSON's default hooks) */
      if (v && v->string && cJSON_ReplaceItemViaPointer(node, c, v)) {
        c = v;
        n++;
      } else {
        cJSON_Delete(v);
      }
      continue; /* the new value is not searched */
    }
    n += set_field(c, j);
  }
  return n;
}

static void on_body_complete(void *self, flt_flow_t *f, flt_dir_t dir, const uint8_t *data,
                             size_t len) {
  json_field_t *j = self;
  if (dir != FLT_DIR_RESPONSE) return;
  cJSON *doc = cJSON_ParseWithLength((const char *)data, len);
  if (doc == NULL) return; /* not JSON after all: left as it is */
  int n = set_field(doc, j);
  char *text = n > 0 ? cJSON_PrintUnformatted(doc) : NULL;
  if (text && flt_flow_replace_body(f, dir, (const uint8_t *)text, strlen(text)) == 0)
    flt_flow_action(f, "json-field", "\"%s\" set to %s (%d place%s)", j->field, j->value_text, n,
                    n == 1 ? "" : "s");
  free(text);
  cJSON_Delete(doc);
}

static const flt_ops_t ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "json_field",
    .on_response_head = on_response_head,
    .on_body_complete = on_body_complete,
};

static void *create(const char *arg, int slot, char *err, size_t errlen) {
  (void)slot;
  const char *eq = arg ? strchr(arg, '=') : NULL;
  if (eq == NULL || eq == arg || (size_t)(eq - arg) >= sizeof(((json_field_t *)0)->field)) {
    snprintf(err, errlen, "use --load json_field.so:FIELD=VALUE (e.g. admin=true)");
    return NULL;
  }
  json_field_t *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(j->field, sizeof(j->field), "%.*s", (int)(eq - arg), arg);
  j->value = cJSON_Parse(eq + 1);
  if (j->value == NULL) j->value = cJSON_CreateString(eq + 1); /* not JSON: a string */
  char *shown = j->value ? cJSON_PrintUnformatted(j->value) : NULL;
  snprintf(j->value_text, sizeof(j->value_text), "%s", shown ? shown : "?");
  free(shown);
  if (j->value == NULL) {
    snprintf(err, errlen, "out of memory");
    free(j);
    return NULL;
  }
  return j;
}

static void destroy(void *self) {
  json_field_t *j = self;
  cJSON_Delete(j->value);
  free(j);
}

const flt_plugin_t tlspeek_plugin = {
    .abi_version = FLT_ABI_VERSION,
    .name = "json_field",
    .description = "sets a field of JSON responses (filter ABI 2)",
    .ops = &ops,
    .create = create,
    .destroy = destroy,
};
