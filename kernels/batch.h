// kernels/batch.h: a batch of token rows, the input contract of the embedding, attention and
// classifier kernels. Host arrays; the model copies them to its backend.
//
// Rows are right-padded to T. A row may pack several examples: seg gives each token's example
// id (attention never crosses examples) and pos restarts at 0 for each example.
#pragma once

typedef struct {
    int B, T;
    int *tokens;  // (B,T) input ids
    int *targets; // (B,T) next-token ids; -1 where there is no target (padding)
    float *mask;  // (B,T) loss weight per target (1 on trained tokens, 0 elsewhere) or NULL = all 1
    int *pos;     // (B,T) position ids or NULL = t
    int *seg;     // (B,T) example ids within a row or NULL = one example per row
    int *len;     // (B) real (unpadded) tokens per row, or NULL = T
} Batch;
