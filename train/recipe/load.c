// train/recipe/load.c: reading a recipe file and its command-line overrides into a Recipe.
//
// Values are applied in layers, each overwriting the one before: built-in defaults, then the
// file's top-level keys (then `key=value` overrides of them); for each stage, `defaults:` (then
// `defaults.key=value` overrides), then the stage's own keys (then `<stage>.key=value`
// overrides). Every value goes through value_store(), which checks it against the schema and
// records where it came from, so later checks can point at the line that set a key.
#include "train/recipe/recipe-impl.h"
#include "common/check.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The whole of an open file in malloc'd memory (NUL-terminated), or NULL on a read error.
static char *read_all(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0, k;
    char *buf = lc_malloc(cap);
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0)
        if ((n += k) == cap - 1 && !(buf = realloc(buf, cap *= 2)))
            LC_DIE("out of memory reading a %zu-byte recipe", n);
    buf[n] = '\0';
    *len = n;
    if (!ferror(f)) return buf;
    free(buf);
    return NULL;
}

// Opens the recipe file and reads it whole; a folder is named as such (reading one would
// report a YAML syntax error).
static char *source_read_file(RecipeLoader *L, size_t *len) {
    const char *path = L->file.file;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f) {
        recipe_fail(L, RECIPE_ERR_IO, path, "", NULL, "cannot read: %s", strerror(errno));
        return NULL;
    }
    char *text = NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
        recipe_fail(L, RECIPE_ERR_IO, path, "", NULL,
                    "is a folder, not a recipe file (give the recipe's .yaml file)");
    else if (!(text = read_all(f, len)))
        recipe_fail(L, RECIPE_ERR_IO, path, "", NULL, "cannot read: %s", strerror(errno));
    fclose(f);
    return text;
}

// Parses the recipe file: exactly one YAML document.
static RecipeError source_parse_file(RecipeLoader *L) {
    Source *src = &L->file;
    size_t len = 0;
    char *text = source_read_file(L, &len);
    if (!text) return RECIPE_ERR_IO;
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    RecipeError rc = RECIPE_OK;
    yaml_document_t extra;
    src->loaded = yaml_parser_load(&p, &src->doc);
    if (!src->loaded || !yaml_parser_load(&p, &extra)) {
        rc = source_syntax_fail(&p, src->file, true, L->err, L->errlen);
    } else {
        yaml_node_t *second = yaml_document_get_root_node(&extra);
        char where[512];
        if (second)
            rc = recipe_fail(L, RECIPE_ERR_SYNTAX, source_where(src, second, where, sizeof(where)),
                             "", NULL, "a second YAML document; a recipe is one document");
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&p);
    if (src->loaded) source_keep_written_tags(src, text, len);
    free(text);
    return rc;
}

// ---- walking maps -------------------------------------------------------------------------------

static const char *key_text(Source *src, const yaml_node_pair_t *pair) {
    yaml_node_t *k = yaml_document_get_node(&src->doc, pair->key);
    return k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : NULL;
}

// The value of key in map, or NULL.
static yaml_node_t *map_get(Source *src, yaml_node_t *map, const char *key) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
        if (key_text(src, p) && strcmp(key_text(src, p), key) == 0)
            return yaml_document_get_node(&src->doc, p->value);
    return NULL;
}

// Refuses a key that is not a string, or that an earlier pair of the map already has.
static RecipeError check_key(RecipeLoader *L, Source *src, yaml_node_t *map, yaml_node_pair_t *pair,
                             const char *prefix, const char *path) {
    char where[512];
    yaml_node_t *kn = yaml_document_get_node(&src->doc, pair->key);
    source_where(src, kn, where, sizeof(where));
    if (!key_text(src, pair))
        return recipe_fail(L, RECIPE_ERR_SYNTAX, where, "", NULL,
                           "a key must be a name, not a list or a map");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++)
        if (key_text(src, p) && strcmp(key_text(src, p), key_text(src, pair)) == 0)
            return recipe_fail(L, RECIPE_ERR_DUPLICATE, where, prefix, path,
                               "duplicate key (first at line %zu)",
                               yaml_document_get_node(&src->doc, p->key)->start_mark.line + 1);
    return RECIPE_OK;
}

static RecipeError unknown_key(RecipeLoader *L, const Target *t, Source *src, yaml_node_t *kn,
                               const char *path) {
    char where[512], msg[512] = "unknown key", typed[256];
    bool cmdline = src->text != NULL;
    snprintf(typed, sizeof(typed), "%s%s", cmdline ? t->prefix : "", path);
    Suggest sg;
    suggest_init(&sg, typed);
    suggest_keys(&sg, t->scope, cmdline ? t->prefix : "");
    if (t->scope == SCOPE_RECIPE) {
        suggest_consider(&sg, "defaults");
        suggest_consider(&sg, "stages");
    }
    if (t->scope == SCOPE_RECIPE && cmdline) { // perhaps a misspelt stage name
        suggest_keys(&sg, SCOPE_STAGE, "defaults.");
        for (int i = 0; i < L->r->n_stages; i++) {
            char stage[96];
            snprintf(stage, sizeof(stage), "%s.", L->r->stages[i].name);
            suggest_keys(&sg, SCOPE_STAGE, stage);
        }
    }
    const char *dot = strrchr(path, '.');
    char strip[256] = "";
    if (!cmdline && dot) snprintf(strip, sizeof(strip), "%.*s", (int)(dot - path + 1), path);
    suggest_append(&sg, strip, msg, sizeof(msg));
    return recipe_fail(L, RECIPE_ERR_UNKNOWN_KEY, source_where(src, kn, where, sizeof(where)),
                       t->prefix, path, "%s", msg);
}

static RecipeError walk_map(RecipeLoader *L, const Target *t, Source *src, yaml_node_t *map,
                            const char *prefix);

// The kind of the stage a stage-scope target fills.
static StageKind target_kind(const Target *t) {
    return ((const Stage *)t->base)->kind;
}

static RecipeError not_applicable(RecipeLoader *L, const Target *t, const Key *k,
                                  const char *where) {
    char kinds[128];
    kinds_format(k->kinds, kinds, sizeof(kinds));
    return recipe_fail(L, RECIPE_ERR_NOT_APPLICABLE, where, t->prefix, k->path,
                       "'%s' does not apply to a stage of kind '%s' (only to %s)", k->path,
                       stage_kind_name(target_kind(t)), kinds);
}

// Applies one key (path within t's scope) with its value node: a value, or a nested map.
static RecipeError apply_key(RecipeLoader *L, const Target *t, Source *src, const char *path,
                             yaml_node_t *kn, yaml_node_t *value) {
    const Key *k = schema_find(t->scope, path);
    char where[512];
    source_where(src, kn ? kn : value, where, sizeof(where));
    if (!k && schema_is_map(t->scope, path)) {
        char sub[256];
        snprintf(sub, sizeof(sub), "%s.", path);
        return walk_map(L, t, src, value, sub);
    }
    if (!k) return unknown_key(L, t, src, kn, path);
    if ((k->flags & KEY_IDENTITY) && (t->defaults || src->text))
        return recipe_fail(L, RECIPE_ERR_NOT_APPLICABLE, where, t->prefix, path,
                           "a stage's name and kind are set only in the stage itself");
    if (t->scope == SCOPE_STAGE && t->mode != APPLY_ANY && !key_applies(k, target_kind(t)))
        return t->mode == APPLY_LENIENT ? RECIPE_OK : not_applicable(L, t, k, where);
    return value_store(L, t, k, src, value);
}

// The recipe's top level holds `defaults` and `stages` besides the keys of the schema.
static bool is_structural(const Target *t, const char *path) {
    return t->scope == SCOPE_RECIPE && (!strcmp(path, "defaults") || !strcmp(path, "stages"));
}

// Applies every key of map (null: none) under path prefix ("" or "optim.") to t.
static RecipeError walk_map(RecipeLoader *L, const Target *t, Source *src, yaml_node_t *map,
                            const char *prefix) {
    char where[512], path[256], misfit[512] = "expected a map of keys";
    if (node_is_null(map)) return RECIPE_OK;
    if (map->type != YAML_MAPPING_NODE || node_tag_misfit(&src->doc, map, misfit, sizeof(misfit))) {
        snprintf(path, sizeof(path), "%s%s", t->prefix, prefix);
        path[strlen(path) - (*path != '\0')] = '\0'; // the map's own path, without its '.'
        return recipe_fail(L, RECIPE_ERR_TYPE, source_where(src, map, where, sizeof(where)), "",
                           *path ? path : NULL, "%s", misfit);
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        snprintf(path, sizeof(path), "%s%s", prefix, key_text(src, p) ? key_text(src, p) : "?");
        RecipeError rc = check_key(L, src, map, p, t->prefix, path);
        if (rc) return rc;
        if (is_structural(t, path)) continue;
        rc = apply_key(L, t, src, path, yaml_document_get_node(&src->doc, p->key),
                       yaml_document_get_node(&src->doc, p->value));
        if (rc) return rc;
    }
    return RECIPE_OK;
}

// ---- command-line overrides ---------------------------------------------------------------------

static int stage_find(const Recipe *r, const char *name, size_t len) {
    for (int i = 0; i < r->n_stages; i++)
        if (strlen(r->stages[i].name) == len && strncmp(r->stages[i].name, name, len) == 0)
            return i;
    return -1;
}

// Splits "key.path=value" into its target and key, and parses the value.
static RecipeError override_parse(RecipeLoader *L, Override *o, const char *text) {
    const char *eq = strchr(text, '=');
    char where[512];
    o->src = (Source){.text = text, .dir = L->cwd};
    source_where(&o->src, NULL, where, sizeof(where));
    if (!eq || eq == text)
        return recipe_fail(L, RECIPE_ERR_OVERRIDE, where, "", NULL,
                           "expected key.path=value (e.g. sft.optim.lr=1e-4)");
    size_t first = strcspn(text, ".=");
    int stage = stage_find(L->r, text, first);
    bool defaults = first == 8 && strncmp(text, "defaults", 8) == 0;
    if (first == 6 && strncmp(text, "stages", 6) == 0)
        return recipe_fail(L, RECIPE_ERR_OVERRIDE, where, "", NULL,
                           "address a stage by its name: <stage-name>.<key>=value");
    o->stage = stage >= 0 ? stage : defaults ? OVERRIDE_DEFAULTS : OVERRIDE_TOP;
    const char *key = o->stage == OVERRIDE_TOP ? text : text + first + (text[first] == '.');
    o->key = strndup(key, (size_t)(eq - key));
    LC_ASSERT(o->key);
    RecipeError rc = source_parse_text(&o->src, eq + 1, L->err, L->errlen);
    if (rc == RECIPE_OK) o->value = yaml_document_get_root_node(&o->src.doc);
    return rc;
}

static RecipeError overrides_parse(RecipeLoader *L, char *const *texts, int n) {
    L->overrides = lc_calloc((size_t)n, sizeof(Override));
    for (; L->n_overrides < n; L->n_overrides++) {
        RecipeError rc = override_parse(L, &L->overrides[L->n_overrides], texts[L->n_overrides]);
        if (rc) {
            L->n_overrides++; // parts of it to free
            return rc;
        }
    }
    return RECIPE_OK;
}

// Applies, in command-line order, the overrides aimed at which (a stage index or OVERRIDE_*).
static RecipeError overrides_apply(RecipeLoader *L, int which, const Target *t) {
    for (int i = 0; i < L->n_overrides; i++) {
        Override *o = &L->overrides[i];
        if (o->stage != which) continue;
        RecipeError rc = *o->key ? apply_key(L, t, &o->src, o->key, NULL, o->value)
                                 : walk_map(L, t, &o->src, o->value, "");
        if (rc) return rc;
    }
    return RECIPE_OK;
}

static void overrides_free(RecipeLoader *L) {
    for (int i = 0; i < L->n_overrides; i++) {
        free(L->overrides[i].key);
        source_free(&L->overrides[i].src);
    }
    free(L->overrides);
}

// ---- the top level ------------------------------------------------------------------------------

static RecipeError check_required(RecipeLoader *L, const Target *t, const char *where) {
    for (int i = 0; i < SCHEMA_COUNT; i++) {
        const Key *k = &SCHEMA[i];
        if (k->scope != t->scope || k->def || !value_is_unset(k, t->base)) continue;
        if (t->scope == SCOPE_RECIPE)
            return recipe_fail(L, RECIPE_ERR_MISSING, where, "", k->path,
                               "required key is missing");
        if (key_applies(k, target_kind(t)))
            return recipe_fail(L, RECIPE_ERR_MISSING, where, t->prefix, k->path,
                               "required key is missing for a stage of kind '%s'",
                               stage_kind_name(target_kind(t)));
    }
    return RECIPE_OK;
}

// Finds `defaults` and `stages` in the root map.
static RecipeError find_structure(RecipeLoader *L, yaml_node_t *root) {
    char where[512];
    source_where(&L->file, root, where, sizeof(where));
    L->defaults = root ? map_get(&L->file, root, "defaults") : NULL;
    L->stage_seq = root ? map_get(&L->file, root, "stages") : NULL;
    if (node_is_null(L->stage_seq))
        return recipe_fail(L, RECIPE_ERR_MISSING, where, "", "stages", "required key is missing");
    source_where(&L->file, L->stage_seq, where, sizeof(where));
    if (L->stage_seq->type != YAML_SEQUENCE_NODE)
        return recipe_fail(L, RECIPE_ERR_TYPE, where, "", "stages", "expected a list of stages");
    if (L->stage_seq->data.sequence.items.top == L->stage_seq->data.sequence.items.start)
        return recipe_fail(L, RECIPE_ERR_RANGE, where, "", "stages", "expected at least one stage");
    return RECIPE_OK;
}

static RecipeError load_top(RecipeLoader *L, Target *top) {
    yaml_node_t *root = yaml_document_get_root_node(&L->file.doc);
    char where[512];
    source_where(&L->file, root, where, sizeof(where));
    value_set_defaults(L, top);
    if (root && root->type != YAML_MAPPING_NODE)
        return recipe_fail(L, RECIPE_ERR_SYNTAX, where, "", NULL,
                           "expected a map of recipe keys (name, model, stages, ...)");
    RecipeError rc = walk_map(L, top, &L->file, root, "");
    if (rc == RECIPE_OK) rc = find_structure(L, root);
    return rc;
}

// ---- stages -------------------------------------------------------------------------------------

static yaml_node_t *stage_node(RecipeLoader *L, int i) {
    return yaml_document_get_node(&L->file.doc, L->stage_seq->data.sequence.items.start[i]);
}

// Sets stage i's name: required, [A-Za-z0-9_-]+, unique, not a top-level key.
static RecipeError stage_name(RecipeLoader *L, int i, const Target *t, yaml_node_t *node) {
    Stage *s = &L->r->stages[i];
    char where[512];
    yaml_node_t *name = map_get(&L->file, node, "name");
    source_where(&L->file, name ? name : node, where, sizeof(where));
    if (!name)
        return recipe_fail(L, RECIPE_ERR_MISSING, where, t->prefix, "name",
                           "required key is missing");
    RecipeError rc = value_store(L, t, schema_find(SCOPE_STAGE, "name"), &L->file, name);
    if (rc) return rc;
    if (strspn(s->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
        strlen(s->name))
        return recipe_fail(L, RECIPE_ERR_RULE, where, t->prefix, "name",
                           "'%s' may hold only letters, digits, '_' and '-'", s->name);
    if (schema_find(SCOPE_RECIPE, s->name) || schema_is_map(SCOPE_RECIPE, s->name) ||
        !strcmp(s->name, "defaults") || !strcmp(s->name, "stages"))
        return recipe_fail(L, RECIPE_ERR_RULE, where, t->prefix, "name",
                           "'%s' is a top-level key, so overrides could not address the stage; "
                           "choose another name",
                           s->name);
    for (int j = 0; j < i; j++)
        if (strcmp(L->r->stages[j].name, s->name) == 0)
            return recipe_fail(L, RECIPE_ERR_DUPLICATE, where, t->prefix, "name",
                               "duplicate stage name '%s' (first at line %zu)", s->name,
                               map_get(&L->file, stage_node(L, j), "name")->start_mark.line + 1);
    return RECIPE_OK;
}

// Reads every stage's name and kind, which the other keys and the overrides depend on.
static RecipeError stages_scan(RecipeLoader *L) {
    Recipe *r = L->r;
    r->n_stages =
        (int)(L->stage_seq->data.sequence.items.top - L->stage_seq->data.sequence.items.start);
    r->stages = lc_calloc((size_t)r->n_stages, sizeof(Stage));
    for (int i = 0; i < r->n_stages; i++) {
        char prefix[64], where[512];
        snprintf(prefix, sizeof(prefix), "stages[%d].", i + 1);
        Target t = {SCOPE_STAGE, &r->stages[i], i, APPLY_STRICT, prefix, false};
        value_set_defaults(L, &t);
        yaml_node_t *node = stage_node(L, i), *kind;
        source_where(&L->file, node, where, sizeof(where));
        if (node->type != YAML_MAPPING_NODE)
            return recipe_fail(L, RECIPE_ERR_TYPE, where, "", NULL,
                               "stages[%d]: expected a map of stage keys", i + 1);
        RecipeError rc = stage_name(L, i, &t, node);
        if (rc) return rc;
        snprintf(prefix, sizeof(prefix), "%s.", r->stages[i].name);
        if (!(kind = map_get(&L->file, node, "kind")))
            return recipe_fail(L, RECIPE_ERR_MISSING, where, prefix, "kind",
                               "required key is missing");
        rc = value_store(L, &t, schema_find(SCOPE_STAGE, "kind"), &L->file, kind);
        if (rc) return rc;
    }
    return RECIPE_OK;
}

// Checks `defaults:` and its overrides once on their own, as if every stage key applied, so
// that their mistakes are found even where no stage's kind uses the key.
static RecipeError defaults_check(RecipeLoader *L) {
    Stage scratch = {0};
    Target t = {SCOPE_STAGE, &scratch, STAGE_NONE, APPLY_ANY, "defaults.", true};
    value_set_defaults(L, &t);
    RecipeError rc = walk_map(L, &t, &L->file, L->defaults, "");
    if (rc == RECIPE_OK) rc = overrides_apply(L, OVERRIDE_DEFAULTS, &t);
    for (int i = 0; i < SCHEMA_COUNT; i++)
        if (SCHEMA[i].scope == SCOPE_STAGE) value_free(&SCHEMA[i], &scratch);
    return rc;
}

static RecipeError stage_load(RecipeLoader *L, int i) {
    Stage *s = &L->r->stages[i];
    char prefix[96], where[512];
    snprintf(prefix, sizeof(prefix), "%s.", s->name);
    Target t = {SCOPE_STAGE, s, i, APPLY_LENIENT, "defaults.", true};
    RecipeError rc = walk_map(L, &t, &L->file, L->defaults, "");
    if (rc == RECIPE_OK) rc = overrides_apply(L, OVERRIDE_DEFAULTS, &t);
    t = (Target){SCOPE_STAGE, s, i, APPLY_STRICT, prefix, false};
    if (rc == RECIPE_OK) rc = walk_map(L, &t, &L->file, stage_node(L, i), "");
    if (rc == RECIPE_OK) rc = overrides_apply(L, i, &t);
    source_where(&L->file, stage_node(L, i), where, sizeof(where));
    if (rc == RECIPE_OK) rc = check_required(L, &t, where);
    if (rc) return rc;
    rc = rules_resolve(L, i);
    return rc ? rc : rules_check(L, i);
}

// ---- the whole ----------------------------------------------------------------------------------

static RecipeError loader_run(RecipeLoader *L, char *const *overrides, int n_overrides) {
    Target top = {SCOPE_RECIPE, L->r, -1, APPLY_STRICT, "", false};
    char where[512];
    RecipeError rc = source_parse_file(L);
    if (rc == RECIPE_OK) rc = load_top(L, &top);
    if (rc == RECIPE_OK) rc = stages_scan(L);
    if (rc == RECIPE_OK) rc = overrides_parse(L, overrides, n_overrides);
    if (rc == RECIPE_OK) rc = overrides_apply(L, OVERRIDE_TOP, &top);
    source_where(&L->file, yaml_document_get_root_node(&L->file.doc), where, sizeof(where));
    if (rc == RECIPE_OK) rc = check_required(L, &top, where);
    if (rc) return rc;
    rc = rules_resolve(L, -1);
    if (rc == RECIPE_OK) rc = rules_check(L, -1);
    if (rc == RECIPE_OK) rc = defaults_check(L);
    for (int i = 0; rc == RECIPE_OK && i < L->r->n_stages; i++) rc = stage_load(L, i);
    return rc;
}

// The working directory and the recipe's folder, both absolute.
static RecipeError loader_dirs(RecipeLoader *L, const char *path) {
    if (!getcwd(L->cwd, sizeof(L->cwd)))
        return recipe_fail(L, RECIPE_ERR_IO, path, "", NULL, "cannot get the working directory: %s",
                           strerror(errno));
    char *abs = path_resolve(L->cwd, path);
    char *slash = strrchr(abs, '/');
    snprintf(L->dir, sizeof(L->dir), "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
    free(abs);
    return RECIPE_OK;
}

RecipeError recipe_load(const char *path, char *const *overrides, int n_overrides, Recipe *r,
                        char *err, size_t errlen) {
    memset(r, 0, sizeof(*r));
    r->file = strdup(path);
    LC_ASSERT(r->file);
    RecipeLoader L = {.r = r, .err = err, .errlen = errlen};
    L.file = (Source){.file = r->file, .dir = L.dir};
    err[0] = '\0';
    RecipeError rc = loader_dirs(&L, path);
    if (rc == RECIPE_OK) rc = loader_run(&L, overrides, n_overrides);
    overrides_free(&L);
    source_free(&L.file);
    if (rc) recipe_free(r);
    return rc;
}
