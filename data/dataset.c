// data/dataset.c: reading and writing layercake's HDF5 datasets. The layout (attribute and
// array names, types, invariants) is specified in docs/datasets.md; the tables below are its
// single source in the code. HDF5's own error printing is switched off: every failure becomes
// one message naming the file and the attribute or array.
#include "data/dataset.h"
#include "common/check.h"
#include "common/fs.h"
#include "common/error.h"
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- layout --------------------------------------------------------------------------------

// Chunk length in elements (256 KiB of int32 tokens) and the deflate level: level 4 with the
// byte-shuffle filter gets most of level 9's ratio on token ids at a fraction of the time.
enum { CHUNK = 1 << 16, DEFLATE_LEVEL = 4 };

typedef enum { ELEM_I32, ELEM_I64, ELEM_U8 } Elem;

// A per-example variable-length field: its values array and the offsets array indexing it.
typedef enum {
    F_TOKENS,
    F_LOSS_MASK,
    F_PROMPT,
    F_CHOSEN,
    F_REJECTED,
    F_REFERENCE,
    F_REFERENCE_TEXT,
    F_COMPLETION,
    F_LABEL,
    F_COUNT
} Field;

typedef struct {
    const char *values;  // name of the values array
    const char *offsets; // name of the offsets array; NULL: shares F_TOKENS's (loss_mask), or
                         // one value per example (per_example)
    Elem elem;           // element type of the values
    int optional;        // may be absent from a file (then every example's entry is empty)
    int is_ids;          // values are token ids
    int per_example;     // one value per example, no offsets (label)
} FieldSpec;

static const FieldSpec FIELDS[F_COUNT] = {
    [F_TOKENS] = {"tokens", "offsets", ELEM_I32, 0, 1},
    [F_LOSS_MASK] = {"loss_mask", NULL, ELEM_U8, 0, 0},
    [F_PROMPT] = {"prompt_tokens", "prompt_offsets", ELEM_I32, 0, 1},
    [F_CHOSEN] = {"chosen_tokens", "chosen_offsets", ELEM_I32, 0, 1},
    [F_REJECTED] = {"rejected_tokens", "rejected_offsets", ELEM_I32, 0, 1},
    [F_REFERENCE] = {"reference_tokens", "reference_offsets", ELEM_I32, 1, 1},
    [F_REFERENCE_TEXT] = {"reference_text", "reference_text_offsets", ELEM_U8, 1, 0},
    [F_COMPLETION] = {"completion_tokens", "completion_offsets", ELEM_I32, 0, 1},
    [F_LABEL] = {"label", NULL, ELEM_U8, 0, 0, 1},
};

typedef struct {
    int count;
    Field f[3];
} KindFields;

static const KindFields KIND_FIELDS[DATA_KIND_COUNT] = {
    [DATA_LM] = {1, {F_TOKENS}},
    [DATA_SFT] = {2, {F_TOKENS, F_LOSS_MASK}},
    [DATA_PREFERENCE] = {3, {F_PROMPT, F_CHOSEN, F_REJECTED}},
    [DATA_PROMPT] = {3, {F_PROMPT, F_REFERENCE, F_REFERENCE_TEXT}},
    [DATA_UNPAIRED] = {3, {F_PROMPT, F_COMPLETION, F_LABEL}}, // the label after an offsets field
};

static const char *const KIND_NAMES[DATA_KIND_COUNT] = {"lm", "sft", "preference", "prompt",
                                                        "unpaired"};

const char *data_kind_name(DataKind kind) {
    return kind < DATA_KIND_COUNT ? KIND_NAMES[kind] : "?";
}

int data_kind_parse(const char *name, DataKind *kind) {
    for (int k = 0; k < DATA_KIND_COUNT; k++)
        if (strcmp(name, KIND_NAMES[k]) == 0) {
            *kind = (DataKind)k;
            return 0;
        }
    return -1;
}

void dataset_fingerprint_hex(uint64_t fingerprint, char *buf) {
    snprintf(buf, 17, "%016" PRIx64, fingerprint);
}

static hid_t elem_mem_type(Elem e) {
    return e == ELEM_I32 ? H5T_NATIVE_INT : e == ELEM_I64 ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT8;
}

static hid_t elem_file_type(Elem e) {
    return e == ELEM_I32 ? H5T_STD_I32LE : e == ELEM_I64 ? H5T_STD_I64LE : H5T_STD_U8LE;
}

static size_t elem_size(Elem e) {
    return e == ELEM_I32 ? sizeof(int) : e == ELEM_I64 ? sizeof(int64_t) : 1;
}

// The values and length of field f of an example.
static const void *example_field(const Example *ex, Field f, int64_t *n) {
    switch (f) {
    case F_TOKENS:
    case F_PROMPT:
        *n = ex->n_tokens;
        return ex->tokens;
    case F_LOSS_MASK:
        *n = ex->n_tokens;
        return ex->loss_mask;
    case F_CHOSEN:
        *n = ex->n_chosen;
        return ex->chosen;
    case F_REJECTED:
        *n = ex->n_rejected;
        return ex->rejected;
    case F_REFERENCE:
        *n = ex->n_reference;
        return ex->reference;
    case F_REFERENCE_TEXT:
        *n = ex->n_reference_text;
        return ex->reference_text;
    case F_COMPLETION:
        *n = ex->n_completion;
        return ex->completion;
    case F_LABEL:
        *n = 1;
        return &ex->label;
    default:
        LC_ASSERT(0 && "unknown field");
        return NULL;
    }
}

static void silence_hdf5(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

// ---- attributes ----------------------------------------------------------------------------

static int attr_write_string(hid_t file, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = attr >= 0 && H5Awrite(attr, type, &value) >= 0 ? 0 : -1;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    return rc;
}

static int attr_write_int(hid_t file, const char *name, int64_t value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT64, &value) >= 0 ? 0 : -1;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return rc;
}

// Opens a scalar root attribute; on failure writes why into err.
static hid_t attr_open(hid_t file, const char *path, const char *name, char *err, size_t errlen) {
    if (H5Aexists(file, name) <= 0) {
        lc_error(err, errlen,
                 "%s: attribute '%s' is missing (not a layercake dataset? see "
                 "docs/datasets.md)",
                 path, name);
        return -1;
    }
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    if (attr < 0) lc_error(err, errlen, "%s: cannot read attribute '%s'", path, name);
    return attr;
}

// Reads a string-typed attribute's value, fixed or variable length (h5py writes the latter),
// in its own type: HDF5 converts neither between the two nor between ASCII and UTF-8.
static int string_read(hid_t attr, hid_t type, char *out, size_t outlen) {
    if (H5Tis_variable_str(type) > 0) {
        char *s = NULL;
        if (H5Aread(attr, type, &s) < 0 || !s) return -1;
        snprintf(out, outlen, "%s", s);
        H5free_memory(s);
        return 0;
    }
    size_t size = H5Tget_size(type);
    char *buf = lc_calloc(size + 1, 1);
    int rc = H5Aread(attr, type, buf) < 0 ? -1 : 0;
    snprintf(out, outlen, "%s", buf);
    free(buf);
    return rc;
}

static int attr_read_string(hid_t file, const char *path, const char *name, char *out,
                            size_t outlen, char *err, size_t errlen) {
    hid_t attr = attr_open(file, path, name, err, errlen);
    if (attr < 0) return -1;
    hid_t type = H5Aget_type(attr);
    int rc = 0;
    if (H5Tget_class(type) != H5T_STRING)
        rc = lc_error(err, errlen, "%s: attribute '%s' is not a string", path, name);
    else if (string_read(attr, type, out, outlen) < 0)
        rc = lc_error(err, errlen, "%s: cannot read attribute '%s'", path, name);
    H5Tclose(type);
    H5Aclose(attr);
    return rc;
}

static int attr_read_int(hid_t file, const char *path, const char *name, int64_t *out, char *err,
                         size_t errlen) {
    hid_t attr = attr_open(file, path, name, err, errlen);
    if (attr < 0) return -1;
    hid_t type = H5Aget_type(attr);
    int rc = -1;
    if (H5Tget_class(type) != H5T_INTEGER)
        lc_error(err, errlen, "%s: attribute '%s' is not an integer", path, name);
    else if (H5Aread(attr, H5T_NATIVE_INT64, out) < 0)
        lc_error(err, errlen, "%s: cannot read attribute '%s'", path, name);
    else
        rc = 0;
    H5Tclose(type);
    H5Aclose(attr);
    return rc;
}

// ---- writing -------------------------------------------------------------------------------

// An extendible 1-D array written a chunk at a time.
typedef struct {
    hid_t dset;         // -1 when the kind does not use this array
    Elem elem;          // element type
    int64_t in_file;    // elements already in the file
    int64_t fill;       // elements pending in buf
    unsigned char *buf; // (CHUNK elements)
} Column;

struct DatasetWriter {
    char *path;              // final name
    char *partial;           // "<path>.partial" while writing
    DataKind kind;           // what the file holds
    hid_t file;              // the partial file
    Column values[F_COUNT];  // per field of the kind
    Column offsets[F_COUNT]; // per field with its own offsets
    int64_t end[F_COUNT];    // values appended so far per field = the next offset
};

static int column_create(Column *c, hid_t file, const char *name, Elem elem) {
    hsize_t dims = 0, maxdims = H5S_UNLIMITED, chunk = CHUNK;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    if (elem_size(elem) > 1) H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, DEFLATE_LEVEL);
    H5Pset_obj_track_times(dcpl, 0); // no timestamps: the same examples give the same bytes
    c->dset = H5Dcreate2(file, name, elem_file_type(elem), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    c->elem = elem;
    c->in_file = c->fill = 0;
    c->buf = lc_malloc(CHUNK * elem_size(elem));
    return c->dset >= 0 ? 0 : -1;
}

static int column_flush(Column *c) {
    if (c->fill == 0) return 0;
    hsize_t start = (hsize_t)c->in_file, count = (hsize_t)c->fill, size = start + count;
    if (H5Dset_extent(c->dset, &size) < 0) return -1;
    hid_t fspace = H5Dget_space(c->dset);
    hid_t mspace = H5Screate_simple(1, &count, NULL);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &start, NULL, &count, NULL);
    herr_t rc = H5Dwrite(c->dset, elem_mem_type(c->elem), mspace, fspace, H5P_DEFAULT, c->buf);
    H5Sclose(mspace);
    H5Sclose(fspace);
    c->in_file += c->fill;
    c->fill = 0;
    return rc < 0 ? -1 : 0;
}

static int column_append(Column *c, const void *src, int64_t n) {
    size_t es = elem_size(c->elem);
    const unsigned char *p = src;
    while (n > 0) {
        int64_t k = CHUNK - c->fill < n ? CHUNK - c->fill : n;
        memcpy(c->buf + (size_t)c->fill * es, p, (size_t)k * es);
        c->fill += k;
        p += (size_t)k * es;
        n -= k;
        if (c->fill == CHUNK && column_flush(c) < 0) return -1;
    }
    return 0;
}

static void column_close(Column *c) {
    if (c->dset >= 0) H5Dclose(c->dset);
    c->dset = -1;
    free(c->buf);
    c->buf = NULL;
}

static void writer_free(DatasetWriter *w) {
    for (int f = 0; f < F_COUNT; f++) {
        column_close(&w->values[f]);
        column_close(&w->offsets[f]);
    }
    if (w->file >= 0) H5Fclose(w->file);
    free(w->path);
    free(w->partial);
    free(w);
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(lc_malloc(n), s, n);
}

static int writer_header(DatasetWriter *w, uint64_t fingerprint) {
    char hex[17];
    dataset_fingerprint_hex(fingerprint, hex);
    if (attr_write_string(w->file, "format", DATASET_FORMAT) < 0 ||
        attr_write_int(w->file, "version", DATASET_VERSION) < 0 ||
        attr_write_string(w->file, "kind", data_kind_name(w->kind)) < 0 ||
        attr_write_string(w->file, "tokenizer", hex) < 0)
        return -1;
    const KindFields *kf = &KIND_FIELDS[w->kind];
    for (int i = 0; i < kf->count; i++) {
        const FieldSpec *fs = &FIELDS[kf->f[i]];
        if (column_create(&w->values[kf->f[i]], w->file, fs->values, fs->elem) < 0) return -1;
        if (!fs->offsets) continue;
        int64_t zero = 0;
        if (column_create(&w->offsets[kf->f[i]], w->file, fs->offsets, ELEM_I64) < 0 ||
            column_append(&w->offsets[kf->f[i]], &zero, 1) < 0)
            return -1;
    }
    return 0;
}

DatasetWriter *dataset_create(const char *path, DataKind kind, uint64_t fingerprint, char *err,
                              size_t errlen) {
    silence_hdf5();
    DatasetWriter *w = lc_calloc(1, sizeof(*w));
    w->kind = kind;
    w->path = str_dup(path);
    w->partial = lc_malloc(strlen(path) + sizeof(".partial"));
    sprintf(w->partial, "%s.partial", path);
    for (int f = 0; f < F_COUNT; f++) w->values[f].dset = w->offsets[f].dset = -1;
    w->file = H5Fcreate(w->partial, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        lc_error(err, errlen, "%s: cannot create %s (%s)", path, w->partial, strerror(errno));
        writer_free(w);
        return NULL;
    }
    if (writer_header(w, fingerprint) < 0) {
        lc_error(err, errlen, "%s: cannot write the dataset header: %s", w->partial,
                 fs_errno_text(errno));
        dataset_abort(w);
        return NULL;
    }
    return w;
}

int dataset_set_attribute(DatasetWriter *w, const char *name, const char *value, char *err,
                          size_t errlen) {
    static const char *const HEADER[] = {"format", "version", "kind", "tokenizer"};
    for (size_t i = 0; i < sizeof(HEADER) / sizeof(HEADER[0]); i++)
        LC_ASSERT(strcmp(name, HEADER[i]) != 0);
    if (attr_write_string(w->file, name, value) < 0)
        return lc_error(err, errlen, "%s: cannot write attribute '%s': %s", w->partial, name,
                        fs_errno_text(errno));
    return 0;
}

int dataset_append(DatasetWriter *w, const Example *ex, char *err, size_t errlen) {
    const KindFields *kf = &KIND_FIELDS[w->kind];
    for (int i = 0; i < kf->count; i++) {
        Field f = kf->f[i];
        int64_t n;
        const void *v = example_field(ex, f, &n);
        LC_ASSERT(n == 0 || v);
        if (column_append(&w->values[f], v, n) < 0)
            return lc_error(err, errlen, "%s: cannot write '%s': %s", w->partial, FIELDS[f].values,
                            fs_errno_text(errno));
        if (!FIELDS[f].offsets) continue;
        w->end[f] += n;
        if (column_append(&w->offsets[f], &w->end[f], 1) < 0)
            return lc_error(err, errlen, "%s: cannot write '%s': %s", w->partial, FIELDS[f].offsets,
                            fs_errno_text(errno));
    }
    return 0;
}

int dataset_close(DatasetWriter *w, char *err, size_t errlen) {
    for (int f = 0; f < F_COUNT; f++)
        if ((w->values[f].dset >= 0 && column_flush(&w->values[f]) < 0) ||
            (w->offsets[f].dset >= 0 && column_flush(&w->offsets[f]) < 0)) {
            lc_error(err, errlen, "%s: cannot write '%s': %s", w->partial, FIELDS[f].values,
                     fs_errno_text(errno));
            dataset_abort(w);
            return -1;
        }
    for (int f = 0; f < F_COUNT; f++) {
        column_close(&w->values[f]);
        column_close(&w->offsets[f]);
    }
    herr_t closed = H5Fclose(w->file);
    w->file = -1;
    if (closed < 0 || rename(w->partial, w->path) != 0) {
        lc_error(err, errlen, "%s: cannot finish writing: %s", w->path, fs_errno_text(errno));
        dataset_abort(w);
        return -1;
    }
    writer_free(w);
    return 0;
}

void dataset_abort(DatasetWriter *w) {
    if (!w) return;
    for (int f = 0; f < F_COUNT; f++) {
        column_close(&w->values[f]);
        column_close(&w->offsets[f]);
    }
    if (w->file >= 0) H5Fclose(w->file);
    w->file = -1;
    remove(w->partial);
    writer_free(w);
}

// ---- reading -------------------------------------------------------------------------------

struct DatasetFile {
    hid_t file;            // the HDF5 file
    hid_t values[F_COUNT]; // open values arrays (-1: unused or absent)
    int64_t len[F_COUNT];  // their lengths
};

// Opens a 1-D integer array; *len gets its length. Returns -1 with err set if it is missing
// (unless *missing_ok, which is then set to 1) or malformed.
static hid_t array_open(const Dataset *ds, const char *name, int64_t *len, int *missing, char *err,
                        size_t errlen) {
    hid_t file = ds->file->file;
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        if (missing) {
            *missing = 1;
            return -1;
        }
        lc_error(err, errlen, "%s: array '%s' is missing (required for kind '%s')", ds->path, name,
                 data_kind_name(ds->kind));
        return -1;
    }
    hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t type = dset >= 0 ? H5Dget_type(dset) : -1;
    hid_t space = dset >= 0 ? H5Dget_space(dset) : -1;
    hsize_t dims = 0;
    int ok = type >= 0 && space >= 0 && H5Tget_class(type) == H5T_INTEGER &&
             H5Sget_simple_extent_ndims(space) == 1 &&
             H5Sget_simple_extent_dims(space, &dims, NULL) == 1;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (!ok) {
        if (dset >= 0) H5Dclose(dset);
        lc_error(err, errlen, "%s: array '%s' must be a 1-D integer array", ds->path, name);
        return -1;
    }
    *len = (int64_t)dims;
    return dset;
}

// Reads count elements from start of a 1-D array into out, converting to the element type.
static int array_read(hid_t dset, Elem elem, int64_t start, int64_t count, void *out) {
    if (count == 0) return 0;
    hsize_t s = (hsize_t)start, c = (hsize_t)count;
    hid_t fspace = H5Dget_space(dset);
    hid_t mspace = H5Screate_simple(1, &c, NULL);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &s, NULL, &c, NULL);
    herr_t rc = H5Dread(dset, elem_mem_type(elem), mspace, fspace, H5P_DEFAULT, out);
    H5Sclose(mspace);
    H5Sclose(fspace);
    return rc < 0 ? -1 : 0;
}

static int header_check(Dataset *ds, DataKind want, char *err, size_t errlen) {
    hid_t file = ds->file->file;
    char s[128];
    int64_t version;
    if (attr_read_string(file, ds->path, "format", s, sizeof(s), err, errlen) < 0) return -1;
    if (strcmp(s, DATASET_FORMAT) != 0)
        return lc_error(err, errlen, "%s: attribute 'format' is '%s', expected '%s'", ds->path, s,
                        DATASET_FORMAT);
    if (attr_read_int(file, ds->path, "version", &version, err, errlen) < 0) return -1;
    if (version != DATASET_VERSION)
        return lc_error(err, errlen,
                        "%s: attribute 'version' is %" PRId64 ", this layercake reads version "
                        "%d",
                        ds->path, version, DATASET_VERSION);
    if (attr_read_string(file, ds->path, "kind", s, sizeof(s), err, errlen) < 0) return -1;
    if (data_kind_parse(s, &ds->kind) < 0)
        return lc_error(err, errlen,
                        "%s: attribute 'kind' is '%s', expected lm, sft, preference, prompt or "
                        "unpaired",
                        ds->path, s);
    if (want != DATA_KIND_COUNT && ds->kind != want)
        return lc_error(err, errlen, "%s: kind is '%s', expected '%s'", ds->path, s,
                        data_kind_name(want));
    if (attr_read_string(file, ds->path, "tokenizer", s, sizeof(s), err, errlen) < 0) return -1;
    char *end;
    ds->fingerprint = strtoull(s, &end, 16);
    if (strlen(s) != 16 || *end != '\0')
        return lc_error(err, errlen, "%s: attribute 'tokenizer' is '%s', expected 16 hex digits",
                        ds->path, s);
    return 0;
}

int dataset_attribute(const Dataset *ds, const char *name, char *out, size_t outlen, char *err,
                      size_t errlen) {
    if (outlen) out[0] = '\0';
    if (H5Aexists(ds->file->file, name) <= 0) return 0;
    return attr_read_string(ds->file->file, ds->path, name, out, outlen, err, errlen) < 0 ? -1 : 1;
}

static int64_t **field_offsets(Dataset *ds, Field f) {
    switch (f) {
    case F_TOKENS:
    case F_PROMPT:
    case F_LOSS_MASK:
        return &ds->tokens.off;
    case F_CHOSEN:
        return &ds->chosen.off;
    case F_REJECTED:
        return &ds->rejected.off;
    case F_REFERENCE:
        return &ds->reference.off;
    case F_REFERENCE_TEXT:
        return &ds->ref_text_off;
    case F_COMPLETION:
        return &ds->completion.off;
    default:
        LC_ASSERT(0 && "unknown field");
        return NULL;
    }
}

// Checks an offsets array of n+1 entries against the length of the values it indexes.
static int offsets_check(const Dataset *ds, const FieldSpec *fs, const int64_t *off, int64_t n,
                         int64_t values_len, char *err, size_t errlen) {
    if (off[0] != 0)
        return lc_error(err, errlen, "%s: array '%s' starts at %" PRId64 ", expected 0", ds->path,
                        fs->offsets, off[0]);
    for (int64_t i = 0; i < n; i++)
        if (off[i + 1] < off[i])
            return lc_error(err, errlen,
                            "%s: array '%s' decreases at index %" PRId64 " (%" PRId64 " -> %" PRId64
                            ")",
                            ds->path, fs->offsets, i + 1, off[i], off[i + 1]);
    if (off[n] != values_len)
        return lc_error(err, errlen,
                        "%s: array '%s' ends at %" PRId64 " but '%s' has %" PRId64 " values",
                        ds->path, fs->offsets, off[n], fs->values, values_len);
    return 0;
}

// Opens field f's values and offsets arrays and reads and checks the offsets.
static int field_open(Dataset *ds, Field f, char *err, size_t errlen) {
    const FieldSpec *fs = &FIELDS[f];
    DatasetFile *df = ds->file;
    int missing = 0;
    df->values[f] =
        array_open(ds, fs->values, &df->len[f], fs->optional ? &missing : NULL, err, errlen);
    if (missing) {
        *field_offsets(ds, f) = lc_calloc((size_t)ds->n + 1, sizeof(int64_t));
        return 0;
    }
    if (df->values[f] < 0) return -1;
    if (fs->per_example) {
        if (df->len[f] != ds->n)
            return lc_error(err, errlen,
                            "%s: array '%s' has %" PRId64 " values, expected %" PRId64
                            " (one per example)",
                            ds->path, fs->values, df->len[f], ds->n);
        return 0;
    }
    if (!fs->offsets) {
        int64_t want = ds->tokens.off[ds->n];
        if (df->len[f] != want)
            return lc_error(err, errlen,
                            "%s: array '%s' has %" PRId64 " values, 'tokens' has %" PRId64,
                            ds->path, fs->values, df->len[f], want);
        return 0;
    }
    int64_t len;
    hid_t dset = array_open(ds, fs->offsets, &len, NULL, err, errlen);
    if (dset < 0) return -1;
    int rc = -1;
    if (len < 1)
        lc_error(err, errlen, "%s: array '%s' is empty (it needs examples+1 entries)", ds->path,
                 fs->offsets);
    else if (ds->n >= 0 && len != ds->n + 1)
        lc_error(err, errlen,
                 "%s: array '%s' has %" PRId64 " entries, expected %" PRId64
                 " (examples+1, as in the other offsets arrays)",
                 ds->path, fs->offsets, len, ds->n + 1);
    else
        rc = 0;
    if (rc == 0) {
        ds->n = len - 1;
        int64_t *off = lc_malloc((size_t)len * sizeof(int64_t));
        *field_offsets(ds, f) = off;
        if (array_read(dset, ELEM_I64, 0, len, off) < 0)
            rc = lc_error(err, errlen, "%s: cannot read array '%s'", ds->path, fs->offsets);
        else
            rc = offsets_check(ds, fs, off, ds->n, df->len[f], err, errlen);
    }
    H5Dclose(dset);
    return rc;
}

static int dataset_open_file(Dataset *ds, char *err, size_t errlen) {
    if (access(ds->path, R_OK) != 0)
        return lc_error(err, errlen, "%s: cannot open (%s)", ds->path, strerror(errno));
    if (H5Fis_hdf5(ds->path) <= 0) return lc_error(err, errlen, "%s: not an HDF5 file", ds->path);
    ds->file->file = H5Fopen(ds->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (ds->file->file < 0) return lc_error(err, errlen, "%s: cannot open as HDF5", ds->path);
    return 0;
}

Dataset *dataset_open(const char *path, DataKind want, char *err, size_t errlen) {
    silence_hdf5();
    Dataset *ds = lc_calloc(1, sizeof(*ds));
    ds->path = str_dup(path);
    ds->n = -1;
    ds->file = lc_calloc(1, sizeof(*ds->file));
    ds->file->file = -1;
    for (int f = 0; f < F_COUNT; f++) ds->file->values[f] = -1;
    if (dataset_open_file(ds, err, errlen) < 0 || header_check(ds, want, err, errlen) < 0)
        goto fail;
    const KindFields *kf = &KIND_FIELDS[ds->kind];
    for (int i = 0; i < kf->count; i++)
        if (field_open(ds, kf->f[i], err, errlen) < 0) goto fail;
    for (int i = 0; i < kf->count; i++)
        if (FIELDS[kf->f[i]].is_ids) ds->n_tokens += ds->file->len[kf->f[i]];
    return ds;
fail:
    dataset_free(ds);
    return NULL;
}

int dataset_check_fingerprint(const Dataset *ds, uint64_t fingerprint, char *err, size_t errlen) {
    if (ds->fingerprint == fingerprint) return 0;
    char have[17], want[17];
    dataset_fingerprint_hex(ds->fingerprint, have);
    dataset_fingerprint_hex(fingerprint, want);
    return lc_error(err, errlen,
                    "%s: tokenizer fingerprint %s does not match the tokenizer's %s (the "
                    "dataset was made with another tokenizer; re-import it)",
                    ds->path, have, want);
}

// Writes the integer stored at index i of a values array into buf, as the file holds it: ids
// are read as int, which clips a larger stored value (int64, uint32, ...) to INT_MAX.
static void stored_value(hid_t dset, int64_t i, char *buf, size_t len) {
    hid_t type = H5Dget_type(dset);
    int is_unsigned = type >= 0 && H5Tget_sign(type) == H5T_SGN_NONE;
    if (type >= 0) H5Tclose(type);
    hsize_t at = (hsize_t)i, one = 1;
    hid_t fspace = H5Dget_space(dset), mspace = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &at, NULL, &one, NULL);
    uint64_t u = 0;
    int64_t v = 0;
    herr_t rc = is_unsigned ? H5Dread(dset, H5T_NATIVE_UINT64, mspace, fspace, H5P_DEFAULT, &u)
                            : H5Dread(dset, H5T_NATIVE_INT64, mspace, fspace, H5P_DEFAULT, &v);
    H5Sclose(mspace);
    H5Sclose(fspace);
    if (rc < 0)
        snprintf(buf, len, "(unreadable)");
    else if (is_unsigned)
        snprintf(buf, len, "%" PRIu64, u);
    else
        snprintf(buf, len, "%" PRId64, v);
}

// Checks ids[0..n), read from field f's values at index base, against 0 <= id < vocab_size.
// INT_MAX is never an id: it is what a larger stored value becomes when read as int.
static int ids_check(const Dataset *ds, Field f, const int *ids, int64_t n, int64_t base,
                     int vocab_size, char *err, size_t errlen) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] == INT_MAX || (vocab_size > 0 && ids[i] >= vocab_size)) {
            char id[32];
            stored_value(ds->file->values[f], base + i, id, sizeof(id));
            return lc_error(err, errlen,
                            "%s: array '%s' holds token id %s at index %" PRId64
                            ", outside the vocabulary (0..%d)",
                            ds->path, FIELDS[f].values, id, base + i,
                            vocab_size > 0 ? vocab_size - 1 : INT_MAX - 1);
        }
    return 0;
}

// Checks that the values of a 0/1 array (loss_mask, label) are 0 or 1.
static int mask_check(const Dataset *ds, const char *name, const uint8_t *m, int64_t n, char *err,
                      size_t errlen) {
    for (int64_t i = 0; i < n; i++)
        if (m[i] > 1)
            return lc_error(err, errlen,
                            "%s: array '%s' holds %d at index %" PRId64 ", expected 0 or 1",
                            ds->path, name, m[i], i);
    return 0;
}

static void field_set_values(Dataset *ds, Field f, void *v) {
    switch (f) {
    case F_TOKENS:
    case F_PROMPT:
        ds->tokens.ids = v;
        break;
    case F_LOSS_MASK:
        ds->loss_mask = v;
        break;
    case F_CHOSEN:
        ds->chosen.ids = v;
        break;
    case F_REJECTED:
        ds->rejected.ids = v;
        break;
    case F_REFERENCE:
        ds->reference.ids = v;
        break;
    case F_REFERENCE_TEXT:
        ds->ref_text = v;
        break;
    case F_COMPLETION:
        ds->completion.ids = v;
        break;
    case F_LABEL:
        ds->label = v;
        break;
    default:
        LC_ASSERT(0 && "unknown field");
    }
}

static int field_load(Dataset *ds, Field f, int vocab_size, char *err, size_t errlen) {
    const FieldSpec *fs = &FIELDS[f];
    hid_t dset = ds->file->values[f];
    int64_t len = dset >= 0 ? ds->file->len[f] : 0;
    void *v = lc_malloc((size_t)len * elem_size(fs->elem) + (fs->elem == ELEM_U8));
    field_set_values(ds, f, v);
    if (dset >= 0 && array_read(dset, fs->elem, 0, len, v) < 0)
        return lc_error(err, errlen, "%s: cannot read array '%s'", ds->path, fs->values);
    if (fs->is_ids) return ids_check(ds, f, v, len, 0, vocab_size, err, errlen);
    if (f == F_LOSS_MASK || f == F_LABEL) return mask_check(ds, fs->values, v, len, err, errlen);
    ((char *)v)[len] = '\0'; // reference text: NUL after the last answer, for printing
    return 0;
}

int dataset_load(Dataset *ds, int vocab_size, char *err, size_t errlen) {
    const KindFields *kf = &KIND_FIELDS[ds->kind];
    for (int i = 0; i < kf->count; i++)
        if (field_load(ds, kf->f[i], vocab_size, err, errlen) < 0) return -1;
    return 0;
}

int dataset_read_tokens(Dataset *ds, int64_t start, int64_t count, int *out, int vocab_size,
                        char *err, size_t errlen) {
    LC_ASSERT(ds->kind == DATA_LM || ds->kind == DATA_SFT);
    LC_ASSERT(start >= 0 && count >= 0 && start + count <= ds->file->len[F_TOKENS]);
    if (array_read(ds->file->values[F_TOKENS], ELEM_I32, start, count, out) < 0)
        return lc_error(err, errlen, "%s: cannot read array 'tokens' at %" PRId64, ds->path, start);
    return ids_check(ds, F_TOKENS, out, count, start, vocab_size, err, errlen);
}

int dataset_check_tokens(Dataset *ds, int vocab_size, char *err, size_t errlen) {
    int64_t n = ds->file->len[F_TOKENS];
    int *buf = lc_malloc((size_t)CHUNK * sizeof(int)); // one chunk of the file at a time
    int rc = 0;
    for (int64_t at = 0; at < n && rc == 0; at += CHUNK)
        rc = dataset_read_tokens(ds, at, n - at < CHUNK ? n - at : CHUNK, buf, vocab_size, err,
                                 errlen);
    free(buf);
    return rc;
}

Example dataset_example(const Dataset *ds, int64_t i) {
    LC_ASSERT(i >= 0 && i < ds->n);
    Example ex = {0};
    const int64_t *o = ds->tokens.off;
    ex.tokens = ds->tokens.ids + o[i];
    ex.n_tokens = o[i + 1] - o[i];
    if (ds->loss_mask) ex.loss_mask = ds->loss_mask + o[i];
    if (ds->kind == DATA_PREFERENCE) {
        ex.chosen = ds->chosen.ids + ds->chosen.off[i];
        ex.n_chosen = ds->chosen.off[i + 1] - ds->chosen.off[i];
        ex.rejected = ds->rejected.ids + ds->rejected.off[i];
        ex.n_rejected = ds->rejected.off[i + 1] - ds->rejected.off[i];
    }
    if (ds->kind == DATA_PROMPT) {
        ex.reference = ds->reference.ids + ds->reference.off[i];
        ex.n_reference = ds->reference.off[i + 1] - ds->reference.off[i];
        ex.reference_text = ds->ref_text + ds->ref_text_off[i];
        ex.n_reference_text = ds->ref_text_off[i + 1] - ds->ref_text_off[i];
    }
    if (ds->kind == DATA_UNPAIRED) {
        ex.completion = ds->completion.ids + ds->completion.off[i];
        ex.n_completion = ds->completion.off[i + 1] - ds->completion.off[i];
        ex.label = ds->label[i];
    }
    return ex;
}

void dataset_free(Dataset *ds) {
    if (!ds) return;
    if (ds->file) {
        for (int f = 0; f < F_COUNT; f++)
            if (ds->file->values[f] >= 0) H5Dclose(ds->file->values[f]);
        if (ds->file->file >= 0) H5Fclose(ds->file->file);
        free(ds->file);
    }
    free(ds->tokens.off);
    free(ds->tokens.ids);
    free(ds->loss_mask);
    free(ds->chosen.off);
    free(ds->chosen.ids);
    free(ds->rejected.off);
    free(ds->rejected.ids);
    free(ds->reference.off);
    free(ds->reference.ids);
    free(ds->ref_text_off);
    free(ds->ref_text);
    free(ds->completion.off);
    free(ds->completion.ids);
    free(ds->label);
    free(ds->path);
    free(ds);
}
