#!/usr/bin/python3
"""Makes the story-continuation datasets of recipes/stories260k.yaml from the TinyStories
paragraphs in tinystories-train-head.txt (deterministic; rerun to regenerate the .jsonl files).

  sft.jsonl    {"prompt": first sentence of a paragraph, "completion": the next sentence}
  pref.jsonl   {"prompt": ..., "chosen": the next sentence, "rejected": its words shuffled}
  prompts.jsonl{"prompt": ..., "completion": the next sentence}  (held-out paragraphs, for eval)

Paragraphs are split into sentences at ". ", "! " and "? "; paragraphs with fewer than two
sentences, or sentences longer than 160 characters, are skipped. The last 10% of the usable
paragraphs are held out for prompts.jsonl.
"""
import json
import random
import re

rng = random.Random(260)
paras = [p.strip() for p in open("tinystories-train-head.txt", encoding="utf-8").read().split("\n\n")]
pairs = []
for p in paras:
    s = [x.strip() for x in re.split(r"(?<=[.!?])\s+", p) if x.strip()]
    if len(s) < 2 or max(len(s[0]), len(s[1])) > 160 or len(s[1].split()) < 4:
        continue
    pairs.append((s[0], s[1]))
held = len(pairs) // 10
train, test = pairs[:-held], pairs[-held:]


def shuffled(text):
    words = text.split()
    for _ in range(10):
        rng.shuffle(words)
        if " ".join(words) != text:
            break
    return " ".join(words)


with open("sft.jsonl", "w", encoding="utf-8") as f:
    for p, c in train:
        f.write(json.dumps({"prompt": p, "completion": c}, ensure_ascii=False) + "\n")
with open("pref.jsonl", "w", encoding="utf-8") as f:
    for p, c in train:
        f.write(json.dumps({"prompt": p, "chosen": c, "rejected": shuffled(c)}, ensure_ascii=False) + "\n")
with open("prompts.jsonl", "w", encoding="utf-8") as f:
    for p, c in test:
        f.write(json.dumps({"prompt": p, "completion": c}, ensure_ascii=False) + "\n")
print(len(train), "train pairs,", len(test), "held-out prompts")
