// common/h5.h: the few HDF5 operations layercake's files use, with errors as return codes
// (HDF5's own error printing is turned off by h5_quiet). Arrays are written chunked with a
// Fletcher-32 checksum, so corruption fails the read instead of loading silently.
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

// Silences HDF5's automatic error stack printing (we report errors ourselves).
void h5_quiet(void);

// Call first in main, before any other HDF5 call: h5_quiet, and no HDF5 clean-up at exit. After
// a write failed for a full disk, HDF5 1.10 keeps the file half-closed and its exit handler
// crashes closing it again; layercake closes every file itself, so the handler has nothing to
// do but crash.
void h5_init(void);

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
// Reads a whole float32/int64/float64 array of exactly n elements (any shape), stored as
// written above (little-endian IEEE or int64); 0, or -1 (missing, another type or size, checksum
// failure). Type and size are checked before reading.
int h5_read_f32(hid_t loc, const char *name, float *x, size_t n);
int h5_read_i64(hid_t loc, const char *name, int64_t *x, size_t n);
int h5_read_f64(hid_t loc, const char *name, double *x, size_t n);

// Writes text as a variable-length string dataset; reads it back malloc'd (NULL if absent).
int h5_write_text(hid_t loc, const char *name, const char *text);
char *h5_read_text(hid_t loc, const char *name);

// Whether dataset ds has exactly the file datatype type (e.g. H5T_IEEE_F32LE) and a simple
// dataspace of ndim dims. Checked before every read, so a file whose metadata says otherwise
// is refused instead of read into a buffer of another size.
int h5_dataset_is(hid_t ds, hid_t type, int ndim, const hsize_t *dims);

// ---- sealed files -------------------------------------------------------------------------
// A sealed file is an HDF5 file behind a user block of H5_SEAL_BYTES that records a digest of
// every byte after it: the text "layercake-digest v1 <16 hex digits> <byte count>\n", then
// zeros (HDF5 and h5py skip a user block). The digest is 64-bit, over 8-byte words, each word
// mixed in by a bijective round, so any change confined to one word (any one-byte flip) always
// changes it and other damage goes undetected with odds of about 2^-64. It is a checksum
// against damage, not a signature against tampering.
//
// Writing builds the file in memory (HDF5's core driver) and hands the bytes to
// fs_write_atomic: HDF5 never writes to disk, so a full disk is one checked write(2) with its
// errno, and HDF5 holds no half-written file open. Reading verifies every byte (the header
// against its canonical text, the rest against the digest) before HDF5 parses any of it.
#define H5_SEAL_BYTES 512

// Creates an empty in-memory HDF5 file expected to grow to about expected_bytes; <0 on failure.
hid_t h5_image_create(size_t expected_bytes);

// Closes the in-memory file f and writes it, sealed, to path atomically. Returns 0, or -1 with
// a message naming path and the cause ("disk full ..." when the disk is). f is closed either way.
int h5_image_commit(hid_t f, const char *path, char *err, size_t errlen);

// Checks the seal of path: 0; 1 for a plain HDF5 file without a seal (as layercake wrote before
// sealing), with the "no digest" message in err; or -1 with a message naming the file and what
// is wrong (missing, damaged header, truncated, digest mismatch).
int h5_verify(const char *path, char *err, size_t errlen);

// h5_verify, then opens path read-only; <0 with a message on failure. A file without a seal
// (written before checkpoints carried one) is refused unless the environment variable
// LC_ACCEPT_UNSEALED=1, which opens it after a warning on stderr.
hid_t h5_open_verified(const char *path, char *err, size_t errlen);
