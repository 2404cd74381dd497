"""The ``datasets:`` entries of ``pipeline.yaml``: where the data comes from and how its values reach the models
(text tokenizers, rescale, per-channel normalisation, class names). Checks here need only the file's text;
channels, labels and files are checked when the data is opened (sources/loaders.py)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from deeprep_report.config.fields import Strict, entry_name


class TokenizerSpec(Strict):
    """How raw text becomes token ids (keras-hub tokenizers, offline; docs/text.md)."""

    kind: Literal["byte", "codepoint", "wordpiece", "preset"] = Field(
        description="byte: UTF-8 bytes; codepoint: Unicode code points; wordpiece: a vocabulary file; preset: the "
                    "tokenizer of a keras-hub or Hugging Face folder (e.g. a BERT vocab.txt beside config.json).")
    path: str | None = Field(
        None, description="wordpiece: the vocabulary file; preset: the folder, or 'package:<module>/<sub/path>' for "
                          "a folder inside an installed package.")
    lowercase: bool = Field(True, description="wordpiece: lowercase text first.")

    @model_validator(mode="after")
    def _path_when_needed(self) -> "TokenizerSpec":
        if self.kind in ("wordpiece", "preset") and not self.path:
            raise ValueError(f"tokenizer kind {self.kind!r} needs a path")
        if self.kind in ("byte", "codepoint") and self.path:
            raise ValueError(f"path applies to wordpiece and preset tokenizers, not to {self.kind!r}")
        if self.kind == "preset" and not self.lowercase:
            raise ValueError("lowercase applies to wordpiece, byte and codepoint; a preset's tokenizer keeps its own")
        return self


Finite = Annotated[float, Field(allow_inf_nan=False)]


class NormalizeSpec(Strict):
    """Per-channel standardisation after ``rescale``: ``(x * rescale - mean) / std`` in float32, the channels on
    the input's last axis; one value stands for every channel."""

    mean: list[Finite] = Field(min_length=1, description="Subtracted per channel (last axis), or one value for "
                                                          "every channel, e.g. [0.485, 0.456, 0.406].")
    std: list[Finite] = Field(min_length=1, description="Divided by per channel, > 0, or one value for every "
                                                         "channel, e.g. [0.229, 0.224, 0.225].")

    @field_validator("std")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        bad = next((v for v in value if not v > 0), None)
        if bad is not None:
            raise ValueError(f"expected every std > 0, got {bad!r}")
        return value

    @model_validator(mode="after")
    def _lengths(self) -> "NormalizeSpec":
        if len(self.mean) > 1 and len(self.std) > 1 and len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values and std {len(self.std)}; give each one value per "
                             "channel, or one value for every channel")
        return self


class DatasetSpec(Strict):
    """One dataset to push through the models; exactly one of ``path`` and ``builtin``."""

    name: str | None = Field(None, description="Name used in outputs; defaults to the source's name.")
    path: str | None = Field(
        None, description="A .npz or .h5 file with array x (and optional labels y), an image folder, or text: "
                          ".txt (one sample per line), .jsonl or .csv (named text and label fields).")
    builtin: Literal["digits", "digits_mirrored", "docstrings"] | None = Field(
        None, description="A dataset shipped with the tool: the digits, the digits half mirrored (label: mirrored), "
                          "or docstrings (first paragraphs of numpy, scipy, scikit-learn and matplotlib functions' "
                          "docstrings; label: library; needs a tokenizer).")
    limit: int | None = Field(None, ge=1, description="Use at most this many samples.")
    batch_size: int = Field(64, ge=1, description="Samples per forward pass; bounds memory.")
    shuffle: bool = Field(True, description="Pick samples in a seeded random order (run.seed).")
    x: str | dict[str, str] | None = Field(
        None,
        description="Array holding the model input ('x' by default), or a mapping model-input-name -> array.",
    )
    y: str | None = Field(None, description="Array holding integer labels; default 'y' when present.")
    image_size: tuple[int, int] | None = Field(
        None, description="Image folders: resize to [height, width]; default the first image's size."
    )
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field("rgb", description="Image folders: channels.")
    rescale: float = Field(1.0, description="Image folders and .npz/.h5 arrays: multiply input values (as float32), "
                                            "e.g. 1/255.")
    normalize: NormalizeSpec | None = Field(
        None, description="Image folders and .npz/.h5 arrays: after rescale, (x * rescale - mean) / std per channel "
                          "(the last axis), in float32.")
    class_names: list[str] | str | None = Field(
        None, description="Names of integer labels 0..K-1, in order: a list, or a text file with one name per line "
                          "(relative to the pipeline file).")
    tokenizer: TokenizerSpec | None = Field(None, description="Text: how text becomes token ids.")
    sequence_length: int | None = Field(
        None, ge=2, description="Text: tokens per sample, start/end tokens included; longer texts are cut at the "
                                "end (counted in the log), shorter ones padded at the end.")
    text_field: str = Field("text", description=".jsonl/.csv: the field holding the text.")
    label_field: str | None = Field(
        "label", description=".jsonl/.csv: the field holding the label (absent from every record: no labels).")
    mask: str | None = Field(
        None, description="Token arrays: an array (N, T) that is nonzero at real tokens and 0 at padding.")
    pad_id: int | None = Field(None, ge=0, description="Token arrays: the padding id (mask = ids != pad_id).")
    vocabulary: str | None = Field(
        None, description="Token arrays: an array of strings, token id -> token, for the report's contexts.")
    token_labels: list[str] = Field(
        default_factory=list, description="Token arrays: arrays (N, T) of integer labels per token, probed at "
                                          "token level.")

    _name = field_validator("name")(lambda value: entry_name(value))

    @field_validator("rescale", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*([0-9.]+)\s*/\s*([0-9.]+)\s*", value)
            if match and float(match.group(2)) != 0:
                return float(match.group(1)) / float(match.group(2))
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetSpec":
        given = [k for k in ("path", "builtin") if getattr(self, k) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(f"give exactly one of path, builtin (got {got})")
        text = self.builtin == "docstrings" or str(self.path or "").lower().endswith((".txt", ".jsonl", ".csv"))
        if text and (self.tokenizer is None or self.sequence_length is None):
            raise ValueError("text needs a tokenizer and a sequence_length")
        if not text and self.tokenizer is not None:
            raise ValueError("tokenizer applies only to text (.txt, .jsonl, .csv or builtin docstrings)")
        self._only_where_it_applies(text)
        if self.mask is not None and self.pad_id is not None:
            raise ValueError("give mask or pad_id, not both")
        if self.name is None:
            source = self.builtin or str(self.path)
            self.name = re.split(r"[/\\]", source.rstrip("/\\"))[-1].split(".")[0] or "dataset"
        return self

    def scaling(self) -> list[str]:
        """The input-scaling keys this entry sets (``rescale`` not 1, ``normalize``), in the order they apply."""
        return [key for key, set_ in (("rescale", self.rescale != 1.0), ("normalize", self.normalize is not None))
                if set_]

    def _only_where_it_applies(self, text: bool) -> None:
        """A key that would be accepted and ignored is refused (nothing silent). Compared with the defaults, not
        with the keys given: the resolved pipeline.yaml of a run folder spells every default out."""
        defaults = {name: field.get_default(call_default_factory=True) for name, field in type(self).model_fields.items()}
        given = {name for name in defaults if getattr(self, name) != defaults[name]}
        arrays = [k for k in ("mask", "pad_id", "vocabulary", "token_labels") if k in given]
        if text and arrays:
            raise ValueError(f"{arrays[0]} applies to token arrays (.npz, .h5), not to text, whose tokenizer pads")
        fields = [k for k in ("text_field", "label_field") if k in given]
        jsonl_or_csv = str(self.path or "").lower().endswith((".jsonl", ".csv"))
        if fields and not jsonl_or_csv:
            raise ValueError(f"{fields[0]} applies to .jsonl and .csv files")
        scaling = self.scaling()
        if scaling and (text or self.builtin is not None):
            raise ValueError(f"{scaling[0]} applies to image folders and .npz/.h5 arrays")
        if "class_names" in given and self.builtin is not None:
            raise ValueError("class_names applies to integer labels of files (.npz, .h5, .txt, .jsonl, .csv); "
                             "built-in data names its classes")
        if not text and self.sequence_length is not None:
            raise ValueError("sequence_length applies to text; token arrays keep their own length")
        folder_only = [k for k in ("image_size", "color_mode") if k in given]
        files = str(self.path or "").lower().endswith((".npz", ".h5", ".hdf5", ".txt", ".jsonl", ".csv"))
        if folder_only and (files or self.builtin is not None):
            raise ValueError(f"{folder_only[0]} applies to image folders; arrays and text keep their own shape")
