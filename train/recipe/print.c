// train/recipe/print.c: writing recipes out: the resolved recipe as YAML (through libyaml's
// emitter, which quotes what needs quoting), docs/recipes.md from the schema, and one-line
// stage summaries.
#include "train/recipe/recipe-impl.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- YAML ---------------------------------------------------------------------------------------

typedef struct {
    yaml_emitter_t em; // libyaml's emitter, writing to the output file
    bool ok;           // no event has failed
} Emitter;

static void emit(Emitter *e, yaml_event_t *ev) {
    if (e->ok)
        e->ok = yaml_emitter_emit(&e->em, ev); // takes the event, even on failure
    else
        yaml_event_delete(ev);
}

static void emit_scalar(Emitter *e, const char *text) {
    yaml_event_t ev;
    yaml_scalar_style_t style =
        plain_is_string(text) ? YAML_ANY_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 1,
                                 style);
    emit(e, &ev);
}

// A number, null, or boolean: text that must stay plain to keep its type.
static void emit_plain(Emitter *e, const char *text) {
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text), 1, 0,
                                 YAML_PLAIN_SCALAR_STYLE);
    emit(e, &ev);
}

static void emit_map(Emitter *e, bool start) {
    yaml_event_t ev;
    if (start)
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    else
        yaml_mapping_end_event_initialize(&ev);
    emit(e, &ev);
}

static void emit_seq(Emitter *e, bool start, yaml_sequence_style_t style) {
    yaml_event_t ev;
    if (start)
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, style);
    else
        yaml_sequence_end_event_initialize(&ev);
    emit(e, &ev);
}

// The shortest text that reads back as exactly v, always with a '.' or an exponent.
static void format_float(double v, char *buf, size_t len) {
    if (isnan(v)) {
        snprintf(buf, len, "null");
        return;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".e")) strncat(buf, ".0", len - strlen(buf) - 1);
}

static void emit_value(Emitter *e, const Key *k, const void *base) {
    const void *f = key_field_const(k, base);
    const StringList *list = f;
    char text[64];
    switch (k->type) {
    case KEY_INT:
        snprintf(text, sizeof(text), "%d", *(const int *)f);
        break;
    case KEY_FLOAT:
        format_float(*(const double *)f, text, sizeof(text));
        break;
    case KEY_BOOL:
        snprintf(text, sizeof(text), "%s", *(const bool *)f ? "true" : "false");
        break;
    case KEY_ENUM:
        emit_scalar(e, k->names[*(const int *)f]);
        return;
    case KEY_STRING:
        emit_scalar(e, *(char *const *)f);
        return;
    case KEY_STRINGS:
        emit_seq(e, true, YAML_FLOW_SEQUENCE_STYLE);
        for (int i = 0; i < list->n; i++) emit_scalar(e, list->items[i]);
        emit_seq(e, false, 0);
        return;
    case KEY_FLOATS:
        emit_seq(e, true, YAML_FLOW_SEQUENCE_STYLE);
        for (int i = 0; i < k->len; i++) {
            format_float(((const double *)f)[i], text, sizeof(text));
            emit_plain(e, text);
        }
        emit_seq(e, false, 0);
        return;
    }
    emit_plain(e, text);
}

// Closes the maps of `open` ("optim." or "") that path is not in, and opens those it is in.
static void emit_path(Emitter *e, char *open, const char *path) {
    size_t parent = (size_t)(strrchr(path, '.') ? strrchr(path, '.') - path + 1 : 0);
    while (strlen(open) > parent || strncmp(open, path, strlen(open)) != 0) {
        emit_map(e, false);
        open[strlen(open) - 1] = '\0';
        char *dot = strrchr(open, '.');
        *(dot ? dot + 1 : open) = '\0';
    }
    while (strlen(open) < parent) {
        size_t n = strlen(open), name = strcspn(path + n, ".");
        strncat(open, path + n, name);
        emit_scalar(e, open + n);
        emit_map(e, true);
        strcat(open, ".");
    }
}

// Emits the keys of scope in base that apply (every top-level key; a stage's for its kind).
static void emit_scope(Emitter *e, KeyScope scope, const void *base, StageKind kind) {
    char open[256] = "";
    for (int i = 0; i < SCHEMA_COUNT; i++) {
        const Key *k = &SCHEMA[i];
        if (k->scope != scope || (scope == SCOPE_STAGE && !key_applies(k, kind))) continue;
        emit_path(e, open, k->path);
        emit_scalar(e, strrchr(k->path, '.') ? strrchr(k->path, '.') + 1 : k->path);
        emit_value(e, k, base);
    }
    emit_path(e, open, "");
}

int recipe_print(FILE *f, const Recipe *r) {
    Emitter e = {.ok = true};
    yaml_event_t ev;
    yaml_emitter_initialize(&e.em);
    yaml_emitter_set_output_file(&e.em, f);
    yaml_emitter_set_unicode(&e.em, 1);
    yaml_emitter_set_width(&e.em, 100);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    emit(&e, &ev);
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    emit(&e, &ev);
    emit_map(&e, true);
    emit_scope(&e, SCOPE_RECIPE, r, 0);
    emit_scalar(&e, "stages");
    emit_seq(&e, true, YAML_BLOCK_SEQUENCE_STYLE);
    for (int i = 0; i < r->n_stages; i++) {
        emit_map(&e, true);
        emit_scope(&e, SCOPE_STAGE, &r->stages[i], r->stages[i].kind);
        emit_map(&e, false);
    }
    emit_seq(&e, false, 0);
    emit_map(&e, false);
    yaml_document_end_event_initialize(&ev, 1);
    emit(&e, &ev);
    yaml_stream_end_event_initialize(&ev);
    emit(&e, &ev);
    yaml_emitter_delete(&e.em);
    return e.ok && !ferror(f) ? 0 : -1;
}

char *recipe_text(const Recipe *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    int rc = recipe_print(f, r);
    if (fclose(f) != 0 || rc != 0) {
        free(text);
        return NULL;
    }
    return text;
}

// ---- docs/recipes.md ----------------------------------------------------------------------------

static const char *const DOCS_INTRO[] = {
    "# Recipes",
    "",
    "<!-- Generated from the schema in train/recipe/schema.c by `layercake recipe docs > "
    "docs/recipes.md`; tests/test_recipe.c fails when the two differ. Edit the schema, not "
    "this file. -->",
    "",
    "A recipe is one YAML file describing a whole run: a name, a seed, the model, the "
    "tokenizer, then the stages, run in order. `layercake validate r.yaml` checks it, the "
    "files it names included, without training; `layercake validate r.yaml --print-config` "
    "prints it resolved (every key, defaults filled, paths absolute) as YAML that loads back "
    "to the same recipe.",
    "",
    "```yaml",
    "name: sft-vs-rlhf",
    "model: {n_layer: 4, n_head: 4, d_model: 128}",
    "tokenizer: ../samples/gpt2-tokenizer",
    "defaults:",
    "  batch_size: 16",
    "  schedule: {kind: cosine, warmup_steps: 50}",
    "stages:",
    "  - {name: pretrain, kind: pretrain, data: {train: data/lm.h5}, steps: 2000}",
    "  - {name: sft, kind: sft, init: pretrain, data: {train: data/sft.h5}, optim: {lr: 1.0e-4}}",
    "  - {name: reward, kind: reward, init: sft, data: {train: data/pref.h5}}",
    "  - {name: ppo, kind: ppo, init: sft, reward_model: reward, data: {prompts: data/p.h5}}",
    "  - {name: dpo, kind: dpo, init: sft, data: {train: data/pref.h5}, beta: 0.1}",
    "  - {name: eval, kind: eval, models: [sft, ppo, dpo], reward_model: reward, data: {prompts: "
    "data/eval.h5}}",
    "```",
    "",
    "## How values are resolved",
    "",
    "- One schema serves every stage kind: a key means the same thing in every stage it "
    "applies to. The kinds column says where a key applies; a stage that sets a key of "
    "another kind is an error.",
    "- `defaults:` holds stage keys merged into every stage, nested maps key by key (a stage's "
    "`optim: {lr: 1.0e-4}` keeps the `betas` of `defaults:`). A key of `defaults:` that does "
    "not apply to a stage's kind is skipped for that stage. `name` and `kind` are set in each "
    "stage itself.",
    "- Precedence, lowest first: the built-in default, `defaults:`, the stage's own keys, the "
    "command line.",
    "- `null` (or nothing after the colon) means unset: the key takes its built-in default. "
    "Lists are replaced whole.",
    "- Values follow YAML 1.2's core schema: `true` and `false` are booleans, `3e-4` is a "
    "number, and anything quoted is a string (`lr: \"3e-4\"` is an error).",
    "- Relative data, tokenizer and checkpoint paths resolve against the recipe file's folder "
    "(the working directory when they come from the command line); `output_dir` resolves "
    "against the working directory.",
    "- Stage references (`init`, `reward_model`, `judge.model`, `models`, `reference_model`) name "
    "an "
    "earlier stage, meaning its final checkpoint, or a `.h5` checkpoint file.",
    "- ppo, grpo and rloo train a policy that starts from `init`, and the KL penalty is "
    "measured against a frozen copy of `init`; dpo's reference model is its `init` too.",
    "- A `micro_batch_size` or `seq_len` of 0 is resolved when loading, so the printed recipe "
    "shows the values used.",
    "",
    "## Command-line overrides",
    "",
    "```sh",
    "layercake validate r.yaml seed=3 model.n_layer=2 sft.optim.lr=1e-4 defaults.batch_size=8 \\",
    "    'ppo.kl={coef: 0.02, target: 6}' 'dpo.optim.betas=[0.9, 0.99]'",
    "```",
    "",
    "- `key.path=value` sets a top-level key, `<stage-name>.key.path=value` a key of that "
    "stage, and `defaults.key.path=value` a key of `defaults:` (a stage that sets the key "
    "itself keeps its own value).",
    "- The value is parsed as YAML, so lists and maps work (quote them for the shell). "
    "Overrides apply in order, a later one winning; a stage's `name` and `kind` cannot be "
    "overridden.",
    NULL,
};

// Writes s as one markdown table cell, escaping the column separator.
static void md_cell(FILE *f, const char *s) {
    fputs(" ", f);
    for (; *s; s++)
        if (*s == '|')
            fputs("\\|", f);
        else
            fputc(*s, f);
    fputs(" |", f);
}

static const char *type_name(const Key *k, char *buf, size_t len) {
    bool ref = k->flags & KEY_STAGE_REF;
    bool path = k->flags & (KEY_INPUT_PATH | KEY_OUTPUT_PATH);
    switch (k->type) {
    case KEY_INT:
        return "int";
    case KEY_FLOAT:
        return k->def && !strcmp(k->def, "null") ? "float or null" : "float";
    case KEY_BOOL:
        return "bool";
    case KEY_STRING:
        return ref ? "stage or path" : path ? "path" : "string";
    case KEY_ENUM:
        return "enum";
    case KEY_STRINGS:
        return ref ? "list of stages or paths" : "list of strings";
    case KEY_FLOATS:
        snprintf(buf, len, "list of %d floats", k->len);
        return buf;
    }
    return "?";
}

static const char *allowed(const Key *k, char *buf, size_t len) {
    char kinds[128];
    size_t used = 0;
    buf[0] = '\0';
    if (k->type == KEY_ENUM)
        for (int i = 0; k->names[i]; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s`%s`", i ? ", " : "", k->names[i]);
    else if (k->flags & KEY_STAGE_REF) {
        kinds_format(k->ref_kinds, kinds, sizeof(kinds));
        snprintf(buf, len, "earlier stage (%s) or .h5", kinds);
    } else if (k->type == KEY_STRINGS && isfinite(k->range.lo) && k->range.lo > 0)
        snprintf(buf, len, "at least %g", k->range.lo);
    else if (k->type == KEY_INT || k->type == KEY_FLOAT || k->type == KEY_FLOATS)
        key_format_range(k, buf, len);
    return buf;
}

static void docs_key(FILE *f, const Key *k) {
    char buf[256], def[128];
    snprintf(buf, sizeof(buf), "`%s`", k->path);
    if (k->def)
        snprintf(def, sizeof(def), "`%s`", k->def);
    else
        snprintf(def, sizeof(def), "required");
    fputs("|", f);
    md_cell(f, buf);
    md_cell(f, type_name(k, buf, sizeof(buf)));
    md_cell(f, def);
    md_cell(f, allowed(k, buf, sizeof(buf)));
    if (k->scope == SCOPE_STAGE) {
        kinds_format(k->kinds, buf, sizeof(buf));
        md_cell(f, buf);
    }
    md_cell(f, k->doc);
    fputs("\n", f);
}

static void docs_table(FILE *f, KeyScope scope) {
    if (scope == SCOPE_RECIPE)
        fputs("| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n", f);
    else
        fputs("| key | type | default | allowed | kinds | meaning |\n"
              "|---|---|---|---|---|---|\n",
              f);
    for (int i = 0; i < SCHEMA_COUNT; i++)
        if (SCHEMA[i].scope == scope) docs_key(f, &SCHEMA[i]);
}

int recipe_docs(FILE *f) {
    for (int i = 0; DOCS_INTRO[i]; i++) fprintf(f, "%s\n", DOCS_INTRO[i]);
    fputs("\n## Top-level keys\n\n", f);
    docs_table(f, SCOPE_RECIPE);
    fputs("| `defaults` | map | `{}` | stage keys | stage keys merged into every stage |\n"
          "| `stages` | list | required | at least 1 | the stages, run in order; each a map of "
          "stage keys |\n",
          f);
    fputs("\n## Stage keys\n\n", f);
    docs_table(f, SCOPE_STAGE);
    fputs("\n## Rules across keys\n\n", f);
    for (int i = 0; i < RULE_COUNT; i++) {
        char kinds[128] = "top level";
        if (RULES[i].kinds == K_ALL)
            snprintf(kinds, sizeof(kinds), "every stage");
        else if (RULES[i].kinds)
            kinds_format(RULES[i].kinds, kinds, sizeof(kinds));
        fprintf(f, "- %s: %s\n", kinds, RULES[i].doc);
    }
    return ferror(f) ? -1 : 0;
}

// ---- summaries ----------------------------------------------------------------------------------

// How a stage reference reads in a summary: a stage name, a checkpoint's file name, "scratch".
static const char *ref_name(const char *ref) {
    const char *slash = strrchr(ref, '/');
    return !*ref ? "scratch" : slash ? slash + 1 : ref;
}

// The judge besides gold: the reward model's name, or the judge block's kind ("model sft").
static void judge_summary(const Stage *s, char *buf, size_t len) {
    static const char *const kinds[] = {"", "match", "command", "model"};
    if (s->judge.kind == JUDGE_KIND_NONE)
        snprintf(buf, len, "%s", *s->reward_model ? ref_name(s->reward_model) : "");
    else if (s->judge.kind == JUDGE_KIND_MODEL)
        snprintf(buf, len, "model %s%s", ref_name(s->judge.model),
                 s->judge.pairwise ? " (pairwise)" : "");
    else
        snprintf(buf, len, "%s", kinds[s->judge.kind]);
}

void recipe_stage_summary(const Recipe *r, int i, char *buf, size_t len) {
    const Stage *s = &r->stages[i];
    unsigned kind = KIND(s->kind);
    int n = snprintf(buf, len, "%-12s %-8s ", s->name, stage_kind_name(s->kind));
    size_t used = n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
    char judge[300];
    judge_summary(s, judge, sizeof(judge));
    const char *reward = *judge ? judge : s->gold_reward;
    if (kind & K_STEPS)
        snprintf(
            buf + used, len - used, "%d steps x %d %s of %d tokens (micro %d), lr %g %s, from %s",
            s->steps, s->batch_size, kind & (K_RM | K_DPO) ? "pairs" : "sequences", s->seq_len,
            s->micro_batch_size, s->optim.lr,
            schema_find(SCOPE_STAGE, "schedule.kind")->names[s->schedule.kind], ref_name(s->init));
    else if (kind & K_RL)
        snprintf(buf + used, len - used,
                 "%d iterations x %d prompts x %d responses, reward %s, kl %g, from %s",
                 s->iterations, s->rollout.batch, s->rollout.group_size, reward, s->kl.coef,
                 ref_name(s->init));
    else
        snprintf(buf + used, len - used, "%d models against %s, judge %s%s%s", s->models.n,
                 ref_name(s->reference_model), judge, *judge && *s->gold_reward ? " and " : "",
                 s->gold_reward);
}
