// data/loader.h: batch loaders over layercake datasets, one behaviour per data kind, all
// filling the model's Batch (kernels/batch.h) from arrays allocated once at loader_open.
//
// Epochs and shards. An epoch is a permutation of the dataset's units (lm: windows of T
// tokens; sft: examples, or packed rows of examples; preference: pairs; prompt: prompts),
// derived from rng_derive(seed, epoch) (or the identity when shuffle is off). Global step s
// takes units [s*B*W, (s+1)*B*W) of it and rank r of W gets units s*B*W + r*B .. + B-1, so the
// ranks see disjoint shares and together every unit exactly once per epoch. Every rank runs
// the same number of steps per epoch, ceil(units / (B*W)); the last step of an epoch may hold
// empty rows (len 0, no targets). The cursor (LoaderState) is the same on every rank.
//
// Rows. Tokens are right-padded to T. A sequence s[0..n) gives inputs s[0..n-1) and targets
// s[1..n) (target t is the token after input t), so the last target is the sequence's final
// token (the end token the importer appended). Padding: token 0, target -1, mask 0, pos 0,
// seg -1. Kinds:
//   lm          windows of the token stream: row w has inputs stream[wT .. wT+T) and targets
//               one token ahead; the last window may be short. mask 1 on every target.
//   sft         one example per row, or (pack) several, each in its own segment (seg 0,1,..)
//               with positions restarting at 0; mask[t] = loss_mask of target t.
//   preference  rows 2i and 2i+1 are pair i's prompt+chosen and prompt+rejected; mask is 1 on
//               targets that are response tokens; loader_response_start gives the first such
//               position per row (prompt length - 1).
//   prompt      row b holds the prompt (len = prompt length), no targets; references via
//               loader_example_index + dataset_example(loader_dataset(l), i).
//   unpaired    row i < batch is example e's prompt+completion (mask 1 on the completion's
//               targets); row batch+i is its mismatched row: e's prompt + the completion of
//               loader_partner(e), cut to T (KTO's reference point). Both rows report e as
//               their example. Labels via dataset_example(loader_dataset(l), e).label.
#pragma once
#include "data/dataset.h"
#include "kernels/batch.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int batch;            // units per rank and step (preference: pairs; preference, unpaired:
                          // the Batch has 2*batch rows)
    int T;                // row length (the model's sequence length)
    int rank, world;      // this process's shard: 0 <= rank < world
    uint64_t seed;        // shuffle seed
    int shuffle;          // 1: a new permutation per epoch; 0: dataset order (evaluation)
    int pack;             // sft: pack several examples into a row
    int vocab_size;       // > 0: every token id must be below it
    uint64_t fingerprint; // the tokenizer's fingerprint, checked against the file; 0: unchecked
    int drop_long;        // examples that do not fit T: 0 fails loader_open, 1 leaves them out
} LoaderOptions;

// The cursor: everything needed to continue exactly where a loader stopped. Plain integers, so
// a checkpoint stores it as an array. The fields after step identify the stream it belongs to
// and must match on restore.
typedef struct {
    int64_t epoch; // current epoch, from 0
    int64_t step;  // batches already returned in this epoch
    int64_t seed;  // LoaderOptions.seed (as bits)
    int64_t units; // units per epoch
    int64_t batch; // LoaderOptions.batch
    int64_t world; // LoaderOptions.world
} LoaderState;

typedef struct Loader Loader;

// Opens path, which must be a dataset of the given kind, and allocates the batch arrays.
// Returns NULL with a message in err on any problem with the file or the options.
Loader *loader_open(const char *path, DataKind kind, const LoaderOptions *opt, char *err,
                    size_t errlen);
// Fills b (pointers into the loader's arrays, valid until the next call) with the next batch,
// moving to the next epoch after the last step of one. Returns the number of units in this
// rank's batch (0 .. batch; 0 can happen at the end of an epoch), or -1 on a read error
// (message from loader_error).
int loader_next(Loader *l, Batch *b);
const char *loader_error(const Loader *l);

LoaderState loader_state(const Loader *l);
// Continues from a saved cursor. Fails (message in err) if it belongs to another stream. A cursor
// of another number of processes (world) continues at the same point of the stream when that is
// a step boundary here too (data parallelism resumed on another number of processes).
int loader_restore(Loader *l, const LoaderState *s, char *err, size_t errlen);

int loader_rows(const Loader *l); // rows of each Batch (batch, or 2*batch)
// Unpaired: the example whose completion follows example e's prompt in e's mismatched row. A
// fixed cycle over a seeded permutation of all n examples (e itself when n = 1), independent of
// the loader's options.
int64_t loader_partner(const Loader *l, int64_t e);
int64_t loader_steps_per_epoch(const Loader *l);
int64_t loader_units(const Loader *l);   // units per epoch (before packing for sft)
int64_t loader_dropped(const Loader *l); // examples left out by drop_long
// Per-row position of the first response target (sft, preference), valid after loader_next;
// (rows). For rows without one it is len.
const int *loader_response_start(const Loader *l);
// The dataset index of the example in segment seg of row (lm: the window index), or -1 for
// an empty row or segment; valid after loader_next.
int64_t loader_example_index(const Loader *l, int row, int seg);
const Dataset *loader_dataset(const Loader *l);
void loader_free(Loader *l);
