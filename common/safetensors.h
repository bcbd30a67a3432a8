// common/safetensors.h: reading and writing safetensors files (Hugging Face's tensor format),
// single or sharded, as float32, float16 or bfloat16. docs/safetensors.md describes the format,
// the checks made on open and the conversion rules.
//
// A file: an 8-byte little-endian u64 header length N, N bytes of JSON
// {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section; offsets are relative to its start. Everything a header says is checked
// on open (types, shapes against byte ranges, ranges inside the file and disjoint), so a read
// never goes outside what the header promised.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_F16, ST_BF16 } StDtype;

typedef struct {
    char *name; // tensor name
    StDtype dtype;
    int ndim; // 0..8
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    int shard;           // index of the file holding it
    uint64_t begin, end; // byte range inside that file's data section
} StTensor;

typedef struct SafeTensors SafeTensors;

// path: a .safetensors file, or a folder holding model.safetensors or
// model.safetensors.index.json (sharded: the index's weight_map names the shard of every
// tensor). Returns NULL with a message in err naming the file and what is wrong. Tensors are
// listed file by file (shards in name order), each file's in data order.
SafeTensors *st_open(const char *path, char *err, size_t errlen);
void st_close(SafeTensors *st);

int st_count(const SafeTensors *st);
const StTensor *st_tensor(const SafeTensors *st, int i);          // 0 <= i < st_count
const StTensor *st_find(const SafeTensors *st, const char *name); // NULL if absent

// Reads tensor t converted exactly to fp32 into out (t->numel floats). 0, or -1 with err.
// Reads with pread and changes nothing in st: threads may read tensors of one st at once.
int st_read_f32(const SafeTensors *st, const StTensor *t, float *out, char *err, size_t errlen);

const char *st_dtype_name(StDtype d);             // "F32", "F16", "BF16"
int st_dtype_parse(const char *name, StDtype *d); // 0, or -1 for any other name
size_t st_dtype_size(StDtype d);                  // bytes per element: 4, 2, 2

typedef struct {
    const char *name;
    int ndim; // 0..8
    int64_t shape[ST_MAX_DIMS];
    const float *data; // (numel) row-major
} StWriteTensor;

// Writes n tensors into folder dir (created if missing) as dtype (fp32 -> f16/bf16 rounded to
// nearest even; NaN stays NaN, overflow becomes inf): one model.safetensors when the tensor
// data fits in shard_bytes (0 = never shard), else model-00001-of-0000N.safetensors ... plus
// model.safetensors.index.json ({"metadata": {"total_size": ...}, "weight_map": {name: file}})
// as Hugging Face transformers writes them. A shard is closed before the tensor that would take
// it past shard_bytes; a tensor larger than shard_bytes goes alone in its shard. Header
// metadata {"format": "pt"}; tensors laid out in the given order; the header padded with spaces
// to a multiple of 8 bytes. Every file is written atomically (temp + fsync + rename); the
// index of the other layout (a stale model.safetensors or index) is removed afterwards, so a
// folder holds one model. Returns 0, or -1 with err naming the file or tensor and the cause.
int st_write(const char *dir, const StWriteTensor *ts, int n, StDtype dtype, uint64_t shard_bytes,
             char *err, size_t errlen);

// fp32 <-> f16/bf16 bit conversions (exact upward; round to nearest even downward, NaN kept
// NaN with its sign, overflow to inf), exposed for tests.
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
uint16_t st_f32_to_bf16(float f);
