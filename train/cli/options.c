// train/cli/options.c: the command-line parser of options.h: one pass over argv, the option
// table looked up by long name or letter, numbers through common/parse.h with the table's
// bounds, then the required options and the count of positional arguments.
#include "train/cli/options.h"
#include "common/check.h"
#include "common/parse.h"
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OPTIONS_MAX 64 // rows of one table (the `seen` marks below)

typedef struct {
    const OptionsCommand *cmd;
    int argc;
    char **argv;
    int i;                  // the argument being read
    bool seen[OPTIONS_MAX]; // seen[k]: row k was on the command line
} Parser;

// A parsed number of any option type, and its value as a double for the bounds check.
typedef union {
    int i;
    int64_t i64;
    uint64_t u64;
    float f;
    double d;
} Number;

// ---- messages ------------------------------------------------------------------------------

static void usage_error_v(const OptionsCommand *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "layercake %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n");
    options_usage(cmd, stderr);
}

int options_usage_error(const OptionsCommand *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    usage_error_v(cmd, fmt, ap);
    va_end(ap);
    return 2;
}

// Prints "  -x, --name METAVAR" padded to the help column, then the help.
static void usage_option(FILE *f, const Option *o) {
    char head[128];
    int n = snprintf(head, sizeof(head), "  %c%c%s--%s%s%s", o->letter ? '-' : ' ',
                     o->letter ? o->letter : ' ', o->letter ? ", " : "  ", o->name,
                     o->metavar ? " " : "", o->metavar ? o->metavar : "");
    fprintf(f, "%s%*s%s%s%s\n", head, n < 30 ? 30 - n : 1, "", o->help ? o->help : "",
            o->type == OPT_LIST ? " (repeatable)" : "", o->required ? " (required)" : "");
}

void options_usage(const OptionsCommand *cmd, FILE *f) {
    fprintf(f, "usage: layercake %s %s\n", cmd->name, cmd->synopsis ? cmd->synopsis : "");
    if (cmd->description) fprintf(f, "\n%s", cmd->description);
    fprintf(f, "\noptions:\n");
    for (const Option *o = cmd->options; o && o->name; o++) usage_option(f, o);
    usage_option(f, &(Option){.name = "help", .letter = 'h', .help = "print this help"});
}

// ---- values --------------------------------------------------------------------------------

static const char *number_kind(OptionType t) {
    if (t == OPT_INT || t == OPT_INT64) return "an integer";
    if (t == OPT_U64) return "a non-negative integer";
    return "a number";
}

// Parses text as the option's type; *as_double is the value for the bounds check.
static int number_parse(OptionType t, const char *text, Number *n, double *as_double) {
    int rc = -1;
    if (t == OPT_INT && (rc = parse_int(text, &n->i)) == 0) *as_double = n->i;
    if (t == OPT_INT64 && (rc = parse_i64(text, &n->i64)) == 0) *as_double = (double)n->i64;
    if (t == OPT_U64 && (rc = parse_u64(text, &n->u64)) == 0) *as_double = (double)n->u64;
    if (t == OPT_FLOAT && (rc = parse_float(text, &n->f)) == 0) *as_double = n->f;
    if (t == OPT_DOUBLE && (rc = parse_double(text, &n->d)) == 0) *as_double = n->d;
    return rc;
}

static void number_store(const Option *o, const Number *n) {
    if (o->type == OPT_INT) *(int *)o->value = n->i;
    if (o->type == OPT_INT64) *(int64_t *)o->value = n->i64;
    if (o->type == OPT_U64) *(uint64_t *)o->value = n->u64;
    if (o->type == OPT_FLOAT) *(float *)o->value = n->f;
    if (o->type == OPT_DOUBLE) *(double *)o->value = n->d;
}

// "from 1 to 9", "at least 1", "at most 0.5": an integer option's bounds print as integers.
static void range_text(const Option *o, char *buf, size_t len) {
    const char *fmt = o->type == OPT_FLOAT || o->type == OPT_DOUBLE ? "%g" : "%.0f";
    char lo[64], hi[64];
    snprintf(lo, sizeof(lo), fmt, o->min);
    snprintf(hi, sizeof(hi), fmt, o->max);
    if (isinf(o->max))
        snprintf(buf, len, "at least %s", lo);
    else if (isinf(o->min))
        snprintf(buf, len, "at most %s", hi);
    else
        snprintf(buf, len, "from %s to %s", lo, hi);
}

static int number_set(const OptionsCommand *cmd, const Option *o, const char *text) {
    Number n;
    double v = 0;
    if (number_parse(o->type, text, &n, &v) != 0)
        return options_usage_error(cmd, "--%s: '%s' is not %s", o->name, text,
                                   number_kind(o->type));
    if (o->min < o->max && (v < o->min || v > o->max)) {
        char range[160];
        range_text(o, range, sizeof(range));
        return options_usage_error(cmd, "--%s: %s is out of range: it must be %s", o->name, text,
                                   range);
    }
    number_store(o, &n);
    return OPTIONS_CONTINUE;
}

static void list_append(OptionList *l, const char *text) {
    const char **v = realloc(l->v, ((size_t)l->n + 1) * sizeof(*v));
    if (!v) LC_DIE("out of memory for the values of an option");
    l->v = v;
    l->v[l->n++] = text;
}

// Stores text as the value of option o.
static int option_set(Parser *p, const Option *o, const char *text) {
    p->seen[o - p->cmd->options] = true;
    if (o->type == OPT_FLAG)
        *(bool *)o->value = true;
    else if (o->type == OPT_STRING)
        *(const char **)o->value = text;
    else if (o->type == OPT_LIST)
        list_append(o->value, text);
    else
        return number_set(p->cmd, o, text);
    return OPTIONS_CONTINUE;
}

// ---- one argument --------------------------------------------------------------------------

static const Option *find_long(const OptionsCommand *cmd, const char *name, size_t len) {
    for (const Option *o = cmd->options; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

static const Option *find_letter(const OptionsCommand *cmd, char c) {
    for (const Option *o = cmd->options; o && o->name; o++)
        if (o->letter == c) return o;
    return NULL;
}

static int help(const OptionsCommand *cmd) {
    options_usage(cmd, stdout);
    return 0;
}

// The value of option o: attached (--name=V, -xV) or the next argument, whatever it looks
// like, so "--label-noise -0.1" reads -0.1 as the value.
static int take_value(Parser *p, const Option *o, const char *attached) {
    if (o->type == OPT_FLAG) {
        if (!attached) return option_set(p, o, NULL);
        return options_usage_error(p->cmd, "--%s takes no value, but was given '%s'", o->name,
                                   attached);
    }
    if (attached) return option_set(p, o, attached);
    if (p->i + 1 >= p->argc)
        return options_usage_error(p->cmd, "--%s needs a value (%s)", o->name,
                                   o->metavar ? o->metavar : "VALUE");
    return option_set(p, o, p->argv[++p->i]);
}

// "--name" or "--name=value".
static int read_long(Parser *p) {
    const char *name = p->argv[p->i] + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    if (len == 4 && strncmp(name, "help", 4) == 0) return help(p->cmd);
    const Option *o = find_long(p->cmd, name, len);
    if (!o) return options_usage_error(p->cmd, "unknown option '--%.*s'", (int)len, name);
    return take_value(p, o, eq ? eq + 1 : NULL);
}

// "-x" or "-xVALUE".
static int read_short(Parser *p) {
    const char *arg = p->argv[p->i];
    if (arg[1] == 'h' && arg[2] == '\0') return help(p->cmd);
    const Option *o = find_letter(p->cmd, arg[1]);
    if (!o) return options_usage_error(p->cmd, "unknown option '%s'", arg);
    return take_value(p, o, arg[2] ? arg + 2 : NULL);
}

// ---- after the last argument ---------------------------------------------------------------

// Every required option was given; else one message that lists them all.
static int check_required(const Parser *p) {
    char list[512] = "";
    const char *missing = NULL;
    int n = 0, k = 0;
    for (const Option *o = p->cmd->options; o && o->name; o++, k++) {
        if (!o->required) continue;
        size_t at = strlen(list);
        snprintf(list + at, sizeof(list) - at, "%s--%s", n++ ? ", " : "", o->name);
        if (!p->seen[k] && !missing) missing = o->name;
    }
    if (!missing) return OPTIONS_CONTINUE;
    if (n == 1) return options_usage_error(p->cmd, "--%s is required", missing);
    char *last = strrchr(list, ','); // "--a, --b, --c" reads "--a, --b and --c"
    char tail[512] = "";
    if (last) snprintf(tail, sizeof(tail), " and%s", last + 1), *last = '\0';
    return options_usage_error(p->cmd, "needs %s%s (--%s is missing)", list, tail, missing);
}

static int check_args(const OptionsCommand *cmd, const OptionArgs *a) {
    const char *what = cmd->args ? cmd->args : "argument";
    if (cmd->min_args == 1 && cmd->max_args == 1 && a->n != 1)
        return options_usage_error(cmd, "expected one %s, got %d", what, a->n);
    if (a->n < cmd->min_args) return options_usage_error(cmd, "missing %s", what);
    if (cmd->max_args >= 0 && a->n > cmd->max_args)
        return options_usage_error(cmd, "unexpected argument '%s'%s", a->v[cmd->max_args],
                                   cmd->max_args == 0 ? ": it takes no other arguments" : "");
    return OPTIONS_CONTINUE;
}

// ---- the parser ----------------------------------------------------------------------------

int options_parse(const OptionsCommand *cmd, int argc, char **argv, OptionArgs *args) {
    Parser p = {.cmd = cmd, .argc = argc, .argv = argv};
    int rows = 0, rc = OPTIONS_CONTINUE;
    while (cmd->options && cmd->options[rows].name) rows++;
    LC_ASSERT(rows <= OPTIONS_MAX);
    bool only_args = false;
    *args = (OptionArgs){.v = argv + 1, .n = 0};
    for (p.i = 1; p.i < argc && rc == OPTIONS_CONTINUE; p.i++) {
        char *a = argv[p.i];
        if (only_args || a[0] != '-' || a[1] == '\0')
            argv[1 + args->n++] = a; // positional: moved to the front, in order
        else if (strcmp(a, "--") == 0)
            only_args = true;
        else
            rc = a[1] == '-' ? read_long(&p) : read_short(&p);
    }
    if (rc == OPTIONS_CONTINUE) rc = check_required(&p);
    if (rc == OPTIONS_CONTINUE) rc = check_args(cmd, args);
    return rc;
}

// ---- command groups ------------------------------------------------------------------------

// The subcommand's own word: "import" of "data import".
static const char *sub_word(const OptionsCommand *c) {
    const char *sp = strrchr(c->name, ' ');
    return sp ? sp + 1 : c->name;
}

static void group_usage(FILE *f, const char *group, const OptionsCommand *const *subs, int n) {
    for (int i = 0; i < n; i++)
        fprintf(f, "%s layercake %s %s\n", i ? "      " : "usage:", subs[i]->name,
                subs[i]->synopsis);
    fprintf(f, "\n");
    for (int i = 0; i < n; i++) fprintf(f, "  %-9s %s\n", sub_word(subs[i]), subs[i]->summary);
    fprintf(f, "\nrun 'layercake %s SUBCOMMAND --help' for its options\n", group);
}

int options_dispatch(const char *group, const OptionsCommand *const *subs, const OptionsMain *run,
                     int n_subs, int argc, char **argv) {
    const char *s = argc >= 2 ? argv[1] : NULL;
    if (s && (!strcmp(s, "--help") || !strcmp(s, "-h") || !strcmp(s, "help"))) {
        group_usage(stdout, group, subs, n_subs);
        return 0;
    }
    for (int i = 0; s && i < n_subs; i++)
        if (strcmp(s, sub_word(subs[i])) == 0) return run[i](argc - 1, argv + 1);
    if (s)
        fprintf(stderr, "layercake %s: unknown subcommand '%s'\n\n", group, s);
    else
        fprintf(stderr, "layercake %s: which subcommand?\n\n", group);
    group_usage(stderr, group, subs, n_subs);
    return 2;
}

void options_list_free(OptionList *list) {
    free(list->v);
    *list = (OptionList){0};
}
