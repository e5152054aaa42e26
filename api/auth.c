/* auth.c -- Bearer key checks: one SHA-256 per request, compared in constant
 * time (gnutls_memcmp reads every byte whatever differs); key documents cached
 * key-cache-ms (so a request costs no store call on a hit, and a revocation
 * by another process takes effect within that time; one through this
 * server's API drops the entry at once); unknown key ids remembered
 * key-negative-cache-ms; and failed checks limited per client address by a
 * token bucket, past which a request is answered 429 before any store
 * lookup.
 *
 * Why a negative entry is safe: key ids are 64 random bits from GnuTLS's
 * key-grade source, drawn when the key is made and first shown in the
 * answer that made it.  So "id X is unknown" can only have been learned by
 * someone who guessed X before it existed (one chance in 2^64 per guess),
 * and a remembered unknown id never hides a key made later in practice.
 * Wrong secrets of a known id need no negative entry: the id's document is
 * cached (positively), and the hash comparison fails without the store. */
#include "api_int.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define CACHE_SLOTS   1024 /* direct-mapped by key id; a collision just evicts */
#define CACHE_STRIPES 16
#define NEG_SLOTS     1024 /* unknown ids, apart so they never evict known keys */
/* Failed-check buckets: 4096 sets of 4 (bounded whatever the number of
 * addresses; a full set gives up the bucket that has regained the most). */
#define LIMIT_SETS    4096
#define LIMIT_WAYS    4
#define LIMIT_STRIPES 64
#define MILLI         1000 /* a token in thousandths */

typedef struct cache_entry {
    int used;
    int64_t fetched_ms; /* monotonic */
    char hash[65];
    int64_t revoked_ms;
    api_auth auth;
} cache_entry;

typedef struct neg_entry {
    char key_id[API_KEY_ID_LEN + 1]; /* "" when unused */
    int64_t until_ms;                /* monotonic */
} neg_entry;

/* One client address's bucket of failed checks. */
typedef struct fail_bucket {
    unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d; IPv6 by its /64 */
    int used;
    int64_t tokens; /* thousandths of a token, at at_ms */
    int64_t at_ms;
} fail_bucket;

struct api__key_cache {
    int64_t ttl_ms, neg_ttl_ms;
    int64_t burst, per_min; /* failed checks: bucket size and refill (0 burst: no limit) */
    uint64_t seed;          /* of the address hash: a client cannot aim at another's set */
    pthread_mutex_t locks[CACHE_STRIPES];
    uint64_t gens[CACHE_SLOTS]; /* bumped by each drop of a slot (under its stripe's lock) */
    cache_entry slots[CACHE_SLOTS];
    neg_entry neg[NEG_SLOTS];
    pthread_mutex_t limit_locks[LIMIT_STRIPES];
    fail_bucket *buckets; /* LIMIT_SETS * LIMIT_WAYS */
    _Atomic uint64_t lookups, failures, throttled, neg_hits;
};

sl_status api__key_cache_new(const api_config *cfg, api__key_cache **out, sl_error *err)
{
    sl_status rc = SL_OK;
    api__key_cache *c = calloc(1, sizeof *c);
    if (!c || !(c->buckets = calloc((size_t)LIMIT_SETS * LIMIT_WAYS, sizeof *c->buckets))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory for the key cache");
        goto out;
    }
    if (gnutls_rnd(GNUTLS_RND_NONCE, &c->seed, sizeof c->seed) < 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "the random source failed (GnuTLS)");
        goto out;
    }
    c->ttl_ms = cfg->key_cache_ms;
    c->neg_ttl_ms = cfg->key_negative_cache_ms;
    c->burst = cfg->auth_failures_burst;
    c->per_min = cfg->auth_failures_per_min > 0 ? cfg->auth_failures_per_min : 1;
    for (int i = 0; i < CACHE_STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    for (int i = 0; i < LIMIT_STRIPES; i++)
        pthread_mutex_init(&c->limit_locks[i], NULL);
    *out = c;
    c = NULL;
out:
    if (c)
        free(c->buckets);
    free(c);
    return rc;
}

void api__key_cache_free(api__key_cache **c)
{
    if (c && *c) {
        for (int i = 0; i < CACHE_STRIPES; i++)
            pthread_mutex_destroy(&(*c)->locks[i]);
        for (int i = 0; i < LIMIT_STRIPES; i++)
            pthread_mutex_destroy(&(*c)->limit_locks[i]);
        free((*c)->buckets);
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

static pthread_mutex_t *lock_of(api__key_cache *c, size_t slot)
{
    return &c->locks[slot % CACHE_STRIPES];
}

/* Copies a fresh entry for key_id into *e; 0 when absent or stale.  *gen
 * gets the slot's generation either way: a fetch started now may be put
 * only if no drop happened meanwhile. */
static int cache_get(api__key_cache *c, const char *key_id, cache_entry *e, uint64_t *gen)
{
    int hit = 0;
    size_t s = slot_of(key_id);
    pthread_mutex_lock(lock_of(c, s));
    cache_entry *slot = &c->slots[s];
    *gen = c->gens[s];
    if (c->ttl_ms > 0 && slot->used && !strcmp(slot->auth.key_id, key_id) &&
        api__mono_ms() - slot->fetched_ms < c->ttl_ms) {
        *e = *slot;
        hit = 1;
    }
    pthread_mutex_unlock(lock_of(c, s));
    return hit;
}

/* Stores a fetched entry, unless its slot was dropped since gen was read (a
 * revocation that raced the fetch: the fetched document may predate it). */
static void cache_put(api__key_cache *c, const cache_entry *e, uint64_t gen)
{
    size_t s = slot_of(e->auth.key_id);
    pthread_mutex_lock(lock_of(c, s));
    if (c->ttl_ms > 0 && c->gens[s] == gen) {
        c->slots[s] = *e;
        c->slots[s].used = 1;
        c->slots[s].fetched_ms = api__mono_ms();
    }
    pthread_mutex_unlock(lock_of(c, s));
}

void api__key_cache_drop(api__key_cache *c, const char *key_id)
{
    size_t s = slot_of(key_id);
    pthread_mutex_lock(lock_of(c, s));
    c->gens[s]++;
    if (c->slots[s].used && !strcmp(c->slots[s].auth.key_id, key_id))
        gnutls_memset(&c->slots[s], 0, sizeof c->slots[s]);
    pthread_mutex_unlock(lock_of(c, s));
}

/* The negative cache shares the stripes' locks (same slot function). */
static int neg_get(api__key_cache *c, const char *key_id)
{
    int hit = 0;
    size_t s = slot_of(key_id) % NEG_SLOTS;
    pthread_mutex_lock(lock_of(c, s));
    hit = c->neg_ttl_ms > 0 && !strcmp(c->neg[s].key_id, key_id) &&
          api__mono_ms() < c->neg[s].until_ms;
    pthread_mutex_unlock(lock_of(c, s));
    return hit;
}

static void neg_put(api__key_cache *c, const char *key_id)
{
    size_t s = slot_of(key_id) % NEG_SLOTS;
    if (c->neg_ttl_ms > 0) {
        pthread_mutex_lock(lock_of(c, s));
        memcpy(c->neg[s].key_id, key_id, API_KEY_ID_LEN + 1);
        c->neg[s].until_ms = api__mono_ms() + c->neg_ttl_ms;
        pthread_mutex_unlock(lock_of(c, s));
    }
}

/* ---- failed checks per client address ---- */

/* The address a bucket is kept for: IPv4 (also when mapped into IPv6) as
 * ::ffff:a.b.c.d, IPv6 by its /64 (one host usually holds a whole /64).  0
 * for other families (a Unix socket): not limited. */
static int addr_key(const struct sockaddr *sa, unsigned char out[16])
{
    int ok = 1;
    memset(out, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        const unsigned char *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(out, a, !memcmp(a, mapped, 12) ? 16 : 8);
    } else {
        ok = 0;
    }
    return ok;
}

/* FNV-1a over the seed and the address. */
static size_t set_of(const api__key_cache *c, const unsigned char addr[16])
{
    uint64_t h = 1469598103934665603ull ^ c->seed;
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 1099511628211ull;
    return (size_t)(h % LIMIT_SETS);
}

/* Thousandths of a token b regains from its last update to now (elapsed
 * time capped at 11 days, so the product stays far from overflow). */
static int64_t gained_by(const api__key_cache *c, const fail_bucket *b, int64_t now)
{
    int64_t elapsed = now - b->at_ms;
    if (elapsed > INT64_C(1000000000))
        elapsed = INT64_C(1000000000);
    return elapsed > 0 ? elapsed * c->per_min * MILLI / 60000 : 0;
}

/* The bucket of addr, refilled to now (a new one starts full); called with
 * its set's lock held. */
static fail_bucket *bucket_of(api__key_cache *c, const unsigned char addr[16], int64_t now)
{
    fail_bucket *set = &c->buckets[set_of(c, addr) * LIMIT_WAYS], *b = NULL;
    int64_t full = c->burst * MILLI;
    for (int i = 0; i < LIMIT_WAYS && !b; i++)
        if (set[i].used && !memcmp(set[i].addr, addr, 16))
            b = &set[i];
    if (b) {
        int64_t gained = gained_by(c, b, now);
        if (b->tokens + gained >= full) {
            b->tokens = full;
            b->at_ms = now;
        } else if (gained > 0) {
            /* The clock moves on only by the time the tokens took, so
             * frequent checks do not lose the fractions. */
            b->tokens += gained;
            b->at_ms += gained * 60000 / (c->per_min * MILLI);
        }
        goto out;
    }
    /* A new address takes an unused way, else the one nearest to full. */
    int64_t best = -1;
    for (int i = 0; i < LIMIT_WAYS; i++) {
        int64_t level = !set[i].used ? INT64_MAX : set[i].tokens + gained_by(c, &set[i], now);
        if (level > best) {
            best = level;
            b = &set[i];
        }
    }
    memcpy(b->addr, addr, 16);
    b->used = 1;
    b->tokens = full;
    b->at_ms = now;
out:
    return b;
}

/* Seconds until addr's bucket holds a token again (>= 1). */
static int retry_after(const api__key_cache *c, const fail_bucket *b)
{
    int64_t ms = (MILLI - b->tokens) * 60000 / (c->per_min * MILLI);
    return ms <= 0 ? 1 : (int)((ms + 999) / 1000);
}

/* Whether addr has a failed check left: 0 when it has (and take uses it
 * up: a failed check is being recorded), else the Retry-After (> 0; the
 * check is then answered 429). */
static int limit_use(api__key_cache *c, const struct sockaddr *client, int take)
{
    unsigned char addr[16];
    int retry = 0;
    if (c->burst <= 0 || !addr_key(client, addr))
        goto out;
    pthread_mutex_t *lock = &c->limit_locks[set_of(c, addr) % LIMIT_STRIPES];
    pthread_mutex_lock(lock);
    fail_bucket *b = bucket_of(c, addr, api__mono_ms());
    if (b->tokens < MILLI)
        retry = retry_after(c, b);
    else if (take)
        b->tokens -= MILLI;
    pthread_mutex_unlock(lock);
out:
    return retry;
}

/* Reads the key document and its tenant's kind from the store. */
static sl_status fetch_entry(api__key_cache *c, store *st, const char *key_id, cache_entry *e,
                             sl_error *err)
{
    sl_status rc = SL_OK;
    api_key_info info;
    sl_error inner;
    sl_error_clear(&inner);
    memset(e, 0, sizeof *e);
    atomic_fetch_add_explicit(&c->lookups, 1, memory_order_relaxed);
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

/* The check of a presented key; *retry_s > 0 when it was refused because
 * the address has no failed check left (nothing was looked up). */
static sl_status check_key(api__key_cache *c, store *st, const char *authorization,
                           const struct sockaddr *client, api_auth *out, int *retry_s,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    char key_id[API_KEY_ID_LEN + 1], hash[65];
    cache_entry e;
    uint64_t gen = 0;
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
    if (!cache_get(c, key_id, &e, &gen)) {
        if (neg_get(c, key_id)) {
            atomic_fetch_add_explicit(&c->neg_hits, 1, memory_order_relaxed);
            rc = sl_error_set(err, SL_EAUTH, "the API key is not valid");
            goto out;
        }
        /* An address out of failed checks gets no store lookup; a key this
         * server verified lately (a cache hit above) still works for it. */
        if ((*retry_s = limit_use(c, client, 0)) > 0) {
            rc = sl_error_set(err, SL_EAUTH,
                              "too many failed key checks from this address; retry in %d s",
                              *retry_s);
            goto out;
        }
        rc = fetch_entry(c, st, key_id, &e, err);
        if (rc == SL_EAUTH)
            neg_put(c, key_id);
        if (rc != SL_OK)
            goto out;
        cache_put(c, &e, gen);
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
    gnutls_memset(hash, 0, sizeof hash);
    return rc;
}

sl_status api__authenticate(api__key_cache *c, store *st, const char *authorization,
                            const struct sockaddr *client, api_auth *out, int *retry_after_s,
                            sl_error *err)
{
    sl_status rc = SL_OK;
    sl_error e;
    int retry = 0;
    sl_error_clear(&e);
    if (!authorization) {
        /* No key costs nothing to refuse: not counted against the address. */
        rc = sl_error_set(err, SL_EAUTH,
                          "this route needs an API key: send 'Authorization: Bearer <key>'");
        goto out;
    }
    rc = check_key(c, st, authorization, client, out, &retry, &e);
    if (rc == SL_EAUTH) {
        atomic_fetch_add_explicit(&c->failures, 1, memory_order_relaxed);
        if (retry == 0)
            retry = limit_use(c, client, 1);
        if (retry > 0) {
            atomic_fetch_add_explicit(&c->throttled, 1, memory_order_relaxed);
            sl_error_clear(&e);
            sl_error_set(&e, SL_EAUTH,
                         "too many failed key checks from this address; retry in %d s", retry);
        }
    }
    if (rc != SL_OK && err && err->status == SL_OK)
        *err = e;
out:
    *retry_after_s = retry;
    return rc;
}

void api__key_cache_metrics(api__key_cache *c, FILE *out)
{
    fprintf(out,
            "# HELP sightline_auth_key_lookups_total Key documents read from the store to check a "
            "key (cache misses).\n"
            "# TYPE sightline_auth_key_lookups_total counter\n"
            "sightline_auth_key_lookups_total %llu\n"
            "# HELP sightline_auth_failures_total Requests whose key was refused (401 or 429).\n"
            "# TYPE sightline_auth_failures_total counter\n"
            "sightline_auth_failures_total %llu\n"
            "# HELP sightline_auth_throttled_total Requests answered 429 because their address "
            "failed too many key checks.\n"
            "# TYPE sightline_auth_throttled_total counter\n"
            "sightline_auth_throttled_total %llu\n"
            "# HELP sightline_auth_unknown_cached_total Key checks refused from the cache of "
            "unknown key ids (no store lookup).\n"
            "# TYPE sightline_auth_unknown_cached_total counter\n"
            "sightline_auth_unknown_cached_total %llu\n",
            (unsigned long long)atomic_load(&c->lookups),
            (unsigned long long)atomic_load(&c->failures),
            (unsigned long long)atomic_load(&c->throttled),
            (unsigned long long)atomic_load(&c->neg_hits));
}
