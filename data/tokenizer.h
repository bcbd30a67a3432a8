// data/tokenizer.h: byte-level BPE tokenizers: GPT-2's (loaded from encoder.json + vocab.bpe)
// and layercake's own trained ones (one JSON file). Encoding is exact on any byte string,
// invalid UTF-8 included: decode(encode(s)) == s.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

// Loads a trained tokenizer file (tok.json) or a folder holding GPT-2's encoder.json and
// vocab.bpe. On failure returns NULL and writes a message naming the file (and line, where
// there is one) into err.
Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
void tokenizer_free(Tokenizer *tok);

// Number of token ids (including special tokens); ids are 0 .. vocab_size-1.
int tokenizer_vocab_size(const Tokenizer *tok);

// Encodes len bytes of text into ids (a malloc'd array the caller frees), returning the count.
// Special-token strings (e.g. "<|endoftext|>") in the text become their ids when
// allow_special is nonzero, and are encoded as plain text otherwise.
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int allow_special,
                     int **ids);

// Decodes n ids into a malloc'd byte string (NUL-terminated for convenience; *len excludes the
// NUL). Returns NULL if an id is out of range.
char *tokenizer_decode(const Tokenizer *tok, const int *ids, int n, size_t *len);

// The id of a special token by its text ("<|endoftext|>", "<|user|>", ...), or -1.
int tokenizer_special(const Tokenizer *tok, const char *name);

// The end-of-text id (documents are separated by it; generation stops on it).
int tokenizer_eot(const Tokenizer *tok);

// 64-bit FNV-1a hash over the vocabulary bytes, merges and special tokens, printed as 16 hex
// digits in files; datasets and checkpoints record it and loaders compare it.
uint64_t tokenizer_fingerprint(const Tokenizer *tok);

// The bytes of token id (not NUL-terminated; a special token's bytes are its text), or NULL
// if id is out of range.
const char *tokenizer_token(const Tokenizer *tok, int id, size_t *len);

// Trains a byte-level BPE tokenizer with exactly vocab_size ids on the text of the given
// files (each read whole): ids 0-255 are the single bytes, then the learned tokens in merge
// order, then the special tokens <|endoftext|>, <|system|>, <|user|>, <|assistant|>, <|end|>
// and the n_specials extra ones (repeats are reserved once). Special-token texts in the corpus
// separate words and are not learned from. Deterministic: the same files, vocab_size and
// specials give the same tokenizer. On failure returns NULL with a message naming the file.
Tokenizer *tokenizer_train(const char *const *files, int n_files, int vocab_size,
                           const char *const *specials, int n_specials, char *err, size_t errlen);

// Writes the tokenizer, trained or GPT-2's, as a layercake tokenizer file (JSON, described in
// docs/tokenizer.md). Returns 0, or -1 with a message naming the file.
int tokenizer_save(const Tokenizer *tok, const char *path, char *err, size_t errlen);
