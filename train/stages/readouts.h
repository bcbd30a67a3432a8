// train/stages/readouts.h: reward models: the transformer trunk with the scalar head, read at the
// last real token of each row. Rows hold a sequence's inputs (prompt + response without its final
// end token, see docs/datasets.md), so the score is read where the response's last token
// sits; rollouts are scored the same way.
#pragma once
#include "model/gpt2.h"

// out (B) = the scalar head at position len[b]-1 of each row of b (NAN for an empty row).
// b->len must be set. One forward pass of rm.
void reward_scores(GPT2 *rm, const Batch *b, float *out);
