// tests/test_report.c: the SVG writer (escaping, broken and thinned lines, degenerate ranges),
// Markdown tables, and `layercake report` on a fixture run directory written here: pretrain
// (with validation rows), sft (no stage.json), ppo, dpo (with malformed lines) and an eval
// stage's results.json; without an eval stage; with a broken results.json; from the command
// line. Every SVG is checked to be well-formed XML by Python's parser.
#include "tests/testutil.h"
#include "train/report/arena.h"
#include "train/report/mdtable.h"
#include "train/report/plot.h"
#include "train/report/report.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char err[8192];

// ---- helpers -------------------------------------------------------------------------------

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert(fread(s, 1, (size_t)n, f) == (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static const char *join(const char *dir, const char *rel) {
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 4096, "%s/%s", dir, rel);
    return p;
}

// Runs cmd through the shell; returns its exit status.
static int shell(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Whether path is well-formed XML whose root is an <svg> with a viewBox (Python's parser).
static int svg_ok(const char *path) {
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "%s -c 'import sys, xml.dom.minidom as m; e = m.parse(sys.argv[1]).documentElement; "
             "sys.exit(0 if e.tagName == \"svg\" and e.getAttribute(\"viewBox\") else 3)' '%s' "
             "2>/dev/null",
             LC_PYTHON, path);
    return shell(cmd) == 0;
}

// An SVG written by fn into a file, checked, and returned as text (malloc'd).
static char *svg_text(const char *name, void (*fn)(FILE *, const void *), const void *ctx) {
    const char *path = test_tmp_path(name);
    FILE *f = fopen(path, "w");
    ck_assert(f);
    fn(f, ctx);
    fclose(f);
    ck_assert_msg(svg_ok(path), "%s is not well-formed SVG", path);
    char *s = read_file(path);
    ck_assert_msg(!strstr(s, "nan") && !strstr(s, "inf"), "%s has a non-finite number", path);
    return s;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

// s with every run of spaces made one space (malloc'd): table rows without their padding.
static char *squeeze(const char *s) {
    char *out = malloc(strlen(s) + 1), *o = out;
    for (; *s; s++)
        if (!(*s == ' ' && o > out && o[-1] == ' ')) *o++ = *s;
    *o = '\0';
    return out;
}

// Whether the Markdown section that starts at heading contains want (up to the next heading of
// any level).
static int section_has(const char *md, const char *heading, const char *want) {
    const char *start = strstr(md, heading);
    if (!start) return 0;
    const char *end = strstr(start + strlen(heading), "\n#");
    const char *hit = strstr(start, want);
    return hit && (!end || hit < end);
}

// ---- the SVG writer ------------------------------------------------------------------------

START_TEST(test_svg_checker_fails_on_bad_xml) {
    const char *path = test_tmp_path("bad.svg");
    write_file(path, "<svg viewBox=\"0 0 1 1\"><text>a<b & c</text></svg>\n");
    ck_assert(!svg_ok(path));
    write_file(path, "<svg viewBox=\"0 0 1 1\"><text>a&lt;b &amp; c</text></svg>\n");
    ck_assert(svg_ok(path));
}
END_TEST

START_TEST(test_plot_escape) {
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    plot_escape(f, "a<b & \"c\" 'd' > e");
    fclose(f);
    ck_assert_str_eq(buf, "a&lt;b &amp; &quot;c&quot; &apos;d&apos; &gt; e");
    free(buf);
}
END_TEST

typedef struct {
    const PlotFrame *fr;
    const PlotSeries *s;
    int n;
} LinesCtx;

static void lines_fn(FILE *f, const void *ctx) {
    const LinesCtx *c = ctx;
    plot_lines(f, c->fr, c->s, c->n);
}

START_TEST(test_plot_lines) {
    // Gaps (NAN) split the line: 0-1-2, then 4 and 6 alone, which get dots.
    const double x[] = {0, 1, 2, 3, 4, 5, 6}, y[] = {1, 2, 3, NAN, 5, NAN, 7};
    const double x2[] = {0, 6, 8}, y2[] = {2, 2, 9};
    PlotSeries s[] = {{"train <loss> & co", x, y, 7, 0, 0, 0}, {"val", x2, y2, 3, 1, 1, 0}};
    PlotFrame fr = {"title & <more>", "step", "loss", 0, 0};
    LinesCtx c = {&fr, s, 2};
    char *svg = svg_text("lines.svg", lines_fn, &c);
    ck_assert(strstr(svg, "viewBox=\"0 0 800 500\""));
    ck_assert(strstr(svg, "train &lt;loss&gt; &amp; co"));
    ck_assert(strstr(svg, "title &amp; &lt;more&gt;"));
    // Path data: "M0 L1 L2 M4 M6" and "M0 L6 L8" (in pixels).
    ck_assert_int_eq(count(svg, "<path "), 2);
    ck_assert_int_eq(count(svg, "d=\"M"), 2);
    ck_assert_int_eq(count(svg, " M"), 2);
    ck_assert_int_eq(count(svg, " L"), 2 + 2);
    ck_assert_int_eq(count(svg, "<circle"), 2);
    ck_assert_int_eq(count(svg, "stroke-dasharray"), 2); // the val curve and its legend sample
    // x axis 0..8: ticks at every 1; y axis 1..9: ticks at every 1.
    ck_assert(strstr(svg, ">8</text>") && strstr(svg, ">9</text>"));
    free(svg);
}
END_TEST

START_TEST(test_plot_lines_thinned_and_flat) {
    enum { N = 100000 };
    double *x = malloc(N * sizeof(*x)), *y = malloc(N * sizeof(*y));
    for (int i = 0; i < N; i++) x[i] = i, y[i] = (i == N / 2) ? 100 : 1; // one spike
    PlotSeries s = {"long", x, y, N, 0, 0, 0};
    PlotFrame fr = {"thinned", "step", "y", 0, 0};
    LinesCtx c = {&fr, &s, 1};
    char *svg = svg_text("thinned.svg", lines_fn, &c);
    ck_assert_int_lt(count(svg, " L"), 2 * 800); // at most two points per pixel column
    ck_assert(strstr(svg, ">100</text>"));       // the spike still sets the range
    free(svg);
    for (int i = 0; i < N; i++) y[i] = 3.0; // a flat series gets room around it
    svg = svg_text("flat.svg", lines_fn, &c);
    ck_assert(strstr(svg, ">3.0</text>") || strstr(svg, ">3</text>"));
    free(svg);
    LinesCtx none = {&fr, &s, 0}; // no data at all: still a valid (empty) plot
    free(svg_text("empty.svg", lines_fn, &none));
    free(x);
    free(y);
}
END_TEST

typedef struct {
    const PlotPoint *p;
    int n;
} ScatterCtx;

static void scatter_fn(FILE *f, const void *ctx) {
    const ScatterCtx *c = ctx;
    PlotFrame fr = {"frontier", "KL", "reward", 0, 0};
    plot_scatter(f, &fr, c->p, c->n);
}

typedef struct {
    const PlotBar *b;
    int n;
} BarsCtx;

static void bars_fn(FILE *f, const void *ctx) {
    const BarsCtx *c = ctx;
    PlotFrame fr = {"Elo", "Elo", NULL, 640, 400};
    plot_bars(f, &fr, c->b, c->n, 1000);
}

START_TEST(test_plot_scatter_and_bars) {
    const PlotPoint p[] = {{"sft", 0, 0.4}, {"ppo <b>", 3.5, 0.62}, {"nan", NAN, 1}};
    ScatterCtx sc = {p, 3};
    char *svg = svg_text("scatter.svg", scatter_fn, &sc);
    ck_assert_int_eq(count(svg, "<circle"), 2); // the non-finite point is left out
    ck_assert(strstr(svg, "ppo &lt;b&gt;"));
    ck_assert(!strstr(svg, ">-1</text>")); // KL >= 0: the axis does not go below 0
    free(svg);
    const PlotBar b[] = {
        {"a & b", 1100, 1080, 1120, 2}, {"ref", 1000, 1000, 1000, 0}, {"worse", 850, 800, NAN, 1}};
    BarsCtx bc = {b, 3};
    svg = svg_text("bars.svg", bars_fn, &bc);
    ck_assert(strstr(svg, "viewBox=\"0 0 640 400\""));
    ck_assert(strstr(svg, ">a &amp; b</text>"));
    ck_assert(strstr(svg, ">1100</text>") && strstr(svg, ">850</text>"));
    ck_assert(strstr(svg, "fill=\"#e15759\"/>") < strstr(svg, "fill=\"#f28e2b\"/>")); // colours
    ck_assert_int_eq(count(svg, "stroke=\"#222\" stroke-width=\"1.5\""), 2); // no NAN error bar
    free(svg);
    ScatterCtx none = {p + 2, 1};
    free(svg_text("scatter_empty.svg", scatter_fn, &none));
}
END_TEST

// ---- layout: smoothing, label placement, zoom ----------------------------------------------

START_TEST(test_smooth) {
    // half-width 2, the window shrinking symmetrically at the ends; NAN left out:
    //   i=0: window [0, 0]: 1
    //   i=1: [0, 2]: (1 + 2 + 3) / 3 = 2
    //   i=2: [0, 4]: (1 + 2 + 3 + 5) / 4 = 2.75
    //   i=3: NAN
    //   i=4: [2, 6]: (3 + 5 + 6 + 10) / 4 = 6
    //   i=5: [4, 6]: (5 + 6 + 10) / 3 = 7
    //   i=6: [6, 6]: 10
    const double y[] = {1, 2, 3, NAN, 5, 6, 10}, want[] = {1, 2, 2.75, NAN, 6, 7, 10};
    double out[7];
    plot_smooth(y, 7, 2, out);
    for (int i = 0; i < 7; i++)
        if (i == 3)
            ck_assert(isnan(out[i]));
        else
            ck_assert_msg(fabs(out[i] - want[i]) < 1e-12, "out[%d] = %g, want %g", i, out[i],
                          want[i]);
    double line[40], avg[40]; // a straight line is its own centred average: no lag
    for (int i = 0; i < 40; i++) line[i] = 3 - 0.5 * i;
    plot_smooth(line, 40, plot_smooth_half(40), avg);
    for (int i = 0; i < 40; i++) ck_assert_double_eq_tol(avg[i], line[i], 1e-12);
    ck_assert_int_eq(plot_smooth_half(20), 1);
    ck_assert_int_eq(plot_smooth_half(300), 15);
}
END_TEST

static double box_overlap(PlotBox a, PlotBox b) {
    double w = fmin(a.x + a.w, b.x + b.w) - fmax(a.x, b.x);
    double h = fmin(a.y + a.h, b.y + b.h) - fmax(a.y, b.y);
    return w > 0 && h > 0 ? w * h : 0;
}

START_TEST(test_place_labels_cluster) {
    // Six points within 1% of a 700 x 400 px plot area (7 x 4 px), labelled like models.
    const char *names[] = {"sft", "ppo", "ppo_rm", "dpo", "grpo", "pretrain"};
    const double dx[] = {0, 3, 7, 1, 5, 2}, dy[] = {0, 1, 4, 3, 2, 4};
    PlotBox area = {80, 40, 700, 400}, avoid[6], out[6];
    PlotAnchor a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (PlotAnchor){400 + dx[i], 200 + dy[i], plot_text_width(names[i], 13) + 2, 16};
        avoid[i] = (PlotBox){a[i].x - 6, a[i].y - 6, 12, 12}; // the markers
    }
    ck_assert_int_eq(plot_place_labels(a, 6, avoid, 6, area, out), 0);
    for (int i = 0; i < 6; i++) {
        ck_assert(out[i].w == a[i].w && out[i].h == a[i].h);
        double d = plot_box_distance(out[i], a[i].x, a[i].y);
        ck_assert_msg(d <= 60, "label %s is %.1f px from its point", names[i], d);
        ck_assert(out[i].x >= area.x && out[i].x + out[i].w <= area.x + area.w);
        for (int j = 0; j < 6; j++) {
            ck_assert_msg(box_overlap(out[i], avoid[j]) == 0, "%s covers a point", names[i]);
            if (j != i)
                ck_assert_msg(box_overlap(out[i], out[j]) == 0, "%s overlaps %s", names[i],
                              names[j]);
        }
    }
    // Near the right edge the labels go left of the points, still inside the area.
    for (int i = 0; i < 6; i++) a[i].x += 370, avoid[i].x += 370;
    ck_assert_int_eq(plot_place_labels(a, 6, avoid, 6, area, out), 0);
    for (int i = 0; i < 6; i++) ck_assert(out[i].x + out[i].w <= area.x + area.w);
    // A lone point's label sits just right of it, level with it.
    ck_assert_int_eq(plot_place_labels(a, 1, NULL, 0, (PlotBox){0, 0, 2000, 2000}, out), 0);
    ck_assert_double_eq_tol(out[0].x, a[0].x + 8, 1e-9);
    ck_assert_double_eq_tol(out[0].y + out[0].h / 2, a[0].y, 1e-9);
}
END_TEST

// What the quickstart's eval gives: aligned models at KL 0-3.5, the pretrained model at 15.
static const PlotPoint FRONTIER[] = {{"sft", 0, 0.40},      {"ppo", 0.8, 0.55},
                                     {"ppo_rm", 2.0, 0.30}, {"dpo", 3.5, 0.62},
                                     {"grpo", 1.1, 0.58},   {"pretrain", 15.0, 0.05}};

// The numbers written as text (tick labels) in s: their largest.
static double max_number_text(const char *s) {
    double hi = -INFINITY;
    for (const char *p = s; (p = strstr(p, "\">")); p += 2) {
        char *end;
        double v = strtod(p + 2, &end);
        if (end != p + 2 && strncmp(end, "</text>", 7) == 0) hi = fmax(hi, v);
    }
    return hi;
}

START_TEST(test_frontier_zoom) {
    double r[4];
    ck_assert_int_eq(plot_zoom_range(FRONTIER, 6, r), 1);
    ck_assert(r[0] == 0 && r[1] == 3.5 && r[2] == 0.30 && r[3] == 0.62); // pretrain left out
    ScatterCtx sc = {FRONTIER, 6};
    char *svg = svg_text("frontier_zoom.svg", scatter_fn, &sc);
    ck_assert_int_eq(count(svg, "class=\"plot-area\""), 2);
    char *zoom = strstr(svg, "<g id=\"zoom\">");
    ck_assert(zoom && strstr(svg, "<g id=\"main\">") < zoom);
    // The zoom panel's axes cover the cluster (KL up to 4), not the outlier's 15; every
    // aligned model is labelled there and the outlier is not drawn there.
    double hi = max_number_text(zoom);
    ck_assert_msg(hi >= 3.5 && hi <= 4.0, "zoom panel's largest tick %g", hi);
    ck_assert_double_ge(max_number_text(svg), 15);
    for (int i = 0; i < 5; i++) ck_assert(strstr(zoom, FRONTIER[i].label));
    ck_assert(!strstr(zoom, ">pretrain<") && strstr(svg, ">pretrain<"));
    ck_assert_int_eq(count(zoom, "<circle"), 5);
    free(svg);
    // Points spread over the range need no zoom: one panel.
    const PlotPoint spread[] = {{"a", 0, 1}, {"b", 1.75, 2}, {"c", 3.5, 3}, {"d", 5.25, 4}};
    ck_assert_int_eq(plot_zoom_range(spread, 4, r), 0);
    sc = (ScatterCtx){spread, 4};
    svg = svg_text("frontier_spread.svg", scatter_fn, &sc);
    ck_assert_int_eq(count(svg, "class=\"plot-area\""), 1);
    ck_assert(!strstr(svg, "id=\"zoom\""));
    free(svg);
}
END_TEST

START_TEST(test_mdtable) {
    const char *header[] = {"name", "value"};
    MdTable t;
    mdtable_init(&t, 2, header, "lr");
    for (int i = 0; i < 20; i++) { // past the initial capacity
        mdtable_add_row(&t);
        mdtable_set(&t, 0, i == 3 ? "a|b" : "row%d", i);
        mdtable_set(&t, 1, "%d", i * i);
    }
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    mdtable_print(&t, f);
    fclose(f);
    mdtable_free(&t);
    ck_assert_msg(strncmp(buf, "| name  | value |\n| ----- | ----: |\n| row0  |     0 |\n", 54) ==
                      0,
                  "%s", buf);
    ck_assert_msg(strstr(buf, "| a\\|b  |     9 |\n"), "%s", buf);
    ck_assert_msg(strstr(buf, "| row19 |   361 |\n"), "%s", buf);
    ck_assert_int_eq(count(buf, "\n"), 22);
    free(buf);
}
END_TEST

// ---- the report on a fixture run directory -------------------------------------------------

static const char *const EVAL_MODELS[] = {"sft", "ppo", "dpo", "<tuned> & co"};

static void fixture_results(const char *path) {
    enum { M = 4, NP = 120 };
    const double elo[M] = {1000, 1200, 1100, 900};
    double *s = malloc(M * NP * sizeof(*s));
    Rng r = rng_init(9);
    for (int i = 0; i < M; i++) // Bradley-Terry outcomes: strength plus Gumbel noise
        for (int p = 0; p < NP; p++)
            s[i * NP + p] = elo[i] * M_LN10 / 400 - log(-log(rng_uniform(&r) + 1e-300));
    ArenaResults res;
    arena_results_init(&res, M, EVAL_MODELS, NP);
    res.opts.n_boot = 100;
    ck_assert_msg(arena_judge(&res, s, s, err, sizeof(err)) == 0, "%s", err);
    for (int i = 0; i < M; i++) {
        ArenaModel *m = &res.models[i];
        m->gold_reward = 0.4 + 0.11 * i;
        m->accuracy = 0.3 + 0.125 * i;
        m->rm_score = 0.5 + 0.375 * i;
        m->kl_to_sft = 1.75 * i;
        m->response_length = 24 + 3.5 * i;
    }
    ck_assert_msg(arena_write_results(path, &res, err, sizeof(err)) == 0, "%s", err);
    arena_results_free(&res);
    free(s);
}

// RUN/stage/ with stage.json naming kind (if not NULL) and metrics.jsonl (if not NULL).
static void fixture_stage(const char *run, const char *stage, const char *kind,
                          const char *metrics) {
    char path[4096], json[256];
    ck_assert_int_eq(mkdir(join(run, stage), 0755), 0);
    if (kind) {
        snprintf(path, sizeof(path), "%s/%s/stage.json", run, stage);
        snprintf(json, sizeof(json), "{\"name\": \"%s\", \"kind\": \"%s\"}\n", stage, kind);
        write_file(path, json);
    }
    if (metrics) {
        snprintf(path, sizeof(path), "%s/%s/metrics.jsonl", run, stage);
        write_file(path, metrics);
    }
}

// A run directory with pretrain, sft, ppo, dpo and (if with_eval) eval stages.
static const char *fixture_run(const char *name, int with_eval) {
    const char *run = test_tmp_path(name);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run);
    ck_assert_int_eq(shell(cmd), 0);
    ck_assert_int_eq(mkdir(run, 0755), 0);
    write_file(join(run, "recipe.yaml"), "name: fixture\nseed: 1234\n");
    fixture_stage(run, "pretrain", "pretrain",
                  "{\"step\": 1, \"loss\": 9.5, \"lr\": 0.0003, \"grad_norm\": 2.0, "
                  "\"tokens_per_s\": 12345.6, \"elapsed\": 0.5}\n"
                  "{\"step\": 2, \"loss\": 7.25, \"lr\": 0.0003, \"grad_norm\": 1.5, "
                  "\"tokens_per_s\": 13000, \"elapsed\": 1.0}\n"
                  "{\"step\": 2, \"split\": \"val\", \"loss\": 7.5}\n"
                  "{\"step\": 3, \"loss\": 2.5, \"lr\": 0.0003, \"grad_norm\": 1.25, "
                  "\"tokens_per_s\": 23456.7, \"elapsed\": 1.5}\n"
                  "{\"step\": 3, \"split\": \"val\", \"loss\": 2.75}\n");
    fixture_stage(run, "sft", NULL,
                  "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"loss\": 1.5}\n\n");
    fixture_stage(run, "ppo", "ppo",
                  "{\"step\": 0, \"objective/scores\": 0.1, \"objective/kl\": 0.0, "
                  "\"loss/policy\": -0.02, \"loss/value\": 0.5, \"beta\": 0.05}\n"
                  "{\"step\": 1, \"objective/scores\": 0.3, \"objective/kl\": 0.4, "
                  "\"loss/policy\": -0.01, \"loss/value\": 0.3, \"beta\": 0.05}\n"
                  "{\"step\": 2, \"objective/scores\": 0.45, \"objective/kl\": 0.9, "
                  "\"loss/policy\": 0.01, \"loss/value\": 0.2, \"beta\": 0.05}\n");
    fixture_stage(run, "dpo", "dpo",
                  "{\"step\": 1, \"loss\": 0.69, \"rewards/accuracies\": 0.5}\n"
                  "{\"step\": 2, \"loss\": 0.6, \"rewards/accuracies\": 0.75}\n"
                  "{\"step\": 3, \"loss\": 0.5, \"rewa\n"
                  "{\"loss\": 0.4}\n"
                  "{\"step\": 4, \"split\": \"test\", \"loss\": 0.3}\n"
                  "[1, 2]\n");
    if (with_eval) {
        fixture_stage(run, "eval", "eval", NULL);
        fixture_results(join(run, "eval/results.json"));
    }
    return run;
}

// Builds the report of run; returns report.md (malloc'd) and the warnings in *log (malloc'd).
static char *build(const char *run, ReportSummary *sum, char **log) {
    size_t len;
    FILE *f = open_memstream(log, &len);
    int rc = report_build(run, f, sum, err, sizeof(err));
    fclose(f);
    ck_assert_msg(rc == 0, "%s", err);
    return read_file(join(run, "report.md"));
}

// Every plot report.md links exists and is well-formed; returns how many there are.
static int check_links(const char *run, const char *md) {
    int n = 0;
    for (const char *p = md; (p = strstr(p, "](plots/")); n++) {
        p += 2;
        char rel[512];
        size_t k = strcspn(p, ")");
        snprintf(rel, sizeof(rel), "%.*s", (int)k, p);
        ck_assert_msg(svg_ok(join(run, rel)), "%s: missing or not well-formed", rel);
    }
    return n;
}

START_TEST(test_report_fixture) {
    const char *run = fixture_run("report_run", 1);
    ReportSummary sum;
    char *log;
    char *md = build(run, &sum, &log), *sq = squeeze(md);
    ck_assert_int_eq(sum.stages, 5);
    ck_assert_int_eq(sum.evals, 1);
    ck_assert_int_eq(sum.warnings, 4);
    ck_assert_int_eq(sum.plots, 8); // 4 loss curves, RL reward and KL, frontier, leaderboard
    ck_assert_int_eq(check_links(run, md), 8);

    // The dpo file's bad lines, each by file:line.
    const char *dpo = join(run, "dpo/metrics.jsonl");
    const char *want[] = {":3: warning: invalid JSON", ":4: warning: no number \"step\"",
                          ":5: warning: \"split\" is neither", ":6: warning: not a JSON object"};
    for (int i = 0; i < 4; i++) {
        char line[4200];
        snprintf(line, sizeof(line), "%s%s", dpo, want[i]);
        ck_assert_msg(strstr(log, line), "'%s' not in:\n%s", line, log);
    }

    ck_assert(strstr(md, "# Run report: report_run\n"));
    // Final metrics: last values of train and validation rows.
    ck_assert(section_has(sq, "### pretrain", "| step | 3 | 3 |"));
    ck_assert(section_has(sq, "### pretrain", "| loss | 2.5 | 2.75 |"));
    ck_assert(section_has(sq, "### pretrain", "| tokens_per_s | 23457 | - |"));
    ck_assert(section_has(sq, "### pretrain", "| lr | 0.0003 | - |"));
    ck_assert(section_has(sq, "### sft", "Kind: sft (guessed: no stage.json). 2 training rows"));
    ck_assert(section_has(sq, "### sft", "| loss | 1.5 | - |"));
    ck_assert(section_has(sq, "### ppo", "| objective/kl | 0.9 | - |"));
    ck_assert(section_has(sq, "### dpo", "Kind: dpo. 2 training rows, 0 validation rows."));
    // Stages in pipeline order, evaluation first.
    const char *order[] = {
        "## Evaluation: eval",       "### pretrain", "### sft", "### dpo", "### ppo",
        "## Reinforcement learning", "<details>"};
    for (int i = 1; i < 7; i++)
        ck_assert_msg(strstr(md, order[i - 1]) < strstr(md, order[i]), "%s before %s", order[i - 1],
                      order[i]);
    // The comparison row of ppo: gold, accuracy, RM score, KL, length, then win rate and Elo.
    ck_assert_msg(strstr(sq, "| ppo | 0.510 | 0.425 | 0.875 | 1.750 | 27.5 | 0."), "%s", sq);
    ck_assert(strstr(sq, "| sft | 0.400 | 0.300 | 0.500 | 0.000 | 24.0 | 0.500 [0.500, 0.500] | "
                         "0.500 | 1000 [1000, 1000] |"));
    ck_assert(strstr(sq, "| <tuned> & co | 0.730 |"));
    ck_assert(strstr(sq, "| 1 | ppo | 1")); // the leaderboard's top
    ck_assert(strstr(md, "seed: 1234\n"));  // the recipe, folded away
    // The model name is escaped in both SVGs that show it.
    char *board = read_file(join(run, "plots/leaderboard_eval.svg"));
    char *front = read_file(join(run, "plots/frontier_eval.svg"));
    ck_assert(strstr(board, "&lt;tuned&gt; &amp; co") && !strstr(board, "<tuned>"));
    ck_assert(strstr(front, "&lt;tuned&gt; &amp; co"));
    // A model has one colour on both: ppo (listed second, palette colour 1) tops the
    // leaderboard, above dpo (colour 2).
    ck_assert(strstr(board, "fill=\"#f28e2b\"/>") < strstr(board, "fill=\"#e15759\"/>"));
    ck_assert(strstr(front, "fill=\"#f28e2b\" stroke"));
    char *ppo = read_file(join(run, "plots/loss_ppo.svg"));
    ck_assert(strstr(ppo, "train loss/policy") && strstr(ppo, "train loss/value"));
    free(ppo);
    free(board);
    free(front);
    free(log);
    free(sq);
    free(md);
}
END_TEST

START_TEST(test_report_without_eval) {
    const char *run = fixture_run("report_no_eval", 0);
    ReportSummary sum;
    char *log;
    char *md = build(run, &sum, &log);
    ck_assert_int_eq(sum.stages, 4);
    ck_assert_int_eq(sum.evals, 0);
    ck_assert_int_eq(sum.plots, 6);
    ck_assert_int_eq(check_links(run, md), 6);
    ck_assert(!strstr(md, "## Evaluation") && !strstr(md, "frontier") && strstr(md, "### ppo"));
    // Building again replaces the report and leaves no temporary files.
    free(md);
    free(log);
    md = build(run, &sum, &log);
    ck_assert_int_eq(access(join(run, "report.md.tmp"), F_OK), -1);
    ck_assert_int_eq(access(join(run, "plots/loss_sft.svg.tmp"), F_OK), -1);
    free(md);
    free(log);
}
END_TEST

// The RL reward plot: a stage on the gold reward (it logs objective/accuracy) and one on a reward
// model (the fixture's ppo) are on different scales, so each gets a panel with its own y axis.
START_TEST(test_report_rl_reward_panels) {
    const char *run = fixture_run("report_rl_panels", 0);
    char metrics[4096] = "";
    for (int i = 0; i < 12; i++) { // enough iterations to be smoothed
        char row[256];
        snprintf(row, sizeof(row),
                 "{\"step\": %d, \"objective/scores\": %g, \"objective/accuracy\": %g, "
                 "\"objective/kl\": %g, \"loss\": %g, \"loss/policy\": %g}\n",
                 i, 0.3 + 0.02 * i + 0.05 * (i % 2), 0.3 + 0.02 * i, 0.1 * i, -0.01 * i, -0.01 * i);
        strcat(metrics, row);
    }
    fixture_stage(run, "grpo", "grpo", metrics);
    ReportSummary sum;
    char *log;
    free(build(run, &sum, &log));
    free(log);
    char *svg = read_file(join(run, "plots/rl_reward.svg"));
    ck_assert(svg_ok(join(run, "plots/rl_reward.svg")));
    ck_assert_int_eq(count(svg, "class=\"plot-area\""), 2);
    char *gold = strstr(svg, ">mean gold reward<"), *rm = strstr(svg, ">mean reward-model score<");
    ck_assert(gold && rm && gold < rm);             // gold on top
    ck_assert_int_eq(count(svg, ">iteration<"), 1); // one shared x axis
    // grpo's 12 iterations: a faint raw curve and its moving average; ppo's 3: one curve.
    ck_assert_int_eq(count(svg, "stroke-opacity=\"0.3\""), 1);
    ck_assert_int_eq(count(svg, "<path "), 3);
    free(svg);
    // GRPO's loss is its loss/policy: one curve (raw and smoothed), both names on it.
    svg = read_file(join(run, "plots/loss_grpo.svg"));
    ck_assert(strstr(svg, ">train loss = loss/policy<") && count(svg, "<path ") == 2);
    free(svg);
    svg = read_file(join(run, "plots/rl_kl.svg")); // KL is one scale: one panel

    ck_assert_int_eq(count(svg, "class=\"plot-area\""), 1);
    free(svg);
    const char *run1 = fixture_run("report_rl_one_panel", 0); // no gold stage: one panel
    free(build(run1, &sum, &log));
    free(log);
    svg = read_file(join(run1, "plots/rl_reward.svg"));
    ck_assert_int_eq(count(svg, "class=\"plot-area\""), 1);
    ck_assert(strstr(svg, ">mean reward-model score<") && !strstr(svg, "gold"));
    free(svg);
}
END_TEST

START_TEST(test_report_bad_results) {
    const char *run = fixture_run("report_bad_results", 1);
    write_file(join(run, "eval/results.json"), "{\"version\": 1, \"models\": {}}\n");
    write_file(join(run, "sft/stage.json"), "{\"name\": \"sft\", \"kind\": \"sfft\"}\n");
    ReportSummary sum;
    char *log;
    char *md = build(run, &sum, &log);
    ck_assert_int_eq(sum.evals, 0);
    ck_assert_int_eq(sum.warnings, 4 + 2);
    ck_assert_msg(strstr(log, "eval/results.json: models: expected an object"), "%s", log);
    ck_assert_msg(strstr(log, "sft/stage.json: warning: no \"kind\" that is a stage kind"), "%s",
                  log);
    ck_assert(!strstr(md, "## Evaluation"));
    ck_assert(strstr(md, "Kind: sft (guessed: no stage.json)"));      // from the folder's name
    ck_assert(strstr(md, "### eval\n\nKind: eval. 0 training rows")); // listed, no results
    free(md);
    free(log);
}
END_TEST

START_TEST(test_report_many_bad_lines) {
    const char *run = fixture_run("report_many_bad", 0);
    char text[2048] = "{\"step\": 1, \"loss\": 2.0}\n";
    for (int i = 0; i < 15; i++) strcat(text, "{\"step\": oops}\n");
    write_file(join(run, "sft/metrics.jsonl"), text);
    write_file(join(run, "ppo/stage.json"), "{\"name\": \"ppo\",\n \"kind\": }\n");
    ReportSummary sum;
    char *log;
    char *md = build(run, &sum, &log);
    ck_assert_int_eq(sum.warnings, 4 + 15 + 1);
    const char *sft = join(run, "sft/metrics.jsonl");
    char want[4200];
    snprintf(want, sizeof(want), "%s:11: warning: invalid JSON", sft); // the 10th bad line
    ck_assert_msg(strstr(log, want), "%s", log);
    snprintf(want, sizeof(want), "%s:12: warning", sft); // the 11th is only counted
    ck_assert_msg(!strstr(log, want), "%s", log);
    snprintf(want, sizeof(want), "%s: warning: 5 more malformed lines skipped", sft);
    ck_assert_msg(strstr(log, want), "%s", log);
    ck_assert_msg(strstr(log, "ppo/stage.json:2: warning: invalid JSON"), "%s", log);
    ck_assert(strstr(md, "Kind: ppo (guessed: no stage.json). 3 training rows"));
    ck_assert(strstr(md, "Kind: sft (guessed: no stage.json). 1 training row,"));
    free(md);
    free(log);
}
END_TEST

START_TEST(test_report_missing_dir) {
    ReportSummary sum;
    const char *missing = test_tmp_path("no_such_run");
    ck_assert_int_eq(report_build(missing, stderr, &sum, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, missing) && strstr(err, "no such run directory"), "%s", err);
    // An empty directory is a run that has not started: a report with no stages.
    const char *empty = test_tmp_path("empty_run");
    mkdir(empty, 0755);
    ck_assert_int_eq(report_build(empty, stderr, &sum, err, sizeof(err)), 0);
    ck_assert_int_eq(sum.stages + sum.plots, 0);
}
END_TEST

// `layercake report ARGS`: its exit status; its stdout and stderr in *out (malloc'd).
static int run_layercake(const char *args, char **out) {
    char cmd[8192];
    const char *tmp = test_tmp_path("report_cli.out");
    snprintf(cmd, sizeof(cmd), "%s/layercake report %s >'%s' 2>&1", LC_BINARY_DIR, args, tmp);
    int rc = shell(cmd);
    *out = read_file(tmp);
    return rc;
}

START_TEST(test_report_command) {
    const char *run = fixture_run("report_cli", 1);
    char args[4200], *out;
    ck_assert_int_eq(run_layercake("--help", &out), 0);
    ck_assert(strstr(out, "usage: layercake report RUN_DIR"));
    free(out);
    ck_assert_int_eq(run_layercake("", &out), 2);
    ck_assert(strstr(out, "expected one RUN_DIR") && strstr(out, "usage:"));
    free(out);
    ck_assert_int_eq(run_layercake("a b", &out), 2);
    free(out);
    ck_assert_int_eq(run_layercake("--frobnicate x", &out), 2);
    free(out);
    snprintf(args, sizeof(args), "'%s/missing'", run);
    ck_assert_int_eq(run_layercake(args, &out), 1);
    ck_assert_msg(strstr(out, "missing: no such run directory"), "%s", out);
    free(out);
    snprintf(args, sizeof(args), "'%s'", run);
    ck_assert_int_eq(run_layercake(args, &out), 0);
    ck_assert_msg(strstr(out, "report.md: 5 stages, 1 eval result, 8 plots (4 malformed inputs "
                              "skipped)"),
                  "%s", out);
    ck_assert_msg(strstr(out, "dpo/metrics.jsonl:3: warning: invalid JSON"), "%s", out);
    free(out);
}
END_TEST

static Suite *report_suite(void) {
    Suite *s = suite_create("report");
    TCase *plot = tcase_create("plot");
    tcase_add_test(plot, test_svg_checker_fails_on_bad_xml);
    tcase_add_test(plot, test_plot_escape);
    tcase_add_test(plot, test_plot_lines);
    tcase_add_test(plot, test_plot_lines_thinned_and_flat);
    tcase_add_test(plot, test_plot_scatter_and_bars);
    tcase_add_test(plot, test_mdtable);
    tcase_add_test(plot, test_smooth);
    tcase_add_test(plot, test_place_labels_cluster);
    tcase_add_test(plot, test_frontier_zoom);
    suite_add_tcase(s, plot);
    TCase *report = tcase_create("report");
    tcase_add_test(report, test_report_fixture);
    tcase_add_test(report, test_report_without_eval);
    tcase_add_test(report, test_report_rl_reward_panels);
    tcase_add_test(report, test_report_bad_results);
    tcase_add_test(report, test_report_many_bad_lines);
    tcase_add_test(report, test_report_missing_dir);
    tcase_add_test(report, test_report_command);
    suite_add_tcase(s, report);
    return s;
}

int main(void) {
    return run_suite(report_suite());
}
