// train/stages/judge_command.c: the command judge (docs/judges.md, "The command protocol").
// judge.command starts once, when the stage opens its judge, as `/bin/sh -c COMMAND` in the
// recipe file's folder, in a process group of its own, with pipes on its stdin and stdout (its
// stderr is the stage's). Each judge_score call writes one JSON object a line,
// {"prompt": ..., "response": ...} (and "reference" when the prompt has one), then reads exactly
// as many lines back, each one number (strictly: common/parse.h), all within judge.timeout
// seconds. Writing and reading interleave under poll(), so a program that answers each line as
// it reads it never blocks on a full pipe. A timeout, an exit, a line that is not a number or an
// output that ends early is an error that kills the program's process group and reaps it; the
// stage then fails. SIGPIPE is ignored while writing (a program that exits early is reported by
// its status, not by killing the stage).
#define _GNU_SOURCE // pipe2
#include "common/check.h"
#include "common/parse.h"
#include "common/timer.h"
#include "train/stages/judge-impl.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define KEY "judge.command"

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(lc_malloc(n), s, n);
}

static void *grow(void *p, size_t bytes) {
    void *q = realloc(p, bytes);
    if (!q) LC_DIE("out of memory growing a buffer to %zu bytes", bytes);
    return q;
}

// Kills the program's process group and reaps it; the pipes are closed.
static void command_stop(JudgeCommand *c) {
    if (c->in >= 0) close(c->in);
    if (c->out >= 0) close(c->out);
    c->in = c->out = -1;
    if (c->pid > 0) {
        kill(-c->pid, SIGKILL);
        kill(c->pid, SIGKILL);
        while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    c->pid = -1;
    c->len = 0;
}

static int fail(Judge *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Judge *j, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    judge_report(j->sr, KEY, "'%s' %s", j->cmd.command, msg);
    command_stop(&j->cmd);
    return -1;
}

// The folder of the recipe file: where the command runs (as prepare commands do).
static char *recipe_folder(const Judge *j) {
    char *file = dup_str(j->sr->run->recipe->file);
    char *dir = dup_str(dirname(file));
    free(file);
    return dir;
}

int judge_command_open(Judge *j) {
    JudgeCommand *c = &j->cmd;
    c->command = dup_str(j->sr->stage->judge.command);
    snprintf(j->name, sizeof(j->name), "command %s", c->command);
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC)) return fail(j, "cannot start: pipe: %s", strerror(errno));
    if (pipe2(from, O_CLOEXEC)) {
        close(to[0]), close(to[1]);
        return fail(j, "cannot start: pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &def);
    // the shell moves to the recipe's folder, then runs the command ($1 and $2: no quoting)
    char *dir = recipe_folder(j);
    char *argv[] = {
        "/bin/sh",  "-c", "cd -- \"$1\" || exit 126; eval \"$2\"", "layercake-judge", dir,
        c->command, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(dir);
    close(to[0]), close(from[1]);
    c->in = to[1], c->out = from[0];
    if (rc) {
        close(c->in), close(c->out);
        c->in = c->out = -1;
        return fail(j, "cannot start /bin/sh: %s", strerror(rc));
    }
    c->pid = pid;
    fcntl(c->in, F_SETFL, fcntl(c->in, F_GETFL) | O_NONBLOCK);
    fcntl(c->out, F_SETFL, fcntl(c->out, F_GETFL) | O_NONBLOCK);
    return 0;
}

void judge_command_close(Judge *j) {
    if (j->kind != JK_COMMAND) return;
    command_stop(&j->cmd);
    free(j->cmd.buf);
    free(j->cmd.command);
}

// ---- the request --------------------------------------------------------------------------------

// Length of the valid UTF-8 sequence at s (n bytes left), or 0 when none starts there.
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    int len = c < 0x80                 ? 1
              : c >= 0xC2 && c <= 0xDF ? 2
              : c >= 0xE0 && c <= 0xEF ? 3
              : c >= 0xF0 && c <= 0xF4 ? 4
                                       : 0;
    if (!len || (size_t)len > n) return 0;
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    for (int k = 1; k < len; k++)
        if (s[k] < (k == 1 ? lo : 0x80) || s[k] > (k == 1 ? hi : 0xBF)) return 0;
    return len;
}

// A JSON string of text; bytes that are not UTF-8 (a response cut inside a character) become
// U+FFFD.
static json_t *json_text(const char *s) {
    size_t n = strlen(s), k = 0;
    char *buf = lc_malloc(3 * n + 1);
    for (size_t i = 0; i < n;) {
        int len = utf8_len((const unsigned char *)s + i, n - i);
        if (len)
            memcpy(buf + k, s + i, (size_t)len), k += (size_t)len, i += (size_t)len;
        else
            memcpy(buf + k, "\xEF\xBF\xBD", 3), k += 3, i++;
    }
    json_t *t = json_stringn(buf, k);
    free(buf);
    return t;
}

// The n request lines, concatenated into a malloc'd buffer of *len bytes.
static char *request(const JudgeItem *items, int n, size_t *len) {
    size_t cap = 4096, used = 0;
    char *out = lc_malloc(cap);
    for (int i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "prompt", json_text(items[i].prompt));
        json_object_set_new(o, "response", json_text(items[i].response));
        if (items[i].reference) json_object_set_new(o, "reference", json_text(items[i].reference));
        char *line = json_dumps(o, JSON_COMPACT);
        LC_ASSERT(line);
        json_decref(o);
        size_t k = strlen(line);
        while (used + k + 2 > cap) cap *= 2, out = grow(out, cap);
        memcpy(out + used, line, k);
        used += k;
        out[used++] = '\n';
        free(line);
    }
    *len = used;
    return out;
}

// ---- the reply ----------------------------------------------------------------------------------

// After the program closed its output: how it ended, when it has within a moment (a sentence
// beginning "exited"/"was killed"), else "".
static void how_ended(JudgeCommand *c, char *buf, size_t len) {
    buf[0] = '\0';
    for (int tries = 0; tries < 100; tries++) { // up to 1 s
        int status;
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid) {
            c->pid = -1;
            if (WIFEXITED(status))
                snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
            else if (WIFSIGNALED(status))
                snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                         strsignal(WTERMSIG(status)));
            return;
        }
        if (r < 0 && errno != EINTR) return;
        usleep(10000);
    }
}

// Consumes the complete lines held in c->buf into scores[*got..n). Returns 0, or -1 after the
// error (a line that is not a number).
static int take_lines(Judge *j, int n, int *got, double *scores) {
    JudgeCommand *c = &j->cmd;
    size_t start = 0;
    char *nl;
    while (*got < n && (nl = memchr(c->buf + start, '\n', c->len - start))) {
        *nl = '\0';
        const char *line = c->buf + start;
        if (parse_double(line, &scores[*got]))
            return fail(j, "printed line %d of %d: \"%.80s%s\" is not a number", *got + 1, n, line,
                        strlen(line) > 80 ? "..." : "");
        (*got)++;
        start = (size_t)(nl - c->buf) + 1;
    }
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    return 0;
}

// Reads what the program printed into c->buf. Returns 1 at the end of its output, 0, or -1 on
// a read error (after the message).
static int read_some(Judge *j) {
    JudgeCommand *c = &j->cmd;
    if (c->cap - c->len < 4096) {
        c->cap = c->cap ? 2 * c->cap : 8192;
        c->buf = grow(c->buf, c->cap);
    }
    ssize_t r = read(c->out, c->buf + c->len, c->cap - c->len - 1);
    if (r > 0) c->len += (size_t)r;
    if (r == 0) return 1;
    if (r < 0 && errno != EAGAIN && errno != EINTR)
        return fail(j, "cannot be read from: %s", strerror(errno));
    return 0;
}

// The exchange of one call: writes req, reads n numbers, within the timeout.
static int exchange(Judge *j, const char *req, size_t req_len, int n, double *scores) {
    JudgeCommand *c = &j->cmd;
    double timeout = j->sr->stage->judge.timeout, deadline = time_now() + timeout;
    size_t sent = 0;
    int got = 0;
    while (got < n) {
        double left = deadline - time_now();
        if (left <= 0)
            return fail(j, "timed out after %gs (%d of %d scores read)", timeout, got, n);
        struct pollfd p[2] = {{.fd = c->out, .events = POLLIN}, {.fd = c->in, .events = POLLOUT}};
        int np = sent < req_len && c->in >= 0 ? 2 : 1;
        int r = poll(p, (nfds_t)np, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) return fail(j, "cannot be polled: %s", strerror(errno));
        if (np == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(c->in, req + sent, req_len - sent);
            if (w > 0) sent += (size_t)w;
            if (w < 0 && errno == EPIPE) { // it stopped reading: its output and status tell
                close(c->in);
                c->in = -1;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR)
                return fail(j, "cannot be written to: %s", strerror(errno));
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            int end = read_some(j);
            if (end < 0 || take_lines(j, n, &got, scores)) return -1;
            if (end == 1 && got < n) {
                char ended[128];
                how_ended(c, ended, sizeof(ended));
                if (ended[0] && strcmp(ended, "exited with status 0") != 0)
                    return fail(j, "%s (after printing %d of %d scores)", ended, got, n);
                return fail(j, "printed only %d of %d lines before its output ended%s%s", got, n,
                            ended[0] ? " and it " : "", ended);
            }
        }
    }
    if (c->len > 0) return fail(j, "printed more than the %d lines asked for", n);
    return 0;
}

int judge_command_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct) {
    JudgeCommand *c = &j->cmd;
    if (c->pid < 0) {
        judge_report(j->sr, KEY, "'%s' is not running (it failed before)", c->command);
        return -1;
    }
    size_t len;
    char *req = request(items, n, &len);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old);
    int rc = exchange(j, req, len, n, scores);
    sigaction(SIGPIPE, &old, NULL);
    free(req);
    for (int i = 0; correct && i < n; i++) correct[i] = NAN;
    return rc;
}
