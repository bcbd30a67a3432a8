// tests/test_import.c: the importer on the fixtures in tests/fixtures (every JSONL format and
// the kinds it can make, both chat renderings, plain text, malformed and empty inputs, the
// over-length and validation-split policies), end to end on the samples with GPT-2's
// tokenizer, and the `layercake data` command (info --json, show, bad command lines).
#include "data/chat.h"
#include "data/import.h"
#include "data/info.h"
#include "data/loader.h"
#include "tests/data_fixtures.h"
#include "tests/testutil.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static Tokenizer *gpt2;  // GPT-2's: plain-text chat rendering
static Tokenizer *roles; // trained, with <|user|> <|assistant|> <|system|> <|end|>

static void tokenizers_load(void) {
    char err[512];
    gpt2 = tokenizer_load(LC_SAMPLES "/gpt2-tokenizer", err, sizeof(err));
    if (!gpt2) ck_abort_msg("%s", err);
    const char *corpus[] = {LC_SOURCE_DIR "/tests/fixtures/doc_a.txt"};
    roles = tokenizer_train(corpus, 1, 300, NULL, 0, err, sizeof(err));
    if (!roles) ck_abort_msg("%s", err);
}

static void tokenizers_free(void) {
    tokenizer_free(gpt2);
    tokenizer_free(roles);
}

// ---- helpers -------------------------------------------------------------------------------

#define FIXTURE(name) LC_SOURCE_DIR "/tests/fixtures/" name

static ImportOptions options(DataKind kind, const Tokenizer *tok, const char *out) {
    return (ImportOptions){.kind = kind, .tok = tok, .out = test_tmp_path(out), .max_len = 1024};
}

static ImportStats import_ok(const ImportOptions *o, const char *input) {
    ImportStats st;
    char err[1024];
    const char *inputs[] = {input};
    ck_assert_msg(import_run(o, inputs, 1, &st, err, sizeof(err)) == 0, "%s", err);
    return st;
}

// Imports and expects an error containing want (and the input's name when named).
static void import_fails(const ImportOptions *o, const char *input, const char *want) {
    ImportStats st;
    char err[1024] = "";
    const char *inputs[] = {input};
    unlink(o->out);
    ck_assert_int_eq(import_run(o, inputs, 1, &st, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    ck_assert_msg(access(o->out, F_OK) != 0, "%s was left behind after a failed import", o->out);
}

static Dataset *open_loaded(const char *path, DataKind kind, const Tokenizer *tok) {
    char err[512];
    Dataset *ds = dataset_open(path, kind, err, sizeof(err));
    ck_assert_msg(ds != NULL, "%s", err);
    ck_assert_msg(dataset_check_fingerprint(ds, tokenizer_fingerprint(tok), err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_msg(dataset_load(ds, tokenizer_vocab_size(tok), err, sizeof(err)) == 0, "%s", err);
    return ds;
}

// Appends the encoding of s (special tokens off) with the given mask value.
static void want_text(TokenBuf *w, const Tokenizer *tok, const char *s, uint8_t mask) {
    int *ids;
    int n = tokenizer_encode(tok, s, strlen(s), 0, &ids);
    tokenbuf_push(w, ids, n, mask);
    free(ids);
}

static void want_id(TokenBuf *w, int id, uint8_t mask) {
    tokenbuf_push(w, &id, 1, mask);
}

static void assert_tokens(const int *got, int64_t n, const TokenBuf *want, const char *what) {
    ck_assert_msg(n == want->n, "%s: %lld tokens, want %lld", what, (long long)n,
                  (long long)want->n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want->ids[i], "%s[%lld]: %d, want %d", what, (long long)i, got[i],
                      want->ids[i]);
}

static void assert_sft(const Example *ex, const TokenBuf *want) {
    assert_tokens(ex->tokens, ex->n_tokens, want, "sft tokens");
    ck_assert_mem_eq(ex->loss_mask, want->mask, (size_t)want->n);
}

// The decoded text of ids[0..n) (malloc'd).
static char *decode(const Tokenizer *tok, const int *ids, int64_t n) {
    size_t len;
    char *s = tokenizer_decode(tok, ids, (int)n, &len);
    ck_assert(s != NULL);
    return s;
}

static void assert_decodes(const Tokenizer *tok, const int *ids, int64_t n, const char *want) {
    char *s = decode(tok, ids, n);
    ck_assert_str_eq(s, want);
    free(s);
}

// Writes line `line` of a fixture alone (earlier lines blank, so its number stays) into a
// scratch file, and returns that file's path.
static const char *fixture_line(const char *fixture, int line, const char *scratch) {
    FILE *in = fopen(fixture, "r"), *out = fopen(test_tmp_path(scratch), "w");
    ck_assert(in && out);
    char buf[4096];
    for (int i = 1; i <= line; i++) {
        ck_assert_msg(fgets(buf, sizeof(buf), in), "%s has no line %d", fixture, line);
        fputs(i < line ? "\n" : buf, out);
    }
    fclose(in);
    fclose(out);
    return test_tmp_path(scratch);
}

// ---- formats -------------------------------------------------------------------------------

START_TEST(completion_to_sft_and_prompt) {
    ImportOptions o = options(DATA_SFT, gpt2, "completion_sft.h5");
    ImportStats st = import_ok(&o, FIXTURE("completion.jsonl"));
    ck_assert_int_eq(st.lines, 3);
    ck_assert_int_eq(st.examples[0], 3);
    Dataset *ds = open_loaded(o.out, DATA_SFT, gpt2);
    TokenBuf w = {0};
    want_text(&w, gpt2, "The capital of France is", 0);
    want_text(&w, gpt2, " Paris.", 1);
    want_id(&w, tokenizer_eot(gpt2), 1);
    Example ex = dataset_example(ds, 0);
    assert_sft(&ex, &w);
    ck_assert_int_eq(st.tokens[0], ds->n_tokens);
    dataset_free(ds);

    o = options(DATA_PROMPT, gpt2, "completion_prompt.h5");
    import_ok(&o, FIXTURE("completion.jsonl"));
    ds = open_loaded(o.out, DATA_PROMPT, gpt2);
    ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "2 + 2 =");
    assert_decodes(gpt2, ex.reference, ex.n_reference, " 4<|endoftext|>");
    ck_assert_int_eq(ex.n_reference_text, 2);
    ck_assert_mem_eq(ex.reference_text, " 4", 2);
    dataset_free(ds);
    tokenbuf_free(&w);
}
END_TEST

// A tokenizer with a BOS (llama2.c's tok512.bin: BOS 1, EOS 2) starts plain prompts and documents
// with it and ends responses and documents with its EOS.
START_TEST(bos_tokenizer_prompts_and_documents) {
    char err[512];
    Tokenizer *tok =
        tokenizer_load(LC_SOURCE_DIR "/samples/tinyllamas/tok512.bin", err, sizeof(err));
    ck_assert_msg(tok != NULL, "%s", err);
    ck_assert_int_eq(tokenizer_bos(tok), 1);
    ck_assert_int_eq(tokenizer_eot(tok), 2);
    ImportOptions o = options(DATA_SFT, tok, "bos_sft.h5");
    import_ok(&o, FIXTURE("completion.jsonl"));
    Dataset *ds = open_loaded(o.out, DATA_SFT, tok);
    TokenBuf w = {0};
    want_id(&w, 1, 0);
    want_text(&w, tok, "The capital of France is", 0);
    want_text(&w, tok, " Paris.", 1);
    want_id(&w, 2, 1);
    Example ex = dataset_example(ds, 0);
    assert_sft(&ex, &w);
    dataset_free(ds);

    const char *doc = test_tmp_path("bos_doc.txt");
    FILE *f = fopen(doc, "w");
    ck_assert(f != NULL);
    fputs("Once upon a time", f);
    fclose(f);
    o = options(DATA_LM, tok, "bos_lm.h5");
    import_ok(&o, doc);
    ds = open_loaded(o.out, DATA_LM, tok);
    int want[] = {1, 403, 407, 261, 378, 2}; // run.c's encoding of the text, then EOS
    ck_assert_int_eq(ds->n_tokens, 6);
    ex = dataset_example(ds, 0);
    ck_assert_mem_eq(ex.tokens, want, sizeof(want));
    dataset_free(ds);
    tokenbuf_free(&w);
    tokenizer_free(tok);
}
END_TEST

// GPT-2: the HH plain-text rendering, an <|endoftext|> after every assistant turn, loss on the
// assistant turns only; and the header/response seam tokenizes as the joined text does.
START_TEST(messages_plain_template) {
    ImportOptions o = options(DATA_SFT, gpt2, "messages_plain.h5");
    import_ok(&o, FIXTURE("messages.jsonl"));
    Dataset *ds = open_loaded(o.out, DATA_SFT, gpt2);
    ck_assert_int_eq(ds->n, 3);
    int eot = tokenizer_eot(gpt2);
    TokenBuf w = {0}, joined = {0};
    want_text(&w, gpt2, "\n\nHuman: hi", 0);
    want_text(&w, gpt2, "\n\nAssistant:", 0);
    want_text(&w, gpt2, " hello", 1);
    want_id(&w, eot, 1);
    Example ex = dataset_example(ds, 0);
    assert_sft(&ex, &w);
    want_text(&joined, gpt2, "\n\nHuman: hi\n\nAssistant: hello", 0);
    want_id(&joined, eot, 0);
    assert_tokens(ex.tokens, ex.n_tokens, &joined, "joined");

    ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "Be brief.\n\nHuman: What is 2+2?\n\nAssistant: 4.<|endoftext|>\n\nHuman: And "
                   "3+3?\n\nAssistant: 6.<|endoftext|>");
    w.n = 0;
    for (int64_t i = 0; i < ex.n_tokens; i++)
        if (ex.loss_mask[i]) want_id(&w, ex.tokens[i], 1);
    assert_decodes(gpt2, w.ids, w.n, " 4.<|endoftext|> 6.<|endoftext|>");

    ex = dataset_example(ds, 2); // special-token text in messages stays text
    int eots = 0;
    for (int64_t i = 0; i < ex.n_tokens; i++) eots += ex.tokens[i] == eot;
    ck_assert_int_eq(eots, 1);
    dataset_free(ds);
    tokenbuf_free(&w);
    tokenbuf_free(&joined);
}
END_TEST

START_TEST(messages_role_tokens) {
    int user = tokenizer_special(roles, "<|user|>"),
        asst = tokenizer_special(roles, "<|assistant|>");
    int sys = tokenizer_special(roles, "<|system|>"), end = tokenizer_special(roles, "<|end|>");
    ck_assert(user >= 0 && asst >= 0 && sys >= 0 && end >= 0);
    Chat chat = chat_init(roles);
    ck_assert_int_eq(chat.roles, 1);
    ck_assert_int_eq(chat.end, end);
    ImportOptions o = options(DATA_SFT, roles, "messages_roles.h5");
    import_ok(&o, FIXTURE("messages.jsonl"));
    Dataset *ds = open_loaded(o.out, DATA_SFT, roles);
    TokenBuf w = {0};
    want_id(&w, sys, 0);
    want_text(&w, roles, "Be brief.", 0);
    want_id(&w, end, 0);
    want_id(&w, user, 0);
    want_text(&w, roles, "What is 2+2?", 0);
    want_id(&w, end, 0);
    want_id(&w, asst, 0);
    want_text(&w, roles, "4.", 1);
    want_id(&w, end, 1);
    want_id(&w, user, 0);
    want_text(&w, roles, "And 3+3?", 0);
    want_id(&w, end, 0);
    want_id(&w, asst, 0);
    want_text(&w, roles, "6.", 1);
    want_id(&w, end, 1);
    Example ex = dataset_example(ds, 1);
    assert_sft(&ex, &w);
    ex = dataset_example(ds, 2); // "<|end|>" typed by the assistant is text, not the token
    int ends = 0;
    for (int64_t i = 0; i < ex.n_tokens; i++) ends += ex.tokens[i] == end;
    ck_assert_int_eq(ends, 2); // the user's turn end and the assistant's
    dataset_free(ds);
    tokenbuf_free(&w);
}
END_TEST

// A conversation ending with the user is a prompt (no reference), but no sft example.
START_TEST(messages_open_conversation) {
    ImportOptions o = options(DATA_PROMPT, gpt2, "messages_open.h5");
    import_ok(&o, FIXTURE("messages_open.jsonl"));
    Dataset *ds = open_loaded(o.out, DATA_PROMPT, gpt2);
    Example ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "\n\nHuman: Tell me a joke.\n\nAssistant:");
    ck_assert_int_eq(ex.n_reference, 0);
    ck_assert_int_eq(ex.n_reference_text, 0);
    dataset_free(ds);
    o = options(DATA_SFT, gpt2, "messages_open_sft.h5");
    import_fails(&o, FIXTURE("messages_open.jsonl"),
                 "messages_open.jsonl:1: the last message is not the assistant's");
}
END_TEST

START_TEST(prompt_chosen_rejected) {
    ImportOptions o = options(DATA_PREFERENCE, gpt2, "pcr.h5");
    import_ok(&o, FIXTURE("pref.jsonl"));
    Dataset *ds = open_loaded(o.out, DATA_PREFERENCE, gpt2);
    Example ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "Q: best color?\nA:");
    assert_decodes(gpt2, ex.chosen, ex.n_chosen, " Blue.<|endoftext|>");
    assert_decodes(gpt2, ex.rejected, ex.n_rejected, " I hate you.<|endoftext|>");
    dataset_free(ds);

    o = options(DATA_SFT, gpt2, "pcr_sft.h5"); // chosen as the response
    import_ok(&o, FIXTURE("pref.jsonl"));
    ds = open_loaded(o.out, DATA_SFT, gpt2);
    ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "Q: 1+1?\nA: 2<|endoftext|>");
    dataset_free(ds);
}
END_TEST

START_TEST(hh_transcripts) {
    ImportOptions o = options(DATA_PREFERENCE, gpt2, "hh.h5");
    import_ok(&o, FIXTURE("hh.jsonl"));
    Dataset *ds = open_loaded(o.out, DATA_PREFERENCE, gpt2);
    Example ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "\n\nHuman: How do I bake bread?\n\nAssistant:");
    assert_decodes(gpt2, ex.chosen, ex.n_chosen, " Mix flour, water, yeast and salt.<|endoftext|>");
    assert_decodes(gpt2, ex.rejected, ex.n_rejected, " Buy it.<|endoftext|>");
    ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "\n\nHuman: Hi\n\nAssistant: Hello!<|endoftext|>\n\nHuman: Bye\n\nAssistant:");
    assert_decodes(gpt2, ex.chosen, ex.n_chosen, " Goodbye, take care.<|endoftext|>");
    dataset_free(ds);

    o = options(DATA_PROMPT, gpt2, "hh_prompt.h5"); // prompts only
    import_ok(&o, FIXTURE("hh.jsonl"));
    ds = open_loaded(o.out, DATA_PROMPT, gpt2);
    ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "\n\nHuman: How do I bake bread?\n\nAssistant:");
    ck_assert_int_eq(ex.n_reference + ex.n_reference_text, 0);
    dataset_free(ds);
}
END_TEST

START_TEST(hh_bad_transcripts) {
    ImportOptions o = options(DATA_PREFERENCE, gpt2, "hh_bad.h5");
    import_fails(&o, FIXTURE("hh_bad.jsonl"),
                 "hh_bad.jsonl:2: chosen and rejected differ before their last");
    o.skip_bad = 1;
    ImportStats st = import_ok(&o, FIXTURE("hh_bad.jsonl"));
    ck_assert_int_eq(st.examples[0], 2);
    ck_assert_int_eq(st.skipped, 3);
    ck_assert_msg(strstr(st.first_skip, "hh_bad.jsonl:2:"), "%s", st.first_skip);
    o.skip_bad = 0;
    import_fails(&o, fixture_line(FIXTURE("hh_bad.jsonl"), 3, "hh_bad.jsonl"),
                 "hh_bad.jsonl:3: field 'chosen' does not start with \"\\n\\nHuman:\"");
    import_fails(&o, fixture_line(FIXTURE("hh_bad.jsonl"), 4, "hh_bad.jsonl"),
                 "hh_bad.jsonl:4: field 'chosen' does not end with an \"\\n\\nAssistant:\" turn");
}
END_TEST

START_TEST(self_instruct) {
    ImportOptions o = options(DATA_SFT, gpt2, "si.h5");
    ImportStats st = import_ok(&o, FIXTURE("self_instruct.jsonl"));
    ck_assert_int_eq(st.lines, 2);
    ck_assert_int_eq(st.examples[0], 3); // one example per instance
    Dataset *ds = open_loaded(o.out, DATA_SFT, gpt2);
    Example ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "\n\nHuman: Give an antonym.\n\nup\n\nAssistant: down<|endoftext|>");
    ex = dataset_example(ds, 2); // empty input: the instruction alone
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "\n\nHuman: Say hello.\n\nAssistant: Hello!<|endoftext|>");
    dataset_free(ds);

    o = options(DATA_PROMPT, gpt2, "si_prompt.h5");
    import_ok(&o, FIXTURE("self_instruct.jsonl"));
    ds = open_loaded(o.out, DATA_PROMPT, gpt2);
    ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "\n\nHuman: Give an antonym.\n\nhot\n\nAssistant:");
    ck_assert_int_eq(ex.n_reference_text, 4);
    ck_assert_mem_eq(ex.reference_text, "cold", 4);
    dataset_free(ds);
}
END_TEST

START_TEST(prompts_and_text_lines) {
    ImportOptions o = options(DATA_PROMPT, gpt2, "prompts.h5");
    ImportStats st = import_ok(&o, FIXTURE("prompts.jsonl"));
    ck_assert_int_eq(st.examples[0], 2);
    Dataset *ds = open_loaded(o.out, DATA_PROMPT, gpt2);
    Example ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "Write a haiku about rain.");
    dataset_free(ds);

    o = options(DATA_LM, gpt2, "text_lines.h5");
    st = import_ok(&o, FIXTURE("text.jsonl"));
    ck_assert_int_eq(st.documents, 2);
    ds = open_loaded(o.out, DATA_LM, gpt2);
    ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "First document.<|endoftext|>");
    dataset_free(ds);
}
END_TEST

START_TEST(text_files) {
    ImportOptions o = options(DATA_LM, gpt2, "docs.h5");
    const char *inputs[] = {FIXTURE("doc_a.txt"), FIXTURE("empty.txt"), FIXTURE("doc_b.txt")};
    ImportStats st;
    char err[1024];
    ck_assert_msg(import_run(&o, inputs, 3, &st, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(st.documents, 2); // the empty file makes no document
    Dataset *ds = open_loaded(o.out, DATA_LM, gpt2);
    Example ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "Another file, one line, no newline at the end<|endoftext|>");
    dataset_free(ds);

    o.split_blank = 2; // two or more blank lines end a document
    ck_assert_msg(import_run(&o, inputs, 1, &st, err, sizeof(err)) == 0, "%s", err);
    ds = open_loaded(o.out, DATA_LM, gpt2);
    ck_assert_int_eq(ds->n, 2);
    ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "The first paragraph.\nStill the first.\n\nThe second paragraph.\n"
                   "<|endoftext|>");
    ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens,
                   "The third, after three blank lines.\n<|endoftext|>");
    dataset_free(ds);

    o.split_blank = 1;
    ck_assert_msg(import_run(&o, inputs, 1, &st, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(st.documents, 3);
}
END_TEST

// lm documents longer than max_len are cut into pieces whose concatenation is the document.
START_TEST(lm_long_documents_split) {
    ImportOptions o = options(DATA_LM, gpt2, "lm_split.h5");
    o.max_len = 5;
    ImportStats st = import_ok(&o, FIXTURE("doc_a.txt"));
    ck_assert_int_eq(st.split, 1);
    ck_assert_int_eq(st.dropped, 0);
    TokenBuf w = {0};
    FILE *f = fopen(FIXTURE("doc_a.txt"), "r");
    char text[512];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    want_text(&w, gpt2, text, 0);
    want_id(&w, tokenizer_eot(gpt2), 0);
    Dataset *ds = open_loaded(o.out, DATA_LM, gpt2);
    ck_assert_int_eq(ds->n, (w.n + 4) / 5);
    for (int64_t i = 0; i < ds->n; i++)
        ck_assert_int_eq(dataset_example(ds, i).n_tokens, i + 1 < ds->n ? 5 : w.n - 5 * i);
    assert_tokens(ds->tokens.ids, ds->n_tokens, &w, "stream");
    dataset_free(ds);
    tokenbuf_free(&w);
}
END_TEST

// TRL's unpaired lines: one example each with its label; a preference pair makes two (chosen
// desirable, rejected undesirable) on the same side of the validation split.
START_TEST(unpaired_lines) {
    ImportOptions o = options(DATA_UNPAIRED, gpt2, "kto.h5");
    ImportStats st = import_ok(&o, FIXTURE("kto.jsonl"));
    ck_assert_int_eq(st.examples[0], 16);
    Dataset *ds = open_loaded(o.out, DATA_UNPAIRED, gpt2);
    Example ex = dataset_example(ds, 0);
    assert_decodes(gpt2, ex.tokens, ex.n_tokens, "Q: What is two plus two?\nA:");
    assert_decodes(gpt2, ex.completion, ex.n_completion, " Four.<|endoftext|>");
    ck_assert_int_eq(ex.label, 1);
    ex = dataset_example(ds, 1);
    assert_decodes(gpt2, ex.completion, ex.n_completion, " Five.<|endoftext|>");
    ck_assert_int_eq(ex.label, 0);
    int desirable = 0;
    int64_t trained = ds->completion.off[ds->n];
    for (int64_t i = 0; i < ds->n; i++) desirable += ds->label[i];
    ck_assert_int_eq(desirable, 9);
    dataset_free(ds);
    DatasetInfo info;
    char err[512];
    ck_assert_msg(dataset_info(o.out, &info, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(info.kind, DATA_UNPAIRED);
    ck_assert_int_eq(info.desirable, 9);
    ck_assert_int_eq(info.trained, trained);
    char *json = dataset_info_json(o.out, &info);
    ck_assert_msg(strstr(json, "\"kind\":\"unpaired\"") && strstr(json, "\"desirable\":9"), "%s",
                  json);
    free(json);

    o = options(DATA_UNPAIRED, gpt2, "pref_unpaired.h5");
    o.val_fraction = 0.5;
    st = import_ok(&o, FIXTURE("pref.jsonl"));
    ck_assert_int_eq(st.examples[0] + st.examples[1], 4);
    ck_assert_int_eq(st.examples[0] % 2, 0); // a pair's halves stay together
    o.val_fraction = 0;
    import_ok(&o, FIXTURE("pref.jsonl"));
    ds = open_loaded(o.out, DATA_UNPAIRED, gpt2);
    ck_assert_int_eq(ds->n, 4);
    const char *completions[4] = {" Blue.<|endoftext|>", " I hate you.<|endoftext|>",
                                  " 2<|endoftext|>", " 11<|endoftext|>"};
    for (int i = 0; i < 4; i++) {
        ex = dataset_example(ds, i);
        assert_decodes(gpt2, ex.tokens, ex.n_tokens, i < 2 ? "Q: best color?\nA:" : "Q: 1+1?\nA:");
        assert_decodes(gpt2, ex.completion, ex.n_completion, completions[i]);
        ck_assert_int_eq(ex.label, i % 2 == 0);
    }
    dataset_free(ds);
}
END_TEST

// Each malformed unpaired line names the file, the line and the field.
START_TEST(unpaired_bad_lines) {
    static const char *const WANT[] = {
        "kto_bad.jsonl:2: field 'label' is not a boolean (true: desirable, false: undesirable)",
        "kto_bad.jsonl:3: field 'completion' is missing",
        "kto_bad.jsonl:4: field 'label' is missing",
        "kto_bad.jsonl:5: field 'completion' is not a string",
        "kto_bad.jsonl:6: field 'label' is not a boolean",
    };
    for (int line = 2; line <= 6; line++) {
        ImportOptions o = options(DATA_UNPAIRED, gpt2, "kto_bad.h5");
        import_fails(&o, fixture_line(FIXTURE("kto_bad.jsonl"), line, "kto_bad.jsonl"),
                     WANT[line - 2]);
    }
    ImportOptions o = options(DATA_UNPAIRED, gpt2, "kto_bad.h5");
    o.skip_bad = 1;
    ImportStats st = import_ok(&o, FIXTURE("kto_bad.jsonl"));
    ck_assert_int_eq(st.examples[0], 1);
    ck_assert_int_eq(st.skipped, 5);
    o = options(DATA_SFT, gpt2, "kto_sft.h5");
    import_fails(&o, FIXTURE("kto.jsonl"),
                 "kto.jsonl:1: a prompt/completion/label line cannot make a 'sft' dataset (it "
                 "makes unpaired)");
}
END_TEST

// ---- errors and policies -------------------------------------------------------------------

START_TEST(kind_format_mismatch) {
    ImportOptions o = options(DATA_PREFERENCE, gpt2, "mismatch.h5");
    import_fails(&o, FIXTURE("completion.jsonl"),
                 "completion.jsonl:1: a prompt/completion line cannot make a 'preference' "
                 "dataset (it makes sft or prompt)");
    o.skip_bad = 1; // not a malformed line: never skipped
    import_fails(&o, FIXTURE("completion.jsonl"), "cannot make a 'preference' dataset");
    o = options(DATA_LM, gpt2, "mismatch_lm.h5");
    import_fails(&o, FIXTURE("pref.jsonl"),
                 "a prompt/chosen/rejected line cannot make a 'lm' dataset (it makes sft or "
                 "preference or prompt or unpaired)");
    o = options(DATA_SFT, gpt2, "mismatch_txt.h5");
    import_fails(&o, FIXTURE("doc_a.txt"), "doc_a.txt: plain text makes 'lm' datasets only");
    o = options(DATA_SFT, gpt2, "mismatch_prompts.h5");
    import_fails(&o, FIXTURE("prompts.jsonl"), "a prompt line cannot make a 'sft' dataset");
}
END_TEST

START_TEST(malformed_lines) {
    ImportOptions o = options(DATA_SFT, gpt2, "bad_json.h5");
    import_fails(&o, FIXTURE("bad_json.jsonl"), "bad_json.jsonl:3: invalid JSON: ");
    o.skip_bad = 1;
    ImportStats st = import_ok(&o, FIXTURE("bad_json.jsonl"));
    ck_assert_int_eq(st.examples[0], 3);
    ck_assert_int_eq(st.skipped, 1);

    o = options(DATA_PREFERENCE, gpt2, "missing.h5");
    import_fails(&o, FIXTURE("missing_field.jsonl"),
                 "missing_field.jsonl:2: field 'rejected' is missing");

    static const char *const BAD_FIELDS[] = {
        "bad_fields.jsonl:2: messages[0]: field 'content' is not a string",
        "bad_fields.jsonl:3: messages[0]: role 'tool' is not system, user or assistant",
        "bad_fields.jsonl:4: messages[1]: a system message may only come first",
        "bad_fields.jsonl:5: field 'messages' is not a non-empty array",
        "bad_fields.jsonl:6: the line is not a JSON object",
        "bad_fields.jsonl:7: no known fields",
    };
    for (int bad = 2; bad <= 7; bad++) {
        o = options(DATA_SFT, gpt2, "bad_fields.h5");
        import_fails(&o, fixture_line(FIXTURE("bad_fields.jsonl"), bad, "bad_fields.jsonl"),
                     BAD_FIELDS[bad - 2]);
    }
    o = options(DATA_SFT, gpt2, "bad_fields.h5");
    o.skip_bad = 1;
    st = import_ok(&o, FIXTURE("bad_fields.jsonl"));
    ck_assert_int_eq(st.examples[0], 2);
    ck_assert_int_eq(st.skipped, 6);
}
END_TEST

// Empty texts that make no usable example are malformed lines (docs/datasets.md): they used to
// import, and PPO failed at its first rollout without naming the file.
START_TEST(empty_fields) {
    static const struct {
        DataKind kind;
        int line;
        const char *want; // NULL: the line imports
    } CASES[] = {
        {DATA_PROMPT, 1, "empty_fields.jsonl:1: field 'prompt' is empty"},
        {DATA_SFT, 2, "empty_fields.jsonl:2: field 'prompt' is empty"},
        {DATA_PROMPT, 2, "empty_fields.jsonl:2: field 'prompt' is empty"},
        {DATA_SFT, 3, "empty_fields.jsonl:3: field 'completion' is empty: an sft example needs"},
        {DATA_PROMPT, 3, NULL}, // the reference may be empty
        {DATA_PREFERENCE, 4, "empty_fields.jsonl:4: fields 'chosen' and 'rejected' are both"},
        {DATA_PREFERENCE, 5, NULL}, // declining to answer can be the better reply
        {DATA_SFT, 5, "empty_fields.jsonl:5: field 'chosen' is empty"},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        ImportOptions o = options(CASES[i].kind, gpt2, "empty_fields.h5");
        const char *in =
            fixture_line(FIXTURE("empty_fields.jsonl"), CASES[i].line, "empty_fields.jsonl");
        if (CASES[i].want)
            import_fails(&o, in, CASES[i].want);
        else
            ck_assert_int_eq(import_ok(&o, in).examples[0], 1);
    }
    ImportOptions o = options(DATA_PROMPT, gpt2, "empty_fields.h5");
    o.skip_bad = 1;
    ImportStats st = import_ok(&o, FIXTURE("empty_fields.jsonl"));
    ck_assert_int_eq(st.examples[0], 4);
    ck_assert_int_eq(st.skipped, 2);
    ck_assert_msg(strstr(st.first_skip, "empty_fields.jsonl:1: field 'prompt' is empty"), "%s",
                  st.first_skip);
}
END_TEST

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

// Expects import_run to refuse o as a usage error naming want, and the input to be untouched.
static void import_refuses(const ImportOptions *o, const char *input, const char *want) {
    ImportStats st;
    char err[1024] = "";
    const char *inputs[] = {input};
    ck_assert_int_eq(import_run(o, inputs, 1, &st, err, sizeof(err)), IMPORT_ERR_USAGE);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    FILE *f = fopen(input, "r");
    char buf[64] = "";
    ck_assert(f && fgets(buf, sizeof(buf), f));
    fclose(f);
    ck_assert_str_eq(buf, "To be, or not to be.\n");
}

// An output that is also an input used to be overwritten before it was read.
START_TEST(output_is_input) {
    const char *in = test_tmp_path("same.txt");
    write_text(in, "To be, or not to be.\n");
    ImportOptions o = options(DATA_LM, gpt2, "same.txt");
    import_refuses(&o, in, "--out: ");
    import_refuses(&o, in, "same.txt is the input");
    char other[PATH_MAX + 16];
    snprintf(other, sizeof(other), "%s./same.txt", test_tmp_path(""));
    o.out = other; // another spelling of the same file
    import_refuses(&o, in, "it would be overwritten before it is read");

    const char *val_in = test_tmp_path("v-val.h5");
    write_text(val_in, "To be, or not to be.\n");
    o = options(DATA_LM, gpt2, "v.h5");
    o.val_fraction = 0.5;
    import_refuses(&o, val_in, "the validation file ");
    o.val_fraction = 0; // no validation file: nothing is overwritten
    import_ok(&o, val_in);
}
END_TEST

START_TEST(empty_and_missing_inputs) {
    ImportOptions o = options(DATA_SFT, gpt2, "empty.h5");
    import_fails(&o, FIXTURE("empty.jsonl"), "no examples to write");
    import_fails(&o, FIXTURE("blank_lines.jsonl"), "no examples to write");
    o = options(DATA_LM, gpt2, "empty_lm.h5");
    import_fails(&o, FIXTURE("empty.txt"), "no examples to write");
    import_fails(&o, FIXTURE("no-such-file.txt"), "no-such-file.txt: cannot open");
    o = options(DATA_SFT, gpt2, "all_skipped.h5");
    o.skip_bad = 1;
    import_fails(&o, FIXTURE("messages_open.jsonl"), "no examples to write (1 lines skipped");
}
END_TEST

// sft, preference and prompt examples over max_len are dropped whole and counted.
START_TEST(over_length_dropped) {
    ImportOptions o = options(DATA_SFT, gpt2, "long_sft.h5");
    o.max_len = 8;
    ImportStats st = import_ok(&o, FIXTURE("completion.jsonl"));
    ck_assert_int_eq(st.examples[0] + st.dropped, 3);
    ck_assert_int_gt(st.dropped, 0);
    Dataset *ds = open_loaded(o.out, DATA_SFT, gpt2);
    for (int64_t i = 0; i < ds->n; i++) ck_assert_int_le(dataset_example(ds, i).n_tokens, 8);
    dataset_free(ds);

    o = options(DATA_PREFERENCE, gpt2, "long_pref.h5");
    o.max_len = 12; // "Q: 1+1?\nA:" + " 11<eot>" fits, the first pair does not
    st = import_ok(&o, FIXTURE("pref.jsonl"));
    ck_assert_int_eq(st.examples[0], 1);
    ck_assert_int_eq(st.dropped, 1);

    o = options(DATA_PROMPT, gpt2, "long_prompt.h5");
    o.max_len = 4;
    st = import_ok(&o, FIXTURE("prompts.jsonl"));
    ck_assert_int_eq(st.examples[0], 1);
    ck_assert_int_eq(st.dropped, 1);
}
END_TEST

START_TEST(val_split) {
    char path[256];
    import_val_path("data/pref.h5", path, sizeof(path));
    ck_assert_str_eq(path, "data/pref-val.h5");
    import_val_path("corpus", path, sizeof(path));
    ck_assert_str_eq(path, "corpus-val");

    ImportOptions o = options(DATA_SFT, gpt2, "split.h5");
    o.val_fraction = 0.5;
    ImportStats a = import_ok(&o, FIXTURE("dups.jsonl"));
    ck_assert_int_eq(a.examples[0] + a.examples[1], 40);
    ck_assert_int_gt(a.examples[1], 0);
    ck_assert_int_gt(a.examples[0], 0);
    ImportStats b = import_ok(&o, FIXTURE("dups.jsonl"));
    ck_assert_int_eq(a.examples[1], b.examples[1]); // deterministic
    ck_assert_int_eq(a.tokens[1], b.tokens[1]);
    // Each of the 10 distinct examples comes 4 times; all copies go to the same side.
    import_val_path(o.out, path, sizeof(path));
    const char *files[2] = {o.out, path};
    for (int k = 0; k < 2; k++) {
        Dataset *ds = open_loaded(files[k], DATA_SFT, gpt2);
        for (int64_t i = 0; i < ds->n; i++) {
            Example x = dataset_example(ds, i);
            int copies = 0;
            for (int64_t j = 0; j < ds->n; j++) {
                Example y = dataset_example(ds, j);
                copies += x.n_tokens == y.n_tokens &&
                          memcmp(x.tokens, y.tokens, (size_t)x.n_tokens * sizeof(int)) == 0;
            }
            ck_assert_int_eq(copies, 4);
        }
        dataset_free(ds);
    }
    o.seed = 7;
    int differs = 0;
    for (o.seed = 1; o.seed < 5; o.seed++)
        differs += import_ok(&o, FIXTURE("dups.jsonl")).examples[1] != a.examples[1];
    ck_assert_int_gt(differs, 0);
}
END_TEST

// ---- samples -------------------------------------------------------------------------------

// Every example of a loader's epoch comes exactly once at the given T.
static void loader_epoch_ok(const char *path, DataKind kind, int T) {
    LoaderOptions lo = {.batch = 8,
                        .T = T,
                        .world = 1,
                        .seed = 1,
                        .shuffle = 1,
                        .vocab_size = tokenizer_vocab_size(gpt2),
                        .fingerprint = tokenizer_fingerprint(gpt2)};
    char err[512];
    Loader *l = loader_open(path, kind, &lo, err, sizeof(err));
    ck_assert_msg(l != NULL, "%s", err);
    int64_t units = 0;
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        Batch b;
        int n = loader_next(l, &b);
        ck_assert_msg(n >= 0, "%s", loader_error(l));
        units += n;
    }
    ck_assert_int_eq(units, loader_units(l));
    loader_free(l);
}

START_TEST(sample_hh_rlhf) {
    ImportOptions o = options(DATA_PREFERENCE, gpt2, "hh_sample.h5");
    o.skip_bad = 1;
    ImportStats st = import_ok(&o, LC_SAMPLES "/hh-rlhf/harmless-base-test-2k.jsonl");
    ck_assert_int_eq(st.lines, 2000);
    ck_assert_int_eq(st.skipped, 4); // pairs whose transcripts differ before the last turn
    ck_assert_int_eq(st.examples[0] + st.dropped, 1996);
    printf("HH-RLHF import: %.2f MB in %.3f s: %.1f MB/s, %.2f M tokens/s\n", st.bytes / 1e6,
           st.seconds, st.bytes / 1e6 / st.seconds, st.tokens[0] / 1e6 / st.seconds);
    loader_epoch_ok(o.out, DATA_PREFERENCE, 1024);
}
END_TEST

START_TEST(sample_self_instruct) {
    ImportOptions o = options(DATA_SFT, gpt2, "si_sample.h5");
    ImportStats st = import_ok(&o, LC_SAMPLES "/self-instruct/seed_tasks.jsonl");
    ck_assert_int_eq(st.lines, 175);
    ck_assert_int_eq(st.examples[0] + st.dropped, 175); // one instance per seed task
    loader_epoch_ok(o.out, DATA_SFT, 1024);
    o = options(DATA_PROMPT, gpt2, "si_sample_prompt.h5");
    st = import_ok(&o, LC_SAMPLES "/self-instruct/seed_tasks.jsonl");
    ck_assert_int_eq(st.examples[0] + st.dropped, 175);
    loader_epoch_ok(o.out, DATA_PROMPT, 1024);
}
END_TEST

START_TEST(sample_tinyshakespeare) {
    ImportOptions o = options(DATA_LM, gpt2, "shakespeare.h5");
    o.val_fraction = 0.1;
    ImportStats st = import_ok(&o, LC_SAMPLES "/tinyshakespeare/input.txt");
    ck_assert_int_eq(st.bytes, 1115394);
    ck_assert_int_eq(st.tokens[0] + st.tokens[1], 338025 + 1); // GPT-2 tokens + <|endoftext|>
    ck_assert_int_gt(st.examples[1], 0);
    loader_epoch_ok(o.out, DATA_LM, 256);
}
END_TEST

// ---- the command ---------------------------------------------------------------------------

// Runs layercake with arguments; returns its exit status and its stdout (malloc'd) in *out.
static int run_layercake(const char *args, char **out) {
    char *cmd = fix_join(LC_BINARY_DIR "/layercake ", args, " 2>/dev/null", NULL);
    FILE *p = popen(cmd, "r");
    ck_assert(p != NULL);
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    while ((k = fread(buf + n, 1, cap - 1 - n, p)) > 0) n += k;
    buf[n] = '\0';
    int status = pclose(p);
    free(cmd);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(cli_info_json) {
    static const struct {
        DataKind kind;
        const char *input;
    } CASES[] = {{DATA_LM, FIXTURE("text.jsonl")},
                 {DATA_SFT, FIXTURE("messages.jsonl")},
                 {DATA_PREFERENCE, FIXTURE("hh.jsonl")},
                 {DATA_PROMPT, FIXTURE("completion.jsonl")}};
    for (size_t c = 0; c < sizeof(CASES) / sizeof(CASES[0]); c++) {
        ImportOptions o = options(CASES[c].kind, gpt2, "cli_info.h5");
        import_ok(&o, CASES[c].input);
        DatasetInfo info;
        char err[512], *out;
        ck_assert_msg(dataset_info(o.out, &info, err, sizeof(err)) == 0, "%s", err);
        char *args = fix_join("data info --json ", o.out, NULL);
        ck_assert_int_eq(run_layercake(args, &out), 0);
        json_error_t jerr;
        json_t *j = json_loads(out, 0, &jerr);
        ck_assert_msg(j != NULL, "not JSON: %s", out);
        ck_assert_str_eq(json_string_value(json_object_get(j, "kind")),
                         data_kind_name(CASES[c].kind));
        ck_assert_int_eq(json_integer_value(json_object_get(j, "examples")), info.examples);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "tokens")), info.tokens);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "length"), "max")),
                         info.len_max);
        char fp[17];
        dataset_fingerprint_hex(tokenizer_fingerprint(gpt2), fp);
        ck_assert_str_eq(json_string_value(json_object_get(j, "tokenizer")), fp);
        json_decref(j);
        free(out);
        free(args);
        args = fix_join("data info ", o.out, NULL);
        ck_assert_int_eq(run_layercake(args, &out), 0);
        ck_assert_msg(strstr(out, data_kind_name(CASES[c].kind)) && strstr(out, fp), "%s", out);
        free(out);
        free(args);
    }
}
END_TEST

// Percentiles by nearest rank over the fixture sft lengths (known in closed form).
START_TEST(info_percentiles) {
    const char *path = test_tmp_path("info_sft.h5");
    fix_write(path, DATA_SFT, 50);
    DatasetInfo info;
    char err[512];
    ck_assert_msg(dataset_info(path, &info, err, sizeof(err)) == 0, "%s", err);
    int64_t len[50], trained = 0, total = 0;
    int tok[FIX_MAX];
    uint8_t m[FIX_MAX];
    for (int i = 0; i < 50; i++) {
        Example ex = fix_sft(i, tok, m);
        len[i] = ex.n_tokens;
        total += ex.n_tokens;
        for (int t = 0; t < ex.n_tokens; t++) trained += m[t];
    }
    for (int i = 0; i < 50; i++) // sort
        for (int j = i + 1; j < 50; j++)
            if (len[j] < len[i]) {
                int64_t x = len[i];
                len[i] = len[j];
                len[j] = x;
            }
    ck_assert_int_eq(info.examples, 50);
    ck_assert_int_eq(info.tokens, total);
    ck_assert_int_eq(info.trained, trained);
    ck_assert_int_eq(info.len_p50, len[24]);
    ck_assert_int_eq(info.len_p90, len[44]);
    ck_assert_int_eq(info.len_p99, len[49]);
    ck_assert_int_eq(info.len_max, len[49]);
}
END_TEST

START_TEST(cli_show) {
    ImportOptions o = options(DATA_SFT, gpt2, "cli_show.h5");
    import_ok(&o, FIXTURE("completion.jsonl"));
    char *out, *args = fix_join("data show ", o.out, " --index 0 --tokenizer ",
                                LC_SAMPLES "/gpt2-tokenizer", NULL);
    ck_assert_int_eq(run_layercake(args, &out), 0);
    ck_assert_msg(strstr(out, "The capital of France is[[ Paris.<|endoftext|>]]"), "%s", out);
    free(out);
    free(args);
    args = fix_join("data show ", o.out, " --index 0 --color always --tokenizer ",
                    LC_SAMPLES "/gpt2-tokenizer", NULL);
    ck_assert_int_eq(run_layercake(args, &out), 0);
    ck_assert_msg(strstr(out, "\033[2mThe capital of France is\033[0m Paris."), "%s", out);
    free(out);
    free(args);
    o = options(DATA_PREFERENCE, gpt2, "cli_show_pref.h5");
    import_ok(&o, FIXTURE("hh.jsonl"));
    args = fix_join("data show ", o.out, " --index 0 --tokenizer ", LC_SAMPLES "/gpt2-tokenizer",
                    NULL);
    ck_assert_int_eq(run_layercake(args, &out), 0);
    ck_assert_msg(strstr(out, "=== chosen\n\n\nHuman: How do I bake bread?\n\nAssistant:[[ Mix "
                              "flour, water, yeast and salt.<|endoftext|>]]\n=== rejected\n"),
                  "%s", out);
    free(out);
    free(args);
    args = fix_join("data show ", o.out, " --index 3 --tokenizer ", LC_SAMPLES "/gpt2-tokenizer",
                    NULL);
    ck_assert_int_eq(run_layercake(args, &out), 1); // out of range
    free(out);
    free(args);
}
END_TEST

START_TEST(cli_usage_errors) {
    static const char *const BAD[] = {
        "data",
        "data frobnicate",
        "data import --kind chat --tokenizer x --out y z",
        "data import --kind sft --out y z",
        "data import --kind sft --tokenizer x --out y --max-len -3 z",
        "data info",
        "data info --bogus f.h5",
        "data show f.h5 --tokenizer x",
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        char *out;
        ck_assert_msg(run_layercake(BAD[i], &out) == 2, "'%s' did not exit 2", BAD[i]);
        free(out);
    }
    char *out;
    ck_assert_int_eq(run_layercake("data --help", &out), 0);
    ck_assert_msg(strstr(out, "usage: layercake data import"), "%s", out);
    free(out);
    ck_assert_int_eq(run_layercake("data info /nonexistent.h5", &out), 1);
    free(out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("import");
    TCase *tc = tcase_create("formats");
    tcase_add_unchecked_fixture(tc, tokenizers_load, tokenizers_free);
    tcase_add_test(tc, completion_to_sft_and_prompt);
    tcase_add_test(tc, bos_tokenizer_prompts_and_documents);
    tcase_add_test(tc, messages_plain_template);
    tcase_add_test(tc, messages_role_tokens);
    tcase_add_test(tc, messages_open_conversation);
    tcase_add_test(tc, prompt_chosen_rejected);
    tcase_add_test(tc, hh_transcripts);
    tcase_add_test(tc, hh_bad_transcripts);
    tcase_add_test(tc, self_instruct);
    tcase_add_test(tc, prompts_and_text_lines);
    tcase_add_test(tc, text_files);
    tcase_add_test(tc, lm_long_documents_split);
    tcase_add_test(tc, unpaired_lines);
    tcase_add_test(tc, unpaired_bad_lines);
    tcase_add_test(tc, kind_format_mismatch);
    tcase_add_test(tc, malformed_lines);
    tcase_add_test(tc, empty_and_missing_inputs);
    tcase_add_test(tc, empty_fields);
    tcase_add_test(tc, output_is_input);
    tcase_add_test(tc, over_length_dropped);
    tcase_add_test(tc, val_split);
    tcase_add_test(tc, sample_hh_rlhf);
    tcase_add_test(tc, sample_self_instruct);
    tcase_add_test(tc, sample_tinyshakespeare);
    tcase_add_test(tc, cli_info_json);
    tcase_add_test(tc, info_percentiles);
    tcase_add_test(tc, cli_show);
    tcase_add_test(tc, cli_usage_errors);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
