// common/timer.h: wall-clock time and peak memory for progress lines and benchmarks.
#pragma once
#include <sys/resource.h>
#include <time.h>

static inline double time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Peak resident set size of this process so far, in MiB.
static inline double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; // Linux reports KiB
}
