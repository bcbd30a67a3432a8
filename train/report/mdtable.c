#include "train/report/mdtable.h"
#include "common/check.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(lc_malloc(n), s, n);
}

void mdtable_init(MdTable *t, int n_cols, const char *const *header, const char *align) {
    LC_ASSERT(n_cols >= 1 && (!align || (int)strlen(align) == n_cols));
    *t = (MdTable){.n_cols = n_cols, .cap = 8, .align = align};
    t->cells = lc_calloc((size_t)(1 + t->cap) * n_cols, sizeof(*t->cells));
    for (int c = 0; c < n_cols; c++) t->cells[c] = str_dup(header[c]);
}

void mdtable_free(MdTable *t) {
    for (int k = 0; k < (1 + t->n_rows) * t->n_cols; k++) free(t->cells[k]);
    free(t->cells);
    *t = (MdTable){0};
}

void mdtable_add_row(MdTable *t) {
    if (t->n_rows == t->cap) {
        size_t old = (size_t)(1 + t->cap) * t->n_cols;
        t->cap *= 2;
        size_t now = (size_t)(1 + t->cap) * t->n_cols;
        char **cells = lc_calloc(now, sizeof(*cells));
        memcpy(cells, t->cells, old * sizeof(*cells));
        free(t->cells);
        t->cells = cells;
    }
    t->n_rows++;
    for (int c = 0; c < t->n_cols; c++) t->cells[t->n_rows * t->n_cols + c] = str_dup("");
}

void mdtable_set(MdTable *t, int col, const char *fmt, ...) {
    LC_ASSERT(t->n_rows >= 1 && col >= 0 && col < t->n_cols);
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char **cell = &t->cells[t->n_rows * t->n_cols + col];
    free(*cell);
    *cell = str_dup(buf);
}

// Width of a cell as printed: bytes, plus one per escaped '|', minus UTF-8 continuation bytes
// (so that "±" or "—" count as one column).
static int cell_width(const char *s) {
    int w = 0;
    for (; *s; s++) w += (*s == '|') + (((unsigned char)*s & 0xC0) != 0x80);
    return w;
}

static void cell_print(FILE *f, const char *s, int width, char align) {
    int pad = width - cell_width(s);
    if (align == 'r') fprintf(f, "%*s", pad, "");
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
    if (align != 'r') fprintf(f, "%*s", pad, "");
}

static void rule_print(FILE *f, const int *width, const char *align, int n_cols) {
    for (int c = 0; c < n_cols; c++) {
        fputs(c ? " | " : "| ", f);
        int dashes = width[c] - (align && align[c] == 'r');
        for (int k = 0; k < dashes; k++) fputc('-', f);
        if (align && align[c] == 'r') fputc(':', f);
    }
    fputs(" |\n", f);
}

void mdtable_print(const MdTable *t, FILE *f) {
    int *width = lc_calloc((size_t)t->n_cols, sizeof(*width));
    for (int r = 0; r <= t->n_rows; r++)
        for (int c = 0; c < t->n_cols; c++) {
            int w = cell_width(t->cells[r * t->n_cols + c]);
            if (w > width[c]) width[c] = w;
        }
    for (int c = 0; c < t->n_cols; c++)
        if (width[c] < 3) width[c] = 3; // room for the rule's "--:"
    for (int r = 0; r <= t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) {
            fputs(c ? " | " : "| ", f);
            cell_print(f, t->cells[r * t->n_cols + c], width[c], t->align ? t->align[c] : 'l');
        }
        fputs(" |\n", f);
        if (r == 0) rule_print(f, width, t->align, t->n_cols);
    }
    free(width);
}
