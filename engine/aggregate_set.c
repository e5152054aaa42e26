/* aggregate_set.c -- sets of aggregates keyed by identity (open addressing over
 * kind, tenant and names) and f(image): what one asset or surgery summary adds
 * to them.  The listener (deltas) and recompute (the shadow) share this f. */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENGINE__SET_DEFAULT_MAX 1000000u

/* An identity to look up: kind, then tenant and up to three names (by kind:
 * brand | brand, campaign | sector | hospital, procedure, sku). */
typedef struct ident {
    engine_agg_kind kind;
    int n;
    const char *s[4];
    size_t len[4];
} ident;

struct engine_aggset {
    size_t max;
    int mark_over; /* engine__aggset_mark_over(): mark, do not fail, past the metric limit */
    size_t n, cap;
    engine_agg **items; /* insertion (or sorted) order */
    uint64_t *hashes;   /* parallel to items */
    uint32_t *slots;    /* index + 1 into items, 0 = empty */
    size_t nslots;      /* power of two, at least 2 * n */
};

static void ident_of(const engine_agg *a, ident *id)
{
    id->kind = a->kind;
    id->s[0] = a->tenant;
    switch (a->kind) {
    case ENGINE_AGG_BRAND:
        id->n = 2;
        id->s[1] = a->brand;
        break;
    case ENGINE_AGG_CAMPAIGN:
        id->n = 3;
        id->s[1] = a->brand;
        id->s[2] = a->campaign;
        break;
    case ENGINE_AGG_SECTOR:
        id->n = 2;
        id->s[1] = a->sector;
        break;
    case ENGINE_AGG_TOOL:
    default:
        id->n = 4;
        id->s[1] = a->hospital;
        id->s[2] = a->procedure;
        id->s[3] = a->sku;
        break;
    }
    for (int i = 0; i < id->n; i++)
        id->len[i] = strlen(id->s[i]);
}

static uint64_t ident_hash(const ident *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    h = (h ^ (uint64_t)id->kind) * 1099511628211ULL;
    for (int i = 0; i < id->n; i++) {
        for (size_t j = 0; j < id->len[i]; j++)
            h = (h ^ (unsigned char)id->s[i][j]) * 1099511628211ULL;
        h = (h ^ 0xffu) * 1099511628211ULL; /* separator: no name holds 0xff */
    }
    return h;
}

/* name equals the len bytes at s (no strlen: this is the hot path). */
static int name_is(const char *name, const char *s, size_t len)
{
    return memcmp(name, s, len) == 0 && name[len] == '\0';
}

static int ident_matches(const ident *id, const engine_agg *a)
{
    int same = a->kind == id->kind && name_is(a->tenant, id->s[0], id->len[0]);
    switch (same ? id->kind : 0) {
    case ENGINE_AGG_BRAND:
        same = name_is(a->brand, id->s[1], id->len[1]);
        break;
    case ENGINE_AGG_CAMPAIGN:
        same =
            name_is(a->brand, id->s[1], id->len[1]) && name_is(a->campaign, id->s[2], id->len[2]);
        break;
    case ENGINE_AGG_SECTOR:
        same = name_is(a->sector, id->s[1], id->len[1]);
        break;
    case ENGINE_AGG_TOOL:
        same = name_is(a->hospital, id->s[1], id->len[1]) &&
               name_is(a->procedure, id->s[2], id->len[2]) && name_is(a->sku, id->s[3], id->len[3]);
        break;
    }
    return same;
}

sl_status engine_aggset_new(size_t max_aggs, engine_aggset **out, sl_error *err)
{
    sl_status rc = SL_OK;
    engine_aggset *set = calloc(1, sizeof *set);
    if (!set) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory creating an aggregate set");
        goto out;
    }
    set->max = max_aggs ? max_aggs : ENGINE__SET_DEFAULT_MAX;
    *out = set;
out:
    return rc;
}

void engine_aggset_clear(engine_aggset *set)
{
    for (size_t i = 0; i < set->n; i++) {
        engine_agg_free(set->items[i]);
        free(set->items[i]);
    }
    set->n = 0;
    if (set->slots)
        memset(set->slots, 0, set->nslots * sizeof *set->slots);
}

void engine_aggset_free(engine_aggset **set)
{
    if (set && *set) {
        engine_aggset_clear(*set);
        free((*set)->items);
        free((*set)->hashes);
        free((*set)->slots);
        free(*set);
        *set = NULL;
    }
}

size_t engine_aggset_count(const engine_aggset *set)
{
    return set->n;
}

engine_agg *engine_aggset_at(engine_aggset *set, size_t i)
{
    return i < set->n ? set->items[i] : NULL;
}

static void rehash(engine_aggset *set)
{
    memset(set->slots, 0, set->nslots * sizeof *set->slots);
    size_t mask = set->nslots - 1;
    for (size_t i = 0; i < set->n; i++) {
        size_t at = set->hashes[i] & mask;
        while (set->slots[at])
            at = (at + 1) & mask;
        set->slots[at] = (uint32_t)(i + 1);
    }
}

static engine_agg *find(const engine_aggset *set, const ident *id, uint64_t h)
{
    engine_agg *found = NULL;
    size_t mask = set->nslots ? set->nslots - 1 : 0;
    for (size_t at = h & mask; set->nslots && !found && set->slots[at]; at = (at + 1) & mask) {
        uint32_t i = set->slots[at] - 1;
        if (set->hashes[i] == h && ident_matches(id, set->items[i]))
            found = set->items[i];
    }
    return found;
}

engine_agg *engine_aggset_find(engine_aggset *set, const engine_agg *key)
{
    ident id;
    ident_of(key, &id);
    return find(set, &id, ident_hash(&id));
}

static void copy_name(char *dst, const char *s, size_t len)
{
    memcpy(dst, s, len);
    dst[len] = '\0';
}

/* Makes room for one more aggregate: items, hashes and slots.  0 when
 * memory ran out. */
static int grow(engine_aggset *set)
{
    int ok = 1;
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        engine_agg **items = realloc(set->items, cap * sizeof *items);
        if (items)
            set->items = items;
        uint64_t *hashes = items ? realloc(set->hashes, cap * sizeof *hashes) : NULL;
        if (hashes) {
            set->hashes = hashes;
            set->cap = cap;
        }
        ok = items && hashes;
    }
    if (ok && (set->n + 1) * 2 > set->nslots) {
        size_t nslots = set->nslots ? set->nslots * 2 : 128;
        uint32_t *slots = malloc(nslots * sizeof *slots);
        if (slots) {
            free(set->slots);
            set->slots = slots;
            set->nslots = nslots;
            rehash(set);
        }
        ok = slots != NULL;
    }
    return ok;
}

/* The aggregate of identity id, created empty when absent.  NULL when the set
 * is full or memory ran out (err says which). */
static engine_agg *get_or_create(engine_aggset *set, const ident *id, sl_error *err)
{
    uint64_t h = ident_hash(id);
    engine_agg *a = find(set, id, h);
    if (a)
        goto out;
    for (int i = 0; i < id->n; i++)
        if (id->len[i] >= ENGINE_NAME_SIZE) {
            sl_error_set(err, SL_EINVAL, "aggregate name longer than %d bytes",
                         SCHEMA_COMPONENT_MAX);
            goto out;
        }
    if (set->n >= set->max || set->n >= UINT32_MAX - 1) {
        sl_error_set(err, SL_ETOOLARGE, "more than %zu aggregates in one set", set->max);
        goto out;
    }
    if (!grow(set) || !(a = malloc(sizeof *a))) {
        sl_error_set(err, SL_ENOMEM, "out of memory growing an aggregate set");
        goto out;
    }
    engine_agg_init(a);
    a->kind = id->kind;
    copy_name(a->tenant, id->s[0], id->len[0]);
    switch (id->kind) {
    case ENGINE_AGG_BRAND:
        copy_name(a->brand, id->s[1], id->len[1]);
        break;
    case ENGINE_AGG_CAMPAIGN:
        copy_name(a->brand, id->s[1], id->len[1]);
        copy_name(a->campaign, id->s[2], id->len[2]);
        break;
    case ENGINE_AGG_SECTOR:
        copy_name(a->sector, id->s[1], id->len[1]);
        break;
    case ENGINE_AGG_TOOL:
        copy_name(a->hospital, id->s[1], id->len[1]);
        copy_name(a->procedure, id->s[2], id->len[2]);
        copy_name(a->sku, id->s[3], id->len[3]);
        break;
    }
    set->items[set->n] = a;
    set->hashes[set->n] = h;
    size_t mask = set->nslots - 1, at = h & mask;
    while (set->slots[at])
        at = (at + 1) & mask;
    set->slots[at] = (uint32_t)(set->n + 1);
    set->n++;
out:
    return a;
}

void engine__aggset_mark_over(engine_aggset *set)
{
    set->mark_over = 1;
}

/* dst += sign * a for what an aggregate over the metric limit keeps (its
 * counters), and dst is marked over: its metrics are dropped. */
static void add_over(engine_agg *dst, const engine_agg *a, int sign)
{
    int64_t s = sign < 0 ? -1 : 1;
    dst->count += s * a->count;
    dst->surgeries += s * a->surgeries;
    dst->surgeries_opened += s * a->surgeries_opened;
    dst->surgeries_used += s * a->surgeries_used;
    dst->units_opened += s * a->units_opened;
    dst->units_used += s * a->units_used;
    dst->waste_cents += s * a->waste_cents;
    free(dst->metrics);
    dst->metrics = NULL;
    dst->nmetrics = dst->cap_metrics = 0;
    dst->over_metrics = 1;
}

sl_status engine_aggset_add(engine_aggset *set, const engine_agg *a, int sign, sl_error *err)
{
    sl_status rc = SL_OK;
    sl_error e;
    ident id;
    ident_of(a, &id);
    sl_error_clear(&e);
    engine_agg *dst = get_or_create(set, &id, &e);
    if (!dst)
        rc = e.status ? e.status : SL_ENOMEM;
    else if (set->mark_over && (dst->over_metrics || a->over_metrics))
        add_over(dst, a, sign);
    else if ((rc = engine_agg_add(dst, a, sign, &e)) == SL_ETOOLARGE && set->mark_over) {
        add_over(dst, a, sign); /* dst was left as it was */
        rc = SL_OK;
    }
    if (rc != SL_OK)
        sl_error_set_at(err, rc, e.field[0] ? e.field : NULL, e.offset, "%s", e.message);
    return rc;
}

/* Sorting by (pk, sk): the keys are built once per aggregate. */
typedef struct sort_entry {
    char *pk, *sk;
    engine_agg *a;
    uint64_t h;
} sort_entry;

static int sort_cmp(const void *x, const void *y)
{
    const sort_entry *a = x, *b = y;
    int c = strcmp(a->pk, b->pk);
    return c ? c : strcmp(a->sk, b->sk);
}

void engine_aggset_sort(engine_aggset *set)
{
    /* Order is a nicety: without memory the set stays as it is. */
    sort_entry *e = set->n > 1 ? calloc(set->n, sizeof *e) : NULL;
    size_t i = 0;
    if (!e)
        goto out;
    for (i = 0; i < set->n; i++) {
        schema_key pk, sk;
        if (engine_agg_keys(set->items[i], pk, sk, NULL) != SL_OK)
            pk[0] = sk[0] = '\0';
        e[i].pk = strdup(pk);
        e[i].sk = strdup(sk);
        e[i].a = set->items[i];
        e[i].h = set->hashes[i];
        if (!e[i].pk || !e[i].sk) {
            i++;
            goto out;
        }
    }
    qsort(e, set->n, sizeof *e, sort_cmp);
    for (size_t j = 0; j < set->n; j++) {
        set->items[j] = e[j].a;
        set->hashes[j] = e[j].h;
    }
    rehash(set);
out:
    for (size_t j = 0; j < i; j++) {
        free(e[j].pk);
        free(e[j].sk);
    }
    free(e);
}

/* ---------------------------------------------------------------------------
 * f(image).
 * ------------------------------------------------------------------------- */
typedef struct str_ref {
    const char *s;
    uint32_t len;
} str_ref;

static int utf8_field(const bson_iter_t *it, str_ref *out)
{
    int ok = BSON_ITER_HOLDS_UTF8(it);
    if (ok) {
        out->s = bson_iter_utf8(it, &out->len);
        ok = out->len > 0 && strlen(out->s) == out->len; /* no embedded NUL */
    }
    return ok;
}

static int int_field(const bson_iter_t *it, int64_t *out)
{
    int ok = 1;
    if (BSON_ITER_HOLDS_INT64(it))
        *out = bson_iter_int64(it);
    else if (BSON_ITER_HOLDS_INT32(it))
        *out = bson_iter_int32(it);
    else
        ok = 0;
    return ok;
}

/* Checks that pk is "T#<tenant>#<kind>#..." with a non-empty rest. */
static int pk_matches(const str_ref *pk, const str_ref *tenant, const char *kind)
{
    size_t klen = strlen(kind);
    size_t need = 2 + tenant->len + 1 + klen + 1;
    return pk->len > need && !memcmp(pk->s, "T#", 2) &&
           !memcmp(pk->s + 2, tenant->s, tenant->len) && pk->s[2 + tenant->len] == '#' &&
           !memcmp(pk->s + 3 + tenant->len, kind, klen) && pk->s[3 + tenant->len + klen] == '#';
}

/* Validates a name unless an aggregate of the set already carries it (it was
 * validated when that aggregate was made). */
static sl_status check_component(const char *what, const str_ref *v, int known, sl_error *err)
{
    return known ? SL_OK : schema_component_check_n(what, v->s, v->len, err);
}

typedef struct asset_metric {
    str_ref name;
    int64_t micro;
} asset_metric;

typedef struct asset_view {
    str_ref pk, sk, tenant, brand, campaign, sector;
    size_t nm;
    asset_metric m[1 + ENGINE_ASSET_SALIENCY_MAX];
} asset_view;

static sl_status bad_asset(const asset_view *v, const char *field, sl_error *err, const char *why)
{
    return sl_error_set_at(err, SL_EINVAL, field, -1, "asset %.*s: %s", (int)v->pk.len,
                           v->pk.s ? v->pk.s : "?", why);
}

static sl_status parse_asset(const bson_t *image, asset_view *v, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it, sal;
    int has_mem = 0, has_sal = 0;
    memset(v, 0, sizeof *v);
    if (!bson_iter_init(&it, image)) {
        rc = sl_error_set(err, SL_EINVAL, "asset image is not valid BSON");
        goto out;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        uint32_t klen = bson_iter_key_len(&it);
        int ok = 1;
#define KEY_IS(lit) (klen == sizeof(lit) - 1 && !memcmp(k, lit, sizeof(lit) - 1))
        if (KEY_IS(SCHEMA_F_PK))
            ok = utf8_field(&it, &v->pk);
        else if (KEY_IS(SCHEMA_F_SK))
            ok = utf8_field(&it, &v->sk);
        else if (KEY_IS("tenant"))
            ok = utf8_field(&it, &v->tenant);
        else if (KEY_IS("brand"))
            ok = utf8_field(&it, &v->brand);
        else if (KEY_IS("campaign"))
            ok = BSON_ITER_HOLDS_NULL(&it) || utf8_field(&it, &v->campaign);
        else if (KEY_IS("sector"))
            ok = BSON_ITER_HOLDS_NULL(&it) || utf8_field(&it, &v->sector);
        else if (KEY_IS("memorability_micro"))
            ok = !has_mem++ && int_field(&it, &v->m[0].micro);
        else if (KEY_IS("saliency_micro"))
            ok = !has_sal++ && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sal);
#undef KEY_IS
        if (!ok) {
            rc = bad_asset(v, k, err, "field is empty, repeated or of the wrong type");
            goto out;
        }
    }
    if (!v->pk.s || !v->sk.s || !v->tenant.s || !v->brand.s) {
        rc = bad_asset(v,
                       !v->tenant.s  ? "tenant"
                       : !v->brand.s ? "brand"
                                     : "pk",
                       err, "pk, sk, tenant and brand are required");
        goto out;
    }
    if (!pk_matches(&v->pk, &v->tenant, "ASSET") || strcmp(v->sk.s, SCHEMA_SK_META) != 0) {
        rc = bad_asset(v, SCHEMA_F_PK, err, "key is not T#<tenant>#ASSET#<id> / META");
        goto out;
    }
    if (has_mem) {
        if (v->m[0].micro < 0 || v->m[0].micro > ENGINE_MICRO_ONE) {
            rc = bad_asset(v, "memorability_micro", err, "score outside [0, 1000000]");
            goto out;
        }
        v->m[0].name.s = ENGINE_METRIC_MEMORABILITY;
        v->m[0].name.len = (uint32_t)strlen(ENGINE_METRIC_MEMORABILITY);
        v->nm = 1;
    }
    while (has_sal && bson_iter_next(&sal)) {
        const char *why = NULL;
        asset_metric *m = &v->m[v->nm];
        if (v->nm >= sizeof v->m / sizeof v->m[0]) {
            why = "more than 32 saliency measures";
        } else {
            m->name.s = bson_iter_key(&sal);
            m->name.len = bson_iter_key_len(&sal);
            if (!int_field(&sal, &m->micro) || m->micro < 0 || m->micro > ENGINE_MICRO_ONE)
                why = "a saliency score is not an integer in [0, 1000000]";
            else if (m->name.len == 0 || m->name.len > ENGINE_METRIC_NAME_MAX ||
                     !strcmp(m->name.s, ENGINE_METRIC_MEMORABILITY))
                why = "a saliency name is empty, longer than 64 bytes or \"memorability\"";
            for (size_t j = has_mem ? 1 : 0; !why && j < v->nm; j++)
                if (!strcmp(v->m[j].name.s, m->name.s))
                    why = "a saliency name repeats";
        }
        if (why) {
            rc = bad_asset(v, "saliency_micro", err, why);
            goto out;
        }
        v->nm++;
    }
out:
    return rc;
}

static sl_status apply_asset(engine_aggset *set, const bson_t *image, int sign, sl_error *err)
{
    sl_status rc;
    asset_view v;
    ident ids[3];
    engine_agg *found[3], *a[3];
    int nt = 0;
    if ((rc = parse_asset(image, &v, err)) != SL_OK)
        goto out;
    /* Targets: brand, campaign (if any), sector (if any). */
    ids[nt++] = (ident){ENGINE_AGG_BRAND, 2, {v.tenant.s, v.brand.s}, {v.tenant.len, v.brand.len}};
    if (v.campaign.s)
        ids[nt++] = (ident){ENGINE_AGG_CAMPAIGN,
                            3,
                            {v.tenant.s, v.brand.s, v.campaign.s},
                            {v.tenant.len, v.brand.len, v.campaign.len}};
    if (v.sector.s)
        ids[nt++] =
            (ident){ENGINE_AGG_SECTOR, 2, {v.tenant.s, v.sector.s}, {v.tenant.len, v.sector.len}};

    /* Phase 1: validate everything before touching the set. */
    for (int t = 0; t < nt; t++)
        found[t] = find(set, &ids[t], ident_hash(&ids[t]));
    const char *bad = NULL;
    if (check_component("tenant", &v.tenant, found[0] != NULL, err) != SL_OK ||
        check_component("brand", &v.brand, found[0] != NULL, err) != SL_OK)
        bad = "brand";
    for (int t = 1; !bad && t < nt; t++) {
        int sector = ids[t].kind == ENGINE_AGG_SECTOR;
        if (check_component(sector ? "sector" : "campaign", sector ? &v.sector : &v.campaign,
                            found[t] != NULL, err) != SL_OK)
            bad = sector ? "sector" : "campaign";
    }
    for (size_t i = 0; !bad && i < v.nm; i++)
        if (strcmp(v.m[i].name.s, ENGINE_METRIC_MEMORABILITY) != 0 &&
            !(found[0] && engine_agg_metric(found[0], v.m[i].name.s)) &&
            schema_component_check_n("saliency name", v.m[i].name.s, v.m[i].name.len, err) != SL_OK)
            bad = "saliency_micro";
    if (bad) {
        rc = bad_asset(&v, bad, err, "invalid name");
        goto out;
    }

    /* Phase 2: make room (can fail, and then leaves only all-zero entries,
     * which change nothing), then add (cannot fail).  All-zero metrics (a
     * +1 and a -1 of deltas) are dropped before the metric limit is said to
     * be reached; past it a marking set marks the aggregate instead. */
    for (int t = 0; t < nt; t++) {
        if (!(a[t] = get_or_create(set, &ids[t], err))) {
            rc = err ? err->status : SL_ENOMEM;
            goto out;
        }
        for (int pruned = 0; !a[t]->over_metrics;) {
            sl_error e;
            sl_error_clear(&e);
            size_t i = 0;
            while (i < v.nm && engine__agg_metric_get(a[t], v.m[i].name.s, &e))
                i++;
            if (i == v.nm)
                break;
            if (e.status == SL_ETOOLARGE && !pruned) {
                engine__agg_prune(a[t]); /* and make room again: this asset's too went */
                pruned = 1;
            } else if (e.status == SL_ETOOLARGE && set->mark_over) {
                add_over(a[t], &(engine_agg){0}, +1);
            } else {
                rc = sl_error_set_at(err, e.status ? e.status : SL_ENOMEM,
                                     e.field[0] ? e.field : NULL, e.offset, "%s", e.message);
                goto out;
            }
        }
    }
    int64_t s = sign < 0 ? -1 : 1;
    for (int t = 0; t < nt; t++) {
        a[t]->count += s;
        for (size_t i = 0; !a[t]->over_metrics && i < v.nm; i++) {
            /* Found, not created: the metric exists since phase 2a. */
            engine_metric *mm = engine__agg_metric_get(a[t], v.m[i].name.s, NULL);
            int64_t x = v.m[i].micro;
            mm->n += s;
            mm->sum += s * x;
            mm->sumsq += (engine_i128)s * x * x;
            mm->hist[engine_hist_bin(x)] += s;
        }
    }
out:
    return rc;
}

/* The merged waste of one summary's entries of a sku (at most
 * ENGINE_SUMMARY_TOOLS_MAX entries of at most ENGINE_UNITS_MAX units at
 * SCHEMA_UNIT_COST_MAX each) cannot overflow int64: that is what bounds the
 * unit cost (schema.h). */
_Static_assert(ENGINE_SUMMARY_TOOLS_MAX *ENGINE_UNITS_MAX <= INT64_MAX / SCHEMA_UNIT_COST_MAX,
               "a surgery summary's waste must fit in int64");

/* One tools[] entry of a summary. */
typedef struct tool_entry {
    str_ref sku;
    int64_t opened, used, cost, waste;
} tool_entry;

static int tool_cmp(const void *x, const void *y)
{
    const tool_entry *a = x, *b = y;
    return strcmp(a->sku.s, b->sku.s);
}

static sl_status bad_summary(const str_ref *pk, const char *field, sl_error *err, const char *why)
{
    return sl_error_set_at(err, SL_EINVAL, field, -1, "surgery summary %.*s: %s", (int)pk->len,
                           pk->s ? pk->s : "?", why);
}

static sl_status parse_tool(bson_iter_t *t, tool_entry *e)
{
    bson_iter_t f;
    int has_sku = 0, has_o = 0, has_u = 0, has_c = 0, has_s = 0, single = 0;
    memset(e, 0, sizeof *e);
    int doc = BSON_ITER_HOLDS_DOCUMENT(t) && bson_iter_recurse(t, &f);
    while (doc && bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        if (!strcmp(k, SCHEMA_F_SKU))
            has_sku = utf8_field(&f, &e->sku);
        else if (!strcmp(k, SCHEMA_F_OPENED_UNITS))
            has_o = int_field(&f, &e->opened);
        else if (!strcmp(k, SCHEMA_F_USED_UNITS))
            has_u = int_field(&f, &e->used);
        else if (!strcmp(k, SCHEMA_F_UNIT_COST_CENTS))
            has_c = int_field(&f, &e->cost);
        else if (!strcmp(k, SCHEMA_F_SINGLE_USE)) {
            has_s = BSON_ITER_HOLDS_BOOL(&f);
            single = has_s && bson_iter_bool(&f);
        }
    }
    int ok = doc && has_sku && has_o && has_u && has_c && has_s && e->opened >= 0 &&
             e->opened <= ENGINE_UNITS_MAX && e->used >= 0 && e->used <= ENGINE_UNITS_MAX &&
             e->cost >= 0 && e->cost <= SCHEMA_UNIT_COST_MAX;
    e->waste = ok && single && e->opened > e->used ? (e->opened - e->used) * e->cost : 0;
    return ok ? SL_OK : SL_EINVAL;
}

static sl_status apply_summary(engine_aggset *set, const bson_t *image, int sign, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it, tools;
    str_ref pk = {0}, sk = {0}, tenant = {0}, hospital = {0}, procedure = {0};
    int has_tools = 0;
    tool_entry *e = NULL;
    size_t ne = 0;
    if (!bson_iter_init(&it, image)) {
        rc = sl_error_set(err, SL_EINVAL, "summary image is not valid BSON");
        goto out;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        int ok = 1;
        if (!strcmp(k, SCHEMA_F_PK))
            ok = utf8_field(&it, &pk);
        else if (!strcmp(k, SCHEMA_F_SK))
            ok = utf8_field(&it, &sk);
        else if (!strcmp(k, SCHEMA_F_TENANT))
            ok = utf8_field(&it, &tenant);
        else if (!strcmp(k, SCHEMA_F_HOSPITAL))
            ok = utf8_field(&it, &hospital);
        else if (!strcmp(k, SCHEMA_F_PROCEDURE))
            ok = utf8_field(&it, &procedure);
        else if (!strcmp(k, SCHEMA_F_TOOLS)) {
            ok = BSON_ITER_HOLDS_ARRAY(&it) && !has_tools && bson_iter_recurse(&it, &tools);
            has_tools = 1;
        } else
            continue;
        if (!ok) {
            rc = bad_summary(&pk, k, err, "field is missing, empty or of the wrong type");
            goto out;
        }
    }
    if (!pk.s || !sk.s || !tenant.s || !hospital.s || !procedure.s || !has_tools) {
        rc = bad_summary(&pk, "tenant", err,
                         "pk, sk, tenant, hospital, procedure and tools are required");
        goto out;
    }
    if (!pk_matches(&pk, &tenant, "SURGERY") || strcmp(sk.s, SCHEMA_SK_SUMMARY) != 0) {
        rc = bad_summary(&pk, SCHEMA_F_PK, err, "key is not T#<tenant>#SURGERY#<id> / SUMMARY");
        goto out;
    }
    if (schema_component_check_n("tenant", tenant.s, tenant.len, err) != SL_OK ||
        schema_component_check_n("hospital", hospital.s, hospital.len, err) != SL_OK ||
        schema_component_check_n("procedure", procedure.s, procedure.len, err) != SL_OK) {
        rc = bad_summary(&pk, "hospital", err, "invalid tenant, hospital or procedure name");
        goto out;
    }
    /* Count the entries first so that one allocation holds them. */
    bson_iter_t count = tools;
    size_t total = 0;
    while (bson_iter_next(&count))
        if (++total > ENGINE_SUMMARY_TOOLS_MAX) {
            rc = bad_summary(&pk, "tools", err, "more than 4096 tool entries");
            goto out;
        }
    if (total) {
        e = malloc(total * sizeof *e);
        if (!e) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory reading a surgery summary");
            goto out;
        }
    }
    while (bson_iter_next(&tools)) {
        if (parse_tool(&tools, &e[ne]) != SL_OK ||
            schema_component_check_n("sku", e[ne].sku.s, e[ne].sku.len, NULL) != SL_OK) {
            char field[32], why[160];
            snprintf(field, sizeof field, "tools[%zu]", ne);
            snprintf(why, sizeof why,
                     "needs sku (a valid name), opened_units and used_units (0..%lld), "
                     "unit_cost_cents (0..%lld) and single_use (bool)",
                     (long long)ENGINE_UNITS_MAX, (long long)SCHEMA_UNIT_COST_MAX);
            rc = bad_summary(&pk, field, err, why);
            goto out;
        }
        ne++;
    }
    /* Entries of one sku count the surgery once. */
    qsort(e, ne, sizeof *e, tool_cmp);
    size_t w = 0;
    for (size_t r = 0; r < ne; r++) {
        if (w && !strcmp(e[w - 1].sku.s, e[r].sku.s)) {
            e[w - 1].opened += e[r].opened;
            e[w - 1].used += e[r].used;
            e[w - 1].waste += e[r].waste;
        } else {
            e[w++] = e[r];
        }
    }
    ne = w;
    for (size_t i = 0; i < ne; i++) {
        ident id = {ENGINE_AGG_TOOL,
                    4,
                    {tenant.s, hospital.s, procedure.s, e[i].sku.s},
                    {tenant.len, hospital.len, procedure.len, e[i].sku.len}};
        if (!get_or_create(set, &id, err)) {
            rc = err ? err->status : SL_ENOMEM;
            goto out;
        }
    }
    int64_t s = sign < 0 ? -1 : 1;
    for (size_t i = 0; i < ne; i++) {
        ident id = {ENGINE_AGG_TOOL,
                    4,
                    {tenant.s, hospital.s, procedure.s, e[i].sku.s},
                    {tenant.len, hospital.len, procedure.len, e[i].sku.len}};
        engine_agg *t = find(set, &id, ident_hash(&id));
        t->surgeries += s;
        t->surgeries_opened += e[i].opened > 0 ? s : 0;
        t->surgeries_used += e[i].used > 0 ? s : 0;
        t->units_opened += s * e[i].opened;
        t->units_used += s * e[i].used;
        t->waste_cents += s * e[i].waste;
    }
out:
    free(e);
    return rc;
}

sl_status engine_aggset_apply_image(engine_aggset *set, const bson_t *image, int sign,
                                    sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it;
    const char *type =
        image && bson_iter_init_find(&it, image, SCHEMA_F_TYPE) && BSON_ITER_HOLDS_UTF8(&it)
            ? bson_iter_utf8(&it, NULL)
            : "";
    /* Anything but an asset or a summary contributes nothing. */
    if (!strcmp(type, SCHEMA_TYPE_ASSET))
        rc = apply_asset(set, image, sign, err);
    else if (!strcmp(type, SCHEMA_TYPE_SUMMARY))
        rc = apply_summary(set, image, sign, err);
    return rc;
}
