/* fuzz_page_token.c -- libFuzzer target: the store's page-token decoder
 * (store.c token_decode), which reads a position out of whatever token a
 * caller of the port passes.  The API seals its cursors (api/cursor.c), but
 * the port trusts no caller: every token must be refused with SL_EINVAL
 * naming page_token, or accepted and then be exactly what the encoder makes
 * of the position it names (encode(decode(x)) == x).
 *
 * Input: byte 0 picks one of the queries below; byte 1 holds the mode (bit
 * 0), a page size of 1..4 (bits 1-2) and, in sealed mode, bits to set past
 * the last encoded byte (bits 3-6); the rest is
 *   - mode 0 (raw): the token itself;
 *   - mode 1 (sealed): the token's bytes before its hash.  This harness
 *     appends the hash and base64url-encodes them itself, so the fuzzer gets
 *     past the hash to the position parsing behind it (and, with the extra
 *     bits, to a token that decodes to the same bytes but is not the
 *     canonical encoding of them).
 * In both modes the harness reads the token with its own model of the layout
 * (base64url, version, flags, length-prefixed keys, FNV-1a binding, range)
 * written from the comment in store.c, not from its code; the decoder must
 * accept exactly the tokens the model accepts.  An accepted token is then
 * run: the page store_query / store_query_index / store_scan answers on a
 * real SQLite store must be the documents strictly after the position, in
 * order, as the harness's own sort of the documents it wrote says.
 *
 * Seeds: LLVMFuzzerInitialize writes the store's real tokens for every query
 * (pages of 1 and 2 documents, in both modes) into the first corpus
 * directory as seed-*, so they are always those of the store.c under test,
 * and aborts when the model no longer reads them (the layout changed:
 * update the model below).
 *
 * store.c is compiled into this target (not linked from sl_store): the
 * token functions are static. */
#include "store/store.c"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---------------------------------------------------------------------------
 * The documents of the store, and the queries.
 * ------------------------------------------------------------------------- */

/* Sort keys chosen for edges: prefixes of each other, LIKE's % and _,
 * multibyte UTF-8, U+FFFF (whose successor byte is not UTF-8), and a key of
 * the maximal 1024 bytes (set up in fz_init). */
static const char *const sks[] = {"a",
                                  "a#",
                                  "a#b",
                                  "a#b#c",
                                  "a%",
                                  "a_",
                                  "ab",
                                  "b",
                                  "b#1",
                                  "\xc3\xa9t\xc3\xa9",
                                  "\xef\xbf\xbf",
                                  "\xef\xbf\xbfz",
                                  "%x",
                                  "z",
                                  NULL /* the long key */};
#define NSK (sizeof sks / sizeof sks[0])
static const char *const g1sks[] = {"x1", "x2", "x2#", "y"};
static char long_key[STORE_KEY_MAX + 1];

typedef struct fz_doc {
    store_table table;
    const char *pk, *sk, *g1sk, *g2sk; /* g1sk/g2sk NULL: not in the index */
} fz_doc;

#define DOCS_MAX 64
static fz_doc docs[DOCS_MAX];
static size_t ndocs;

typedef struct fz_query {
    store__qkind kind;
    store_table table;
    store_index index;
    const char *key; /* pk, gsi pk, or the scan's pk prefix */
    store_range_kind rk;
    const char *lo, *hi;
    int desc;
} fz_query;

static const fz_query queries[] = {
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_ALL, NULL, NULL, 0},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_ALL, NULL, NULL, 1},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_BEGINS_WITH, "a#", NULL, 0},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_BEGINS_WITH, "a", NULL, 1},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_BEGINS_WITH, "%", NULL, 0},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_BEGINS_WITH, "\xef\xbf\xbf", NULL, 0},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_BETWEEN, "a#", "b", 0},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#2", STORE_RANGE_GE, "a#b", NULL, 1},
    {STORE__Q_PARTITION, STORE_ITEMS, 0, "P#1", STORE_RANGE_LE, NULL, "b", 0},
    {STORE__Q_INDEX, STORE_ITEMS, STORE_GSI1, "G#1", STORE_RANGE_ALL, NULL, NULL, 0},
    {STORE__Q_INDEX, STORE_ITEMS, STORE_GSI1, "G#1", STORE_RANGE_BEGINS_WITH, "x2", NULL, 1},
    {STORE__Q_INDEX, STORE_ITEMS, STORE_GSI2, "H#1", STORE_RANGE_BETWEEN, "a", "b#1", 0},
    {STORE__Q_SCAN, STORE_ITEMS, 0, "", STORE_RANGE_ALL, NULL, NULL, 0},
    {STORE__Q_SCAN, STORE_ITEMS, 0, "P#", STORE_RANGE_ALL, NULL, NULL, 1},
    {STORE__Q_SCAN, STORE_AGGREGATES, 0, "A", STORE_RANGE_ALL, NULL, NULL, 0},
    {STORE__Q_PARTITION, STORE_AGGREGATES, 0, "A#1", STORE_RANGE_ALL, NULL, NULL, 1},
};
#define NQ (sizeof queries / sizeof queries[0])

static store *st;
static char st_dir[512];

/* ---------------------------------------------------------------------------
 * The model: the token layout read from the comment in store.c ("version,
 * flags (kind, order, table, index), the position (one length-prefixed
 * string per ordering column) and an FNV-1a-64 over the query's parameters
 * and all of the above", base64url without padding), written here anew.
 * ------------------------------------------------------------------------- */
#define M_VERSION    1u
#define M_TOKEN_MAX  4128u /* STORE_PAGE_TOKEN_MAX: bytes with the NUL */
#define M_KEY_MAX    1024u
#define M_FNV_OFFSET 0xcbf29ce484222325ull
#define M_FNV_PRIME  0x100000001b3ull

static void m_fnv(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * M_FNV_PRIME;
}

/* A string of the binding: its 32-bit length (all ones for none), then it. */
static void m_fnv_str(uint64_t *h, const char *s)
{
    uint32_t n = s ? (uint32_t)strlen(s) : UINT32_MAX;
    m_fnv(h, &n, sizeof n);
    if (s)
        m_fnv(h, s, n);
}

static int m_npos(const fz_query *f)
{
    return f->kind == STORE__Q_PARTITION ? 1 : f->kind == STORE__Q_INDEX ? 3 : 2;
}

/* What the query is bound to: a scan is a begins_with on pk with no key;
 * begins_with binds its prefix (none when empty) and the prefix's
 * successor (none when it has none). */
typedef struct m_bind {
    store_range_kind rk;
    const char *key, *lo, *hi;
    char succ[M_KEY_MAX + 1];
} m_bind;

static void m_binding(const fz_query *f, m_bind *b)
{
    memset(b, 0, sizeof *b);
    b->rk = f->rk;
    b->key = f->key;
    const char *prefix = f->lo;
    if (f->kind == STORE__Q_SCAN) {
        b->rk = STORE_RANGE_BEGINS_WITH;
        b->key = NULL;
        prefix = f->key;
    }
    switch (b->rk) {
    case STORE_RANGE_BEGINS_WITH: {
        size_t n = strlen(prefix);
        while (n > 0 && (unsigned char)prefix[n - 1] == 0xff)
            n--;
        b->lo = prefix[0] ? prefix : NULL;
        if (n > 0) {
            memcpy(b->succ, prefix, n);
            b->succ[n - 1] = (char)((unsigned char)b->succ[n - 1] + 1);
            b->hi = b->succ;
        }
        break;
    }
    case STORE_RANGE_BETWEEN:
        b->lo = f->lo;
        b->hi = f->hi;
        break;
    case STORE_RANGE_GE:
        b->lo = f->lo;
        break;
    case STORE_RANGE_LE:
        b->hi = f->hi;
        break;
    default:
        break;
    }
}

static uint8_t m_flags(const fz_query *f)
{
    return (uint8_t)((unsigned)f->kind | (f->desc ? 4u : 0u) | (unsigned)f->table << 3 |
                     (unsigned)f->index << 4);
}

/* The hash of body[0..n) (version, flags, position) for query f. */
static uint64_t m_hash(const fz_query *f, const uint8_t *body, size_t n)
{
    m_bind b;
    m_binding(f, &b);
    uint64_t h = M_FNV_OFFSET;
    uint8_t fixed[5] = {M_VERSION, (uint8_t)f->kind, (uint8_t)f->table, (uint8_t)f->index,
                        (uint8_t)b.rk};
    int desc = f->desc;
    m_fnv(&h, fixed, sizeof fixed);
    m_fnv(&h, &desc, sizeof desc);
    m_fnv_str(&h, b.key);
    m_fnv_str(&h, b.lo);
    m_fnv_str(&h, b.hi);
    m_fnv(&h, body, n);
    return h;
}

static int m_b64val(unsigned char c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '-'             ? 62
           : c == '_'             ? 63
                                  : -1;
}

/* Unpadded base64url of in[0..n) into out (4 * n / 3 + 4 bytes). */
static void m_b64enc(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, bits = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = a[(acc >> bits) & 63];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits)
        out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* Canonical unpadded base64url: every character of the alphabet, a length
 * that is not 1 mod 4, and zero bits past the last byte.  -1 otherwise. */
static long m_b64dec(const char *s, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4 == 1)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        size_t k = len - i < 4 ? len - i : 4;
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int c = j < k ? m_b64val((unsigned char)s[i + j]) : 0;
            if (c < 0)
                return -1;
            v = v << 6 | (uint32_t)c;
        }
        size_t bytes = k - 1; /* 4 characters: 3 bytes, 3: 2, 2: 1 */
        uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        for (size_t j = bytes; j < 3; j++)
            if (b[j])
                return -1; /* bits past the last byte */
        if (o + bytes > cap)
            return -1;
        memcpy(out + o, b, bytes);
        o += bytes;
    }
    return (long)o;
}

/* The first ordering column of a position lies in the query's range. */
static int m_in_range(const fz_query *f, const char *k)
{
    if (f->kind == STORE__Q_SCAN)
        return strncmp(k, f->key, strlen(f->key)) == 0;
    switch (f->rk) {
    case STORE_RANGE_BEGINS_WITH:
        return strncmp(k, f->lo, strlen(f->lo)) == 0;
    case STORE_RANGE_BETWEEN:
        return strcmp(k, f->lo) >= 0 && strcmp(k, f->hi) <= 0;
    case STORE_RANGE_GE:
        return strcmp(k, f->lo) >= 0;
    case STORE_RANGE_LE:
        return strcmp(k, f->hi) <= 0;
    default:
        return 1;
    }
}

/* A position as the model reads it. */
typedef struct m_pos {
    char s[3][M_KEY_MAX + 1];
} m_pos;

/* Whether the decoded token body[0..n) (hash included) is one query f must
 * accept; fills *p when it is. */
static int m_accepts(const fz_query *f, const uint8_t *body, size_t n, m_pos *p)
{
    if (n < 2 + 8 || body[0] != M_VERSION || body[1] != m_flags(f))
        return 0;
    uint64_t h = m_hash(f, body, n - 8);
    for (int i = 0; i < 8; i++)
        if (body[n - 8 + (size_t)i] != (uint8_t)(h >> (8 * i)))
            return 0;
    size_t at = 2, end = n - 8;
    for (int i = 0; i < m_npos(f); i++) {
        if (end - at < 2)
            return 0;
        size_t l = (size_t)body[at] << 8 | body[at + 1];
        at += 2;
        if (l > M_KEY_MAX || end - at < l || memchr(body + at, 0, l) ||
            !bson_utf8_validate((const char *)body + at, l, false))
            return 0;
        memcpy(p->s[i], body + at, l);
        p->s[i][l] = '\0';
        at += l;
    }
    return at == end && m_in_range(f, p->s[0]);
}

/* ---------------------------------------------------------------------------
 * The expected page: the harness's own filter and sort of docs[].
 * ------------------------------------------------------------------------- */

/* The ordering columns of document d in query f (npos of them). */
static void cols_of(const fz_query *f, const fz_doc *d, const char *c[3])
{
    if (f->kind == STORE__Q_INDEX) {
        c[0] = f->index == STORE_GSI1 ? d->g1sk : d->g2sk;
        c[1] = d->pk;
        c[2] = d->sk;
    } else if (f->kind == STORE__Q_PARTITION) {
        c[0] = d->sk;
    } else {
        c[0] = d->pk;
        c[1] = d->sk;
    }
}

static int in_query(const fz_query *f, const fz_doc *d)
{
    const char *c[3];
    if (d->table != f->table)
        return 0;
    if (f->kind == STORE__Q_INDEX) {
        const char *gpk = f->index == STORE_GSI1 ? "G#1" : "H#1";
        if (strcmp(f->key, gpk) || !(f->index == STORE_GSI1 ? d->g1sk : d->g2sk))
            return 0;
    } else if (f->kind == STORE__Q_PARTITION && strcmp(d->pk, f->key)) {
        return 0;
    }
    cols_of(f, d, c);
    return m_in_range(f, c[0]);
}

/* Order of a against b in the query's direction, each npos columns. */
static int cols_cmp(const fz_query *f, const char *const *a, const char *const *b)
{
    int r = 0;
    for (int i = 0; i < m_npos(f) && !r; i++)
        r = strcmp(a[i], b[i]);
    return f->desc ? -r : r;
}

static const fz_query *sort_query; /* qsort has no context argument */

static int doc_cmp(const void *x, const void *y)
{
    const char *a[3], *b[3];
    cols_of(sort_query, *(const fz_doc *const *)x, a);
    cols_of(sort_query, *(const fz_doc *const *)y, b);
    return cols_cmp(sort_query, a, b);
}

/* The documents of f strictly after position pos (NULL: from the start), in
 * order; returns how many. */
static size_t expected(const fz_query *f, const m_pos *pos, const fz_doc **out)
{
    size_t n = 0;
    const char *pc[3] = {0};
    for (int i = 0; pos && i < m_npos(f); i++)
        pc[i] = pos->s[i];
    for (size_t i = 0; i < ndocs; i++) {
        const char *c[3];
        cols_of(f, &docs[i], c);
        if (in_query(f, &docs[i]) && (!pos || cols_cmp(f, c, pc) > 0))
            out[n++] = &docs[i];
    }
    sort_query = f;
    qsort(out, n, sizeof *out, doc_cmp);
    return n;
}

/* Runs f on the store from token (NULL: the first page). */
static sl_status run(const fz_query *f, const char *token, size_t limit, store_page *page,
                     sl_error *e)
{
    store_query_opts o = {
        .range = {f->rk, f->lo, f->hi}, .descending = f->desc, .limit = limit, .page_token = token};
    sl_error_clear(e);
    if (f->kind == STORE__Q_PARTITION)
        return store_query(st, f->table, f->key, &o, page, e);
    if (f->kind == STORE__Q_INDEX)
        return store_query_index(st, f->table, f->index, f->key, &o, page, e);
    return store_scan(st, f->table, f->key, &o, page, e);
}

/* The page the store answers for token must be what the model expects. */
static void check_page(const fz_query *f, const char *token, const m_pos *pos, size_t limit)
{
    const fz_doc *want[DOCS_MAX];
    size_t n = expected(f, pos, want);
    store_page page;
    sl_error e;
    if (run(f, token, limit, &page, &e) != SL_OK) {
        fprintf(stderr, "fuzz_page_token: an accepted token failed its query: %s\n", e.message);
        __builtin_trap();
    }
    size_t count = n < limit ? n : limit;
    if (page.count != count) {
        fprintf(stderr, "fuzz_page_token: page of %zu documents, expected %zu\n", page.count,
                count);
        __builtin_trap();
    }
    for (size_t i = 0; i < count; i++)
        if (strcmp(page.docs[i].pk, want[i]->pk) || strcmp(page.docs[i].sk, want[i]->sk)) {
            fprintf(stderr, "fuzz_page_token: document %zu is (%s, %s), expected (%s, %s)\n", i,
                    page.docs[i].pk, page.docs[i].sk, want[i]->pk, want[i]->sk);
            __builtin_trap();
        }
    /* A next token whenever documents remain; one past a page that ended
     * exactly at the last document is allowed (store.h). */
    if ((n > count && !page.next_token) || (n <= count && page.next_token && count < limit))
        __builtin_trap();
    store_page_free(&page);
}

/* ---------------------------------------------------------------------------
 * One token against the decoder, the model and the store.
 * ------------------------------------------------------------------------- */

/* store.c's query for f, made as run_query() makes it. */
static void store_query_of(const fz_query *f, store__query *q, store_range_kind *rk, char *succ)
{
    sl_error e;
    memset(q, 0, sizeof *q);
    q->kind = f->kind;
    q->table = f->table;
    q->index = f->index;
    q->key = f->key;
    q->descending = f->desc;
    q->limit = 1;
    store_range r = {f->rk, f->lo, f->hi};
    if (f->kind == STORE__Q_SCAN)
        r = (store_range){STORE_RANGE_BEGINS_WITH, f->key, NULL};
    if (range_apply(&r, q, succ, &e) != SL_OK)
        abort();
    *rk = r.kind;
    if (f->kind == STORE__Q_SCAN)
        q->key = NULL;
}

/* 1 when token was accepted. */
static int check_token(const fz_query *f, const char *token, size_t limit)
{
    store__query q;
    store_range_kind rk;
    char succ[STORE_KEY_MAX + 1];
    static token_pos tp; /* 3 KB: not on the stack of every run */
    static m_pos mp;
    static uint8_t body[M_TOKEN_MAX];
    sl_error e;
    store_query_of(f, &q, &rk, succ);
    sl_error_clear(&e);
    sl_status rc = token_decode(&q, rk, token, m_npos(f), &tp, &e);

    size_t len = strlen(token);
    long n = len < M_TOKEN_MAX ? m_b64dec(token, len, body, sizeof body) : -1;
    int want = n >= 0 && m_accepts(f, body, (size_t)n, &mp);

    if (rc != SL_OK) {
        /* Refused: SL_EINVAL naming page_token and saying why, and only
         * what the model refuses. */
        if (rc != SL_EINVAL || strcmp(e.field, "page_token") || !strstr(e.message, "page token"))
            __builtin_trap();
        if (want) {
            fprintf(stderr, "fuzz_page_token: a well-formed token was refused: %s\n", e.message);
            __builtin_trap();
        }
        return 0;
    }
    if (!want) {
        fprintf(stderr, "fuzz_page_token: a token the model refuses was accepted\n");
        __builtin_trap();
    }
    /* Accepted: the same position as the model read, and encoded back to
     * the very same token. */
    const char *pos[3];
    for (int i = 0; i < m_npos(f); i++) {
        if (strcmp(tp.s[i], mp.s[i]))
            __builtin_trap();
        pos[i] = tp.s[i];
    }
    char *again = NULL;
    if (token_encode(&q, rk, pos, m_npos(f), &again, &e) != SL_OK || strcmp(again, token)) {
        fprintf(stderr, "fuzz_page_token: encode(decode(x)) != x\n");
        __builtin_trap();
    }
    free(again);
    check_page(f, token, &mp, limit);
    return 1;
}

/* ---------------------------------------------------------------------------
 * The store and the seeds.
 * ------------------------------------------------------------------------- */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *w)
{
    (void)sb;
    (void)flag;
    (void)w;
    return remove(path);
}

static void fz_cleanup(void)
{
    store_close(&st);
    if (st_dir[0])
        nftw(st_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void fz_fail(const char *what, const sl_error *e)
{
    fprintf(stderr, "fuzz_page_token: %s%s%s\n", what, e ? ": " : "", e ? e->message : "");
    abort();
}

static void fz_store(void)
{
    sl_error e;
    char uri[sizeof st_dir + 32];
    /* Under $TMPDIR: run_fuzz.sh points it into its own folder, which it
     * removes even after a crash (which skips atexit). */
    const char *tmp = getenv("TMPDIR");
    snprintf(st_dir, sizeof st_dir, "%s/sl-fuzz-token-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(st_dir))
        fz_fail("cannot make a directory under $TMPDIR or /tmp", NULL);
    atexit(fz_cleanup);
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", st_dir);
    sl_error_clear(&e);
    if (store_open(uri, NULL, &st, &e) != SL_OK)
        fz_fail("cannot open the store", &e);
    memset(long_key, 'm', STORE_KEY_MAX);
    const char *pks[] = {"P#1", "P#2"};
    for (size_t p = 0; p < 2; p++)
        for (size_t i = p; i < NSK; i += p + 1) { /* P#2 holds every other key */
            const char *sk = sks[i] ? sks[i] : long_key;
            docs[ndocs++] = (fz_doc){STORE_ITEMS, pks[p], sk, g1sks[i % 4],
                                     sks[(i * 7) % NSK] ? sks[(i * 7) % NSK] : long_key};
        }
    const char *agg[][2] = {{"A#1", "a"}, {"A#1", "b"}, {"A#1", "c"}, {"A#2", "a"}, {"B#1", "a"}};
    for (size_t i = 0; i < sizeof agg / sizeof agg[0]; i++)
        docs[ndocs++] = (fz_doc){STORE_AGGREGATES, agg[i][0], agg[i][1], NULL, NULL};
    for (size_t i = 0; i < ndocs; i++) {
        bson_t *d = bson_new();
        BSON_APPEND_UTF8(d, "pk", docs[i].pk);
        BSON_APPEND_UTF8(d, "sk", docs[i].sk);
        if (docs[i].g1sk) {
            BSON_APPEND_UTF8(d, "gsi1pk", "G#1");
            BSON_APPEND_UTF8(d, "gsi1sk", docs[i].g1sk);
            BSON_APPEND_UTF8(d, "gsi2pk", "H#1");
            BSON_APPEND_UTF8(d, "gsi2sk", docs[i].g2sk);
        }
        sl_error_clear(&e);
        sl_status rc = store_put(st, docs[i].table, d, (store_cond){STORE_COND_NONE, 0}, NULL, &e);
        bson_destroy(d);
        if (rc != SL_OK)
            fz_fail("cannot write a document", &e);
    }
}

/* The first corpus directory of the command line, or NULL. */
static const char *corpus_dir(int argc, char **argv)
{
    struct stat sb;
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-' && stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode))
            return argv[i];
    return NULL;
}

static void write_seed(const char *dir, const char *name, uint8_t q, uint8_t mode, const void *body,
                       size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fputc(q, fp) == EOF || fputc(mode, fp) == EOF || fwrite(body, 1, n, fp) != n ||
        fclose(fp) != 0)
        fprintf(stderr, "fuzz_page_token: cannot write the seed %s\n", path);
}

/* Pages through every query with pages of 1 and 2 documents; every real
 * token must be read by the model as the store's decoder reads it, and is
 * written as a seed (raw and sealed) when dir is set. */
static void fz_seeds(const char *dir)
{
    static uint8_t body[M_TOKEN_MAX];
    char name[64];
    int seeds = 0;
    for (uint8_t qi = 0; qi < NQ; qi++)
        for (size_t limit = 1; limit <= 2; limit++) {
            const fz_query *f = &queries[qi];
            char *token = NULL;
            for (int page_no = 0;; page_no++) {
                store_page page;
                sl_error e;
                if (run(f, token, limit, &page, &e) != SL_OK)
                    fz_fail("a query of the seeds failed", &e);
                free(token);
                token = page.next_token ? strdup(page.next_token) : NULL;
                store_page_free(&page);
                if (!token)
                    break;
                long n = m_b64dec(token, strlen(token), body, sizeof body);
                if (!check_token(f, token, limit) || n < 10)
                    fz_fail("a real token of the store is not what this harness models: the "
                            "token layout changed; update the model in fuzz_page_token.c",
                            NULL);
                if (dir && page_no < 6) {
                    snprintf(name, sizeof name, "seed-q%02u-l%zu-%d", qi, limit, page_no);
                    write_seed(dir, name, qi, (uint8_t)((limit - 1) << 1), token, strlen(token));
                    snprintf(name, sizeof name, "seed-q%02u-l%zu-%d-sealed", qi, limit, page_no);
                    write_seed(dir, name, qi, (uint8_t)((limit - 1) << 1 | 1), body, (size_t)n - 8);
                    seeds += 2;
                }
            }
        }
    if (dir)
        fprintf(stderr, "fuzz_page_token: %d seeds of real tokens in %s\n", seeds, dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_store();
    fz_seeds(corpus_dir(*argc, *argv));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char token[M_TOKEN_MAX * 6];
    static uint8_t body[M_TOKEN_MAX * 4];
    if (size < 2)
        return 0;
    const fz_query *f = &queries[data[0] % NQ];
    size_t limit = 1 + (size_t)(data[1] >> 1) % 4;
    unsigned pad = (unsigned)(data[1] >> 3) & 15;
    size_t n = size - 2;
    if (data[1] & 1) {
        /* Sealed: body + its hash, encoded by the model.  Bodies that could
         * not make a token under the size limit are skipped. */
        if (n + 8 > sizeof body)
            return 0;
        memcpy(body, data + 2, n);
        uint64_t h = m_hash(f, body, n);
        for (int i = 0; i < 8; i++)
            body[n + (size_t)i] = (uint8_t)(h >> (8 * i));
        m_b64enc(body, n + 8, token);
        /* The last character carries 4 (one byte left over) or 2 (two)
         * bits past the data: set some of them. */
        size_t spare = (n + 8) % 3 == 1 ? 4 : (n + 8) % 3 == 2 ? 2 : 0;
        if (spare && (pad & ((1u << spare) - 1))) {
            static const char a[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            char *last = token + strlen(token) - 1;
            *last = a[m_b64val((unsigned char)*last) | (int)(pad & ((1u << spare) - 1))];
        }
    } else {
        if (n >= sizeof token)
            return 0;
        memcpy(token, data + 2, n);
        token[n] = '\0'; /* a NUL inside ends the token, as for any C caller */
    }
    check_token(f, token, limit);
    return 0;
}
