// data/chat.c: the two renderings of data/chat.h.
#include "data/chat.h"
#include "common/check.h"
#include <stdlib.h>
#include <string.h>

static const char *const ROLE_NAMES[3] = {"system", "user", "assistant"};
static const char *const ROLE_TOKENS[3] = {"<|system|>", "<|user|>", "<|assistant|>"};
static const char PLAIN_USER[] = "\n\nHuman: ";
static const char PLAIN_HEADER[] = "\n\nAssistant:";

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

// Appends the encoding of prefix ++ text (one encode call, so that the tokens at the seam are
// those of the joined string).
static void push_text(const Chat *c, const char *prefix, const char *text, size_t len, uint8_t mask,
                      TokenBuf *out) {
    size_t np = strlen(prefix);
    char *s = lc_malloc(np + len);
    memcpy(s, prefix, np);
    memcpy(s + np, text, len);
    int *ids;
    int n = tokenizer_encode(c->tok, s, np + len, 0, &ids);
    tokenbuf_push(out, ids, n, mask);
    free(ids);
    free(s);
}

static void push_id(TokenBuf *out, int id, uint8_t mask) {
    tokenbuf_push(out, &id, 1, mask);
}

Chat chat_init(const Tokenizer *tok) {
    Chat c = {.tok = tok, .roles = 1};
    for (int r = 0; r < 3; r++) {
        c.role_id[r] = tokenizer_special(tok, ROLE_TOKENS[r]);
        if (c.role_id[r] < 0) c.roles = 0;
    }
    c.end = tokenizer_special(tok, "<|end|>");
    if (c.end < 0) c.roles = 0;
    if (!c.roles) c.end = tokenizer_eot(tok);
    return c;
}

void chat_header(const Chat *c, TokenBuf *out) {
    if (c->roles)
        push_id(out, c->role_id[CHAT_ASSISTANT], 0);
    else
        push_text(c, PLAIN_HEADER, "", 0, 0, out);
}

void chat_response(const Chat *c, const char *text, size_t len, TokenBuf *out) {
    push_text(c, c->roles ? "" : " ", text, len, 1, out);
    push_id(out, c->end, 1);
}

static void render_message(const Chat *c, const ChatMessage *m, TokenBuf *out) {
    if (m->role == CHAT_ASSISTANT) {
        chat_header(c, out);
        chat_response(c, m->text, m->len, out);
    } else if (c->roles) {
        push_id(out, c->role_id[m->role], 0);
        push_text(c, "", m->text, m->len, 0, out);
        push_id(out, c->end, 0);
    } else {
        push_text(c, m->role == CHAT_USER ? PLAIN_USER : "", m->text, m->len, 0, out);
    }
}

void chat_render(const Chat *c, const ChatMessage *m, int n, TokenBuf *out) {
    for (int i = 0; i < n; i++) render_message(c, &m[i], out);
}

int chat_role_parse(const char *name, ChatRole *role) {
    for (int r = 0; r < 3; r++)
        if (strcmp(name, ROLE_NAMES[r]) == 0) {
            *role = (ChatRole)r;
            return 0;
        }
    return -1;
}
