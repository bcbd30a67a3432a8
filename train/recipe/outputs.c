// train/recipe/outputs.c: datasets that stages make for later stages. A label, self_instruct or
// critique_revise stage writes its datasets into its own folder of the run directory; a later
// stage names it in a data key (`data.train: label`) and the loader resolves the name to that
// file, so one recipe goes from prompts or seed tasks to a trained model. The files do not exist
// when the recipe loads: the file checks skip what an earlier stage will make.
#include "train/recipe/recipe-impl.h"
#include "common/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The files a stage kind writes for later stages, per dataset kind (docs/recipes.md).
typedef struct {
    const char *stage_kind; // the producing kind's recipe name
    const char *data_kind;  // "sft", "preference"
    const char *train;      // <output_dir>/<stage>/<train>: the training set
    const char *val;        // the validation set, or NULL when the kind makes none
} StageOutput;

static const StageOutput OUTPUTS[] = {
    {"label", "preference", "pref.h5", "pref-val.h5"},  {"label", "sft", "sft.h5", NULL},
    {"critique_revise", "preference", "pref.h5", NULL}, {"critique_revise", "sft", "sft.h5", NULL},
    {"self_instruct", "sft", "sft.h5", NULL},
};

static const StageOutput *output_find(StageKind kind, const char *data_kind) {
    for (size_t n = 0; n < sizeof(OUTPUTS) / sizeof(OUTPUTS[0]); n++)
        if (strcmp(OUTPUTS[n].stage_kind, stage_kind_name(kind)) == 0 &&
            strcmp(OUTPUTS[n].data_kind, data_kind) == 0)
            return &OUTPUTS[n];
    return NULL;
}

const char *stage_data_kind(StageKind kind, const char *key) {
    if (strcmp(key, "data.prompts") == 0) return "prompt";
    if (kind == STAGE_PRETRAIN) return "lm";
    return kind == STAGE_SFT ? "sft" : "preference";
}

// The file of dataset kind `data_kind` (val: the validation set) that stage j makes, into path;
// NULL when it makes none.
static const char *output_path(const Recipe *r, int j, const char *data_kind, bool val, char *path,
                               size_t len) {
    const StageOutput *o = output_find(r->stages[j].kind, data_kind);
    const char *file = o ? (val ? o->val : o->train) : NULL;
    if (!file) return NULL;
    snprintf(path, len, "%s/%s/%s", r->output_dir, r->stages[j].name, file);
    return path;
}

bool outputs_will_make(const Recipe *r, int i, const char *path) {
    char made[PATH_MAX + 512];
    static const char *const kinds[] = {"sft", "preference"};
    for (int j = 0; j < i; j++)
        for (int k = 0; k < 2; k++)
            for (int val = 0; val < 2; val++)
                if (output_path(r, j, kinds[k], val, made, sizeof(made)) && strcmp(made, path) == 0)
                    return true;
    return false;
}

// One data key of stage i holding a bare name: the file that earlier stage makes.
static RecipeError resolve_key(RecipeLoader *L, int i, const char *key, char **value) {
    Recipe *r = L->r;
    const Stage *s = &r->stages[i];
    const char *where = recipe_where(r, i, key);
    char prefix[96], path[PATH_MAX + 512];
    snprintf(prefix, sizeof(prefix), "%s.", s->name);
    if (!where) where = r->file;
    int j = recipe_stage_index(r, *value);
    if (j < 0)
        return recipe_fail(L, RECIPE_ERR_REFERENCE, where, prefix, key,
                           "'%s' is neither an earlier stage nor a file path (write ./%s for a "
                           "file in the recipe's folder)",
                           *value, *value);
    if (j >= i)
        return recipe_fail(L, RECIPE_ERR_REFERENCE, where, prefix, key,
                           "stage '%s' does not come before this one; a stage can only use "
                           "the datasets of earlier stages",
                           *value);
    const char *kind = stage_data_kind(s->kind, key);
    bool val = strcmp(key, "data.val") == 0;
    if (!output_path(r, j, kind, val, path, sizeof(path)))
        return recipe_fail(L, RECIPE_ERR_REFERENCE, where, prefix, key,
                           "stage '%s' (%s) makes no %s%s dataset for a %s stage; stages that "
                           "make datasets: label (preference with validation, sft), "
                           "critique_revise (preference, sft), self_instruct (sft)",
                           *value, stage_kind_name(r->stages[j].kind), val ? "validation " : "",
                           kind, stage_kind_name(s->kind));
    free(*value);
    *value = strdup(path);
    LC_ASSERT(*value);
    return RECIPE_OK;
}

RecipeError outputs_resolve(RecipeLoader *L, int i) {
    Stage *s = &L->r->stages[i];
    struct {
        const char *key;
        char **value;
    } keys[] = {{"data.train", &s->data.train}, {"data.val", &s->data.val}};
    for (size_t n = 0; n < sizeof(keys) / sizeof(keys[0]); n++) {
        if (!output_is_name(*keys[n].value)) continue;
        RecipeError rc = resolve_key(L, i, keys[n].key, keys[n].value);
        if (rc) return rc;
    }
    return RECIPE_OK;
}
