// tests/test_options.c: the command-line parser (train/cli/options.h) and the strict numbers
// under it (common/parse.h): every option type, bad numbers and ranges named in the message,
// unknown options, missing values, required options, positional arguments and --help.
#include "common/parse.h"
#include "testutil.h"
#include "train/cli/options.h"
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- common/parse.h -------------------------------------------------------------------------

START_TEST(test_parse_numbers) {
    int i = 7;
    int64_t i64 = 7;
    uint64_t u = 7;
    float f = 7;
    double d = 7;
    ck_assert_int_eq(parse_int("-12", &i), 0);
    ck_assert_int_eq(i, -12);
    ck_assert_int_eq(parse_int("2147483648", &i), -1); // INT_MAX + 1
    ck_assert_int_eq(parse_int("12x", &i), -1);
    ck_assert_int_eq(parse_int(" 12", &i), -1);
    ck_assert_int_eq(parse_int("+12", &i), -1);
    ck_assert_int_eq(parse_int("", &i), -1);
    ck_assert_int_eq(i, -12); // left unchanged on failure
    ck_assert_int_eq(parse_i64("-9223372036854775808", &i64), 0);
    ck_assert(i64 == INT64_MIN);
    ck_assert_int_eq(parse_i64("9223372036854775808", &i64), -1);
    ck_assert_int_eq(parse_u64("18446744073709551615", &u), 0);
    ck_assert(u == UINT64_MAX);
    ck_assert_int_eq(parse_u64("-1", &u), -1);
    ck_assert_int_eq(parse_u64("18446744073709551616", &u), -1);
    ck_assert_int_eq(parse_double("1e-3", &d), 0);
    ck_assert(d == 1e-3);
    ck_assert_int_eq(parse_double(".5", &d), 0);
    ck_assert(d == 0.5);
    ck_assert_int_eq(parse_double("nan", &d), -1);
    ck_assert_int_eq(parse_double("-inf", &d), -1);
    ck_assert_int_eq(parse_double("1e999", &d), -1);
    ck_assert_int_eq(parse_double("0.5.", &d), -1);
    ck_assert_int_eq(parse_float("-2.5", &f), 0);
    ck_assert(f == -2.5f);
    ck_assert_int_eq(parse_float("1e39", &f), -1); // beyond float
}
END_TEST

// ---- options_parse ---------------------------------------------------------------------------

typedef struct {
    bool flag;
    int i;
    int64_t i64;
    uint64_t u;
    float f;
    double frac;
    const char *s, *req;
    OptionList list;
} Values;

static Values v;
static const Option OPTS[] = {
    {"flag", 'f', OPT_FLAG, &v.flag, 0, 0, false, NULL, "a flag"},
    {"int", 'i', OPT_INT, &v.i, 1, 10, false, "N", "an int from 1 to 10"},
    {"i64", 0, OPT_INT64, &v.i64, 0, INFINITY, false, "N", "a non-negative int64"},
    {"u64", 0, OPT_U64, &v.u, 0, 0, false, "S", "a u64"},
    {"float", 0, OPT_FLOAT, &v.f, 0, 0, false, "X", "a float"},
    {"frac", 0, OPT_DOUBLE, &v.frac, 0, 1, false, "F", "a fraction"},
    {"str", 's', OPT_STRING, &v.s, 0, 0, false, "TEXT", "a string"},
    {"req", 0, OPT_STRING, &v.req, 0, 0, true, "TEXT", "a required string"},
    {"list", 'l', OPT_LIST, &v.list, 0, 0, false, "X", "repeatable"},
    {0}};
static const OptionsCommand CMD = {"test",
                                   "[options] FILE [MORE...]",
                                   "a test command",
                                   "Describes the command.\n",
                                   OPTS,
                                   "FILE",
                                   1,
                                   3};

// Runs options_parse on a space-separated command line (no quoting), with stdout and stderr
// captured into out (what it printed); returns its status.
static int run(const char *line, OptionArgs *args, char *out, size_t outlen) {
    static char buf[1024], *argv[64];
    snprintf(buf, sizeof(buf), "test %s", line);
    int argc = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    options_list_free(&v.list);
    v = (Values){.i = 5};
    const char *path = test_tmp_path("options.out");
    fflush(stdout), fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    FILE *f = fopen(path, "w");
    dup2(fileno(f), 1), dup2(fileno(f), 2);
    int rc = options_parse(&CMD, argc, argv, args);
    fflush(stdout), fflush(stderr);
    dup2(saved_out, 1), dup2(saved_err, 2);
    close(saved_out), close(saved_err);
    fclose(f);
    f = fopen(path, "r");
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

// The command line is a usage error (status 2) whose message contains want.
static void expect_error(const char *line, const char *want) {
    OptionArgs args;
    char out[8192];
    ck_assert_msg(run(line, &args, out, sizeof(out)) == 2, "'%s' was accepted", line);
    ck_assert_msg(strstr(out, want), "'%s': no '%s' in:\n%s", line, want, out);
    ck_assert_msg(strstr(out, "layercake test: ") == out, "'%s': %s", line, out);
    ck_assert_msg(strstr(out, "usage: layercake test [options] FILE"), "no usage: %s", out);
}

START_TEST(test_every_type) {
    OptionArgs a;
    char out[8192];
    ck_assert_int_eq(run("--req r --flag --int 3 --i64 -0 --u64 18446744073709551615 --float "
                         "-1.5 --frac 0.25 --str hello -l x --list=y f1",
                         &a, out, sizeof(out)),
                     OPTIONS_CONTINUE);
    ck_assert(v.flag);
    ck_assert_int_eq(v.i, 3);
    ck_assert(v.i64 == 0);
    ck_assert(v.u == UINT64_MAX);
    ck_assert(v.f == -1.5f);
    ck_assert(v.frac == 0.25);
    ck_assert_str_eq(v.s, "hello");
    ck_assert_str_eq(v.req, "r");
    ck_assert_int_eq(v.list.n, 2);
    ck_assert_str_eq(v.list.v[0], "x");
    ck_assert_str_eq(v.list.v[1], "y");
    ck_assert_int_eq(a.n, 1);
    ck_assert_str_eq(a.v[0], "f1");
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_forms_and_defaults) {
    OptionArgs a;
    char out[8192];
    // short forms, --name=value, a negative value read as a value, values kept when absent
    ck_assert_int_eq(run("f1 -i7 -s -x --req=a=b f2 --float -2", &a, out, sizeof(out)),
                     OPTIONS_CONTINUE);
    ck_assert_int_eq(v.i, 7);
    ck_assert_str_eq(v.s, "-x");
    ck_assert_str_eq(v.req, "a=b");
    ck_assert(v.f == -2.0f);
    ck_assert(!v.flag);
    ck_assert_int_eq(v.list.n, 0);
    ck_assert_int_eq(a.n, 2);
    ck_assert_str_eq(a.v[0], "f1");
    ck_assert_str_eq(a.v[1], "f2");
    // "--" ends the options; "-" alone is an argument
    ck_assert_int_eq(run("--req a - -- --flag", &a, out, sizeof(out)), OPTIONS_CONTINUE);
    ck_assert(!v.flag);
    ck_assert_int_eq(a.n, 2);
    ck_assert_str_eq(a.v[0], "-");
    ck_assert_str_eq(a.v[1], "--flag");
}
END_TEST

START_TEST(test_bad_numbers) {
    expect_error("--req a f --int x", "--int: 'x' is not an integer");
    expect_error("--req a f --int 3.5", "--int: '3.5' is not an integer");
    expect_error("--req a f --i64 12x", "--i64: '12x' is not an integer");
    expect_error("--req a f --u64 -1", "--u64: '-1' is not a non-negative integer");
    expect_error("--req a f --float warm", "--float: 'warm' is not a number");
    expect_error("--req a f --frac nan", "--frac: 'nan' is not a number");
    expect_error("--req a f --int=", "--int: '' is not an integer");
}
END_TEST

START_TEST(test_ranges) {
    expect_error("--req a f --int 11", "--int: 11 is out of range: it must be from 1 to 10");
    expect_error("--req a f --int 0", "from 1 to 10");
    expect_error("--req a f --i64 -1", "--i64: -1 is out of range: it must be at least 0");
    expect_error("--req a f --frac 1.5", "--frac: 1.5 is out of range: it must be from 0 to 1");
    OptionArgs a;
    char out[8192];
    ck_assert_int_eq(run("--req a f --int 10 --frac 1", &a, out, sizeof(out)), OPTIONS_CONTINUE);
    ck_assert_int_eq(v.i, 10); // bounds are inclusive
}
END_TEST

START_TEST(test_command_line_errors) {
    expect_error("--req a f --bogus", "unknown option '--bogus'");
    expect_error("--req a f --bogus=3", "unknown option '--bogus'");
    expect_error("--req a f -z", "unknown option '-z'");
    expect_error("--req a f --int", "--int needs a value (N)");
    expect_error("--req a f --flag=1", "--flag takes no value");
    expect_error("f", "--req is required");
    expect_error("--req a", "missing FILE");
    expect_error("--req a f1 f2 f3 f4", "unexpected argument 'f4'");
}
END_TEST

START_TEST(test_help) {
    OptionArgs a;
    char out[8192];
    // --help wins over a missing required option and argument; status 0
    ck_assert_int_eq(run("--help", &a, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "usage: layercake test [options] FILE [MORE...]\n"), "%s", out);
    ck_assert_msg(strstr(out, "Describes the command."), "%s", out);
    ck_assert_msg(strstr(out, "  -i, --int N"), "%s", out);
    ck_assert_msg(strstr(out, "--req TEXT") && strstr(out, "(required)"), "%s", out);
    ck_assert_msg(strstr(out, "(repeatable)"), "%s", out);
    ck_assert_msg(strstr(out, "  -h, --help"), "%s", out);
    ck_assert_int_eq(run("f -h", &a, out, sizeof(out)), 0);
    ck_assert_msg(strstr(out, "usage: layercake test"), "%s", out);
}
END_TEST

// ---- options_dispatch ------------------------------------------------------------------------

static int sub_ran;
static int sub_a(int argc, char **argv) {
    sub_ran = argc * 10 + (strcmp(argv[0], "a") == 0);
    return 0;
}

START_TEST(test_dispatch) {
    static const OptionsCommand A = {"grp a", "X", "does a", NULL, NULL, NULL, 0, -1};
    static const OptionsCommand *const SUBS[] = {&A};
    static const OptionsMain RUN[] = {sub_a};
    char *argv[] = {"grp", "a", "x", NULL};
    ck_assert_int_eq(options_dispatch("grp", SUBS, RUN, 1, 3, argv), 0);
    ck_assert_int_eq(sub_ran, 21); // argv + 1: "a x"
    char *bad[] = {"grp", "b", NULL};
    fflush(stderr);
    int saved = dup(2);
    FILE *null = fopen("/dev/null", "w");
    dup2(fileno(null), 2);
    int rc_unknown = options_dispatch("grp", SUBS, RUN, 1, 2, bad);
    int rc_none = options_dispatch("grp", SUBS, RUN, 1, 1, bad);
    dup2(saved, 2), close(saved), fclose(null);
    ck_assert_int_eq(rc_unknown, 2);
    ck_assert_int_eq(rc_none, 2);
}
END_TEST

int main(void) {
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_numbers);
    tcase_add_test(tc, test_every_type);
    tcase_add_test(tc, test_forms_and_defaults);
    tcase_add_test(tc, test_bad_numbers);
    tcase_add_test(tc, test_ranges);
    tcase_add_test(tc, test_command_line_errors);
    tcase_add_test(tc, test_help);
    tcase_add_test(tc, test_dispatch);
    suite_add_tcase(s, tc);
    int rc = run_suite(s);
    options_list_free(&v.list);
    return rc;
}
