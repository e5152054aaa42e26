/* error.c -- the project-wide status table and the first-error-wins error struct. */
#include "schema.h"

#include <stdio.h>
#include <string.h>

struct status_row {
    sl_status status;
    const char *name;
    int http;
    const char *title;
};

static const struct status_row status_rows[] = {
#define SL__STATUS_ROW(name, value, http, title) {name, #name, http, title},
    SL_STATUS_MAP(SL__STATUS_ROW)
#undef SL__STATUS_ROW
};

static const struct status_row *status_find(sl_status s)
{
    for (size_t i = 0; i < sizeof status_rows / sizeof status_rows[0]; i++)
        if (status_rows[i].status == s)
            return &status_rows[i];
    return NULL;
}

const char *sl_status_name(sl_status s)
{
    const struct status_row *r = status_find(s);
    return r ? r->name : "SL_EINTERNAL";
}

int sl_status_http(sl_status s)
{
    const struct status_row *r = status_find(s);
    return r ? r->http : 500;
}

const char *sl_status_title(sl_status s)
{
    const struct status_row *r = status_find(s);
    return r ? r->title : "internal error";
}

void sl_error_clear(sl_error *err)
{
    if (!err)
        return;
    err->status = SL_OK;
    err->offset = -1;
    err->field[0] = '\0';
    err->message[0] = '\0';
}

sl_status sl_error_vset_at(sl_error *err, sl_status s, const char *field, int64_t offset,
                           const char *fmt, va_list ap)
{
    if (!err || err->status != SL_OK || s == SL_OK)
        return s;
    err->status = s;
    err->offset = offset;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return s;
}

sl_status sl_error_set_at(sl_error *err, sl_status s, const char *field, int64_t offset,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_error_vset_at(err, s, field, offset, fmt, ap);
    va_end(ap);
    return s;
}

sl_status sl_error_set(sl_error *err, sl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_error_vset_at(err, s, NULL, -1, fmt, ap);
    va_end(ap);
    return s;
}

void sl_error_prefix(sl_error *err, const char *fmt, ...)
{
    if (!err || err->status == SL_OK)
        return;
    char buf[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t used = strlen(buf); /* the prefix, possibly cut */
    memcpy(buf + used, ": ", 3);
    used += 2;
    size_t room = sizeof buf - 1 - used, old = strlen(err->message);
    memcpy(buf + used, err->message, old < room ? old : room); /* truncation is fine here */
    buf[used + (old < room ? old : room)] = '\0';
    memcpy(err->message, buf, sizeof buf);
}
