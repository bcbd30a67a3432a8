// train/recipe/prepare.c: running a recipe's prepare commands.
#include "train/recipe/prepare.h"
#include "common/check.h"
#include "common/fs.h"
#include "data/import.h"
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 64

// Splits a command line at spaces; "double quotes" group words. Writes into buf (which must
// hold the line) and argv (MAX_ARGS + 1 entries, NULL-terminated); returns argc or -1.
static int split(const char *line, char *buf, char **argv) {
    int argc = 0;
    const char *p = line;
    char *out = buf;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        if (argc == MAX_ARGS) return -1;
        argv[argc++] = out;
        int quoted = 0;
        while (*p && (quoted || (*p != ' ' && *p != '\t'))) {
            if (*p == '"')
                quoted = !quoted;
            else
                *out++ = *p;
            p++;
        }
        if (quoted) return -1;
        *out++ = '\0';
    }
    argv[argc] = NULL;
    return argc;
}

// The recipe's folder, absolute.
static void recipe_dir(const Recipe *r, char *dir, size_t len) {
    char buf[PATH_MAX], abs[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", r->file);
    if (!realpath(dirname(buf), abs)) snprintf(abs, sizeof(abs), ".");
    snprintf(dir, len, "%s", abs);
}

// The absolute --out path of command i, or "" if it has none.
static void command_out(const Recipe *r, int i, char *out, size_t len) {
    const char *line = r->prepare.items[i];
    char *buf = lc_malloc(strlen(line) + 1), *argv[MAX_ARGS + 1], dir[PATH_MAX];
    int argc = split(line, buf, argv);
    out[0] = '\0';
    for (int a = 0; a < argc; a++) {
        const char *v = NULL;
        if (strcmp(argv[a], "--out") == 0 && a + 1 < argc)
            v = argv[a + 1];
        else if (strncmp(argv[a], "--out=", 6) == 0)
            v = argv[a] + 6;
        if (!v) continue;
        recipe_dir(r, dir, sizeof(dir));
        if (v[0] == '/')
            snprintf(out, len, "%s", v);
        else
            snprintf(out, len, "%s/%s", dir, v);
    }
    free(buf);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool prepare_will_make(const Recipe *r, const char *path) {
    char out[PATH_MAX + 256], val[PATH_MAX + 300];
    for (int i = 0; i < r->prepare.n; i++) {
        command_out(r, i, out, sizeof(out));
        size_t n = strlen(out);
        if (!n || exists(out)) continue;
        if (strncmp(path, out, n) == 0 && (path[n] == '\0' || path[n] == '/')) return true;
        import_val_path(out, val, sizeof(val)); // `data import --val-fraction` writes it too
        if (strcmp(path, val) == 0) return true;
    }
    return false;
}

// Prepare commands run with LC_PREPARE_DEPTH one above their parent's. The recipe rules refuse
// `run` and `validate` in prepare:, but should a prepare command still reach prepare_run (a
// recipe run some other way), a depth above PREPARE_MAX_DEPTH stops it before it spawns again:
// a recipe that prepares itself must fail, not fork without end.
#define PREPARE_DEPTH     "LC_PREPARE_DEPTH"
#define PREPARE_MAX_DEPTH 1

static int prepare_depth(void) {
    const char *v = getenv(PREPARE_DEPTH);
    return v ? atoi(v) : 0;
}

// Runs `layercake ARGS` in dir; returns its exit status (or 1 if it could not start).
static int spawn(char **argv, const char *dir) {
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        char *args[MAX_ARGS + 2], depth[16];
        args[0] = "layercake";
        for (int i = 0; argv[i]; i++) args[i + 1] = argv[i], args[i + 2] = NULL;
        snprintf(depth, sizeof(depth), "%d", prepare_depth() + 1);
        setenv(PREPARE_DEPTH, depth, 1);
        if (chdir(dir) == 0) execv("/proc/self/exe", args);
        perror("layercake: prepare");
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int prepare_run(const Recipe *r) {
    char dir[PATH_MAX], out[PATH_MAX + 256];
    recipe_dir(r, dir, sizeof(dir));
    for (int i = 0; i < r->prepare.n; i++) {
        const char *line = r->prepare.items[i];
        command_out(r, i, out, sizeof(out));
        if (out[0] && exists(out)) continue;
        if (out[0] && fs_mkdirs_for(out) != 0) {
            fprintf(stderr, "layercake: %s: prepare[%d]: cannot create the folder of %s\n", r->file,
                    i, out);
            return 1;
        }
        if (prepare_depth() >= PREPARE_MAX_DEPTH) {
            fprintf(stderr,
                    "layercake: %s: prepare[%d]: refusing to run '%s' from inside a prepare "
                    "command (%s=%d): a recipe whose prepare commands run a recipe recurses\n",
                    r->file, i, line, PREPARE_DEPTH, prepare_depth());
            return 1;
        }
        char *buf = lc_malloc(strlen(line) + 1), *argv[MAX_ARGS + 1];
        int argc = split(line, buf, argv), rc = 1;
        if (argc <= 0)
            fprintf(stderr, "layercake: %s: prepare[%d]: cannot parse '%s'\n", r->file, i, line);
        else {
            printf("prepare: layercake %s\n", line);
            fflush(stdout);
            rc = spawn(argv, dir);
            if (rc)
                fprintf(stderr, "layercake: %s: prepare[%d] failed (exit %d): layercake %s\n",
                        r->file, i, rc, line);
        }
        free(buf);
        if (rc) return 1;
    }
    return 0;
}
