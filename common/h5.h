// common/h5.h: the few HDF5 operations layercake's files use, with errors as return codes
// (HDF5's own error printing is turned off by h5_quiet). Arrays are written chunked with a
// Fletcher-32 checksum, so corruption fails the read instead of loading silently.
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

// Silences HDF5's automatic error stack printing (we report errors ourselves).
void h5_quiet(void);

int h5_write_attr_i64(hid_t obj, const char *name, int64_t v);
int h5_write_attr_f64(hid_t obj, const char *name, double v);
int h5_write_attr_str(hid_t obj, const char *name, const char *v);
// Each returns 0, or -1 if the attribute is missing or of another type.
int h5_read_attr_i64(hid_t obj, const char *name, int64_t *v);
int h5_read_attr_f64(hid_t obj, const char *name, double *v);
int h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t len);

// A dataset-creation property list (H5Pclose it) for an array of this shape: chunked by
// slices of the outermost dimension, with a Fletcher-32 checksum.
hid_t h5_checksummed_layout(int ndim, const hsize_t *dims);

// Writes an n-dimensional float32 or int64 array (checksummed); 0 or -1.
int h5_write_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *x);
int h5_write_i64(hid_t loc, const char *name, int ndim, const hsize_t *dims, const int64_t *x);
int h5_write_f64(hid_t loc, const char *name, int ndim, const hsize_t *dims, const double *x);
// Reads a whole float32/int64 array of exactly n elements; 0, or -1 (missing, other size,
// checksum failure).
int h5_read_f32(hid_t loc, const char *name, float *x, size_t n);
int h5_read_i64(hid_t loc, const char *name, int64_t *x, size_t n);
int h5_read_f64(hid_t loc, const char *name, double *x, size_t n);

// Writes text as a variable-length string dataset; reads it back malloc'd (NULL if absent).
int h5_write_text(hid_t loc, const char *name, const char *text);
char *h5_read_text(hid_t loc, const char *name);
