// train/recipe/recipe-impl.h: internals of the recipe loader, shared by train/recipe*.c: the schema
// table's types, the loader's state and the helpers one file provides to another.
#pragma once
#include "train/recipe/recipe.h"
#include <limits.h>
#include <yaml.h>

// ---- the schema -------------------------------------------------------------------------------

typedef enum {
    KEY_INT,     // int
    KEY_FLOAT,   // double
    KEY_BOOL,    // bool
    KEY_STRING,  // char *, never NULL after loading ("" = unset)
    KEY_ENUM,    // a C enum, stored as int; Key.names lists the values in enum order
    KEY_STRINGS, // StringList
    KEY_FLOATS,  // double[Key.len]
} KeyType;

typedef enum { SCOPE_RECIPE, SCOPE_STAGE } KeyScope;

// Allowed values of a number, or allowed item counts of a list of strings.
typedef struct {
    double lo, hi;         // bounds (+-INFINITY: unbounded)
    bool lo_open, hi_open; // bound excluded
} Range;

enum {
    KEY_INPUT_PATH = 1 << 0,  // a path resolved against the folder of whatever sets it
    KEY_OUTPUT_PATH = 1 << 1, // a path resolved against the working directory
    KEY_STAGE_REF = 1 << 2,   // an earlier stage's name (of a kind in ref_kinds) or a .h5 path
    KEY_IDENTITY = 1 << 3,    // name, kind: set only in the stage itself
    KEY_STAGE_DATA = 1 << 4,  // a dataset path, or an earlier stage whose dataset it names
    KEY_BON = 1 << 5,         // KEY_STAGE_REF: may also hold bon(<ref>, <n>) entries (eval models)
};

// One key of the schema.
typedef struct {
    const char *path;         // key path within its scope: "seed", "model.n_layer", "optim.lr"
    KeyScope scope;           // a top-level key (stored in Recipe) or a stage key (in Stage)
    size_t offset;            // where the value is stored: offsetof(Recipe or Stage, ...)
    size_t size;              // sizeof that field (tests check it against the type)
    KeyType type;             // value type
    unsigned kinds;           // stage keys: bits (1 << StageKind) of the kinds it applies to
    const char *def;          // default as YAML text; NULL = required; "null" = unset (NAN)
    Range range;              // numbers: allowed values; lists of strings: allowed lengths
    const char *const *names; // enum: value names in C enum order, NULL-terminated
    int len;                  // floats: the fixed length
    unsigned flags;           // KEY_* flags
    unsigned ref_kinds;       // KEY_STAGE_REF: bits of the kinds a referenced stage may have
    const char *doc;          // one line for docs/recipes.md
} Key;

extern const Key SCHEMA[];
extern const int SCHEMA_COUNT;
extern const char *const STAGE_KIND_NAMES[];

// Sets of stage kinds, for Key.kinds and Rule.kinds:
//   K_STEPS  a dataset and a number of optimizer steps (pretrain, sft, reward, dpo; and
//            iterative_dpo, whose rounds each run that many dpo steps)
//   K_RL     reinforcement learning from rollouts (ppo, grpo, rloo)
//   K_TRAIN  every stage that updates weights; K_GEN those of them whose model generates text
//   K_SELF   the stages that make datasets of their `init` model's own text (self_instruct,
//            critique_revise); they train nothing
//   K_ROLL   the stages that sample responses to prompts (RL, eval, label, iterative_dpo)
//   K_LABEL  the stages that label their own samples with a judge (label, iterative_dpo)
//   K_JUDGE  the stages that score text with a judge (K_ROLL and K_PREF's sampled pairs)
#define KIND(k) (1u << (k))
#define K_ALL   ((1u << STAGE_KIND_COUNT) - 1)
#define K_ITER  KIND(STAGE_ITERATIVE_DPO)
#define K_LABEL (KIND(STAGE_LABEL) | K_ITER)
#define K_STEPS                                                                                    \
    (KIND(STAGE_PRETRAIN) | KIND(STAGE_SFT) | KIND(STAGE_REWARD) | KIND(STAGE_DPO) | K_ITER)
#define K_RL    (KIND(STAGE_PPO) | KIND(STAGE_GRPO) | KIND(STAGE_RLOO))
#define K_TRAIN (K_STEPS | K_RL)
#define K_GEN   (K_TRAIN & ~KIND(STAGE_REWARD))
#define K_ROLL  (K_RL | KIND(STAGE_EVAL) | K_LABEL)
#define K_SFT   KIND(STAGE_SFT)
#define K_RM    KIND(STAGE_REWARD)
#define K_DPO   (KIND(STAGE_DPO) | K_ITER)
#define K_PPO   KIND(STAGE_PPO)
#define K_EVAL  KIND(STAGE_EVAL)
#define K_SI    KIND(STAGE_SELF_INSTRUCT)
#define K_CR    KIND(STAGE_CRITIQUE_REVISE)
#define K_SELF  (K_SI | K_CR)
#define K_PREF  (KIND(STAGE_REWARD) | K_DPO)
#define K_JUDGE (K_ROLL | K_PREF) // the stages that score text: RL, eval, label, sampled pairs

// A rule across keys of one stage (or, with kinds == 0, of the top level). Returns RECIPE_OK
// or an error written through recipe_fail().
typedef struct RecipeLoader RecipeLoader;
typedef struct {
    unsigned kinds;                               // stage kinds it applies to; 0 = top level
    RecipeError (*check)(RecipeLoader *L, int i); // i: stage index (-1 for the top level)
    const char *doc;                              // one line for docs/recipes.md
} Rule;

extern const Rule RULES[];
extern const int RULE_COUNT;

// The key at path in scope, or NULL.
const Key *schema_find(KeyScope scope, const char *path);
// Whether path names a nested map of scope ("optim", "model").
bool schema_is_map(KeyScope scope, const char *path);
// Whether k applies to a stage of this kind.
bool key_applies(const Key *k, StageKind kind);
// The field k describes inside base (a Recipe or a Stage).
void *key_field(const Key *k, void *base);
const void *key_field_const(const Key *k, const void *base);
// Allowed values of k as text ("1..256", "> 0", "[0, 0.5)"), "" if unbounded.
void key_format_range(const Key *k, char *buf, size_t len);
// A set of stage kinds as text ("all", "ppo, grpo, rloo").
void kinds_format(unsigned kinds, char *buf, size_t len);

// Closest-match suggestions for misspelt names.
typedef struct {
    const char *typed; // what the user wrote
    char best[256];    // the closest candidate so far ("" = none close enough)
    int dist;          // its score in half-edits (starts above the largest accepted)
} Suggest;
void suggest_init(Suggest *s, const char *typed);
void suggest_consider(Suggest *s, const char *candidate);
// Considers every key path of scope, and every map on the way to one, each after `prepend`.
void suggest_keys(Suggest *s, KeyScope scope, const char *prepend);
// Appends "; did you mean 'x'?" to buf when a candidate was close enough, dropping `strip`
// from the front of x when x starts with it.
void suggest_append(const Suggest *s, const char *strip, char *buf, size_t len);

// ---- loading ----------------------------------------------------------------------------------

// Where values come from: the recipe file, one command-line override, or a built-in default.
typedef struct {
    yaml_document_t doc; // the parsed YAML
    bool loaded;         // doc holds a document to delete
    const char *file;    // the recipe file, or NULL
    const char *text;    // the override text ("sft.optim.lr=1e-4"), or NULL
    const char *dir;     // absolute folder that relative input paths resolve against
} Source;

// How strictly a stage's keys are applied.
typedef enum {
    APPLY_STRICT,  // the stage's own keys: inapplicable keys are errors
    APPLY_LENIENT, // keys from defaults: inapplicable keys are skipped
    APPLY_ANY,     // checking defaults on their own: every stage key applies
} ApplyMode;

// What keys are applied to.
typedef struct {
    KeyScope scope;     // top-level keys or stage keys
    void *base;         // the Recipe or the Stage
    int stage;          // stage index, -1 for the top level, or STAGE_NONE
    ApplyMode mode;     // for stage keys
    const char *prefix; // shown before key paths in messages: "", "sft.", "defaults."
    bool defaults;      // the keys come from defaults (identity keys are refused)
} Target;

enum { STAGE_NONE = -2 }; // Target.stage while checking defaults on their own

// A command-line override "key.path=value".
typedef struct {
    Source src;         // the value, parsed as YAML
    char *key;          // the key path after the stage name or "defaults."
    int stage;          // target: stage index, OVERRIDE_TOP or OVERRIDE_DEFAULTS
    yaml_node_t *value; // the value's root node (NULL: an empty value, i.e. null)
} Override;

enum { OVERRIDE_TOP = -1, OVERRIDE_DEFAULTS = -2 };

struct RecipeLoader {
    Recipe *r;              // being filled
    char *err;              // message buffer
    size_t errlen;          // its size
    char cwd[PATH_MAX];     // working directory (output_dir and command-line paths)
    char dir[PATH_MAX];     // the recipe file's absolute folder
    Source file;            // the recipe file
    Override *overrides;    // (n_overrides)
    int n_overrides;        // number of overrides
    yaml_node_t *defaults;  // the defaults map, or NULL
    yaml_node_t *stage_seq; // the stages list
};

// Writes "where: prefix+key: message" into L->err and returns status.
RecipeError recipe_fail(RecipeLoader *L, RecipeError status, const char *where, const char *prefix,
                        const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
// The location of node (a file mark, or the override text) as text, into buf.
const char *source_where(const Source *src, const yaml_node_t *node, char *buf, size_t len);
// libyaml's description of a syntax error into err, after `where` ("file" or "command line
// 'x=y'"), with line and column when marks. Returns RECIPE_ERR_SYNTAX.
RecipeError source_syntax_fail(const yaml_parser_t *p, const char *where, bool marks, char *err,
                               size_t errlen);
// Parses YAML text (a command-line value or a built-in default) into src. Returns RECIPE_OK
// or RECIPE_ERR_SYNTAX with libyaml's problem, after where src is, in err.
RecipeError source_parse_text(Source *src, const char *text, char *err, size_t errlen);
void source_free(Source *src);
// After src->doc was loaded from text: keeps node->tag only on the nodes the text tags
// explicitly (`!!str 5`), NULL elsewhere.
void source_keep_written_tags(Source *src, const char *text, size_t len);

// Stores the value at node (from src) into the field of key k of t, checking its type and
// range, resolving paths and recording where it was set.
RecipeError value_store(RecipeLoader *L, const Target *t, const Key *k, Source *src,
                        yaml_node_t *node);
// Sets every key of t's scope that has a default to it, and required strings to "".
void value_set_defaults(RecipeLoader *L, const Target *t);
// Whether the field of k in base is unset ("" string, empty list).
bool value_is_unset(const Key *k, const void *base);
// Whether two fields of k hold the same value.
bool value_equal(const Key *k, const void *a, const void *b);
// The strings a string field (1) or a list-of-strings field (n) holds, and the i-th of them.
int value_string_count(const Key *k, const void *base);
const char *value_string(const Key *k, const void *base, int i);
// Frees what the field of k owns.
void value_free(const Key *k, void *base);
// Whether a node is null: plain `null`, `~` or nothing (a missing node counts too).
bool node_is_null(const yaml_node_t *n);
// The first node of n and, for a list, its items whose explicit tag does not fit (an unknown
// tag, `!!int abc`, a list tagged !!map), with why in msg; NULL if none.
const yaml_node_t *node_tag_misfit(yaml_document_t *doc, yaml_node_t *n, char *msg, size_t len);
// Whether s, written plain (unquoted), reads back as the string s.
bool plain_is_string(const char *s);
// Whether a stage reference names a checkpoint (a path ending in .h5, or any path with a '/': a
// Hugging Face folder) rather than a stage.
bool ref_is_path(const char *ref);
// Whether a data key's text is a bare stage name ([A-Za-z0-9_-]+: no '/', no extension).
bool output_is_name(const char *text);

// Records that key (of stage i, or -1) was set at where.
void origin_set(Recipe *r, int stage, const char *key, const char *where);

// Checks references between stages and every rule for stage i, or the top level for i = -1.
RecipeError rules_check(RecipeLoader *L, int i);
// Sets derived values: seq_len and micro_batch_size of 0, output_dir "".
RecipeError rules_resolve(RecipeLoader *L, int i);
// The characters of a stage name.
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// Datasets stages make for later stages (train/recipe/outputs.c).
// The dataset kind a data key of stage s holds: "lm", "sft", "preference", "unpaired", "prompt",
// "jsonl" (data.seeds, read by the stage itself).
const char *stage_data_kind(const Stage *s, const char *key);
// Replaces data.train / data.val values of stage i that name an earlier stage with the file that
// stage makes (<output_dir>/<stage>/pref.h5, sft.h5, pref-val.h5). RECIPE_OK, or an error naming
// the key when the name is no earlier stage or that stage makes no dataset of the kind needed.
RecipeError outputs_resolve(RecipeLoader *L, int i);
// Whether an earlier stage than i writes path (so it need not exist when the recipe loads).
bool outputs_will_make(const Recipe *r, int i, const char *path);

// Joins a relative path to dir and normalises "." and ".." lexically into a new string.
char *path_resolve(const char *dir, const char *path);
