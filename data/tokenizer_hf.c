// data/tokenizer_hf.c: Hugging Face tokenizer.json files with a byte-level BPE model (GPT-2,
// Llama 3, SmolLM, Qwen2): reading one into a tokenizer that tokenizer.c's BPE runs, the
// pre-tokenisation it describes (added tokens, NFC, Split/Digits/ByteLevel steps through PCRE2),
// and writing any byte-level BPE tokenizer back as a tokenizer.json. Also GPT-2's byte-to-unicode
// table, which every byte-level file format spells its tokens with (docs/tokenizer.md).
#define _GNU_SOURCE // memmem
#include "common/check.h"
#include "data/tokenizer-impl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- GPT-2's byte-to-unicode table --------------------------------------------------------------

static bool latin1_visible(int b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

void codec_init(ByteCodec *c) {
    int extra = 0;
    for (int cp = 0; cp < CODEC_MAX_CP; cp++) c->byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        c->cp[b] = (uint16_t)(latin1_visible(b) ? b : 256 + extra++);
        c->byte[c->cp[b]] = (int16_t)b;
    }
}

void codec_spell(const ByteCodec *c, const char *bytes, size_t n, ByteVec *out) {
    for (size_t i = 0; i < n; i++) {
        unsigned cp = c->cp[(unsigned char)bytes[i]];
        char utf8[2] = {(char)(0xc0 | (cp >> 6)), (char)(0x80 | (cp & 0x3f))};
        if (cp < 0x80)
            bytevec_append(out, &(char){(char)cp}, 1);
        else
            bytevec_append(out, utf8, 2);
    }
}

// A character outside the table, or malformed UTF-8, is not a spelling.
bool codec_read(const ByteCodec *c, const char *s, size_t n, ByteVec *out) {
    for (size_t i = 0; i < n;) {
        unsigned char u = (unsigned char)s[i];
        unsigned cp;
        if (u < 0x80) {
            cp = u;
            i += 1;
        } else if ((u & 0xe0) == 0xc0 && i + 1 < n && ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
            cp = ((u & 0x1fu) << 6) | ((unsigned char)s[i + 1] & 0x3fu);
            i += 2;
        } else {
            return false;
        }
        if (cp >= CODEC_MAX_CP || c->byte[cp] < 0) return false;
        char b = (char)c->byte[cp];
        bytevec_append(out, &b, 1);
    }
    return true;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = lc_malloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

// ---- the parsed file ---------------------------------------------------------------------------

// Hugging Face's SplitDelimiterBehavior: what becomes of the pattern's matches.
typedef enum {
    SPLIT_REMOVED,              // dropped; the text between them stays
    SPLIT_ISOLATED,             // pieces of their own
    SPLIT_MERGED_WITH_PREVIOUS, // joined to the text before
    SPLIT_MERGED_WITH_NEXT,     // joined to the text after
    SPLIT_CONTIGUOUS,           // pieces of their own, adjacent matches joined
    SPLIT_N_BEHAVIORS
} SplitBehavior;

static const char *const BEHAVIOR_NAMES[SPLIT_N_BEHAVIORS] = {
    "Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};

// One pre-tokenisation step, run on every piece the steps before it made.
typedef struct {
    pcre2_code *re; // NULL: no split (ByteLevel with use_regex false)
    char *pattern;  // re's source, for the fingerprint ("" when none)
    SplitBehavior behavior;
    bool invert;       // the pattern marks the pieces, not the delimiters
    bool prefix_space; // ByteLevel's add_prefix_space: a piece not starting with ' ' gets one
} Stage;

typedef struct {
    int id;
    bool special, lstrip, rstrip, normalized;
    char *match;      // the text to find: the content, in NFC where normalized and NFC is on
    size_t match_len; //
    char *vocab_key;  // its key in model.vocab where the id is there too, else NULL
} Added;

typedef struct {
    bool nfc; // normalizer NFC
    int n_stages;
    Stage *stages;
    int n_added;
    Added *added;           // in the file's order
    int *eligible[2][2];    // [normalized][allow_special]: indices into added
    int n_eligible[2][2];   //
    bool *in_vocab;         // (n_vocab) whether model.vocab holds the id
    json_t *normalizer;     // as the file has them, for hf_write
    json_t *pre_tokenizer;  //
    json_t *post_processor; //
    json_t *decoder;        //
} HfBpe;

static void hf_release(void *impl) {
    HfBpe *hf = impl;
    for (int i = 0; i < hf->n_stages; i++) {
        if (hf->stages[i].re) pcre2_code_free(hf->stages[i].re);
        free(hf->stages[i].pattern);
    }
    free(hf->stages);
    for (int i = 0; i < hf->n_added; i++) {
        free(hf->added[i].match);
        free(hf->added[i].vocab_key);
    }
    free(hf->added);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) free(hf->eligible[a][b]);
    free(hf->in_vocab);
    json_decref(hf->normalizer);
    json_decref(hf->pre_tokenizer);
    json_decref(hf->post_processor);
    json_decref(hf->decoder);
    free(hf);
}

// ---- pre-tokenisation --------------------------------------------------------------------------

// Hugging Face runs a tokenizer.json's pipeline on Rust strings (always valid UTF-8):
//   1. added tokens whose `normalized` is false are cut out of the text (leftmost, then longest;
//      special ones only when allow_special), lstrip/rstrip taking the whitespace beside them;
//   2. each stretch between them is normalized (NFC), and the normalized added tokens cut out;
//   3. each stretch left goes through the pre-tokenizer's steps, each splitting every piece
//      the one before made; ByteLevel is the last step;
//   4. BPE on each final piece.
// Here, before step 2, each maximal run of invalid UTF-8 becomes a piece of its own, so any bytes
// encode and decode back exactly.

typedef struct {
    const HfBpe *hf;
    int allow_special;
    PieceFn emit;
    void *ctx;
    pcre2_match_data **md; // (n_stages)
    size_t *seg;           // a stack of (start, end, is_match) triples, shared by the steps
    size_t n_seg, cap_seg;
} HfRun;

static void seg_push(HfRun *r, size_t start, size_t end, bool is_match) {
    r->seg = array_reserve(r->seg, &r->cap_seg, r->n_seg + 3, sizeof(size_t));
    r->seg[r->n_seg++] = start;
    r->seg[r->n_seg++] = end;
    r->seg[r->n_seg++] = is_match;
}

// Where the regex matches s[0, n): pushes its matches and the text between them, in order.
// After an empty match the search moves on by one character.
static void regex_segments(HfRun *r, const Stage *st, pcre2_match_data *md, const char *s,
                           size_t n) {
    size_t pos = 0, prev = 0;
    while (pos <= n) {
        int rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) LC_DIE("pcre2_match failed with error %d at byte %zu", rc, pos);
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > prev) seg_push(r, prev, ov[0], false);
        seg_push(r, ov[0], ov[1], true);
        prev = ov[1];
        if (ov[1] > ov[0]) {
            pos = ov[1];
        } else {
            if (ov[1] >= n) break;
            size_t len;
            utf8_decode(s + ov[1], n - ov[1], &len);
            pos = ov[1] + len;
        }
    }
    if (prev < n) seg_push(r, prev, n, false);
}

// Rewrites the segments seg[base..] as the step's pieces, as Hugging Face's
// NormalizedString::split does; returns their number. Empty pieces are dropped later.
static size_t apply_behavior(HfRun *r, const Stage *st, size_t base) {
    size_t *seg = r->seg + base, n = (r->n_seg - base) / 3, w = 0;
    if (st->invert)
        for (size_t i = 0; i < n; i++) seg[3 * i + 2] = !seg[3 * i + 2];
    bool prev_match = false;
    size_t carry = SIZE_MAX; // MergedWithNext: where the piece being joined forward starts
    for (size_t i = 0; i < n; i++) {
        size_t start = seg[3 * i], end = seg[3 * i + 1];
        bool match = seg[3 * i + 2], join = false;
        switch (st->behavior) {
        case SPLIT_REMOVED:
            if (match) {
                prev_match = match;
                continue;
            }
            break;
        case SPLIT_ISOLATED:
            break;
        case SPLIT_CONTIGUOUS:
            join = w > 0 && match == prev_match;
            break;
        case SPLIT_MERGED_WITH_PREVIOUS:
            join = w > 0 && match && !prev_match;
            break;
        case SPLIT_MERGED_WITH_NEXT:
            if (carry != SIZE_MAX) start = carry;
            carry = SIZE_MAX;
            if (match && i + 1 < n && !seg[3 * (i + 1) + 2]) {
                carry = start;
                prev_match = match;
                continue;
            }
            break;
        default:
            LC_DIE("unknown split behaviour %d", (int)st->behavior);
        }
        prev_match = match;
        if (join) {
            seg[3 * (w - 1) + 1] = end;
        } else {
            seg[3 * w] = start;
            seg[3 * w + 1] = end;
            w++;
        }
    }
    r->n_seg = base + 3 * w;
    return w;
}

// Runs steps k.. on the piece s[0, n) and hands the final pieces to BPE.
static void split_steps(HfRun *r, const char *s, size_t n, int k) {
    if (n == 0) return;
    if (k == r->hf->n_stages) {
        r->emit(r->ctx, s, n, -1);
        return;
    }
    const Stage *st = &r->hf->stages[k];
    char *buf = NULL;
    if (st->prefix_space && s[0] != ' ') {
        buf = lc_malloc(n + 1);
        buf[0] = ' ';
        memcpy(buf + 1, s, n);
        s = buf;
        n++;
    }
    if (!st->re) {
        split_steps(r, s, n, k + 1);
    } else {
        size_t base = r->n_seg;
        regex_segments(r, st, r->md[k], s, n);
        size_t count = apply_behavior(r, st, base);
        for (size_t i = 0; i < count; i++) { // r->seg may move as deeper steps push
            size_t start = r->seg[base + 3 * i], end = r->seg[base + 3 * i + 1];
            split_steps(r, s + start, end - start, k + 1);
        }
        r->n_seg = base;
    }
    free(buf);
}

// The length of the whitespace ending s[0, n) (lstrip) or starting it (rstrip).
static size_t trailing_space(const char *s, size_t n) {
    size_t k = n;
    while (k > 0) {
        size_t start = k - 1;
        while (start > 0 && k - start < 4 && ((unsigned char)s[start] & 0xc0) == 0x80) start--;
        if (utf8_valid_prefix(s + start, k - start) != k - start) break;
        size_t len;
        if (!unicode_is_white_space(utf8_decode(s + start, k - start, &len)) || len != k - start)
            break;
        k = start;
    }
    return n - k;
}

static size_t leading_space(const char *s, size_t n) {
    size_t k = 0;
    while (k < n) {
        size_t v = utf8_valid_prefix(s + k, n - k), len;
        if (v == 0 || !unicode_is_white_space(utf8_decode(s + k, v, &len))) break;
        k += len;
    }
    return k;
}

typedef void (*GapFn)(HfRun *r, const char *s, size_t n);

// Cuts the eligible added tokens of one pass out of s[0, n): each occurrence becomes its id and
// the text between goes to gap(). Leftmost first; the longest where two start at one byte.
static void split_added(HfRun *r, bool normalized, const char *s, size_t n, GapFn gap) {
    const HfBpe *hf = r->hf;
    int ne = hf->n_eligible[normalized][r->allow_special != 0];
    const int *el = hf->eligible[normalized][r->allow_special != 0];
    if (ne == 0) {
        gap(r, s, n);
        return;
    }
    size_t *next = lc_malloc((size_t)ne * sizeof(size_t)), pos = 0;
    for (int i = 0; i < ne; i++) {
        const char *hit = memmem(s, n, hf->added[el[i]].match, hf->added[el[i]].match_len);
        next[i] = hit ? (size_t)(hit - s) : SIZE_MAX;
    }
    for (;;) {
        int best = -1;
        size_t at = SIZE_MAX;
        for (int i = 0; i < ne; i++) {
            const Added *a = &hf->added[el[i]];
            if (next[i] != SIZE_MAX && next[i] < pos) {
                const char *hit = memmem(s + pos, n - pos, a->match, a->match_len);
                next[i] = hit ? (size_t)(hit - s) : SIZE_MAX;
            }
            if (next[i] == SIZE_MAX) continue;
            if (best < 0 || next[i] < at ||
                (next[i] == at && a->match_len > hf->added[el[best]].match_len)) {
                best = i;
                at = next[i];
            }
        }
        if (best < 0) break;
        const Added *a = &hf->added[el[best]];
        size_t start = at, end = at + a->match_len;
        if (a->lstrip) start -= trailing_space(s + pos, start - pos);
        if (a->rstrip) end += leading_space(s + end, n - end);
        if (start > pos) gap(r, s + pos, start - pos);
        r->emit(r->ctx, s + start, end - start, a->id);
        pos = end;
    }
    if (pos < n) gap(r, s + pos, n - pos);
    free(next);
}

static void gap_normalized(HfRun *r, const char *s, size_t n) {
    split_steps(r, s, n, 0);
}

// Valid UTF-8 between the non-normalized added tokens: NFC, then the normalized ones.
static void gap_valid(HfRun *r, const char *s, size_t n) {
    if (r->hf->nfc && !nfc_quick_check(s, n)) {
        ByteVec norm = {0};
        nfc_normalize(s, n, &norm);
        split_added(r, true, norm.v, norm.n, gap_normalized);
        free(norm.v);
    } else {
        split_added(r, true, s, n, gap_normalized);
    }
}

static void gap_raw(HfRun *r, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t v = utf8_valid_prefix(s + i, n - i);
        if (v > 0) {
            gap_valid(r, s + i, v);
            i += v;
        } else {
            size_t k = utf8_invalid_prefix(s + i, n - i);
            r->emit(r->ctx, s + i, k, -1);
            i += k;
        }
    }
}

static void hf_pretokenize(const Tokenizer *tok, const char *text, size_t len, int allow_special,
                           PieceFn emit, void *ctx) {
    const HfBpe *hf = tok->impl;
    HfRun r = {.hf = hf, .allow_special = allow_special, .emit = emit, .ctx = ctx};
    r.md = lc_calloc((size_t)hf->n_stages + 1, sizeof(*r.md));
    for (int k = 0; k < hf->n_stages; k++)
        if (hf->stages[k].re) {
            r.md[k] = pcre2_match_data_create_from_pattern(hf->stages[k].re, NULL);
            LC_ASSERT(r.md[k]);
        }
    split_added(&r, false, text, len, gap_raw);
    for (int k = 0; k < hf->n_stages; k++)
        if (r.md[k]) pcre2_match_data_free(r.md[k]);
    free(r.md);
    free(r.seg);
}

static const TokenizerOps HF_OPS = {.pretokenize_text = hf_pretokenize, .release_impl = hf_release};

// ---- reading tokenizer.json --------------------------------------------------------------------

// Errors name the file and the JSON key: "tokenizer.json: model.merges[3]: ...".
#define FAIL(...) (tokenizer_fail(err, errlen, __VA_ARGS__), false)

static const char *type_of(json_t *obj) {
    json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

// A boolean field: absent or null gives dflt; another type is an error.
static bool get_bool(json_t *obj, const char *name, bool dflt, bool *out, const char *path,
                     const char *key, char *err, size_t errlen) {
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return true;
    }
    if (!json_is_boolean(v)) return FAIL("%s: %s.%s must be true or false", path, key, name);
    *out = json_is_true(v);
    return true;
}

static bool compile_stage(Stage *st, const char *pattern, uint32_t options, const char *path,
                          const char *key, char *err, size_t errlen) {
    int code;
    PCRE2_SIZE offset;
    st->pattern = dup_str(pattern);
    st->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                           PCRE2_UTF | (options & PCRE2_LITERAL ? 0 : PCRE2_UCP) | options, &code,
                           &offset, NULL);
    if (!st->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        return FAIL("%s: %s: PCRE2 cannot compile the pattern at offset %zu: %s", path, key,
                    (size_t)offset, (const char *)msg);
    }
    pcre2_jit_compile(st->re, PCRE2_JIT_COMPLETE); // interpreted where there is no JIT
    return true;
}

// Split {pattern: {Regex | String}, behavior, invert}.
static bool parse_split(json_t *p, Stage *st, const char *path, const char *key, char *err,
                        size_t errlen) {
    json_t *pattern = json_object_get(p, "pattern");
    json_t *regex = json_object_get(pattern, "Regex"), *string = json_object_get(pattern, "String");
    if (!json_is_string(regex) && !json_is_string(string))
        return FAIL("%s: %s.pattern must be {\"Regex\": ...} or {\"String\": ...}", path, key);
    json_t *behavior = json_object_get(p, "behavior");
    const char *b = json_is_string(behavior) ? json_string_value(behavior) : "";
    st->behavior = SPLIT_N_BEHAVIORS;
    for (int i = 0; i < SPLIT_N_BEHAVIORS; i++)
        if (strcmp(b, BEHAVIOR_NAMES[i]) == 0) st->behavior = (SplitBehavior)i;
    if (st->behavior == SPLIT_N_BEHAVIORS)
        return FAIL("%s: %s.behavior \"%s\" is not one of Removed, Isolated, MergedWithPrevious, "
                    "MergedWithNext, Contiguous",
                    path, key, b);
    if (!get_bool(p, "invert", false, &st->invert, path, key, err, errlen)) return false;
    char pkey[512];
    snprintf(pkey, sizeof(pkey), "%s.pattern.%s", key, regex ? "Regex" : "String");
    return compile_stage(st, json_string_value(regex ? regex : string), regex ? 0 : PCRE2_LITERAL,
                         path, pkey, err, errlen);
}

// pre_tokenizer: ByteLevel, or a Sequence of Split and Digits steps ending with ByteLevel.
// *byte_level is false when there is no ByteLevel step (not a byte-level tokenizer).
static bool parse_pre_tokenizer(json_t *root, HfBpe *hf, bool *byte_level, const char *path,
                                char *err, size_t errlen) {
    json_t *pre = json_object_get(root, "pre_tokenizer");
    *byte_level = false;
    if (!pre || json_is_null(pre)) return true;
    const char *type = type_of(pre);
    bool sequence = type && strcmp(type, "Sequence") == 0;
    json_t *list = sequence ? json_object_get(pre, "pretokenizers") : NULL;
    if (sequence && !json_is_array(list))
        return FAIL("%s: pre_tokenizer.pretokenizers must be an array", path);
    size_t n = sequence ? json_array_size(list) : 1;
    bool any = false; // without a ByteLevel step it is another kind of tokenizer: no more to say
    for (size_t i = 0; i < n; i++) {
        const char *t = type_of(sequence ? json_array_get(list, i) : pre);
        any = any || (t && strcmp(t, "ByteLevel") == 0);
    }
    if (!any) return true;
    hf->stages = lc_calloc(n + 1, sizeof(*hf->stages));
    for (size_t i = 0; i < n; i++) {
        json_t *p = sequence ? json_array_get(list, i) : pre;
        char key[256];
        if (sequence)
            snprintf(key, sizeof(key), "pre_tokenizer.pretokenizers[%zu]", i);
        else
            snprintf(key, sizeof(key), "pre_tokenizer");
        const char *t = type_of(p);
        Stage *st = &hf->stages[hf->n_stages++];
        st->behavior = SPLIT_ISOLATED;
        if (*byte_level) return FAIL("%s: %s: ByteLevel must be the last pre-tokenizer", path, key);
        if (t && strcmp(t, "ByteLevel") == 0) {
            bool use_regex;
            *byte_level = true;
            if (!get_bool(p, "add_prefix_space", true, &st->prefix_space, path, key, err, errlen) ||
                !get_bool(p, "use_regex", true, &use_regex, path, key, err, errlen))
                return false;
            if (use_regex) {
                if (!compile_stage(st, TOKENIZER_PATTERN, 0, path, key, err, errlen)) return false;
            } else {
                st->pattern = dup_str("");
            }
        } else if (t && strcmp(t, "Split") == 0) {
            if (!parse_split(p, st, path, key, err, errlen)) return false;
        } else if (t && strcmp(t, "Digits") == 0) { // Rust's char::is_numeric: \p{N}
            bool individual;
            if (!get_bool(p, "individual_digits", false, &individual, path, key, err, errlen))
                return false;
            st->behavior = individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
            if (!compile_stage(st, "\\p{N}", 0, path, key, err, errlen)) return false;
        } else {
            return FAIL("%s: %s.type is \"%s\", which layercake does not implement (it runs "
                        "ByteLevel, Split and Digits)",
                        path, key, t ? t : "(missing)");
        }
    }
    return true;
}

// normalizer: none, NFC, or a Sequence of NFCs.
static bool parse_normalizer(json_t *root, HfBpe *hf, const char *path, char *err, size_t errlen) {
    json_t *norm = json_object_get(root, "normalizer");
    if (!norm || json_is_null(norm)) return true;
    const char *type = type_of(norm);
    if (type && strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(norm, "normalizers");
        for (size_t i = 0; i < json_array_size(list); i++) {
            const char *t = type_of(json_array_get(list, i));
            if (!t || strcmp(t, "NFC") != 0)
                return FAIL("%s: normalizer.normalizers[%zu].type is \"%s\"; layercake "
                            "implements only NFC",
                            path, i, t ? t : "(missing)");
            hf->nfc = true;
        }
        return true;
    }
    if (!type || strcmp(type, "NFC") != 0)
        return FAIL("%s: normalizer.type is \"%s\"; layercake implements only NFC", path,
                    type ? type : "(missing)");
    hf->nfc = true;
    return true;
}

// The BPE model's options that change what it does, which layercake refuses but for their
// defaults. byte_fallback does nothing where every byte is a token (checked when built).
static bool check_model_options(json_t *model, const char *path, char *err, size_t errlen) {
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return FAIL("%s: model.dropout must be null: BPE dropout is for training", path);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(model, affixes[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return FAIL("%s: model.%s is set; layercake's byte-level BPE has none", path,
                        affixes[i]);
    }
    return true;
}

static bool parse_decoder(json_t *root, const char *path, char *err, size_t errlen) {
    json_t *dec = json_object_get(root, "decoder");
    if (!dec || json_is_null(dec)) return true;
    const char *type = type_of(dec);
    if (!type || strcmp(type, "ByteLevel") != 0)
        return FAIL("%s: decoder.type is \"%s\"; a byte-level BPE decodes with ByteLevel", path,
                    type ? type : "(missing)");
    return true;
}

// added_tokens: [{id, content, special, lstrip, rstrip, normalized, single_word}, ...].
static bool parse_added(json_t *root, HfBpe *hf, const char *path, char *err, size_t errlen) {
    json_t *list = json_object_get(root, "added_tokens");
    if (!list || json_is_null(list)) return true;
    if (!json_is_array(list)) return FAIL("%s: added_tokens must be an array", path);
    size_t n = json_array_size(list);
    if (n > INT32_MAX) return FAIL("%s: added_tokens: too many", path);
    hf->added = lc_calloc(n + 1, sizeof(*hf->added));
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(list, i), *id = json_object_get(t, "id"),
               *content = json_object_get(t, "content");
        char key[64];
        snprintf(key, sizeof(key), "added_tokens[%zu]", i);
        Added *a = &hf->added[hf->n_added++];
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= INT32_MAX)
            return FAIL("%s: %s.id must be a token id", path, key);
        if (!json_is_string(content) || json_string_length(content) == 0)
            return FAIL("%s: %s.content must be a non-empty string", path, key);
        a->id = (int)json_integer_value(id);
        a->match_len = json_string_length(content);
        a->match = lc_malloc(a->match_len + 1);
        memcpy(a->match, json_string_value(content), a->match_len + 1);
        bool single_word;
        if (!get_bool(t, "special", false, &a->special, path, key, err, errlen) ||
            !get_bool(t, "lstrip", false, &a->lstrip, path, key, err, errlen) ||
            !get_bool(t, "rstrip", false, &a->rstrip, path, key, err, errlen) ||
            !get_bool(t, "normalized", !a->special, &a->normalized, path, key, err, errlen) ||
            !get_bool(t, "single_word", false, &single_word, path, key, err, errlen))
            return false;
        if (single_word)
            return FAIL("%s: %s.single_word is true, which layercake does not implement", path,
                        key);
        for (size_t j = 0; j + 1 < (size_t)hf->n_added; j++)
            if (hf->added[j].id == a->id)
                return FAIL("%s: %s.id %d repeats added_tokens[%zu]", path, key, a->id, j);
    }
    return true;
}

// The token ids and their bytes: model.vocab's keys spelled with the byte-to-unicode table, and
// the added tokens' contents. Every id below the largest must have a token.
static bool read_tokens(json_t *vocab, HfBpe *hf, TokenizerParts *parts, const char *path,
                        char *err, size_t errlen) {
    int64_t max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (!json_is_integer(val) || id < 0 || id >= INT32_MAX)
            return FAIL("%s: model.vocab[\"%s\"] must be a token id", path, key);
        if (id > max_id) max_id = id;
    }
    for (int i = 0; i < hf->n_added; i++)
        if (hf->added[i].id > max_id) max_id = hf->added[i].id;
    if (max_id < 0) return FAIL("%s: model.vocab is empty", path);
    size_t n = (size_t)max_id + 1;
    int *added_of = lc_malloc(n * sizeof(int)); // id -> index into added, or -1
    const char **spelling = lc_calloc(n, sizeof(*spelling));
    for (size_t id = 0; id < n; id++) added_of[id] = -1;
    for (int i = 0; i < hf->n_added; i++) added_of[hf->added[i].id] = i;
    hf->in_vocab = lc_calloc(n, sizeof(bool));
    bool ok = true;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_integer_value(val);
        if (spelling[id]) {
            ok = FAIL("%s: model.vocab: \"%s\" and \"%s\" both have id %" JSON_INTEGER_FORMAT, path,
                      spelling[id], key, id);
            break;
        }
        spelling[id] = key;
        hf->in_vocab[id] = true;
        if (added_of[id] >= 0) hf->added[added_of[id]].vocab_key = dup_str(key);
    }
    ByteCodec c;
    codec_init(&c);
    ByteVec bytes = {0};
    parts->n_vocab = (int)n;
    parts->tok_off = lc_malloc((n + 1) * sizeof(size_t));
    for (size_t id = 0; id < n && ok; id++) {
        parts->tok_off[id] = bytes.n;
        if (added_of[id] >= 0) { // its content, wherever else it is spelled
            const Added *a = &hf->added[added_of[id]];
            bytevec_append(&bytes, a->match, a->match_len);
        } else if (!spelling[id]) {
            ok = FAIL("%s: model.vocab: id %zu has no token (in neither model.vocab nor "
                      "added_tokens)",
                      path, id);
        } else if (!codec_read(&c, spelling[id], strlen(spelling[id]), &bytes)) {
            ok = FAIL("%s: model.vocab[\"%s\"] is not spelled with the byte-level alphabet", path,
                      spelling[id]);
        }
    }
    parts->tok_off[n] = bytes.n;
    parts->tok_bytes = bytes.v;
    free(spelling);
    free(added_of);
    return ok;
}

// One merge: "left right" or ["left", "right"], both keys of model.vocab.
static bool read_merge(json_t *vocab, json_t *m, size_t i, int pair[2], const char *path, char *err,
                       size_t errlen) {
    char side[2][1024];
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *space = strchr(s, ' ');
        size_t n = json_string_length(m);
        if (!space || space == s || space == s + n - 1 || strchr(space + 1, ' ') ||
            (size_t)(space - s) >= sizeof(side[0]) || n - (size_t)(space - s) > sizeof(side[0]))
            return FAIL("%s: model.merges[%zu]: \"%s\" is not two tokens separated by one space",
                        path, i, s);
        snprintf(side[0], sizeof(side[0]), "%.*s", (int)(space - s), s);
        snprintf(side[1], sizeof(side[1]), "%s", space + 1);
    } else if (json_is_array(m) && json_array_size(m) == 2 &&
               json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
        for (int k = 0; k < 2; k++)
            snprintf(side[k], sizeof(side[k]), "%s", json_string_value(json_array_get(m, k)));
    } else {
        return FAIL("%s: model.merges[%zu] must be \"left right\" or [\"left\", \"right\"]", path,
                    i);
    }
    for (int k = 0; k < 2; k++) {
        json_t *id = json_object_get(vocab, side[k]);
        if (!id)
            return FAIL("%s: model.merges[%zu]: \"%s\" is not in model.vocab", path, i, side[k]);
        pair[k] = (int)json_integer_value(id);
    }
    return true;
}

static bool read_merges_field(json_t *model, json_t *vocab, TokenizerParts *parts, const char *path,
                              char *err, size_t errlen) {
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return FAIL("%s: model.merges: %s", path, merges ? "must be an array" : "missing");
    size_t n = json_array_size(merges);
    if (n > INT32_MAX) return FAIL("%s: model.merges: too many", path);
    parts->pairs = lc_malloc((n + 1) * sizeof(*parts->pairs));
    for (size_t i = 0; i < n; i++) {
        if (!read_merge(vocab, json_array_get(merges, i), i, parts->pairs[i], path, err, errlen))
            return false;
        parts->n_merges++;
    }
    return true;
}

// Which added tokens each pass looks for (normalized or not, with or without allow_special),
// and the NFC form of the normalized ones' contents.
static void plan_passes(HfBpe *hf) {
    for (int i = 0; i < hf->n_added; i++) {
        Added *a = &hf->added[i];
        if (hf->nfc && a->normalized && utf8_valid_prefix(a->match, a->match_len) == a->match_len) {
            ByteVec norm = {0};
            nfc_normalize(a->match, a->match_len, &norm);
            bytevec_append(&norm, "", 1);
            free(a->match);
            a->match = norm.v;
            a->match_len = norm.n - 1;
        }
    }
    for (int norm = 0; norm < 2; norm++)
        for (int allow = 0; allow < 2; allow++) {
            hf->eligible[norm][allow] = lc_malloc(((size_t)hf->n_added + 1) * sizeof(int));
            for (int i = 0; i < hf->n_added; i++)
                if (hf->added[i].normalized == norm && (allow || !hf->added[i].special))
                    hf->eligible[norm][allow][hf->n_eligible[norm][allow]++] = i;
        }
}

// The hash of what the pipeline does besides the tokens and merges.
static uint64_t hash_pipeline(const Tokenizer *tok, const HfBpe *hf) {
    uint64_t h = fnv1a_u32(tok->content_hash, hf->nfc | (uint32_t)tok->ignore_merges << 1);
    h = fnv1a_u32(h, (uint32_t)hf->n_stages);
    for (int i = 0; i < hf->n_stages; i++) {
        const Stage *st = &hf->stages[i];
        h = fnv1a_str(h, st->pattern, strlen(st->pattern));
        h = fnv1a_u32(h, (uint32_t)st->behavior | (uint32_t)st->invert << 8 |
                             (uint32_t)st->prefix_space << 9 | (uint32_t)(st->re != NULL) << 10);
    }
    h = fnv1a_u32(h, (uint32_t)hf->n_added);
    for (int i = 0; i < hf->n_added; i++) {
        const Added *a = &hf->added[i];
        h = fnv1a_u32(h, (uint32_t)a->id);
        h = fnv1a_u32(h, (uint32_t)a->special | (uint32_t)a->lstrip << 1 |
                             (uint32_t)a->rstrip << 2 | (uint32_t)a->normalized << 3);
    }
    return h;
}

static json_t *copy_field(json_t *root, const char *name) {
    json_t *v = json_object_get(root, name);
    return v ? json_deep_copy(v) : json_null();
}

Tokenizer *hf_load(const char *path, json_t *root, bool *foreign, char *err, size_t errlen) {
    *foreign = false;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return tokenizer_fail(err, errlen, "%s: model: missing (not a tokenizer.json)", path);
    const char *type = type_of(model);
    if (!type && json_object_get(model, "merges")) type = "BPE"; // older files have no type
    if (!type || strcmp(type, "BPE") != 0) {
        *foreign = true;
        return tokenizer_fail(err, errlen,
                              "%s: model.type is \"%s\": layercake runs only byte-level BPE "
                              "(not WordPiece, WordLevel or Unigram)",
                              path, type ? type : "(missing)");
    }
    HfBpe *hf = lc_calloc(1, sizeof(*hf));
    TokenizerParts parts = {.kind = TOKENIZER_HF_BPE};
    bool byte_level = false, byte_fallback = false, ignore_merges = false;
    bool ok = get_bool(model, "byte_fallback", false, &byte_fallback, path, "model", err, errlen) &&
              parse_pre_tokenizer(root, hf, &byte_level, path, err, errlen);
    if (ok && !byte_level) {
        *foreign = true;
        ok = byte_fallback
                 ? FAIL("%s: model.byte_fallback is true and pre_tokenizer has no ByteLevel step: "
                        "a SentencePiece-style BPE (load its tokenizer.model instead)",
                        path)
                 : FAIL("%s: pre_tokenizer has no ByteLevel step: layercake runs only "
                        "byte-level BPE",
                        path);
    }
    json_t *vocab = json_object_get(model, "vocab");
    ok = ok && parse_normalizer(root, hf, path, err, errlen) &&
         parse_decoder(root, path, err, errlen) && check_model_options(model, path, err, errlen) &&
         get_bool(model, "ignore_merges", false, &ignore_merges, path, "model", err, errlen) &&
         parse_added(root, hf, path, err, errlen) &&
         (json_is_object(vocab) ||
          FAIL("%s: model.vocab: %s", path, vocab ? "must be an object" : "missing")) &&
         read_tokens(vocab, hf, &parts, path, err, errlen) &&
         read_merges_field(model, vocab, &parts, path, err, errlen);
    if (!ok) {
        free(parts.tok_off);
        free(parts.tok_bytes);
        free(parts.pairs);
        hf_release(hf);
        return NULL;
    }
    parts.specials = lc_malloc(((size_t)hf->n_added + 1) * sizeof(int));
    for (int i = 0; i < hf->n_added; i++) parts.specials[parts.n_specials++] = hf->added[i].id;
    char source[4200];
    snprintf(source, sizeof(source), "%s: model", path);
    Tokenizer *tok = tokenizer_build(&parts, source, err, errlen);
    if (!tok) {
        hf_release(hf);
        return NULL;
    }
    tok->ops = &HF_OPS;
    tok->impl = hf;
    tok->merge_one_at_a_time = true;
    tok->ignore_merges = ignore_merges;
    if (ignore_merges) {
        bytesmap_init(&tok->vocab_index, (size_t)tok->n_vocab);
        for (int id = 0; id < tok->n_vocab; id++) {
            size_t len;
            const char *b = token_bytes(tok, id, &len);
            if (hf->in_vocab[id]) bytesmap_intern(&tok->vocab_index, b, len, id);
        }
    }
    plan_passes(hf);
    hf->normalizer = copy_field(root, "normalizer");
    hf->pre_tokenizer = copy_field(root, "pre_tokenizer");
    hf->post_processor = copy_field(root, "post_processor");
    hf->decoder = copy_field(root, "decoder");
    tok->content_hash = hash_pipeline(tok, hf);
    return tok;
}

// ---- writing tokenizer.json --------------------------------------------------------------------

static json_t *added_json(int id, const char *content, size_t len, bool special, bool lstrip,
                          bool rstrip, bool normalized) {
    return json_pack("{s:i, s:s%, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, len,
                     "single_word", 0, "lstrip", lstrip, "rstrip", rstrip, "normalized", normalized,
                     "special", special);
}

static json_t *byte_level_json(void) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0,
                     "trim_offsets", 1, "use_regex", 1);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

bool hf_write(const Tokenizer *tok, const char *path, char *err, size_t errlen) {
    const HfBpe *hf = tok->kind == TOKENIZER_HF_BPE ? tok->impl : NULL;
    ByteCodec c;
    codec_init(&c);
    ByteVec s = {0};
    json_t *added = json_array(), *vocab = json_object(), *merges = json_array();
    const char **key = lc_calloc((size_t)tok->n_vocab + 1, sizeof(*key)); // vocab keys by id
    if (hf) {
        for (int i = 0; i < hf->n_added; i++) {
            const Added *a = &hf->added[i];
            size_t len;
            const char *b = token_bytes(tok, a->id, &len);
            json_array_append_new(
                added, added_json(a->id, b, len, a->special, a->lstrip, a->rstrip, a->normalized));
            if (a->vocab_key) key[a->id] = a->vocab_key;
        }
    } else {
        for (int i = 0; i < tok->n_specials; i++) {
            size_t len;
            const char *b = token_bytes(tok, tok->specials[i], &len);
            json_array_append_new(added,
                                  added_json(tok->specials[i], b, len, true, false, false, false));
        }
    }
    for (int id = 0; id < tok->n_vocab; id++) {
        bool special =
            bsearch(&id, tok->specials, (size_t)tok->n_specials, sizeof(int), cmp_int) != NULL;
        if (hf ? !hf->in_vocab[id] : special) continue;
        if (key[id]) {
            json_object_set_new(vocab, key[id], json_integer(id));
            continue;
        }
        size_t len;
        const char *b = token_bytes(tok, id, &len);
        s.n = 0;
        codec_spell(&c, b, len, &s);
        bytevec_append(&s, "", 1);
        json_object_set_new(vocab, s.v, json_integer(id));
    }
    for (int r = 0; r < tok->n_merges; r++) {
        s.n = 0;
        for (int k = 0; k < 2; k++) {
            size_t len;
            int id = k ? tok->merges[r].right : tok->merges[r].left;
            const char *b = token_bytes(tok, id, &len);
            if (k) bytevec_append(&s, " ", 1);
            codec_spell(&c, b, len, &s);
        }
        json_array_append_new(merges, json_stringn(s.v, s.n));
    }
    free(s.v);
    free(key);
    json_t *model = json_pack(
        "{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout", "unk_token",
        "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
        "ignore_merges", tok->ignore_merges, "vocab", vocab, "merges", merges);
    json_t *root = json_pack(
        "{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation", "padding",
        "added_tokens", added, "normalizer", hf ? json_deep_copy(hf->normalizer) : json_null(),
        "pre_tokenizer", hf ? json_deep_copy(hf->pre_tokenizer) : byte_level_json(),
        "post_processor", hf ? json_deep_copy(hf->post_processor) : json_null(), "decoder",
        hf ? json_deep_copy(hf->decoder) : byte_level_json(), "model", model);
    LC_ASSERT(root);
    bool ok = tokenizer_write_json(root, path, err, errlen);
    json_decref(root);
    return ok;
}
