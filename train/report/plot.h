// train/report/plot.h: SVG plots written by layercake itself (no gnuplot, no fonts to find): line
// plots with several series, labelled scatter plots, and horizontal bar charts with error bars.
// Every plot has a title, axes with "nice" ticks (1, 2 or 5 times a power of ten) and labels,
// and a legend where series need one. The SVG is self-contained and well-formed: text is
// escaped, the size is a viewBox (default 800 x 500) so browsers scale it.
// The functions write to f; the caller opens and closes it (and checks for write errors).
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
} PlotSeries;

void plot_lines(FILE *f, const PlotFrame *fr, const PlotSeries *series, int n_series);

// A point with its label written beside it; non-finite points are left out.
typedef struct {
    const char *label;
    double x, y;
} PlotPoint;

void plot_scatter(FILE *f, const PlotFrame *fr, const PlotPoint *points, int n);

// A horizontal bar from `base` to value, with an error bar from lo to hi (not drawn when lo or
// hi is not finite). The value axis is horizontal; bars are stacked top to bottom in order.
typedef struct {
    const char *label;
    double value, lo, hi;
} PlotBar;

void plot_bars(FILE *f, const PlotFrame *fr, const PlotBar *bars, int n, double base);

// Writes s with XML's five special characters escaped (&amp; &lt; &gt; &quot; &apos;).
void plot_escape(FILE *f, const char *s);
