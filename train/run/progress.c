// train/run/progress.c: progress lines.
#include "train/run/progress.h"
#include "common/timer.h"
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void progress_init(Progress *p, const char *stage, int64_t total, int64_t start, int every) {
    *p = (Progress){.stage = stage,
                    .total = total,
                    .start = start,
                    .every = every > 0 ? every : 1,
                    .tty = isatty(STDOUT_FILENO),
                    .t0 = time_now()};
}

static void format_eta(char *buf, size_t len, double seconds) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, len, "%02ld:%02ld", s / 60, s % 60);
}

void progress_update(Progress *p, int64_t step, double loss, double tokens_per_s,
                     const char *extra) {
    int last = step == p->total;
    if (!p->tty && step % p->every != 0 && !last && step != p->start + 1) return;
    double done = (double)(step - p->start), elapsed = time_now() - p->t0;
    char eta[32];
    format_eta(eta, sizeof(eta), done > 0 ? elapsed / done * (double)(p->total - step) : 0.0);
    printf("%s[%s] step %lld/%lld  loss %.4f  %.0f tok/s%s%s  ETA %s%s", p->tty ? "\r\033[K" : "",
           p->stage, (long long)step, (long long)p->total, loss, tokens_per_s, extra ? "  " : "",
           extra ? extra : "", eta, p->tty ? "" : "\n");
    fflush(stdout);
    p->live = p->tty;
}

void progress_print(Progress *p, const char *fmt, ...) {
    if (p->live) printf("\r\033[K");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    p->live = 0;
}

void progress_done(Progress *p) {
    if (p->live) printf("\n");
    p->live = 0;
    fflush(stdout);
}
