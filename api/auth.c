/* auth.c -- Bearer key checks: one SHA-256 per request, compared in constant
 * time; key documents cached key-cache-ms (so a request costs no store call on
 * a hit, and a revocation takes effect within that time). */
#include "api_int.h"

#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CACHE_SLOTS   1024 /* direct-mapped by key id; a collision just evicts */
#define CACHE_STRIPES 16

typedef struct cache_entry {
    int used;
    int64_t fetched_ms; /* monotonic */
    char hash[65];
    int64_t revoked_ms;
    api_auth auth;
} cache_entry;

struct api__key_cache {
    int64_t ttl_ms;
    pthread_mutex_t locks[CACHE_STRIPES];
    cache_entry slots[CACHE_SLOTS];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sl_status api__key_cache_new(int64_t ttl_ms, api__key_cache **out, sl_error *err)
{
    sl_status rc = SL_OK;
    api__key_cache *c = calloc(1, sizeof *c);
    if (!c) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory for the key cache");
        goto out;
    }
    c->ttl_ms = ttl_ms;
    for (int i = 0; i < CACHE_STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    *out = c;
out:
    return rc;
}

void api__key_cache_free(api__key_cache **c)
{
    if (c && *c) {
        for (int i = 0; i < CACHE_STRIPES; i++)
            pthread_mutex_destroy(&(*c)->locks[i]);
        gnutls_memset(*c, 0, sizeof **c);
        free(*c);
        *c = NULL;
    }
}

/* Key ids are random hex, so their first 12 bits spread evenly. */
static size_t slot_of(const char *key_id)
{
    size_t v = 0;
    for (int i = 0; i < 3; i++) {
        char ch = key_id[i];
        v = v * 16 + (size_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
    return v % CACHE_SLOTS;
}

/* Copies a fresh entry for key_id into *e; 0 when absent or stale. */
static int cache_get(api__key_cache *c, const char *key_id, cache_entry *e)
{
    int hit = 0;
    size_t s = slot_of(key_id);
    if (c->ttl_ms <= 0)
        goto out;
    pthread_mutex_lock(&c->locks[s % CACHE_STRIPES]);
    cache_entry *slot = &c->slots[s];
    if (slot->used && !strcmp(slot->auth.key_id, key_id) &&
        mono_ms() - slot->fetched_ms < c->ttl_ms) {
        *e = *slot;
        hit = 1;
    }
    pthread_mutex_unlock(&c->locks[s % CACHE_STRIPES]);
out:
    return hit;
}

static void cache_put(api__key_cache *c, const cache_entry *e)
{
    size_t s = slot_of(e->auth.key_id);
    if (c->ttl_ms > 0) {
        pthread_mutex_lock(&c->locks[s % CACHE_STRIPES]);
        c->slots[s] = *e;
        c->slots[s].used = 1;
        c->slots[s].fetched_ms = mono_ms();
        pthread_mutex_unlock(&c->locks[s % CACHE_STRIPES]);
    }
}

/* Reads the key document and its tenant's kind from the store. */
static sl_status fetch_entry(store *st, const char *key_id, cache_entry *e, sl_error *err)
{
    sl_status rc = SL_OK;
    api_key_info info;
    sl_error inner;
    sl_error_clear(&inner);
    memset(e, 0, sizeof *e);
    rc = api__key_lookup(st, key_id, &info, e->hash, &inner);
    if (rc == SL_OK)
        rc = api_tenant_kind(st, info.tenant, e->auth.tenant_kind, &inner);
    if (rc == SL_ENOTFOUND) {
        /* Unknown key, or its tenant gone: told apart from a bad key by no one. */
        rc = sl_error_set(err, SL_EAUTH, "the API key is not valid");
        goto out;
    }
    if (rc != SL_OK) { /* the store failed: pass its words on */
        if (err && err->status == SL_OK)
            *err = inner;
        goto out;
    }
    snprintf(e->auth.tenant, sizeof e->auth.tenant, "%s", info.tenant);
    snprintf(e->auth.key_id, sizeof e->auth.key_id, "%s", info.key_id);
    snprintf(e->auth.key_name, sizeof e->auth.key_name, "%s", info.name);
    e->auth.role = info.role;
    e->revoked_ms = info.revoked_ms;
out:
    return rc;
}

sl_status api__authenticate(api__key_cache *c, store *st, const char *authorization, api_auth *out,
                            sl_error *err)
{
    sl_status rc = SL_OK;
    char key_id[API_KEY_ID_LEN + 1], hash[65];
    cache_entry e;
    if (!authorization) {
        rc = sl_error_set(err, SL_EAUTH,
                          "this route needs an API key: send 'Authorization: Bearer <key>'");
        goto out;
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0) {
        rc = sl_error_set(err, SL_EAUTH, "the Authorization header must use the Bearer scheme");
        goto out;
    }
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    if ((rc = api__key_split(tok, len, key_id, err)) != SL_OK ||
        (rc = api__key_hash(tok, len, hash, err)) != SL_OK)
        goto out;
    if (!cache_get(c, key_id, &e)) {
        if ((rc = fetch_entry(st, key_id, &e, err)) != SL_OK)
            goto out;
        cache_put(c, &e);
    }
    if (gnutls_memcmp(hash, e.hash, 64) != 0) {
        rc = sl_error_set(err, SL_EAUTH, "the API key is not valid");
        goto out;
    }
    if (e.revoked_ms != 0) {
        rc = sl_error_set(err, SL_EAUTH, "the API key was revoked");
        goto out;
    }
    *out = e.auth;
out:
    return rc;
}
