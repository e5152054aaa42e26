/* keys.c -- partition, sort and index keys of the single-table design.
 * Every component is validated before it is placed, so a key's '#'
 * separators are always ours.  Numbers are zero-padded so that string order
 * is numeric order. */
#include "schema.h"

#include <stdio.h>
#include <string.h>

/* Writes a formatted key; the components were validated by the caller.
 * Cannot overflow: components are <= 128 bytes and no key has more than four. */
static sl_status key_printf(schema_key out, sl_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static sl_status key_printf(schema_key out, sl_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, SCHEMA_KEY_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= SCHEMA_KEY_MAX) {
        out[0] = '\0';
        return sl_error_set(err, SL_EINTERNAL, "key longer than %d bytes", SCHEMA_KEY_MAX - 1);
    }
    return SL_OK;
}

/* Validates up to four components (NULL-terminated list of what/value pairs). */
static sl_status check(schema_key out, sl_error *err, const char *w1, const char *v1,
                       const char *w2, const char *v2, const char *w3, const char *v3,
                       const char *w4, const char *v4)
{
    out[0] = '\0';
    if (w1 && schema_component_check(w1, v1, err) != SL_OK)
        return err ? err->status : SL_EINVAL;
    if (w2 && schema_component_check(w2, v2, err) != SL_OK)
        return err ? err->status : SL_EINVAL;
    if (w3 && schema_component_check(w3, v3, err) != SL_OK)
        return err ? err->status : SL_EINVAL;
    if (w4 && schema_component_check(w4, v4, err) != SL_OK)
        return err ? err->status : SL_EINVAL;
    return SL_OK;
}

#define CHECK1(a, va)                      check(out, err, a, va, NULL, NULL, NULL, NULL, NULL, NULL)
#define CHECK2(a, va, b, vb)               check(out, err, a, va, b, vb, NULL, NULL, NULL, NULL)
#define CHECK3(a, va, b, vb, c, vc)        check(out, err, a, va, b, vb, c, vc, NULL, NULL)
#define CHECK4(a, va, b, vb, c, vc, d, vd) check(out, err, a, va, b, vb, c, vc, d, vd)

sl_status schema_pk_tenant(schema_key out, const char *tenant, sl_error *err)
{
    sl_status rc = CHECK1("tenant", tenant);
    return rc ? rc : key_printf(out, err, "T#%s", tenant);
}

sl_status schema_pk_catalog(schema_key out, const char *tenant, sl_error *err)
{
    sl_status rc = CHECK1("tenant", tenant);
    return rc ? rc : key_printf(out, err, "T#%s#CATALOG", tenant);
}

sl_status schema_pk_surgery(schema_key out, const char *tenant, const char *surgery, sl_error *err)
{
    sl_status rc = CHECK2("tenant", tenant, "surgery id", surgery);
    return rc ? rc : key_printf(out, err, "T#%s#SURGERY#%s", tenant, surgery);
}

sl_status schema_pk_asset(schema_key out, const char *tenant, const char *asset, sl_error *err)
{
    sl_status rc = CHECK2("tenant", tenant, "asset id", asset);
    return rc ? rc : key_printf(out, err, "T#%s#ASSET#%s", tenant, asset);
}

sl_status schema_pk_assets_index(schema_key out, const char *tenant, sl_error *err)
{
    sl_status rc = CHECK1("tenant", tenant);
    return rc ? rc : key_printf(out, err, "T#%s#ASSETS", tenant);
}

sl_status schema_pk_aggregates(schema_key out, const char *tenant, sl_error *err)
{
    sl_status rc = CHECK1("tenant", tenant);
    return rc ? rc : key_printf(out, err, "T#%s#AGG", tenant);
}

sl_status schema_pk_hospital(schema_key out, const char *tenant, const char *hospital,
                             sl_error *err)
{
    sl_status rc = CHECK2("tenant", tenant, "hospital", hospital);
    return rc ? rc : key_printf(out, err, "T#%s#HOSPITAL#%s", tenant, hospital);
}

sl_status schema_pk_hospital_procedure(schema_key out, const char *tenant, const char *hospital,
                                       const char *procedure, sl_error *err)
{
    sl_status rc = CHECK3("tenant", tenant, "hospital", hospital, "procedure", procedure);
    return rc ? rc : key_printf(out, err, "T#%s#HOSPITAL#%s#PROC#%s", tenant, hospital, procedure);
}

sl_status schema_sk_key(schema_key out, const char *key_id, sl_error *err)
{
    sl_status rc = CHECK1("key id", key_id);
    return rc ? rc : key_printf(out, err, "KEY#%s", key_id);
}

sl_status schema_sk_catalog_tool(schema_key out, const char *sku, sl_error *err)
{
    sl_status rc = CHECK1("sku", sku);
    return rc ? rc : key_printf(out, err, "TOOL#%s", sku);
}

sl_status schema_sk_frame(schema_key out, uint32_t frame, sl_error *err)
{
    out[0] = '\0';
    if (frame > SCHEMA_FRAME_MAX)
        return sl_error_set_at(err, SL_EINVAL, "frame", -1, "frame %u is above the limit %u", frame,
                               SCHEMA_FRAME_MAX);
    return key_printf(out, err, "FRAME#%09u", frame);
}

sl_status schema_sk_tool_instance(schema_key out, const char *sku, uint32_t n, sl_error *err)
{
    sl_status rc = CHECK1("sku", sku);
    if (rc)
        return rc;
    if (n > SCHEMA_INSTANCE_MAX)
        return sl_error_set_at(err, SL_EINVAL, "instance", -1,
                               "tool instance %u is above the limit %u", n, SCHEMA_INSTANCE_MAX);
    return key_printf(out, err, "TOOL#%s#%04u", sku, n);
}

/* A date is exactly YYYY-MM-DD with a plausible month and day. */
static int date_valid(const char *d)
{
    if (!d || strlen(d) != 10 || d[4] != '-' || d[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9'))
            return 0;
    int month = (d[5] - '0') * 10 + (d[6] - '0');
    int day = (d[8] - '0') * 10 + (d[9] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

sl_status schema_sk_surgery_date(schema_key out, const char *date, const char *surgery,
                                 sl_error *err)
{
    sl_status rc = CHECK1("surgery id", surgery);
    if (rc)
        return rc;
    if (!date_valid(date))
        return sl_error_set_at(err, SL_EINVAL, "date", -1, "date \"%.16s\" is not YYYY-MM-DD",
                               date ? date : "");
    return key_printf(out, err, "DATE#%s#SURGERY#%s", date, surgery);
}

sl_status schema_sk_asset_by_brand(schema_key out, const char *brand, const char *campaign,
                                   const char *asset, sl_error *err)
{
    sl_status rc = CHECK3("brand", brand, "campaign", campaign, "asset id", asset);
    return rc ? rc : key_printf(out, err, "BRAND#%s#CAMPAIGN#%s#ASSET#%s", brand, campaign, asset);
}

sl_status schema_sk_brand(schema_key out, const char *brand, sl_error *err)
{
    sl_status rc = CHECK1("brand", brand);
    return rc ? rc : key_printf(out, err, "BRAND#%s", brand);
}

sl_status schema_sk_brand_campaign(schema_key out, const char *brand, const char *campaign,
                                   sl_error *err)
{
    sl_status rc = CHECK2("brand", brand, "campaign", campaign);
    return rc ? rc : key_printf(out, err, "BRAND#%s#CAMPAIGN#%s", brand, campaign);
}

sl_status schema_sk_sector(schema_key out, const char *sector, sl_error *err)
{
    sl_status rc = CHECK1("sector", sector);
    return rc ? rc : key_printf(out, err, "SECTOR#%s", sector);
}

sl_status schema_sk_tool_aggregate(schema_key out, const char *hospital, const char *procedure,
                                   const char *sku, sl_error *err)
{
    sl_status rc = CHECK3("hospital", hospital, "procedure", procedure, "sku", sku);
    return rc ? rc : key_printf(out, err, "HOSPITAL#%s#PROC#%s#TOOL#%s", hospital, procedure, sku);
}

sl_status schema_sk_frame_parse(const char *sk, uint32_t *frame, sl_error *err)
{
    size_t plen = strlen(SCHEMA_SK_FRAME_PREFIX);
    if (!sk || strncmp(sk, SCHEMA_SK_FRAME_PREFIX, plen) != 0 || strlen(sk) != plen + 9)
        return sl_error_set(err, SL_EINVAL, "\"%.64s\" is not a frame sort key", sk ? sk : "");
    uint32_t v = 0;
    for (size_t i = plen; i < plen + 9; i++) {
        if (sk[i] < '0' || sk[i] > '9')
            return sl_error_set(err, SL_EINVAL, "\"%.64s\" is not a frame sort key", sk);
        v = v * 10 + (uint32_t)(sk[i] - '0');
    }
    *frame = v;
    return SL_OK;
}
