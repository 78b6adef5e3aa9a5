"""The one word pattern: lower-case runs of letters and digits, with an English clitic kept on ("don't").

The word tokenizer (and its exported Rust `tokenizers` copy), the Deep Memory bag-of-words embeddings and the
search highlighter all split text with it, so a word means the same thing everywhere.
"""

from __future__ import annotations

import re

# Applied to lower-cased text. Changing it changes every word-vocabulary checkpoint's tokenisation: don't.
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """`text`'s words, lower-cased, in order (punctuation dropped)."""
    return WORD.findall(text.lower())


# The one deliberate exception: GloVe's vocabulary comes from a tokenizer that split clitics off ("company 's"),
# so it knows "company" but not "company's". Looking GloVe up with WORD would lose every such word (0.5% of the
# words and 18% of the passages of MS MARCO); for GloVe look-ups a word stops at the apostrophe.
GLOVE_WORD = re.compile(r"[a-z0-9]+")


def glove_words(text: str) -> list[str]:
    """`text`'s words as GloVe's vocabulary spells them: lower-cased, split at apostrophes."""
    return GLOVE_WORD.findall(text.lower())
