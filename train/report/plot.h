// train/report/plot.h: SVG plots written by layercake itself (no gnuplot, no fonts to find): line
// plots with several series (optionally smoothed, optionally as small multiples sharing the x
// axis), labelled scatter plots (labels placed so they do not collide, a zoom panel when an
// outlier squeezes the rest), and horizontal bar charts with error bars.
// Every plot has a title, axes with "nice" ticks (1, 2 or 5 times a power of ten) and labels,
// and a legend where series need one. The SVG is self-contained and well-formed: text is
// escaped, the size is a viewBox (default 800 x 500) so browsers scale it; every plot area is a
// <rect class="plot-area">.
// The functions write to f; the caller opens and closes it (and checks for write errors).
// Where labels go and what is smoothed: train/report/plot_layout.h.
#pragma once
#include "train/report/plot_layout.h"
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

// Labels are placed by plot_place_labels. When plot_zoom_range finds a cluster squeezed by
// outliers, the plot has two panels side by side: all points (only those outside the cluster
// labelled, the cluster's extent as a dashed box) and the cluster zoomed (its own x and y
// ranges, every point labelled).
void plot_scatter(FILE *f, const PlotFrame *fr, const PlotPoint *points, int n);

// A curve through some points of a scatter, in order: a reference frontier, such as a model's
// best-of-n entries by n. Drawn as a dashed dark line under the markers, a segment wherever
// both its points are in the panel.
typedef struct {
    const int *points; // (n) indices into the scatter's points, in the curve's order
    int n;
} PlotChain;

// plot_scatter with curves through its points.
void plot_scatter_chains(FILE *f, const PlotFrame *fr, const PlotPoint *points, int n,
                         const PlotChain *chains, int n_chains);

// A horizontal bar from `base` to value, with an error bar from lo to hi (not drawn when lo or
// hi is not finite). The value axis is horizontal; bars are stacked top to bottom in order.
typedef struct {
    const char *label;
    double value, lo, hi;
    int color; // index into the palette: the report gives a model the same colour on every plot
} PlotBar;

void plot_bars(FILE *f, const PlotFrame *fr, const PlotBar *bars, int n, double base);

// Writes s with XML's five special characters escaped (&amp; &lt; &gt; &quot; &apos;).
void plot_escape(FILE *f, const char *s);
