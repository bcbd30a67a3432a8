// data/import_json.c: one JSONL line to examples. Parses with jansson, detects the line's
// format by its fields, checks that the format can make the wanted kind, and renders the line
// into a Parsed example (plain concatenation for prompt/completion and prompt/chosen/rejected,
// the chat template of data/chat.h for messages, HH-RLHF transcripts and Self-Instruct).
#include "common/check.h"
#include "data/import-impl.h"
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_BIT(k) (1u << (k))

static const struct {
    const char *name; // as messages name it
    unsigned kinds;   // KIND_BITs of the kinds it can make
} FORMATS[FMT_COUNT] = {
    [FMT_TEXT] = {"text", KIND_BIT(DATA_LM)},
    [FMT_PROMPT] = {"prompt", KIND_BIT(DATA_PROMPT)},
    [FMT_COMPLETION] = {"prompt/completion", KIND_BIT(DATA_SFT) | KIND_BIT(DATA_PROMPT)},
    [FMT_MESSAGES] = {"messages", KIND_BIT(DATA_SFT) | KIND_BIT(DATA_PROMPT)},
    [FMT_PREFERENCE] = {"prompt/chosen/rejected", KIND_BIT(DATA_PREFERENCE) |
                                                      KIND_BIT(DATA_PROMPT) | KIND_BIT(DATA_SFT) |
                                                      KIND_BIT(DATA_UNPAIRED)},
    [FMT_TRANSCRIPTS] = {"chosen/rejected transcript",
                         KIND_BIT(DATA_PREFERENCE) | KIND_BIT(DATA_PROMPT) | KIND_BIT(DATA_SFT) |
                             KIND_BIT(DATA_UNPAIRED)},
    [FMT_SELF_INSTRUCT] = {"instruction/instances", KIND_BIT(DATA_SFT) | KIND_BIT(DATA_PROMPT)},
    [FMT_UNPAIRED] = {"prompt/completion/label", KIND_BIT(DATA_UNPAIRED)},
};

static const char HH_USER[] = "\n\nHuman:";
static const char HH_ASSISTANT[] = "\n\nAssistant:";

// Records why the line is malformed; returns LINE_BAD.
__attribute__((format(printf, 2, 3))) static int bad(Importer *im, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->why, sizeof(im->why), fmt, ap);
    va_end(ap);
    return LINE_BAD;
}

// ---- fields --------------------------------------------------------------------------------

// A string member of obj; LINE_BAD if missing or not a string. where names obj in messages
// (NULL: the line itself).
static int get_string(Importer *im, json_t *obj, const char *key, const char *where, const char **s,
                      size_t *len) {
    json_t *v = json_object_get(obj, key);
    const char *sep = where ? ": " : "";
    where = where ? where : "";
    if (!v) return bad(im, "%s%sfield '%s' is missing", where, sep, key);
    if (!json_is_string(v)) return bad(im, "%s%sfield '%s' is not a string", where, sep, key);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return LINE_OK;
}

static Format detect(json_t *root) {
    int has_prompt = json_object_get(root, "prompt") != NULL;
    if (json_object_get(root, "messages")) return FMT_MESSAGES;
    if (json_object_get(root, "instruction") || json_object_get(root, "instances"))
        return FMT_SELF_INSTRUCT;
    if (json_object_get(root, "chosen") || json_object_get(root, "rejected"))
        return has_prompt ? FMT_PREFERENCE : FMT_TRANSCRIPTS;
    if (json_object_get(root, "label")) return FMT_UNPAIRED;
    if (json_object_get(root, "completion")) return FMT_COMPLETION;
    if (has_prompt) return FMT_PROMPT;
    if (json_object_get(root, "text")) return FMT_TEXT;
    return FMT_COUNT;
}

// Room for n messages in list i.
static ChatMessage *msgs_reserve(Importer *im, int i, size_t n) {
    if ((size_t)im->msg_cap[i] < n) {
        im->msg_cap[i] = (int)n;
        im->msgs[i] = realloc(im->msgs[i], n * sizeof(ChatMessage));
        if (!im->msgs[i]) LC_DIE("out of memory for %zu chat messages", n);
    }
    return im->msgs[i];
}

static void parsed_reset(Parsed *p, Format f) {
    p->format = f;
    p->ctx.n = p->resp[0].n = p->resp[1].n = 0;
    p->n_resp = 0;
    p->ref = NULL;
    p->ref_len = 0;
}

// ---- chat-shaped formats -------------------------------------------------------------------

// Renders msgs[0..n) as context and, if the last is the assistant's, as final response.
static int render_chat(Importer *im, const ChatMessage *m, int n) {
    Parsed *p = &im->p;
    int last = n > 0 && m[n - 1].role == CHAT_ASSISTANT ? n - 1 : n;
    im->chat_used = 1;
    chat_render(&im->chat, m, last, &p->ctx);
    chat_header(&im->chat, &p->ctx);
    if (last < n) {
        chat_response(&im->chat, m[last].text, m[last].len, &p->resp[0]);
        p->n_resp = 1;
        p->ref = m[last].text;
        p->ref_len = m[last].len;
    }
    return import_emit(im);
}

static int parse_message(Importer *im, json_t *v, size_t i, ChatMessage *m) {
    char where[64], role[32];
    snprintf(where, sizeof(where), "messages[%zu]", i);
    if (!json_is_object(v)) return bad(im, "%s is not an object", where);
    const char *r = NULL;
    size_t rlen = 0;
    if (get_string(im, v, "role", where, &r, &rlen) < 0 ||
        get_string(im, v, "content", where, &m->text, &m->len) < 0)
        return LINE_BAD;
    snprintf(role, sizeof(role), "%s", r);
    if (chat_role_parse(r, &m->role) < 0)
        return bad(im, "%s: role '%s' is not system, user or assistant", where, role);
    if (m->role == CHAT_SYSTEM && i > 0)
        return bad(im, "%s: a system message may only come first", where);
    return LINE_OK;
}

static int line_messages(Importer *im, json_t *root) {
    json_t *arr = json_object_get(root, "messages");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return bad(im, "field 'messages' is not a non-empty array");
    size_t n = json_array_size(arr);
    ChatMessage *m = msgs_reserve(im, 0, n);
    for (size_t i = 0; i < n; i++)
        if (parse_message(im, json_array_get(arr, i), i, &m[i]) < 0) return LINE_BAD;
    return render_chat(im, m, (int)n);
}

// The next HH marker at or after from: its offset (len if none) and role.
static size_t hh_next(const char *s, size_t len, size_t from, ChatRole *role) {
    *role = CHAT_USER;
    for (size_t i = from; i + sizeof(HH_USER) - 1 <= len; i++) {
        if (s[i] != '\n') continue;
        if (memcmp(s + i, HH_USER, sizeof(HH_USER) - 1) == 0) {
            *role = CHAT_USER;
            return i;
        }
        if (i + sizeof(HH_ASSISTANT) - 1 <= len &&
            memcmp(s + i, HH_ASSISTANT, sizeof(HH_ASSISTANT) - 1) == 0) {
            *role = CHAT_ASSISTANT;
            return i;
        }
    }
    return len;
}

// Splits an HH transcript ("\n\nHuman: ...\n\nAssistant: ...") into messages of list which;
// one space after each marker belongs to the marker.
static int parse_transcript(Importer *im, const char *field, const char *s, size_t len, int which,
                            int *n) {
    ChatRole role;
    size_t at = hh_next(s, len, 0, &role);
    for (size_t i = 0; i < at; i++)
        if (s[i] != ' ' && s[i] != '\n')
            return bad(im, "field '%s' does not start with \"\\n\\nHuman:\"", field);
    *n = 0;
    while (at < len) {
        size_t start = at + (role == CHAT_USER ? sizeof(HH_USER) : sizeof(HH_ASSISTANT)) - 1;
        if (start < len && s[start] == ' ') start++;
        ChatRole next_role;
        size_t next = hh_next(s, len, start, &next_role);
        ChatMessage *m = msgs_reserve(im, which, (size_t)*n + 1);
        m[(*n)++] = (ChatMessage){role, s + start, next - start};
        at = next;
        role = next_role;
    }
    if (*n == 0 || im->msgs[which][*n - 1].role != CHAT_ASSISTANT)
        return bad(im, "field '%s' does not end with an \"\\n\\nAssistant:\" turn", field);
    return LINE_OK;
}

static int same_message(const ChatMessage *a, const ChatMessage *b) {
    return a->role == b->role && a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

// HH-RLHF: both transcripts share everything before their last "\n\nAssistant:".
static int line_transcripts(Importer *im, json_t *root) {
    const char *c = NULL, *r = NULL;
    size_t nc = 0, nr = 0;
    int mc = 0, mr = 0;
    if (get_string(im, root, "chosen", NULL, &c, &nc) < 0 ||
        get_string(im, root, "rejected", NULL, &r, &nr) < 0 ||
        parse_transcript(im, "chosen", c, nc, 0, &mc) < 0 ||
        parse_transcript(im, "rejected", r, nr, 1, &mr) < 0)
        return LINE_BAD;
    int shared = mc == mr;
    for (int i = 0; shared && i < mc - 1; i++)
        shared = same_message(&im->msgs[0][i], &im->msgs[1][i]);
    if (!shared)
        return bad(im, "chosen and rejected differ before their last \"\\n\\nAssistant:\" (no "
                       "shared prompt)");
    Parsed *p = &im->p;
    im->chat_used = 1;
    chat_render(&im->chat, im->msgs[0], mc - 1, &p->ctx);
    chat_header(&im->chat, &p->ctx);
    for (int k = 0; k < 2; k++) {
        const ChatMessage *last = &im->msgs[k][mc - 1];
        chat_response(&im->chat, last->text, last->len, &p->resp[k]);
    }
    p->n_resp = 2;
    return import_emit(im);
}

// Self-Instruct: the user message is the instruction, followed by a blank line and the
// instance's input when that is not empty; the assistant message is the output.
static const char *instruct_text(Importer *im, const char *ins, size_t ni, const char *in,
                                 size_t nin, size_t *len) {
    *len = ni + (nin ? 2 + nin : 0);
    if (im->text_cap < *len + 1) {
        im->text_cap = *len + 1;
        im->text = realloc(im->text, im->text_cap);
        if (!im->text) LC_DIE("out of memory for a %zu-byte instruction", *len);
    }
    memcpy(im->text, ins, ni);
    if (nin) {
        memcpy(im->text + ni, "\n\n", 2);
        memcpy(im->text + ni + 2, in, nin);
    }
    return im->text;
}

static int check_instances(Importer *im, json_t *arr) {
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return bad(im, "field 'instances' is not a non-empty array");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        char where[64];
        const char *s = NULL;
        size_t n = 0;
        snprintf(where, sizeof(where), "instances[%zu]", i);
        if (!json_is_object(v)) return bad(im, "%s is not an object", where);
        json_t *input = json_object_get(v, "input");
        if (input && !json_is_string(input))
            return bad(im, "%s: field '%s' is not a string", where, "input");
        if (get_string(im, v, "output", where, &s, &n) < 0) return LINE_BAD;
    }
    return LINE_OK;
}

static int line_self_instruct(Importer *im, json_t *root) {
    const char *ins = NULL;
    size_t ni = 0;
    json_t *arr = json_object_get(root, "instances");
    if (get_string(im, root, "instruction", NULL, &ins, &ni) < 0 || check_instances(im, arr) < 0)
        return LINE_BAD;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i), *input = json_object_get(v, "input");
        json_t *output = json_object_get(v, "output");
        ChatMessage *m = msgs_reserve(im, 0, 2);
        m[0].role = CHAT_USER;
        m[0].text = instruct_text(im, ins, ni, input ? json_string_value(input) : "",
                                  input ? json_string_length(input) : 0, &m[0].len);
        m[1] = (ChatMessage){CHAT_ASSISTANT, json_string_value(output), json_string_length(output)};
        parsed_reset(&im->p, FMT_SELF_INSTRUCT);
        int rc = render_chat(im, m, 2);
        if (rc != LINE_OK) return rc;
    }
    return LINE_OK;
}

// ---- plain formats -------------------------------------------------------------------------

static void encode_into(Importer *im, const char *s, size_t n, TokenBuf *out, uint8_t mask) {
    int *ids;
    int k = tokenizer_encode(im->o->tok, s, n, 0, &ids);
    tokenbuf_push(out, ids, k, mask);
    free(ids);
}

static void raw_response(Importer *im, const char *s, size_t n, TokenBuf *out) {
    int eot = tokenizer_eot(im->o->tok);
    encode_into(im, s, n, out, 1);
    tokenbuf_push(out, &eot, 1, 1);
}

// The fields of the plain formats: the prompt, then the responses.
static const char *const PLAIN_FIELDS[FMT_COUNT][3] = {
    [FMT_PROMPT] = {"prompt"},
    [FMT_COMPLETION] = {"prompt", "completion"},
    [FMT_PREFERENCE] = {"prompt", "chosen", "rejected"},
    [FMT_UNPAIRED] = {"prompt", "completion"},
};

// Empty texts that make no usable example (docs/datasets.md): a prompt, for every kind (it is
// what a policy continues, and where a response's first trained token is predicted from); the
// response an sft example trains on; both responses of a preference pair at once.
static int plain_check_empty(Importer *im, Format f, const size_t *len) {
    const char *const *field = PLAIN_FIELDS[f];
    if (len[0] == 0)
        return bad(im, "field 'prompt' is empty: every example needs a prompt to continue");
    if (im->o->kind == DATA_SFT && field[1] && len[1] == 0)
        return bad(im, "field '%s' is empty: an sft example needs a response to train on",
                   field[1]);
    if (im->o->kind == DATA_PREFERENCE && len[1] == 0 && len[2] == 0)
        return bad(im, "fields 'chosen' and 'rejected' are both empty: the pair prefers nothing");
    return LINE_OK;
}

// prompt, prompt/completion and prompt/chosen/rejected: the texts as they are (after the BOS
// token, for tokenizers that have one: Llama-family models are trained to start from it), each
// response followed by the end-of-text token.
static int line_plain(Importer *im, json_t *root, Format f) {
    Parsed *p = &im->p;
    const char *const *field = PLAIN_FIELDS[f];
    const char *text[3] = {NULL};
    size_t len[3] = {0};
    int n = 0;
    for (; n < 3 && field[n]; n++)
        if (get_string(im, root, field[n], NULL, &text[n], &len[n]) < 0) return LINE_BAD;
    if (plain_check_empty(im, f, len) != LINE_OK) return LINE_BAD;
    if (f == FMT_UNPAIRED) {
        json_t *label = json_object_get(root, "label");
        if (!label) return bad(im, "field 'label' is missing");
        if (!json_is_boolean(label))
            return bad(im, "field 'label' is not a boolean (true: desirable, false: undesirable)");
        p->label = json_is_true(label);
    }
    int bos = tokenizer_bos(im->o->tok);
    if (bos >= 0) tokenbuf_push(&p->ctx, &bos, 1, 0);
    encode_into(im, text[0], len[0], &p->ctx, 0);
    for (int k = 1; k < n; k++) {
        raw_response(im, text[k], len[k], &p->resp[k - 1]);
        p->n_resp++;
    }
    if (n > 1) {
        p->ref = text[1];
        p->ref_len = len[1];
    }
    return import_emit(im);
}

static int line_text(Importer *im, json_t *root) {
    const char *s = NULL;
    size_t n = 0;
    if (get_string(im, root, "text", NULL, &s, &n) < 0) return LINE_BAD;
    return import_document(im, s, n);
}

// ---- a line --------------------------------------------------------------------------------

static int kinds_list(unsigned kinds, char *buf, size_t len) {
    size_t at = 0;
    buf[0] = '\0';
    for (int k = 0; k < DATA_KIND_COUNT; k++)
        if (kinds & KIND_BIT(k))
            at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? " or " : "",
                                   data_kind_name((DataKind)k));
    return 0;
}

static int line_dispatch(Importer *im, json_t *root) {
    Format f = detect(root);
    if (f == FMT_COUNT)
        return bad(im, "no known fields (expected text, prompt, prompt+completion, messages, "
                       "prompt+chosen+rejected, chosen+rejected, instruction+instances or "
                       "prompt+completion+label)");
    // an unpaired dataset wants a label: a line without one is malformed, not another format
    if (im->o->kind == DATA_UNPAIRED && (f == FMT_COMPLETION || f == FMT_PROMPT)) f = FMT_UNPAIRED;
    if (!(FORMATS[f].kinds & KIND_BIT(im->o->kind))) {
        char kinds[64];
        kinds_list(FORMATS[f].kinds, kinds, sizeof(kinds));
        snprintf(im->why, sizeof(im->why), "a %s line cannot make a '%s' dataset (it makes %s)",
                 FORMATS[f].name, data_kind_name(im->o->kind), kinds);
        return LINE_FATAL;
    }
    parsed_reset(&im->p, f);
    switch (f) {
    case FMT_TEXT:
        return line_text(im, root);
    case FMT_MESSAGES:
        return line_messages(im, root);
    case FMT_TRANSCRIPTS:
        return line_transcripts(im, root);
    case FMT_SELF_INSTRUCT:
        return line_self_instruct(im, root);
    default:
        return line_plain(im, root, f);
    }
}

int import_json_line(Importer *im, const char *line, size_t len) {
    json_error_t jerr;
    json_t *root = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    if (!root) {
        snprintf(im->why, sizeof(im->why), "invalid JSON: %s (byte %d)", jerr.text, jerr.position);
        return LINE_BAD;
    }
    int rc =
        json_is_object(root) ? line_dispatch(im, root) : bad(im, "the line is not a JSON object");
    json_decref(root);
    return rc;
}
