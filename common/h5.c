// common/h5.c: HDF5 helpers.
#include "common/h5.h"
#include <stdlib.h>
#include <string.h>

void h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static int write_attr(hid_t obj, const char *name, hid_t type, const void *v) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

int h5_write_attr_i64(hid_t obj, const char *name, int64_t v) {
    return write_attr(obj, name, H5T_NATIVE_INT64, &v);
}

int h5_write_attr_f64(hid_t obj, const char *name, double v) {
    return write_attr(obj, name, H5T_NATIVE_DOUBLE, &v);
}

int h5_write_attr_str(hid_t obj, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    int rc = write_attr(obj, name, t, v);
    H5Tclose(t);
    return rc;
}

static int read_attr(hid_t obj, const char *name, hid_t type, void *v, H5T_class_t want) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    int ok = H5Tget_class(ft) == want && H5Aread(a, type, v) >= 0;
    H5Tclose(ft);
    H5Aclose(a);
    return ok ? 0 : -1;
}

int h5_read_attr_i64(hid_t obj, const char *name, int64_t *v) {
    return read_attr(obj, name, H5T_NATIVE_INT64, v, H5T_INTEGER);
}

int h5_read_attr_f64(hid_t obj, const char *name, double *v) {
    return read_attr(obj, name, H5T_NATIVE_DOUBLE, v, H5T_FLOAT);
}

int h5_read_attr_str(hid_t obj, const char *name, char *buf, size_t len) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len);
    int rc = read_attr(obj, name, t, buf, H5T_STRING);
    buf[len - 1] = '\0';
    H5Tclose(t);
    return rc;
}

hid_t h5_checksummed_layout(int ndim, const hsize_t *dims) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[8];
    chunk[0] = ndim == 1 ? (dims[0] ? dims[0] : 1) : 1;
    for (int d = 1; d < ndim; d++) chunk[d] = dims[d] ? dims[d] : 1;
    H5Pset_chunk(dcpl, ndim, chunk);
    H5Pset_fletcher32(dcpl);
    return dcpl;
}

static int write_array(hid_t loc, const char *name, int ndim, const hsize_t *dims, hid_t ftype,
                       hid_t mtype, const void *x) {
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = h5_checksummed_layout(ndim, dims);
    hid_t ds = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds < 0 || H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0 ? -1 : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

int h5_write_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *x) {
    return write_array(loc, name, ndim, dims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x);
}

int h5_write_i64(hid_t loc, const char *name, int ndim, const hsize_t *dims, const int64_t *x) {
    return write_array(loc, name, ndim, dims, H5T_STD_I64LE, H5T_NATIVE_INT64, x);
}

int h5_write_f64(hid_t loc, const char *name, int ndim, const hsize_t *dims, const double *x) {
    return write_array(loc, name, ndim, dims, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x);
}

static int read_array(hid_t loc, const char *name, hid_t mtype, void *x, size_t n) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    int ok = (size_t)H5Sget_simple_extent_npoints(sp) == n &&
             H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0;
    H5Sclose(sp);
    H5Dclose(ds);
    return ok ? 0 : -1;
}

int h5_read_f32(hid_t loc, const char *name, float *x, size_t n) {
    return read_array(loc, name, H5T_NATIVE_FLOAT, x, n);
}

int h5_read_i64(hid_t loc, const char *name, int64_t *x, size_t n) {
    return read_array(loc, name, H5T_NATIVE_INT64, x, n);
}

int h5_write_text(hid_t loc, const char *name, const char *text) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds < 0 || H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text) < 0 ? -1 : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

char *h5_read_text(hid_t loc, const char *name) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return NULL;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    char *s = NULL, *out = NULL;
    if (H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s) >= 0 && s) {
        out = strdup(s);
        H5free_memory(s);
    }
    H5Tclose(t);
    H5Dclose(ds);
    return out;
}

int h5_read_f64(hid_t loc, const char *name, double *x, size_t n) {
    return read_array(loc, name, H5T_NATIVE_DOUBLE, x, n);
}
