// data/tokenizer.h: the tokenizers of real pretrained models and layercake's own: byte-level BPE
// (GPT-2's encoder.json + vocab.bpe, Hugging Face tokenizer.json as GPT-2, Llama 3, SmolLM and
// Qwen2 ship it, layercake's trained JSON file), SentencePiece models (tokenizer.model, through
// libsentencepiece) and llama2.c's tokenizer .bin. Byte-level BPE encodes any byte string
// exactly, invalid UTF-8 included: decode(encode(s)) == s (docs/tokenizer.md has the kinds'
// rules and exceptions).
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

// Loads a tokenizer, its kind chosen by what path is (docs/tokenizer.md, "Loading"): a folder
// holding tokenizer.json (Hugging Face's or layercake's), tokenizer.model (SentencePiece) or
// GPT-2's encoder.json and vocab.bpe; a JSON file (told apart by its structure); a llama2.c
// tokenizer ending in .bin; a SentencePiece .model file. tokenizer_config.json and config.json
// beside it give BOS, EOS, PAD and the chat template. On failure returns NULL and writes a message
// naming the file (and line, or JSON key, where there is one) into err.
Tokenizer *tokenizer_load(const char *path, char *err, size_t errlen);
void tokenizer_free(Tokenizer *tok);

// Number of token ids (including special tokens); ids are 0 .. vocab_size-1.
int tokenizer_vocab_size(const Tokenizer *tok);

// Encodes len bytes of text into ids (a malloc'd array the caller frees), returning the count.
// Special-token strings (e.g. "<|endoftext|>") in the text become their ids when
// allow_special is nonzero, and are encoded as plain text otherwise (a tokenizer.json's
// non-special added tokens always match; SentencePiece and llama2.c never read control tokens
// from text, whatever allow_special says). No BOS or EOS is added.
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int allow_special,
                     int **ids);

// Decodes n ids into a malloc'd byte string (NUL-terminated for convenience; *len excludes the
// NUL). Returns NULL if an id is out of range.
char *tokenizer_decode(const Tokenizer *tok, const int *ids, int n, size_t *len);

// The id of a special token by its text ("<|endoftext|>", "<|user|>", "<s>", ...), or -1: a
// tokenizer.json's added tokens, SentencePiece's control and unknown pieces, llama2.c's <unk>,
// <s> and </s>.
int tokenizer_special(const Tokenizer *tok, const char *name);

// The end-of-text id (documents are separated by it; generation stops on it): tokenizer_eos.
int tokenizer_eot(const Tokenizer *tok);

// The beginning-of-sequence, end-of-sequence and padding ids, or -1 where the tokenizer has none:
// from tokenizer_config.json (bos_token, eos_token, pad_token), else config.json (bos_token_id,
// ...), else the kind's own (SentencePiece's model, llama2.c's 1 and 2, <|endoftext|> as EOS).
// tokenizer_encode never adds them.
int tokenizer_bos(const Tokenizer *tok);
int tokenizer_eos(const Tokenizer *tok);
int tokenizer_pad(const Tokenizer *tok);

// Which kind: "layercake", "gpt2", "hf-bpe", "sentencepiece", "llama2c".
const char *tokenizer_kind(const Tokenizer *tok);

// The chat_template string of the folder's tokenizer_config.json, or NULL.
const char *tokenizer_chat_template(const Tokenizer *tok);

// 64-bit FNV-1a hash over the vocabulary bytes, merges and special tokens, printed as 16 hex
// digits in files; datasets and checkpoints record it and loaders compare it.
uint64_t tokenizer_fingerprint(const Tokenizer *tok);

// The bytes of token id (not NUL-terminated; a special token's bytes are its text; a
// SentencePiece or llama2.c byte token's, its byte; U+2581 in a SentencePiece piece is a space),
// or NULL if id is out of range.
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
// docs/tokenizer.md). Returns 0, or -1 with a message naming the file (also for the other
// kinds, which that format cannot hold: tokenizer_export_hf writes them).
int tokenizer_save(const Tokenizer *tok, const char *path, char *err, size_t errlen);

// Writes the tokenizer files a Hugging Face folder needs into dir (created if missing):
// tokenizer.json (trained and hf-bpe tokenizers), tokenizer.model (SentencePiece and llama2.c),
// or vocab.json + merges.txt (GPT-2), with tokenizer_config.json and special_tokens_map.json
// naming BOS, EOS and PAD (and the chat template), so that transformers'
// AutoTokenizer.from_pretrained(dir), and tokenizer_load(dir), load it. Returns 0, or -1 with a
// message naming the file.
int tokenizer_export_hf(const Tokenizer *tok, const char *dir, char *err, size_t errlen);
