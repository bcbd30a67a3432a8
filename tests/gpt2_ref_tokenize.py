#!/usr/bin/env python3
"""tests/gpt2_ref_tokenize.py: an independent reference for GPT-2's tokenizer, used once to
produce the expected ids pasted into tests/test_tokenizer.c. It follows the algorithm OpenAI
published with GPT-2 (encoder.py: byte-to-unicode table, the `regex` pre-tokenisation pattern,
rank-ordered BPE) and shares no code with the C implementation.

Needs Debian's python3-regex (the `regex` module, as GPT-2's own encoder does).

  gpt2_ref_tokenize.py DIR strings            ids of the built-in test strings, as C literals
  gpt2_ref_tokenize.py DIR file PATH          token count and FNV-1a 64 of the ids of a file
  gpt2_ref_tokenize.py DIR text TEXT          ids of TEXT
"""
import json
import sys

import regex

PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# The strings the C test checks, each covering one feature of the pre-tokeniser or the BPE.
STRINGS = [
    "Hello world",
    " Hello",
    "  two leading spaces",
    "many     spaces   between",
    "trailing spaces   ",
    "line one\nline two\n\n\nafter blank lines\r\n",
    "\ttabs\tand\t\tmore",
    "numbers 12345 and 3.14159 and 1,000,000",
    "it's isn't we're they've I'm you'll he'd",
    "IT'S CAPITAL 'S 'T 'RE",
    "Punctuation!? (brackets) [x] {y} ... --- ;:",
    "emoji: \U0001F600\U0001F44D\U0001F3FD \u2764\ufe0f",
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\uff0c\u4f60\u597d\u4e16\u754c",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00dcber stra\u00dfe",
    "<|endoftext|>",
    "mixed123abc 456def",
    "a\u00a0non-breaking space",
    "ideographic\u3000space, line\u2028separator, next\u0085line, \x1cfile separator",
]


def bytes_to_unicode():
    """Printable bytes map to themselves; the others to code points from 256 upwards."""
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Gpt2:
    def __init__(self, folder):
        with open(f"{folder}/encoder.json", encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(f"{folder}/vocab.bpe", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(line.split(" ")) for line in lines[1:] if line]
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.pattern = regex.compile(PATTERN)
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def encode(self, text):
        ids = []
        for piece in self.pattern.findall(text):
            word = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[p] for p in self.bpe(word))
        return ids


def c_literal(s):
    """A C string literal for s: visible UTF-8 text as is, the rest escaped."""
    escapes = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}

    def one(c):
        if c in escapes:
            return escapes[c]
        if c != " " and (c.isspace() or not c.isprintable()):
            if ord(c) >= 0xA0:  # C allows universal character names from U+00A0 on
                return f"\\u{ord(c):04x}"
            return "".join(f"\\{b:03o}" for b in c.encode("utf-8"))
        return c

    return '"' + "".join(one(c) for c in s) + '"'


def fnv1a_ids(ids):
    """FNV-1a 64 over each id as 4 little-endian bytes."""
    h = 0xCBF29CE484222325
    for i in ids:
        for b in i.to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    tok = Gpt2(sys.argv[1])
    mode = sys.argv[2]
    if mode == "strings":
        for s in STRINGS:
            ids = tok.encode(s)
            print(f"    {{{c_literal(s)}, {len(ids)}, "
                  f"{{{', '.join(map(str, ids))}}}}},")
    elif mode == "file":
        with open(sys.argv[3], "rb") as f:
            ids = tok.encode(f.read().decode("utf-8"))
        print(f"tokens {len(ids)} fnv1a {fnv1a_ids(ids):016x}")
    else:
        print(" ".join(map(str, tok.encode(sys.argv[3]))))


if __name__ == "__main__":
    main()
