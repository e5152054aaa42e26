/* cursor.c -- listing cursors, opaque and authenticated.
 *
 * A cursor carries a listing's position (a store page token, or a key) to the
 * client and back, sealed with AES-256-SIV (GnuTLS's AEAD) under the store's
 * cursor secret, so a client can neither read the internal sort keys in it
 * nor forge another position:
 *
 *   cursor = base64url(version, SIV tag (16 bytes), enciphered position)
 *
 * with the listing's binding as associated data: the key's tenant, the
 * route (method and pattern), its path parameters and its query parameters
 * other than `cursor` and `limit` (a client may change its page size).  SIV
 * is deterministic (one position of one listing, one cursor) and misuse
 * resistant.  A cursor that was altered, cut short, or made for another
 * tenant, listing or store (another secret) does not open: 400 naming
 * `cursor`.  The key is derived from the secret, 32 random bytes made once
 * per store and kept in the aggregates table (SYS#API / CURSOR_SECRET, which
 * no tenant key reaches), so every server of a store seals alike and cursors
 * outlive a restart. */
#include "api_int.h"

#include <assert.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CURSOR_VERSION 1
#define SECRET_PK      "SYS#API"
#define SECRET_SK      "CURSOR_SECRET"
#define SECRET_LEN     32

_Static_assert(API__CURSOR_RAW_MAX == 1 + API__CURSOR_SIV + API__CURSOR_POS_MAX, "cursor layout");

/* ---------------------------------------------------------------------------
 * The secret.
 * ------------------------------------------------------------------------- */

void api__cursor_key_derive(const unsigned char secret[32], api__cursor_key *out)
{
    /* AES-256-SIV takes two AES keys (64 bytes); both come from the stored
     * secret through HMAC-SHA-256 with distinct labels. */
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, SECRET_LEN, "sightline cursor siv 1", 22, out->siv);
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret, SECRET_LEN, "sightline cursor siv 2", 22,
                     out->siv + 32);
}

/* The secret of a stored document into out; SL_ECORRUPT when it has none. */
static sl_status secret_of(const bson_t *doc, unsigned char out[SECRET_LEN], sl_error *err)
{
    bson_iter_t it;
    const uint8_t *bytes = NULL;
    uint32_t len = 0;
    if (bson_iter_init_find(&it, doc, "secret") && BSON_ITER_HOLDS_BINARY(&it))
        bson_iter_binary(&it, NULL, &len, &bytes);
    if (!bytes || len != SECRET_LEN)
        return sl_error_set_at(err, SL_ECORRUPT, "cursor secret", -1,
                               "the cursor secret (aggregates " SECRET_PK " / " SECRET_SK
                               ") is damaged: delete that document and restart (cursors handed "
                               "out before stop working)");
    memcpy(out, bytes, SECRET_LEN);
    return SL_OK;
}

sl_status api__cursor_key_load(store *st, api__cursor_key *out, sl_error *err)
{
    sl_status rc = SL_OK;
    unsigned char secret[SECRET_LEN];
    bson_t *doc = NULL;
    sl_error e;
    sl_error_clear(&e);
    rc = store_get(st, STORE_AGGREGATES, SECRET_PK, SECRET_SK, &doc, &e);
    if (rc == SL_ENOTFOUND) {
        /* The first server of this store makes it; a server racing it
         * loses the must-not-exist condition and reads the winner's. */
        bson_t made = BSON_INITIALIZER;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (gnutls_rnd(GNUTLS_RND_KEY, secret, sizeof secret) < 0) {
            rc = sl_error_set(err, SL_EINTERNAL, "the random source failed (GnuTLS)");
            goto out;
        }
        BSON_APPEND_UTF8(&made, SCHEMA_F_PK, SECRET_PK);
        BSON_APPEND_UTF8(&made, SCHEMA_F_SK, SECRET_SK);
        BSON_APPEND_UTF8(&made, SCHEMA_F_TYPE, "cursor_secret");
        BSON_APPEND_BINARY(&made, "secret", BSON_SUBTYPE_BINARY, secret, sizeof secret);
        BSON_APPEND_INT64(&made, "created_ms", (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        sl_error_clear(&e);
        rc = store_put(st, STORE_AGGREGATES, &made, (store_cond){STORE_COND_NOT_EXISTS, 0}, NULL,
                       &e);
        gnutls_memset(secret, 0, sizeof secret);
        bson_destroy(&made);
        sl_error_clear(&e);
        if (rc == SL_OK || rc == SL_ECONDITION)
            rc = store_get(st, STORE_AGGREGATES, SECRET_PK, SECRET_SK, &doc, &e);
    }
    if (rc != SL_OK) {
        sl_error_set_at(err, rc, e.field[0] ? e.field : NULL, e.offset,
                        "reading the cursor secret: %s", e.message);
        goto out;
    }
    if ((rc = secret_of(doc, secret, err)) != SL_OK)
        goto out;
    api__cursor_key_derive(secret, out);
out:
    gnutls_memset(secret, 0, sizeof secret);
    if (doc)
        bson_destroy(doc);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Sealing and opening.
 * ------------------------------------------------------------------------- */
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = b64url[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    const char *p = c ? memchr(b64url, c, 64) : NULL;
    return p ? (int)(p - b64url) : -1;
}

/* Unpadded base64url into out (cap bytes); -1 on a bad character, length or
 * trailing bits (so a cursor has exactly one spelling). */
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    long o = n % 4 == 1 ? -1 : 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; o >= 0 && i < n; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            o = -1;
            break;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if ((size_t)o == cap)
                o = -1;
            else
                out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (o >= 0 && (acc & ((1u << bits) - 1)))
        o = -1;
    return o;
}

/* The associated data of a seal: the version, then each binding string
 * after its length (four bytes, big-endian), so no two bindings serialize
 * alike.  *out is malloc'd (caller frees); NULL when out of memory. */
static unsigned char *binding_serialize(const char *const *binding, size_t nbinding, size_t *len)
{
    size_t n = 1;
    for (size_t i = 0; i < nbinding; i++)
        n += 4 + strlen(binding[i]);
    unsigned char *buf = malloc(n), *p = buf;
    if (!buf)
        return NULL;
    *p++ = CURSOR_VERSION;
    for (size_t i = 0; i < nbinding; i++) {
        size_t l = strlen(binding[i]);
        *p++ = (unsigned char)(l >> 24);
        *p++ = (unsigned char)(l >> 16);
        *p++ = (unsigned char)(l >> 8);
        *p++ = (unsigned char)l;
        memcpy(p, binding[i], l);
        p += l;
    }
    assert((size_t)(p - buf) == n);
    *len = n;
    return buf;
}

/* Runs AES-256-SIV (GnuTLS's AEAD) over in[0..inlen) into out: sealing when
 * seal, else opening.  SIV is deterministic by design (a fixed nonce is its
 * intended use), so one position of one listing always has one cursor.
 * Returns the bytes written, or -1 when opening fails (altered, cut short,
 * another binding or key) or GnuTLS does. */
static long siv_run(const api__cursor_key *k, const char *const *binding, size_t nbinding, int seal,
                    const unsigned char *in, size_t inlen, unsigned char *out, size_t outcap)
{
    static const unsigned char nonce[1] = {CURSOR_VERSION};
    gnutls_aead_cipher_hd_t h = NULL;
    gnutls_datum_t key = {(unsigned char *)k->siv, sizeof k->siv};
    size_t adlen = 0, outlen = outcap;
    long got = -1;
    unsigned char *ad = binding_serialize(binding, nbinding, &adlen);
    if (!ad || gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_256_SIV, &key) < 0)
        goto out;
    int rc = seal ? gnutls_aead_cipher_encrypt(h, nonce, sizeof nonce, ad, adlen, API__CURSOR_SIV,
                                               in, inlen, out, &outlen)
                  : gnutls_aead_cipher_decrypt(h, nonce, sizeof nonce, ad, adlen, API__CURSOR_SIV,
                                               in, inlen, out, &outlen);
    if (rc >= 0)
        got = (long)outlen;
out:
    if (h)
        gnutls_aead_cipher_deinit(h);
    free(ad);
    return got;
}

sl_status api__cursor_seal(const api__cursor_key *k, const char *const *binding, size_t nbinding,
                           const void *pos, size_t len, char out[API_CURSOR_MAX], sl_error *err)
{
    sl_status rc = SL_OK;
    unsigned char raw[API__CURSOR_RAW_MAX];
    long n = -1;
    if (len > API__CURSOR_POS_MAX) {
        rc = sl_error_set(err, SL_EINTERNAL,
                          "a listing position of %zu bytes cannot travel as a "
                          "cursor (at most %d)",
                          len, API__CURSOR_POS_MAX);
        goto out;
    }
    raw[0] = CURSOR_VERSION;
    n = siv_run(k, binding, nbinding, 1, pos, len, raw + 1, sizeof raw - 1);
    if (n != (long)(API__CURSOR_SIV + len)) {
        rc = sl_error_set(err, SL_EINTERNAL, "sealing a cursor failed (GnuTLS AES-SIV)");
        goto out;
    }
    b64_encode(raw, 1 + (size_t)n, out);
out:
    return rc;
}

static sl_status not_ours(sl_error *err)
{
    return sl_error_set_at(err, SL_EINVAL, "cursor", -1,
                           "cursor is not one this service handed out for this listing (it was "
                           "changed, cut short, or made for another listing, tenant or store): "
                           "send the `next` of the previous page as it came, or start again "
                           "without a cursor");
}

sl_status api__cursor_open(const api__cursor_key *k, const char *const *binding, size_t nbinding,
                           const char *cursor, unsigned char pos[API__CURSOR_POS_MAX], size_t *len,
                           sl_error *err)
{
    sl_status rc = SL_OK;
    unsigned char raw[API__CURSOR_RAW_MAX];
    size_t n = strnlen(cursor, API_CURSOR_MAX);
    long got = n < API_CURSOR_MAX ? b64_decode(cursor, n, raw, sizeof raw) : -1;
    long plen = -1;
    if (got >= 1 + API__CURSOR_SIV && raw[0] == CURSOR_VERSION)
        plen = siv_run(k, binding, nbinding, 0, raw + 1, (size_t)got - 1, pos, API__CURSOR_POS_MAX);
    if (plen < 0) {
        rc = not_ours(err);
        goto out;
    }
    *len = (size_t)plen;
out:
    return rc;
}

/* ---------------------------------------------------------------------------
 * Cursors of a request's listing.
 * ------------------------------------------------------------------------- */
#define BINDING_MAX (2 + 2 * API__PARAM_MAX + 2 * API__QUERY_MAX)

/* The request's listing: tenant, route, path parameters, and query
 * parameters but cursor and limit, by name (each is there at most once). */
static size_t binding_of(const api_request *req, const char *b[BINDING_MAX])
{
    size_t n = 0, done = 0;
    b[n++] = req->authed ? req->auth.tenant : "";
    b[n++] = req->match.route ? req->match.route->label : "";
    for (size_t i = 0; i < req->match.nparams; i++) {
        b[n++] = req->match.names[i];
        b[n++] = req->match.values[i];
    }
    for (const char *last = NULL;; done++) { /* selection by name: a handful at most */
        const char *name = NULL, *value = NULL;
        for (size_t i = 0; i < req->query.n; i++) {
            const char *q = req->query.name[i];
            if (strcmp(q, "cursor") && strcmp(q, "limit") && (!last || strcmp(q, last) > 0) &&
                (!name || strcmp(q, name) < 0)) {
                name = q;
                value = req->query.value[i];
            }
        }
        if (!name || done == API__QUERY_MAX)
            break;
        b[n++] = name;
        b[n++] = value;
        last = name;
    }
    return n;
}

sl_status api_cursor_seal(const api_request *req, const void *pos, size_t len,
                          char out[API_CURSOR_MAX], sl_error *err)
{
    const char *b[BINDING_MAX];
    size_t n = binding_of(req, b);
    return api__cursor_seal(req->cursor_key, b, n, pos, len, out, err);
}

sl_status api_cursor_open(const api_request *req, unsigned char pos[API__CURSOR_POS_MAX],
                          size_t *len, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *b[BINDING_MAX];
    const char *c = api_query(req, "cursor");
    *len = 0;
    if (c && c[0]) {
        size_t n = binding_of(req, b);
        rc = api__cursor_open(req->cursor_key, b, n, c, pos, len, err);
    }
    return rc;
}

/* Store page tokens are base64url text: six bits a character, packed, after
 * their length (two bytes), so a cursor is hardly longer than its token. */
static sl_status token_pack(const char *token, unsigned char pos[API__CURSOR_POS_MAX], size_t *len,
                            sl_error *err)
{
    size_t n = strnlen(token, STORE_PAGE_TOKEN_MAX), o = 2;
    uint32_t acc = 0;
    int bits = 0;
    if (n == STORE_PAGE_TOKEN_MAX)
        return sl_error_set(err, SL_EINTERNAL, "the store made a page token over %u bytes",
                            STORE_PAGE_TOKEN_MAX - 1);
    pos[0] = (unsigned char)(n >> 8);
    pos[1] = (unsigned char)n;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(token[i]);
        if (v < 0)
            return sl_error_set(err, SL_EINTERNAL,
                                "the store made a page token that is not "
                                "base64url");
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            pos[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits)
        pos[o++] = (unsigned char)(acc << (8 - bits));
    *len = o;
    return SL_OK;
}

/* Back to the token; -1 when pos is not a packed token (a store that
 * changed its alphabet, or a bug: the cursor opened, so the client did not
 * make it). */
static int token_unpack(const unsigned char *pos, size_t len, char token[STORE_PAGE_TOKEN_MAX])
{
    size_t n = len >= 2 ? (size_t)pos[0] << 8 | pos[1] : STORE_PAGE_TOKEN_MAX;
    if (n >= STORE_PAGE_TOKEN_MAX || len != 2 + (n * 6 + 7) / 8)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t bit = i * 6, byte = 2 + bit / 8;
        uint32_t w = (uint32_t)pos[byte] << 8 | (byte + 1 < len ? pos[byte + 1] : 0);
        token[i] = b64url[w >> (10 - bit % 8) & 63];
    }
    token[n] = '\0';
    return 0;
}

sl_status api_cursor_param(const api_request *req, char token[STORE_PAGE_TOKEN_MAX], sl_error *err)
{
    unsigned char pos[API__CURSOR_POS_MAX];
    size_t len = 0;
    sl_status rc = api_cursor_open(req, pos, &len, err);
    token[0] = '\0';
    if (rc == SL_OK && len && token_unpack(pos, len, token) < 0)
        rc = sl_error_set(err, SL_EINTERNAL, "a cursor opened but holds no page token");
    return rc;
}

sl_status api_json_cursor(const api_request *req, yajl_gen g, const char *key, const char *token,
                          sl_error *err)
{
    sl_status rc = SL_OK;
    unsigned char pos[API__CURSOR_POS_MAX];
    size_t len = 0;
    char cursor[API_CURSOR_MAX];
    api_json_str(g, key);
    if (!token || !token[0]) {
        yajl_gen_null(g);
        goto out;
    }
    if ((rc = token_pack(token, pos, &len, err)) != SL_OK ||
        (rc = api_cursor_seal(req, pos, len, cursor, err)) != SL_OK)
        goto out;
    api_json_str(g, cursor);
out:
    return rc;
}

sl_status api_cursor_blame(sl_status rc, const sl_error *e, sl_error *err)
{
    if (rc == SL_EINVAL && !strcmp(e->field, "page_token"))
        sl_error_set_at(err, rc, "cursor", -1, "cursor: %s", e->message);
    else if (rc != SL_OK)
        sl_error_set_at(err, rc, e->field[0] ? e->field : NULL, e->offset, "%s", e->message);
    return rc;
}

sl_status api_page_query(store *st, store_table t, store_index index, const char *key,
                         const store_query_opts *q, store_page *page, sl_error *err)
{
    sl_error e;
    sl_error_clear(&e);
    sl_status rc = index ? store_query_index(st, t, index, key, q, page, &e)
                         : store_query(st, t, key, q, page, &e);
    return api_cursor_blame(rc, &e, err);
}
