"""Text to token ids, offline, through keras-hub's tokenizers (docs/text.md).

Four kinds: ``byte`` (UTF-8 bytes), ``codepoint`` (Unicode code points),
``wordpiece`` (a vocabulary file, one token per line) and ``preset`` (the
tokenizer of a keras-hub preset folder or a Hugging Face folder keras-hub reads,
e.g. a BERT ``vocab.txt`` beside its ``config.json``). A preset tokenizer's
start and end tokens (BERT's ``[CLS]``/``[SEP]``) are added as its model was
trained with them; the others add none. Sequences are cut at the end to
``sequence_length`` (counted, and logged) and padded at the end; the padding
mask comes from the packer, never from guessing a pad id.

Why keras-hub and not code of our own: its WordPiece and BERT tokenizers are the
ones the keras-hub models were trained with (an off-by-one in a home-made
tokenizer silently changes every number), and it reads Hugging Face folders offline.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("byte", "codepoint", "wordpiece", "preset")
#: Texts tokenised per call: bounds the ragged intermediate tensors.
_CHUNK = 512


@dataclass
class TokenArrays:
    """Tokenised, packed text: what a text dataset holds besides its labels."""

    token_ids: np.ndarray  # (N, T) int32
    padding_mask: np.ndarray  # (N, T) bool, True at real tokens
    vocabulary: list[str]  # id -> token string
    special_ids: list[int] = field(default_factory=list)  # start/end/pad tokens: real, but not words
    truncated: int = 0  # samples cut to sequence_length


@dataclass
class TextTokenizer:
    """A keras-hub tokenizer plus the ids it packs around each text."""

    kind: str
    tokenizer: Any
    vocabulary: list[str]
    start_id: int | None
    end_id: int | None
    pad_id: int

    def encode(self, texts: Sequence[str], sequence_length: int) -> TokenArrays:
        """Token ids and mask of ``texts`` (N, sequence_length), cut at the end and padded at the end."""
        budget = sequence_length - (self.start_id is not None) - (self.end_id is not None)
        if budget < 1:
            raise ValueError(f"sequence_length {sequence_length} leaves no room for a token between the start and "
                             "end tokens")
        ids = np.full((len(texts), sequence_length), self.pad_id, dtype=np.int32)
        mask = np.zeros((len(texts), sequence_length), dtype=bool)
        truncated = 0
        for start in range(0, len(texts), _CHUNK):
            for offset, tokens in enumerate(self._tokenize(texts[start : start + _CHUNK])):
                truncated += len(tokens) > budget
                row = ([self.start_id] if self.start_id is not None else []) + list(tokens[:budget])
                row += [self.end_id] if self.end_id is not None else []
                ids[start + offset, : len(row)] = row
                mask[start + offset, : len(row)] = True
        specials = sorted({i for i in (self.start_id, self.end_id) if i is not None}
                          | ({self.pad_id} if self._pad_is_special() else set()))
        vocabulary = self.vocabulary or [_codepoint_name(i) for i in range(int(ids.max()) + 1 if ids.size else 1)]
        return TokenArrays(ids, mask, vocabulary, specials, int(truncated))

    def _pad_is_special(self) -> bool:
        """Whether the pad id is a token of its own ([PAD], byte 0), not a real token lent to padding."""
        if self.kind in ("byte", "codepoint"):
            return True
        token = self.vocabulary[self.pad_id] if self.pad_id < len(self.vocabulary) else ""
        return token.startswith("[") or token.startswith("<")

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        import tensorflow as tf

        ragged = self.tokenizer(tf.constant(list(texts)))
        return [list(map(int, row)) for row in ragged.to_list()] if hasattr(ragged, "to_list") else ragged


def package_path(reference: str) -> Path:
    """``package:<module>/<sub/path>`` -> the folder inside an installed package; other strings are paths."""
    if not reference.startswith("package:"):
        return Path(reference).expanduser()
    module, _, inner = reference[len("package:"):].partition("/")
    found = importlib.util.find_spec(module) if module else None
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"no installed package {module!r}")
    return Path(next(iter(found.submodule_search_locations))) / inner


def load_tokenizer(kind: str, path: Path | None = None, lowercase: bool = True) -> TextTokenizer:
    """Build a tokenizer of ``kind`` (``path``: the vocabulary file or preset folder). Raises ValueError."""
    import keras_hub

    if kind == "byte":
        return TextTokenizer(kind, keras_hub.tokenizers.ByteTokenizer(lowercase=lowercase),
                             [_byte_name(i) for i in range(256)], None, None, 0)
    if kind == "codepoint":  # every code point its own id (no clamping); the vocabulary is cut to the ids seen
        tokenizer = keras_hub.tokenizers.UnicodeCodepointTokenizer(lowercase=lowercase)
        return TextTokenizer(kind, tokenizer, [], None, None, 0)
    if path is None:
        raise ValueError(f"tokenizer kind {kind!r} needs a path")
    if kind == "wordpiece":
        if not path.is_file():
            raise ValueError(f"no vocabulary file {str(path)!r}")
        vocabulary = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, lowercase=lowercase)
        pad = vocabulary.index("[PAD]") if "[PAD]" in vocabulary else 0  # without one, 0 (the mask says padding)
        return TextTokenizer(kind, tokenizer, vocabulary, None, None, pad)
    if not path.is_dir():
        raise ValueError(f"no preset folder {str(path)!r}")
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(path))
    vocabulary = list(tokenizer.get_vocabulary())
    start = _first_id(tokenizer, "cls_token_id", "start_token_id", "bos_token_id")
    end = _first_id(tokenizer, "sep_token_id", "end_token_id", "eos_token_id")
    pad = _first_id(tokenizer, "pad_token_id")
    return TextTokenizer(kind, tokenizer, vocabulary, start, end, 0 if pad is None else pad)


def _first_id(tokenizer: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def _byte_name(value: int) -> str:
    character = chr(value)
    return character if character.isprintable() else f"\\x{value:02x}"


def _codepoint_name(value: int) -> str:
    character = chr(value)
    return character if character.isprintable() else f"\\u{value:04x}"

