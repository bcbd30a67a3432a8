// train/recipe/source.c: where a recipe's values come from — the recipe file, a command-line
// override or a built-in default — and the messages that point there: parsing YAML sources,
// naming a node's location, recording and looking up where each key was set, and writing an
// error. The loader, the value store and the rules all report through here, so none of them
// calls back into another.
#include "train/recipe/recipe-impl.h"
#include "common/check.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

RecipeError recipe_fail(RecipeLoader *L, RecipeError status, const char *where, const char *prefix,
                        const char *key, const char *fmt, ...) {
    int used = snprintf(L->err, L->errlen, "%s: ", where);
    if (key && used >= 0 && (size_t)used < L->errlen)
        used += snprintf(L->err + used, L->errlen - (size_t)used, "%s%s: ", prefix, key);
    if (used >= 0 && (size_t)used < L->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->err + used, L->errlen - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return status;
}

const char *source_where(const Source *src, const yaml_node_t *node, char *buf, size_t len) {
    if (src->file && node)
        snprintf(buf, len, "%s:%zu:%zu", src->file, node->start_mark.line + 1,
                 node->start_mark.column + 1);
    else if (src->file)
        snprintf(buf, len, "%s:1:1", src->file);
    else if (src->text)
        snprintf(buf, len, "command line '%s'", src->text);
    else
        snprintf(buf, len, "built-in default");
    return buf;
}

RecipeError source_syntax_fail(const yaml_parser_t *p, const char *where, bool marks, char *err,
                               size_t errlen) {
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (!marks)
        snprintf(err, errlen, "%s: YAML syntax error in the value: %s", where, problem);
    else if (p->context)
        snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)", where,
                 p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                 p->context_mark.line + 1);
    else
        snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s", where, p->problem_mark.line + 1,
                 p->problem_mark.column + 1, problem);
    return RECIPE_ERR_SYNTAX;
}

// The tag an event gives its node, and whether the event makes a node at all (aliases and the
// ends of collections, streams and documents do not).
static bool event_node_tag(const yaml_event_t *ev, const yaml_char_t **tag) {
    *tag = NULL;
    if (ev->type == YAML_SCALAR_EVENT) *tag = ev->data.scalar.tag;
    if (ev->type == YAML_SEQUENCE_START_EVENT) *tag = ev->data.sequence_start.tag;
    if (ev->type == YAML_MAPPING_START_EVENT) *tag = ev->data.mapping_start.tag;
    return ev->type == YAML_SCALAR_EVENT || ev->type == YAML_SEQUENCE_START_EVENT ||
           ev->type == YAML_MAPPING_START_EVENT;
}

// libyaml's loader gives every untagged node its default tag (!!str, !!seq, !!map), so the
// document cannot tell `steps: !!str 5` from `steps: 5`. The parser's events can: a second
// pass over the same text walks them alongside the nodes (the loader adds one node per scalar
// or collection start, in event order) and drops every tag the text did not write, so that
// node->tag is set exactly when the recipe tags the node (value.c gives tags their meaning).
void source_keep_written_tags(Source *src, const char *text, size_t len) {
    yaml_parser_t p;
    yaml_event_t ev;
    yaml_node_t *node = src->doc.nodes.start, *end = src->doc.nodes.top;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    bool more = true;
    while (more && node < end && yaml_parser_parse(&p, &ev)) {
        const yaml_char_t *tag;
        more = ev.type != YAML_DOCUMENT_END_EVENT && ev.type != YAML_STREAM_END_EVENT;
        if (event_node_tag(&ev, &tag)) {
            bool written = tag && node->start_mark.index == ev.start_mark.index;
            if (!written) free(node->tag), node->tag = NULL; // libyaml allocates with malloc
            node++;
        }
        yaml_event_delete(&ev);
    }
    for (; node < end; node++) free(node->tag), node->tag = NULL; // not matched: untagged
    yaml_parser_delete(&p);
}

RecipeError source_parse_text(Source *src, const char *text, char *err, size_t errlen) {
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    RecipeError rc = RECIPE_OK;
    char where[512];
    source_where(src, NULL, where, sizeof(where));
    if (!yaml_parser_load(&p, &src->doc))
        rc = source_syntax_fail(&p, where, false, err, errlen);
    else
        src->loaded = true;
    yaml_parser_delete(&p);
    if (src->loaded) source_keep_written_tags(src, text, strlen(text));
    return rc;
}

void source_free(Source *src) {
    if (src->loaded) yaml_document_delete(&src->doc);
    src->loaded = false;
}

// ---- origins ---------------------------------------------------------------------------------

static RecipeOrigin *origin_find(const Recipe *r, int stage, const char *key) {
    for (int i = 0; i < r->n_origins; i++)
        if (r->origins[i].stage == stage && strcmp(r->origins[i].key, key) == 0)
            return &r->origins[i];
    return NULL;
}

void origin_set(Recipe *r, int stage, const char *key, const char *where) {
    RecipeOrigin *o = origin_find(r, stage, key);
    if (!o) {
        RecipeOrigin *grown = realloc(r->origins, (size_t)(r->n_origins + 1) * sizeof(*grown));
        if (!grown) LC_DIE("out of memory recording where recipe keys were set");
        r->origins = grown;
        o = &r->origins[r->n_origins++];
        *o = (RecipeOrigin){stage, key, NULL};
    }
    free(o->where);
    o->where = strdup(where);
    LC_ASSERT(o->where);
}

const char *recipe_where(const Recipe *r, int stage, const char *key) {
    const RecipeOrigin *o = origin_find(r, stage, key);
    return o ? o->where : NULL;
}
