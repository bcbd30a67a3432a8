// data/tokenizer_spm.cc: the C interface of data/tokenizer_spm.h over libsentencepiece's
// SentencePieceProcessor. Nothing but forwarding: no exception leaves a function (the library
// reports errors through util::Status; allocation failures end the program, as lc_malloc does).
#include "data/tokenizer_spm.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sentencepiece_processor.h>
#include <string>
#include <vector>

struct SpmModel {
    sentencepiece::SentencePieceProcessor sp;
};

static void *xmalloc(size_t n) {
    void *p = std::malloc(n ? n : 1);
    if (!p) {
        std::fprintf(stderr, "fatal: out of memory (%zu bytes)\n", n);
        std::abort();
    }
    return p;
}

extern "C" SpmModel *spm_model_load(const char *bytes, size_t len, char *err, size_t errlen) {
    SpmModel *m = new (std::nothrow) SpmModel;
    if (!m) return nullptr;
    const auto status = m->sp.LoadFromSerializedProto(std::string_view(bytes, len));
    if (!status.ok()) {
        if (errlen > 0) std::snprintf(err, errlen, "%s", status.ToString().c_str());
        delete m;
        return nullptr;
    }
    return m;
}

extern "C" void spm_model_free(SpmModel *m) {
    delete m;
}

extern "C" int spm_model_encode(const SpmModel *m, const char *text, size_t len, int **ids,
                                char *err, size_t errlen) {
    std::vector<int> out;
    const auto status = m->sp.Encode(std::string_view(text, len), &out);
    if (!status.ok()) {
        if (errlen > 0) std::snprintf(err, errlen, "%s", status.ToString().c_str());
        return -1;
    }
    *ids = static_cast<int *>(xmalloc(out.size() * sizeof(int)));
    if (!out.empty()) std::memcpy(*ids, out.data(), out.size() * sizeof(int));
    return static_cast<int>(out.size());
}

extern "C" char *spm_model_decode(const SpmModel *m, const int *ids, int n, size_t *len) {
    std::vector<int> in(ids, ids + n);
    std::string text;
    if (!m->sp.Decode(in, &text).ok()) return nullptr;
    char *out = static_cast<char *>(xmalloc(text.size() + 1));
    std::memcpy(out, text.data(), text.size());
    out[text.size()] = '\0';
    *len = text.size();
    return out;
}

extern "C" int spm_model_size(const SpmModel *m) {
    return m->sp.GetPieceSize();
}

extern "C" const char *spm_model_piece(const SpmModel *m, int id, size_t *len) {
    const std::string &piece = m->sp.IdToPiece(id);
    *len = piece.size();
    return piece.data();
}

extern "C" int spm_model_type(const SpmModel *m, int id) {
    if (m->sp.IsControl(id)) return SPM_CONTROL;
    if (m->sp.IsUnknown(id)) return SPM_UNKNOWN;
    if (m->sp.IsUnused(id)) return SPM_UNUSED;
    if (m->sp.IsByte(id)) return SPM_BYTE;
    return SPM_NORMAL;
}

extern "C" char *spm_model_serialized(const SpmModel *m, size_t *len) {
    const std::string bytes = m->sp.serialized_model_proto();
    char *out = static_cast<char *>(xmalloc(bytes.size()));
    if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
    *len = bytes.size();
    return out;
}

extern "C" int spm_model_bos(const SpmModel *m) {
    return m->sp.bos_id();
}

extern "C" int spm_model_eos(const SpmModel *m) {
    return m->sp.eos_id();
}

extern "C" int spm_model_pad(const SpmModel *m) {
    return m->sp.pad_id();
}

extern "C" int spm_model_unk(const SpmModel *m) {
    return m->sp.unk_id();
}
