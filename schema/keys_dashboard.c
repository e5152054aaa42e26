/* keys_dashboard.c -- keys the brand dashboard reads by: the index partition
 * of brand aggregates (sorted listings) and the sort-key prefix shared by a
 * brand's campaign aggregates and its asset index entries. */
#include "schema.h"

#include <stdio.h>

sl_status schema_gpk_brand_aggs(schema_key out, const char *tenant, sl_error *err)
{
    out[0] = '\0';
    sl_status rc = schema_component_check("tenant", tenant, err);
    if (rc == SL_OK) /* cannot truncate: a component is at most 128 bytes */
        snprintf(out, SCHEMA_KEY_MAX, "T#%s#AGG#BRANDS", tenant);
    return rc;
}

sl_status schema_sk_brand_campaigns_prefix(schema_key out, const char *brand, sl_error *err)
{
    out[0] = '\0';
    sl_status rc = schema_component_check("brand", brand, err);
    if (rc == SL_OK)
        snprintf(out, SCHEMA_KEY_MAX, "BRAND#%s#CAMPAIGN#", brand);
    return rc;
}
