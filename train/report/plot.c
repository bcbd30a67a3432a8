// train/report/plot.c: the SVG writer. Layout: a title band, a legend band (line plots), the plot
// areas (one, stacked panels, or two side by side) with gridlines at the ticks, tick labels and
// axis labels in the margins. Where labels go and what is smoothed: plot_layout.c.
#include "train/report/plot.h"
#include "common/check.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FONT       13 // px, tick labels and legend
#define TITLE_BAND 36 // px above the legend or plot area
#define LEGEND_ROW 20 // px per legend row
#define MAX_TICKS  8
#define PANEL_GAP  26 // px between stacked panels: their end tick labels stay apart
#define SIDE_GAP   64 // px between side-by-side panels: room for the right one's tick labels
#define SUBTITLE   18 // px above side-by-side panels for their titles
#define MARKER_R   5  // px, radius of a scatter point

// Tableau 10: distinct hues that stay apart for colour-blind readers.
static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define N_COLORS ((int)(sizeof(PALETTE) / sizeof(PALETTE[0])))

static const char *color(int i) {
    return PALETTE[((i % N_COLORS) + N_COLORS) % N_COLORS];
}

void plot_escape(FILE *f, const char *s) {
    for (; *s; s++) switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            fputc(*s, f);
        }
}

// <text> at (x, y); anchor start, middle or end; attrs are extra attributes (may be "").
static void text_at(FILE *f, double x, double y, const char *anchor, const char *attrs,
                    const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"%s%s>", x, y, anchor,
            *attrs ? " " : "", attrs);
    plot_escape(f, s);
    fputs("</text>\n", f);
}

// ---- axes ----------------------------------------------------------------------------------

// A data range [lo, hi] on ticks lo, lo + step, ..., hi, drawn from pixel a (at lo) to b.
typedef struct {
    double lo, hi, step;
    double a, b;
} Axis;

static double axis_map(const Axis *ax, double v) {
    return ax->a + (v - ax->lo) / (ax->hi - ax->lo) * (ax->b - ax->a);
}

// 1, 2 or 5 times a power of ten, at least x.
static double nice_step(double x) {
    double p = pow(10, floor(log10(x))), m = x / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

// Widens [lo, hi] to whole ticks, at most MAX_TICKS intervals. An empty or single-valued range
// gets room around it.
static Axis axis_nice(double lo, double hi, double a, double b) {
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * fmax(fabs(lo), 1)) {
        double pad = lo != 0 ? 0.1 * fabs(lo) : 1;
        lo -= pad, hi += pad;
    }
    double step = nice_step((hi - lo) / MAX_TICKS);
    Axis ax = {floor(lo / step) * step, ceil(hi / step) * step, step, a, b};
    return ax;
}

// Tick label: as many decimals as the step needs.
static void tick_label(const Axis *ax, double v, char *buf, size_t n) {
    int decimals = (int)fmax(0, -floor(log10(ax->step) + 1e-9));
    snprintf(buf, n, "%.*f", decimals, fabs(v) < 1e-9 * ax->step ? 0.0 : v);
}

static int tick_count(const Axis *ax) {
    return (int)lround((ax->hi - ax->lo) / ax->step);
}

static void gridlines_draw(FILE *f, const Axis *x, const Axis *y, double y0, double y1) {
    fputs("<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n", f);
    for (int k = 0; k <= tick_count(x); k++) {
        double px = axis_map(x, x->lo + k * x->step);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px, y0, px, y1);
    }
    for (int k = 0; y && k <= tick_count(y); k++) {
        double py = axis_map(y, y->lo + k * y->step);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x->a, py, x->b, py);
    }
    fputs("</g>\n", f);
}

// Gridlines, ticks and tick labels of the horizontal axis x (at the bottom, y0 to y1 the plot's
// vertical extent; its tick labels only if x_labels) and, if y is not NULL, the vertical axis
// (at the left, x0 = x->a). The frame is the plot area's <rect class="plot-area">.
static void axes_draw(FILE *f, const Axis *x, const Axis *y, double y0, double y1, int x_labels) {
    char buf[64];
    gridlines_draw(f, x, y, y0, y1);
    fputs("<g fill=\"#333\">\n", f);
    for (int k = 0; x_labels && k <= tick_count(x); k++) {
        double v = x->lo + k * x->step;
        tick_label(x, v, buf, sizeof(buf));
        text_at(f, axis_map(x, v), y1 + FONT + 6, "middle", "", buf);
    }
    for (int k = 0; y && k <= tick_count(y); k++) {
        double v = y->lo + k * y->step;
        tick_label(y, v, buf, sizeof(buf));
        text_at(f, x->a - 6, axis_map(y, v) + FONT / 3.0, "end", "", buf);
    }
    fputs("</g>\n", f);
    fprintf(f,
            "<rect class=\"plot-area\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"none\" stroke=\"#666\"/>\n",
            x->a, y0, x->b - x->a, y1 - y0);
}

// ---- document ------------------------------------------------------------------------------

static void frame_size(const PlotFrame *fr, int *w, int *h) {
    *w = fr->width > 0 ? fr->width : 800;
    *h = fr->height > 0 ? fr->height : 500;
}

static void svg_begin(FILE *f, const PlotFrame *fr) {
    int w, h;
    frame_size(fr, &w, &h);
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
            "height=\"%d\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"%d\">\n",
            w, h, w, h, FONT);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    if (fr->title)
        text_at(f, w / 2.0, 24, "middle", "font-size=\"16\" font-weight=\"bold\"", fr->title);
}

// The x label centred below the plot areas that span x0 to x1.
static void xlabel_draw(FILE *f, const PlotFrame *fr, double x0, double x1) {
    int w, h;
    frame_size(fr, &w, &h);
    if (fr->xlabel) text_at(f, (x0 + x1) / 2, h - 10, "middle", "", fr->xlabel);
}

// A y label rotated along the left edge, centred on the plot area from y0 to y1.
static void ylabel_draw(FILE *f, const char *label, double y0, double y1) {
    if (!label) return;
    char attrs[96];
    snprintf(attrs, sizeof(attrs), "transform=\"translate(18 %.1f) rotate(-90)\"", (y0 + y1) / 2);
    text_at(f, 0, 0, "middle", attrs, label);
}

// Lays out legend entries left to right from x0 to x1, wrapping into rows; with f NULL only
// counts the rows.
static int legend_draw(FILE *f, const PlotSeries *s, int n, double x0, double x1, double top) {
    double x = x0;
    int rows = n > 0;
    for (int i = 0; i < n; i++) {
        double w = 30 + plot_text_width(s[i].label ? s[i].label : "", FONT) + 18;
        if (x + w > x1 && x > x0) x = x0, rows++;
        double y = top + (rows - 1) * LEGEND_ROW + LEGEND_ROW / 2.0;
        if (f) {
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"2.5\"%s/>\n",
                    x, y, x + 24, y, color(s[i].color),
                    s[i].dashed ? " stroke-dasharray=\"6 4\"" : "");
            text_at(f, x + 30, y + FONT / 3.0, "start", "", s[i].label ? s[i].label : "");
        }
        x += w;
    }
    return rows;
}

static void svg_end(FILE *f) {
    fputs("</svg>\n", f);
}

// ---- line plots ----------------------------------------------------------------------------

// Stroke styles: a curve, and the faint raw curve under its moving average.
#define STROKE_FULL  "stroke-width=\"2\""
#define STROKE_FAINT "stroke-width=\"1.2\" stroke-opacity=\"0.3\""

static int finite_point(const PlotSeries *s, int i) {
    return isfinite(s->x[i]) && isfinite(s->y[i]);
}

// Widens [*lo, *hi] by the finite x (or, with ys, y) values of the series.
static void series_range(const PlotSeries *s, int n, int ys, double *lo, double *hi) {
    for (int k = 0; k < n; k++)
        for (int i = 0; i < s[k].n; i++)
            if (finite_point(&s[k], i)) {
                double v = ys ? s[k].y[i] : s[k].x[i];
                *lo = fmin(*lo, v), *hi = fmax(*hi, v);
            }
}

// The series as one <path> in the given stroke style: a run of finite points in one pixel
// column contributes its lowest and highest point (in their order); a non-finite point lifts
// the pen.
static void series_draw(FILE *f, const PlotSeries *s, const Axis *x, const Axis *y,
                        const char *stroke) {
    fprintf(f, "<path fill=\"none\" stroke=\"%s\" %s stroke-linejoin=\"round\"%s d=\"",
            color(s->color), stroke, s->dashed ? " stroke-dasharray=\"6 4\"" : "");
    int pen = 0;
    for (int i = 0; i < s->n;) {
        if (!finite_point(s, i)) {
            pen = 0, i++;
            continue;
        }
        double column = floor(axis_map(x, s->x[i]));
        int lo = i, hi = i, j = i;
        for (; j < s->n && finite_point(s, j) && floor(axis_map(x, s->x[j])) == column; j++) {
            if (s->y[j] < s->y[lo]) lo = j;
            if (s->y[j] > s->y[hi]) hi = j;
        }
        int keep[2] = {lo < hi ? lo : hi, lo < hi ? hi : lo};
        for (int k = 0; k < 1 + (lo != hi); k++, pen = 1)
            fprintf(f, "%s%.1f %.1f ", pen ? "L" : "M", axis_map(x, s->x[keep[k]]),
                    axis_map(y, s->y[keep[k]]));
        i = j;
    }
    fputs("\"/>\n", f);
}

// A single point would draw as nothing: mark isolated points with a dot.
static void series_dots(FILE *f, const PlotSeries *s, const Axis *x, const Axis *y) {
    for (int i = 0; i < s->n; i++) {
        int alone = finite_point(s, i) && (i == 0 || !finite_point(s, i - 1)) &&
                    (i == s->n - 1 || !finite_point(s, i + 1));
        if (alone)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    axis_map(x, s->x[i]), axis_map(y, s->y[i]), color(s->color));
    }
}

// A smoothed series: the raw curve faint, its moving average (plot_smooth) over it.
static void series_draw_smoothed(FILE *f, const PlotSeries *s, const Axis *x, const Axis *y) {
    double *avg = lc_malloc((size_t)s->n * sizeof(*avg));
    plot_smooth(s->y, s->n, plot_smooth_half(s->n), avg);
    PlotSeries sm = *s;
    sm.y = avg;
    series_draw(f, s, x, y, STROKE_FAINT);
    series_draw(f, &sm, x, y, STROKE_FULL);
    free(avg);
}

static void series_plot(FILE *f, const PlotSeries *s, const Axis *x, const Axis *y) {
    int finite = 0;
    for (int i = 0; i < s->n; i++) finite += finite_point(s, i);
    if (s->smooth && finite >= PLOT_SMOOTH_MIN)
        series_draw_smoothed(f, s, x, y);
    else
        series_draw(f, s, x, y, STROKE_FULL);
    series_dots(f, s, x, y);
}

// Every panel's series in one array, for the legend (free the result).
static PlotSeries *panels_flatten(const PlotPanel *pn, int n, int *total) {
    *total = 0;
    for (int k = 0; k < n; k++) *total += pn[k].n_series;
    PlotSeries *all = lc_calloc((size_t)(*total > 0 ? *total : 1), sizeof(*all));
    for (int k = 0, i = 0; k < n; k++)
        for (int j = 0; j < pn[k].n_series; j++) all[i++] = pn[k].series[j];
    return all;
}

void plot_panels(FILE *f, const PlotFrame *fr, const PlotPanel *pn, int n) {
    int w, h, n_all;
    frame_size(fr, &w, &h);
    PlotSeries *all = panels_flatten(pn, n, &n_all);
    double left = 80, right = w - 24, bottom = h - 50;
    double top = TITLE_BAND + LEGEND_ROW * legend_draw(NULL, all, n_all, left, right, 0) + 8;
    double xlo = INFINITY, xhi = -INFINITY;
    series_range(all, n_all, 0, &xlo, &xhi);
    Axis x = axis_nice(xlo, xhi, left, right);
    double ph = (bottom - top - PANEL_GAP * (n - 1)) / (n > 0 ? n : 1); // panel height
    svg_begin(f, fr);
    legend_draw(f, all, n_all, left, right, TITLE_BAND);
    for (int k = 0; k < n; k++) {
        double y0 = top + k * (ph + PANEL_GAP), ylo = INFINITY, yhi = -INFINITY;
        series_range(pn[k].series, pn[k].n_series, 1, &ylo, &yhi);
        Axis y = axis_nice(ylo, yhi, y0 + ph, y0);
        axes_draw(f, &x, &y, y0, y0 + ph, k == n - 1);
        ylabel_draw(f, pn[k].ylabel, y0, y0 + ph);
        for (int i = 0; i < pn[k].n_series; i++) series_plot(f, &pn[k].series[i], &x, &y);
    }
    xlabel_draw(f, fr, x.a, x.b);
    svg_end(f);
    free(all);
}

void plot_lines(FILE *f, const PlotFrame *fr, const PlotSeries *s, int n) {
    PlotPanel one = {fr->ylabel, s, n};
    plot_panels(f, fr, &one, 1);
}

// ---- scatter -------------------------------------------------------------------------------

// An axis over [lo, hi] with a tenth of the range on either side for the labels, not below 0
// for data that is not (a KL).
static Axis scatter_axis(double lo, double hi, double a, double b) {
    double pad = 0.1 * (hi - lo);
    return axis_nice(lo >= 0 ? fmax(lo - pad, 0) : lo - pad, hi + pad, a, b);
}

static int in_axis(const Axis *ax, double v) {
    return v >= fmin(ax->lo, ax->hi) && v <= fmax(ax->lo, ax->hi);
}

// A scatter panel: its axes (the plot area is their extent), a box the caller draws in it that
// labels must keep clear of (NULL: none), and which points are labelled in it.
typedef struct {
    Axis x, y;
    const PlotBox *mark;
    const int *label;        // (n) whether point i is labelled here
    const PlotChain *chains; // (n_chains) curves through the points
    int n_chains;
} ScatterPanel;

// A grey line from the marker's edge to the nearest point of its label's box b, when the
// label had to move away from beside its point.

static void leader_draw(FILE *f, PlotBox b, double px, double py) {
    double d = plot_box_distance(b, px, py);
    if (d <= 12) return; // beside its point: no line needed
    double cx = fmin(fmax(px, b.x), b.x + b.w), cy = fmin(fmax(py, b.y), b.y + b.h);
    double ux = (cx - px) / d, uy = (cy - py) / d;
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
            "stroke-width=\"1\"/>\n",
            px + MARKER_R * ux, py + MARKER_R * uy, cx, cy);
}

// The points' pixel positions in sp and which are drawn (finite and inside its axes).
static void scatter_map(const PlotPoint *p, int n, const ScatterPanel *sp, double *px, double *py,
                        int *drawn) {
    for (int i = 0; i < n; i++) {
        drawn[i] = isfinite(p[i].x) && isfinite(p[i].y) && in_axis(&sp->x, p[i].x) &&
                   in_axis(&sp->y, p[i].y);
        px[i] = drawn[i] ? axis_map(&sp->x, p[i].x) : 0;
        py[i] = drawn[i] ? axis_map(&sp->y, p[i].y) : 0;
    }
}

// Labels for the drawn, labelled points, kept clear of every marker and of sp->mark.
static void scatter_labels(FILE *f, const PlotPoint *p, int n, const ScatterPanel *sp,
                           const double *px, const double *py, const int *drawn) {
    PlotAnchor *a = lc_calloc((size_t)n + 1, sizeof(*a));
    PlotBox *avoid = lc_calloc((size_t)n + 1, sizeof(*avoid)),
            *out = lc_calloc((size_t)n + 1, sizeof(*out));
    int *who = lc_calloc((size_t)n + 1, sizeof(*who)), na = 0, nv = 0;
    for (int i = 0; i < n; i++) {
        if (!drawn[i]) continue;
        avoid[nv++] = (PlotBox){px[i] - MARKER_R - 1, py[i] - MARKER_R - 1, 2 * MARKER_R + 2,
                                2 * MARKER_R + 2};
        if (!sp->label[i]) continue;
        who[na] = i; // label boxes: the estimated text width plus a pixel each side
        a[na++] = (PlotAnchor){px[i], py[i], plot_text_width(p[i].label, FONT) + 2, FONT + 3};
    }
    if (sp->mark) avoid[nv++] = *sp->mark;
    PlotBox area = {sp->x.a, sp->y.b, sp->x.b - sp->x.a, sp->y.a - sp->y.b};
    plot_place_labels(a, na, avoid, nv, area, out);
    for (int k = 0; k < na; k++) leader_draw(f, out[k], a[k].x, a[k].y);
    for (int k = 0; k < na; k++) // a white outline keeps the text readable over gridlines
        text_at(f, out[k].x + 1, out[k].y + FONT - 1, "start",
                "stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\"", p[who[k]].label);
    free(a), free(avoid), free(out), free(who);
}

// A chain's segments between consecutive points that are both drawn in the panel.
static void chain_draw(FILE *f, const PlotChain *c, const double *px, const double *py,
                       const int *drawn) {
    for (int k = 0; k + 1 < c->n; k++) {
        int a = c->points[k], b = c->points[k + 1];
        if (drawn[a] && drawn[b])
            fprintf(f,
                    "<line class=\"chain\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                    "stroke=\"#444\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                    px[a], py[a], px[b], py[b]);
    }
}

// The panel's axes, the points inside it as markers coloured by index, and its labels.
static void scatter_panel(FILE *f, const PlotPoint *p, int n, const ScatterPanel *sp) {
    double *px = lc_calloc((size_t)n + 1, sizeof(*px)), *py = lc_calloc((size_t)n + 1, sizeof(*py));
    int *drawn = lc_calloc((size_t)n + 1, sizeof(*drawn));
    axes_draw(f, &sp->x, &sp->y, sp->y.b, sp->y.a, 1);
    scatter_map(p, n, sp, px, py, drawn);
    for (int c = 0; c < sp->n_chains; c++) chain_draw(f, &sp->chains[c], px, py, drawn);
    for (int i = 0; i < n; i++)
        if (drawn[i])
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\" stroke=\"white\"/>\n",
                    px[i], py[i], MARKER_R, color(i));
    scatter_labels(f, p, n, sp, px, py, drawn);
    free(px), free(py), free(drawn);
}

// The finite points' range (xlo, xhi, ylo, yhi).
static void points_range(const PlotPoint *p, int n, double r[4]) {
    r[0] = r[2] = INFINITY, r[1] = r[3] = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(p[i].x) && isfinite(p[i].y)) {
            r[0] = fmin(r[0], p[i].x), r[1] = fmax(r[1], p[i].x);
            r[2] = fmin(r[2], p[i].y), r[3] = fmax(r[3], p[i].y);
        }
}

// Two panels side by side: all points (those outside the zoom labelled, the zoom's extent a
// dashed box) on the left, the zoom range on the right, wider since it holds most labels.
static void scatter_zoomed(FILE *f, const PlotPoint *p, int n, const PlotChain *chains,
                           int n_chains, const double zr[4], double left, double right, double top,
                           double bottom) {
    double all[4], split = left + 0.4 * (right - left - SIDE_GAP);
    points_range(p, n, all);
    int *outside = lc_calloc((size_t)n + 1, sizeof(*outside)),
        *every = lc_calloc((size_t)n + 1, sizeof(*every));
    ScatterPanel zoom = {scatter_axis(zr[0], zr[1], split + SIDE_GAP, right),
                         scatter_axis(zr[2], zr[3], bottom, top),
                         NULL,
                         every,
                         chains,
                         n_chains};
    ScatterPanel overview = {scatter_axis(all[0], all[1], left, split),
                             scatter_axis(all[2], all[3], bottom, top),
                             NULL,
                             outside,
                             chains,
                             n_chains};
    for (int i = 0; i < n; i++)
        outside[i] = !(in_axis(&zoom.x, p[i].x) && in_axis(&zoom.y, p[i].y)), every[i] = 1;
    // the zoom's extent, grown to enclose the markers so that it shows when the cluster is a
    // few pixels wide, and kept inside the plot area
    double g = MARKER_R + 3;
    double bx0 = fmax(axis_map(&overview.x, zoom.x.lo) - g, overview.x.a);
    double bx1 = fmin(axis_map(&overview.x, zoom.x.hi) + g, overview.x.b);
    double by0 = fmax(axis_map(&overview.y, zoom.y.hi) - g, overview.y.b);
    double by1 = fmin(axis_map(&overview.y, zoom.y.lo) + g, overview.y.a);
    PlotBox mark = {bx0, by0, bx1 - bx0, by1 - by0};
    overview.mark = &mark;
    fputs("<g id=\"main\">\n", f);
    text_at(f, (left + split) / 2, top - 6, "middle", "font-weight=\"bold\"", "all");
    scatter_panel(f, p, n, &overview);
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#555\" stroke-dasharray=\"4 3\"/>\n</g>\n<g id=\"zoom\">\n",
            mark.x, mark.y, mark.w, mark.h);
    text_at(f, (split + SIDE_GAP + right) / 2, top - 6, "middle", "font-weight=\"bold\"",
            "zoom on the dashed box");
    scatter_panel(f, p, n, &zoom);
    fputs("</g>\n", f);
    free(outside), free(every);
}

void plot_scatter(FILE *f, const PlotFrame *fr, const PlotPoint *p, int n) {
    plot_scatter_chains(f, fr, p, n, NULL, 0);
}

void plot_scatter_chains(FILE *f, const PlotFrame *fr, const PlotPoint *p, int n,
                         const PlotChain *chains, int n_chains) {
    int w, h;
    frame_size(fr, &w, &h);
    double zr[4], left = 80, right = w - 24, top = TITLE_BAND + 8, bottom = h - 50;
    int zoom = plot_zoom_range(p, n, zr);
    svg_begin(f, fr);
    if (zoom) {
        scatter_zoomed(f, p, n, chains, n_chains, zr, left, right, top + SUBTITLE, bottom);
    } else {
        double r[4];
        int *every = lc_calloc((size_t)n + 1, sizeof(*every));
        for (int i = 0; i < n; i++) every[i] = 1;
        points_range(p, n, r);
        ScatterPanel sp = {scatter_axis(r[0], r[1], left, right),
                           scatter_axis(r[2], r[3], bottom, top),
                           NULL,
                           every,
                           chains,
                           n_chains};
        scatter_panel(f, p, n, &sp);
        free(every);
    }
    xlabel_draw(f, fr, left, right);
    ylabel_draw(f, fr->ylabel, zoom ? top + SUBTITLE : top, bottom);
    svg_end(f);
}

// ---- bars ----------------------------------------------------------------------------------

static void bar_draw(FILE *f, const PlotBar *b, const Axis *x, double base, double y, double th) {
    char buf[64];
    double a = axis_map(x, base), v = axis_map(x, b->value), end = v;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
            fmin(a, v), y - th / 2, fabs(v - a), th, color(b->color));
    if (isfinite(b->lo) && isfinite(b->hi)) {
        double lo = axis_map(x, b->lo), hi = axis_map(x, b->hi);
        fprintf(f,
                "<path stroke=\"#222\" stroke-width=\"1.5\" fill=\"none\" d=\"M%.1f %.1f "
                "L%.1f %.1f M%.1f %.1f L%.1f %.1f M%.1f %.1f L%.1f %.1f\"/>\n",
                lo, y, hi, y, lo, y - th / 4, lo, y + th / 4, hi, y - th / 4, hi, y + th / 4);
        end = b->value >= base ? fmax(v, hi) : fmin(v, lo);
    }
    snprintf(buf, sizeof(buf), "%.0f", b->value);
    int after = b->value >= base;
    text_at(f, after ? end + 6 : end - 6, y + FONT / 3.0, after ? "start" : "end", "", buf);
}

void plot_bars(FILE *f, const PlotFrame *fr, const PlotBar *b, int n, double base) {
    int w, h;
    frame_size(fr, &w, &h);
    double longest = 0;
    for (int i = 0; i < n; i++) longest = fmax(longest, plot_text_width(b[i].label, FONT));
    double left = fmin(24 + longest, w / 3.0), right = w - 24, top = TITLE_BAND + 8,
           bottom = h - 50;
    double lo = base, hi = base;
    for (int i = 0; i < n; i++) {
        const double v[3] = {b[i].value, b[i].lo, b[i].hi};
        for (int k = 0; k < 3; k++)
            if (isfinite(v[k])) lo = fmin(lo, v[k]), hi = fmax(hi, v[k]);
    }
    double pad = 0.08 * (hi - lo); // room for the value labels
    Axis x = axis_nice(lo - pad, hi + pad, left, right);
    svg_begin(f, fr);
    axes_draw(f, &x, NULL, top, bottom, 1);
    xlabel_draw(f, fr, x.a, x.b);
    double row = (bottom - top) / (n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        double y = top + (i + 0.5) * row;
        text_at(f, left - 8, y + FONT / 3.0, "end", "", b[i].label);
        if (isfinite(b[i].value)) bar_draw(f, &b[i], &x, base, y, fmin(0.6 * row, 40));
    }
    double a = axis_map(&x, base);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>\n", a, top,
            a, bottom);
    svg_end(f);
}
