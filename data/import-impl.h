// data/import-impl.h: what the importer's files share: import.c (inputs and statistics),
// import_json.c (one JSONL line to examples) and import_emit.c (examples and documents to
// the dataset files). Internal. Calls go one way: import -> import_json -> import_emit.
#pragma once
#include "data/chat.h"
#include "data/import.h"

// The JSONL line formats, detected per line by their fields.
typedef enum {
    FMT_TEXT,          // {"text"}
    FMT_PROMPT,        // {"prompt"}
    FMT_COMPLETION,    // {"prompt", "completion"}
    FMT_MESSAGES,      // {"messages": [{"role", "content"}, ...]}
    FMT_PREFERENCE,    // {"prompt", "chosen", "rejected"}
    FMT_TRANSCRIPTS,   // {"chosen", "rejected"}: HH-RLHF whole conversations
    FMT_SELF_INSTRUCT, // {"instruction", "instances": [{"input", "output"}, ...]}
    FMT_UNPAIRED,      // {"prompt", "completion", "label": true|false} (TRL's unpaired format)
    FMT_COUNT
} Format;

// What one line (or one Self-Instruct instance) holds before it is cut to the wanted kind: a
// context (everything before the final response; for sft, earlier assistant turns are masked
// 1) and zero, one or two final responses, each ending with its end token.
typedef struct {
    Format format;    // where it came from
    TokenBuf ctx;     // the prompt
    TokenBuf resp[2]; // completion or chosen; rejected
    int n_resp;       // responses held: 0, 1 or 2
    int label;        // FMT_UNPAIRED: 1 desirable, 0 undesirable (pairs: chosen 1, rejected 0)
    const char *ref;  // (ref_len) text of resp[0] (the reference answer of a prompt)
    size_t ref_len;   // bytes of ref
} Parsed;

// Results of handling a line: fine, malformed (skippable with --skip-bad), or fatal.
enum { LINE_OK = 0, LINE_BAD = -1, LINE_FATAL = -2 };

typedef struct {
    const ImportOptions *o; // the import's options
    ImportStats *st;        // counts so far
    Chat chat;              // the template for o->tok
    int chat_used;          // 1 once a line went through the template
    DatasetWriter *w[2];    // training and validation writers (w[1] NULL without a split)
    Parsed p;               // the example being built
    TokenBuf seq;           // scratch: an sft sequence or an lm document
    ChatMessage *msgs[2];   // (msg_cap[i]) a line's messages (transcripts: chosen, rejected)
    int msg_cap[2];         // messages allocated
    char *text;             // (text_cap) scratch string (Self-Instruct instruction + input)
    size_t text_cap;        // bytes allocated
    char why[512];          // the current line's problem, without its location
} Importer;

// import_json.c: handles one JSONL line (len bytes, not NUL-terminated). On LINE_BAD or
// LINE_FATAL, im->why says why.
int import_json_line(Importer *im, const char *line, size_t len);

// import_emit.c: writes the example held in im->p as the wanted kind (or drops it as too long);
// an lm document of len bytes. Both return a LINE_* code with im->why set on failure.
int import_emit(Importer *im);
int import_document(Importer *im, const char *text, size_t len);
