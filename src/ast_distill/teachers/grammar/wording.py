"""Sentence helpers of the built-in teacher: French articles, "de" contractions, elision and gender from
a label; lists joined with a last word; whitespace and punctuation tidied into one sentence."""
from __future__ import annotations

import re
from collections.abc import Sequence

FR_VOWELS = "aeiouyhâàäéèêëîïôöûüœ"


def fr_bare(label: str) -> str:
    for article in ("le ", "la ", "les ", "l'"):
        if label.startswith(article):
            return label[len(article):]
    return label


def fr_gender(label: str) -> str | None:
    """Grammatical gender told by a label's article (None for l' and bare labels)."""
    return "m" if label.startswith("le ") else "f" if label.startswith("la ") else None


def fr_de(label: str) -> str:
    """'de' + a noun phrase with its article: du prix, de la ville, de l'âge, des charges."""
    if label.startswith("le "):
        return "du " + label[3:]
    if label.startswith("les "):
        return "des " + label[4:]
    if label.startswith(("la ", "l'")):
        return "de " + label
    return fr_elide("de", label)


def fr_elide(word: str, following: str) -> str:
    if following[:1].lower() in FR_VOWELS:
        return f"{word[:-1]}'{following}"
    return f"{word} {following}"


def join_words(items: Sequence[str], last: str) -> str:
    items = list(items)
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


def tidy(text: str, lang: str, capitalize: bool = True) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;])", r"\1", text)
    text = re.sub(r",,", ",", text)
    if lang == "fr":
        text = re.sub(r"\s*([?!])$", r" \1", text)
    else:
        text = re.sub(r"\s+([?!])$", r"\1", text)
    return text[:1].upper() + text[1:] if capitalize else text
