"""Texts the encoder tests, the golden values and the FlagEmbedding parity check share."""

from __future__ import annotations

LONG_TEXT = " ".join(
    f"Sentence {i} about vector databases, hybrid search and the river valley." for i in range(400)
)

SAMPLE_TEXTS: list[str] = [
    "Artificial intelligence is transforming global society.",
    "人工智能正在改变全球社会。",
    "人工知能は世界の社会を変えつつある。",
    "الذكاء الاصطناعي يغير المجتمع العالمي.",
    "Искусственный интеллект меняет мировое общество.",
    "Emoji travel everywhere 🚀🌍🤖 and people love them 😀",
    "",
    "   ",
    "\t\n  \n",
    "Tabs\tand\nnewlines  and    spaces.",
    "the the the river river the",  # repeated tokens: sparse keeps the max weight per id
    "ÿ ǅ ﬁ ① Ⅻ ｆｕｌｌｗｉｄｔｈ",  # NFKC-normalised characters
    LONG_TEXT,  # longer than the max_length used in the tests: truncated
]

# Shorter than LONG_TEXT's token count, so truncation is exercised.
TEST_MAX_LENGTH = 128
