"""Offline text engines: deterministic, rule-based, and not language models.

- `local/echo-chat` (chat): answers every prompt the same way, by describing its shape: word, sentence and
  character counts. It never repeats the prompt's words (a published reply must not reveal a private prompt),
  never makes anything up and says what it is.
- `local/text-summary` (text-to-text): an extractive summary: the highest-scoring sentences of the text, in their
  original order, scored by the frequency of their content words (the classic Luhn method).
"""

import math
import re
from collections import Counter

from apps.generations.providers import OutputData, RunResult

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n{2,}")
_APOSTROPHE = "\u2019"
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?", re.UNICODE)
_STOPWORDS_TEXT = """a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves also may might must shall us let get got one two
le la les de des du et un une der die das und ein eine el los las y en que"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
WORDS_PER_MINUTE = 230


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s and s.strip()]


def words(text: str) -> list[str]:
    return [w.lower().replace(_APOSTROPHE, "'") for w in _WORD.findall(text)]


def keywords(text: str, count: int = 5) -> list[str]:
    frequencies = Counter(w for w in words(text) if w not in STOPWORDS and len(w) > 2)
    return [word for word, _ in sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))[:count]]


def summarize(text: str, max_sentences: int = 3) -> list[str]:
    """The `max_sentences` most representative sentences, in the order they appear."""
    parts = sentences(text)
    if len(parts) <= max_sentences:
        return parts
    frequencies = Counter(w for w in words(text) if w not in STOPWORDS)
    if not frequencies:
        return parts[:max_sentences]
    top = max(frequencies.values())

    def score(sentence: str) -> float:
        content = [w for w in words(sentence) if w not in STOPWORDS]
        if not content:
            return 0.0
        return sum(frequencies[w] / top for w in content) / math.sqrt(len(content))

    ranked = sorted(range(len(parts)), key=lambda i: (-score(parts[i]), i))[:max_sentences]
    return [parts[i] for i in sorted(ranked)]


def statistics(text: str) -> dict:
    counted = words(text)
    return {
        "characters": len(text),
        "words": len(counted),
        "sentences": len(sentences(text)),
        "unique_words": len(set(counted)),
        "reading_seconds": math.ceil(len(counted) * 60 / WORDS_PER_MINUTE),
    }


def echo_chat(input: dict) -> RunResult:
    prompt = input["prompt"]
    stats = statistics(prompt)
    lines = [
        "I am KiwiWhale's local echo engine, not an AI model: I cannot answer questions or follow instructions, "
        "but I can describe the shape of what you wrote.",
        "",
        f"Your message has {stats['words']} words in {stats['sentences']} sentence"
        f"{'s' if stats['sentences'] != 1 else ''} ({stats['characters']} characters).",
    ]
    if input.get("system"):
        lines += ["", f"(Your system prompt of {len(words(input['system']))} words was received; a rule-based "
                  "engine does not follow it.)"]  # fmt: skip
    if prompt.rstrip().endswith("?"):
        lines += ["", "To get an answer, pick a chat model served by a provider (see models.php)."]
    reply = "\n".join(lines)
    output = OutputData(type="text", content_type="text/plain", file_name="reply.txt", text=reply)
    return RunResult(outputs=[output], usage={"input_characters": len(prompt), "output_characters": len(reply)})


def text_summary(input: dict) -> RunResult:
    text = input["text"]
    summary = " ".join(summarize(text, input.get("max_sentences", 3)))
    output = OutputData(type="text", content_type="text/plain", file_name="summary.txt", text=summary)
    return RunResult(outputs=[output], usage={**statistics(text), "summary_characters": len(summary)})
