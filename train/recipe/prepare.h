// train/recipe/prepare.h: a recipe's `prepare` commands: layercake command lines (data synth, data
// import, tokenizer train) that make the files the recipe trains on, so that a recipe runs on
// a fresh clone with nothing made by hand. Each runs in the recipe's folder (so its relative
// paths mean what the recipe's do) and is skipped when its --out path already exists.
#pragma once
#include "train/recipe/recipe.h"
#include <stdbool.h>

// Runs the commands that still have work to do, in order, as child processes of this binary.
// Returns 0, or 1 after printing which command failed.
int prepare_run(const Recipe *r);

// Whether path will be made by a prepare command (it lies inside one's --out path) that has
// not produced it yet: `validate` does not require such files to exist.
bool prepare_will_make(const Recipe *r, const char *path);
