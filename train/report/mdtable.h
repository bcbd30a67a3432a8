// train/report/mdtable.h: Markdown tables whose columns are padded to equal width, so the same text
// reads well on a terminal and renders as a table in report.md. Cells are copied; '|' in a
// cell is written as "\|" so it cannot end the cell.
#pragma once
#include <stdio.h>

typedef struct {
    int n_cols;
    int n_rows;        // body rows (the header is not counted)
    int cap;           // rows allocated
    char **cells;      // (1 + cap, n_cols) malloc'd strings; row 0 is the header
    const char *align; // one character per column: 'l' left, 'r' right
} MdTable;

// A table with the given header cells; align as above (NULL: all left).
void mdtable_init(MdTable *t, int n_cols, const char *const *header, const char *align);
void mdtable_free(MdTable *t);

// Appends an empty row; mdtable_set then fills cells of the last row.
void mdtable_add_row(MdTable *t);
void mdtable_set(MdTable *t, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void mdtable_print(const MdTable *t, FILE *f);
