"""A standard CLIP BPE tokenizer whose vocabulary holds every caption word as one token.

The files are the usual `vocab.json` + `merges.txt`, so `CLIPTokenizer.from_pretrained` loads them
like any checkpoint's. The vocabulary also holds all 256 byte-level symbols (alone and as word
ends), so any text still tokenizes; unknown words just fall apart into characters.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
END = "</w>"


def byte_symbols() -> list[str]:
    """The GPT-2/CLIP byte-level alphabet: printable bytes stand for themselves, the others are
    shifted above 255 so that every byte has a visible symbol."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols, shift = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + shift)
            shift += 1
    return [symbols[b] for b in range(256)]


def _apply_merges(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Plain BPE: repeatedly merge the adjacent pair with the lowest merge rank."""
    pieces = list(word[:-1]) + [word[-1] + END]
    while len(pieces) > 1:
        rank, i = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(pieces, pieces[1:])))
        if rank == len(ranks):
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2 :]
    return pieces


def _build(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    alphabet = byte_symbols()
    tokens: list[str] = alphabet + [s + END for s in alphabet]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    # Add the merge each word still needs until every word is a single token; a new merge can
    # change how earlier words split, hence the outer loop to a fixed point.
    changed = True
    while changed:
        changed = False
        for word in words:
            pieces = _apply_merges(word, ranks)
            while len(pieces) > 1:
                pair = (pieces[0], pieces[1])
                ranks[pair] = len(merges)
                merges.append(pair)
                tokens.append(pair[0] + pair[1])
                pieces = _apply_merges(word, ranks)
                changed = True
    seen: set[str] = set()
    unique = [t for t in tokens if not (t in seen or seen.add(t))]
    unique += [BOS, EOS]
    return {t: i for i, t in enumerate(unique)}, merges


def write_tokenizer_files(words: list[str], folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _build(words)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def build_tokenizer(words: list[str], folder: str | Path, max_length: int = 77) -> CLIPTokenizer:
    """Write the files and load them back the standard way; checks each word is one token.
    `max_length` is the padded prompt length (CLIP's 77 by default)."""
    write_tokenizer_files(words, folder)
    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length)
    for word in words:
        ids = tok(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise RuntimeError(f"tokenizer splits {word!r} into {len(ids)} tokens")
    return tok
