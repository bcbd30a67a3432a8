// tests/test_safetensors.c: common/safetensors. Round trips (f32 bit-exact, f16/bf16 rounded,
// sharded, a tensor larger than a shard), the conversions against references computed another
// way (every 16-bit pattern; nearest-even rounding of f32 at ties, subnormals, overflow, NaN),
// agreement with a hand-written numpy reader and writer (tests/st_ref.py) in both directions,
// and one refusal per malformed-file class, each naming the file and what is wrong.
#define _GNU_SOURCE // nftw
#include "common/safetensors.h"
#include "tests/testutil.h"
#include <float.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Whether got is want, -0 and +0 told apart, any NaN for a NaN.
static int same_value(float got, double want) {
    if (isnan(want)) return isnan(got);
    return (double)got == want && !signbit(got) == !signbit(want);
}

// Mismatches are counted and the first described, then asserted once: a Check assertion in a
// loop of millions costs a message to the parent process each.
typedef struct {
    int count;
    char first[256];
} Misses;

#define MISS(m, ...)                                                                               \
    do {                                                                                           \
        if ((m)->count++ == 0) snprintf((m)->first, sizeof((m)->first), __VA_ARGS__);              \
    } while (0)

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(path);
}

// A fresh folder under the test scratch folder (what was there removed).
static const char *fresh_dir(const char *name) {
    const char *dir = test_tmp_path(name);
    if (exists(dir)) ck_assert_int_eq(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    return dir;
}

static const char *join(const char *dir, const char *name) {
    static char buf[4][4200];
    static int next = 0;
    char *p = buf[next++ % 4], tmp[4200]; // dir may be an earlier result: format apart
    snprintf(tmp, sizeof(tmp), "%s/%s", dir, name);
    memcpy(p, tmp, sizeof(tmp));
    return p;
}

static float *random_floats(size_t n, uint64_t seed) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    Rng r = rng_init(seed);
    fill_uniform(x, n, &r, -3.0f, 3.0f);
    return x;
}

static int64_t numel_of(const StWriteTensor *w) {
    int64_t n = 1;
    for (int d = 0; d < w->ndim; d++) n *= w->shape[d];
    return n;
}

static SafeTensors *open_ok(const char *path) {
    char err[1024] = "";
    SafeTensors *st = st_open(path, err, sizeof(err));
    ck_assert_msg(st != NULL, "st_open %s: %s", path, err);
    return st;
}

// Reads tensor name of st (which must be ws's shape, as dtype) into a malloc'd array.
static float *read_checked(const SafeTensors *st, const StWriteTensor *w, StDtype dtype) {
    const StTensor *t = st_find(st, w->name);
    ck_assert_msg(t != NULL, "tensor %s missing", w->name);
    ck_assert_str_eq(t->name, w->name);
    ck_assert_int_eq(t->dtype, dtype);
    ck_assert_int_eq(t->ndim, w->ndim);
    for (int d = 0; d < w->ndim; d++) ck_assert_int_eq(t->shape[d], w->shape[d]);
    ck_assert_int_eq(t->numel, numel_of(w));
    ck_assert_uint_eq(t->end - t->begin, (uint64_t)t->numel * st_dtype_size(dtype));
    float *x = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    char err[1024] = "";
    ck_assert_msg(st_read_f32(st, t, x, err, sizeof(err)) == 0, "%s", err);
    return x;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

// ---- round trips --------------------------------------------------------------------------------

// Four tensors: a scalar, a vector with special values, a 3-D tensor, an empty one.
typedef struct {
    float scalar, vec[9], cube[2 * 3 * 4];
    StWriteTensor w[4];
} Sample;

static void sample_make(Sample *s) {
    s->scalar = -1.25f;
    const float specials[9] = {0.0f,
                               -0.0f,
                               INFINITY,
                               -INFINITY,
                               from_bits(0x7fc00001),
                               from_bits(0xff800001),
                               1e-45f /* f32 subnormal */,
                               FLT_MAX,
                               6.1e-5f /* near f16's smallest normal */};
    memcpy(s->vec, specials, sizeof(specials));
    float *r = random_floats(24, 5);
    memcpy(s->cube, r, sizeof(s->cube));
    free(r);
    s->w[0] = (StWriteTensor){"lm.scale", 0, {0}, &s->scalar};
    s->w[1] = (StWriteTensor){"specials", 1, {9}, s->vec};
    s->w[2] = (StWriteTensor){"blocks.0.cube", 3, {2, 3, 4}, s->cube};
    s->w[3] = (StWriteTensor){"empty", 2, {0, 5}, NULL};
}

START_TEST(roundtrip_f32_bit_exact) {
    Sample s;
    sample_make(&s);
    const char *dir = fresh_dir("st-f32");
    char err[1024] = "";
    ck_assert_msg(st_write(dir, s.w, 4, ST_F32, 0, err, sizeof(err)) == 0, "%s", err);
    ck_assert(exists(join(dir, "model.safetensors")));
    ck_assert(!exists(join(dir, "model.safetensors.index.json")));
    // the folder and the file itself open alike; tensors come in the order written
    const char *paths[2] = {dir, join(dir, "model.safetensors")};
    for (int p = 0; p < 2; p++) {
        SafeTensors *st = open_ok(paths[p]);
        ck_assert_int_eq(st_count(st), 4);
        for (int i = 0; i < 4; i++) {
            ck_assert_str_eq(st_tensor(st, i)->name, s.w[i].name);
            ck_assert_int_eq(st_tensor(st, i)->shard, 0);
            float *x = read_checked(st, &s.w[i], ST_F32);
            ck_assert_msg(memcmp(x, s.w[i].data ? s.w[i].data : x, (size_t)numel_of(&s.w[i]) * 4) ==
                              0,
                          "tensor %s differs", s.w[i].name);
            free(x);
        }
        ck_assert_ptr_null(st_find(st, "absent"));
        ck_assert_ptr_null(st_tensor(st, 4));
        st_close(st);
    }
}
END_TEST

// The file's bytes: header length aligned, metadata, data right after the header in order.
START_TEST(written_layout) {
    Sample s;
    sample_make(&s);
    const char *dir = fresh_dir("st-layout");
    char err[1024] = "";
    ck_assert_msg(st_write(dir, s.w, 4, ST_BF16, 0, err, sizeof(err)) == 0, "%s", err);
    FILE *f = fopen(join(dir, "model.safetensors"), "rb");
    unsigned char len8[8];
    ck_assert_uint_eq(fread(len8, 1, 8, f), 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    ck_assert_uint_eq(n % 8, 0);
    char *h = calloc(n + 1, 1);
    ck_assert_uint_eq(fread(h, 1, n, f), n);
    fseek(f, 0, SEEK_END);
    ck_assert_uint_eq((uint64_t)ftell(f), 8 + n + (1 + 9 + 24) * 2);
    fclose(f);
    const char *head = "{\"__metadata__\":{\"format\":\"pt\"},\"lm.scale\":{\"dtype\":\"BF16\","
                       "\"shape\":[],\"data_offsets\":[0,2]},";
    ck_assert_msg(strncmp(h, head, strlen(head)) == 0, "%s", h);
    ck_assert_ptr_nonnull(strstr(h, "\"empty\":{\"dtype\":\"BF16\",\"shape\":[0,5],"
                                    "\"data_offsets\":[68,68]}}"));
    ck_assert_msg(strspn(strrchr(h, '}') + 1, " ") == strlen(strrchr(h, '}') + 1), "padding");
    free(h);
    // every header length pads to a multiple of 8, with spaces after the JSON
    float one = 1.0f;
    for (int k = 1; k <= 8; k++) {
        char name[16] = "wwwwwwww";
        name[k] = '\0';
        StWriteTensor w = {name, 1, {1}, &one};
        ck_assert_msg(st_write(dir, &w, 1, ST_F32, 0, err, sizeof(err)) == 0, "%s", err);
        size_t size;
        unsigned char *b = slurp(join(dir, "model.safetensors"), &size);
        uint64_t len = 0;
        for (int i = 7; i >= 0; i--) len = len << 8 | b[i];
        ck_assert_msg(len % 8 == 0 && size == 8 + len + 4, "name of %d: header of %d bytes", k,
                      (int)len);
        size_t json_len = 0;
        for (size_t i = 8; i < 8 + len; i++)
            if (b[i] != ' ') json_len = i - 8 + 1;
        ck_assert_int_eq(b[8 + json_len - 1], '}');
        ck_assert_uint_lt(len - json_len, 8);
        free(b);
    }
}
END_TEST

// The reference rounding of x to a 16-bit format, by search: val(h) is the value of code h
// (0 <= h <= inf_code, increasing; val(inf_code) is the first power of two past the largest
// finite, where IEEE's unbounded-exponent rounding puts the overflow threshold). Ties go to
// the even code. Any finite x; the sign is the caller's.
static uint16_t round_ref(double x, double (*val)(uint16_t), uint16_t inf_code) {
    if (x >= val(inf_code)) return inf_code;
    uint16_t lo = 0, hi = inf_code; // val(lo) <= x < val(hi)
    while (hi - lo > 1) {
        uint16_t mid = (uint16_t)((lo + hi) / 2);
        if (val(mid) <= x)
            lo = mid;
        else
            hi = mid;
    }
    double mid = (val(lo) + val(hi)) / 2; // exact: both have short mantissas
    if (x < mid) return lo;
    if (x > mid) return hi;
    return (lo & 1) ? hi : lo;
}

// Values of non-negative codes computed with ldexp (not bit shifts), NaN for NaN codes.
static double f16_val(uint16_t h) {
    int e = h >> 10 & 0x1f, m = h & 0x3ff;
    if (e == 31) return m ? NAN : 65536.0; // inf stands for 2^16 in round_ref
    return e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
}

static double bf16_val(uint16_t h) {
    int e = h >> 7 & 0xff, m = h & 0x7f;
    if (e == 255) return m ? NAN : ldexp(1.0, 128);
    return e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
}

// The value of a code with its sign, inf as inf.
static double signed_val(uint16_t h, double (*val)(uint16_t), uint16_t inf_code) {
    uint16_t a = h & 0x7fff;
    double v = a == inf_code ? INFINITY : val(a);
    return (h & 0x8000) ? -v : v;
}

static uint16_t to_ref(float f, double (*val)(uint16_t), uint16_t inf_code) {
    uint16_t sign = (uint16_t)(bits(f) >> 16 & 0x8000);
    return sign | round_ref(fabs((double)f), val, inf_code);
}

// Random values of every magnitude f16 and bf16 care about (and beyond), as a round trip's input.
static float *wide_floats(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    Rng r = rng_init(seed);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)rng_u64(&r);
        x[i] = isnan(from_bits(u)) ? from_bits(u & 0xff7fffff) : from_bits(u);
        if (i % 3 == 0) x[i] = ldexpf((float)(u % 4096) / 64.0f, (int)(u >> 20 & 63) - 40);
    }
    x[0] = NAN, x[1] = 70000.0f, x[2] = -1e-30f;
    return x;
}

static void roundtrip_16(StDtype dtype, const char *name) {
    enum { N = 40000 }; // over two of the 16384-element chunks of reading and writing
    float *x = wide_floats(N, dtype == ST_F16 ? 21 : 22);
    StWriteTensor w = {"w", 2, {200, 200}, x};
    const char *dir = fresh_dir(name);
    char err[1024] = "";
    ck_assert_msg(st_write(dir, &w, 1, dtype, 0, err, sizeof(err)) == 0, "%s", err);
    SafeTensors *st = open_ok(dir);
    float *y = read_checked(st, &w, dtype);
    double (*val)(uint16_t) = dtype == ST_F16 ? f16_val : bf16_val;
    uint16_t inf_code = dtype == ST_F16 ? 0x7c00 : 0x7f80;
    int nans = 0;
    Misses m = {0};
    for (int i = 0; i < N; i++) {
        nans += isnan(x[i]) != 0;
        double want = isnan(x[i]) ? NAN : signed_val(to_ref(x[i], val, inf_code), val, inf_code);
        if (!same_value(y[i], want) || (isnan(x[i]) && !signbit(x[i]) != !signbit(y[i])))
            MISS(&m, "%s[%d]: %.9g read back as %.9g, want %.9g", st_dtype_name(dtype), i, x[i],
                 y[i], want);
    }
    ck_assert_msg(m.count == 0, "%d values wrong; first %s", m.count, m.first);
    ck_assert_int_ge(nans, 1);
    if (dtype == ST_F16) ck_assert(isinf(y[1])); // 70000 overflows f16
    st_close(st);
    free(x), free(y);
}

START_TEST(roundtrip_bf16_rounded) {
    roundtrip_16(ST_BF16, "st-bf16");
}
END_TEST

START_TEST(roundtrip_f16_rounded) {
    roundtrip_16(ST_F16, "st-f16");
}
END_TEST

// Tensors of 100 floats and shard_bytes of 800: two per shard.
START_TEST(sharded_three_shards) {
    enum { T = 5, N = 100 };
    float *x = random_floats(T * N, 31);
    StWriteTensor w[T];
    char names[T][16];
    for (int i = 0; i < T; i++) {
        snprintf(names[i], sizeof(names[i]), "layer.%d", i);
        w[i] = (StWriteTensor){names[i], 2, {10, 10}, x + i * N};
    }
    const char *dir = fresh_dir("st-sharded");
    char err[1024] = "";
    // a single-file model first: the sharded write must replace it, not sit beside it
    ck_assert_msg(st_write(dir, w, T, ST_F32, 0, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(st_write(dir, w, T, ST_F32, 800, err, sizeof(err)) == 0, "%s", err);
    ck_assert(!exists(join(dir, "model.safetensors")));
    for (int s = 1; s <= 3; s++) {
        char shard[64];
        snprintf(shard, sizeof(shard), "model-%05d-of-00003.safetensors", s);
        ck_assert_msg(exists(join(dir, shard)), "%s missing", shard);
    }
    // the index as transformers writes it
    json_error_t je;
    json_t *idx = json_load_file(join(dir, "model.safetensors.index.json"), 0, &je);
    ck_assert_msg(idx != NULL, "%s", je.text);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(idx, "metadata"), "total_size")),
        T * N * 4);
    json_t *map = json_object_get(idx, "weight_map");
    ck_assert_int_eq(json_object_size(map), T);
    const char *want[T] = {"model-00001-of-00003.safetensors", "model-00001-of-00003.safetensors",
                           "model-00002-of-00003.safetensors", "model-00002-of-00003.safetensors",
                           "model-00003-of-00003.safetensors"};
    for (int i = 0; i < T; i++)
        ck_assert_str_eq(json_string_value(json_object_get(map, names[i])), want[i]);
    json_decref(idx);

    SafeTensors *st = open_ok(dir);
    ck_assert_int_eq(st_count(st), T);
    for (int i = 0; i < T; i++) {
        const StTensor *t = st_tensor(st, i);
        ck_assert_str_eq(t->name, names[i]);
        ck_assert_int_eq(t->shard, i / 2);
        ck_assert_uint_eq(t->begin, (uint64_t)(i % 2) * N * 4);
        float *y = read_checked(st, &w[i], ST_F32);
        ck_assert_int_eq(memcmp(y, w[i].data, N * 4), 0);
        free(y);
    }
    st_close(st);
    // and back to one file: the index goes
    ck_assert_msg(st_write(dir, w, T, ST_F32, 1 << 20, err, sizeof(err)) == 0, "%s", err);
    ck_assert(!exists(join(dir, "model.safetensors.index.json")));
    st = open_ok(dir);
    ck_assert_int_eq(st_count(st), T);
    st_close(st);
    free(x);
}
END_TEST

START_TEST(tensor_larger_than_shard_goes_alone) {
    float *x = random_floats(1300, 41);
    StWriteTensor w[4] = {{"a", 1, {100}, x},
                          {"big", 2, {10, 100}, x + 100},
                          {"c", 1, {100}, x + 1100},
                          {"d", 1, {100}, x + 1200}};
    const char *dir = fresh_dir("st-big");
    char err[1024] = "";
    // 1000-byte shards: [a] [big (4000 bytes)] [c d]
    ck_assert_msg(st_write(dir, w, 4, ST_F32, 1000, err, sizeof(err)) == 0, "%s", err);
    SafeTensors *st = open_ok(dir);
    int shard[4];
    for (int i = 0; i < 4; i++) {
        shard[i] = st_find(st, w[i].name)->shard;
        float *y = read_checked(st, &w[i], ST_F32);
        ck_assert_int_eq(memcmp(y, w[i].data, (size_t)numel_of(&w[i]) * 4), 0);
        free(y);
    }
    ck_assert_int_eq(shard[0], 0);
    ck_assert_int_eq(shard[1], 1);
    ck_assert_int_eq(shard[2], 2);
    ck_assert_int_eq(shard[3], 2);
    ck_assert(exists(join(dir, "model-00003-of-00003.safetensors")));
    st_close(st);
    // alone, it is one shard: a single file, as transformers writes it
    const char *one = fresh_dir("st-big-one");
    ck_assert_msg(st_write(one, &w[1], 1, ST_F32, 1000, err, sizeof(err)) == 0, "%s", err);
    ck_assert(exists(join(one, "model.safetensors")));
    ck_assert(!exists(join(one, "model.safetensors.index.json")));
    free(x);
}
END_TEST

// No tensors: a header of metadata alone; an index naming no shard.
START_TEST(empty_models) {
    const char *dir = fresh_dir("st-empty");
    char err[1024] = "";
    ck_assert_msg(st_write(dir, NULL, 0, ST_F16, 0, err, sizeof(err)) == 0, "%s", err);
    SafeTensors *st = open_ok(dir);
    ck_assert_int_eq(st_count(st), 0);
    ck_assert_ptr_null(st_find(st, "w"));
    st_close(st);
    unlink(join(dir, "model.safetensors"));
    FILE *f = fopen(join(dir, "model.safetensors.index.json"), "w");
    fputs("{\"metadata\": {\"total_size\": 0}, \"weight_map\": {}}", f);
    fclose(f);
    st = open_ok(dir);
    ck_assert_int_eq(st_count(st), 0);
    st_close(st);
}
END_TEST

START_TEST(write_errors) {
    float x[4] = {0};
    const char *dir = fresh_dir("st-write-errors");
    char err[1024];
    struct {
        StWriteTensor w[2];
        int n;
        const char *words;
    } cases[] = {
        {{{"a", 1, {4}, x}, {"a", 1, {4}, x}}, 2, "\"a\" given twice"},
        {{{"a", 9, {1, 1, 1, 1, 1, 1, 1, 1}, x}}, 1, "9 dims"},
        {{{"a", 1, {-4}, x}}, 1, "shape[0] is negative"},
        {{{"__metadata__", 1, {4}, x}}, 1, "\"__metadata__\" is not allowed"},
        {{{"a", 1, {4}, NULL}}, 1, "no data"},
        {{{"bad\xff", 1, {4}, x}}, 1, "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        ck_assert_int_eq(st_write(dir, cases[i].w, cases[i].n, ST_F32, 0, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, cases[i].words), "case %zu: %s", i, err);
    }
    // a folder that cannot be made: under a regular file
    StWriteTensor ok = {"a", 1, {4}, x};
    FILE *f = fopen(join(dir, "file"), "w");
    fclose(f);
    ck_assert_int_eq(st_write(join(dir, "file/sub"), &ok, 1, ST_F32, 0, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "file/sub") && strstr(err, "cannot create"), "%s", err);
}
END_TEST

// A file cut short after it was opened: the read fails naming the tensor.
START_TEST(read_after_truncation_fails) {
    float *x = random_floats(64, 51);
    StWriteTensor w = {"w", 1, {64}, x};
    const char *dir = fresh_dir("st-trunc-read");
    char err[1024] = "";
    ck_assert_msg(st_write(dir, &w, 1, ST_F16, 0, err, sizeof(err)) == 0, "%s", err);
    SafeTensors *st = open_ok(dir);
    const char *path = join(dir, "model.safetensors");
    struct stat sb;
    stat(path, &sb);
    ck_assert_int_eq(truncate(path, sb.st_size - 10), 0);
    float y[64];
    ck_assert_int_eq(st_read_f32(st, st_find(st, "w"), y, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, path) && strstr(err, "\"w\"") && strstr(err, "ends before"), "%s",
                  err);
    st_close(st);
    free(x);
}
END_TEST

// ---- conversions --------------------------------------------------------------------------------

// Every pattern widened by wide() is the value val says, a NaN a NaN of the same sign.
static void widening_check(float (*wide)(uint16_t), double (*val)(uint16_t), uint16_t inf_code,
                           const char *what) {
    Misses m = {0};
    for (uint32_t h = 0; h < 65536; h++) {
        double want = signed_val((uint16_t)h, val, inf_code);
        float got = wide((uint16_t)h);
        if (!same_value(got, want) || !signbit(got) != !(h & 0x8000))
            MISS(&m, "%s %#06x: got %.9g want %.9g", what, h, got, want);
    }
    ck_assert_msg(m.count == 0, "%d patterns wrong; first %s", m.count, m.first);
}

START_TEST(f16_to_f32_every_pattern) {
    widening_check(st_f16_to_f32, f16_val, 0x7c00, "f16");
    // exactness at the ends: the smallest subnormal and the largest finite
    ck_assert_float_eq(st_f16_to_f32(0x0001), ldexpf(1.0f, -24));
    ck_assert_float_eq(st_f16_to_f32(0x7bff), 65504.0f);
}
END_TEST

START_TEST(bf16_to_f32_every_pattern) {
    widening_check(st_bf16_to_f32, bf16_val, 0x7f80, "bf16");
}
END_TEST

static int is_nan16(uint16_t h, uint16_t inf_code) {
    return (h & inf_code) == inf_code && (h & (uint16_t) ~(inf_code | 0x8000)) != 0;
}

START_TEST(f32_to_f16_rounding) {
    struct {
        float x;
        uint16_t want;
    } cases[] = {
        {1.0f, 0x3c00},
        {1.0f + 0x1p-11f, 0x3c00},            // halfway 1 .. 1+2^-10: to even (down)
        {1.0f + 3 * 0x1p-11f, 0x3c02},        // halfway 0x3c01 .. 0x3c02: to even (up)
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, // above halfway
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00}, // halfway to 2^16: to even, which is inf
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {FLT_MAX, 0x7c00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-24f, 0x0001},            // smallest subnormal
        {0x1p-25f, 0x0000},            // halfway 0 .. 2^-24: to even (zero)
        {0x1p-25f + 0x1p-40f, 0x0001}, // above halfway
        {3 * 0x1p-25f, 0x0002},        // halfway 1 .. 2 units: to even
        {0x1p-26f, 0x0000},            //
        {0x1p-14f - 0x1p-25f, 0x0400}, // halfway 0x3ff .. 0x400: to even, the smallest normal
        {0x1p-14f, 0x0400},            //
        {1023 * 0x1p-24f, 0x03ff},     // largest subnormal
        {-0x1p-24f, 0x8001},           //
        {-0.0f, 0x8000},               //
        {1e-45f, 0x0000},              // f32 subnormal
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(st_f32_to_f16(cases[i].x) == cases[i].want, "%a -> %#06x, want %#06x",
                      cases[i].x, st_f32_to_f16(cases[i].x), cases[i].want);
    uint32_t nans[] = {0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffc00000};
    for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        uint16_t h = st_f32_to_f16(from_bits(nans[i]));
        ck_assert_msg(is_nan16(h, 0x7c00), "NaN %#x -> %#06x", nans[i], h);
        ck_assert_int_eq(h >> 15, nans[i] >> 31);
    }
}
END_TEST

START_TEST(f32_to_bf16_rounding) {
    struct {
        uint32_t x;
        uint16_t want;
    } cases[] = {
        {0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, // halfway: to even (down)
        {0x3f818000, 0x3f82},                       // halfway: to even (up)
        {0x3f808001, 0x3f81},                       // above halfway
        {0x7f7f7fff, 0x7f7f},                       // just below halfway to overflow
        {0x7f7f8000, 0x7f80},                       // halfway past the largest finite: inf
        {0x7f7fffff, 0x7f80},                       // FLT_MAX: inf
        {0xff7fffff, 0xff80}, {0x7f800000, 0x7f80}, {0x00008000, 0x0000}, // subnormal tie: even
        {0x00018000, 0x0002}, {0x00008001, 0x0001}, {0x80000000, 0x8000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(st_f32_to_bf16(from_bits(cases[i].x)) == cases[i].want,
                      "%#x -> %#06x, want %#06x", cases[i].x, st_f32_to_bf16(from_bits(cases[i].x)),
                      cases[i].want);
    uint32_t nans[] = {0x7fc00000, 0x7f800001, 0xff800001, 0x7f80ffff, 0xffc00000};
    for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        uint16_t h = st_f32_to_bf16(from_bits(nans[i]));
        ck_assert_msg(is_nan16(h, 0x7f80), "NaN %#x -> %#06x", nans[i], h);
        ck_assert_int_eq(h >> 15, nans[i] >> 31);
    }
}
END_TEST

// Narrowing agrees with the search reference over random patterns and around every exponent.
START_TEST(f32_narrowing_matches_reference) {
    Rng r = rng_init(61);
    Misses m = {0};
    for (int i = 0; i < (1 << 19); i++) {
        uint32_t u = (uint32_t)rng_u64(&r);
        if (i & 1) // near a binade's start or a 16-bit code's halfway point
            u = (u & 0xff800000) | ((i & 2) ? (u & 0x3) << 12 : (u & 0xf)) |
                ((i & 4) ? 0x1000 : 0) | ((i & 8) ? 0x8000 : 0);
        float x = from_bits(u);
        if (isnan(x)) continue;
        uint16_t h = st_f32_to_f16(x), want = to_ref(x, f16_val, 0x7c00);
        if (h != want) MISS(&m, "f16 of %#x: %#06x want %#06x", u, h, want);
        h = st_f32_to_bf16(x), want = to_ref(x, bf16_val, 0x7f80);
        if (h != want) MISS(&m, "bf16 of %#x: %#06x want %#06x", u, h, want);
    }
    // widening then narrowing is the identity on every non-NaN code
    for (uint32_t h = 0; h < 65536; h++) {
        if (!is_nan16((uint16_t)h, 0x7c00) && st_f32_to_f16(st_f16_to_f32((uint16_t)h)) != h)
            MISS(&m, "f16 %#06x does not come back", h);
        if (!is_nan16((uint16_t)h, 0x7f80) && st_f32_to_bf16(st_bf16_to_f32((uint16_t)h)) != h)
            MISS(&m, "bf16 %#06x does not come back", h);
    }
    ck_assert_msg(m.count == 0, "%d conversions wrong; first %s", m.count, m.first);
}
END_TEST

START_TEST(dtype_names) {
    StDtype d;
    const StDtype all[3] = {ST_F32, ST_F16, ST_BF16};
    const char *names[3] = {"F32", "F16", "BF16"};
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(st_dtype_name(all[i]), names[i]);
        ck_assert_int_eq(st_dtype_parse(names[i], &d), 0);
        ck_assert_int_eq(d, all[i]);
    }
    ck_assert_int_eq(st_dtype_parse("f32", &d), -1);
    ck_assert_int_eq(st_dtype_parse("I32", &d), -1);
}
END_TEST

// ---- the numpy reference ------------------------------------------------------------------------

// Reads the "bits" of every tensor in expect (JSON from st_ref.py write) and compares.
static void compare_expected(const SafeTensors *st, const char *expect) {
    json_error_t je;
    json_t *doc = json_load_file(expect, 0, &je);
    ck_assert_msg(doc != NULL, "%s: %s", expect, je.text);
    ck_assert_int_eq(st_count(st), (int)json_object_size(doc));
    const char *name;
    json_t *e;
    json_object_foreach(doc, name, e) {
        const StTensor *t = st_find(st, name);
        ck_assert_msg(t != NULL, "tensor %s missing", name);
        StDtype d;
        ck_assert_int_eq(st_dtype_parse(json_string_value(json_object_get(e, "dtype")), &d), 0);
        ck_assert_int_eq(t->dtype, d);
        json_t *shape = json_object_get(e, "shape"), *b = json_object_get(e, "bits");
        ck_assert_int_eq(t->ndim, (int)json_array_size(shape));
        for (int k = 0; k < t->ndim; k++)
            ck_assert_int_eq(t->shape[k], json_integer_value(json_array_get(shape, (size_t)k)));
        ck_assert_int_eq(t->numel, (int64_t)json_array_size(b));
        float *x = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        char err[1024] = "";
        ck_assert_msg(st_read_f32(st, t, x, err, sizeof(err)) == 0, "%s", err);
        Misses m = {0};
        for (int64_t i = 0; i < t->numel; i++) {
            uint32_t want = (uint32_t)json_integer_value(json_array_get(b, (size_t)i));
            if (bits(x[i]) != want)
                MISS(&m, "%s[%ld]: %#x, numpy says %#x", name, (long)i, bits(x[i]), want);
        }
        ck_assert_msg(m.count == 0, "%s: %d values differ; first %s", expect, m.count, m.first);
        free(x);
    }
    json_decref(doc);
}

START_TEST(numpy_writes_we_read) {
    const char *dir = fresh_dir("st-ref-read");
    char args[10000];
    snprintf(args, sizeof(args), "write %s 1 2 3", join(dir, "ref"));
    ck_assert_int_eq(run_torch_script("st_ref.py", args), 0);
    for (int seed = 1; seed <= 3; seed++) {
        char file[64], expect[64];
        snprintf(file, sizeof(file), "ref-%d.safetensors", seed);
        snprintf(expect, sizeof(expect), "ref-%d.json", seed);
        SafeTensors *st = open_ok(join(dir, file));
        compare_expected(st, join(dir, expect));
        st_close(st);
    }
}
END_TEST

// The same tensors as F32 (the source) and as dtype, sharded or not.
static void write_pair(const char *src, const char *dir, StDtype dtype, uint64_t shard_bytes,
                       const float *data) {
    StWriteTensor w[5] = {{"scalar", 0, {0}, data},
                          {"wide", 2, {30, 50}, data + 1},
                          {"cube", 3, {4, 5, 6}, data + 1501},
                          {"empty", 1, {0}, NULL},
                          {"tail", 1, {99}, data + 1621}};
    char err[1024] = "";
    ck_assert_msg(st_write(src, w, 5, ST_F32, 0, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(st_write(dir, w, 5, dtype, shard_bytes, err, sizeof(err)) == 0, "%s", err);
}

START_TEST(we_write_numpy_reads) {
    float *x = wide_floats(1720, 71);
    const char *top = fresh_dir("st-ref-write");
    char src[4096], args[10000];
    snprintf(src, sizeof(src), "%s", join(top, "src"));
    size_t k = (size_t)snprintf(args, sizeof(args), "check %s", src);
    const StDtype dtypes[3] = {ST_F32, ST_F16, ST_BF16};
    for (int i = 0; i < 3; i++)
        for (int sharded = 0; sharded < 2; sharded++) {
            char name[32];
            snprintf(name, sizeof(name), "%s-%s", st_dtype_name(dtypes[i]),
                     sharded ? "sharded" : "single");
            const char *dir = join(top, name);
            write_pair(src, dir, dtypes[i], sharded ? 1500 : 0, x);
            ck_assert_int_eq(exists(join(dir, "model.safetensors.index.json")), sharded);
            k += (size_t)snprintf(args + k, sizeof(args) - k, " %s %s", dir,
                                  st_dtype_name(dtypes[i]));
        }
    ck_assert_uint_lt(k, sizeof(args));
    ck_assert_msg(run_torch_script("st_ref.py", args) == 0, "st_ref.py %s", args);
    // the check can fail: other values under the same names
    float *y = wide_floats(1720, 72);
    write_pair(join(top, "other-src"), join(top, "other"), ST_F16, 0, y);
    snprintf(args, sizeof(args), "check %s %s F16 >/dev/null", src, join(top, "other"));
    ck_assert_int_eq(run_torch_script("st_ref.py", args), 1);
    free(x), free(y);
}
END_TEST

// ---- malformed files ----------------------------------------------------------------------------

// Writes a file: the 8-byte length len, header text (strlen), then data_bytes zero bytes.
static void write_st_len(const char *path, uint64_t len, const char *header, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_st(const char *path, const char *header, size_t data_bytes) {
    write_st_len(path, strlen(header), header, data_bytes);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

// st_open(path) fails with a message naming `names` (the file or folder) and holding every
// |-separated word of `words`.
static void refused(const char *path, const char *names, const char *words) {
    char err[1024] = "";
    SafeTensors *st = st_open(path, err, sizeof(err));
    ck_assert_msg(st == NULL, "%s opened; want a refusal with %s", path, words);
    ck_assert_msg(strstr(err, names), "message does not name %s: %s", names, err);
    char w[512];
    snprintf(w, sizeof(w), "%s", words);
    for (char *s = strtok(w, "|"); s; s = strtok(NULL, "|"))
        ck_assert_msg(strstr(err, s), "message lacks \"%s\": %s", s, err);
}

// A header around one tensor entry named "w".
static void one_tensor(const char *path, const char *entry, size_t data_bytes) {
    char h[1024];
    snprintf(h, sizeof(h), "{\"w\": %s}", entry);
    write_st(path, h, data_bytes);
}

START_TEST(refuses_short_file) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    spit(path, (const unsigned char *)"\x05\x00\x00", 3);
    refused(path, path, "3 bytes|shorter than the 8-byte header length");
}
END_TEST

START_TEST(refuses_header_length_zero) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    write_st_len(path, 0, "", 16);
    refused(path, path, "header length is 0");
}
END_TEST

START_TEST(refuses_header_length_beyond_file) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    write_st_len(path, 40, "{}", 0);
    refused(path, path, "header length 40|beyond the end of the file|2 bytes");
}
END_TEST

START_TEST(refuses_header_length_absurd) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    write_st_len(path, 200000000, "{}", 0);
    refused(path, path, "header length 200000000|absurd|100 MB");
}
END_TEST

START_TEST(refuses_header_not_json) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    write_st(path, "{\"w\": {\"dtype\": \"F32\",\n  \"shape\" [1]}}", 0);
    refused(path, path, "header is not valid JSON|line 2|column");
    write_st(path, "{\"w\": 1, \"w\": 2}", 0);
    refused(path, path, "not valid JSON|duplicate");
}
END_TEST

START_TEST(refuses_header_not_object) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    write_st(path, "[1, 2]", 0);
    refused(path, path, "header is not a JSON object");
}
END_TEST

START_TEST(refuses_entry_not_object) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "[\"F32\"]", 0);
    refused(path, path, "tensor \"w\"|entry is not an object");
}
END_TEST

START_TEST(refuses_entry_missing_key) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "{\"shape\": [1], \"data_offsets\": [0, 4]}", 4);
    refused(path, path, "tensor \"w\"|missing \"dtype\"");
    one_tensor(path, "{\"dtype\": \"F32\", \"data_offsets\": [0, 4]}", 4);
    refused(path, path, "tensor \"w\"|missing \"shape\"");
    one_tensor(path, "{\"dtype\": \"F32\", \"shape\": [1]}", 4);
    refused(path, path, "tensor \"w\"|missing \"data_offsets\"");
}
END_TEST

START_TEST(refuses_dtype_not_string) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "{\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}", 4);
    refused(path, path, "tensor \"w\"|\"dtype\" is not a string");
}
END_TEST

START_TEST(refuses_dtype_unknown) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "{\"dtype\": \"F33\", \"shape\": [1], \"data_offsets\": [0, 4]}", 4);
    refused(path, path, "unknown dtype \"F33\" for tensor \"w\"");
}
END_TEST

START_TEST(refuses_dtype_unsupported) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    const char *dtypes[] = {"I8", "I32", "I64", "F64", "BOOL", "U8", "F8_E4M3"};
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
        char entry[256], words[256];
        snprintf(entry, sizeof(entry),
                 "{\"dtype\": \"%s\", \"shape\": [1], \"data_offsets\": [0, 1]}", dtypes[i]);
        one_tensor(path, entry, 8);
        snprintf(words, sizeof(words),
                 "unsupported dtype %s for tensor \"w\"; layercake reads F32, F16, BF16",
                 dtypes[i]);
        refused(path, path, words);
    }
}
END_TEST

START_TEST(refuses_shape_invalid) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "{\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}", 16);
    refused(path, path, "tensor \"w\"|\"shape\" is not an array");
    const char *shapes[] = {"[-1]", "[2, 1.5]", "[\"4\"]", "[null]"};
    const char *at[] = {"shape[0]", "shape[1]", "shape[0]", "shape[0]"};
    for (int i = 0; i < 4; i++) {
        char entry[256], words[256];
        snprintf(entry, sizeof(entry),
                 "{\"dtype\": \"F32\", \"shape\": %s, \"data_offsets\": [0, 0]}", shapes[i]);
        one_tensor(path, entry, 0);
        snprintf(words, sizeof(words), "tensor \"w\"|%s is not a non-negative integer", at[i]);
        refused(path, path, words);
    }
}
END_TEST

START_TEST(refuses_shape_too_many_dims) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path,
               "{\"dtype\": \"F32\", \"shape\": [1, 1, 1, 1, 1, 1, 1, 1, 1], \"data_offsets\": [0, "
               "4]}",
               4);
    refused(path, path, "tensor \"w\"|shape has 9 dims, more than 8");
}
END_TEST

START_TEST(refuses_offsets_invalid) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    const char *offs[] = {"[0]", "[0, 4, 8]", "[\"0\", 4]", "[0, 4.0]", "[-4, 0]", "4", "null"};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        char entry[256];
        snprintf(entry, sizeof(entry), "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": %s}",
                 offs[i]);
        one_tensor(path, entry, 8);
        refused(path, path, "tensor \"w\"|\"data_offsets\" is not two non-negative integers");
    }
}
END_TEST

START_TEST(refuses_offsets_reversed) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}", 8);
    refused(path, path, "tensor \"w\"|data_offsets [8, 4] end before they begin");
}
END_TEST

START_TEST(refuses_offsets_beyond_data) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}", 10);
    refused(path, path, "tensor \"w\"|end 12 is beyond the data section (10 bytes)");
}
END_TEST

START_TEST(refuses_size_mismatch) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    one_tensor(path, "{\"dtype\": \"BF16\", \"shape\": [2, 3], \"data_offsets\": [0, 8]}", 16);
    refused(path, path, "tensor \"w\"|span 8 bytes|shape [2, 3] of BF16 needs 12");
}
END_TEST

START_TEST(refuses_overlap) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    write_st(path,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"z\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 32]},"
             " \"b\": {\"dtype\": \"F16\", \"shape\": [6], \"data_offsets\": [4, 16]}}",
             32);
    refused(path, path, "\"a\" [0, 8)|\"b\" [4, 16)|overlap");
    // a range inside another
    write_st(path,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [0, 32]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]},"
             " \"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [16, 20]}}",
             32);
    refused(path, path, "\"a\" [0, 32)|\"b\" [8, 12)|overlap");
    // empty ranges overlap nothing: this one opens
    write_st(path,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]}}",
             8);
    st_close(open_ok(path));
}
END_TEST

START_TEST(refuses_metadata_not_strings) {
    const char *path = join(fresh_dir("st-bad"), "x.safetensors");
    write_st(path, "{\"__metadata__\": {\"format\": \"pt\", \"step\": 3}}", 0);
    refused(path, path, "\"__metadata__\" key \"step\" is not a string");
    write_st(path, "{\"__metadata__\": [\"pt\"]}", 0);
    refused(path, path, "\"__metadata__\" is not an object");
}
END_TEST

START_TEST(refuses_missing_path_and_empty_folder) {
    const char *dir = fresh_dir("st-bad");
    refused(join(dir, "nothing"), join(dir, "nothing"), "cannot open|No such file");
    refused(dir, dir, "no model.safetensors or model.safetensors.index.json");
}
END_TEST

// ---- sharded folders ----------------------------------------------------------------------------

#define ENTRY_W "{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}"

// A folder with shards s1 ("w", "u") and s2 ("v"), and an index with the given weight_map.
static const char *shard_folder(const char *weight_map) {
    const char *dir = fresh_dir("st-bad-shards");
    write_st(join(dir, "s1.safetensors"),
             "{\"w\": " ENTRY_W ", \"u\": {\"dtype\": \"F16\", \"shape\": [4], "
             "\"data_offsets\": [8, 16]}}",
             16);
    write_st(join(dir, "s2.safetensors"), "{\"v\": " ENTRY_W "}", 8);
    char text[1024];
    snprintf(text, sizeof(text), "{\"metadata\": {\"total_size\": 24}, \"weight_map\": %s}",
             weight_map);
    write_text(join(dir, "model.safetensors.index.json"), text);
    return dir;
}

#define GOOD_MAP "{\"w\": \"s1.safetensors\", \"u\": \"s1.safetensors\", \"v\": \"s2.safetensors\"}"

START_TEST(hand_made_shards_open) {
    const char *dir = shard_folder(GOOD_MAP);
    SafeTensors *st = open_ok(dir);
    ck_assert_int_eq(st_count(st), 3);
    ck_assert_str_eq(st_tensor(st, 0)->name, "w"); // s1 first, in data order
    ck_assert_str_eq(st_tensor(st, 1)->name, "u");
    ck_assert_str_eq(st_tensor(st, 2)->name, "v");
    ck_assert_int_eq(st_find(st, "v")->shard, 1);
    st_close(st);
}
END_TEST

START_TEST(refuses_index_not_json) {
    const char *dir = shard_folder(GOOD_MAP);
    const char *index = join(dir, "model.safetensors.index.json");
    write_text(index, "{\"weight_map\": {\n\"w\": \"s1.safetensors\",,}}");
    refused(dir, index, "not valid JSON|line 2|column");
}
END_TEST

START_TEST(refuses_index_without_weight_map) {
    const char *dir = shard_folder(GOOD_MAP);
    const char *index = join(dir, "model.safetensors.index.json");
    write_text(index, "{\"metadata\": {}}");
    refused(dir, index, "no \"weight_map\" object");
    write_text(index, "[]");
    refused(dir, index, "no \"weight_map\" object");
    write_text(index, "{\"weight_map\": {\"w\": 1}}");
    refused(dir, index, "weight_map[\"w\"] is not a string");
}
END_TEST

START_TEST(refuses_index_missing_shard) {
    const char *dir = shard_folder(
        "{\"w\": \"s1.safetensors\", \"u\": \"s1.safetensors\", \"v\": \"s3.safetensors\"}");
    refused(dir, "model.safetensors.index.json", "s3.safetensors|for tensor \"v\"|does not exist");
}
END_TEST

START_TEST(refuses_index_tensor_shard_lacks) {
    const char *dir = shard_folder("{\"w\": \"s1.safetensors\", \"u\": \"s1.safetensors\", \"v\": "
                                   "\"s2.safetensors\", \"ghost\": \"s2.safetensors\"}");
    refused(dir, "model.safetensors.index.json",
            "inconsistent|tensor \"ghost\"|s2.safetensors, which lacks it");
    // listed in the wrong shard
    dir = shard_folder(
        "{\"w\": \"s1.safetensors\", \"u\": \"s2.safetensors\", \"v\": \"s2.safetensors\"}");
    refused(dir, "model.safetensors.index.json",
            "inconsistent|tensor \"u\"|s2.safetensors, which lacks it|it is in s1.safetensors");
}
END_TEST

START_TEST(refuses_index_unlisted_tensor) {
    const char *dir = shard_folder("{\"w\": \"s1.safetensors\", \"v\": \"s2.safetensors\"}");
    refused(dir, "model.safetensors.index.json",
            "index is inconsistent|s1.safetensors holds tensor \"u\"|does not list");
}
END_TEST

START_TEST(refuses_index_path_outside_folder) {
    const char *names[] = {"../s1.safetensors", "sub/s1.safetensors", "/etc/passwd", "..", ""};
    for (int i = 0; i < 5; i++) {
        char map[512], words[512];
        snprintf(map, sizeof(map),
                 "{\"w\": \"s1.safetensors\", \"u\": \"s1.safetensors\", \"v\": \"%s\"}", names[i]);
        const char *dir = shard_folder(map);
        snprintf(words, sizeof(words), "weight_map[\"v\"] names shard \"%s\"|no '/'", names[i]);
        refused(dir, "model.safetensors.index.json", words);
    }
}
END_TEST

START_TEST(refuses_duplicate_across_shards) {
    const char *dir = shard_folder(GOOD_MAP);
    write_st(join(dir, "s2.safetensors"),
             "{\"v\": " ENTRY_W ", \"w\": {\"dtype\": \"F16\", "
             "\"shape\": [4], \"data_offsets\": [8, 16]}}",
             16);
    refused(dir, "tensor \"w\" is in both", "s1.safetensors and|s2.safetensors|duplicate name");
}
END_TEST

START_TEST(refuses_folder_with_both_layouts) {
    const char *dir = shard_folder(GOOD_MAP);
    write_st(join(dir, "model.safetensors"), "{}", 0);
    refused(dir, dir, "holds both model.safetensors and model.safetensors.index.json|stale");
}
END_TEST

// A shard with a bad header inside a sharded folder: the message names that shard.
START_TEST(refuses_bad_shard_naming_it) {
    const char *dir = shard_folder(GOOD_MAP);
    write_st(join(dir, "s2.safetensors"),
             "{\"v\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8);
    refused(dir, "s2.safetensors", "unsupported dtype I64 for tensor \"v\"");
}
END_TEST

// ---- damage ------------------------------------------------------------------------------------

// Every truncation is refused; every byte of the length and header, flipped, is refused or
// opens into tensors whose reads stay inside the file.
START_TEST(truncations_and_header_flips) {
    Sample s;
    sample_make(&s);
    const char *dir = fresh_dir("st-damage");
    char err[1024];
    ck_assert_msg(st_write(dir, s.w, 3, ST_F16, 0, err, sizeof(err)) == 0, "%s", err);
    size_t n;
    unsigned char *b = slurp(join(dir, "model.safetensors"), &n);
    const char *path = join(dir, "damaged.safetensors");
    for (size_t len = 0; len < n; len++) {
        spit(path, b, len);
        refused(path, path, "");
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    int opened = 0;
    float *x = malloc(4096 * sizeof(float));
    for (size_t at = 0; at < 8 + hlen; at++) {
        b[at] ^= 0x5a;
        spit(path, b, n);
        SafeTensors *st = st_open(path, err, sizeof(err));
        if (st) {
            opened++;
            for (int i = 0; i < st_count(st); i++)
                if (st_tensor(st, i)->numel <= 4096)
                    ck_assert_int_eq(st_read_f32(st, st_tensor(st, i), x, err, sizeof(err)), 0);
            st_close(st);
        } else {
            ck_assert_msg(strstr(err, path), "%s", err);
        }
        b[at] ^= 0x5a;
    }
    ck_assert_int_lt(opened, (int)hlen); // most flips break the JSON or a check
    free(x), free(b);
}
END_TEST

// Whether the reference interpreter has numpy: 1; if not, 0 after saying why, unless CI is set.
static int have_numpy(void) {
    char cmd[1024];
    snprintf(
        cmd, sizeof(cmd), // finds numpy without the third of a second importing it takes
        "%s -c 'import importlib.util, sys; sys.exit(not importlib.util.find_spec(\"numpy\"))'",
        LC_PYTHON);
    if (system(cmd) == 0 || getenv("CI")) return 1;
    fprintf(stderr,
            "test_safetensors: %s has no numpy: skipping the reference cross-checks "
            "(apt-get install python3-numpy)\n",
            LC_PYTHON);
    return 0;
}

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *rt = tcase_create("roundtrip");
    tcase_add_test(rt, roundtrip_f32_bit_exact);
    tcase_add_test(rt, written_layout);
    tcase_add_test(rt, roundtrip_bf16_rounded);
    tcase_add_test(rt, roundtrip_f16_rounded);
    tcase_add_test(rt, sharded_three_shards);
    tcase_add_test(rt, tensor_larger_than_shard_goes_alone);
    tcase_add_test(rt, empty_models);
    tcase_add_test(rt, write_errors);
    tcase_add_test(rt, read_after_truncation_fails);
    suite_add_tcase(s, rt);
    TCase *cv = tcase_create("conversions");
    tcase_add_test(cv, f16_to_f32_every_pattern);
    tcase_add_test(cv, bf16_to_f32_every_pattern);
    tcase_add_test(cv, f32_to_f16_rounding);
    tcase_add_test(cv, f32_to_bf16_rounding);
    tcase_add_test(cv, f32_narrowing_matches_reference);
    tcase_add_test(cv, dtype_names);
    suite_add_tcase(s, cv);
    if (have_numpy()) {
        TCase *ref = tcase_create("reference");
        tcase_add_test(ref, numpy_writes_we_read);
        tcase_add_test(ref, we_write_numpy_reads);
        suite_add_tcase(s, ref);
    }
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, refuses_short_file);
    tcase_add_test(bad, refuses_header_length_zero);
    tcase_add_test(bad, refuses_header_length_beyond_file);
    tcase_add_test(bad, refuses_header_length_absurd);
    tcase_add_test(bad, refuses_header_not_json);
    tcase_add_test(bad, refuses_header_not_object);
    tcase_add_test(bad, refuses_entry_not_object);
    tcase_add_test(bad, refuses_entry_missing_key);
    tcase_add_test(bad, refuses_dtype_not_string);
    tcase_add_test(bad, refuses_dtype_unknown);
    tcase_add_test(bad, refuses_dtype_unsupported);
    tcase_add_test(bad, refuses_shape_invalid);
    tcase_add_test(bad, refuses_shape_too_many_dims);
    tcase_add_test(bad, refuses_offsets_invalid);
    tcase_add_test(bad, refuses_offsets_reversed);
    tcase_add_test(bad, refuses_offsets_beyond_data);
    tcase_add_test(bad, refuses_size_mismatch);
    tcase_add_test(bad, refuses_overlap);
    tcase_add_test(bad, refuses_metadata_not_strings);
    tcase_add_test(bad, refuses_missing_path_and_empty_folder);
    tcase_add_test(bad, truncations_and_header_flips);
    suite_add_tcase(s, bad);
    TCase *sh = tcase_create("shards");
    tcase_add_test(sh, hand_made_shards_open);
    tcase_add_test(sh, refuses_index_not_json);
    tcase_add_test(sh, refuses_index_without_weight_map);
    tcase_add_test(sh, refuses_index_missing_shard);
    tcase_add_test(sh, refuses_index_tensor_shard_lacks);
    tcase_add_test(sh, refuses_index_unlisted_tensor);
    tcase_add_test(sh, refuses_index_path_outside_folder);
    tcase_add_test(sh, refuses_duplicate_across_shards);
    tcase_add_test(sh, refuses_folder_with_both_layouts);
    tcase_add_test(sh, refuses_bad_shard_naming_it);
    suite_add_tcase(s, sh);
    return run_suite(s);
}
