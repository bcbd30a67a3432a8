// data/chat.c: the chat templates of data/chat.h. Each template is a table: markup strings per
// turn (the header, the text before and after the message) holding the template's markers.
// Rendering walks the markup, gathering plain text (markup and message text of one mask) into
// a pending string that is encoded in one call (special tokens off), and putting each marker's
// ids in between; the pending text is encoded at every marker, every change of mask and the end
// of every message, so the tokens at a seam are those of the joined string within a piece.
#include "data/chat.h"
#include "common/check.h"
#include "common/error.h"
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

static const char *const ROLE_NAMES[3] = {"system", "user", "assistant"};
static const char *const ROLE_TOKENS[3] = {"<|system|>", "<|user|>", "<|assistant|>"};

// ---- token buffers -------------------------------------------------------------------------

void tokenbuf_push(TokenBuf *b, const int *ids, int64_t n, uint8_t mask) {
    if (n == 0) return;
    if (b->n + n > b->cap) {
        int64_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        int *ids2 = realloc(b->ids, (size_t)cap * sizeof(int));
        uint8_t *mask2 = realloc(b->mask, (size_t)cap);
        if (!ids2 || !mask2) LC_DIE("out of memory growing a token buffer to %lld", (long long)cap);
        b->ids = ids2;
        b->mask = mask2;
        b->cap = cap;
    }
    memcpy(b->ids + b->n, ids, (size_t)n * sizeof(int));
    memset(b->mask + b->n, mask, (size_t)n);
    b->n += n;
}

void tokenbuf_append(TokenBuf *b, const TokenBuf *src) {
    int64_t at = b->n;
    tokenbuf_push(b, src->ids, src->n, 0);
    if (src->n) memcpy(b->mask + at, src->mask, (size_t)src->n);
}

void tokenbuf_free(TokenBuf *b) {
    free(b->ids);
    free(b->mask);
    *b = (TokenBuf){0};
}

// ---- the templates -------------------------------------------------------------------------

typedef enum {
    MARK_TOKEN,    // the special token, or its text encoded with special tokens on
    MARK_OPTIONAL, // the special token, or nothing (a begin-of-sequence token)
    MARK_EOT,      // the tokenizer's end-of-text token
} MarkerKind;

typedef struct {
    const char *text; // as it appears in the markup
    MarkerKind kind;  //
} MarkerDef;

typedef struct {
    const char *head; // assistant turns: the header (mask 0); unused for the others
    const char *pre;  // before the message text, with its mask
    const char *post; // after the message text, with its mask (the end-of-turn marker)
} TurnDef;

typedef struct {
    const char *name;                // as --chat-template takes it
    MarkerDef markers[CHAT_MARKERS]; // the markers of the markup below
    const char *start;               // opens a conversation
    const char *sep;                 // before every turn but a conversation's first
    TurnDef turn[3];                 // by ChatRole
    int end;                         // index of the assistant's end-of-turn marker
    int fold_system;                 // 1: a system message goes into the next user turn
} TemplateDef;

// llama2's system block, at the start of the first user message.
static const char SYS_OPEN[] = "<<SYS>>\n";
static const char SYS_CLOSE[] = "\n<</SYS>>\n\n";

// Each template: its markers, then per role {head, pre, post}; system and user turns are all
// mask 0, an assistant turn's head too, its pre + text + post mask 1.
static const TemplateDef TEMPLATES[CHAT_TEMPLATE_COUNT] = {
    [CHAT_TEMPLATE_CHATML] = {.name = "chatml",
                              .markers = {{"<|im_start|>", MARK_TOKEN}, {"<|im_end|>", MARK_TOKEN}},
                              .start = "",
                              .sep = "\n",
                              .turn = {{"", "<|im_start|>system\n", "<|im_end|>"},
                                       {"", "<|im_start|>user\n", "<|im_end|>"},
                                       {"<|im_start|>assistant\n", "", "<|im_end|>"}},
                              .end = 1},
    [CHAT_TEMPLATE_LLAMA3] =
        {.name = "llama3",
         .markers = {{"<|begin_of_text|>", MARK_OPTIONAL},
                     {"<|start_header_id|>", MARK_TOKEN},
                     {"<|end_header_id|>", MARK_TOKEN},
                     {"<|eot_id|>", MARK_TOKEN}},
         .start = "<|begin_of_text|>",
         .sep = "",
         .turn = {{"", "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"},
                  {"", "<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"},
                  {"<|start_header_id|>assistant<|end_header_id|>\n\n", "", "<|eot_id|>"}},
         .end = 3},
    [CHAT_TEMPLATE_LLAMA2] = {.name = "llama2",
                              .markers = {{"<s>", MARK_OPTIONAL},
                                          {"[INST]", MARK_TOKEN},
                                          {"[/INST]", MARK_TOKEN},
                                          {"</s>", MARK_TOKEN}},
                              .start = "",
                              .sep = "",
                              .turn = {{"", "", ""}, // folded into the next user turn
                                       {"", "<s>[INST] ", " [/INST]"},
                                       {"", " ", " </s>"}},
                              .end = 3,
                              .fold_system = 1},
    [CHAT_TEMPLATE_ZEPHYR] = {.name = "zephyr",
                              .markers = {{"<|system|>", MARK_TOKEN},
                                          {"<|user|>", MARK_TOKEN},
                                          {"<|assistant|>", MARK_TOKEN},
                                          {"</s>", MARK_TOKEN}},
                              .start = "",
                              .sep = "\n",
                              .turn = {{"", "<|system|>\n", "</s>"},
                                       {"", "<|user|>\n", "</s>"},
                                       {"<|assistant|>\n", "", "</s>"}},
                              .end = 3},
    [CHAT_TEMPLATE_HH] = {.name = "hh",
                          .markers = {{"<|endoftext|>", MARK_EOT}},
                          .start = "",
                          .sep = "",
                          .turn = {{"", "", ""},
                                   {"", "\n\nHuman: ", ""},
                                   {"\n\nAssistant:", " ", "<|endoftext|>"}},
                          .end = 0},
    [CHAT_TEMPLATE_PLAIN] = {.name = "plain",
                             .markers = {{"<|endoftext|>", MARK_EOT}},
                             .start = "",
                             .sep = "\n",
                             .turn = {{"", "", ""}, {"", "", ""}, {"", "", "<|endoftext|>"}},
                             .end = 0},
    [CHAT_TEMPLATE_ROLES] = {.name = "roles",
                             .markers = {{"<|system|>", MARK_TOKEN},
                                         {"<|user|>", MARK_TOKEN},
                                         {"<|assistant|>", MARK_TOKEN},
                                         {"<|end|>", MARK_TOKEN}},
                             .start = "",
                             .sep = "",
                             .turn = {{"", "<|system|>", "<|end|>"},
                                      {"", "<|user|>", "<|end|>"},
                                      {"<|assistant|>", "", "<|end|>"}},
                             .end = 3},
};

static const char NAMES[] = "auto, chatml, llama3, llama2, zephyr, hh, plain, roles";

const char *chat_template_name(ChatTemplate t) {
    if (t == CHAT_TEMPLATE_AUTO) return "auto";
    LC_ASSERT(t >= 0 && t < CHAT_TEMPLATE_COUNT);
    return TEMPLATES[t].name;
}

const char *chat_template_names(void) {
    return NAMES;
}

int chat_template_parse(const char *name, ChatTemplate *t, char *err, size_t errlen) {
    if (!name || strcmp(name, "auto") == 0) {
        *t = CHAT_TEMPLATE_AUTO;
        return 0;
    }
    for (int i = 0; i < CHAT_TEMPLATE_COUNT; i++)
        if (strcmp(name, TEMPLATES[i].name) == 0) {
            *t = (ChatTemplate)i;
            return 0;
        }
    return lc_error(err, errlen, "'%s' is not a chat template (%s)", name, NAMES);
}

ChatTemplate chat_template_recognise(const char *s) {
    if (!s) return CHAT_TEMPLATE_AUTO;
    if (strstr(s, "<|im_start|>")) return CHAT_TEMPLATE_CHATML;
    if (strstr(s, "<|start_header_id|>")) return CHAT_TEMPLATE_LLAMA3;
    if (strstr(s, "[INST]")) return CHAT_TEMPLATE_LLAMA2;
    if (strstr(s, "<|user|>") && (strstr(s, "</s>") || strstr(s, "eos_token")))
        return CHAT_TEMPLATE_ZEPHYR;
    return CHAT_TEMPLATE_AUTO;
}

// ---- choosing ------------------------------------------------------------------------------

static int has_role_tokens(const Tokenizer *tok) {
    for (int r = 0; r < 3; r++)
        if (tokenizer_special(tok, ROLE_TOKENS[r]) < 0) return 0;
    return tokenizer_special(tok, "<|end|>") >= 0;
}

static ChatMarker marker_resolve(const Tokenizer *tok, const MarkerDef *d) {
    ChatMarker m = {0};
    int id = d->kind == MARK_EOT ? tokenizer_eot(tok) : tokenizer_special(tok, d->text);
    if (id >= 0) {
        m.n = 1;
        m.ids[0] = id;
    } else if (d->kind == MARK_TOKEN) {
        int *ids;
        int n = tokenizer_encode(tok, d->text, strlen(d->text), 1, &ids);
        if (n > CHAT_MARKER_MAX)
            LC_DIE("the chat marker %s encodes to %d tokens (at most %d)", d->text, n,
                   CHAT_MARKER_MAX);
        memcpy(m.ids, ids, (size_t)n * sizeof(int));
        m.n = n;
        free(ids);
    }
    return m;
}

Chat chat_init_template(const Tokenizer *tok, ChatTemplate t, const char *model_template) {
    if (t == CHAT_TEMPLATE_AUTO) t = chat_template_recognise(model_template);
    if (t == CHAT_TEMPLATE_AUTO) t = has_role_tokens(tok) ? CHAT_TEMPLATE_ROLES : CHAT_TEMPLATE_HH;
    LC_ASSERT(t >= 0 && t < CHAT_TEMPLATE_COUNT);
    const TemplateDef *d = &TEMPLATES[t];
    Chat c = {.tok = tok, .tmpl = t, .roles = t == CHAT_TEMPLATE_ROLES};
    for (int r = 0; r < 3; r++)
        c.role_id[r] = c.roles ? tokenizer_special(tok, ROLE_TOKENS[r]) : -1;
    for (int k = 0; k < CHAT_MARKERS; k++)
        if (d->markers[k].text) c.marker[k] = marker_resolve(tok, &d->markers[k]);
    const ChatMarker *end = &c.marker[d->end];
    c.end = end->n == 1 ? end->ids[0] : tokenizer_eot(tok);
    return c;
}

Chat chat_init_named(const Tokenizer *tok, const char *name, const char *model_template, char *err,
                     size_t errlen) {
    ChatTemplate t = CHAT_TEMPLATE_AUTO;
    if (chat_template_parse(name, &t, err, errlen) < 0) return (Chat){.tok = NULL};
    return chat_init_template(tok, t, model_template);
}

Chat chat_init(const Tokenizer *tok) {
    return chat_init_template(tok, CHAT_TEMPLATE_AUTO, NULL);
}

int chat_stop_token(const Chat *c, const int *prompt, int n) {
    // What every chat prompt ends with after its user text (the end of the user turn and the
    // assistant header; llama2's header is empty, its [/INST] ends the prompt): the common
    // suffix of two prompts that differ only in that text.
    TokenBuf x = {0}, y = {0};
    chat_prompt(c, "a", 1, &x);
    chat_prompt(c, "b", 1, &y);
    int64_t k = 0;
    while (k < x.n && k < y.n && x.ids[x.n - 1 - k] == y.ids[y.n - 1 - k]) k++;
    bool ends =
        k > 0 && k <= n && memcmp(prompt + n - k, x.ids + x.n - k, (size_t)k * sizeof(int)) == 0;
    tokenbuf_free(&x);
    tokenbuf_free(&y);
    return ends ? c->end : tokenizer_eot(c->tok);
}

// ---- rendering -----------------------------------------------------------------------------

// Appends to out: pending plain text of one mask, encoded when a marker, another mask or the
// end of a message comes.
typedef struct {
    const Chat *c;
    const TemplateDef *t;
    TokenBuf *out;
    uint8_t mask; // of the pending text
    char *buf;    // (cap) pending text, n bytes
    size_t n, cap;
} Emit;

static Emit emit_open(const Chat *c, TokenBuf *out) {
    LC_ASSERT(c->tok != NULL);
    return (Emit){.c = c, .t = &TEMPLATES[c->tmpl], .out = out};
}

static void emit_text(Emit *e, const char *s, size_t n) {
    if (n == 0) return;
    if (e->n + n > e->cap) {
        size_t cap = e->cap ? e->cap : 256;
        while (cap < e->n + n) cap *= 2;
        e->buf = realloc(e->buf, cap);
        if (!e->buf) LC_DIE("out of memory for %zu bytes of chat text", cap);
        e->cap = cap;
    }
    memcpy(e->buf + e->n, s, n);
    e->n += n;
}

static void emit_flush(Emit *e) {
    if (e->n == 0) return;
    int *ids;
    int n = tokenizer_encode(e->c->tok, e->buf, e->n, 0, &ids);
    tokenbuf_push(e->out, ids, n, e->mask);
    free(ids);
    e->n = 0;
}

static void emit_mask(Emit *e, uint8_t mask) {
    if (mask != e->mask) emit_flush(e);
    e->mask = mask;
}

static void emit_close(Emit *e) {
    emit_flush(e);
    free(e->buf);
}

// The template's marker starting at s, or -1.
static int marker_at(const TemplateDef *t, const char *s) {
    for (int k = 0; k < CHAT_MARKERS; k++) {
        const char *m = t->markers[k].text;
        if (m && strncmp(s, m, strlen(m)) == 0) return k;
    }
    return -1;
}

static void emit_markup(Emit *e, const char *s) {
    const char *run = s;
    while (*s) {
        int k = marker_at(e->t, s);
        if (k < 0) {
            s++;
            continue;
        }
        emit_text(e, run, (size_t)(s - run));
        emit_flush(e);
        tokenbuf_push(e->out, e->c->marker[k].ids, e->c->marker[k].n, e->mask);
        s += strlen(e->t->markers[k].text);
        run = s;
    }
    emit_text(e, run, (size_t)(s - run));
}

// A turn's opening: the template's start in an empty buffer, its separator otherwise.
static void turn_begin(Emit *e) {
    emit_mask(e, 0);
    emit_markup(e, e->out->n == 0 && e->n == 0 ? e->t->start : e->t->sep);
}

// A system or user turn (mask 0), with a folded system message (sys, sys_len) when given.
static void emit_turn(Emit *e, ChatRole role, const char *text, size_t len,
                      const ChatMessage *sys) {
    const TurnDef *d = &e->t->turn[role];
    turn_begin(e);
    emit_markup(e, d->pre);
    if (sys) {
        emit_text(e, SYS_OPEN, sizeof(SYS_OPEN) - 1);
        emit_text(e, sys->text, sys->len);
        emit_text(e, SYS_CLOSE, sizeof(SYS_CLOSE) - 1);
    }
    emit_text(e, text, len);
    emit_markup(e, d->post);
    emit_flush(e);
}

static void emit_header(Emit *e) {
    turn_begin(e);
    emit_markup(e, e->t->turn[CHAT_ASSISTANT].head);
    emit_flush(e);
}

static void emit_response(Emit *e, const char *text, size_t len) {
    const TurnDef *d = &e->t->turn[CHAT_ASSISTANT];
    emit_mask(e, 1);
    emit_markup(e, d->pre);
    emit_text(e, text, len);
    emit_markup(e, d->post);
    emit_flush(e);
}

void chat_header(const Chat *c, TokenBuf *out) {
    Emit e = emit_open(c, out);
    emit_header(&e);
    emit_close(&e);
}

void chat_response(const Chat *c, const char *text, size_t len, TokenBuf *out) {
    Emit e = emit_open(c, out);
    emit_response(&e, text, len);
    emit_close(&e);
}

void chat_prompt(const Chat *c, const char *text, size_t len, TokenBuf *out) {
    Emit e = emit_open(c, out);
    emit_turn(&e, CHAT_USER, text, len, NULL);
    emit_header(&e);
    emit_close(&e);
}

void chat_render(const Chat *c, const ChatMessage *m, int n, TokenBuf *out) {
    Emit e = emit_open(c, out);
    for (int i = 0; i < n; i++) {
        if (m[i].role == CHAT_ASSISTANT) {
            emit_header(&e);
            emit_response(&e, m[i].text, m[i].len);
        } else if (m[i].role == CHAT_SYSTEM && e.t->fold_system) {
            if (i + 1 < n && m[i + 1].role == CHAT_USER) {
                emit_turn(&e, CHAT_USER, m[i + 1].text, m[i + 1].len, &m[i]);
                i++;
            } else {
                emit_turn(&e, CHAT_USER, "", 0, &m[i]);
            }
        } else {
            emit_turn(&e, m[i].role, m[i].text, m[i].len, NULL);
        }
    }
    emit_close(&e);
}

int chat_role_parse(const char *name, ChatRole *role) {
    for (int r = 0; r < 3; r++)
        if (strcmp(name, ROLE_NAMES[r]) == 0) {
            *role = (ChatRole)r;
            return 0;
        }
    return -1;
}
