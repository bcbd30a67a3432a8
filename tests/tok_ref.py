#!/usr/bin/env python3
"""tests/tok_ref.py: independent pure-Python references for layercake's tokenizers (standard
library only; shares no code with the C). tests/test_tokenizer_hf.c runs it to build its fixtures
and the ids it expects.

  tok_ref.py fixtures CORPUS TOK512 OUT
      Trains byte-level BPE merges on CORPUS and writes Hugging Face tokenizer folders under OUT,
      one per style (gpt2, gpt2-prefix, llama3, qwen2, smollm: each the pre-tokenisation, merges
      spelling, added tokens and options of that family; mixed: every Split behaviour),
      OUT/cases.txt (the test strings, one JSON string a line), OUT/lines.txt (those that are
      one line of text), OUT/nfc.jsonl (random strings and their NFC) and, for every style
      and for llama2.c's TOK512, OUT/<style>.jsonl: per case the ids with and without special
      tokens matched, the pre-tokenised pieces, and the decoded text.
  tok_ref.py nfc-tables
      Prints data/tokenizer_nfc_tables.h (Unicode NFC tables from Python's unicodedata).

The byte-level reference follows Hugging Face tokenizers' documented pipeline: added tokens cut
out (leftmost-longest; lstrip/rstrip), NFC, the pre-tokenizer's Split/Digits/ByteLevel steps,
then BPE that merges the leftmost occurrence of the lowest-ranked pair, one at a time (with
ignore_merges, a piece that is a vocabulary token is that token). Patterns run through Python's
`re` after \\p{L}, \\p{N} and \\s are rewritten as explicit character classes built from
unicodedata (Unicode White_Space for \\s, as Oniguruma has it). The llama2.c reference is the
encoder of llama2.c's run.c.
"""
import heapq
import json
import os
import re
import struct
import sys
import unicodedata

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
                  r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                 r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

WHITE_SPACE = ([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
               + list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

# ---- regular expressions -------------------------------------------------------------------------

_classes = {}
_compiled = {}


def class_body(name):
    """The inside of a character class for \\s or \\p{X}, X a general category (Lu) or its
    first letter (L). No letter, mark or number lies beyond U+3FFFF in Unicode 14."""
    if not _classes:
        _classes["s"] = "".join(f"\\U{c:08x}" for c in WHITE_SPACE)
        _classes["cats"] = [unicodedata.category(chr(cp)) for cp in range(0x40000)]
    if name not in _classes:
        runs = []
        for cp, cat in enumerate(_classes["cats"]):
            if cat == name or cat[0] == name:
                if runs and runs[-1][1] == cp - 1:
                    runs[-1][1] = cp
                else:
                    runs.append([cp, cp])
        _classes[name] = "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}"
                                 for a, b in runs)
    return _classes[name]


def translate(pattern):
    """Rewrites an Oniguruma/PCRE pattern's \\p{L}, \\p{N}, \\s and \\S for Python's re."""
    if pattern in _compiled:
        return _compiled[pattern]
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            e = pattern[i + 1]
            if e == "p" and pattern[i + 2] == "{":
                name = pattern[i + 3:pattern.index("}", i)]
                body = class_body(name)
                out.append(body if in_class else f"[{body}]")
                i = pattern.index("}", i) + 1
                continue
            if e in "sS":
                body = class_body("s")
                if in_class:
                    assert e == "s", "\\S inside a class is not supported"
                    out.append(body)
                else:
                    out.append(f"[{body}]" if e == "s" else f"[^{body}]")
                i += 2
                continue
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            i += 1
            if pattern[i:i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i:i + 1] == "]":
                out.append("\\]")
                i += 1
            continue
        if c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    _compiled[pattern] = re.compile("".join(out))
    return _compiled[pattern]


# ---- GPT-2's byte-to-unicode alphabet ------------------------------------------------------------

def byte_alphabet():
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHAR = byte_alphabet()
CHAR_BYTE = {c: b for b, c in BYTE_CHAR.items()}


def spell(data):
    return "".join(BYTE_CHAR[b] for b in data)


def unspell(s):
    return bytes(CHAR_BYTE[c] for c in s)


# ---- the Hugging Face pipeline -------------------------------------------------------------------

def split_segments(regex, s, behavior, invert):
    """Hugging Face's NormalizedString.split with a regex: the pieces, empty ones dropped."""
    segs, prev = [], 0
    for m in regex.finditer(s):
        if m.start() > prev:
            segs.append((prev, m.start(), False))
        segs.append((m.start(), m.end(), True))
        prev = m.end()
    if prev < len(s):
        segs.append((prev, len(s), False))
    if invert:
        segs = [(a, b, not m) for a, b, m in segs]
    out = []
    if behavior == "Removed":
        out = [(a, b) for a, b, m in segs if not m]
    elif behavior == "Isolated":
        out = [(a, b) for a, b, m in segs]
    elif behavior == "Contiguous":
        last = None
        for a, b, m in segs:
            if out and m == last:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
            last = m
    elif behavior == "MergedWithPrevious":
        last = False
        for a, b, m in segs:
            if out and m and not last:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
            last = m
    elif behavior == "MergedWithNext":
        last = False
        for a, b, m in reversed(segs):
            if out and m and not last:
                out[-1] = (a, out[-1][1])
            else:
                out.append((a, b))
            last = m
        out.reverse()
    else:
        raise ValueError(behavior)
    return [s[a:b] for a, b in out if b > a]


class HfTokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        model = doc["model"]
        assert model["type"] == "BPE"
        self.vocab = model["vocab"]
        self.ignore_merges = bool(model.get("ignore_merges"))
        self.ranks = {}
        for i, m in enumerate(model["merges"]):
            pair = tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
            self.ranks[pair] = i
        self.added = doc.get("added_tokens") or []
        self.by_id = {a["id"]: a["content"] for a in self.added}
        self.id_to_key = {i: k for k, i in self.vocab.items()}
        norm = doc.get("normalizer")
        self.nfc = norm is not None and norm["type"] == "NFC"
        pre = doc["pre_tokenizer"]
        steps = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        self.steps = []
        for p in steps:
            if p["type"] == "ByteLevel":
                regex = translate(GPT2_PATTERN) if p.get("use_regex", True) else None
                self.steps.append(("bytelevel", regex, p.get("add_prefix_space", True)))
            elif p["type"] == "Split":
                pat = p["pattern"]
                if "Regex" in pat:
                    regex = translate(pat["Regex"])
                else:
                    regex = re.compile(re.escape(pat["String"]))
                self.steps.append(("split", regex, p["behavior"], p["invert"]))
            elif p["type"] == "Digits":
                behavior = "Isolated" if p["individual_digits"] else "Contiguous"
                self.steps.append(("split", translate(r"\p{N}"), behavior, False))
            else:
                raise ValueError(p["type"])
        self.cache = {}

    def match_text(self, a):
        if self.nfc and a.get("normalized", not a["special"]):
            return unicodedata.normalize("NFC", a["content"])
        return a["content"]

    def split_added(self, text, normalized, allow_special):
        """[(text, None) | (content, id)]: leftmost-longest occurrences of the added tokens."""
        cands = [a for a in self.added if a.get("normalized", not a["special"]) == normalized
                 and (allow_special or not a["special"])]
        out, pos = [], 0
        while cands:
            best = None  # (start, -length, token)
            for a in cands:
                at = text.find(self.match_text(a), pos)
                if at >= 0 and (best is None or (at, -len(self.match_text(a))) < best[:2]):
                    best = (at, -len(self.match_text(a)), a)
            if best is None:
                break
            at, _, a = best
            start, end = at, at + len(self.match_text(a))
            if a.get("lstrip"):
                while start > pos and ord(text[start - 1]) in WHITE_SPACE:
                    start -= 1
            if a.get("rstrip"):
                while end < len(text) and ord(text[end]) in WHITE_SPACE:
                    end += 1
            if start > pos:
                out.append((text[pos:start], None))
            out.append((text[start:end], a["id"]))
            pos = end
        if pos < len(text):
            out.append((text[pos:], None))
        return out

    def pretokenize(self, text):
        pieces = [text]
        for step in self.steps:
            nxt = []
            for p in pieces:
                if step[0] == "bytelevel":
                    _, regex, prefix = step
                    if prefix and not p.startswith(" "):
                        p = " " + p
                    nxt.extend(split_segments(regex, p, "Isolated", False) if regex else [p])
                else:
                    _, regex, behavior, invert = step
                    nxt.extend(split_segments(regex, p, behavior, invert))
            pieces = nxt
        return pieces

    def bpe(self, piece):
        word = spell(piece.encode("utf-8"))
        if word in self.cache:
            return self.cache[word]
        if self.ignore_merges and word in self.vocab:
            ids = [self.vocab[word]]
        else:
            syms = list(word)
            while len(syms) > 1:
                best, at = None, -1
                for i in range(len(syms) - 1):
                    r = self.ranks.get((syms[i], syms[i + 1]))
                    if r is not None and (best is None or r < best):
                        best, at = r, i
                if best is None:
                    break
                syms[at:at + 2] = [syms[at] + syms[at + 1]]
            ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def pieces(self, text, allow_special=True):
        """The pre-tokenised pieces: [(text, None)] for BPE, [(text, id)] for added tokens."""
        out = []
        for seg, tid in self.split_added(text, False, allow_special):
            if tid is not None:
                out.append((seg, tid))
                continue
            if self.nfc:
                seg = unicodedata.normalize("NFC", seg)
            for seg2, tid2 in self.split_added(seg, True, allow_special):
                if tid2 is not None:
                    out.append((seg2, tid2))
                else:
                    out.extend((p, None) for p in self.pretokenize(seg2))
        return out

    def encode(self, text, allow_special=True):
        ids = []
        for piece, tid in self.pieces(text, allow_special):
            ids.extend([tid] if tid is not None else self.bpe(piece))
        return ids

    def decode(self, ids):
        out = b""
        for i in ids:
            out += self.by_id[i].encode("utf-8") if i in self.by_id else unspell(self.id_to_key[i])
        return out


# ---- training byte-level BPE ---------------------------------------------------------------------

def train_merges(words, n_merges):
    """Classic BPE on word counts (tuples of symbols): the most frequent adjacent pair merges
    next, ties to the smallest pair. Returns the merges as (left, right) strings."""
    words = [[list(w), c] for w, c in words.items()]
    pairs, where = {}, {}
    for wi, (syms, c) in enumerate(words):
        for p in zip(syms, syms[1:]):
            pairs[p] = pairs.get(p, 0) + c
            where.setdefault(p, set()).add(wi)
    heap = [(-c, p) for p, c in pairs.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        neg, best = heapq.heappop(heap)
        if pairs.get(best) != -neg:
            continue  # stale: the count has changed since
        merges.append(best)
        joined = best[0] + best[1]
        changed = set()
        for wi in where.pop(best):
            syms, c = words[wi]
            for p in zip(syms, syms[1:]):
                pairs[p] -= c
                changed.add(p)
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[wi][0] = out
            for p in zip(out, out[1:]):
                pairs[p] = pairs.get(p, 0) + c
                where.setdefault(p, set()).add(wi)
                changed.add(p)
        for p in changed:
            if pairs[p] > 0:
                heapq.heappush(heap, (-pairs[p], p))
            else:
                del pairs[p]
    return merges


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
            "behavior": behavior, "invert": invert}


def byte_level(prefix=False, regex=True):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True,
            "use_regex": regex}


def sequence(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps)}


def style_config(style):
    """A style's pre_tokenizer, normalizer, merges spelling (pairs or strings), ignore_merges,
    added tokens (content, special, flags), the added tokens also in model.vocab, BOS, EOS."""
    cfg = dict(normalizer=None, pairs=True, ignore_merges=False, in_vocab=[], bos=None)
    if style in ("gpt2", "gpt2-prefix"):
        cfg.update(pre=byte_level(prefix=style == "gpt2-prefix"), pairs=False,
                   added=[("<|endoftext|>", True, {}), ("<mask>", True, {"lstrip": True})],
                   in_vocab=["<|endoftext|>"], bos="<|endoftext|>", eos="<|endoftext|>")
    elif style == "llama3":
        names = ["begin_of_text", "end_of_text", "start_header_id", "end_header_id", "eot_id",
                 "reserved_special_token_0"]
        cfg.update(pre=sequence(split(LLAMA3_PATTERN, "Isolated"), byte_level(regex=False)),
                   ignore_merges=True, added=[(f"<|{n}|>", True, {}) for n in names],
                   bos="<|begin_of_text|>", eos="<|eot_id|>")
    elif style == "qwen2":
        cfg.update(pre=sequence(split(QWEN2_PATTERN, "Isolated"), byte_level(regex=False)),
                   normalizer={"type": "NFC"}, eos="<|im_end|>",
                   added=[("<|endoftext|>", True, {}), ("<|im_start|>", True, {}),
                          ("<|im_end|>", True, {}), ("Cafe\u0301", False, {"normalized": True}),
                          ("<tool>", False, {"normalized": False, "rstrip": True})])
    elif style == "smollm":
        cfg.update(pre=sequence({"type": "Digits", "individual_digits": True}, byte_level()),
                   pairs=False, bos="<|im_start|>", eos="<|im_end|>",
                   added=[("<|endoftext|>", True, {}), ("<|im_start|>", True, {}),
                          ("<|im_end|>", True, {})])
    elif style == "mixed":  # every split behaviour, invert, literal patterns, Digits grouped
        cfg.update(pre=sequence({"type": "Digits", "individual_digits": False},
                                split("[.,;:!?]", "MergedWithPrevious"),
                                split("-", "MergedWithNext", literal=True),
                                split(r"\p{Lu}", "Contiguous"),
                                split("[aeiou]+", "MergedWithPrevious", invert=True),
                                split("  ", "Removed", literal=True), byte_level(prefix=True)),
                   ignore_merges=True, eos="<|endoftext|>",
                   added=[("<|endoftext|>", True, {"lstrip": True, "rstrip": True})])
    else:
        raise ValueError(style)
    return cfg


def build_tokenizer_json(style, corpus_lines, n_merges, out_dir):
    cfg = style_config(style)
    # a tokenizer.json without merges, to pre-tokenise the corpus the way this style will
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
             "ignore_merges": cfg["ignore_merges"], "vocab": {}, "merges": []}
    doc = {"version": "1.0", "added_tokens": [], "normalizer": cfg["normalizer"],
           "pre_tokenizer": cfg["pre"], "post_processor": None,
           "decoder": byte_level(prefix=True), "model": model}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    pre = HfTokenizer(path)
    counts = {}
    for line in corpus_lines:
        text = unicodedata.normalize("NFC", line) if pre.nfc else line
        for piece in pre.pretokenize(text):
            w = tuple(spell(piece.encode("utf-8")))
            counts[w] = counts.get(w, 0) + 1
    merges = train_merges(counts, n_merges)
    vocab = {BYTE_CHAR[b]: b for b in range(256)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    if cfg["ignore_merges"]:
        # whole words the merges do not reach: ignore_merges makes them one token
        for word in [" Lily", " needle", " shirt", " together", "Once", " happy"]:
            vocab.setdefault(spell(word.encode("utf-8")), len(vocab))
    for content in cfg["in_vocab"]:
        vocab[spell(content.encode("utf-8"))] = len(vocab)
    added, next_id = [], len(vocab)
    for content, special, flags in cfg["added"]:
        if content in cfg["in_vocab"]:
            tid = vocab[spell(content.encode("utf-8"))]
        else:
            tid, next_id = next_id, next_id + 1
        token = {"id": tid, "content": content, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": not special, "special": special}
        added.append(dict(token, **flags))
    doc["added_tokens"] = added
    model["vocab"] = vocab
    model["merges"] = [[a, b] if cfg["pairs"] else f"{a} {b}" for a, b in merges]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
    config = {"tokenizer_class": "PreTrainedTokenizerFast",
              "eos_token": {"content": cfg["eos"], "special": True},
              "chat_template": "{% for m in messages %}" + style + "{{ m['content'] }}{% endfor %}"}
    if cfg["bos"]:
        config["bos_token"] = cfg["bos"]
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    return HfTokenizer(path)


# ---- llama2.c's run.c ----------------------------------------------------------------------------

class Llama2c:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.max_len = struct.unpack_from("<i", data, 0)[0]
        self.vocab, self.scores, pos = [], [], 4
        while pos < len(data):
            score, n = struct.unpack_from("<fi", data, pos)
            pos += 8
            self.vocab.append(data[pos:pos + n])
            self.scores.append(score)
            pos += n
        self.lookup = {}
        for i, s in enumerate(self.vocab):
            self.lookup.setdefault(s, i)

    def encode(self, text):
        """run.c's encode(), without BOS and EOS: a dummy-prefix space, each UTF-8 character its
        token or its bytes' fallback tokens, then the best-scoring merges, leftmost on ties."""
        data = text.encode("utf-8")
        tokens = [self.lookup[b" "]] if data else []
        buf = b""
        for i, byte in enumerate(data):
            if byte & 0xC0 != 0x80:
                buf = b""
            buf += bytes([byte])
            nxt = data[i + 1] if i + 1 < len(data) else 0
            if nxt & 0xC0 == 0x80 and len(buf) < 4:
                continue
            if buf in self.lookup:
                tokens.append(self.lookup[buf])
            else:
                tokens.extend(b + 3 for b in buf)
            buf = b""
        neg = float("-inf")

        def score(i):
            t = self.lookup.get(self.vocab[tokens[i]] + self.vocab[tokens[i + 1]])
            return neg if t is None else self.scores[t]

        scores = [score(i) for i in range(len(tokens) - 1)]
        while scores:
            best = max(scores)
            if not best > -1e10:
                break
            i = scores.index(best)  # the leftmost of the best
            tokens[i:i + 2] = [self.lookup[self.vocab[tokens[i]] + self.vocab[tokens[i + 1]]]]
            del scores[i]
            if i > 0:
                scores[i - 1] = score(i - 1)
            if i < len(scores):
                scores[i] = score(i)
        return tokens

    def decode(self, ids):
        out, prev = b"", -1
        for t in ids:
            piece = self.vocab[t]
            if t in (1, 2):
                piece = b""
            if prev == 1 and piece.startswith(b" "):
                piece = piece[1:]
            m = re.fullmatch(rb"<0x([0-9A-F]{2})>", piece)
            out += bytes([int(m.group(1), 16)]) if m else piece
            prev = t
        return out


# ---- the test strings ----------------------------------------------------------------------------

VARIED = [
    "Hello world", " Hello", "  two leading spaces", "many     spaces   between",
    "trailing spaces   ", "line one\nline two\n\n\nafter blank lines\r\n", "\ttabs\tand\t\tmore",
    " \n \n\t \r\n  x", "numbers 12345 and 3.14159 and 1,000,000 and 0007",
    "call 555-0199 at 10:30pm", "it's isn't we're they've I'm you'll he'd",
    "IT'S CAPITAL 'S 'T 'RE 'LL", "They'Re We'VE i'M",
    "Punctuation!? (brackets) [x] {y} ... --- ;:", "quotes \"double\" and 'single' and `back`",
    "emoji: \U0001f600\U0001f44d\U0001f3fd \u2764\ufe0f and "
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\uff0c\u4f60\u597d\u4e16\u754c",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! "
    "\u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0661\u0662\u0663",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00dcber stra\u00dfe",
    "cafe\u0301 nai\u0308ve (decomposed)",
    "a\u0301\u0323 and a\u0323\u0301 and \u1e69 and s\u0323\u0307",
    "\u1100\u1161\u11a8 \uac00\ub098\ub2e4 \u1100\u1161",
    "Roman \u216b and fractions \u00bd \u00be and superscript x\u00b2",
    "\u0391\u03b8\u03ae\u03bd\u03b1 \u1f00", "a\u00a0non-breaking space",
    "ideographic\u3000space, line\u2028separator, next\u0085line, \x1cfile sep",
    "mixed123abc 456def 7x8y9z", "<|endoftext|>", "a<|endoftext|>b", "before <mask> after",
    "<|begin_of_text|>Hi<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nyo",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "I ordered a Caf\u00e9 and a Cafe\u0301 at the Caf\u00e9s", "use <tool>   then  <tool>x",
    "Once upon a time, Lily found a needle. Lily was happy together with her mom.",
    "x" * 40 + " " + "ab" * 30, "\u00e9" * 25, "!!!???...,,,", "   ", "\n", "a", "",
    "The quick brown fox jumps over the lazy dog 0123456789 times.",
    "tab\tseparated\tvalues\t1\t2\t3", "CamelCaseWordsAndALLCAPS and snake_case_words",
    "https://example.com/path?query=1&x=y#frag", "email: someone@example.org",
    "$100.00 \u20ac50 \u00a330 \u00a5200", "math: a+b=c, x^2 \u2264 y, \u2200x \u2208 S",
    "well-known co-op re-entry -- dash-", "HTTPServer XMLHttpRequest iPhone McDonald",
    "Wait... what?! Yes; no: maybe,, ok.", "end  <|endoftext|>  start", "Illl mmm hooo appp lllll",
    "  \u3000  mixed \t whitespace\u2003here  ",
]


def make_cases(corpus_lines):
    lines = [l for l in corpus_lines if l.strip()][:250]
    return VARIED + lines


def nfc_cases(n=3000, seed=7):
    """Short random strings of bases, combining marks, Hangul jamo and syllables, singletons and
    excluded composites: {"text", "nfc"} by Python's unicodedata."""
    import random
    rng = random.Random(seed)
    pool = (list("aeouAEOsKnZ ") + ["\u00c5", "\u00e9", "\u00f1", "\u1e69", "\u212b", "\u2126",
                                   "\u0958", "\uf900", "\u0344", "\u0f73", "\u1100", "\u1161",
                                   "\u11a8", "\uac00", "\uac01", "\u0627", "\u0653", "\u05d0",
                                   "\u05b0", "\u05bc", "\u0915", "\u093c", "\u09c7", "\u09be",
                                   "\u0b47", "\u0b3e", "\u1025", "\u102e", "\U0001d15e",
                                   "\u3099", "\u304b", "\u30cf", "\u309a", "\u1fbf", "\u0391"]
            + [chr(c) for c in (0x300, 0x301, 0x302, 0x303, 0x308, 0x30a, 0x31b, 0x323, 0x327,
                                0x328, 0x342, 0x345, 0x35c, 0x1dc0, 0x20d0)])
    out = []
    for _ in range(n):
        t = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        out.append({"text": t, "nfc": unicodedata.normalize("NFC", t)})
    return out


# ---- NFC tables ----------------------------------------------------------------------------------

def nfc_tables():
    decomp, ccc, comp, seconds = [], [], [], set()
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        d = unicodedata.decomposition(c)
        if d and not d.startswith("<"):
            parts = [int(x, 16) for x in d.split()]
            decomp.append((cp, parts[0], parts[1] if len(parts) > 1 else 0))
            # a primary composite: a pair that NFC composes back to cp
            nfd = unicodedata.normalize("NFD", c)
            if len(parts) == 2 and unicodedata.normalize("NFC", nfd) == c:
                comp.append((parts[0], parts[1], cp))
                seconds.add(parts[1])
        k = unicodedata.combining(c)
        if k:
            if ccc and ccc[-1][1] == cp - 1 and ccc[-1][2] == k:
                ccc[-1] = (ccc[-1][0], cp, k)
            else:
                ccc.append((cp, cp, k))
    comp.sort()
    sec = []
    for cp in sorted(seconds):
        if sec and sec[-1][1] == cp - 1:
            sec[-1] = (sec[-1][0], cp)
        else:
            sec.append((cp, cp))

    def table(name, rows, width):
        out = [f"static const uint32_t {name}[][{width}] = {{"]
        per = 3 if width == 3 else 4
        for i in range(0, len(rows), per):
            cells = ("{" + ", ".join(f"0x{v:04X}" for v in r) + "}," for r in rows[i:i + per])
            out.append("    " + " ".join(cells))
        out.append("};")
        return out

    lines = [
        f"// data/tokenizer_nfc_tables.h: Unicode {unicodedata.unidata_version} tables for NFC",
        "// (data/tokenizer_nfc.c). Generated from Python's unicodedata by",
        "// `tests/tok_ref.py nfc-tables`; do not edit. NFC_DECOMP: canonical decompositions, one",
        "// level, {code point, first, second or 0}, by code point (Hangul syllables are",
        "// algorithmic, not here). NFC_CCC: canonical combining classes other than 0, {first,",
        "// last, class} ranges. NFC_COMP: primary composites, {first, second, composite}, by",
        "// (first, second). NFC_SECOND: ranges of code points that are the second of a primary",
        "// composite.",
        "#pragma once",
        "#include <stdint.h>",
        "",
        "// clang-format off",
    ]
    lines += table("NFC_DECOMP", decomp, 3) + [""] + table("NFC_CCC", ccc, 3) + [""]
    lines += table("NFC_COMP", comp, 3) + [""] + table("NFC_SECOND", sec, 2)
    lines += ["// clang-format on", ""]
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------

STYLES = {"gpt2": 400, "gpt2-prefix": 400, "llama3": 400, "qwen2": 400, "smollm": 400, "mixed": 300}


def fixtures(corpus, tok512, out):
    with open(corpus, encoding="utf-8") as f:
        corpus_lines = f.read().split("\n")
    cases = make_cases(corpus_lines)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "cases.txt"), "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c) + "\n")
    for style, n_merges in STYLES.items():
        tok = build_tokenizer_json(style, corpus_lines + VARIED, n_merges, os.path.join(out, style))
        with open(os.path.join(out, style + ".jsonl"), "w", encoding="utf-8") as f:
            for c in cases:
                ids = tok.encode(c, True)
                pieces = [[p, -1 if t is None else t] for p, t in tok.pieces(c, True)]
                f.write(json.dumps({"ids": ids, "plain": tok.encode(c, False), "pieces": pieces,
                                    "decoded": tok.decode(ids).decode("utf-8")}) + "\n")
    with open(os.path.join(out, "lines.txt"), "w", encoding="utf-8") as f:
        for c in cases:
            if c and "\n" not in c and "\r" not in c and "\x85" not in c and "\u2028" not in c:
                f.write(c + "\n")
    with open(os.path.join(out, "nfc.jsonl"), "w", encoding="utf-8") as f:
        for c in nfc_cases():
            f.write(json.dumps(c) + "\n")
    l2c = Llama2c(tok512)
    with open(os.path.join(out, "llama2c.jsonl"), "w", encoding="utf-8") as f:
        for c in cases:
            ids = l2c.encode(c)
            decoded = l2c.decode([1] + ids).decode("utf-8")
            f.write(json.dumps({"ids": ids, "decoded": decoded}) + "\n")


def main():
    if sys.argv[1] == "fixtures":
        fixtures(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "nfc-tables":
        sys.stdout.write(nfc_tables())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
