/* evaluate_read.c -- reading what `sightline evaluate` compares: a truth file
 * (simulate --truth), a results file (a usage answer or per-instance
 * results), or a surgery's tool_result documents through the store port.
 * Results are read leniently about members they do not need (an analyzer's
 * documents carry more: evidence, confidence, keys), strictly about the
 * types of those they do, naming the JSON path or document at fault. */
#include "evaluate.h"

#include <bson/bson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_json.h"

static sl_status nomem(sl_error *err)
{
    return sl_error_set(err, SL_ENOMEM, "out of memory");
}

void ev_box_normalize(double v[4], ev_box *out)
{
    bool micro = false;
    for (int i = 0; i < 4; i++)
        micro = micro || v[i] > 1.0;
    double k = micro ? 1e-6 : 1.0;
    *out = (ev_box){v[0] * k, v[1] * k, v[2] * k, v[3] * k};
}

static void inst_free(ev_inst *in)
{
    free(in->sku);
    free(in->slots);
}

void ev_truth_free(ev_truth *t)
{
    for (size_t i = 0; i < t->n; i++)
        inst_free(&t->inst[i]);
    for (size_t i = 0; i < t->nskus; i++)
        free(t->skus[i].sku);
    free(t->inst);
    free(t->skus);
    free(t->scenario);
    free(t->path);
    memset(t, 0, sizeof *t);
}

void ev_result_free(ev_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        inst_free(&r->inst[i]);
    for (size_t i = 0; i < r->nskus; i++)
        free(r->skus[i].sku);
    free(r->inst);
    free(r->skus);
    free(r->source);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------------------
 * JSON.
 * ------------------------------------------------------------------------- */

/* A box: {"x", "y", "w", "h"} or [x, y, w, h]. */
static sl_status json_box(yajl_val v, const char *path, ev_box *out, sl_error *err)
{
    static const char *const keys[] = {"x", "y", "w", "h"};
    sl_status rc = SL_OK;
    double b[4];
    bool arr = YAJL_IS_ARRAY(v) && v->u.array.len == 4;
    if (!arr && !YAJL_IS_OBJECT(v)) {
        rc = cmd_json_fail(err, path, "must be a box {\"x\", \"y\", \"w\", \"h\"} or [x, y, w, h]");
        goto out;
    }
    for (int i = 0; i < 4 && rc == SL_OK; i++) {
        if (arr) {
            char sub[CMD_JSON_PATH_MAX];
            cmd_json_path_index(sub, path, (size_t)i);
            rc = cmd_json_num_value(v->u.array.values[i], sub, 0, 1e9, &b[i], err);
        } else {
            rc = cmd_json_num(v, path, keys[i], true, 0, 1e9, &b[i], err);
        }
    }
    if (rc == SL_OK)
        ev_box_normalize(b, out);
out:
    return rc;
}

static sl_status add_slot(ev_inst *in, const ev_box *b, sl_error *err)
{
    ev_box *s = realloc(in->slots, (in->nslots + 1) * sizeof *s);
    if (!s)
        return nomem(err);
    in->slots = s;
    in->slots[in->nslots++] = *b;
    return SL_OK;
}

/* A frame number member: a whole number >= -1, or null (-1). */
static sl_status json_frame(yajl_val o, const char *path, const char *key, bool required,
                            int64_t *out, sl_error *err)
{
    *out = -1;
    return cmd_json_int(o, path, key, required && !cmd_json_get(o, key), -1, SCHEMA_FRAME_MAX, out,
                        err);
}

static sl_status truth_inst(yajl_val v, const char *p, ev_inst *in, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *sku = NULL;
    char q[CMD_JSON_PATH_MAX];
    bool single = false;
    int64_t cost = 0;
    ev_box b;
    *in = (ev_inst){.first_frame = -1, .left_frame = -1, .returned_frame = -1};
    if (!YAJL_IS_OBJECT(v)) {
        rc = cmd_json_fail(err, p, "must be an object");
        goto out;
    }
    if ((rc = cmd_json_str(v, p, "sku", true, SCHEMA_COMPONENT_MAX, &sku, err)) ||
        (rc = cmd_json_int(v, p, "instance", true, 1, SCHEMA_INSTANCE_MAX, &in->instance, err)) ||
        (rc = cmd_json_bool(v, p, "opened", true, &in->opened, err)) ||
        (rc = cmd_json_bool(v, p, "used", true, &in->used, err)) ||
        (rc = json_frame(v, p, "opened_at_frame", true, &in->first_frame, err)) ||
        (rc = json_frame(v, p, "left_at_frame", true, &in->left_frame, err)) ||
        (rc = json_frame(v, p, "returned_at_frame", true, &in->returned_frame, err)) ||
        (rc = cmd_json_bool(v, p, "single_use", true, &single, err)) ||
        (rc = cmd_json_int(v, p, "unit_cost_cents", true, 0, INT64_MAX / 1000000, &cost, err)))
        goto out;
    in->single_use = single;
    in->unit_cost_cents = cost;
    if (!(in->sku = strdup(sku))) {
        rc = nomem(err);
        goto out;
    }
    if (in->used && in->left_frame < 0) {
        cmd_json_path_key(q, p, "left_at_frame");
        rc = cmd_json_fail(err, q, "a used instance must say when it left");
        goto out;
    }
    yajl_val slots = cmd_json_get(v, "slots");
    cmd_json_path_key(q, p, "slots");
    if (slots && (!YAJL_IS_ARRAY(slots) || slots->u.array.len > 10000)) {
        rc = cmd_json_fail(err, q, "must be an array of boxes");
        goto out;
    }
    if (!slots || slots->u.array.len == 0) { /* then the slot it was opened in */
        cmd_json_path_key(q, p, "slot");
        if ((rc = json_box(cmd_json_get(v, "slot"), q, &b, err)) == SL_OK)
            rc = add_slot(in, &b, err);
        goto out;
    }
    for (size_t k = 0; k < slots->u.array.len && rc == SL_OK; k++) {
        char r[CMD_JSON_PATH_MAX];
        cmd_json_path_index(r, q, k);
        if ((rc = json_box(slots->u.array.values[k], r, &b, err)) == SL_OK)
            rc = add_slot(in, &b, err);
    }
out:
    return rc;
}

sl_status ev_truth_load(const char *path, ev_truth *t, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_val root = NULL;
    const char *name = NULL;
    memset(t, 0, sizeof *t);
    if ((rc = cmd_json_load(path, EV_FILE_BYTES_MAX, &root, err)) != SL_OK)
        goto out;
    yajl_val inst = cmd_json_get(root, "instances"), skus = cmd_json_get(root, "skus"),
             totals = cmd_json_get(root, "totals");
    if ((rc = cmd_json_str(root, "", "scenario", true, SCHEMA_COMPONENT_MAX, &name, err)) ||
        (rc = cmd_json_num(root, "", "fps", true, 0.001, 1000, &t->fps, err)) ||
        (rc = cmd_json_int(root, "", "frames", true, 1, (int64_t)SCHEMA_FRAME_MAX + 1, &t->frames,
                           err)) ||
        (rc = cmd_json_int(totals, "totals", "waste_cost_cents", true, 0, INT64_MAX,
                           &t->waste_cents, err)))
        goto out;
    if (!(t->scenario = strdup(name)) || !(t->path = strdup(path))) {
        rc = nomem(err);
        goto out;
    }
    if (!YAJL_IS_ARRAY(inst) || inst->u.array.len > EV_INSTANCES_MAX) {
        rc = cmd_json_fail(err, "instances", "must be an array of at most %u instances",
                           EV_INSTANCES_MAX);
        goto out;
    }
    if (!YAJL_IS_ARRAY(skus) || skus->u.array.len > EV_INSTANCES_MAX) {
        rc = cmd_json_fail(err, "skus", "must be an array");
        goto out;
    }
    t->inst = calloc(inst->u.array.len + 1, sizeof *t->inst);
    t->skus = calloc(skus->u.array.len + 1, sizeof *t->skus);
    if (!t->inst || !t->skus) {
        rc = nomem(err);
        goto out;
    }
    for (size_t i = 0; i < inst->u.array.len && rc == SL_OK; i++) {
        char p[CMD_JSON_PATH_MAX];
        cmd_json_path_index(p, "instances", i);
        rc = truth_inst(inst->u.array.values[i], p, &t->inst[i], err);
        t->n = i + 1;
    }
    for (size_t i = 0; i < skus->u.array.len && rc == SL_OK; i++) {
        char p[CMD_JSON_PATH_MAX];
        const char *sku = NULL;
        ev_sku *k = &t->skus[i];
        yajl_val v = skus->u.array.values[i];
        cmd_json_path_index(p, "skus", i);
        if ((rc = cmd_json_str(v, p, "sku", true, SCHEMA_COMPONENT_MAX, &sku, err)) ||
            (rc = cmd_json_int(v, p, "unit_cost_cents", true, 0, INT64_MAX / 1000000,
                               &k->unit_cost_cents, err)) ||
            (rc = cmd_json_bool(v, p, "single_use", true, &k->single_use, err)))
            break;
        if (!(k->sku = strdup(sku)))
            rc = nomem(err);
        t->nskus = i + 1;
    }
out:
    if (rc != SL_OK) {
        sl_error_prefix(err, "truth %s", path);
        ev_truth_free(t);
    }
    if (root)
        yajl_tree_free(root);
    return rc;
}

static sl_status result_inst(yajl_val v, const char *p, ev_inst *in, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *sku = NULL;
    bool single = false;
    ev_box b;
    char q[CMD_JSON_PATH_MAX];
    *in = (ev_inst){.opened = true,
                    .first_frame = -1,
                    .left_frame = -1,
                    .returned_frame = -1,
                    .unit_cost_cents = -1,
                    .single_use = -1};
    if (!YAJL_IS_OBJECT(v)) {
        rc = cmd_json_fail(err, p, "must be an object");
        goto out;
    }
    if ((rc = cmd_json_str(v, p, "sku", true, SCHEMA_COMPONENT_MAX, &sku, err)) ||
        (rc = cmd_json_int(v, p, "instance", false, 0, INT64_MAX, &in->instance, err)) ||
        (rc = cmd_json_bool(v, p, "opened", false, &in->opened, err)) ||
        (rc = cmd_json_bool(v, p, "used", true, &in->used, err)) ||
        (rc = json_frame(v, p, "left_frame", false, &in->left_frame, err)) ||
        (rc = json_frame(v, p, "returned_frame", false, &in->returned_frame, err)) ||
        (rc = json_frame(v, p,
                         cmd_json_has(v, "first_seen_frame") ? "first_seen_frame" : "first_frame",
                         false, &in->first_frame, err)) ||
        (rc = cmd_json_int(v, p, "unit_cost_cents", false, 0, INT64_MAX / 1000000,
                           &in->unit_cost_cents, err)))
        goto out;
    if (cmd_json_has(v, "single_use")) {
        if ((rc = cmd_json_bool(v, p, "single_use", true, &single, err)))
            goto out;
        in->single_use = single;
    }
    if (!(in->sku = strdup(sku))) {
        rc = nomem(err);
        goto out;
    }
    if (cmd_json_has(v, "slot")) {
        cmd_json_path_key(q, p, "slot");
        if ((rc = json_box(cmd_json_get(v, "slot"), q, &b, err)) == SL_OK)
            rc = add_slot(in, &b, err);
    }
out:
    return rc;
}

/* The GET /v1/surgeries/{id}/usage answer: quantities per SKU. */
static sl_status usage_answer(yajl_val root, ev_result *r, sl_error *err)
{
    sl_status rc = SL_OK;
    const char *status = NULL;
    if ((rc = cmd_json_str(root, "", "status", true, 64, &status, err)))
        goto out;
    if (strcmp(status, "analyzed")) {
        rc = cmd_json_fail(err, "status", "is \"%s\": only an analyzed surgery can be evaluated",
                           status);
        goto out;
    }
    if ((rc = cmd_json_int(root, "", "waste_cost_cents", true, 0, INT64_MAX, &r->waste_cents, err)))
        goto out;
    r->counts_only = r->has_waste = true;
    static const char *const lists[] = {"used", "unused"};
    for (int l = 0; l < 2 && rc == SL_OK; l++) {
        yajl_val a = cmd_json_get(root, lists[l]);
        if (!YAJL_IS_ARRAY(a) || a->u.array.len > EV_INSTANCES_MAX) {
            rc = cmd_json_fail(err, lists[l], "must be an array of {sku, quantity}");
            break;
        }
        for (size_t i = 0; i < a->u.array.len && rc == SL_OK; i++) {
            char p[CMD_JSON_PATH_MAX];
            const char *sku = NULL;
            int64_t q = 0;
            cmd_json_path_index(p, lists[l], i);
            if ((rc = cmd_json_str(a->u.array.values[i], p, "sku", true, SCHEMA_COMPONENT_MAX, &sku,
                                   err)) ||
                (rc = cmd_json_int(a->u.array.values[i], p, "quantity", true, 0, EV_INSTANCES_MAX,
                                   &q, err)))
                break;
            size_t k = 0;
            while (k < r->nskus && strcmp(r->skus[k].sku, sku))
                k++;
            if (k == r->nskus) {
                ev_sku *s = realloc(r->skus, (r->nskus + 1) * sizeof *s);
                if (!s) {
                    rc = nomem(err);
                    break;
                }
                r->skus = s;
                r->skus[k] = (ev_sku){.sku = strdup(sku)};
                r->nskus++;
                if (!r->skus[k].sku) {
                    rc = nomem(err);
                    break;
                }
            }
            r->skus[k].opened += q;
            if (l == 0)
                r->skus[k].used += q;
        }
    }
out:
    return rc;
}

sl_status ev_result_load(const char *path, ev_result *r, sl_error *err)
{
    sl_status rc = SL_OK;
    yajl_val root = NULL, list = NULL;
    const char *lp = "";
    memset(r, 0, sizeof *r);
    if (!(r->source = strdup(path))) {
        rc = nomem(err);
        goto out;
    }
    if ((rc = cmd_json_load(path, EV_FILE_BYTES_MAX, &root, err)) != SL_OK)
        goto out;
    if (YAJL_IS_OBJECT(root) && cmd_json_get(root, "status")) {
        rc = usage_answer(root, r, err);
        goto out;
    }
    if (YAJL_IS_ARRAY(root)) {
        list = root;
    } else {
        static const char *const names[] = {"tools", "results", "instances"};
        for (int i = 0; i < 3 && !list; i++)
            if (YAJL_IS_ARRAY(cmd_json_get(root, names[i])))
                list = cmd_json_get(root, lp = names[i]);
        yajl_val summary = cmd_json_get(root, "summary");
        yajl_val at = cmd_json_has(summary, "waste_cents") ? summary : root;
        const char *wk = cmd_json_has(at, "waste_cents") ? "waste_cents" : "waste_cost_cents";
        if (cmd_json_has(at, wk)) {
            if ((rc = cmd_json_int(at, at == root ? "" : "summary", wk, true, 0, INT64_MAX,
                                   &r->waste_cents, err)))
                goto out;
            r->has_waste = true;
        }
    }
    if (!list || list->u.array.len > EV_INSTANCES_MAX) {
        rc = cmd_json_fail(err, lp,
                           "not a usage answer ({\"status\", \"used\", ...}) nor instances (an "
                           "array of at most %u, or one under \"tools\", \"results\" or "
                           "\"instances\")",
                           EV_INSTANCES_MAX);
        goto out;
    }
    if (!(r->inst = calloc(list->u.array.len + 1, sizeof *r->inst))) {
        rc = nomem(err);
        goto out;
    }
    for (size_t i = 0; i < list->u.array.len && rc == SL_OK; i++) {
        char p[CMD_JSON_PATH_MAX];
        cmd_json_path_index(p, lp, i);
        rc = result_inst(list->u.array.values[i], p, &r->inst[i], err);
        r->n = i + 1;
    }
out:
    if (rc != SL_OK) {
        sl_error_prefix(err, "results %s", path);
        ev_result_free(r);
    }
    if (root)
        yajl_tree_free(root);
    return rc;
}

/* ---------------------------------------------------------------------------
 * The store: tool_result documents TOOL#<sku>#<nnnn> and the SUMMARY.
 * ------------------------------------------------------------------------- */
static bool bson_int(const bson_t *d, const char *key, int64_t *out)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d, key))
        return false;
    if (BSON_ITER_HOLDS_INT32(&it))
        *out = bson_iter_int32(&it);
    else if (BSON_ITER_HOLDS_INT64(&it))
        *out = bson_iter_int64(&it);
    else if (BSON_ITER_HOLDS_DOUBLE(&it) && isfinite(bson_iter_double(&it)))
        *out = (int64_t)llround(bson_iter_double(&it));
    else
        return false;
    return true;
}

static bool bson_bool(const bson_t *d, const char *key, bool *out)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, d, key) || !BSON_ITER_HOLDS_BOOL(&it))
        return false;
    *out = bson_iter_bool(&it);
    return true;
}

/* slot: a document {x, y, w, h} or an array of four numbers. */
static bool bson_box(const bson_t *d, ev_box *out)
{
    static const char *const keys[] = {"x", "y", "w", "h"};
    bson_iter_t it, sub;
    double v[4];
    int n = 0;
    if (!bson_iter_init_find(&it, d, "slot") ||
        !(BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) ||
        !bson_iter_recurse(&it, &sub))
        return false;
    bool arr = BSON_ITER_HOLDS_ARRAY(&it);
    while (bson_iter_next(&sub) && n < 4) {
        int i = n;
        if (!arr)
            for (i = 0; i < 4 && strcmp(bson_iter_key(&sub), keys[i]); i++)
                ;
        if (i == 4)
            continue;
        if (BSON_ITER_HOLDS_NUMBER(&sub))
            v[i] = bson_iter_as_double(&sub);
        else
            return false;
        n++;
    }
    if (n != 4)
        return false;
    ev_box_normalize(v, out);
    return true;
}

static sl_status store_inst(const bson_t *d, const char *sk, ev_inst *in, sl_error *err)
{
    sl_status rc = SL_OK;
    bson_iter_t it;
    const char *sku = NULL;
    bool b;
    ev_box box;
    *in = (ev_inst){.opened = true,
                    .first_frame = -1,
                    .left_frame = -1,
                    .returned_frame = -1,
                    .unit_cost_cents = -1,
                    .single_use = -1};
    if (bson_iter_init_find(&it, d, "sku") && BSON_ITER_HOLDS_UTF8(&it))
        sku = bson_iter_utf8(&it, NULL);
    if (!sku || !bson_bool(d, "used", &in->used)) {
        rc = sl_error_set_at(err, SL_ECORRUPT, sk, -1,
                             "tool result %s has no string \"sku\" or no bool \"used\"", sk);
        goto out;
    }
    (void)bson_bool(d, "opened", &in->opened);
    (void)bson_int(d, "instance", &in->instance);
    (void)bson_int(d, "left_frame", &in->left_frame);
    (void)bson_int(d, "returned_frame", &in->returned_frame);
    if (!bson_int(d, "first_seen_frame", &in->first_frame))
        (void)bson_int(d, "first_frame", &in->first_frame);
    (void)bson_int(d, "unit_cost_cents", &in->unit_cost_cents);
    if (bson_bool(d, "single_use", &b))
        in->single_use = b;
    if (!(in->sku = strdup(sku)) || (bson_box(d, &box) && add_slot(in, &box, err) != SL_OK))
        rc = nomem(err);
out:
    return rc;
}

sl_status ev_result_from_store(store *s, const char *tenant, const char *surgery, ev_result *r,
                               sl_error *err)
{
    sl_status rc = SL_OK;
    schema_key pk;
    bson_t *doc = NULL;
    store_page page = {0};
    char *token = NULL;
    size_t cap = 0;
    memset(r, 0, sizeof *r);
    size_t len = strlen(surgery) + 16;
    if (!(r->source = malloc(len))) {
        rc = nomem(err);
        goto out;
    }
    snprintf(r->source, len, "surgery %s", surgery);
    if ((rc = schema_pk_surgery(pk, tenant, surgery, err)) != SL_OK)
        goto out;
    sl_error e;
    sl_error_clear(&e);
    if ((rc = store_get(s, STORE_ITEMS, pk, SCHEMA_SK_META, &doc, &e)) != SL_OK) {
        if (rc == SL_ENOTFOUND)
            sl_error_set(err, rc, "no surgery %s in tenant %s", surgery, tenant);
        else
            sl_error_set_at(err, e.status, e.field, e.offset, "%s", e.message);
        goto out;
    }
    bson_destroy(doc);
    doc = NULL;
    for (;;) {
        store_query_opts q = {.range = {STORE_RANGE_BEGINS_WITH, SCHEMA_SK_TOOL_PREFIX, NULL},
                              .limit = STORE_PAGE_MAX,
                              .page_token = token};
        if ((rc = store_query(s, STORE_ITEMS, pk, &q, &page, err)) != SL_OK)
            goto out;
        for (size_t i = 0; i < page.count && rc == SL_OK; i++) {
            bson_t view;
            bson_iter_t it;
            if (!store_page_view(&page, i, &view)) {
                rc = sl_error_set_at(err, SL_ECORRUPT, page.docs[i].sk, -1,
                                     "document %s is not BSON", page.docs[i].sk);
                break;
            }
            if (!bson_iter_init_find(&it, &view, SCHEMA_F_TYPE) || !BSON_ITER_HOLDS_UTF8(&it) ||
                strcmp(bson_iter_utf8(&it, NULL), SCHEMA_TYPE_TOOL_RESULT))
                continue;
            if (r->n == EV_INSTANCES_MAX) {
                rc = sl_error_set(err, SL_ETOOLARGE, "more than %u tool results", EV_INSTANCES_MAX);
                break;
            }
            if (r->n == cap) {
                cap = cap ? cap * 2 : 64;
                ev_inst *p = realloc(r->inst, cap * sizeof *p);
                if (!p) {
                    rc = nomem(err);
                    break;
                }
                r->inst = p;
            }
            if ((rc = store_inst(&view, page.docs[i].sk, &r->inst[r->n], err)) == SL_OK)
                r->n++;
        }
        free(token);
        token = page.next_token ? strdup(page.next_token) : NULL;
        bool more = page.next_token != NULL;
        store_page_free(&page);
        if (rc != SL_OK)
            goto out;
        if (more && !token) {
            rc = nomem(err);
            goto out;
        }
        if (!more)
            break;
    }
    sl_error_clear(&e);
    sl_status g = store_get(s, STORE_ITEMS, pk, SCHEMA_SK_SUMMARY, &doc, &e);
    if (g == SL_OK) {
        r->has_waste = bson_int(doc, "waste_cents", &r->waste_cents);
    } else if (g != SL_ENOTFOUND) { /* no summary: the waste comes from the instances */
        rc = sl_error_set_at(err, e.status, e.field, e.offset, "%s", e.message);
        goto out;
    }
    if (r->n == 0 && !r->has_waste)
        rc = sl_error_set(err, SL_ENOTFOUND,
                          "surgery %s of tenant %s has no tool results: analyze it first", surgery,
                          tenant);
out:
    if (doc)
        bson_destroy(doc);
    store_page_free(&page);
    free(token);
    if (rc != SL_OK)
        ev_result_free(r);
    return rc;
}
