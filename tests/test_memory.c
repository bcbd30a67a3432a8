// tests/test_memory.c: the memory report (train/run/memory.h) from real models: each row's
// columns equal the sizes computed here from the models' shapes (weights 4 bytes per parameter
// plus the compute copy, gradients 4 bytes per parameter in training mode and none in inference,
// AdamW's two fp32 moments, the activation arena, the sampler's KV cache), a view's weights are
// not counted twice, the totals are the sums, and the printed table and memory.json carry those
// numbers.
#include "model/model.h"
#include "model/sample.h"
#include "optim/optim.h"
#include "tests/testutil.h"
#include "train/run/memory.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Big enough that every cell prints as a distinct nonzero number of MB (0.47M parameters).
static const ModelConfig CFG = GPT2_CONFIG(2, 4, 128, 256, 32);
static const AdamWConfig OPT = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f};

typedef struct {
    Model *train, *infer, *view;
    AdamW opt;
    MemoryPlan plan;
} Fixture;

static void fixture_init(Fixture *f) {
    const Backend *be = backend_cpu();
    f->train = model_create(be, CFG, MODEL_HEAD_LM, MODEL_TRAIN, 2, 32);
    f->infer = model_create(be, CFG, MODEL_HEAD_LM, MODEL_INFER, 4, 32);
    f->view = model_create_view(f->train, MODEL_INFER, 4, 32);
    adamw_init(&f->opt, be, &f->train->table, OPT);
    memory_plan_init(&f->plan);
    memory_plan_add_model(&f->plan, "policy", f->train, &f->opt);
    memory_plan_add_model(&f->plan, "reference", f->infer, NULL);
    memory_plan_add_model(&f->plan, "policy view", f->view, NULL);
}

static void fixture_free(Fixture *f) {
    adamw_free(&f->opt);
    model_free(f->view);
    model_free(f->infer);
    model_free(f->train);
}

static void check_row(const MemoryPlan *p, const char *role, size_t w, size_t g, size_t o, size_t a,
                      size_t kv) {
    const MemoryRow *r = memory_plan_row(p, role);
    ck_assert_msg(r != NULL, "no row '%s'", role);
    size_t want[MEM_COLUMNS] = {w, g, o, a, kv, 0};
    for (int c = 0; c < MEM_COLUMNS; c++)
        ck_assert_msg(r->bytes[c] == want[c], "%s %s: %zu bytes, want %zu", role,
                      memory_column_name((MemColumn)c), r->bytes[c], want[c]);
    ck_assert_uint_eq(memory_row_total(r), w + g + o + a + kv);
}

START_TEST(test_rows_are_the_models_sizes) {
    Fixture f;
    fixture_init(&f);
    size_t n = model_param_count(&CFG, MODEL_HEAD_LM);
    ck_assert_uint_eq(f.train->table.numel, n);
    ck_assert_uint_eq(f.opt.end - f.opt.begin, n); // unsharded: the whole table
    ck_assert_uint_gt(f.train->acts_bytes, 0);
    check_row(&f.plan, "policy", n * 4, n * 4, 2 * 4 * n, f.train->acts_bytes, 0);
    check_row(&f.plan, "reference", n * 4, 0, 0, f.infer->acts_bytes, 0);
    check_row(&f.plan, "policy view", 0, 0, 0, f.view->acts_bytes, 0); // the policy's weights
    ck_assert_int_eq(f.plan.n, 3);
    ck_assert_str_eq(f.plan.rows[0].role, "policy"); // in the order added
    ck_assert_str_eq(f.plan.rows[2].role, "policy view");

    size_t acts = f.train->acts_bytes + f.infer->acts_bytes + f.view->acts_bytes;
    ck_assert_uint_eq(memory_plan_column_total(&f.plan, MEM_WEIGHTS), 2 * 4 * n);
    ck_assert_uint_eq(memory_plan_column_total(&f.plan, MEM_GRADIENTS), 4 * n);
    ck_assert_uint_eq(memory_plan_column_total(&f.plan, MEM_OPTIMISER), 8 * n);
    ck_assert_uint_eq(memory_plan_column_total(&f.plan, MEM_ACTIVATIONS), acts);
    ck_assert_uint_eq(memory_plan_column_total(&f.plan, MEM_KV_CACHE), 0);
    ck_assert_uint_eq(memory_plan_total(&f.plan), 4 * n * 5 + acts);

    // a second add to a role accumulates into its row
    memory_plan_add(&f.plan, "reference", MEM_OTHER, 1000);
    memory_plan_add(&f.plan, "reference", MEM_OTHER, 234);
    ck_assert_int_eq(f.plan.n, 3);
    ck_assert_uint_eq(memory_plan_row(&f.plan, "reference")->bytes[MEM_OTHER], 1234);
    ck_assert_uint_eq(memory_plan_total(&f.plan), 4 * n * 5 + acts + 1234);
    fixture_free(&f);
}
END_TEST

// A backend whose activations are 2 bytes wide (bf16) holds a compute copy of the weights next
// to the fp32 master: 6 bytes per parameter; a view of it still holds none. Nothing is run.
START_TEST(test_compute_copy_is_counted_once) {
    Backend half = *backend_cpu();
    half.act_size = 2;
    Model *m = model_create(&half, CFG, MODEL_HEAD_LM, MODEL_TRAIN, 2, 32);
    Model *v = model_create_view(m, MODEL_INFER, 2, 32);
    ck_assert_ptr_nonnull(m->weights_mem);
    size_t n = m->table.numel;
    MemoryPlan p;
    memory_plan_init(&p);
    memory_plan_add_model(&p, "policy", m, NULL);
    memory_plan_add_model(&p, "sampler", v, NULL);
    check_row(&p, "policy", n * 4 + n * 2, n * 4, 0, m->acts_bytes, 0);
    check_row(&p, "sampler", 0, 0, 0, v->acts_bytes, 0);
    model_free(v);
    model_free(m);
}
END_TEST

// The sampler's KV cache: keys and values of every layer, position and row, C wide (GPT-2 has
// as many key/value heads as query heads), 4 bytes each on the CPU; none without a cache.
START_TEST(test_sampler_kv_cache) {
    Model *m = model_create(backend_cpu(), CFG, MODEL_HEAD_LM, MODEL_TRAIN, 1, 32);
    size_t want = 2 * (size_t)CFG.n_layer * 3 * 24 * CFG.d_model * 4;
    Sampler *s = sampler_create(m, 3, 24, 1);
    ck_assert_uint_eq(sampler_kv_bytes(s), want);
    ck_assert_uint_eq(sampler_kv_bytes_for(m, 3, 24, 1), want);
    ck_assert_uint_eq(sampler_bytes(s), want + model_act_bytes(sampler_view(s)));
    MemoryPlan p;
    memory_plan_init(&p);
    memory_plan_add_model(&p, "sampler", sampler_view(s), NULL);
    memory_plan_add(&p, "sampler", MEM_KV_CACHE, sampler_kv_bytes(s));
    check_row(&p, "sampler", 0, 0, 0, sampler_view(s)->acts_bytes, want);
    sampler_free(s);
    s = sampler_create(m, 3, 24, 0);
    ck_assert_uint_eq(sampler_kv_bytes(s), 0);
    sampler_free(s);
    model_free(m);
}
END_TEST

// The table as memory_plan_print writes it, one string.
static char *print_plan(const MemoryPlan *p) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    memory_plan_print(p, "sft", f);
    fclose(f);
    return buf;
}

// The cell printed for a number of bytes.
static void mb(char *out, size_t bytes) {
    if (bytes)
        snprintf(out, 32, "%.2f", (double)bytes / 1e6);
    else
        snprintf(out, 32, "-");
}

// Checks the line of role: it starts "[sft]   <role>" and its last cells are the row's columns
// (the first ncol) and its total.
static void check_line(const char *text, const char *role, const size_t *bytes, int ncol,
                       size_t total) {
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "[sft]   %s ", role);
    const char *line = strstr(text, prefix);
    ck_assert_msg(line != NULL, "no line for '%s' in:\n%s", role, text);
    char copy[512];
    size_t n = strcspn(line + strlen(prefix), "\n");
    ck_assert_uint_lt(n, sizeof(copy));
    memcpy(copy, line + strlen(prefix), n);
    copy[n] = '\0';
    char *cells[16];
    int k = 0;
    for (char *t = strtok(copy, " "); t && k < 16; t = strtok(NULL, " ")) cells[k++] = t;
    ck_assert_msg(k == ncol + 1, "'%s': %d cells, want %d", role, k, ncol + 1);
    char want[32];
    for (int c = 0; c < ncol; c++) {
        mb(want, bytes[c]);
        ck_assert_msg(strcmp(cells[c], want) == 0, "'%s' %s: printed %s, want %s", role,
                      memory_column_name((MemColumn)c), cells[c], want);
    }
    mb(want, total);
    ck_assert_msg(strcmp(cells[ncol], want) == 0, "'%s' total: printed %s, want %s", role,
                  cells[ncol], want);
}

// Every line has the same length (the columns are aligned).
static void check_aligned(const char *text) {
    size_t first = strcspn(text, "\n");
    const char *line = text + first + 1; // after the title
    size_t width = strcspn(line, "\n");
    for (; *line; line += strcspn(line, "\n") + 1)
        ck_assert_msg(strcspn(line, "\n") == width, "lines of different lengths:\n%s", text);
}

START_TEST(test_printed_table) {
    Fixture f;
    fixture_init(&f);
    char *text = print_plan(&f.plan);
    ck_assert_msg(strncmp(text, "[sft] memory per process, MB (1e6 bytes):\n", 42) == 0, "%s",
                  text);
    ck_assert_ptr_nonnull(strstr(text, "role"));
    const char *heads[] = {"weights", "gradients", "optimiser", "activations", "KV cache"};
    for (int c = 0; c < 5; c++) ck_assert_ptr_nonnull(strstr(text, heads[c]));
    ck_assert_ptr_null(strstr(text, "other")); // shown only when used
    check_aligned(text);
    // the header's columns: "KV cache" is two words, so it is checked as text above
    for (int i = 0; i < f.plan.n; i++)
        check_line(text, f.plan.rows[i].role, f.plan.rows[i].bytes, MEM_OTHER,
                   memory_row_total(&f.plan.rows[i]));
    size_t totals[MEM_COLUMNS];
    for (int c = 0; c < MEM_COLUMNS; c++) totals[c] = memory_plan_column_total(&f.plan, c);
    check_line(text, "total", totals, MEM_OTHER, memory_plan_total(&f.plan));
    free(text);

    memory_plan_add(&f.plan, "rollout buffers", MEM_OTHER, 2500000);
    text = print_plan(&f.plan);
    ck_assert_ptr_nonnull(strstr(text, "other"));
    check_aligned(text);
    const MemoryRow *r = memory_plan_row(&f.plan, "rollout buffers");
    check_line(text, "rollout buffers", r->bytes, MEM_COLUMNS, 2500000);
    ck_assert_ptr_nonnull(strstr(text, " 2.50 "));
    for (int c = 0; c < MEM_COLUMNS; c++) totals[c] = memory_plan_column_total(&f.plan, c);
    check_line(text, "total", totals, MEM_COLUMNS, memory_plan_total(&f.plan));
    free(text);
    fixture_free(&f);
}
END_TEST

START_TEST(test_json) {
    Fixture f;
    fixture_init(&f);
    memory_plan_add(&f.plan, "sampler", MEM_KV_CACHE, 4096);
    const char *path = test_tmp_path("memory.json");
    char err[512];
    ck_assert_int_eq(memory_plan_write_json(&f.plan, "ppo", path, err, sizeof(err)), 0);
    json_t *root = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(json_string_value(json_object_get(root, "stage")), "ppo");
    json_t *roles = json_object_get(root, "roles");
    ck_assert_int_eq((int)json_array_size(roles), 4);
    const char *keys[MEM_COLUMNS] = {"weights",     "gradients", "optimiser",
                                     "activations", "kv_cache",  "other"};
    for (int i = 0; i < 4; i++) {
        json_t *o = json_array_get(roles, i);
        const MemoryRow *r = &f.plan.rows[i];
        ck_assert_str_eq(json_string_value(json_object_get(o, "role")), r->role);
        for (int c = 0; c < MEM_COLUMNS; c++)
            ck_assert_uint_eq((size_t)json_integer_value(json_object_get(o, keys[c])), r->bytes[c]);
        ck_assert_uint_eq((size_t)json_integer_value(json_object_get(o, "total")),
                          memory_row_total(r));
    }
    json_t *total = json_object_get(root, "total");
    ck_assert_uint_eq((size_t)json_integer_value(json_object_get(total, "kv_cache")), 4096);
    ck_assert_uint_eq((size_t)json_integer_value(json_object_get(total, "total")),
                      memory_plan_total(&f.plan));
    json_decref(root);
    fixture_free(&f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, test_rows_are_the_models_sizes);
    tcase_add_test(tc, test_compute_copy_is_counted_once);
    tcase_add_test(tc, test_sampler_kv_cache);
    tcase_add_test(tc, test_printed_table);
    tcase_add_test(tc, test_json);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
