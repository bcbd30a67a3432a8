// train/stages/judge_report.c: the judges' messages (train/stages/judge-impl.h).
#include "train/stages/judge-impl.h"
#include <stdarg.h>
#include <stdio.h>

void judge_report(const StageRun *sr, const char *key, const char *fmt, ...) {
    const Recipe *r = sr->run->recipe;
    const char *name = sr->stage->name, *where = recipe_where(r, sr->index, key);
    if (!where) where = recipe_where(r, sr->index, "name");
    fprintf(stderr, "layercake: %s: %s.%s: ", where ? where : r->file, name, key);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
