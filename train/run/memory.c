// train/run/memory.c: the per-role memory report (see train/run/memory.h).
#include "train/run/memory.h"
#include "common/check.h"
#include "common/fs.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const COLUMN_NAMES[MEM_COLUMNS] = {
    "weights", "gradients", "optimiser", "activations", "KV cache", "other",
};

// JSON keys of the columns.
static const char *const COLUMN_KEYS[MEM_COLUMNS] = {
    "weights", "gradients", "optimiser", "activations", "kv_cache", "other",
};

const char *memory_column_name(MemColumn col) {
    LC_ASSERT(col >= 0 && col < MEM_COLUMNS);
    return COLUMN_NAMES[col];
}

void memory_plan_init(MemoryPlan *p) {
    memset(p, 0, sizeof(*p));
}

static MemoryRow *find_row(MemoryPlan *p, const char *role) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->rows[i].role, role) == 0) return &p->rows[i];
    return NULL;
}

const MemoryRow *memory_plan_row(const MemoryPlan *p, const char *role) {
    return find_row((MemoryPlan *)p, role);
}

void memory_plan_add(MemoryPlan *p, const char *role, MemColumn col, size_t bytes) {
    LC_ASSERT(col >= 0 && col < MEM_COLUMNS);
    LC_ASSERT(strlen(role) < MEMORY_ROLE_LEN);
    MemoryRow *r = find_row(p, role);
    if (!r) {
        LC_ASSERT(p->n < MEMORY_MAX_ROWS);
        r = &p->rows[p->n++];
        snprintf(r->role, sizeof(r->role), "%s", role);
    }
    r->bytes[col] += bytes;
}

size_t memory_adamw_bytes(const AdamW *opt) {
    return (opt->end - opt->begin) * 2 * sizeof(float);
}

void memory_plan_add_model(MemoryPlan *p, const char *role, const Model *m, const AdamW *opt) {
    memory_plan_add(p, role, MEM_WEIGHTS, model_weight_bytes(m));
    memory_plan_add(p, role, MEM_GRADIENTS, model_grad_bytes(m));
    memory_plan_add(p, role, MEM_OPTIMISER, opt ? memory_adamw_bytes(opt) : 0);
    memory_plan_add(p, role, MEM_ACTIVATIONS, model_act_bytes(m));
}

size_t memory_row_total(const MemoryRow *r) {
    size_t t = 0;
    for (int c = 0; c < MEM_COLUMNS; c++) t += r->bytes[c];
    return t;
}

size_t memory_plan_column_total(const MemoryPlan *p, MemColumn col) {
    size_t t = 0;
    for (int i = 0; i < p->n; i++) t += p->rows[i].bytes[col];
    return t;
}

size_t memory_plan_total(const MemoryPlan *p) {
    size_t t = 0;
    for (int i = 0; i < p->n; i++) t += memory_row_total(&p->rows[i]);
    return t;
}

// ---- the table ----------------------------------------------------------------------------

// A cell: MB with two decimals, or "-" for nothing.
static void cell(char *buf, size_t len, size_t bytes) {
    if (bytes == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.2f", (double)bytes / 1e6);
}

// The columns printed: the five always, "other" when some row has it.
static int shown(const MemoryPlan *p, int c) {
    return c != MEM_OTHER || memory_plan_column_total(p, MEM_OTHER) > 0;
}

// One line: the role, then values[0..MEM_COLUMNS] (the last the total), right-aligned.
static void print_line(FILE *f, const MemoryPlan *p, const char *stage, int role_w,
                       const int *width, const char *role, char cells[][32]) {
    fprintf(f, "[%s]   %-*s", stage, role_w, role);
    for (int c = 0; c <= MEM_COLUMNS; c++)
        if (c == MEM_COLUMNS || shown(p, c)) fprintf(f, "  %*s", width[c], cells[c]);
    fprintf(f, "\n");
}

// The cells of a row (or of the total row when r is NULL).
static void row_cells(const MemoryPlan *p, const MemoryRow *r, char cells[][32]) {
    for (int c = 0; c < MEM_COLUMNS; c++)
        cell(cells[c], 32, r ? r->bytes[c] : memory_plan_column_total(p, (MemColumn)c));
    cell(cells[MEM_COLUMNS], 32, r ? memory_row_total(r) : memory_plan_total(p));
}

void memory_plan_print(const MemoryPlan *p, const char *stage, FILE *f) {
    char cells[MEM_COLUMNS + 1][32];
    int width[MEM_COLUMNS + 1], role_w = (int)strlen("total");
    for (int c = 0; c < MEM_COLUMNS; c++) width[c] = (int)strlen(COLUMN_NAMES[c]);
    width[MEM_COLUMNS] = (int)strlen("total");
    for (int i = 0; i <= p->n; i++) { // the rows, then the total row
        const MemoryRow *r = i < p->n ? &p->rows[i] : NULL;
        if (r && (int)strlen(r->role) > role_w) role_w = (int)strlen(r->role);
        row_cells(p, r, cells);
        for (int c = 0; c <= MEM_COLUMNS; c++)
            if ((int)strlen(cells[c]) > width[c]) width[c] = (int)strlen(cells[c]);
    }
    fprintf(f, "[%s] memory per process, MB (1e6 bytes):\n", stage);
    char head[MEM_COLUMNS + 1][32];
    for (int c = 0; c < MEM_COLUMNS; c++) snprintf(head[c], 32, "%s", COLUMN_NAMES[c]);
    snprintf(head[MEM_COLUMNS], 32, "total");
    print_line(f, p, stage, role_w, width, "role", head);
    for (int i = 0; i < p->n; i++) {
        row_cells(p, &p->rows[i], cells);
        print_line(f, p, stage, role_w, width, p->rows[i].role, cells);
    }
    row_cells(p, NULL, cells);
    print_line(f, p, stage, role_w, width, "total", cells);
}

// ---- JSON ---------------------------------------------------------------------------------

static json_t *bytes_object(const size_t *bytes, size_t total) {
    json_t *o = json_object();
    for (int c = 0; c < MEM_COLUMNS; c++)
        json_object_set_new(o, COLUMN_KEYS[c], json_integer((json_int_t)bytes[c]));
    json_object_set_new(o, "total", json_integer((json_int_t)total));
    return o;
}

int memory_plan_write_json(const MemoryPlan *p, const char *stage, const char *path, char *err,
                           size_t errlen) {
    json_t *root = json_object(), *roles = json_array();
    json_object_set_new(root, "stage", json_string(stage));
    json_object_set_new(root, "unit", json_string("bytes"));
    for (int i = 0; i < p->n; i++) {
        json_t *o = bytes_object(p->rows[i].bytes, memory_row_total(&p->rows[i]));
        json_object_set_new(o, "role", json_string(p->rows[i].role));
        json_array_append_new(roles, o);
    }
    json_object_set_new(root, "roles", roles);
    size_t totals[MEM_COLUMNS];
    for (int c = 0; c < MEM_COLUMNS; c++) totals[c] = memory_plan_column_total(p, (MemColumn)c);
    json_object_set_new(root, "total", bytes_object(totals, memory_plan_total(p)));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return snprintf(err, errlen, "%s: cannot encode the plan", path), -1;
    int rc = fs_write_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

void memory_plan_report(const MemoryPlan *p, const StageRun *sr) {
    const char *name = sr->stage->name;
    memory_plan_print(p, name, stdout);
    if (sr->run->rank != 0) return;
    char path[4200], err[4400];
    snprintf(path, sizeof(path), "%s/memory.json", sr->dir);
    if (memory_plan_write_json(p, name, path, err, sizeof(err)) != 0)
        printf("[%s] warning: the memory plan is not kept: %s\n", name, err);
}
