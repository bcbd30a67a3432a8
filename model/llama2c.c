// model/llama2c.c: llama2.c's legacy .bin checkpoints read into Llama-family models.
#include "model/llama2c.h"
#include "common/check.h"
#include "common/error.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "llama2c.c reads little-endian data in place: a little-endian host only"
#endif

enum { HEADER_BYTES = 28, DIM_MAX = 1 << 20, LAYERS_MAX = 1 << 12 };

// The header's fields and the file size they imply.
typedef struct {
    int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
    uint64_t bytes;
} Header;

static int header_parse(const char *path, const int32_t *v, Header *h, char *err, size_t errlen) {
    static const char *const NAMES[7] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                         "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++) {
        int32_t x = i == 5 && v[i] < 0 && v[i] != INT32_MIN ? -v[i] : v[i];
        int32_t max = i == 2 ? LAYERS_MAX : DIM_MAX;
        if (x < 1 || x > max)
            return lc_error(err, errlen,
                            "%s: header field %s is %d, outside [1, %d] (not a llama2.c legacy "
                            ".bin?)",
                            path, NAMES[i], v[i], max);
    }
    *h = (Header){v[0], v[1], v[2], v[3], v[4], v[5], v[6], 0};
    if (h->dim % h->heads != 0)
        return lc_error(err, errlen, "%s: dim %d is not a multiple of n_heads %d", path, h->dim,
                        h->heads);
    if (h->heads % h->kv_heads != 0)
        return lc_error(err, errlen, "%s: n_kv_heads %d does not divide n_heads %d", path,
                        h->kv_heads, h->heads);
    if ((h->dim / h->heads) % 2 != 0)
        return lc_error(err, errlen, "%s: head size %d is odd: RoPE rotates pairs", path,
                        h->dim / h->heads);
    uint64_t C = (uint64_t)h->dim, F = (uint64_t)h->hidden, L = (uint64_t)h->layers;
    uint64_t V = (uint64_t)(h->vocab < 0 ? -h->vocab : h->vocab), T = (uint64_t)h->seq_len;
    uint64_t kv = C / (uint64_t)h->heads * (uint64_t)h->kv_heads, hs = C / (uint64_t)h->heads;
    uint64_t floats = V * C + L * C + L * C * C + 2 * L * kv * C + L * C * C + L * C +
                      3 * L * F * C + C + 2 * T * (hs / 2) + (h->vocab < 0 ? V * C : 0);
    h->bytes = HEADER_BYTES + 4 * floats;
    return 0;
}

// Reads the header of an open file and checks its size against it.
static int header_read(FILE *f, const char *path, Header *h, char *err, size_t errlen) {
    struct stat st;
    int32_t v[7];
    if (fstat(fileno(f), &st) != 0) return lc_error(err, errlen, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return lc_error(err, errlen, "%s: not a regular file", path);
    if (st.st_size < HEADER_BYTES || fread(v, 4, 7, f) != 7)
        return lc_error(err, errlen, "%s: %lld bytes, shorter than the %d-byte header", path,
                        (long long)st.st_size, HEADER_BYTES);
    if (header_parse(path, v, h, err, errlen)) return -1;
    if ((uint64_t)st.st_size != h->bytes)
        return lc_error(err, errlen,
                        "%s: the file has %lld bytes, but its header (dim %d, hidden_dim %d, "
                        "n_layers %d, n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d) "
                        "needs exactly %llu (%s)",
                        path, (long long)st.st_size, h->dim, h->hidden, h->layers, h->heads,
                        h->kv_heads, h->vocab, h->seq_len, (unsigned long long)h->bytes,
                        (uint64_t)st.st_size < h->bytes ? "truncated" : "extra bytes at the end");
    return 0;
}

static ModelConfig header_config(const Header *h) {
    int V = h->vocab < 0 ? -h->vocab : h->vocab;
    ModelConfig c =
        model_config_default(MODEL_FAMILY_LLAMA, h->layers, h->heads, h->dim, V, h->seq_len);
    c.n_kv_head = h->kv_heads;
    c.d_ff = h->hidden;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.qkv_bias = false;
    c.tied = h->vocab > 0;
    return c;
}

int llama2c_read_config(const char *path, ModelConfig *cfg, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return lc_error(err, errlen, "%s: %s", path, strerror(errno));
    Header h;
    int rc = header_read(f, path, &h, err, errlen);
    fclose(f);
    if (rc == 0) *cfg = header_config(&h);
    return rc;
}

// Reads n floats into dst.
static int read_floats(FILE *f, float *dst, size_t n, const char *path, const char *what, char *err,
                       size_t errlen) {
    if (fread(dst, sizeof(float), n, f) != n)
        return lc_error(err, errlen, "%s: reading %s failed (%s)", path, what,
                        ferror(f) ? strerror(errno) : "the file ended early");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return lc_error(err, errlen, "%s: %s holds a non-finite value at element %zu", path,
                            what, i);
    return 0;
}

// Reads `rows` rows of C floats of wq or wk (one layer) into dst, the rows of each head of hs
// permuted from interleaved pairs to halves: row 2i+r of a head goes to row r*hs/2 + i.
static int read_rotated(FILE *f, float *dst, float *tmp, int rows, int C, int hs, const char *path,
                        const char *what, char *err, size_t errlen) {
    if (read_floats(f, tmp, (size_t)rows * C, path, what, err, errlen)) return -1;
    for (int row = 0; row < rows; row++) {
        int head = row / hs, j = row % hs, i = j / 2, r = j % 2;
        int to = head * hs + r * (hs / 2) + i;
        memcpy(dst + (size_t)to * C, tmp + (size_t)row * C, sizeof(float) * (size_t)C);
    }
    return 0;
}

static float *param(const Model *m, float *host, const char *name) {
    int i = tensor_table_find(&m->table, name);
    LC_ASSERT(i >= 0);
    return host + m->table.info[i].offset;
}

// Reads the arrays after the header, in the file's order (every layer's wq, then every layer's
// wk, ...), into the host arena.
static int read_arrays(FILE *f, const Model *m, const Header *h, float *host, const char *path,
                       char *err, size_t errlen) {
    const ModelConfig *c = &m->cfg;
    size_t C = (size_t)c->d_model, F = (size_t)c->d_ff, L = (size_t)c->n_layer;
    size_t V = (size_t)c->vocab_size, Q = (size_t)m->qkv_dim, kv = (size_t)c->n_kv_head * m->hs;
    float *qkvw = param(m, host, "qkvw"), *fcw = param(m, host, "fcw");
    float *tmp = lc_malloc(sizeof(float) * (C > F ? C : F) * C);
    int rc =
        read_floats(f, param(m, host, "wte"), V * C, path, "token_embedding_table", err, errlen);
    if (!rc)
        rc = read_floats(f, param(m, host, "ln1w"), L * C, path, "rms_att_weight", err, errlen);
    for (size_t l = 0; l < L && !rc; l++)
        rc = read_rotated(f, qkvw + l * Q * C, tmp, (int)C, (int)C, m->hs, path, "wq", err, errlen);
    for (size_t l = 0; l < L && !rc; l++)
        rc = read_rotated(f, qkvw + l * Q * C + C * C, tmp, (int)kv, (int)C, m->hs, path, "wk", err,
                          errlen);
    for (size_t l = 0; l < L && !rc; l++)
        rc = read_floats(f, qkvw + l * Q * C + (C + kv) * C, kv * C, path, "wv", err, errlen);
    if (!rc) rc = read_floats(f, param(m, host, "attprojw"), L * C * C, path, "wo", err, errlen);
    if (!rc)
        rc = read_floats(f, param(m, host, "ln2w"), L * C, path, "rms_ffn_weight", err, errlen);
    for (size_t l = 0; l < L && !rc; l++) // w1: the gate, rows 0..F of fcw
        rc = read_floats(f, fcw + l * 2 * F * C, F * C, path, "w1", err, errlen);
    if (!rc) rc = read_floats(f, param(m, host, "fcprojw"), L * C * F, path, "w2", err, errlen);
    for (size_t l = 0; l < L && !rc; l++) // w3: the up projection, rows F..2F
        rc = read_floats(f, fcw + l * 2 * F * C + F * C, F * C, path, "w3", err, errlen);
    if (!rc) rc = read_floats(f, param(m, host, "lnfw"), C, path, "rms_final_weight", err, errlen);
    // freq_cis_real and freq_cis_imag (seq_len x hs/2 each): RoPE tables layercake computes
    long skip = (long)(2 * (size_t)h->seq_len * (size_t)(m->hs / 2) * sizeof(float));
    if (!rc && fseek(f, skip, SEEK_CUR) != 0)
        rc = lc_error(err, errlen, "%s: seeking past freq_cis failed", path);
    if (!rc && !c->tied)
        rc = read_floats(f, param(m, host, "lmw"), V * C, path, "wcls", err, errlen);
    free(tmp);
    return rc;
}

Model *llama2c_model_load(const Backend *be, const char *path, int heads, ModelMode mode, int max_B,
                          int max_T, uint64_t seed, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        lc_error(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    Header h;
    Model *m = NULL;
    if (header_read(f, path, &h, err, errlen) == 0) {
        ModelConfig cfg = header_config(&h);
        const char *bad = model_config_check(&cfg);
        if (bad) {
            lc_error(err, errlen, "%s: not a configuration layercake runs: %s", path, bad);
        } else {
            int T = max_T < cfg.max_seq_len ? max_T : cfg.max_seq_len;
            m = model_create(be, cfg, heads ? heads : MODEL_HEAD_LM, mode, max_B, T > 0 ? T : 1);
            model_init_weights(m, seed); // padded vocabulary rows zero; a scalar head from seed
            float *host = lc_malloc(m->table.numel * sizeof(float));
            model_params_to_host(m, host);
            if (read_arrays(f, m, &h, host, path, err, errlen) == 0) {
                model_params_from_host(m, host);
            } else {
                model_free(m);
                m = NULL;
            }
            free(host);
        }
    }
    fclose(f);
    return m;
}
