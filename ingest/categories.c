/* categories.c -- class id -> label name maps for COCO results and TF-OD
 * outputs: the COCO 91-id list built in, or a map read (streaming) from
 * JSON: COCO's "categories" array, a whole annotation file, or {"id": name}. */
#include "ingest_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CATEGORIES_MAX 100000u

typedef struct category {
    int64_t id;
    const char *name;
} category;

struct ingest_categories {
    size_t n;
    const category *cats; /* sorted by id */
    bool is_static;
};

/* COCO 2014/2017 detection categories: 80 names on ids 1..90. */
static const category coco_cats[] = {
    {1, "person"},         {2, "bicycle"},       {3, "car"},
    {4, "motorcycle"},     {5, "airplane"},      {6, "bus"},
    {7, "train"},          {8, "truck"},         {9, "boat"},
    {10, "traffic light"}, {11, "fire hydrant"}, {13, "stop sign"},
    {14, "parking meter"}, {15, "bench"},        {16, "bird"},
    {17, "cat"},           {18, "dog"},          {19, "horse"},
    {20, "sheep"},         {21, "cow"},          {22, "elephant"},
    {23, "bear"},          {24, "zebra"},        {25, "giraffe"},
    {27, "backpack"},      {28, "umbrella"},     {31, "handbag"},
    {32, "tie"},           {33, "suitcase"},     {34, "frisbee"},
    {35, "skis"},          {36, "snowboard"},    {37, "sports ball"},
    {38, "kite"},          {39, "baseball bat"}, {40, "baseball glove"},
    {41, "skateboard"},    {42, "surfboard"},    {43, "tennis racket"},
    {44, "bottle"},        {46, "wine glass"},   {47, "cup"},
    {48, "fork"},          {49, "knife"},        {50, "spoon"},
    {51, "bowl"},          {52, "banana"},       {53, "apple"},
    {54, "sandwich"},      {55, "orange"},       {56, "broccoli"},
    {57, "carrot"},        {58, "hot dog"},      {59, "pizza"},
    {60, "donut"},         {61, "cake"},         {62, "chair"},
    {63, "couch"},         {64, "potted plant"}, {65, "bed"},
    {67, "dining table"},  {70, "toilet"},       {72, "tv"},
    {73, "laptop"},        {74, "mouse"},        {75, "remote"},
    {76, "keyboard"},      {77, "cell phone"},   {78, "microwave"},
    {79, "oven"},          {80, "toaster"},      {81, "sink"},
    {82, "refrigerator"},  {84, "book"},         {85, "clock"},
    {86, "vase"},          {87, "scissors"},     {88, "teddy bear"},
    {89, "hair drier"},    {90, "toothbrush"},
};

static const ingest_categories coco = {
    .n = sizeof coco_cats / sizeof coco_cats[0], .cats = coco_cats, .is_static = true};

const ingest_categories *ingest_categories_coco(void)
{
    return &coco;
}

const char *ingest_categories_name(const ingest_categories *c, int64_t id)
{
    size_t lo = 0, hi = c ? c->n : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->cats[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c && lo < c->n && c->cats[lo].id == id ? c->cats[lo].name : NULL;
}

void ingest_categories_free(ingest_categories **cp)
{
    if (!cp || !*cp)
        return;
    ingest_categories *c = *cp;
    if (!c->is_static) {
        for (size_t i = 0; i < c->n; i++)
            free((char *)c->cats[i].name);
        free((category *)c->cats);
        free(c);
    }
    *cp = NULL;
}

/* ---------------------------------------------------------------------------
 * Reading a map.
 * ------------------------------------------------------------------------- */
typedef enum { M_START, M_LIST, M_OBJECT } cat_mode;

typedef struct loader {
    ingest__json *json;
    cat_mode mode;
    int list_depth; /* depth of the array of {id, name} */
    ingest__skip skip;
    enum { K_OTHER, K_ID, K_NAME, K_CATEGORIES, K_NUMERIC } key;
    int64_t key_id;
    bool have_id;
    int64_t id;
    char *name;
    category *cats;
    size_t n, cap;
} loader;

/* Appends a copy of name; the loader owns it, then the map it builds
 * (freed by ingest_categories_free). */
static bool add(loader *l, int64_t id, const char *name, size_t len)
{
    if (len == 0 || len > INGEST_LABEL_MAX)
        return ingest__json_fail(l->json, SL_EINVAL, "category name must be 1 to %u bytes long",
                                 INGEST_LABEL_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20)
            return ingest__json_fail(l->json, SL_EINVAL, "category name holds a control character");
    if (l->n >= CATEGORIES_MAX)
        return ingest__json_fail(l->json, SL_EINVAL, "more than %u categories", CATEGORIES_MAX);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 128;
        category *c = realloc(l->cats, sizeof *c * cap);
        if (!c)
            return ingest__json_fail(l->json, SL_ENOMEM, "out of memory");
        l->cats = c;
        l->cap = cap;
    }
    char *copy = strndup(name, len);
    if (!copy)
        return ingest__json_fail(l->json, SL_ENOMEM, "out of memory");
    l->cats[l->n++] = (category){.id = id, .name = copy};
    return true;
}

static bool digits_key(const char *s, size_t n, int64_t *id)
{
    if (n == 0 || n > 15)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *id = v;
    return true;
}

static bool on_event(void *ctx, ingest__jev ev, const ingest__jval *v)
{
    loader *l = ctx;
    if (ingest__skipping(&l->skip, ev))
        return true;
    int d = ingest__json_depth(l->json);
    int cd = ev == INGEST__J_MAP || ev == INGEST__J_ARRAY ? d - 1 : d;
    if (ev == INGEST__J_KEY) {
        if (l->mode == M_OBJECT && d == 1) {
            l->key = v->len == 10 && memcmp(v->s, "categories", 10) == 0 ? K_CATEGORIES
                     : digits_key(v->s, v->len, &l->key_id)              ? K_NUMERIC
                                                                         : K_OTHER;
        } else if (l->mode == M_LIST && d == l->list_depth + 1) {
            l->key = v->len == 2 && memcmp(v->s, "id", 2) == 0     ? K_ID
                     : v->len == 4 && memcmp(v->s, "name", 4) == 0 ? K_NAME
                                                                   : K_OTHER;
        }
        return true;
    }
    if (ev == INGEST__J_END_MAP) {
        if (l->mode == M_LIST && d == l->list_depth + 1) {
            if (!l->have_id || !l->name)
                return ingest__json_fail(l->json, SL_EINVAL, "category needs an id and a name");
            bool ok = add(l, l->id, l->name, strlen(l->name));
            free(l->name);
            l->name = NULL;
            return ok;
        }
        return true;
    }
    if (ev == INGEST__J_END_ARRAY)
        return true;
    if (cd == 0) {
        if (ev == INGEST__J_ARRAY) {
            l->mode = M_LIST;
            l->list_depth = 1;
            return true;
        }
        if (ev == INGEST__J_MAP) {
            l->mode = M_OBJECT;
            return true;
        }
        return ingest__json_fail(l->json, SL_EINVAL,
                                 "a category map is an array of {id, name} or an object, not %s",
                                 ingest__jev_name(ev));
    }
    if (l->mode == M_OBJECT && cd == 1) {
        if (l->key == K_CATEGORIES) {
            if (ev != INGEST__J_ARRAY)
                return ingest__json_fail(l->json, SL_EINVAL, "categories must be an array");
            l->mode = M_LIST;
            l->list_depth = 2;
            return true;
        }
        if (l->key == K_NUMERIC) {
            if (ev != INGEST__J_STRING)
                return ingest__json_fail(l->json, SL_EINVAL, "category name must be a string");
            return add(l, l->key_id, v->s, v->len);
        }
        ingest__skip_value(&l->skip, ev);
        return true;
    }
    if (l->mode == M_LIST && cd == l->list_depth) {
        if (ev != INGEST__J_MAP)
            return ingest__json_fail(l->json, SL_EINVAL, "each category must be an object");
        l->have_id = false;
        free(l->name);
        l->name = NULL;
        return true;
    }
    if (l->mode == M_LIST && cd == l->list_depth + 1) {
        if (l->key == K_ID) {
            if (ev != INGEST__J_NUMBER || !ingest__number_int(v->s, v->len, &l->id))
                return ingest__json_fail(l->json, SL_EINVAL, "id must be a whole number");
            l->have_id = true;
            return true;
        }
        if (l->key == K_NAME) {
            if (ev != INGEST__J_STRING)
                return ingest__json_fail(l->json, SL_EINVAL, "name must be a string");
            free(l->name);
            l->name = strndup(v->s, v->len);
            if (!l->name || strlen(l->name) != v->len)
                return ingest__json_fail(l->json, SL_EINVAL, "name must be a string without NUL");
            return true;
        }
    }
    ingest__skip_value(&l->skip, ev);
    return true;
}

static int by_id(const void *a, const void *b)
{
    const category *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Feeds from either memory or a file descriptor. */
static sl_status load(const void *mem, size_t len, int fd, const ingest_limits *lim,
                      ingest_categories **out, sl_error *err)
{
    sl_status rc = SL_OK;
    loader l = {0};
    ingest_limits dl;
    ingest_categories *c = NULL;
    if (!lim) {
        ingest_limits_default(&dl);
        lim = &dl;
    }
    ingest__json_options o = {.limits = lim};
    rc = ingest__json_new(&o, on_event, &l, &l.json, err);
    if (rc != SL_OK)
        goto out;
    if (mem) {
        rc = ingest__json_feed(l.json, mem, len, err);
    } else {
        static const size_t BUF = 64 * 1024;
        char *buf = malloc(BUF);
        if (!buf) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        for (;;) {
            ssize_t r = read(fd, buf, BUF);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = sl_error_set(err, SL_EIO, "cannot read the category map: %s", strerror(errno));
                break;
            }
            if (r == 0)
                break;
            rc = ingest__json_feed(l.json, buf, (size_t)r, err);
            if (rc != SL_OK)
                break;
        }
        free(buf);
    }
    if (rc == SL_OK)
        rc = ingest__json_finish(l.json, false, err);
    if (rc != SL_OK)
        goto out;
    if (l.n == 0) {
        rc = sl_error_set(err, SL_EINVAL, "the category map holds no category");
        goto out;
    }
    qsort(l.cats, l.n, sizeof *l.cats, by_id);
    for (size_t i = 1; i < l.n; i++)
        if (l.cats[i].id == l.cats[i - 1].id) {
            rc = sl_error_set(err, SL_EINVAL, "category id %lld appears twice",
                              (long long)l.cats[i].id);
            goto out;
        }
    c = calloc(1, sizeof *c);
    if (!c) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    c->n = l.n;
    c->cats = l.cats;
    l.cats = NULL;
    l.n = 0;
out:
    ingest__json_free(&l.json);
    free(l.name);
    for (size_t i = 0; i < l.n; i++)
        free((char *)l.cats[i].name);
    free(l.cats);
    if (rc == SL_OK)
        *out = c;
    return rc;
}

sl_status ingest_categories_parse(const void *json, size_t len, const ingest_limits *lim,
                                  ingest_categories **out, sl_error *err)
{
    return load(json ? json : "", len, -1, lim, out, err);
}

sl_status ingest_categories_load(const char *path, const ingest_limits *lim,
                                 ingest_categories **out, sl_error *err)
{
    sl_status rc = SL_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = sl_error_set(err, errno == ENOENT ? SL_ENOTFOUND : SL_EIO,
                          "cannot open category map %s: %s", path, strerror(errno));
        goto out;
    }
    rc = load(NULL, 0, fd, lim, out, err);
    close(fd);
    if (rc != SL_OK)
        sl_error_prefix(err, "category map %s", path);
out:
    return rc;
}
