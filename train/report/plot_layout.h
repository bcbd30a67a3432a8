// train/report/plot_layout.h: the plots' layout helpers (train/report/plot_layout.c): text
// widths, the moving average drawn over noisy curves, label placement without collisions and
// the zoom range of a scatter plot squeezed by outliers. Pure functions on numbers, so the
// tests check them directly; train/report/plot.c draws with them.
#pragma once

// A point with its label written beside it; non-finite points are left out.
typedef struct {
    const char *label;
    double x, y;
} PlotPoint;

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
