/* keys_auth.c -- keys of the authentication documents: the gsi1 partition
 * that finds an API key by its id alone (the tenant is learnt from the key
 * document, never from the request). */
#include "schema.h"

#include <stdio.h>

sl_status schema_gsi1pk_key_id(schema_key out, const char *key_id, sl_error *err)
{
    out[0] = '\0';
    sl_status rc = schema_component_check("key id", key_id, err);
    if (rc == SL_OK) /* cannot truncate: a component is at most 128 bytes */
        snprintf(out, SCHEMA_KEY_MAX, "KEYID#%s", key_id);
    return rc;
}
