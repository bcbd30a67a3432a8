// train/cli/options.h: the one command-line parser of every `layercake` command. A command is
// described once, by a table of its options and the positional arguments it takes; from that
// table come the parsing, the strict numbers (common/parse.h), the usage text and the error
// messages, so every command reads its command line the same way:
//   --name VALUE, --name=VALUE, -x VALUE, -xVALUE; options and arguments in any order; "--"
//   ends the options; "-" alone is an argument; -h/--help prints the usage to stdout.
// A bad command line prints "layercake CMD: --option: what is wrong", then the usage, to
// stderr; the command exits 2 (commands.h: 0 success, 1 failure, 2 bad command line).
#pragma once
#include <stdbool.h>
#include <stdio.h>

typedef enum {
    OPT_FLAG,   // bool: set to true when present; takes no value
    OPT_INT,    // int
    OPT_INT64,  // int64_t
    OPT_U64,    // uint64_t (no sign)
    OPT_FLOAT,  // float, finite
    OPT_DOUBLE, // double, finite (a fraction is a double with bounds 0 and 1)
    OPT_STRING, // const char *: points into argv
    OPT_LIST,   // OptionList: every occurrence appended (a repeatable option)
} OptionType;

// The values of a repeatable option, in command-line order; free with options_list_free.
typedef struct {
    const char **v; // (n) pointers into argv
    int n;
} OptionList;

// One row of an option table. The table ends with a row whose name is NULL.
typedef struct {
    const char *name;    // long name without "--", e.g. "top-k"
    char letter;         // short form -x, or 0 for none
    OptionType type;     //
    void *value;         // where the value goes, of the type's C type (see OptionType)
    double min, max;     // numbers: inclusive bounds, checked when min < max
    bool required;       // a missing required option is a usage error
    const char *metavar; // the value's name in the usage, e.g. "N"; NULL for flags
    const char *help;    // one line
} Option;

// A command (or a subcommand such as `data import`) as its usage shows it.
typedef struct {
    const char *name;        // after "layercake ", e.g. "data import"
    const char *synopsis;    // after the name on the usage line, e.g. "CHECKPOINT.h5 [options]"
    const char *summary;     // one line: what it does (a command group's usage lists it)
    const char *description; // paragraphs after the usage line (ends with '\n'), or NULL
    const Option *options;   // the table; -h/--help is added by the parser
    const char *args;        // the positional arguments' name in messages, e.g. "RUN_DIR"
    int min_args, max_args;  // how many positional arguments it takes; max_args -1: no limit
} OptionsCommand;

// The positional arguments, in order (pointers into argv).
typedef struct {
    char **v;
    int n;
} OptionArgs;

#define OPTIONS_CONTINUE (-1) // options_parse: the command line is good, go on

// Parses argv[1..argc) (argv[0] is the command's own name) into the table's value pointers
// and args, which points into argv (the positional arguments are moved to its front). Values
// not on the command line keep what the caller stored before. Returns OPTIONS_CONTINUE, 0
// after printing the usage for --help, or 2 after a usage error (message and usage on stderr).
int options_parse(const OptionsCommand *cmd, int argc, char **argv, OptionArgs *args);

// Prints the usage: the usage line, the description, then one line per option.
void options_usage(const OptionsCommand *cmd, FILE *f);

// Reports a usage error found after parsing ("layercake NAME: message", then the usage, on
// stderr). Returns 2, the exit status of a bad command line.
__attribute__((format(printf, 2, 3))) int options_usage_error(const OptionsCommand *cmd,
                                                              const char *fmt, ...);

// For a command with subcommands (`data`, `tokenizer`): runs the subcommand named by argv[1]
// with argv + 1, or prints every subcommand's usage line (-h/--help/help: stdout, exit 0;
// missing or unknown: stderr, exit 2). subs[i] describes run[i].
typedef int (*OptionsMain)(int argc, char **argv);
int options_dispatch(const char *group, const OptionsCommand *const *subs, const OptionsMain *run,
                     int n_subs, int argc, char **argv);

void options_list_free(OptionList *list);
