// tests/fuzz/fuzz_recipe.c: libFuzzer harness for the recipe loader. The input is a recipe's
// text; its lines that start with "#=" (YAML comments, so the recipe reads the same) are also
// passed as command-line overrides, so one input fuzzes both. A recipe that loads must print
// as YAML that loads back to the same recipe (recipe_print's promise). tests/fuzz/run.sh builds
// and runs it.
#include "train/recipe/recipe.h"
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OVERRIDES 8

static char recipe_path[PATH_MAX], printed_path[PATH_MAX];

// The recipe goes through a file, as `layercake validate` reads it, in a folder of its own.
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char dir[] = "/tmp/lc-fuzz-recipe-XXXXXX";
    if (!mkdtemp(dir)) abort();
    snprintf(recipe_path, sizeof(recipe_path), "%s/recipe.yaml", dir);
    snprintf(printed_path, sizeof(printed_path), "%s/printed.yaml", dir);
    return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
}

// The "#=key=value" lines of text, copied into ov (at most MAX_OVERRIDES); returns how many.
static int overrides_find(const char *text, char **ov) {
    int n = 0;
    for (const char *line = text; line && *line && n < MAX_OVERRIDES;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > 2 && line[0] == '#' && line[1] == '=') ov[n++] = strndup(line + 2, len - 2);
        line = end ? end + 1 : NULL;
    }
    return n;
}

// A loaded recipe prints as YAML that loads back to an identical recipe.
static void check_round_trip(const Recipe *r) {
    char *text = recipe_text(r), err[4096], key[256];
    if (!text) abort();
    write_file(printed_path, (const uint8_t *)text, strlen(text));
    free(text);
    Recipe back;
    if (recipe_load(printed_path, NULL, 0, &back, err, sizeof(err)) != RECIPE_OK) {
        fprintf(stderr, "the printed recipe does not load: %s\n", err);
        abort();
    }
    if (recipe_diff(r, &back, key, sizeof(key)) != 0) {
        fprintf(stderr, "the printed recipe differs at %s\n", key);
        abort();
    }
    recipe_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = strndup((const char *)data, size), *ov[MAX_OVERRIDES], err[4096];
    if (!text) abort();
    int n = overrides_find(text, ov);
    write_file(recipe_path, data, size);
    Recipe r;
    if (recipe_load(recipe_path, ov, n, &r, err, sizeof(err)) == RECIPE_OK) {
        check_round_trip(&r);
        recipe_free(&r);
    } else if (!err[0]) {
        fprintf(stderr, "recipe_load failed without a message\n");
        abort();
    }
    for (int i = 0; i < n; i++) free(ov[i]);
    free(text);
    return 0;
}
