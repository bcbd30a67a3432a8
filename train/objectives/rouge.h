// train/objectives/rouge.h: ROUGE-L (Lin 2004), the similarity Self-Instruct uses to keep near
// duplicates out of its instruction pool. Pure text math: no model, recipe or data types.
//
// Tokens are those of the rouge-score package's default tokenizer, without stemming: the text
// is lowercased, every character that is not an ASCII letter or digit separates tokens (so
// "don't" is "don" "t", and non-ASCII letters separate too). With L the length of the longest
// common subsequence of the two token lists, P = L / len(candidate), R = L / len(reference)
// and ROUGE-L = F1 = 2 P R / (P + R); 0 when either list is empty or they share no token.
// F1 is symmetric in its arguments.
#pragma once
#include <stdint.h>

// A text's tokens: each one's bytes and a hash to compare them quickly.
typedef struct {
    char *buf;     // the lowercased tokens, NUL-separated (owned)
    char **word;   // (n) pointers into buf
    uint64_t *key; // (n) a hash of each token (equal tokens, equal keys)
    int n;         // tokens
} RougeTokens;

// Tokenises text (NUL-terminated) into t; free with rouge_tokens_free.
void rouge_tokenize(const char *text, RougeTokens *t);
void rouge_tokens_free(RougeTokens *t);

// Length of the longest common subsequence of two token lists.
int rouge_lcs(const RougeTokens *a, const RougeTokens *b);
// ROUGE-L F1 of candidate against reference, in [0, 1].
double rouge_l_tokens(const RougeTokens *candidate, const RougeTokens *reference);
// The same from text.
double rouge_l(const char *candidate, const char *reference);
// The highest ROUGE-L F1 of candidate against pool[0..n) and, in *best (may be NULL), the
// index of the first pool entry that reaches it (-1 when n is 0; the maximum is then 0).
double rouge_l_max(const RougeTokens *candidate, const RougeTokens *pool, int n, int *best);
