// train/report/plot.c: the SVG writer. Layout: a title band, a legend band (line plots), the plot
// area with gridlines at the ticks, tick labels and axis labels in the margins.
#include "train/report/plot.h"
#include <math.h>
#include <string.h>

#define FONT       13  // px, tick labels and legend
#define CHAR_W     0.6 // average glyph width / font size, to estimate text widths
#define TITLE_BAND 36  // px above the legend or plot area
#define LEGEND_ROW 20  // px per legend row
#define MAX_TICKS  8

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

// Estimated width in px of s at font size px (UTF-8 continuation bytes do not count).
static double text_width(const char *s, double px) {
    int chars = 0;
    for (; *s; s++) chars += ((unsigned char)*s & 0xC0) != 0x80;
    return chars * CHAR_W * px;
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

// Gridlines, ticks and tick labels of the horizontal axis x (at the bottom, y0 to y1 the plot's
// vertical extent) and, if y is not NULL, the vertical axis (at the left, x0 = x->a).
static void axes_draw(FILE *f, const Axis *x, const Axis *y, double y0, double y1) {
    char buf[64];
    fputs("<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n", f);
    for (int k = 0; k <= tick_count(x); k++) {
        double px = axis_map(x, x->lo + k * x->step);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px, y0, px, y1);
    }
    for (int k = 0; y && k <= tick_count(y); k++) {
        double py = axis_map(y, y->lo + k * y->step);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x->a, py, x->b, py);
    }
    fputs("</g>\n<g fill=\"#333\">\n", f);
    for (int k = 0; k <= tick_count(x); k++) {
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
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#666\"/>\n",
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

// Axis labels: x centred below the plot area, y rotated along its left edge.
static void labels_draw(FILE *f, const PlotFrame *fr, const Axis *x, double y0, double y1) {
    int w, h;
    frame_size(fr, &w, &h);
    if (fr->xlabel) text_at(f, (x->a + x->b) / 2, h - 10, "middle", "", fr->xlabel);
    if (fr->ylabel) {
        char attrs[96];
        snprintf(attrs, sizeof(attrs), "transform=\"translate(18 %.1f) rotate(-90)\"",
                 (y0 + y1) / 2);
        text_at(f, 0, 0, "middle", attrs, fr->ylabel);
    }
}

// Lays out legend entries left to right from x0 to x1, wrapping into rows; with f NULL only
// counts the rows.
static int legend_draw(FILE *f, const PlotSeries *s, int n, double x0, double x1, double top) {
    double x = x0;
    int rows = n > 0;
    for (int i = 0; i < n; i++) {
        double w = 30 + text_width(s[i].label ? s[i].label : "", FONT) + 18;
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

static int finite_point(const PlotSeries *s, int i) {
    return isfinite(s->x[i]) && isfinite(s->y[i]);
}

static void series_range(const PlotSeries *s, int n, double *xlo, double *xhi, double *ylo,
                         double *yhi) {
    *xlo = *ylo = INFINITY;
    *xhi = *yhi = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!finite_point(&s[k], i)) continue;
            *xlo = fmin(*xlo, s[k].x[i]), *xhi = fmax(*xhi, s[k].x[i]);
            *ylo = fmin(*ylo, s[k].y[i]), *yhi = fmax(*yhi, s[k].y[i]);
        }
}

// The series as one <path>: a run of finite points in one pixel column contributes its lowest
// and highest point (in their order); a non-finite point lifts the pen.
static void series_draw(FILE *f, const PlotSeries *s, const Axis *x, const Axis *y) {
    fprintf(f,
            "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\"%s "
            "d=\"",
            color(s->color), s->dashed ? " stroke-dasharray=\"6 4\"" : "");
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

void plot_lines(FILE *f, const PlotFrame *fr, const PlotSeries *s, int n) {
    int w, h;
    frame_size(fr, &w, &h);
    double left = 80, right = w - 24, bottom = h - 50;
    double top = TITLE_BAND + LEGEND_ROW * legend_draw(NULL, s, n, left, right, 0) + 8;
    double xlo, xhi, ylo, yhi;
    series_range(s, n, &xlo, &xhi, &ylo, &yhi);
    Axis x = axis_nice(xlo, xhi, left, right), y = axis_nice(ylo, yhi, bottom, top);
    svg_begin(f, fr);
    legend_draw(f, s, n, left, right, TITLE_BAND);
    axes_draw(f, &x, &y, top, bottom);
    labels_draw(f, fr, &x, top, bottom);
    for (int k = 0; k < n; k++) {
        series_draw(f, &s[k], &x, &y);
        series_dots(f, &s[k], &x, &y);
    }
    svg_end(f);
}

// ---- scatter -------------------------------------------------------------------------------

void plot_scatter(FILE *f, const PlotFrame *fr, const PlotPoint *p, int n) {
    int w, h;
    frame_size(fr, &w, &h);
    double left = 80, right = w - 24, top = TITLE_BAND + 8, bottom = h - 50;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(p[i].x) && isfinite(p[i].y)) {
            xlo = fmin(xlo, p[i].x), xhi = fmax(xhi, p[i].x);
            ylo = fmin(ylo, p[i].y), yhi = fmax(yhi, p[i].y);
        }
    // room for the labels: a tenth of the range on every side, not below 0 for data that is
    // not (a KL)
    double dx = 0.1 * (xhi - xlo), dy = 0.1 * (yhi - ylo);
    Axis x = axis_nice(xlo >= 0 ? fmax(xlo - dx, 0) : xlo - dx, xhi + dx, left, right);
    Axis y = axis_nice(ylo >= 0 ? fmax(ylo - dy, 0) : ylo - dy, yhi + dy, bottom, top);
    svg_begin(f, fr);
    axes_draw(f, &x, &y, top, bottom);
    labels_draw(f, fr, &x, top, bottom);
    for (int i = 0; i < n; i++) {
        if (!(isfinite(p[i].x) && isfinite(p[i].y))) continue;
        double px = axis_map(&x, p[i].x), py = axis_map(&y, p[i].y);
        int flip = px + 8 + text_width(p[i].label, FONT) > right; // keep the label inside
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"white\"/>\n", px,
                py, color(i));
        text_at(f, flip ? px - 8 : px + 8, py - 8, flip ? "end" : "start", "", p[i].label);
    }
    svg_end(f);
}

// ---- bars ----------------------------------------------------------------------------------

static void bar_draw(FILE *f, const PlotBar *b, const Axis *x, double base, double y, double th,
                     int i) {
    char buf[64];
    double a = axis_map(x, base), v = axis_map(x, b->value), end = v;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
            fmin(a, v), y - th / 2, fabs(v - a), th, color(i));
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
    for (int i = 0; i < n; i++) longest = fmax(longest, text_width(b[i].label, FONT));
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
    axes_draw(f, &x, NULL, top, bottom);
    labels_draw(f, fr, &x, top, bottom);
    double row = (bottom - top) / (n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        double y = top + (i + 0.5) * row;
        text_at(f, left - 8, y + FONT / 3.0, "end", "", b[i].label);
        if (isfinite(b[i].value)) bar_draw(f, &b[i], &x, base, y, fmin(0.6 * row, 40), i);
    }
    double a = axis_map(&x, base);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>\n", a, top,
            a, bottom);
    svg_end(f);
}
