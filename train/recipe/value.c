// train/recipe/value.c: turning YAML nodes into typed fields, one function per key type, with
// YAML 1.2 core-schema scalar rules: plain `null`, `~` or nothing is null; `true`/`false` are
// booleans; numbers are numbers; anything quoted is a string. Also comparing and freeing fields.
#include "train/recipe/recipe-impl.h"
#include "common/check.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    SCALAR_NULL,
    SCALAR_BOOL,
    SCALAR_INT,
    SCALAR_FLOAT,
    SCALAR_STRING,
    SCALAR_BAD, // a tagged scalar whose text is not of its tag's type (`!!int abc`)
} ScalarType;

static const char DIGITS[] = "0123456789";

static bool is_int(const char *s) {
    if (*s == '+' || *s == '-') s++;
    size_t n = strspn(s, DIGITS);
    return n > 0 && s[n] == '\0';
}

// [-+]? ( .digits | digits ( . digits? )? ) ( [eE] [-+]? digits )?
static bool is_float(const char *s) {
    if (*s == '+' || *s == '-') s++;
    size_t whole = strspn(s, DIGITS), frac = 0;
    s += whole;
    if (*s == '.') {
        frac = strspn(s + 1, DIGITS);
        s += 1 + frac;
    }
    if (whole + frac == 0) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        size_t exp = strspn(s, DIGITS);
        if (exp == 0) return false;
        s += exp;
    }
    return *s == '\0';
}

static bool is_one_of(const char *s, const char *const *words) {
    for (; *words; words++)
        if (strcmp(s, *words) == 0) return true;
    return false;
}

static const char *const NULLS[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const TRUES[] = {"true", "True", "TRUE", NULL};
static const char *const FALSES[] = {"false", "False", "FALSE", NULL};

// The type of a plain (unquoted) scalar.
static ScalarType plain_type(const char *s) {
    if (is_one_of(s, NULLS)) return SCALAR_NULL;
    if (is_one_of(s, TRUES) || is_one_of(s, FALSES)) return SCALAR_BOOL;
    if (is_int(s)) return SCALAR_INT;
    if (is_float(s)) return SCALAR_FLOAT;
    return SCALAR_STRING;
}

// ---- explicit tags ------------------------------------------------------------------------------

// The tags of YAML 1.2's core schema; a node's tag is set only where the recipe writes one
// (source_keep_written_tags), and then it decides the type: `!!str 5` is a string, `!!int "5"`
// the integer 5. Any other tag is an error rather than ignored.
typedef enum {
    TAG_NONE,
    TAG_STR,
    TAG_INT,
    TAG_FLOAT,
    TAG_BOOL,
    TAG_NULL,
    TAG_SEQ,
    TAG_MAP,
    TAG_OTHER
} Tag;

static const char *const TAG_NAMES[] = {"", "str", "int", "float", "bool", "null", "seq", "map"};
static const char CORE_TAG[] = "tag:yaml.org,2002:";

static Tag node_tag(const yaml_node_t *n) {
    const char *t = (const char *)n->tag;
    if (!t) return TAG_NONE;
    if (strncmp(t, CORE_TAG, sizeof(CORE_TAG) - 1) != 0) return TAG_OTHER;
    for (int i = TAG_STR; i < TAG_OTHER; i++)
        if (strcmp(t + sizeof(CORE_TAG) - 1, TAG_NAMES[i]) == 0) return (Tag)i;
    return TAG_OTHER;
}

// A tag as the recipe would write it: "!!int", "!local".
static const char *tag_text(const yaml_node_t *n, char *buf, size_t len) {
    const char *t = (const char *)n->tag;
    if (strncmp(t, CORE_TAG, sizeof(CORE_TAG) - 1) == 0)
        snprintf(buf, len, "!!%.100s", t + sizeof(CORE_TAG) - 1);
    else
        snprintf(buf, len, "%.100s", t);
    return buf;
}

static ScalarType scalar_type(const yaml_node_t *n) {
    const char *s = (const char *)n->data.scalar.value;
    switch (node_tag(n)) {
    case TAG_NONE:
        return n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ? SCALAR_STRING : plain_type(s);
    case TAG_STR:
        return SCALAR_STRING;
    case TAG_INT:
        return is_int(s) ? SCALAR_INT : SCALAR_BAD;
    case TAG_FLOAT:
        return is_int(s) || is_float(s) ? SCALAR_FLOAT : SCALAR_BAD;
    case TAG_BOOL:
        return is_one_of(s, TRUES) || is_one_of(s, FALSES) ? SCALAR_BOOL : SCALAR_BAD;
    case TAG_NULL:
        return is_one_of(s, NULLS) ? SCALAR_NULL : SCALAR_BAD;
    default:
        return SCALAR_BAD; // !!seq or !!map on a scalar, or a tag of no schema
    }
}

// Why the tag of n (not of its children) does not fit the node, into msg; NULL if it does.
static const char *tag_misfit(const yaml_node_t *n, char *msg, size_t len) {
    char tag[128];
    Tag t = node_tag(n);
    if (t == TAG_NONE) return NULL;
    tag_text(n, tag, sizeof(tag));
    if (t == TAG_OTHER)
        snprintf(msg, len,
                 "unknown tag '%s' (a recipe may use !!str, !!int, !!float, !!bool, "
                 "!!null, !!seq and !!map)",
                 tag);
    else if (n->type == YAML_SCALAR_NODE && scalar_type(n) == SCALAR_BAD)
        snprintf(msg, len, "'%.200s' is not a%s %s", (const char *)n->data.scalar.value,
                 t == TAG_INT ? "n" : "", tag);
    else if ((n->type == YAML_SEQUENCE_NODE && t != TAG_SEQ) ||
             (n->type == YAML_MAPPING_NODE && t != TAG_MAP))
        snprintf(msg, len, "a %s cannot be %s", n->type == YAML_SEQUENCE_NODE ? "list" : "map",
                 tag);
    else
        return NULL;
    return msg;
}

const yaml_node_t *node_tag_misfit(yaml_document_t *doc, yaml_node_t *n, char *msg, size_t len) {
    if (tag_misfit(n, msg, len)) return n;
    if (n->type != YAML_SEQUENCE_NODE) return NULL;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *bad = node_tag_misfit(doc, yaml_document_get_node(doc, *it), msg, len);
        if (bad) return bad;
    }
    return NULL;
}

bool plain_is_string(const char *s) {
    return plain_type(s) == SCALAR_STRING;
}

bool node_is_null(const yaml_node_t *n) {
    return !n || (n->type == YAML_SCALAR_NODE && scalar_type(n) == SCALAR_NULL);
}

static const char *scalar_text(const yaml_node_t *n) {
    return (const char *)n->data.scalar.value;
}

// How a node reads in a message: 'abc', the quoted string '3', a list, a map, null.
static const char *describe(const yaml_node_t *n, char *buf, size_t len) {
    if (node_is_null(n)) return "null";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (n->type == YAML_MAPPING_NODE) return "a map";
    char tag[128];
    if (n->tag)
        snprintf(buf, len, "the %s '%.100s'", tag_text(n, tag, sizeof(tag)), scalar_text(n));
    else if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        snprintf(buf, len, "the quoted string '%.200s'", scalar_text(n));
    else
        snprintf(buf, len, "'%.200s'", scalar_text(n));
    return buf;
}

// What a value is being stored, and where from; errors are reported through it.
typedef struct {
    RecipeLoader *L; // the loader (its error buffer and working directory)
    const Target *t; // what the value goes into
    const Key *k;    // the key it is the value of
    Source *src;     // the document the value node belongs to
} Store;

static RecipeError store_fail(const Store *s, RecipeError status, const yaml_node_t *at,
                              const char *msg) {
    char where[512];
    source_where(s->src, at, where, sizeof(where));
    return recipe_fail(s->L, status, where, s->t->prefix, s->k->path, "%s", msg);
}

static RecipeError type_fail(const Store *s, const yaml_node_t *n, const char *want,
                             const char *item) {
    char got[256], msg[512];
    snprintf(msg, sizeof(msg), "%sexpected %s, got %s", item, want, describe(n, got, sizeof(got)));
    return store_fail(s, RECIPE_ERR_TYPE, n, msg);
}

static bool in_range(const Range *r, double v) {
    bool lo = r->lo_open ? v > r->lo : v >= r->lo;
    bool hi = r->hi_open ? v < r->hi : v <= r->hi;
    return lo && hi && !isnan(v);
}

static RecipeError range_fail(const Store *s, const yaml_node_t *n, const char *item) {
    char range[64], msg[512];
    bool interval = isfinite(s->k->range.lo) && isfinite(s->k->range.hi);
    key_format_range(s->k, range, sizeof(range));
    snprintf(msg, sizeof(msg), "%svalue %.100s is out of range: must be %s%s", item, scalar_text(n),
             interval ? "in " : "", range);
    return store_fail(s, RECIPE_ERR_RANGE, n, msg);
}

// ---- one function per type ----------------------------------------------------------------------

static RecipeError store_int(const Store *s, const yaml_node_t *n, int *out) {
    if (n->type != YAML_SCALAR_NODE || scalar_type(n) != SCALAR_INT)
        return type_fail(s, n, "an integer", "");
    errno = 0;
    long long v = strtoll(scalar_text(n), NULL, 10);
    if (errno || v < INT_MIN || v > INT_MAX)
        return store_fail(s, RECIPE_ERR_RANGE, n, "value does not fit in an int");
    if (!in_range(&s->k->range, (double)v)) return range_fail(s, n, "");
    *out = (int)v;
    return RECIPE_OK;
}

// One number (of a float key, or an item of a list of floats).
static RecipeError parse_float(const Store *s, const yaml_node_t *n, const char *item,
                               double *out) {
    if (n->type != YAML_SCALAR_NODE ||
        (scalar_type(n) != SCALAR_INT && scalar_type(n) != SCALAR_FLOAT))
        return type_fail(s, n, "a number", item);
    double v = strtod(scalar_text(n), NULL);
    if (!isfinite(v) || !in_range(&s->k->range, v)) return range_fail(s, n, item);
    *out = v;
    return RECIPE_OK;
}

static RecipeError store_float(const Store *s, const yaml_node_t *n, double *out) {
    if (node_is_null(n) && s->k->def && strcmp(s->k->def, "null") == 0) {
        *out = NAN; // unset
        return RECIPE_OK;
    }
    return parse_float(s, n, "", out);
}

static RecipeError store_bool(const Store *s, const yaml_node_t *n, bool *out) {
    if (n->type != YAML_SCALAR_NODE || scalar_type(n) != SCALAR_BOOL)
        return type_fail(s, n, "true or false", "");
    *out = is_one_of(scalar_text(n), TRUES);
    return RECIPE_OK;
}

// Whether n can be a string: any scalar but null, unless a tag makes it a number or a bool.
static bool is_text(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && !node_is_null(n) &&
           (!n->tag || scalar_type(n) == SCALAR_STRING);
}

static RecipeError store_enum(const Store *s, const yaml_node_t *n, int *out) {
    if (!is_text(n)) return type_fail(s, n, "a name", "");
    for (int i = 0; s->k->names[i]; i++)
        if (strcmp(scalar_text(n), s->k->names[i]) == 0) {
            *out = i;
            return RECIPE_OK;
        }
    char msg[512];
    Suggest sg;
    suggest_init(&sg, scalar_text(n));
    size_t used = (size_t)snprintf(msg, sizeof(msg), "expected one of");
    for (int i = 0; s->k->names[i]; i++) {
        suggest_consider(&sg, s->k->names[i]);
        used +=
            (size_t)snprintf(msg + used, sizeof(msg) - used, "%s %s", i ? "," : "", s->k->names[i]);
    }
    snprintf(msg + used, sizeof(msg) - used, ", got '%.100s'", scalar_text(n));
    suggest_append(&sg, "", msg, sizeof(msg));
    return store_fail(s, RECIPE_ERR_RANGE, n, msg);
}

// A string as stored: relative paths resolved against the folder of whatever set them; a
// best-of-n entry in its canonical form "bon(<model>, <n>)", its model resolved the same way (a
// malformed one is kept as written, for the rules to report).
static char *string_resolve(const Store *s, const char *text) {
    const Key *k = s->k;
    if ((k->flags & KEY_STAGE_DATA) && output_is_name(text)) return strdup(text); // a stage
    char model[PATH_MAX], err[256];
    int n;
    int bon = (k->flags & KEY_STAGE_REF)
                  ? recipe_bon_parse(text, model, sizeof(model), &n, err, sizeof(err))
                  : 0;
    if (bon < 0) return strdup(text);
    if (bon > 0) {
        char *inner = string_resolve(s, model);
        size_t len = strlen(inner) + 32;
        char *v = lc_malloc(len);
        snprintf(v, len, "bon(%s, %d)", inner, n);
        free(inner);
        return v;
    }
    bool path = (k->flags & KEY_INPUT_PATH) || ((k->flags & KEY_STAGE_REF) && ref_is_path(text));
    if (*text && path && s->src->dir) return path_resolve(s->src->dir, text);
    if (*text && (k->flags & KEY_OUTPUT_PATH)) return path_resolve(s->L->cwd, text);
    return strdup(text);
}

static RecipeError store_string(const Store *s, const yaml_node_t *n, char **out) {
    if (!is_text(n)) return type_fail(s, n, "a string", "");
    char *v = string_resolve(s, scalar_text(n));
    LC_ASSERT(v);
    free(*out);
    *out = v;
    return RECIPE_OK;
}

static void strings_clear(StringList *l) {
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

// Whether item (plain) opens a best-of-n entry that a flow list's commas split: `[sft,
// bon(sft, 4)]` reads in YAML as "sft", "bon(sft", "4)".
static bool bon_split(const yaml_node_t *item) {
    const char *t = scalar_text(item);
    return item->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strncmp(t, "bon(", 4) == 0 &&
           !strchr(t, ')');
}

// The items of list n as strings (count of them, malloc'd); for a list of stage references, a
// best-of-n entry split by a flow list's commas is joined again.
static char **strings_items(const Store *s, yaml_node_t *n, int *count) {
    yaml_node_item_t *it = n->data.sequence.items.start, *end = n->data.sequence.items.top;
    char **items = lc_calloc((size_t)(end - it) + 1, sizeof(char *));
    *count = 0;
    for (; it < end; it++) {
        yaml_node_t *item = yaml_document_get_node(&s->src->doc, *it);
        const char *t = scalar_text(item);
        if (!(s->k->flags & KEY_STAGE_REF) || !bon_split(item)) {
            items[(*count)++] = strdup(t);
            continue;
        }
        yaml_node_item_t *last = it;
        size_t len = 1;
        for (;; last++) {
            const char *part = scalar_text(yaml_document_get_node(&s->src->doc, *last));
            len += strlen(part) + 2;
            if (strchr(part, ')') || last + 1 == end) break;
        }
        char *joined = lc_malloc(len);
        *joined = '\0';
        for (; it <= last; it++) {
            if (*joined) strcat(joined, ", ");
            strcat(joined, scalar_text(yaml_document_get_node(&s->src->doc, *it)));
        }
        it = last;
        items[(*count)++] = joined;
    }
    return items;
}

static RecipeError store_strings(const Store *s, yaml_node_t *n, StringList *out) {
    if (n->type != YAML_SEQUENCE_NODE) return type_fail(s, n, "a list of strings", "");
    yaml_node_item_t *it = n->data.sequence.items.start, *end = n->data.sequence.items.top;
    for (int i = 0; i < (int)(end - it); i++) {
        yaml_node_t *item = yaml_document_get_node(&s->src->doc, it[i]);
        if (!is_text(item)) return type_fail(s, item, "a string", "list item: ");
    }
    int count;
    char **items = strings_items(s, n, &count);
    if (!in_range(&s->k->range, count)) {
        char range[64], msg[128];
        key_format_range(s->k, range, sizeof(range));
        snprintf(msg, sizeof(msg), "expected %s items, got %d", range, count);
        for (int i = 0; i < count; i++) free(items[i]);
        free(items);
        return store_fail(s, RECIPE_ERR_RANGE, n, msg);
    }
    strings_clear(out);
    out->items = lc_calloc((size_t)count, sizeof(char *));
    for (out->n = 0; out->n < count; out->n++) {
        out->items[out->n] = string_resolve(s, items[out->n]);
        free(items[out->n]);
    }
    free(items);
    return RECIPE_OK;
}

static RecipeError store_floats(const Store *s, yaml_node_t *n, double *out) {
    int len = s->k->len;
    char want[64];
    snprintf(want, sizeof(want), "a list of %d numbers", len);
    if (n->type != YAML_SEQUENCE_NODE) return type_fail(s, n, want, "");
    yaml_node_item_t *it = n->data.sequence.items.start;
    int count = (int)(n->data.sequence.items.top - it);
    if (count != len) {
        char msg[128];
        snprintf(msg, sizeof(msg), "expected %s, got %d", want, count);
        return store_fail(s, RECIPE_ERR_TYPE, n, msg);
    }
    double v[8];
    LC_ASSERT(len <= 8);
    for (int i = 0; i < len; i++) {
        char item[32];
        snprintf(item, sizeof(item), "item %d: ", i + 1);
        RecipeError rc = parse_float(s, yaml_document_get_node(&s->src->doc, it[i]), item, &v[i]);
        if (rc) return rc;
    }
    memcpy(out, v, (size_t)len * sizeof(double));
    return RECIPE_OK;
}

static RecipeError store_node(const Store *s, yaml_node_t *n) {
    void *f = key_field(s->k, s->t->base);
    switch (s->k->type) {
    case KEY_INT:
        return store_int(s, n, f);
    case KEY_FLOAT:
        return store_float(s, n, f);
    case KEY_BOOL:
        return store_bool(s, n, f);
    case KEY_STRING:
        return store_string(s, n, f);
    case KEY_ENUM:
        return store_enum(s, n, f);
    case KEY_STRINGS:
        return store_strings(s, n, f);
    case KEY_FLOATS:
        return store_floats(s, n, f);
    }
    LC_DIE("key '%s' has no type", s->k->path);
}

// Stores k's built-in default into t.
static void store_default(RecipeLoader *L, const Target *t, const Key *k) {
    Source src = {0};
    Store s = {L, t, k, &src};
    RecipeError rc = source_parse_text(&src, k->def, L->err, L->errlen);
    if (rc == RECIPE_OK) rc = store_node(&s, yaml_document_get_root_node(&src.doc));
    if (rc) LC_DIE("the built-in default of '%s' does not load: %s", k->path, L->err);
    source_free(&src);
}

RecipeError value_store(RecipeLoader *L, const Target *t, const Key *k, Source *src,
                        yaml_node_t *node) {
    Store s = {L, t, k, src};
    char where[512];
    source_where(src, node, where, sizeof(where));
    if (node_is_null(node) && !k->def)
        return recipe_fail(L, RECIPE_ERR_MISSING, where, t->prefix, k->path, "required, got null");
    char misfit[512];
    const yaml_node_t *bad = node ? node_tag_misfit(&src->doc, node, misfit, sizeof(misfit)) : NULL;
    if (bad) return store_fail(&s, RECIPE_ERR_TYPE, bad, misfit);
    RecipeError rc = RECIPE_OK;
    if (node_is_null(node))
        store_default(L, t, k); // null: unset, i.e. the built-in default
    else
        rc = store_node(&s, node);
    if (rc == RECIPE_OK && t->stage != STAGE_NONE) origin_set(L->r, t->stage, k->path, where);
    return rc;
}

void value_set_defaults(RecipeLoader *L, const Target *t) {
    for (int i = 0; i < SCHEMA_COUNT; i++) {
        const Key *k = &SCHEMA[i];
        if (k->scope != t->scope) continue;
        if (k->def)
            store_default(L, t, k);
        else if (k->type == KEY_STRING)
            *(char **)key_field(k, t->base) = strdup("");
    }
}

// ---- comparing, freeing -------------------------------------------------------------------------

bool value_is_unset(const Key *k, const void *base) {
    const void *f = key_field_const(k, base);
    if (k->type == KEY_STRING) return ((const char *const *)f)[0][0] == '\0';
    if (k->type == KEY_STRINGS) return ((const StringList *)f)->n == 0;
    return false;
}

static bool floats_equal(double a, double b) {
    return a == b || (isnan(a) && isnan(b));
}

bool value_equal(const Key *k, const void *a, const void *b) {
    const void *fa = key_field_const(k, a), *fb = key_field_const(k, b);
    const StringList *la = fa, *lb = fb;
    switch (k->type) {
    case KEY_INT:
    case KEY_ENUM:
        return *(const int *)fa == *(const int *)fb;
    case KEY_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    case KEY_FLOAT:
        return floats_equal(*(const double *)fa, *(const double *)fb);
    case KEY_STRING:
        return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
    case KEY_FLOATS:
        for (int i = 0; i < k->len; i++)
            if (!floats_equal(((const double *)fa)[i], ((const double *)fb)[i])) return false;
        return true;
    case KEY_STRINGS:
        if (la->n != lb->n) return false;
        for (int i = 0; i < la->n; i++)
            if (strcmp(la->items[i], lb->items[i]) != 0) return false;
        return true;
    }
    return false;
}

void value_free(const Key *k, void *base) {
    void *f = key_field(k, base);
    if (k->type == KEY_STRING) {
        free(*(char **)f);
        *(char **)f = NULL;
    } else if (k->type == KEY_STRINGS) {
        strings_clear(f);
    }
}

int value_string_count(const Key *k, const void *base) {
    if (k->type == KEY_STRINGS) return ((const StringList *)key_field_const(k, base))->n;
    return k->type == KEY_STRING;
}

const char *value_string(const Key *k, const void *base, int i) {
    if (k->type == KEY_STRINGS) return ((const StringList *)key_field_const(k, base))->items[i];
    return *(char *const *)key_field_const(k, base);
}

static void trim(char *s) {
    size_t n = strlen(s), i = 0;
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    while (isspace((unsigned char)s[i])) i++;
    memmove(s, s + i, n - i + 1);
}

int recipe_bon_parse(const char *entry, char *model, size_t len, int *n, char *err, size_t errlen) {
    *model = '\0';
    *n = 0;
    if (strncmp(entry, "bon(", 4) != 0) return 0;
    size_t elen = strlen(entry);
    const char *comma = strrchr(entry, ',');
    if (elen < 5 || entry[elen - 1] != ')' || !comma) {
        snprintf(err, errlen,
                 "'%s' is not a best-of-n entry: write bon(<model>, <n>), e.g. "
                 "bon(sft, 4)",
                 entry);
        return -1;
    }
    char count[64];
    snprintf(count, sizeof(count), "%.*s", (int)(entry + elen - 1 - comma - 1), comma + 1);
    snprintf(model, len, "%.*s", (int)(comma - entry - 4), entry + 4);
    trim(count);
    trim(model);
    if (!*model) {
        snprintf(err, errlen, "'%s' names no model: write bon(<model>, <n>)", entry);
        return -1;
    }
    if (strncmp(model, "bon(", 4) == 0) {
        snprintf(err, errlen,
                 "'%s': the model of a best-of-n entry is a model, not another "
                 "best-of-n entry",
                 entry);
        *model = '\0';
        return -1;
    }
    char *end;
    errno = 0;
    long v = strtol(count, &end, 10);
    *n = v >= 2 && v <= INT_MAX && !errno && *count && !*end ? (int)v : 0;
    if (*n == 0) {
        snprintf(err, errlen,
                 "'%s': n must be an integer of at least 2 (the best of 1 sample is "
                 "the model itself), got '%s'",
                 entry, count);
        *n = 0;
        return -1;
    }
    return 1;
}

bool output_is_name(const char *text) {
    return *text && strspn(text, NAME_CHARS) == strlen(text);
}

bool ref_is_path(const char *ref) {
    size_t n = strlen(ref);
    return (n > 3 && strcmp(ref + n - 3, ".h5") == 0) || strchr(ref, '/') != NULL;
}

// ---- paths --------------------------------------------------------------------------------------

// dir/path (or path if absolute) with "." and "x/.." components and repeated slashes removed.
char *path_resolve(const char *dir, const char *path) {
    size_t n = strlen(dir) + strlen(path) + 3;
    char *joined = lc_malloc(n), *out = lc_malloc(n), *o = out;
    snprintf(joined, n, "%s/%s", path[0] == '/' ? "" : dir, path);
    for (const char *in = joined; *in;) {
        size_t len = strcspn(in, "/");
        if (len == 2 && in[0] == '.' && in[1] == '.') {
            while (o > out && *--o != '/') {
                // back over the last component and its '/'
            }
        } else if (len > 0 && !(len == 1 && in[0] == '.')) {
            *o++ = '/';
            memcpy(o, in, len);
            o += len;
        }
        in += len + (in[len] == '/');
    }
    if (o == out) *o++ = '/';
    *o = '\0';
    free(joined);
    return out;
}
