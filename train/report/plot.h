// train/report/plot.h: SVG plots written by layercake itself (no gnuplot, no fonts to find): line
// plots with several series (optionally smoothed, optionally as small multiples sharing the x
// axis), labelled scatter plots (labels placed so they do not collide, a zoom panel when an
// outlier squeezes the rest), and horizontal bar charts with error bars.
// Every plot has a title, axes with "nice" ticks (1, 2 or 5 times a power of ten) and labels,
// and a legend where series need one. The SVG is self-contained and well-formed: text is
// escaped, the size is a viewBox (default 800 x 500) so browsers scale it; every plot area is a
// <rect class="plot-area">.
// The functions write to f; the caller opens and closes it (and checks for write errors).
// Layout helpers (train/report/plot_layout.c) are pure functions, exposed for the tests.
#pragma once
#include <stdio.h>

typedef struct {
    const char *title;
    const char *xlabel, *ylabel;
    int width, height; // viewBox size in pixels; 0: 800 x 500
} PlotFrame;

// One curve. Points with a non-finite x or y break the line; more points than pixel columns
// are thinned to the lowest and highest point of each column, so spikes stay visible.
typedef struct {
    const char *label; // legend text
    const double *x;   // (n)
    const double *y;   // (n)
    int n;
    int color;  // index into the palette (wraps around)
    int dashed; // dashed stroke, e.g. for validation curves
    int smooth; // 1: with at least PLOT_SMOOTH_MIN finite points, the raw curve is drawn faint
                // and its centred moving average (plot_smooth) over it
} PlotSeries;

void plot_lines(FILE *f, const PlotFrame *fr, const PlotSeries *series, int n_series);

// Small multiples: panels stacked top to bottom, sharing the x axis (one range, tick labels
// under the last panel only) but each with its own y range and y label, for quantities on
// different scales. One legend above lists every panel's series. fr->ylabel is not used.
typedef struct {
    const char *ylabel;
    const PlotSeries *series; // (n_series)
    int n_series;
} PlotPanel;

void plot_panels(FILE *f, const PlotFrame *fr, const PlotPanel *panels, int n_panels);

// A point with its label written beside it; non-finite points are left out.
typedef struct {
    const char *label;
    double x, y;
} PlotPoint;

// Labels are placed by plot_place_labels. When plot_zoom_range finds a cluster squeezed by
// outliers, the plot has two panels side by side: all points (only those outside the cluster
// labelled, the cluster's extent as a dashed box) and the cluster zoomed (its own x and y
// ranges, every point labelled).
void plot_scatter(FILE *f, const PlotFrame *fr, const PlotPoint *points, int n);

// A horizontal bar from `base` to value, with an error bar from lo to hi (not drawn when lo or
// hi is not finite). The value axis is horizontal; bars are stacked top to bottom in order.
typedef struct {
    const char *label;
    double value, lo, hi;
    int color; // index into the palette: the report gives a model the same colour on every plot
} PlotBar;

void plot_bars(FILE *f, const PlotFrame *fr, const PlotBar *bars, int n, double base);

// ---- layout helpers (plot_layout.c) -------------------------------------------------------

// Estimated width in px of s at font size px: its characters (UTF-8 continuation bytes do not
// count) times an average glyph width of 0.6 em, on the wide side for Helvetica/Arial so that
// labels placed by this estimate do not touch.
double plot_text_width(const char *s, double px);

#define PLOT_SMOOTH_MIN 10 // fewer finite points than this are not smoothed

// The half-width of the moving window for a curve of n points: n / 20, at least 1, so the
// window spans about a tenth of the curve whatever its length.
int plot_smooth_half(int n);

// Centred moving average: out[i] is the mean of the finite y[j], |j - i| <= k, where
// k = min(half, i, n - 1 - i): the window shrinks symmetrically at the ends, so the average
// never lags the curve (an exponential average trails a steeply falling loss by half its span)
// and the first and last points are the raw values. A non-finite y[i] gives out[i] = NAN (the
// line breaks where the raw one does) and is left out of its neighbours' means. y and out are
// (n) and must not overlap.
void plot_smooth(const double *y, int n, int half, double *out);

typedef struct {
    double x, y, w, h; // px: top-left corner and size (SVG's y grows downward)
} PlotBox;

typedef struct {
    double x, y; // px: the point being labelled
    double w, h; // px: its label's size
} PlotAnchor;

// Places label i near anchor i: candidates on a grid around the point (beside it at its
// height first, then above and below, then further out), nearest first; the first that lies
// inside area and overlaps no label placed before it and no box in avoid (the points' markers,
// other marks) is taken. When none is free, the candidate with the least overlapping area is
// taken. Labels are placed in order, so the same input gives the same layout. Writes out[0..n)
// and returns how many labels overlap something.
int plot_place_labels(const PlotAnchor *a, int n, const PlotBox *avoid, int n_avoid, PlotBox area,
                      PlotBox *out);

// Distance in px from (x, y) to the nearest point of b (0 inside it).
double plot_box_distance(PlotBox b, double x, double y);

// Whether the finite points hold a cluster squeezed by outliers along x: split at the widest
// gap between neighbouring x values, the cluster is the side with more points (the lower side
// on a tie); it is squeezed when it has at least 2 points and spans at most PLOT_ZOOM_SHARE of
// the whole x range. Then returns 1 with the cluster's extent in range (xlo, xhi, ylo, yhi);
// else 0.
#define PLOT_ZOOM_SHARE 0.35
int plot_zoom_range(const PlotPoint *p, int n, double range[4]);

// Writes s with XML's five special characters escaped (&amp; &lt; &gt; &quot; &apos;).
void plot_escape(FILE *f, const char *s);
