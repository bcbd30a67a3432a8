// common/safetensors.c: the safetensors reader (every header claim checked on open, data read
// per tensor with pread) and writer (streamed into a temp file, fsynced, renamed), with the
// fp32 <-> f16/bf16 conversions. docs/safetensors.md is the user's description.
#include "common/safetensors.h"
#include "common/error.h"
#include "common/fs.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes little-endian data in place: a little-endian host only"
#endif

#define ST_HEADER_MAX (100u * 1000u * 1000u) // a longer header is damage, not a model
#define ST_SINGLE     "model.safetensors"
#define ST_INDEX      "model.safetensors.index.json"
#define ST_CHUNK      16384 // elements converted per read or write of a 16-bit tensor

struct SafeTensors {
    int nfiles;
    char **files;            // (nfiles) paths, shards in name order
    int *fds;                // (nfiles) open read-only
    uint64_t *data_start;    // (nfiles) file offset of the data section: 8 + header length
    uint64_t *data_bytes;    // (nfiles) size of the data section
    int n, cap;              // tensors
    StTensor *t;             // (n) file by file, each file's in data order
    const StTensor **sorted; // (n) by name, for st_find
};

// ---- conversions ----------------------------------------------------------------------------

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | man << 13); // inf, NaN (payload kept)
    if (exp != 0) return bits_f32(sign | (exp + 112) << 23 | man << 13);
    if (man == 0) return bits_f32(sign);
    // subnormal man * 2^-24: shift the leading 1 up to the implicit bit
    uint32_t e = 113;
    while (!(man & 0x400)) man <<= 1, e--;
    return bits_f32(sign | e << 23 | (man & 0x3ff) << 13);
}

// x >> shift (1 <= shift <= 31) rounded to nearest, ties to even.
static uint32_t shift_round_even(uint32_t x, int shift) {
    uint32_t q = x >> shift, rem = x & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)(u >> 16 | 0x40); // quiet NaN, sign kept
    // a carry out of the mantissa raises the exponent; past the largest finite it gives inf
    return (uint16_t)shift_round_even(u, 16);
}

uint16_t st_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)(u >> 16 & 0x8000);
    uint32_t a = u & 0x7fffffff;
    if (a > 0x7f800000) return sign | 0x7e00 | (uint16_t)(a >> 13 & 0x3ff); // quiet NaN
    if (a >= 0x477ff000) return sign | 0x7c00; // >= 65520 (max 65504 + half an ulp): inf
    if (a >= 0x38800000) // normal in f16 (>= 2^-14): rebias the exponent by 127 - 15
        return sign | (uint16_t)shift_round_even(a - (112u << 23), 13);
    uint32_t e = a >> 23;
    if (e < 102) return sign; // below 2^-25: rounds to zero
    // subnormal in f16: the value is m * 2^(e - 150), wanted in units of 2^-24
    uint32_t m = (a & 0x7fffff) | 0x800000;
    return sign | (uint16_t)shift_round_even(m, (int)(126 - e));
}

// ---- dtypes ---------------------------------------------------------------------------------

const char *st_dtype_name(StDtype d) {
    return d == ST_F32 ? "F32" : d == ST_F16 ? "F16" : d == ST_BF16 ? "BF16" : "?";
}

int st_dtype_parse(const char *name, StDtype *d) {
    static const StDtype all[] = {ST_F32, ST_F16, ST_BF16};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(name, st_dtype_name(all[i])) == 0) return *d = all[i], 0;
    return -1;
}

size_t st_dtype_size(StDtype d) {
    return d == ST_F32 ? 4 : 2;
}

// Whether name is a dtype of the safetensors format that layercake does not read.
static int dtype_other(const char *name) {
    static const char *other[] = {"BOOL", "U8",      "I8",      "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                  "F4",   "F6_E2M3", "F6_E3M2", "I16",     "U16",     "I32",
                                  "U32",  "F64",     "I64",     "U64",     "C64"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        if (strcmp(name, other[i]) == 0) return 1;
    return 0;
}

// ---- opening one file -----------------------------------------------------------------------

// Reads exactly n bytes at offset; 0, or -1 with errno set (0 for a file that ends first).
static int pread_all(int fd, void *buf, size_t n, uint64_t offset) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)offset);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = 0;
            return -1;
        }
        p += r, n -= (size_t)r, offset += (uint64_t)r;
    }
    return 0;
}

static const char *read_error_text(void) {
    return errno ? fs_errno_text(errno) : "the file ends before it";
}

static StTensor *tensor_add(SafeTensors *st) {
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 64;
        StTensor *t = realloc(st->t, (size_t)st->cap * sizeof(StTensor));
        if (!t) return NULL;
        st->t = t;
    }
    st->t[st->n] = (StTensor){0};
    return &st->t[st->n++];
}

// The element count of shape (ndim), or -1 if it passes INT64_MAX / 4 (no byte size fits).
static int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] != 0 && numel > (INT64_MAX / 4) / shape[d]) return -1;
        numel *= shape[d];
    }
    return numel;
}

// "[2, 3]" for messages.
static const char *shape_text(int ndim, const int64_t *shape, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

// The "dtype" of a tensor entry.
static int entry_dtype(const char *path, const char *name, json_t *v, StDtype *d, char *err,
                       size_t errlen) {
    if (!json_is_string(v))
        return lc_error(err, errlen, "%s: tensor \"%s\": \"dtype\" is not a string", path, name);
    const char *s = json_string_value(v);
    if (st_dtype_parse(s, d) == 0) return 0;
    if (dtype_other(s))
        return lc_error(
            err, errlen,
            "%s: unsupported dtype %s for tensor \"%s\"; layercake reads F32, F16, BF16", path, s,
            name);
    return lc_error(err, errlen, "%s: unknown dtype \"%s\" for tensor \"%s\"", path, s, name);
}

// The "shape" of a tensor entry: an array of at most 8 non-negative integers.
static int entry_shape(const char *path, const char *name, json_t *v, StTensor *t, char *err,
                       size_t errlen) {
    if (!json_is_array(v))
        return lc_error(err, errlen, "%s: tensor \"%s\": \"shape\" is not an array", path, name);
    if (json_array_size(v) > ST_MAX_DIMS)
        return lc_error(err, errlen, "%s: tensor \"%s\": shape has %zu dims, more than %d", path,
                        name, json_array_size(v), ST_MAX_DIMS);
    t->ndim = (int)json_array_size(v);
    for (int d = 0; d < t->ndim; d++) {
        json_t *x = json_array_get(v, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return lc_error(err, errlen,
                            "%s: tensor \"%s\": shape[%d] is not a non-negative integer", path,
                            name, d);
        t->shape[d] = json_integer_value(x);
    }
    t->numel = shape_numel(t->ndim, t->shape);
    if (t->numel < 0)
        return lc_error(err, errlen, "%s: tensor \"%s\": shape has too many elements", path, name);
    return 0;
}

// The "data_offsets" of a tensor entry: [begin, end] inside a data section of data_bytes, as
// many bytes as the shape and dtype need.
static int entry_offsets(const char *path, const char *name, json_t *v, uint64_t data_bytes,
                         StTensor *t, char *err, size_t errlen) {
    json_t *b = json_array_get(v, 0), *e = json_array_get(v, 1);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(b) ||
        !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return lc_error(err, errlen,
                        "%s: tensor \"%s\": \"data_offsets\" is not two non-negative integers",
                        path, name);
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(e);
    if (t->begin > t->end)
        return lc_error(err, errlen,
                        "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                        "] end before they begin",
                        path, name, t->begin, t->end);
    if (t->end > data_bytes)
        return lc_error(err, errlen,
                        "%s: tensor \"%s\": data_offsets end %" PRIu64
                        " is beyond the data section (%" PRIu64 " bytes)",
                        path, name, t->end, data_bytes);
    uint64_t want = (uint64_t)t->numel * st_dtype_size(t->dtype);
    if (t->end - t->begin != want) {
        char s[256];
        return lc_error(err, errlen,
                        "%s: tensor \"%s\": data_offsets span %" PRIu64
                        " bytes, but shape %s of %s needs %" PRIu64,
                        path, name, t->end - t->begin, shape_text(t->ndim, t->shape, s, sizeof(s)),
                        st_dtype_name(t->dtype), want);
    }
    return 0;
}

// One tensor entry of a header into t (name not yet set).
static int entry_parse(const char *path, const char *name, json_t *v, uint64_t data_bytes,
                       StTensor *t, char *err, size_t errlen) {
    if (!json_is_object(v))
        return lc_error(err, errlen, "%s: tensor \"%s\": entry is not an object", path, name);
    static const char *keys[] = {"dtype", "shape", "data_offsets"};
    for (int k = 0; k < 3; k++)
        if (!json_object_get(v, keys[k]))
            return lc_error(err, errlen, "%s: tensor \"%s\": missing \"%s\"", path, name, keys[k]);
    if (entry_dtype(path, name, json_object_get(v, "dtype"), &t->dtype, err, errlen) ||
        entry_shape(path, name, json_object_get(v, "shape"), t, err, errlen))
        return -1;
    return entry_offsets(path, name, json_object_get(v, "data_offsets"), data_bytes, t, err,
                         errlen);
}

// "__metadata__": an object of strings.
static int metadata_check(const char *path, json_t *v, char *err, size_t errlen) {
    const char *key;
    json_t *x;
    if (!json_is_object(v))
        return lc_error(err, errlen, "%s: \"__metadata__\" is not an object", path);
    json_object_foreach(v, key, x) {
        if (!json_is_string(x))
            return lc_error(err, errlen, "%s: \"__metadata__\" key \"%s\" is not a string", path,
                            key);
    }
    return 0;
}

// Reads and checks the header length of the open file fd; sets *len and *size (file bytes).
static int header_length(const char *path, int fd, uint64_t *len, uint64_t *size, char *err,
                         size_t errlen) {
    struct stat sb;
    if (fstat(fd, &sb) != 0) return lc_error(err, errlen, "%s: %s", path, strerror(errno));
    *size = (uint64_t)sb.st_size;
    unsigned char b[8];
    if (*size < 8)
        return lc_error(err, errlen, "%s: %" PRIu64 " bytes, shorter than the 8-byte header length",
                        path, *size);
    if (pread_all(fd, b, 8, 0) != 0)
        return lc_error(err, errlen, "%s: reading the header length: %s", path, read_error_text());
    *len = 0;
    for (int i = 7; i >= 0; i--) *len = *len << 8 | b[i];
    if (*len == 0) return lc_error(err, errlen, "%s: header length is 0", path);
    if (*len > ST_HEADER_MAX)
        return lc_error(err, errlen,
                        "%s: header length %" PRIu64 " is absurd (over the 100 MB limit)", path,
                        *len);
    if (*len > *size - 8)
        return lc_error(err, errlen,
                        "%s: header length %" PRIu64 " is beyond the end of the file (%" PRIu64
                        " bytes after the length)",
                        path, *len, *size - 8);
    return 0;
}

// Reads the header of fd (len bytes at 8) as a JSON object.
static json_t *header_json(const char *path, int fd, uint64_t len, char *err, size_t errlen) {
    char *text = malloc(len);
    if (!text) return lc_error(err, errlen, "%s: out of memory for the header", path), NULL;
    if (pread_all(fd, text, len, 8) != 0) {
        lc_error(err, errlen, "%s: reading the header: %s", path, read_error_text());
        free(text);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root)
        return lc_error(err, errlen, "%s: header is not valid JSON: %s (line %d, column %d)", path,
                        je.text, je.line, je.column),
               NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return lc_error(err, errlen, "%s: header is not a JSON object", path), NULL;
    }
    return root;
}

static int by_offset(const void *a, const void *b) {
    const StTensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Sorts t (n, one file's) into data order and refuses two byte ranges that overlap.
static int ranges_check(const char *path, StTensor *t, int n, char *err, size_t errlen) {
    if (n < 2) return 0; // (t is NULL for a header without tensors)
    qsort(t, (size_t)n, sizeof(StTensor), by_offset);
    const StTensor *last = NULL; // the nonempty range reaching furthest so far
    for (int i = 0; i < n; i++) {
        if (t[i].begin == t[i].end) continue;
        if (last && t[i].begin < last->end)
            return lc_error(err, errlen,
                            "%s: tensors \"%s\" [%" PRIu64 ", %" PRIu64 ") and \"%s\" [%" PRIu64
                            ", %" PRIu64 ") overlap",
                            path, last->name, last->begin, last->end, t[i].name, t[i].begin,
                            t[i].end);
        if (!last || t[i].end > last->end) last = &t[i];
    }
    return 0;
}

// Parses the tensors of a header into st as those of file f.
static int header_tensors(SafeTensors *st, int f, json_t *root, char *err, size_t errlen) {
    const char *path = st->files[f], *key;
    json_t *v;
    int first = st->n;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (metadata_check(path, v, err, errlen)) return -1;
            continue;
        }
        StTensor *t = tensor_add(st);
        if (!t) return lc_error(err, errlen, "%s: out of memory", path);
        t->shard = f;
        if (!(t->name = strdup(key))) return lc_error(err, errlen, "%s: out of memory", path);
        if (entry_parse(path, key, v, st->data_bytes[f], t, err, errlen)) return -1;
    }
    return ranges_check(path, st->t + first, st->n - first, err, errlen);
}

// Opens st->files[f] and reads its header into st.
static int file_load(SafeTensors *st, int f, char *err, size_t errlen) {
    const char *path = st->files[f];
    st->fds[f] = open(path, O_RDONLY | O_CLOEXEC);
    if (st->fds[f] < 0) return lc_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    uint64_t len = 0, size = 0;
    if (header_length(path, st->fds[f], &len, &size, err, errlen)) return -1;
    st->data_start[f] = 8 + len;
    st->data_bytes[f] = size - 8 - len;
    json_t *root = header_json(path, st->fds[f], len, err, errlen);
    if (!root) return -1;
    int rc = header_tensors(st, f, root, err, errlen);
    json_decref(root);
    return rc;
}

// ---- the set of files -----------------------------------------------------------------------

static int files_alloc(SafeTensors *st, int nfiles) {
    size_t n = nfiles > 0 ? (size_t)nfiles : 1; // an index may name no shard at all
    st->files = calloc(n, sizeof(char *));
    st->fds = malloc(n * sizeof(int));
    st->data_start = calloc(n, sizeof(uint64_t));
    st->data_bytes = calloc(n, sizeof(uint64_t));
    if (!st->files || !st->fds || !st->data_start || !st->data_bytes) return -1;
    for (int i = 0; i < nfiles; i++) st->fds[i] = -1;
    st->nfiles = nfiles;
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

// Builds st->sorted; a name found twice (in two shards: one header rejects duplicate keys)
// is refused naming both files.
static int names_index(SafeTensors *st, char *err, size_t errlen) {
    st->sorted = malloc((size_t)(st->n ? st->n : 1) * sizeof(StTensor *));
    if (!st->sorted) return lc_error(err, errlen, "out of memory");
    for (int i = 0; i < st->n; i++) st->sorted[i] = &st->t[i];
    qsort(st->sorted, (size_t)st->n, sizeof(StTensor *), by_name);
    for (int i = 1; i < st->n; i++) {
        const StTensor *a = st->sorted[i - 1], *b = st->sorted[i];
        if (strcmp(a->name, b->name) != 0) continue;
        if (a->shard > b->shard) a = st->sorted[i], b = st->sorted[i - 1];
        return lc_error(err, errlen, "tensor \"%s\" is in both %s and %s (duplicate name)", a->name,
                        st->files[a->shard], st->files[b->shard]);
    }
    return 0;
}

// A shard name of an index: a plain file name in the index's folder.
static int shard_name_ok(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// The distinct shard file names of weight_map, sorted, into st->files as paths under dir.
static int index_shards(SafeTensors *st, const char *index, const char *dir, json_t *map, char *err,
                        size_t errlen) {
    size_t n = json_object_size(map), k = 0;
    const char **names = malloc((n ? n : 1) * sizeof(char *));
    const char *key;
    json_t *v;
    if (!names) return lc_error(err, errlen, "%s: out of memory", index);
    int rc = 0;
    json_object_foreach(map, key, v) {
        if (!json_is_string(v)) {
            rc = lc_error(err, errlen, "%s: weight_map[\"%s\"] is not a string", index, key);
            break;
        }
        if (!shard_name_ok(json_string_value(v))) {
            rc = lc_error(err, errlen,
                          "%s: weight_map[\"%s\"] names shard \"%s\", which is not a file name "
                          "in the index's folder (no '/')",
                          index, key, json_string_value(v));
            break;
        }
        names[k++] = json_string_value(v);
    }
    size_t distinct = 0;
    if (rc == 0) {
        qsort(names, k, sizeof(char *), by_string);
        for (size_t i = 0; i < k; i++)
            if (i == 0 || strcmp(names[i], names[i - 1]) != 0) names[distinct++] = names[i];
        rc = files_alloc(st, (int)distinct) ? lc_error(err, errlen, "%s: out of memory", index) : 0;
    }
    for (size_t i = 0; rc == 0 && i < distinct; i++)
        if (!(st->files[i] = path_join(dir, names[i])))
            rc = lc_error(err, errlen, "%s: out of memory", index);
    free(names);
    return rc;
}

// Every shard named by weight_map exists (checked before any is parsed, naming a tensor).
static int shards_exist(SafeTensors *st, const char *index, json_t *map, char *err, size_t errlen) {
    for (int f = 0; f < st->nfiles; f++) {
        struct stat sb;
        if (stat(st->files[f], &sb) == 0) continue;
        int saved = errno;
        const char *base = strrchr(st->files[f], '/') + 1, *key, *tensor = "?";
        json_t *v;
        json_object_foreach(map, key, v) {
            if (strcmp(json_string_value(v), base) == 0) {
                tensor = key;
                break;
            }
        }
        return lc_error(err, errlen,
                        "%s: weight_map names shard %s for tensor \"%s\", which does not exist "
                        "(%s)",
                        index, st->files[f], tensor, strerror(saved));
    }
    return 0;
}

// The shards agree with weight_map: each tensor listed, in the shard it is in.
static int index_consistent(SafeTensors *st, const char *index, json_t *map, char *err,
                            size_t errlen) {
    for (int i = 0; i < st->n; i++)
        if (!json_object_get(map, st->t[i].name))
            return lc_error(err, errlen,
                            "%s: the index is inconsistent: shard %s holds tensor \"%s\", which "
                            "weight_map does not list",
                            index, st->files[st->t[i].shard], st->t[i].name);
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const StTensor *t = st_find(st, key);
        const char *in = t ? strrchr(st->files[t->shard], '/') + 1 : NULL;
        if (!in || strcmp(in, json_string_value(v)) != 0)
            return lc_error(err, errlen,
                            "%s: the index is inconsistent: weight_map names tensor \"%s\" in "
                            "shard %s, which lacks it%s%s",
                            index, key, json_string_value(v), in ? "; it is in " : "",
                            in ? in : "");
    }
    return 0;
}

// A sharded model: the index file in dir, then every shard it names.
static int open_index(SafeTensors *st, const char *dir, const char *index, char *err,
                      size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return lc_error(err, errlen, "%s: not valid JSON: %s (line %d, column %d)", index, je.text,
                        je.line, je.column);
    json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    int rc = 0;
    if (!json_is_object(map)) rc = lc_error(err, errlen, "%s: no \"weight_map\" object", index);
    if (rc == 0) rc = index_shards(st, index, dir, map, err, errlen);
    if (rc == 0) rc = shards_exist(st, index, map, err, errlen);
    for (int f = 0; rc == 0 && f < st->nfiles; f++) rc = file_load(st, f, err, errlen);
    if (rc == 0) rc = names_index(st, err, errlen);
    if (rc == 0) rc = index_consistent(st, index, map, err, errlen);
    json_decref(root);
    return rc;
}

// One file at path.
static int open_single(SafeTensors *st, const char *path, char *err, size_t errlen) {
    if (files_alloc(st, 1) || !(st->files[0] = strdup(path)))
        return lc_error(err, errlen, "%s: out of memory", path);
    if (file_load(st, 0, err, errlen)) return -1;
    return names_index(st, err, errlen);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

// A folder: its model.safetensors, or its index and shards (not both: one is stale).
static int open_folder(SafeTensors *st, const char *dir, char *err, size_t errlen) {
    char *single = path_join(dir, ST_SINGLE), *index = path_join(dir, ST_INDEX);
    int rc;
    if (!single || !index)
        rc = lc_error(err, errlen, "%s: out of memory", dir);
    else if (file_exists(single) && file_exists(index))
        rc = lc_error(err, errlen,
                      "%s: holds both " ST_SINGLE " and " ST_INDEX "; one of them is stale", dir);
    else if (file_exists(index))
        rc = open_index(st, dir, index, err, errlen);
    else if (file_exists(single))
        rc = open_single(st, single, err, errlen);
    else
        rc = lc_error(err, errlen, "%s: no " ST_SINGLE " or " ST_INDEX " in this folder", dir);
    free(single);
    free(index);
    return rc;
}

SafeTensors *st_open(const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return lc_error(err, errlen, "%s: cannot open: %s", path, strerror(errno)), NULL;
    SafeTensors *st = calloc(1, sizeof(SafeTensors));
    if (!st) return lc_error(err, errlen, "%s: out of memory", path), NULL;
    int rc = S_ISDIR(sb.st_mode) ? open_folder(st, path, err, errlen)
                                 : open_single(st, path, err, errlen);
    if (rc != 0) {
        st_close(st);
        return NULL;
    }
    return st;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    for (int f = 0; f < st->nfiles; f++) {
        if (st->fds[f] >= 0) close(st->fds[f]);
        free(st->files[f]);
    }
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->files), free(st->fds), free(st->data_start), free(st->data_bytes);
    free(st->t), free(st->sorted);
    free(st);
}

int st_count(const SafeTensors *st) {
    return st->n;
}

const StTensor *st_tensor(const SafeTensors *st, int i) {
    return i >= 0 && i < st->n ? &st->t[i] : NULL;
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    StTensor key = {.name = (char *)name};
    const StTensor *pk = &key;
    const StTensor **hit = bsearch(&pk, st->sorted, (size_t)st->n, sizeof(StTensor *), by_name);
    return hit ? *hit : NULL;
}

// ---- reading --------------------------------------------------------------------------------

int st_read_f32(const SafeTensors *st, const StTensor *t, float *out, char *err, size_t errlen) {
    const char *path = st->files[t->shard];
    int fd = st->fds[t->shard];
    uint64_t at = st->data_start[t->shard] + t->begin;
    if (t->dtype == ST_F32) {
        if (pread_all(fd, out, (size_t)t->numel * 4, at) == 0) return 0;
        return lc_error(err, errlen, "%s: reading tensor \"%s\": %s", path, t->name,
                        read_error_text());
    }
    uint16_t buf[ST_CHUNK];
    for (int64_t i = 0; i < t->numel; i += ST_CHUNK) {
        size_t k = (size_t)(t->numel - i < ST_CHUNK ? t->numel - i : ST_CHUNK);
        if (pread_all(fd, buf, k * 2, at + (uint64_t)i * 2) != 0)
            return lc_error(err, errlen, "%s: reading tensor \"%s\": %s", path, t->name,
                            read_error_text());
        for (size_t j = 0; j < k; j++)
            out[i + (int64_t)j] =
                t->dtype == ST_F16 ? st_f16_to_f32(buf[j]) : st_bf16_to_f32(buf[j]);
    }
    return 0;
}

// ---- writing --------------------------------------------------------------------------------

static int by_write_name(const void *a, const void *b) {
    return strcmp((*(const StWriteTensor *const *)a)->name,
                  (*(const StWriteTensor *const *)b)->name);
}

// No name among ts (n) twice (sorted: a model may have 100000 tensors).
static int names_unique(const StWriteTensor *ts, int n, char *err, size_t errlen) {
    const StWriteTensor **p = malloc((n > 0 ? (size_t)n : 1) * sizeof(StWriteTensor *));
    if (!p) return lc_error(err, errlen, "st_write: out of memory");
    for (int i = 0; i < n; i++) p[i] = &ts[i];
    qsort(p, (size_t)n, sizeof(StWriteTensor *), by_write_name);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (strcmp(p[i - 1]->name, p[i]->name) == 0)
            rc = lc_error(err, errlen, "st_write: tensor \"%s\" given twice", p[i]->name);
    free(p);
    return rc;
}

// The tensors to write are well formed: names unique, not "__metadata__", shapes in range.
static int writes_check(const StWriteTensor *ts, int n, char *err, size_t errlen) {
    if (n < 0 || (n > 0 && !ts)) return lc_error(err, errlen, "st_write: no tensors (n = %d)", n);
    for (int i = 0; i < n; i++) {
        const StWriteTensor *w = &ts[i];
        if (!w->name || !w->name[0] || strcmp(w->name, "__metadata__") == 0)
            return lc_error(err, errlen, "st_write: tensor %d: name \"%s\" is not allowed", i,
                            w->name ? w->name : "(null)");
        if (w->ndim < 0 || w->ndim > ST_MAX_DIMS)
            return lc_error(err, errlen, "st_write: tensor \"%s\": %d dims, not 0..%d", w->name,
                            w->ndim, ST_MAX_DIMS);
        for (int d = 0; d < w->ndim; d++)
            if (w->shape[d] < 0)
                return lc_error(err, errlen, "st_write: tensor \"%s\": shape[%d] is negative",
                                w->name, d);
        int64_t numel = shape_numel(w->ndim, w->shape);
        if (numel < 0 || (numel > 0 && !w->data))
            return lc_error(err, errlen, "st_write: tensor \"%s\": %s", w->name,
                            numel < 0 ? "too many elements" : "no data");
    }
    return names_unique(ts, n, err, errlen);
}

static uint64_t write_bytes(const StWriteTensor *w, StDtype dtype) {
    return (uint64_t)shape_numel(w->ndim, w->shape) * st_dtype_size(dtype);
}

// Assigns tensors to shards in order (shard_of, n); returns the shard count. A shard is
// closed before the tensor that would take it past shard_bytes (0: no limit).
static int shards_plan(const StWriteTensor *ts, int n, StDtype dtype, uint64_t shard_bytes,
                       int *shard_of) {
    int cur = 0;
    uint64_t used = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = write_bytes(&ts[i], dtype);
        if (shard_bytes && used > 0 && used + b > shard_bytes) cur++, used = 0;
        shard_of[i] = cur;
        used += b;
    }
    return cur + 1;
}

// The header entry of one tensor: {"dtype", "shape", "data_offsets": [at, at + bytes]}.
static json_t *entry_json(const StWriteTensor *w, StDtype dtype, uint64_t at) {
    json_t *shape = json_array();
    for (int d = 0; d < w->ndim && shape; d++)
        if (json_array_append_new(shape, json_integer(w->shape[d])))
            json_decref(shape), shape = NULL;
    if (!shape) return NULL;
    return json_pack("{s:s,s:o,s:[II]}", "dtype", st_dtype_name(dtype), "shape", shape,
                     "data_offsets", (json_int_t)at, (json_int_t)(at + write_bytes(w, dtype)));
}

// The header of tensors ts (n) as dtype, padded with spaces to a multiple of 8 bytes; malloc'd,
// length in *len.
static char *header_build(const StWriteTensor *ts, int n, StDtype dtype, size_t *len, char *err,
                          size_t errlen) {
    json_t *root = json_pack("{s:{s:s}}", "__metadata__", "format", "pt");
    uint64_t at = 0;
    for (int i = 0; i < n && root; i++) {
        json_t *e = entry_json(&ts[i], dtype, at);
        at += write_bytes(&ts[i], dtype);
        if (!e) {
            json_decref(root);
            return lc_error(err, errlen, "st_write: out of memory"), NULL;
        }
        if (json_object_set_new(root, ts[i].name, e)) { // steals e either way
            json_decref(root);
            return lc_error(err, errlen, "st_write: tensor \"%s\": name is not valid UTF-8",
                            ts[i].name),
                   NULL;
        }
    }
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) return lc_error(err, errlen, "st_write: out of memory for the header"), NULL;
    size_t k = strlen(text), padded = (k + 7) / 8 * 8;
    char *out = realloc(text, padded);
    if (!out) return free(text), lc_error(err, errlen, "st_write: out of memory"), NULL;
    memset(out + k, ' ', padded - k);
    *len = padded;
    return out;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

// Writes the data of w converted to dtype.
static int data_write(int fd, const StWriteTensor *w, StDtype dtype) {
    int64_t numel = shape_numel(w->ndim, w->shape);
    if (dtype == ST_F32) return write_all(fd, w->data, (size_t)numel * 4);
    uint16_t buf[ST_CHUNK];
    for (int64_t i = 0; i < numel; i += ST_CHUNK) {
        size_t k = (size_t)(numel - i < ST_CHUNK ? numel - i : ST_CHUNK);
        for (size_t j = 0; j < k; j++)
            buf[j] = dtype == ST_F16 ? st_f32_to_f16(w->data[i + (int64_t)j])
                                     : st_f32_to_bf16(w->data[i + (int64_t)j]);
        if (write_all(fd, buf, k * 2)) return -1;
    }
    return 0;
}

// The length, header and data of one file into fd.
static int file_stream(int fd, const char *header, size_t hlen, const StWriteTensor *ts, int n,
                       StDtype dtype) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if (write_all(fd, b, 8) || write_all(fd, header, hlen)) return -1;
    for (int i = 0; i < n; i++)
        if (data_write(fd, &ts[i], dtype)) return -1;
    return 0;
}

// fsyncs folder dir, so the renames into it are durable.
static void folder_sync(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

// Writes one safetensors file atomically: into path.tmp, fsynced, renamed over path. The data
// is streamed, never held whole in memory twice.
static int file_write(const char *path, const StWriteTensor *ts, int n, StDtype dtype, char *err,
                      size_t errlen) {
    size_t hlen;
    char *header = header_build(ts, n, dtype, &hlen, err, errlen);
    if (!header) return -1;
    size_t n_tmp = strlen(path) + 5;
    char *tmp = malloc(n_tmp);
    if (!tmp) return free(header), lc_error(err, errlen, "%s: out of memory", path);
    snprintf(tmp, n_tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        lc_error(err, errlen, "%s: cannot create %s: %s", path, tmp, fs_errno_text(errno));
        free(header), free(tmp);
        return -1;
    }
    const char *step = NULL;
    int saved = 0;
    if (file_stream(fd, header, hlen, ts, n, dtype)) step = "writing", saved = errno;
    if (!step && fsync(fd) != 0) step = "syncing", saved = errno;
    if (close(fd) != 0 && !step) step = "closing", saved = errno;
    if (!step && rename(tmp, path) != 0) step = "renaming", saved = errno;
    if (step) {
        unlink(tmp);
        lc_error(err, errlen, "%s: %s failed: %s", path, step, fs_errno_text(saved));
    }
    free(header), free(tmp);
    return step ? -1 : 0;
}

static void shard_name(char *buf, size_t len, int i, int nshards) {
    if (nshards == 1)
        snprintf(buf, len, ST_SINGLE);
    else
        snprintf(buf, len, "model-%05d-of-%05d.safetensors", i + 1, nshards);
}

// model.safetensors.index.json for the shards of ts (shard_of).
static int index_write(const char *dir, const StWriteTensor *ts, int n, const int *shard_of,
                       int nshards, StDtype dtype, char *err, size_t errlen) {
    json_t *map = json_object();
    uint64_t total = 0;
    char name[64];
    for (int i = 0; i < n && map; i++) {
        shard_name(name, sizeof(name), shard_of[i], nshards);
        json_object_set_new(map, ts[i].name, json_string(name));
        total += write_bytes(&ts[i], dtype);
    }
    json_t *root =
        json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    char *path = path_join(dir, ST_INDEX);
    int rc = 0;
    if (!text || !path)
        rc = lc_error(err, errlen, "%s/" ST_INDEX ": out of memory", dir);
    else {
        size_t k = strlen(text);
        text[k] = '\n'; // json_dumps' terminator becomes the final newline
        rc = fs_write_atomic(path, text, k + 1, err, errlen);
    }
    free(text);
    free(path);
    return rc;
}

// Removes dir/name if it is there (the other layout's file, now stale).
static int stale_remove(const char *dir, const char *name, char *err, size_t errlen) {
    char *path = path_join(dir, name);
    int rc = 0;
    if (!path)
        rc = lc_error(err, errlen, "%s: out of memory", dir);
    else if (unlink(path) != 0 && errno != ENOENT)
        rc = lc_error(err, errlen, "%s: cannot remove the stale file: %s", path, strerror(errno));
    free(path);
    return rc;
}

int st_write(const char *dir, const StWriteTensor *ts, int n, StDtype dtype, uint64_t shard_bytes,
             char *err, size_t errlen) {
    if (writes_check(ts, n, err, errlen)) return -1;
    if (fs_mkdirs(dir) != 0)
        return lc_error(err, errlen, "%s: cannot create the folder: %s", dir, fs_errno_text(errno));
    int *shard_of = malloc((n > 0 ? (size_t)n : 1) * sizeof(int));
    if (!shard_of) return lc_error(err, errlen, "%s: out of memory", dir);
    int nshards = shards_plan(ts, n, dtype, shard_bytes, shard_of), rc = 0;
    for (int s = 0, i = 0; s < nshards && rc == 0; s++) {
        int j = i;
        while (j < n && shard_of[j] == s) j++;
        char name[64];
        shard_name(name, sizeof(name), s, nshards);
        char *path = path_join(dir, name);
        rc = path ? file_write(path, ts + i, j - i, dtype, err, errlen)
                  : lc_error(err, errlen, "%s: out of memory", dir);
        free(path);
        i = j;
    }
    if (rc == 0 && nshards > 1) rc = index_write(dir, ts, n, shard_of, nshards, dtype, err, errlen);
    if (rc == 0) rc = stale_remove(dir, nshards > 1 ? ST_SINGLE : ST_INDEX, err, errlen);
    if (rc == 0) folder_sync(dir);
    free(shard_of);
    return rc;
}
