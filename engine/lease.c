/* lease.c -- a lease document (SYS#ENGINE / LEASE#<name>) that lets one process
 * act at a time: the store's listener, a repairing recompute.  Taking it bumps
 * its version, so writes fenced on "version == mine" stop once it is taken.
 * A repairing recompute may also seize the listener's lease for a moment
 * (engine__lease_seize), which stops the listener's commits. */
#include "engine_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

void engine__lease_init(engine__lease *l, const char *name, const char *holder, int64_t ttl_ms)
{
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    snprintf(l->sk, sizeof l->sk, "LEASE#%s", name);
    snprintf(l->holder, sizeof l->holder, "%s", holder);
    l->ttl_ms = ttl_ms;
}

void engine__holder_default(char *out, size_t size)
{
    char host[64] = "host";
    unsigned char rnd[4] = {0};
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    /* Random bits tell apart two processes that reuse a pid (containers). */
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        memset(rnd, 0, sizeof rnd); /* the pid and host still tell most apart */
    snprintf(out, size, "%s:%ld:%02x%02x%02x%02x", host, (long)getpid(), rnd[0], rnd[1], rnd[2],
             rnd[3]);
}

static sl_status lease_write(store *s, engine__lease *l, store_cond cond, int64_t acquired_ms,
                             sl_error *err)
{
    int64_t now = engine__now_ms();
    bson_t doc = BSON_INITIALIZER;
    store_put_result res = {0};
    sl_status rc;
    BSON_APPEND_UTF8(&doc, SCHEMA_F_PK, ENGINE_SYS_PK);
    BSON_APPEND_UTF8(&doc, SCHEMA_F_SK, l->sk);
    BSON_APPEND_UTF8(&doc, SCHEMA_F_TYPE, "lease");
    BSON_APPEND_UTF8(&doc, "consumer", l->name);
    BSON_APPEND_UTF8(&doc, "holder", l->holder);
    BSON_APPEND_INT64(&doc, "acquired_ms", acquired_ms);
    BSON_APPEND_INT64(&doc, "renewed_ms", now);
    BSON_APPEND_INT64(&doc, "expires_ms", now + l->ttl_ms);
    rc = store_put(s, STORE_AGGREGATES, &doc, cond, &res, err);
    if (rc == SL_OK) {
        l->held = 1;
        l->version = res.version;
        l->expires_ms = now + l->ttl_ms;
        l->acquired_ms = acquired_ms;
    }
    bson_destroy(&doc);
    return rc;
}

sl_status engine__lease_acquire(store *s, engine__lease *l, sl_error *err)
{
    sl_status rc;
    bson_t *cur = NULL;
    bson_iter_t it;
    store_cond cond = {STORE_COND_NOT_EXISTS, 0};
    rc = store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, l->sk, &cur, err);
    if (rc == SL_ENOTFOUND) {
        sl_error_clear(err);
        rc = SL_OK;
    } else if (rc != SL_OK) {
        goto out;
    } else {
        char holder[128] = "";
        int64_t expires = 0, version = 0;
        if (bson_iter_init_find(&it, cur, "holder") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(holder, sizeof holder, "%s", bson_iter_utf8(&it, NULL));
        if (bson_iter_init_find(&it, cur, "expires_ms") && BSON_ITER_HOLDS_INT64(&it))
            expires = bson_iter_int64(&it);
        if (bson_iter_init_find(&it, cur, SCHEMA_F_VERSION) && BSON_ITER_HOLDS_INT64(&it))
            version = bson_iter_int64(&it);
        if (strcmp(holder, l->holder) != 0 && engine__now_ms() < expires) {
            char until[25];
            schema_time_format(expires, until);
            rc = sl_error_set(err, SL_EBUSY, "lease %s is held by %s until %s", l->name, holder,
                              until);
            goto out;
        }
        cond = (store_cond){STORE_COND_VERSION, version};
    }
    /* Whoever wins the conditional write holds it; the loser sees SL_ECONDITION. */
    rc = lease_write(s, l, cond, engine__now_ms(), err);
    if (rc == SL_ECONDITION) {
        sl_error_clear(err);
        rc =
            sl_error_set(err, SL_EBUSY, "lease %s was taken by another process meanwhile", l->name);
    }
out:
    if (rc != SL_OK)
        l->held = 0;
    if (cur)
        bson_destroy(cur);
    return rc;
}

sl_status engine__lease_renew(store *s, engine__lease *l, sl_error *err)
{
    store_cond cond = {STORE_COND_VERSION, l->version};
    sl_status rc = lease_write(s, l, cond, l->acquired_ms, err);
    if (rc == SL_ECONDITION)
        l->held = 0;
    return rc;
}

sl_status engine__lease_seize(store *s, engine__lease *l, sl_error *err)
{
    sl_status rc = SL_OK;
    for (int attempt = 0;; attempt++) {
        bson_t *cur = NULL;
        bson_iter_t it;
        store_cond cond = {STORE_COND_NOT_EXISTS, 0};
        sl_error_clear(err);
        rc = store_get(s, STORE_AGGREGATES, ENGINE_SYS_PK, l->sk, &cur, err);
        if (rc == SL_OK && bson_iter_init_find(&it, cur, SCHEMA_F_VERSION) &&
            BSON_ITER_HOLDS_INT64(&it))
            cond = (store_cond){STORE_COND_VERSION, bson_iter_int64(&it)};
        if (cur)
            bson_destroy(cur);
        if (rc == SL_ENOTFOUND || rc == SL_OK) {
            sl_error_clear(err);
            rc = lease_write(s, l, cond, engine__now_ms(), err);
        }
        /* The holder renewed in between: read again. */
        if (rc != SL_ECONDITION || attempt == 100)
            break;
    }
    if (rc != SL_OK) {
        l->held = 0;
        sl_error_prefix(err, "taking lease %s", l->name);
    }
    return rc;
}

void engine__lease_release(store *s, engine__lease *l)
{
    if (l->held) {
        store_cond cond = {STORE_COND_VERSION, l->version};
        (void)store_delete(s, STORE_AGGREGATES, ENGINE_SYS_PK, l->sk, cond, NULL, NULL);
        l->held = 0;
    }
}
