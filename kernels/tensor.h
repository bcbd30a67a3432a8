// kernels/tensor.h: a table describing the tensors carved out of one arena. A model's
// parameters are one allocation described by such a table; its gradients and the optimiser's
// moments use the same table, so clipping, AdamW and checkpoints are flat passes over it.
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define TENSOR_MAX_DIMS 4
#define TENSOR_NAME_LEN 32

typedef struct {
    char name[TENSOR_NAME_LEN];
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    size_t offset; // in elements from the arena start
    size_t numel;
    bool decay;     // weight decay applies (matrices and embeddings; not biases or norm gains)
    float lr_scale; // the tensor's learning rate as a multiple of the optimiser's (1 unless set)
} TensorInfo;

typedef struct {
    int count;
    TensorInfo *info; // (count)
    size_t numel;     // total elements of the arena
} TensorTable;

// Appends a tensor of the given shape (ndim <= TENSOR_MAX_DIMS, dims > 0) and returns its
// offset. info must have room (the caller sizes it).
size_t tensor_table_add(TensorTable *t, const char *name, int ndim, const int *shape, bool decay);

// Index of a tensor by name, or -1.
int tensor_table_find(const TensorTable *t, const char *name);
