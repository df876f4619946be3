"""The built-in teacher for a schema of any shape: sampled instances, phrased in English and French.

A query row is an instance from `instances.InstanceSampler` (valid for the schema, or dropped) and a request
that names every value in it: each leaf (a property path and its value) is written as a short phrase from
templates, with the property's name split into words as its label ("target_celsius" -> "target celsius"), enum
values as words, free text in quotes, numbers, dates and times written several ways, booleans as on/off,
with/without or yes/no; discriminating constants ("action": "lights") lead the request as its verb. Openers,
word order and joiners vary (the register); optional properties the sampler left out are simply not mentioned.
A refusal row asks for something the schema cannot express: an everyday off-topic request, or a setting the
schema has no property for. Crude wording is the price of needing no LLM; the values are always valid.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from ... import dsl
from ...records import REFUSAL
from ...schema_checks import SchemaContext, dict_nodes
from ..base import GeneratedPair, KindShares
from .drafts import draft_pairs, pair
from .instances import InstanceSampler, SampleError

MAX_TRIES_PER_PAIR = 12  # samples of one row before it is given up (duplicates, or a sample that failed)
SMALL_NUMBERS = {"en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
                 "fr": ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix")}
MONTHS = {"en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                 "October", "November", "December"),
          "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
                 "novembre", "décembre")}
OPENERS = {"en": ("", "", "please ", "I'd like ", "can you do this: ", "{title}: ", "new {title}: ", "set ",
                  "I want "),
           "fr": ("", "", "s'il te plaît ", "je voudrais ", "peux-tu faire ceci : ", "{title} : ",
                  "nouveau {title} : ", "mets ", "je veux ")}
LEAF_TEMPLATES = {"en": ("{label} {value}", "{label} {value}", "{label} set to {value}", "{label} = {value}",
                         "with {label} {value}", "{value} as {label}", "{label} to {value}", "{value} {label}"),
                  "fr": ("{label} {value}", "{label} {value}", "{label} à {value}", "{label} : {value}",
                         "avec {label} {value}", "{value} comme {label}", "{value} en {label}")}
# An enum value names its property by itself when no sibling property takes it: often said bare, as people do.
BARE_TEMPLATES = {"en": ("{value}", "the {value}", "in the {value}"), "fr": ("{value}", "le {value}", "dans le {value}")}
JOINERS = {"en": ((", ", " and "), (", ", ", "), ("; ", "; "), (" ", " and ")),
           "fr": ((", ", " et "), (", ", ", "), ("; ", "; "), (" ", " et "))}
SWITCH_WORDS = {"on", "enabled", "enable", "active", "power", "state"}
SWITCH = {("en", True): ("turn on", "switch on", "on"), ("en", False): ("turn off", "switch off", "off"),
          ("fr", True): ("allume", "active", "allumé"), ("fr", False): ("éteins", "désactive", "éteint")}
BOOLEAN = {("en", True): ("with {label}", "{label} yes", "{label}: true"),
           ("en", False): ("without {label}", "{label} no", "{label}: false"),
           ("fr", True): ("avec {label}", "{label} oui", "{label} : vrai"),
           ("fr", False): ("sans {label}", "{label} non", "{label} : faux")}
OFF_TOPIC = {"en": ("What's the weather like tomorrow?", "Write me a short poem about autumn.",
                    "Translate 'good morning' into German.", "Who won the football match yesterday?",
                    "Book me a flight to Lisbon next Friday.", "Tell me a joke.", "What is 17 times 23?",
                    "Summarise the news of the day."),
             "fr": ("Quel temps fera-t-il demain ?", "Écris-moi un petit poème sur l'automne.",
                    "Traduis « bonjour » en allemand.", "Qui a gagné le match hier soir ?",
                    "Réserve-moi un vol pour Lisbonne vendredi prochain.", "Raconte-moi une blague.",
                    "Combien font 17 fois 23 ?", "Résume-moi l'actualité du jour.")}
MISSING_SETTINGS = ("volume", "password", "price", "speed", "budget", "language", "owner", "weather", "playlist",
                    "discount", "font size", "wallpaper")
MISSING_TEMPLATES = {"en": ("set the {name} to {number}", "change the {name} to {number}", "{name} {number} please"),
                     "fr": ("mets le {name} à {number}", "change le {name} à {number}", "{name} {number} s'il te plaît")}
REFUSAL_REASON = "the schema cannot express this request"
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
ISO_TIME = re.compile(r"^(\d{2}):(\d{2})(?::\d{2})?(?:Z|[+-]\d{2}:\d{2})?$")  # the offset goes unsaid
ISO_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2})?)(?:Z|[+-]\d{2}:\d{2})?$")


def words(name: str) -> str:
    """A property or enum name as words: snake_case, kebab-case and camelCase split, lower case."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))
    return re.sub(r"[_\-\s]+", " ", spaced).strip().lower()


@dataclass
class SchemaWords:
    """What the phrasing needs to know of a schema: its title, its enum/const words, its discriminating keys."""
    title: str
    enum_values: set[str]
    discriminators: set[str]
    property_names: set[str]
    owners: dict[str, set[str]]  # enum value -> the properties whose enum holds it

    @classmethod
    def of(cls, schema: dict[str, Any]) -> SchemaWords:
        enum_values: set[str] = set()
        discriminators: set[str] = set()
        names: set[str] = set()
        owners: dict[str, set[str]] = {}

        for node in dict_nodes(schema):
            enum_values.update(str(v) for v in node.get("enum", []) if isinstance(node.get("enum"), list))
            if "const" in node:
                enum_values.add(str(node["const"]))
            properties = node.get("properties")
            for name, child in properties.items() if isinstance(properties, dict) else []:
                names.add(words(name))
                if isinstance(child, dict) and "const" in child:
                    discriminators.add(name)
                for value in enum_of(child, schema):
                    owners.setdefault(value, set()).add(name)
        answer = answer_node(schema)
        title = answer.get("title") or schema.get("title") or "request"
        return cls(words(title), enum_values, discriminators, names, owners)


class Phraser:
    """Writes the request for one instance in one language."""

    def __init__(self, rng: random.Random, lang: str, vocabulary: SchemaWords):
        self.rng, self.lang, self.vocabulary = rng, lang, vocabulary

    def number(self, value: int | float) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int) and 0 <= value <= 10 and self.rng.random() < 0.25:
            return SMALL_NUMBERS[self.lang][value]
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return text.replace(".", ",") if self.lang == "fr" and self.rng.random() < 0.5 else text

    def date(self, year: str, month: str, day: str) -> str:
        name = MONTHS[self.lang][int(month) - 1]
        choices = {"en": (f"{year}-{month}-{day}", f"{name} {int(day)}, {year}", f"{int(day)} {name} {year}"),
                   "fr": (f"{year}-{month}-{day}", f"{int(day)} {name} {year}", f"le {int(day)} {name} {year}")}
        return self.rng.choice(choices[self.lang])

    def time(self, hour: str, minute: str) -> str:
        h, m = int(hour), int(minute)
        if self.lang == "fr":
            return self.rng.choice((f"{hour}:{minute}", f"{h}h{minute}" if m else f"{h}h"))
        twelve = f"{(h - 1) % 12 + 1}{':' + minute if m else ''} {'am' if h < 12 else 'pm'}"
        return self.rng.choice((f"{hour}:{minute}", twelve))

    def text(self, value: str) -> str:
        """A string value: a date, a time, an enum word, or free text in quotes (copied as is)."""
        if found := ISO_DATETIME.match(value):
            day = self.date(*found.group(1).split("-"))
            return f"{day} {'à' if self.lang == 'fr' else 'at'} {self.time(*found.group(2).split(':')[:2])}"
        if found := ISO_DATE.match(value):
            return self.date(*found.groups())
        if found := ISO_TIME.match(value):
            return self.time(*found.groups()[:2])
        if value in self.vocabulary.enum_values and re.fullmatch(r"[A-Za-z0-9_\- ]+", value):
            spoken = words(value)
            return spoken if self.rng.random() < 0.7 else value
        return f'"{value}"'

    def value(self, value: Any) -> str:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.number(value)
        if value is None:
            return "none" if self.lang == "en" else "aucun"
        if isinstance(value, list):
            return self.listing([self.value(v) for v in value])
        if isinstance(value, dict):
            return "(" + self.leaves(value) + ")"
        return str(value).lower()

    def listing(self, parts: list[str]) -> str:
        if not parts:
            return "nothing" if self.lang == "en" else "rien"
        last = " and " if self.lang == "en" else " et "
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + last + parts[-1]

    def leaf(self, key: str, value: Any, siblings: set[str]) -> str:
        label = words(key)
        if isinstance(value, bool):
            if label in SWITCH_WORDS:
                return self.rng.choice(SWITCH[(self.lang, value)])
            return self.rng.choice(BOOLEAN[(self.lang, value)]).format(label=label)
        holders = self.vocabulary.owners.get(value, set()) if isinstance(value, str) else set()
        if key in holders and not holders & (siblings - {key}) and self.rng.random() < 0.5:  # unambiguous here
            return self.rng.choice(BARE_TEMPLATES[self.lang]).format(value=self.value(value))
        return self.rng.choice(LEAF_TEMPLATES[self.lang]).format(label=label, value=self.value(value))

    def leaves(self, obj: dict[str, Any]) -> str:
        leading = [self.value(v) for k, v in obj.items() if k in self.vocabulary.discriminators]
        rest = [(k, v) for k, v in obj.items() if k not in self.vocabulary.discriminators]
        if self.rng.random() < 0.5:
            self.rng.shuffle(rest)
        parts = [self.leaf(k, v, set(obj)) for k, v in rest]
        between, last = self.rng.choice(JOINERS[self.lang])
        body = parts[0] if len(parts) == 1 else (between.join(parts[:-1]) + last + parts[-1] if parts else "")
        head = " ".join(leading)
        if not (head and body):
            return head or body
        if self.rng.random() < 0.3:  # the verb last, as in "turn off the kitchen lights"
            return body + " " + head
        return head + self.rng.choice((" ", ": " if self.lang == "en" else " : ", ", ")) + body

    def request(self, instance: Any) -> str:
        opener = self.rng.choice(OPENERS[self.lang]).format(title=self.vocabulary.title)
        body = self.leaves(instance) if isinstance(instance, dict) else self.value(instance)
        text = (opener + body).strip()
        return text[:1].upper() + text[1:]


def enum_of(node: Any, schema: dict[str, Any]) -> list[str]:
    """The string values a property's enum allows (through one local $ref, and array items), else []."""
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = schema
        for part in node["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target
    if isinstance(node.get("items"), dict):
        return enum_of(node["items"], schema)
    return [v for v in node.get("enum", []) if isinstance(v, str)] if isinstance(node.get("enum"), list) else []


def answer_node(schema: dict[str, Any]) -> dict[str, Any]:
    """The part of a d_02 schema that answers (the user's own schema inside dsl.with_refusal's wrapper)."""
    branches = schema.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and branches[1] == dsl.REFUSAL_SCHEMA:
        return branches[0]
    return schema


def refusal(rng: random.Random, lang: str, vocabulary: SchemaWords) -> tuple[str, dict[str, Any]]:
    """An off-topic request, or a setting the schema has no property for; the refusal AST."""
    missing = [name for name in MISSING_SETTINGS if name not in vocabulary.property_names]
    if missing and rng.random() < 0.5:
        name = rng.choice(missing)
        query = rng.choice(MISSING_TEMPLATES[lang]).format(name=name, number=rng.randint(2, 90))
        suggestion = f"ask for a {vocabulary.title} with the properties it has ({name} is not one)"
    else:
        query = rng.choice(OFF_TOPIC[lang])
        suggestion = f"ask for a {vocabulary.title}"
    ast = {"type": REFUSAL, "reason": REFUSAL_REASON, "suggestion": suggestion[:160]}
    return query[:1].upper() + query[1:], ast


def generic_pairs(schema: dict[str, Any], n: int, refusal_fraction: float,
                  rng: random.Random) -> list[GeneratedPair]:
    """About n pairs for a schema of any shape: sampled instances phrased EN/FR, and refusals when the schema
    admits one. Every AST kept is valid for `schema`; requests are distinct up to case and punctuation."""
    validator = dsl.validator_for(schema)
    sampler = InstanceSampler(schema, rng, context=SchemaContext(validator))
    answer = answer_node(schema)
    vocabulary = SchemaWords.of(schema)
    can_refuse = validator.is_valid(dsl.SAMPLE_REFUSAL)

    def write(kind: str, lang: str) -> list[GeneratedPair] | None:
        if kind == REFUSAL:
            return [pair(refusal(rng, lang, vocabulary), lang)]
        try:
            ast = sampler.sample(answer)
        except (SampleError, RecursionError):
            return None
        if not validator.is_valid(ast) or (isinstance(ast, dict) and ast.get("type") == REFUSAL):
            return None
        return [pair((Phraser(rng, lang, vocabulary).request(ast), ast), lang)]

    # A schema of any shape gets queries and refusals only: asking back needs the project's DSL (its Clarification
    # answer) and the field words the context writers use.
    shares = KindShares(refusal=refusal_fraction if can_refuse else 0.0, clarification=0.0, context=0.0)
    return draft_pairs(n, shares, rng, write, MAX_TRIES_PER_PAIR)
