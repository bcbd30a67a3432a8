// data/chat.h: chat templates: how a conversation of system, user and assistant messages becomes
// token ids and a loss mask. A template is chosen by name (docs/chat-templates.md shows each one
// rendered):
//
//   chatml   <|im_start|>user\nTEXT<|im_end|>\n ... <|im_start|>assistant\n | TEXT<|im_end|>
//   llama3   <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTEXT<|eot_id|> ...
//            <|start_header_id|>assistant<|end_header_id|>\n\n | TEXT<|eot_id|>
//   llama2   <s>[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nTEXT [/INST] | ␠TEXT␠</s>
//   zephyr   <|user|>\nTEXT</s>\n ... <|assistant|>\n | TEXT</s>
//   hh       SYSTEM  \n\nHuman: TEXT  \n\nAssistant: | ␠TEXT<|endoftext|>   (Anthropic's HH)
//   plain    SYSTEM\nTEXT\n | TEXT<|endoftext|>    (turns joined by newlines)
//   roles    <|system|>TEXT<|end|>  <|user|>TEXT<|end|>  <|assistant|> | TEXT<|end|>
//
// An assistant turn is a header (the part before |: the generation prompt, never trained) and
// a response (content and end-of-turn marker, trained). System and user turns are never
// trained. Markers (<|im_start|>, [INST], </s>, ...) are the tokenizer's special tokens found
// by their text; a tokenizer without one gets the marker's text encoded with special tokens on
// (so an added token still becomes its single id), except the begin-of-sequence tokens <s> and
// <|begin_of_text|>, which are left out. <|endoftext|> in hh and plain is the tokenizer's
// end-of-text token. Message text is encoded with special tokens off, so "<|end|>" typed by a
// user stays text.
//
// A conversation starts in an empty TokenBuf: the first turn gets the template's start (the BOS
// of llama3), every later turn its separator (the "\n" of chatml, zephyr and plain).
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

// The templates, in the order names are listed. CHAT_TEMPLATE_AUTO picks one (chat_init_named).
typedef enum {
    CHAT_TEMPLATE_CHATML,
    CHAT_TEMPLATE_LLAMA3,
    CHAT_TEMPLATE_LLAMA2,
    CHAT_TEMPLATE_ZEPHYR,
    CHAT_TEMPLATE_HH,
    CHAT_TEMPLATE_PLAIN,
    CHAT_TEMPLATE_ROLES,
    CHAT_TEMPLATE_COUNT,
    CHAT_TEMPLATE_AUTO = CHAT_TEMPLATE_COUNT
} ChatTemplate;

#define CHAT_MARKERS    4  // markers a template uses at most
#define CHAT_MARKER_MAX 48 // ids a marker may encode to

// A template's marker as token ids: one special token, its text's encoding, or nothing.
typedef struct {
    int n;                    // ids held
    int ids[CHAT_MARKER_MAX]; // (n)
} ChatMarker;

typedef struct {
    const Tokenizer *tok;            // encodes the message text; NULL: chat_init_named failed
    ChatTemplate tmpl;               // the template (never CHAT_TEMPLATE_AUTO)
    int roles;                       // 1: the roles template
    int role_id[3];                  // roles: role tokens by ChatRole (-1 where absent)
    int end;                         // what ends an assistant turn, where generation stops:
                                     // the end-of-turn marker's id, or end-of-text when the
                                     // marker is not one token
    ChatMarker marker[CHAT_MARKERS]; // the template's markers (internal)
} Chat;

// "chatml", ..., "roles"; "auto" for CHAT_TEMPLATE_AUTO.
const char *chat_template_name(ChatTemplate t);
// The names a --chat-template option takes: "auto, chatml, llama3, llama2, zephyr, hh, plain,
// roles".
const char *chat_template_names(void);
// Parses a template name or "auto" (NULL is "auto"). Returns 0, or -1 with a message naming
// the value and listing the names.
int chat_template_parse(const char *name, ChatTemplate *t, char *err, size_t errlen);
// Recognises a model's own template (tokenizer_config.json's chat_template, Jinja text) by
// its markers, first match wins: "<|im_start|>" chatml, "<|start_header_id|>" llama3, "[INST]"
// llama2, "<|user|>" with "</s>" or eos_token zephyr. Returns CHAT_TEMPLATE_AUTO for NULL or
// an unrecognised template.
ChatTemplate chat_template_recognise(const char *model_template);

// The template t for tok. CHAT_TEMPLATE_AUTO: the model's own (model_template, when
// chat_template_recognise knows it), otherwise roles if tok has <|system|> <|user|>
// <|assistant|> <|end|>, otherwise hh.
Chat chat_init_template(const Tokenizer *tok, ChatTemplate t, const char *model_template);
// chat_init_template with the template named by name (NULL or "auto": CHAT_TEMPLATE_AUTO).
// model_template is the tokenizer's chat template string, or NULL. An unknown name gives a Chat
// whose tok is NULL, and a message naming it and listing the names in err.
Chat chat_init_named(const Tokenizer *tok, const char *name, const char *model_template, char *err,
                     size_t errlen);
// CHAT_TEMPLATE_AUTO without a model template: roles or hh, by the tokenizer.
Chat chat_init(const Tokenizer *tok);
// Where generation from prompt (n ids) stops: the template's end of turn when the prompt ends
// as chat_prompt's prompts do (the end of a user turn and the assistant header), the
// end-of-text token otherwise (plain prompts, task worlds).
int chat_stop_token(const Chat *c, const int *prompt, int n);

// Appends a whole conversation: mask 1 on each assistant response, 0 elsewhere. llama2 folds a
// system message into the next user turn (or a turn of its own when no user message follows).
void chat_render(const Chat *c, const ChatMessage *m, int n, TokenBuf *out);
// Appends the assistant header (mask 0): what a prompt ends with, where generation starts.
void chat_header(const Chat *c, TokenBuf *out);
// Appends an assistant response (mask 1): the text and the end-of-turn marker.
void chat_response(const Chat *c, const char *text, size_t len, TokenBuf *out);
// Appends a generation prompt: text as a user turn, then the assistant header (mask 0).
void chat_prompt(const Chat *c, const char *text, size_t len, TokenBuf *out);
// Parses a role name ("system", "user", "assistant"); returns 0, or -1 if unknown.
int chat_role_parse(const char *name, ChatRole *role);
