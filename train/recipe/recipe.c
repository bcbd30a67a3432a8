// train/recipe/recipe.c: a loaded Recipe's lifetime and queries: freeing it, finding stages and
// comparing two recipes key by key.
#include "train/recipe/recipe-impl.h"
#include "common/check.h"
#include <stdlib.h>
#include <string.h>

static void scope_free(KeyScope scope, void *base) {
    for (int i = 0; i < SCHEMA_COUNT; i++)
        if (SCHEMA[i].scope == scope) value_free(&SCHEMA[i], base);
}

void recipe_free(Recipe *r) {
    scope_free(SCOPE_RECIPE, r);
    for (int i = 0; i < r->n_stages; i++) scope_free(SCOPE_STAGE, &r->stages[i]);
    for (int i = 0; i < r->n_origins; i++) free(r->origins[i].where);
    free(r->stages);
    free(r->origins);
    free(r->file);
    memset(r, 0, sizeof(*r));
}

int recipe_stage_index(const Recipe *r, const char *name) {
    for (int i = 0; i < r->n_stages; i++)
        if (r->stages[i].name && strcmp(r->stages[i].name, name) == 0) return i;
    return -1;
}

// The first key of scope whose values differ between a and b, or NULL.
static const Key *scope_diff(KeyScope scope, const void *a, const void *b) {
    for (int i = 0; i < SCHEMA_COUNT; i++)
        if (SCHEMA[i].scope == scope && !value_equal(&SCHEMA[i], a, b)) return &SCHEMA[i];
    return NULL;
}

int recipe_diff(const Recipe *a, const Recipe *b, char *path, size_t pathlen) {
    const Key *k = scope_diff(SCOPE_RECIPE, a, b);
    if (k) {
        snprintf(path, pathlen, "%s", k->path);
        return 1;
    }
    if (a->n_stages != b->n_stages) {
        snprintf(path, pathlen, "stages");
        return 1;
    }
    for (int i = 0; i < a->n_stages; i++)
        if ((k = scope_diff(SCOPE_STAGE, &a->stages[i], &b->stages[i]))) {
            snprintf(path, pathlen, "%s.%s", a->stages[i].name, k->path);
            return 1;
        }
    return 0;
}
