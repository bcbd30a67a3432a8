// data/tokenizer_spm.h: a C interface to libsentencepiece's SentencePieceProcessor, implemented
// in data/tokenizer_spm.cc (the only C++ in layercake). Only what the tokenizer needs: loading a
// model file, encoding to ids, decoding ids, and reading the vocabulary. Builds without the
// library (LC_HAVE_SENTENCEPIECE undefined, as in tests/fuzz) leave these undefined, and the
// tokenizer refuses SentencePiece models instead.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SpmModel SpmModel;

// The types of a piece, as ModelProto.SentencePiece.Type numbers them.
enum { SPM_NORMAL = 1, SPM_UNKNOWN = 2, SPM_CONTROL = 3, SPM_UNUSED = 5, SPM_BYTE = 6 };

// Loads a serialized ModelProto (the bytes of a tokenizer.model file). On failure returns NULL
// and writes the library's message into err.
SpmModel *spm_model_load(const char *bytes, size_t len, char *err, size_t errlen);
void spm_model_free(SpmModel *m);

// Encodes len bytes into a malloc'd array of ids (*ids), returning the count, or -1 with the
// library's message in err.
int spm_model_encode(const SpmModel *m, const char *text, size_t len, int **ids, char *err,
                     size_t errlen);
// Decodes n ids (all in range) into a malloc'd NUL-terminated string of *len bytes.
char *spm_model_decode(const SpmModel *m, const int *ids, int n, size_t *len);

int spm_model_size(const SpmModel *m);
// The piece of id (in range), valid as long as the model: UTF-8, U+2581 for a space.
const char *spm_model_piece(const SpmModel *m, int id, size_t *len);
// SPM_CONTROL, SPM_UNKNOWN, SPM_UNUSED, SPM_BYTE, or SPM_NORMAL (the library's API does not tell
// user-defined pieces from normal ones).
int spm_model_type(const SpmModel *m, int id);
// The model as the library serializes it (a malloc'd copy of *len bytes).
char *spm_model_serialized(const SpmModel *m, size_t *len);
int spm_model_bos(const SpmModel *m); // -1 where the model has none
int spm_model_eos(const SpmModel *m);
int spm_model_pad(const SpmModel *m);
int spm_model_unk(const SpmModel *m);

#ifdef __cplusplus
}
#endif
