// data/chat.h: the chat template: how a conversation of system, user and assistant messages
// becomes token ids and a loss mask. Two renderings, chosen by the tokenizer:
//
//   role tokens (a trained tokenizer with <|system|> <|user|> <|assistant|> <|end|>):
//     <|system|>TEXT<|end|>   <|user|>TEXT<|end|>   <|assistant|> | TEXT<|end|>
//   plain text (GPT-2, or any tokenizer without them), Anthropic's HH format:
//     TEXT (system, at the start)   \n\nHuman: TEXT   \n\nAssistant: | ␠TEXT<|endoftext|>
//
// An assistant turn is a header (the part before |: the generation prompt, never trained) and
// a response (content and end-of-turn token, trained). Message text is encoded with special
// tokens off, so "<|end|>" typed by a user stays text.
#pragma once
#include "data/tokenizer.h"
#include <stddef.h>
#include <stdint.h>

typedef enum { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT } ChatRole;

typedef struct {
    ChatRole role;    // who speaks
    const char *text; // (len) UTF-8 content, not necessarily NUL-terminated
    size_t len;       // bytes of text
} ChatMessage;

// Token ids with a loss-mask value each, grown as needed.
typedef struct {
    int *ids;      // (cap) token ids, n used
    uint8_t *mask; // (cap) 1 where the token is trained
    int64_t n;     // tokens held
    int64_t cap;   // tokens allocated
} TokenBuf;

void tokenbuf_push(TokenBuf *b, const int *ids, int64_t n, uint8_t mask);
// Appends src's ids with their own mask values.
void tokenbuf_append(TokenBuf *b, const TokenBuf *src);
void tokenbuf_free(TokenBuf *b);

typedef struct {
    const Tokenizer *tok; // encodes the message text
    int roles;            // 1: role-token rendering; 0: plain text
    int role_id[3];       // role tokens by ChatRole (role rendering only)
    int end;              // token ending an assistant turn: <|end|> or <|endoftext|>
} Chat;

// Picks the rendering for tok: role tokens when it has all four, plain text otherwise.
Chat chat_init(const Tokenizer *tok);
// Appends a whole conversation: mask 1 on each assistant response, 0 elsewhere.
void chat_render(const Chat *c, const ChatMessage *m, int n, TokenBuf *out);
// Appends the assistant header (mask 0): what a prompt ends with, where generation starts.
void chat_header(const Chat *c, TokenBuf *out);
// Appends an assistant response (mask 1): the text and the end-of-turn token.
void chat_response(const Chat *c, const char *text, size_t len, TokenBuf *out);
// Parses a role name ("system", "user", "assistant"); returns 0, or -1 if unknown.
int chat_role_parse(const char *name, ChatRole *role);
