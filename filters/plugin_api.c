/* plugin_api.c — the calls of filter ABI 2 (filter.h) through which a
 * plugin asks the core to act: each goes through the table the core put
 * in the flow or the connection, so filters/ never links to proxy/. */
#include "filters/filter.h"

int flt_flow_set_header(flt_flow_t *f, flt_dir_t dir, const char *name, const char *value) {
  if (f == NULL || f->core == NULL || name == NULL || value == NULL) return -1;
  return f->core->set_header(f, dir, name, value);
}

int flt_flow_remove_header(flt_flow_t *f, flt_dir_t dir, const char *name) {
  if (f == NULL || f->core == NULL || name == NULL) return -1;
  return f->core->set_header(f, dir, name, NULL);
}

int flt_flow_want_body(flt_flow_t *f, flt_dir_t dir) {
  if (f == NULL || f->core == NULL) return -1;
  return f->core->want_body(f, dir);
}

int flt_flow_replace_body(flt_flow_t *f, flt_dir_t dir, const uint8_t *data, size_t len) {
  if (f == NULL || f->core == NULL || (data == NULL && len > 0)) return -1;
  return f->core->replace_body(f, dir, data, len);
}

int flt_flow_answer(flt_flow_t *f, int status, const char *content_type, const uint8_t *body,
                    size_t len) {
  if (f == NULL || f->core == NULL || status < 200 || status > 599 || (body == NULL && len > 0))
    return -1;
  return f->core->answer(f, status, content_type, body, len);
}

int flt_conn_passthrough(flt_conn_t *c) {
  if (c == NULL || c->core == NULL) return -1;
  return c->core->passthrough(c);
}
