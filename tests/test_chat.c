// tests/test_chat.c: the chat templates of data/chat.h. Every template renders a system + two
// user/assistant exchanges to exact ids and masks, written out here as the template's pieces
// (independently of data/chat.c's tables), to an exact decoded text, and with exactly the
// assistant responses and their end markers trained; with a tokenizer that has the markers as
// special tokens and with GPT-2's, which has none (text fallback, no BOS). Also: generation
// prompts and stop tokens, llama2's system folding, marker text in messages, recognition of
// model templates, auto, unknown names, and the importer recording the template.
#include "data/chat.h"
#include "data/import.h"
#include "data/info.h"
#include "tests/testutil.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static Tokenizer *full; // trained, with the role tokens and every template's markers
static Tokenizer *gpt2; // GPT-2's: none of the markers but <|endoftext|>

static const char *const MARKERS[] = {"<|im_start|>",
                                      "<|im_end|>",
                                      "<|begin_of_text|>",
                                      "<|start_header_id|>",
                                      "<|end_header_id|>",
                                      "<|eot_id|>",
                                      "<s>",
                                      "</s>",
                                      "[INST]",
                                      "[/INST]"};

static void tokenizers_load(void) {
    char err[512];
    const char *corpus[] = {LC_SOURCE_DIR "/tests/fixtures/doc_a.txt"};
    full = tokenizer_train(corpus, 1, 300, MARKERS, sizeof(MARKERS) / sizeof(MARKERS[0]), err,
                           sizeof(err));
    if (!full) ck_abort_msg("%s", err);
    gpt2 = tokenizer_load(LC_SAMPLES "/gpt2-tokenizer", err, sizeof(err));
    if (!gpt2) ck_abort_msg("%s", err);
}

static void tokenizers_free(void) {
    tokenizer_free(full);
    tokenizer_free(gpt2);
}

// ---- expected renderings -------------------------------------------------------------------

// One piece of an expected rendering: a marker (by its text: the special token, or its text
// encoded with special tokens on), a begin-of-sequence marker (the special token or nothing),
// the end-of-text token, or text (encoded with special tokens off).
typedef enum { P_END = 0, P_MARK, P_BOS, P_EOT, P_TEXT } PieceKind;

typedef struct {
    PieceKind kind;
    const char *text;
    uint8_t mask;
} Piece;

#define M(s)                                                                                       \
    { P_MARK, s, 0 }
#define MT(s)                                                                                      \
    { P_MARK, s, 1 }
#define B(s)                                                                                       \
    { P_BOS, s, 0 }
#define T(s)                                                                                       \
    { P_TEXT, s, 0 }
#define TT(s)                                                                                      \
    { P_TEXT, s, 1 }
#define EOT_T                                                                                      \
    { P_EOT, NULL, 1 }

static void want_pieces(const Tokenizer *tok, const Piece *p, TokenBuf *w) {
    for (; p->kind != P_END; p++) {
        int id = p->kind == P_EOT ? tokenizer_eot(tok) : tokenizer_special(tok, p->text);
        if (p->kind == P_TEXT || (p->kind == P_MARK && id < 0)) {
            int *ids;
            int n = tokenizer_encode(tok, p->text, strlen(p->text), p->kind == P_MARK, &ids);
            ck_assert_int_gt(n, 0);
            tokenbuf_push(w, ids, n, p->mask);
            free(ids);
        } else if (id >= 0) {
            tokenbuf_push(w, &id, 1, p->mask);
        }
    }
}

static const ChatMessage CONVERSATION[] = {
    {CHAT_SYSTEM, "Be brief.", 9}, {CHAT_USER, "What is 2+2?", 12}, {CHAT_ASSISTANT, "4.", 2},
    {CHAT_USER, "And 3+3?", 8},    {CHAT_ASSISTANT, "6.", 2},
};

typedef struct {
    ChatTemplate t;
    const char *name;
    Piece pieces[40];    // the conversation's ids and masks
    const char *text;    // the conversation decoded (with the markers as special tokens)
    const char *trained; // the runs of trained tokens decoded, joined by '|'
    const char *prompt;  // chat_prompt("Hi") decoded
    const char *end;     // the end-of-turn marker (NULL: end-of-text)
} Case;

// One turn a line.
// clang-format off
static const Case CASES[] = {
    {CHAT_TEMPLATE_CHATML, "chatml",
     {M("<|im_start|>"), T("system\nBe brief."), M("<|im_end|>"),
      T("\n"), M("<|im_start|>"), T("user\nWhat is 2+2?"), M("<|im_end|>"),
      T("\n"), M("<|im_start|>"), T("assistant\n"), TT("4."), MT("<|im_end|>"),
      T("\n"), M("<|im_start|>"), T("user\nAnd 3+3?"), M("<|im_end|>"),
      T("\n"), M("<|im_start|>"), T("assistant\n"), TT("6."), MT("<|im_end|>")},
     "<|im_start|>system\nBe brief.<|im_end|>\n"
     "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
     "<|im_start|>assistant\n4.<|im_end|>\n"
     "<|im_start|>user\nAnd 3+3?<|im_end|>\n"
     "<|im_start|>assistant\n6.<|im_end|>",
     "4.<|im_end|>|6.<|im_end|>",
     "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
     "<|im_end|>"},
    {CHAT_TEMPLATE_LLAMA3, "llama3",
     {B("<|begin_of_text|>"),
      M("<|start_header_id|>"), T("system"), M("<|end_header_id|>"), T("\n\nBe brief."),
      M("<|eot_id|>"),
      M("<|start_header_id|>"), T("user"), M("<|end_header_id|>"), T("\n\nWhat is 2+2?"),
      M("<|eot_id|>"),
      M("<|start_header_id|>"), T("assistant"), M("<|end_header_id|>"), T("\n\n"),
      TT("4."), MT("<|eot_id|>"),
      M("<|start_header_id|>"), T("user"), M("<|end_header_id|>"), T("\n\nAnd 3+3?"),
      M("<|eot_id|>"),
      M("<|start_header_id|>"), T("assistant"), M("<|end_header_id|>"), T("\n\n"),
      TT("6."), MT("<|eot_id|>")},
     "<|begin_of_text|>"
     "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n4.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n6.<|eot_id|>",
     "4.<|eot_id|>|6.<|eot_id|>",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n",
     "<|eot_id|>"},
    {CHAT_TEMPLATE_LLAMA2, "llama2",
     {B("<s>"), M("[INST]"), T(" <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? "), M("[/INST]"),
      TT(" 4. "), MT("</s>"),
      B("<s>"), M("[INST]"), T(" And 3+3? "), M("[/INST]"),
      TT(" 6. "), MT("</s>")},
     "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST] 4. </s>"
     "<s>[INST] And 3+3? [/INST] 6. </s>",
     " 4. </s>| 6. </s>",
     "<s>[INST] Hi [/INST]",
     "</s>"},
    {CHAT_TEMPLATE_ZEPHYR, "zephyr",
     {M("<|system|>"), T("\nBe brief."), M("</s>"),
      T("\n"), M("<|user|>"), T("\nWhat is 2+2?"), M("</s>"),
      T("\n"), M("<|assistant|>"), T("\n"), TT("4."), MT("</s>"),
      T("\n"), M("<|user|>"), T("\nAnd 3+3?"), M("</s>"),
      T("\n"), M("<|assistant|>"), T("\n"), TT("6."), MT("</s>")},
     "<|system|>\nBe brief.</s>\n"
     "<|user|>\nWhat is 2+2?</s>\n"
     "<|assistant|>\n4.</s>\n"
     "<|user|>\nAnd 3+3?</s>\n"
     "<|assistant|>\n6.</s>",
     "4.</s>|6.</s>",
     "<|user|>\nHi</s>\n<|assistant|>\n",
     "</s>"},
    {CHAT_TEMPLATE_HH, "hh",
     {T("Be brief."),
      T("\n\nHuman: What is 2+2?"),
      T("\n\nAssistant:"), TT(" 4."), EOT_T,
      T("\n\nHuman: And 3+3?"),
      T("\n\nAssistant:"), TT(" 6."), EOT_T},
     "Be brief.\n\nHuman: What is 2+2?\n\nAssistant: 4.<|endoftext|>"
     "\n\nHuman: And 3+3?\n\nAssistant: 6.<|endoftext|>",
     " 4.<|endoftext|>| 6.<|endoftext|>",
     "\n\nHuman: Hi\n\nAssistant:",
     NULL},
    {CHAT_TEMPLATE_PLAIN, "plain",
     {T("Be brief."),
      T("\nWhat is 2+2?"),
      T("\n"), TT("4."), EOT_T,
      T("\nAnd 3+3?"),
      T("\n"), TT("6."), EOT_T},
     "Be brief.\nWhat is 2+2?\n4.<|endoftext|>\nAnd 3+3?\n6.<|endoftext|>",
     "4.<|endoftext|>|6.<|endoftext|>",
     "Hi\n",
     NULL},
    {CHAT_TEMPLATE_ROLES, "roles",
     {M("<|system|>"), T("Be brief."), M("<|end|>"),
      M("<|user|>"), T("What is 2+2?"), M("<|end|>"),
      M("<|assistant|>"), TT("4."), MT("<|end|>"),
      M("<|user|>"), T("And 3+3?"), M("<|end|>"),
      M("<|assistant|>"), TT("6."), MT("<|end|>")},
     "<|system|>Be brief.<|end|><|user|>What is 2+2?<|end|><|assistant|>4.<|end|>"
     "<|user|>And 3+3?<|end|><|assistant|>6.<|end|>",
     "4.<|end|>|6.<|end|>",
     "<|user|>Hi<|end|><|assistant|>",
     "<|end|>"},
};
// clang-format on
#define N_CASES ((int)(sizeof(CASES) / sizeof(CASES[0])))

// ---- helpers -------------------------------------------------------------------------------

// s without the begin-of-sequence markers (malloc'd): what a tokenizer without them renders.
static char *without_bos(const char *s) {
    char *out = malloc(strlen(s) + 1), *o = out;
    while (*s) {
        if (strncmp(s, "<s>", 3) == 0) {
            s += 3;
        } else if (strncmp(s, "<|begin_of_text|>", 17) == 0) {
            s += 17;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

static char *decode(const Tokenizer *tok, const int *ids, int64_t n) {
    size_t len;
    char *s = tokenizer_decode(tok, ids, (int)n, &len);
    ck_assert(s != NULL);
    return s;
}

// The runs of tokens with mask 1, decoded and joined by '|' (malloc'd).
static char *trained_runs(const Tokenizer *tok, const TokenBuf *b) {
    size_t cap = 4096, at = 0;
    char *out = calloc(cap, 1);
    for (int64_t i = 0; i < b->n;) {
        if (!b->mask[i]) {
            i++;
            continue;
        }
        int64_t j = i;
        while (j < b->n && b->mask[j]) j++;
        char *s = decode(tok, b->ids + i, j - i);
        at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? "|" : "", s);
        ck_assert(at < cap);
        free(s);
        i = j;
    }
    return out;
}

static void assert_buf(const TokenBuf *got, const TokenBuf *want, const char *what) {
    ck_assert_msg(got->n == want->n, "%s: %lld tokens, want %lld", what, (long long)got->n,
                  (long long)want->n);
    for (int64_t i = 0; i < got->n; i++) {
        ck_assert_msg(got->ids[i] == want->ids[i], "%s: id[%lld] %d, want %d", what, (long long)i,
                      got->ids[i], want->ids[i]);
        ck_assert_msg(got->mask[i] == want->mask[i], "%s: mask[%lld] %d, want %d", what,
                      (long long)i, got->mask[i], want->mask[i]);
    }
}

static int count_id(const TokenBuf *b, int id) {
    int k = 0;
    for (int64_t i = 0; i < b->n; i++) k += b->ids[i] == id;
    return k;
}

static Chat chat_named(const Tokenizer *tok, const char *name) {
    char err[256] = "";
    Chat c = chat_init_named(tok, name, NULL, err, sizeof(err));
    ck_assert_msg(c.tok == tok, "%s: %s", name, err);
    return c;
}

// ---- every template ------------------------------------------------------------------------

// The conversation with tokenizer tok: exact ids and masks, text, trained runs.
static void check_conversation(const Case *k, const Tokenizer *tok, int bos) {
    Chat c = chat_named(tok, k->name);
    ck_assert_int_eq(c.tmpl, k->t);
    ck_assert_str_eq(chat_template_name(c.tmpl), k->name);
    TokenBuf got = {0}, want = {0};
    chat_render(&c, CONVERSATION, 5, &got);
    want_pieces(tok, k->pieces, &want);
    assert_buf(&got, &want, k->name);
    char *text = decode(tok, got.ids, got.n),
         *expect = bos ? strdup(k->text) : without_bos(k->text);
    ck_assert_str_eq(text, expect);
    char *runs = trained_runs(tok, &got);
    ck_assert_str_eq(runs, k->trained);
    free(text), free(expect), free(runs);
    tokenbuf_free(&got);
    tokenbuf_free(&want);
}

START_TEST(conversation_special_tokens) {
    const Case *k = &CASES[_i];
    check_conversation(k, full, 1);
    // Every marker is one special token here.
    Chat c = chat_named(full, k->name);
    int end = k->end ? tokenizer_special(full, k->end) : tokenizer_eot(full);
    ck_assert_int_ge(end, 0);
    ck_assert_int_eq(c.end, end);
    TokenBuf got = {0};
    chat_render(&c, CONVERSATION, 5, &got);
    // Turns that end with it: every one, or (hh, plain, llama2) the assistant's.
    int assistant_only =
        k->t == CHAT_TEMPLATE_HH || k->t == CHAT_TEMPLATE_PLAIN || k->t == CHAT_TEMPLATE_LLAMA2;
    ck_assert_int_eq(count_id(&got, end), assistant_only ? 2 : 5);
    tokenbuf_free(&got);
}
END_TEST

// GPT-2 has none of the markers: their text, encoded with special tokens on (several ids each),
// and no begin-of-sequence token; generation then stops at <|endoftext|>.
START_TEST(conversation_text_markers) {
    const Case *k = &CASES[_i];
    check_conversation(k, gpt2, 0);
    Chat c = chat_named(gpt2, k->name);
    ck_assert_int_eq(c.end, tokenizer_eot(gpt2));
    if (k->end) {
        int *ids;
        int n = tokenizer_encode(gpt2, k->end, strlen(k->end), 1, &ids);
        ck_assert_int_gt(n, 1);
        free(ids);
    }
}
END_TEST

// A user turn and the assistant header: what generate --chat and prompt datasets end with.
START_TEST(generation_prompt) {
    const Case *k = &CASES[_i];
    const Tokenizer *toks[2] = {full, gpt2};
    for (int t = 0; t < 2; t++) {
        Chat c = chat_named(toks[t], k->name);
        TokenBuf p = {0}, r = {0};
        chat_prompt(&c, "Hi", 2, &p);
        char *text = decode(toks[t], p.ids, p.n);
        char *expect = t == 0 ? strdup(k->prompt) : without_bos(k->prompt);
        ck_assert_str_eq(text, expect);
        for (int64_t i = 0; i < p.n; i++) ck_assert_int_eq(p.mask[i], 0);
        // The same as rendering the user message and then the header.
        ChatMessage user = {CHAT_USER, "Hi", 2};
        chat_render(&c, &user, 1, &r);
        chat_header(&c, &r);
        assert_buf(&r, &p, k->name);
        free(text), free(expect);
        tokenbuf_free(&p);
        tokenbuf_free(&r);
    }
}
END_TEST

// Generation from a chat prompt stops at the template's end of turn; from a plain prompt (no
// assistant header at its end) at end-of-text.
START_TEST(stop_token_by_prompt) {
    const Case *k = &CASES[_i];
    Chat c = chat_named(full, k->name);
    TokenBuf p = {0};
    chat_prompt(&c, "Hi", 2, &p);
    ck_assert_int_eq(chat_stop_token(&c, p.ids, (int)p.n), c.end);
    int *ids = NULL;
    int n = tokenizer_encode(full, "Hi there", 8, 0, &ids);
    ck_assert_int_eq(chat_stop_token(&c, ids, n), tokenizer_eot(full));
    ck_assert_int_eq(chat_stop_token(&c, ids, 0), tokenizer_eot(full));
    free(ids);
    tokenbuf_free(&p);
}
END_TEST

// ---- details -------------------------------------------------------------------------------

// The default is today's: roles with the role tokens, hh without them, byte for byte.
START_TEST(default_is_roles_or_hh) {
    Chat a = chat_init(full), b = chat_init(gpt2);
    ck_assert_int_eq(a.tmpl, CHAT_TEMPLATE_ROLES);
    ck_assert_int_eq(a.roles, 1);
    ck_assert_int_eq(a.role_id[CHAT_ASSISTANT], tokenizer_special(full, "<|assistant|>"));
    ck_assert_int_eq(a.end, tokenizer_special(full, "<|end|>"));
    ck_assert_int_eq(b.tmpl, CHAT_TEMPLATE_HH);
    ck_assert_int_eq(b.roles, 0);
    ck_assert_int_eq(b.end, tokenizer_eot(gpt2));
    // HH as it always was: the system text alone, "\n\nHuman: " joined with the user text, the
    // header alone, a space joined with the response, then <|endoftext|>.
    TokenBuf got = {0}, want = {0};
    chat_render(&b, CONVERSATION, 3, &got);
    Piece hh[] = {
        T("Be brief."),  T("\n\nHuman: What is 2+2?"), T("\n\nAssistant:"), TT(" 4."), EOT_T,
        {P_END, NULL, 0}};
    want_pieces(gpt2, hh, &want);
    assert_buf(&got, &want, "hh");
    tokenbuf_free(&got);
    tokenbuf_free(&want);
}
END_TEST

// llama2 puts the system message into the first [INST]; with no user message after it, into an
// [INST] of its own.
START_TEST(llama2_system_alone) {
    Chat c = chat_named(full, "llama2");
    ChatMessage m[] = {{CHAT_SYSTEM, "S", 1}, {CHAT_ASSISTANT, "A", 1}};
    TokenBuf got = {0};
    chat_render(&c, m, 2, &got);
    char *text = decode(full, got.ids, got.n), *runs = trained_runs(full, &got);
    ck_assert_str_eq(text, "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n [/INST] A </s>");
    ck_assert_str_eq(runs, " A </s>");
    free(text), free(runs);
    tokenbuf_free(&got);
}
END_TEST

// Marker text typed in a message stays text; only the template's markers are special tokens.
START_TEST(marker_text_in_messages) {
    const char *names[] = {"chatml", "llama3", "llama2", "zephyr", "roles"};
    const char *marks[] = {"<|im_start|>", "<|eot_id|>", "</s>", "</s>", "<|end|>"};
    const int per_exchange[] = {2, 2, 1, 2, 2}; // in a user turn + header + response
    for (int i = 0; i < 5; i++) {
        Chat c = chat_named(full, names[i]);
        ChatMessage m[] = {{CHAT_USER, marks[i], strlen(marks[i])},
                           {CHAT_ASSISTANT, marks[i], strlen(marks[i])}};
        TokenBuf got = {0};
        chat_render(&c, m, 2, &got);
        int id = tokenizer_special(full, marks[i]);
        ck_assert_msg(count_id(&got, id) == per_exchange[i], "%s: %d x %s", names[i],
                      count_id(&got, id), marks[i]);
        tokenbuf_free(&got);
    }
}
END_TEST

// An assistant turn opening a conversation: the template's start, no separator.
START_TEST(assistant_first) {
    Chat c = chat_named(full, "llama3");
    ChatMessage m = {CHAT_ASSISTANT, "A", 1};
    TokenBuf got = {0};
    chat_render(&c, &m, 1, &got);
    char *text = decode(full, got.ids, got.n);
    ck_assert_str_eq(text, "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\nA"
                           "<|eot_id|>");
    free(text);
    tokenbuf_free(&got);
    c = chat_named(full, "chatml");
    chat_render(&c, &m, 1, &got);
    text = decode(full, got.ids, got.n);
    ck_assert_str_eq(text, "<|im_start|>assistant\nA<|im_end|>");
    free(text);
    tokenbuf_free(&got);
}
END_TEST

// Model templates (tokenizer_config.json's chat_template) recognised by their markers.
START_TEST(recognise_model_templates) {
    static const struct {
        const char *jinja;
        ChatTemplate want;
    } R[] = {
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
         "%}{{ '<|im_start|>assistant\\n' }}{% endif %}",
         CHAT_TEMPLATE_CHATML},
        {"{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
         "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
         "'<|eot_id|>' }}{% endfor %}",
         CHAT_TEMPLATE_LLAMA3},
        {"{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + "
         "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' "
         "%}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}",
         CHAT_TEMPLATE_LLAMA2},
        {"{% for message in messages %}\\n{% if message['role'] == 'user' %}\\n{{ '<|user|>\\n' "
         "+ message['content'] + eos_token }}\\n{% endif %}{% endfor %}",
         CHAT_TEMPLATE_ZEPHYR},
        {"{{ '<|user|>\\n' + message['content'] + '</s>' }}", CHAT_TEMPLATE_ZEPHYR},
        {"{{ '<|user|>' + message['content'] + '<|end|>' }}", CHAT_TEMPLATE_AUTO},
        {"{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\\n{% endfor %}",
         CHAT_TEMPLATE_AUTO},
        {"", CHAT_TEMPLATE_AUTO},
        {NULL, CHAT_TEMPLATE_AUTO},
    };
    for (size_t i = 0; i < sizeof(R) / sizeof(R[0]); i++)
        ck_assert_msg(chat_template_recognise(R[i].jinja) == R[i].want, "template %zu: %d, want %d",
                      i, chat_template_recognise(R[i].jinja), R[i].want);
    // auto takes the model's template when known, else roles or hh by the tokenizer; a name
    // given overrides the model's template.
    char err[256];
    ck_assert_int_eq(chat_init_named(gpt2, "auto", R[0].jinja, err, sizeof(err)).tmpl,
                     CHAT_TEMPLATE_CHATML);
    ck_assert_int_eq(chat_init_named(gpt2, NULL, R[1].jinja, err, sizeof(err)).tmpl,
                     CHAT_TEMPLATE_LLAMA3);
    ck_assert_int_eq(chat_init_named(full, NULL, R[2].jinja, err, sizeof(err)).tmpl,
                     CHAT_TEMPLATE_LLAMA2);
    ck_assert_int_eq(chat_init_named(full, "auto", R[3].jinja, err, sizeof(err)).tmpl,
                     CHAT_TEMPLATE_ZEPHYR);
    ck_assert_int_eq(chat_init_named(full, "auto", R[6].jinja, err, sizeof(err)).tmpl,
                     CHAT_TEMPLATE_ROLES);
    ck_assert_int_eq(chat_init_named(gpt2, "auto", R[6].jinja, err, sizeof(err)).tmpl,
                     CHAT_TEMPLATE_HH);
    ck_assert_int_eq(chat_init_named(gpt2, "auto", NULL, err, sizeof(err)).tmpl, CHAT_TEMPLATE_HH);
    ck_assert_int_eq(chat_init_named(full, "plain", R[0].jinja, err, sizeof(err)).tmpl,
                     CHAT_TEMPLATE_PLAIN);
}
END_TEST

START_TEST(names) {
    ChatTemplate t;
    char err[256] = "";
    for (int i = 0; i < CHAT_TEMPLATE_COUNT; i++) {
        ck_assert_int_eq(
            chat_template_parse(chat_template_name((ChatTemplate)i), &t, err, sizeof(err)), 0);
        ck_assert_int_eq(t, i);
        ck_assert_msg(strstr(chat_template_names(), chat_template_name((ChatTemplate)i)), "%d", i);
    }
    ck_assert_int_eq(chat_template_parse("auto", &t, err, sizeof(err)), 0);
    ck_assert_int_eq(t, CHAT_TEMPLATE_AUTO);
    ck_assert_int_eq(chat_template_parse(NULL, &t, err, sizeof(err)), 0);
    ck_assert_int_eq(t, CHAT_TEMPLATE_AUTO);
    ck_assert_str_eq(chat_template_names(),
                     "auto, chatml, llama3, llama2, zephyr, hh, plain, roles");
    const char *want =
        "'vicuna' is not a chat template (auto, chatml, llama3, llama2, zephyr, hh, plain, roles)";
    ck_assert_int_eq(chat_template_parse("vicuna", &t, err, sizeof(err)), -1);
    ck_assert_str_eq(err, want);
    err[0] = '\0';
    Chat c = chat_init_named(full, "vicuna", NULL, err, sizeof(err));
    ck_assert_ptr_null(c.tok);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(chat_template_parse("ChatML", &t, err, sizeof(err)), -1); // exact names
}
END_TEST

// ---- the importer --------------------------------------------------------------------------

#define FIXTURE(name) LC_SOURCE_DIR "/tests/fixtures/" name

static ImportOptions options(DataKind kind, const Tokenizer *tok, const char *out,
                             const char *tmpl) {
    return (ImportOptions){.kind = kind,
                           .tok = tok,
                           .out = test_tmp_path(out),
                           .max_len = 1024,
                           .chat_template = tmpl};
}

static void import_ok(const ImportOptions *o, const char *input) {
    ImportStats st;
    char err[1024];
    const char *inputs[] = {input};
    ck_assert_msg(import_run(o, inputs, 1, &st, err, sizeof(err)) == 0, "%s", err);
}

static Dataset *open_loaded(const char *path, DataKind kind, const Tokenizer *tok) {
    char err[512];
    Dataset *ds = dataset_open(path, kind, err, sizeof(err));
    ck_assert_msg(ds != NULL, "%s", err);
    ck_assert_msg(dataset_load(ds, tokenizer_vocab_size(tok), err, sizeof(err)) == 0, "%s", err);
    return ds;
}

// The file's chat_template attribute ("" when absent).
static void assert_recorded(const char *path, const char *want) {
    char err[512], got[64];
    Dataset *ds = dataset_open(path, DATA_KIND_COUNT, err, sizeof(err));
    ck_assert_msg(ds != NULL, "%s", err);
    ck_assert_int_eq(dataset_attribute(ds, "chat_template", got, sizeof(got), err, sizeof(err)),
                     want[0] ? 1 : 0);
    ck_assert_str_eq(got, want);
    dataset_free(ds);
    DatasetInfo info;
    ck_assert_msg(dataset_info(path, &info, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(info.chat_template, want);
    char *json = dataset_info_json(path, &info);
    if (want[0]) {
        char key[96];
        snprintf(key, sizeof(key), "\"chat_template\":\"%s\"", want);
        ck_assert_msg(strstr(json, key), "%s", json);
    } else {
        ck_assert_msg(!strstr(json, "chat_template"), "%s", json);
    }
    free(json);
}

START_TEST(import_records_template) {
    // sft from messages: the chatml rendering, recorded.
    ImportOptions o = options(DATA_SFT, full, "chat_chatml.h5", "chatml");
    import_ok(&o, FIXTURE("messages.jsonl"));
    assert_recorded(o.out, "chatml");
    Dataset *ds = open_loaded(o.out, DATA_SFT, full);
    Example ex = dataset_example(ds, 1);
    TokenBuf got = {0}, want = {0};
    tokenbuf_push(&got, ex.tokens, ex.n_tokens, 0);
    memcpy(got.mask, ex.loss_mask, (size_t)ex.n_tokens);
    want_pieces(full, CASES[0].pieces, &want);
    assert_buf(&got, &want, "imported chatml");
    tokenbuf_free(&got);
    tokenbuf_free(&want);
    dataset_free(ds);

    // preference from HH transcripts with llama3: the prompt ends with the header.
    o = options(DATA_PREFERENCE, full, "chat_llama3.h5", "llama3");
    import_ok(&o, FIXTURE("hh.jsonl"));
    assert_recorded(o.out, "llama3");
    ds = open_loaded(o.out, DATA_PREFERENCE, full);
    ex = dataset_example(ds, 0);
    char *s = decode(full, ex.tokens, ex.n_tokens);
    ck_assert_str_eq(s, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHow do I "
                        "bake bread?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    free(s);
    s = decode(full, ex.rejected, ex.n_rejected);
    ck_assert_str_eq(s, "Buy it.<|eot_id|>");
    free(s);
    dataset_free(ds);

    // prompt from an open conversation with zephyr, and a validation file: both record it.
    o = options(DATA_PROMPT, full, "chat_zephyr.h5", "zephyr");
    import_ok(&o, FIXTURE("messages_open.jsonl"));
    assert_recorded(o.out, "zephyr");
    ds = open_loaded(o.out, DATA_PROMPT, full);
    ex = dataset_example(ds, 0);
    s = decode(full, ex.tokens, ex.n_tokens);
    ck_assert_str_eq(s, "<|user|>\nTell me a joke.</s>\n<|assistant|>\n");
    free(s);
    dataset_free(ds);
    o = options(DATA_SFT, full, "chat_split.h5", "plain");
    o.val_fraction = 0.5;
    import_ok(&o, FIXTURE("messages.jsonl"));
    char val[4096];
    import_val_path(o.out, val, sizeof(val));
    assert_recorded(o.out, "plain");
    assert_recorded(val, "plain");

    // The default records what auto chose.
    o = options(DATA_SFT, gpt2, "chat_auto_gpt2.h5", NULL);
    import_ok(&o, FIXTURE("messages.jsonl"));
    assert_recorded(o.out, "hh");
    o = options(DATA_SFT, full, "chat_auto_roles.h5", "auto");
    import_ok(&o, FIXTURE("messages.jsonl"));
    assert_recorded(o.out, "roles");
    o = options(DATA_SFT, gpt2, "chat_auto_model.h5", NULL);
    o.model_chat_template = "{{ '<|im_start|>' + message['role'] }}";
    import_ok(&o, FIXTURE("messages.jsonl"));
    assert_recorded(o.out, "chatml");

    // Formats that do not go through a template record none, whatever the option says.
    o = options(DATA_SFT, gpt2, "chat_none.h5", "llama2");
    import_ok(&o, FIXTURE("completion.jsonl"));
    assert_recorded(o.out, "");
}
END_TEST

START_TEST(import_unknown_template) {
    ImportOptions o = options(DATA_SFT, full, "chat_unknown.h5", "vicuna");
    ImportStats st;
    char err[1024] = "";
    const char *inputs[] = {FIXTURE("messages.jsonl")};
    unlink(o.out);
    ck_assert_int_eq(import_run(&o, inputs, 1, &st, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "--chat-template: 'vicuna' is not a chat template (auto, chatml, "
                          "llama3, llama2, zephyr, hh, plain, roles)");
    ck_assert_msg(access(o.out, F_OK) != 0, "%s was written", o.out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("chat");
    TCase *tc = tcase_create("templates");
    tcase_add_unchecked_fixture(tc, tokenizers_load, tokenizers_free);
    tcase_add_loop_test(tc, conversation_special_tokens, 0, N_CASES);
    tcase_add_loop_test(tc, conversation_text_markers, 0, N_CASES);
    tcase_add_loop_test(tc, generation_prompt, 0, N_CASES);
    tcase_add_loop_test(tc, stop_token_by_prompt, 0, N_CASES);
    tcase_add_test(tc, default_is_roles_or_hh);
    tcase_add_test(tc, llama2_system_alone);
    tcase_add_test(tc, marker_text_in_messages);
    tcase_add_test(tc, assistant_first);
    tcase_add_test(tc, recognise_model_templates);
    tcase_add_test(tc, names);
    tcase_add_test(tc, import_records_template);
    tcase_add_test(tc, import_unknown_template);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
