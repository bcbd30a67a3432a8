// train/report/plot_layout.c: the plots' pure layout helpers: text widths, the moving average
// drawn over noisy curves, label placement without collisions, and the zoom range of a
// scatter plot squeezed by outliers. No SVG here, so the tests can check the numbers.
#include "train/report/plot_layout.h"
#include "common/check.h"
#include <math.h>
#include <stdlib.h>

#define CHAR_W 0.6 // average glyph width / font size (Helvetica's lower case is ~0.5)

double plot_text_width(const char *s, double px) {
    int chars = 0;
    for (; *s; s++) chars += ((unsigned char)*s & 0xC0) != 0x80;
    return chars * CHAR_W * px;
}

// ---- smoothing -----------------------------------------------------------------------------

int plot_smooth_half(int n) {
    return n / 20 > 1 ? n / 20 : 1;
}

void plot_smooth(const double *y, int n, int half, double *out) {
    // prefix sums of the finite values and of their count: each window's mean in O(1)
    double *sum = lc_malloc((size_t)(n + 1) * sizeof(*sum));
    int *cnt = lc_malloc((size_t)(n + 1) * sizeof(*cnt));
    sum[0] = 0, cnt[0] = 0;
    for (int i = 0; i < n; i++) {
        int ok = isfinite(y[i]);
        sum[i + 1] = sum[i] + (ok ? y[i] : 0);
        cnt[i + 1] = cnt[i] + ok;
    }
    for (int i = 0; i < n; i++) {
        int k = half < i ? half : i; // shrink the window symmetrically at the ends
        if (n - 1 - i < k) k = n - 1 - i;
        int c = cnt[i + k + 1] - cnt[i - k];
        out[i] = isfinite(y[i]) && c > 0 ? (sum[i + k + 1] - sum[i - k]) / c : NAN;
    }
    free(sum);
    free(cnt);
}

// ---- label placement -----------------------------------------------------------------------

#define LABEL_GAP 8  // px between a point and a label beside it (a marker's radius is 5)
#define GRID_I    3  // candidate columns on each side of the point
#define GRID_J    5  // candidate rows above and below
#define SHIFT_X   18 // px between candidate columns beyond the first

typedef struct {
    PlotBox box;
    double dist; // from the point to the box, px
    int order;   // generation order: breaks ties in favour of the preferred positions
} Candidate;

double plot_box_distance(PlotBox b, double x, double y) {
    double dx = fmax(fmax(b.x - x, x - (b.x + b.w)), 0);
    double dy = fmax(fmax(b.y - y, y - (b.y + b.h)), 0);
    return sqrt(dx * dx + dy * dy);
}

#define TOUCH 1e-6 // px: boxes that share an edge (up to rounding) do not overlap

static double overlap_area(PlotBox a, PlotBox b) {
    double w = fmin(a.x + a.w, b.x + b.w) - fmax(a.x, b.x);
    double h = fmin(a.y + a.h, b.y + b.h) - fmax(a.y, b.y);
    return w > TOUCH && h > TOUCH ? w * h : 0;
}

static int box_inside(PlotBox b, PlotBox area) {
    return b.x >= area.x - TOUCH && b.y >= area.y - TOUCH && b.x + b.w <= area.x + area.w + TOUCH &&
           b.y + b.h <= area.y + area.h + TOUCH;
}

// The label box in grid cell (i, j): i > 0 right of the point, i < 0 left, 0 centred over it;
// beside the point (i != 0) j stacks rows at its height (j = 0) and above/below; over it
// (i = 0) row j = -1 is just above, +1 just below.
static PlotBox grid_box(const PlotAnchor *a, int i, int j) {
    PlotBox b = {0, 0, a->w, a->h};
    if (i > 0) b.x = a->x + LABEL_GAP + (i - 1) * SHIFT_X;
    if (i < 0) b.x = a->x - LABEL_GAP - a->w + (i + 1) * SHIFT_X;
    if (i == 0) b.x = a->x - a->w / 2;
    if (i != 0) b.y = a->y - a->h / 2 + j * (a->h + 1);
    if (i == 0 && j < 0) b.y = a->y - LABEL_GAP - a->h + (j + 1) * (a->h + 1);
    if (i == 0 && j > 0) b.y = a->y + LABEL_GAP + (j - 1) * (a->h + 1);
    return b;
}

static int candidate_cmp(const void *pa, const void *pb) {
    const Candidate *a = pa, *b = pb;
    if (fabs(a->dist - b->dist) > 1e-9) return a->dist < b->dist ? -1 : 1;
    return a->order - b->order;
}

// Every candidate for anchor a, nearest first (c holds (2 GRID_I + 1) (2 GRID_J + 1)).
// Columns are generated right, left, centre and rows level, up, down: the preferred order.
static int candidates(const PlotAnchor *a, Candidate *c) {
    static const int I[] = {1, -1, 0, 2, -2, 3, -3};
    int n = 0;
    for (int ii = 0; ii < 2 * GRID_I + 1; ii++)
        for (int jj = 0; jj < 2 * GRID_J + 1; jj++) {
            int i = I[ii], j = jj % 2 ? (jj + 1) / 2 * -1 : jj / 2; // 0, -1, 1, -2, 2, ...
            if (i == 0 && j == 0) continue;                         // on the point itself
            PlotBox b = grid_box(a, i, j);
            c[n] = (Candidate){b, plot_box_distance(b, a->x, a->y), n};
            n++;
        }
    qsort(c, (size_t)n, sizeof(*c), candidate_cmp);
    return n;
}

// The area of b that overlaps the placed labels, the boxes to avoid or lies outside area.
static double box_cost(PlotBox b, const PlotBox *placed, int n_placed, const PlotBox *avoid,
                       int n_avoid, PlotBox area) {
    double cost = box_inside(b, area) ? 0 : b.w * b.h - overlap_area(b, area);
    for (int k = 0; k < n_placed; k++) cost += overlap_area(b, placed[k]);
    for (int k = 0; k < n_avoid; k++) cost += overlap_area(b, avoid[k]);
    return cost;
}

int plot_place_labels(const PlotAnchor *a, int n, const PlotBox *avoid, int n_avoid, PlotBox area,
                      PlotBox *out) {
    Candidate c[(2 * GRID_I + 1) * (2 * GRID_J + 1)];
    int crowded = 0;
    for (int i = 0; i < n; i++) {
        int nc = candidates(&a[i], c), best = 0;
        double best_cost = INFINITY;
        for (int k = 0; k < nc && best_cost > 0; k++) {
            double cost = box_cost(c[k].box, out, i, avoid, n_avoid, area);
            if (cost < best_cost) best_cost = cost, best = k;
        }
        out[i] = c[best].box;
        crowded += best_cost > 0;
    }
    return crowded;
}

// ---- zoom ----------------------------------------------------------------------------------

static int double_cmp(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

// The cluster's x extent [lo, hi] from the finite x values sorted (n); returns its size.
static int cluster_split(const double *xs, int n, double *lo, double *hi) {
    int cut = 0; // the widest gap lies between xs[cut] and xs[cut + 1]
    for (int i = 1; i + 1 < n; i++)
        if (xs[i + 1] - xs[i] > xs[cut + 1] - xs[cut]) cut = i;
    int below = cut + 1, above = n - below;
    if (below >= above) {
        *lo = xs[0], *hi = xs[cut];
        return below;
    }
    *lo = xs[cut + 1], *hi = xs[n - 1];
    return above;
}

int plot_zoom_range(const PlotPoint *p, int n, double range[4]) {
    double *xs = lc_malloc((size_t)(n > 0 ? n : 1) * sizeof(*xs));
    int m = 0, zoom = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(p[i].x) && isfinite(p[i].y)) xs[m++] = p[i].x;
    qsort(xs, (size_t)m, sizeof(*xs), double_cmp);
    double lo, hi;
    if (m >= 3 && xs[m - 1] > xs[0] && cluster_split(xs, m, &lo, &hi) >= 2 &&
        hi - lo <= PLOT_ZOOM_SHARE * (xs[m - 1] - xs[0])) {
        range[0] = lo, range[1] = hi, range[2] = INFINITY, range[3] = -INFINITY;
        for (int i = 0; i < n; i++)
            if (isfinite(p[i].y) && p[i].x >= lo && p[i].x <= hi)
                range[2] = fmin(range[2], p[i].y), range[3] = fmax(range[3], p[i].y);
        zoom = 1;
    }
    free(xs);
    return zoom;
}
