"""Phrase banks of the built-in teacher: the English and French templates of comparisons, request verbs and
aggregates, and the write operations refusals are written from. Only words live here; clauses.py,
realizer.py and refusals.py choose among them.

{f} = field label, {v} = value, {a}/{b} = range ends, {list}/{or_list}/{nor_list} = values.
"""
from __future__ import annotations

# The entity noun when a spec names none.
FALLBACK_ENTITY = {"en": ["records", "items"], "fr": ["enregistrements", "éléments"], "fr_gender": "m"}

EN_PRED: dict[str, list[str]] = {
    "eq": ["is {v}", "equals {v}", "is exactly {v}", "is equal to {v}"],
    "ne": ["is not {v}", "isn't {v}", "is anything but {v}", "is different from {v}", "is other than {v}"],
    "gt": ["is above {v}", "is greater than {v}", "exceeds {v}", "is more than {v}", "is over {v}",
           "is higher than {v}"],
    "gte": ["is at least {v}", "is {v} or more", "is no less than {v}", "is greater than or equal to {v}",
            "is {v} or higher"],
    "lt": ["is below {v}", "is less than {v}", "is under {v}", "is lower than {v}", "is smaller than {v}"],
    "lte": ["is at most {v}", "is {v} or less", "does not exceed {v}", "is no more than {v}",
            "is less than or equal to {v}"],
    "between": ["is between {a} and {b}", "ranges from {a} to {b}", "lies between {a} and {b}",
                "is from {a} to {b}", "is between {a} and {b} inclusive"],
    "in": ["is {or_list}", "is one of {list}", "is any of {list}", "is either {or_list}", "is in {list}"],
    "not_in": ["is not {or_list}", "is none of {list}", "is not one of {list}", "is not in {list}",
               "is neither {nor_list}"],
    "contains": ["contains {v}", "includes {v}", "mentions {v}", "has {v} in it"],
    "starts_with": ["starts with {v}", "begins with {v}"],
    "ends_with": ["ends with {v}", "finishes with {v}"],
    "before": ["is before {v}", "is earlier than {v}", "falls before {v}", "is prior to {v}"],
    "after": ["is after {v}", "is later than {v}", "falls after {v}", "comes after {v}"],
}
EN_DATE_PRED: dict[str, list[str]] = {
    "eq": ["is {v}", "is on {v}", "falls on {v}"],
    "ne": ["is not {v}", "is not on {v}", "is any day but {v}"],
    "gt": EN_PRED["after"], "lt": EN_PRED["before"],
    "gte": ["is on or after {v}", "is {v} or later", "is no earlier than {v}"],
    "lte": ["is on or before {v}", "is {v} or earlier", "is no later than {v}"],
    "between": ["is between {a} and {b}", "falls between {a} and {b}", "is from {a} to {b}"],
}
EN_WITH: dict[str, list[str]] = {
    "eq": ["with {f} {v}", "with {f} equal to {v}", "with {f} set to {v}", "having {f} {v}"],
    "ne": ["with {f} other than {v}", "with {f} not equal to {v}", "with {f} different from {v}"],
    "gt": ["with {f} above {v}", "with {f} over {v}", "with {f} greater than {v}", "with {f} higher than {v}"],
    "gte": ["with {f} of at least {v}", "with {f} of {v} or more", "with {f} no lower than {v}"],
    "lt": ["with {f} below {v}", "with {f} under {v}", "with {f} less than {v}"],
    "lte": ["with {f} of at most {v}", "with {f} of {v} or less", "with {f} up to {v}"],
    "between": ["with {f} between {a} and {b}", "with {f} from {a} to {b}"],
    "in": ["with {f} {or_list}", "with {f} in {list}"],
    "not_in": ["with {f} not in {list}", "with {f} other than {or_list}"],
    "contains": ["with {v} in the {f}", "with {f} containing {v}", "with {f} mentioning {v}"],
    "starts_with": ["with {f} starting with {v}", "with {f} beginning with {v}"],
    "ends_with": ["with {f} ending with {v}", "with {f} ending in {v}"],
    "before": ["with {f} before {v}", "with {f} earlier than {v}"],
    "after": ["with {f} after {v}", "with {f} later than {v}"],
}
EN_DATE_WITH: dict[str, list[str]] = {
    "eq": ["with {f} on {v}"], "ne": ["with {f} not on {v}"],
    "gt": EN_WITH["after"], "lt": EN_WITH["before"],
    "gte": ["with {f} on or after {v}", "with {f} from {v} onwards"],
    "lte": ["with {f} on or before {v}", "with {f} up to {v}"],
    "between": ["with {f} between {a} and {b}", "with {f} from {a} to {b}"],
}
EN_TERSE: dict[str, list[str]] = {
    "eq": ["{f} = {v}", "{f}: {v}", "{f} is {v}"],
    "ne": ["{f} != {v}", "{f} <> {v}", "{f} not {v}"],
    "gt": ["{f} > {v}", "{f} over {v}", "{f} above {v}"],
    "gte": ["{f} >= {v}", "{f} at least {v}", "{f} {v}+"],
    "lt": ["{f} < {v}", "{f} under {v}", "{f} below {v}"],
    "lte": ["{f} <= {v}", "{f} at most {v}", "{f} up to {v}"],
    "between": ["{f} between {a} and {b}", "{f} {a} to {b}", "{f} in [{a}, {b}]"],
    "in": ["{f} in ({list})", "{f}: {or_list}", "{f} = {or_list}"],
    "not_in": ["{f} not in ({list})", "{f} none of {list}"],
    "contains": ["{f} contains {v}", "{f} ~ {v}", "{f} has {v}"],
    "starts_with": ["{f} starts with {v}", "{f} prefix {v}"],
    "ends_with": ["{f} ends with {v}", "{f} suffix {v}"],
    "before": ["{f} before {v}", "{f} < {v}"],
    "after": ["{f} after {v}", "{f} > {v}"],
}
EN_DATE_TERSE: dict[str, list[str]] = {
    "gt": EN_TERSE["after"], "lt": EN_TERSE["before"],
    "gte": ["{f} >= {v}", "{f} from {v}"], "lte": ["{f} <= {v}", "{f} until {v}"],
    "between": ["{f} between {a} and {b}", "{f} from {a} to {b}"],
}

FR_PRED: dict[str, list[str]] = {
    "eq": ["est {v}", "correspond à {v}"],
    "ne": ["n'est pas {v}", "est autre que {v}"],
    "gt": ["dépasse {v}", "est au-dessus de {v}", "est de plus de {v}", "excède {v}"],
    "gte": ["est d'au moins {v}", "vaut au moins {v}", "atteint au moins {v}", "est de {v} ou plus"],
    "lt": ["est en dessous de {v}", "est de moins de {v}", "n'atteint pas {v}", "reste sous {v}"],
    "lte": ["est d'au plus {v}", "ne dépasse pas {v}", "vaut au plus {v}", "est de {v} ou moins"],
    "between": ["est entre {a} et {b}", "va de {a} à {b}", "se situe entre {a} et {b}"],
    "in": ["est {or_list}", "fait partie de {list}", "est parmi {list}", "est soit {or_list}"],
    "not_in": ["n'est ni {nor_list}", "ne fait pas partie de {list}", "n'est pas parmi {list}"],
    "contains": ["contient {v}", "inclut {v}", "mentionne {v}", "comporte {v}"],
    "starts_with": ["commence par {v}", "débute par {v}"],
    "ends_with": ["se termine par {v}", "finit par {v}"],
    "before": ["est avant le {v}", "tombe avant le {v}", "précède le {v}"],
    "after": ["est après le {v}", "tombe après le {v}", "vient après le {v}"],
}
FR_NUM_PRED: dict[str, list[str]] = {  # no adjective here: it would have to agree with the label's gender
    "eq": ["est de {v}", "vaut {v}"],
    "ne": ["ne vaut pas {v}", "n'est pas de {v}"],
}
FR_DATE_PRED: dict[str, list[str]] = {
    "eq": ["est le {v}", "tombe le {v}"],
    "ne": ["n'est pas le {v}", "tombe un autre jour que le {v}"],
    "gt": FR_PRED["after"], "lt": FR_PRED["before"],
    "gte": ["est le {v} ou après", "est au plus tôt le {v}", "est à partir du {v}"],
    "lte": ["est le {v} ou avant", "est au plus tard le {v}", "va jusqu'au {v}"],
    "between": ["est entre le {a} et le {b}", "va du {a} au {b}", "se situe entre le {a} et le {b}"],
}
FR_WITH: dict[str, list[str]] = {
    "eq": ["ayant pour {bare} {v}", "avec {f} à {v}"],
    "gt": ["avec {f} au-dessus de {v}"],
    "gte": ["avec {f} d'au moins {v}"],
    "lt": ["avec {f} en dessous de {v}"],
    "lte": ["avec {f} d'au plus {v}"],
    "between": ["avec {f} entre {a} et {b}"],
    "in": ["ayant pour {bare} {or_list}"],
    "contains": ["avec {v} dans {f}"],
    "before": ["avec {f} avant le {v}"],
    "after": ["avec {f} après le {v}"],
}
FR_DATE_WITH: dict[str, list[str]] = {
    "gt": FR_WITH["after"], "lt": FR_WITH["before"],
    "gte": ["avec {f} à partir du {v}"], "lte": ["avec {f} jusqu'au {v}"],
    "between": ["avec {f} du {a} au {b}"], "eq": ["avec {f} le {v}"],
}
FR_TERSE: dict[str, list[str]] = {
    "eq": ["{f} = {v}", "{f} : {v}"],
    "ne": ["{f} != {v}", "{f} <> {v}", "{f} sauf {v}"],
    "gt": ["{f} > {v}", "{f} plus de {v}"],
    "gte": ["{f} >= {v}", "{f} au moins {v}"],
    "lt": ["{f} < {v}", "{f} moins de {v}"],
    "lte": ["{f} <= {v}", "{f} jusqu'à {v}"],
    "between": ["{f} entre {a} et {b}", "{f} de {a} à {b}"],
    "in": ["{f} dans ({list})", "{f} = {or_list}"],
    "not_in": ["{f} hors ({list})", "{f} pas dans ({list})"],
    "contains": ["{f} contient {v}", "{f} ~ {v}"],
    "starts_with": ["{f} commence par {v}"],
    "ends_with": ["{f} finit par {v}"],
    "before": ["{f} avant {v}", "{f} < {v}"],
    "after": ["{f} après {v}", "{f} > {v}"],
}
FR_DATE_TERSE: dict[str, list[str]] = {
    "gt": FR_TERSE["after"], "lt": FR_TERSE["before"],
    "gte": ["{f} >= {v}", "{f} à partir du {v}"], "lte": ["{f} <= {v}", "{f} jusqu'au {v}"],
    "between": ["{f} entre {a} et {b}", "{f} du {a} au {b}"],
}

EN_VERBS = ["Show", "Show me", "List", "Find", "Get", "Give me", "Display", "Fetch", "Pull up", "Look up",
            "Return", "Retrieve", "I want", "I need", "I'd like", "Please show", "Please list", "Bring up"]
EN_ASK = ["Can you show me", "Could you list", "Can you find", "Could you pull up", "Would you fetch",
          "Can I see", "Could I get", "Can you give me"]
FR_VERBS = {"tu": ["Montre", "Montre-moi", "Affiche", "Liste", "Trouve", "Donne-moi", "Cherche", "Sors-moi",
                   "Récupère", "Je veux", "J'aimerais voir", "Il me faut"],
            "vous": ["Affichez", "Listez", "Montrez-moi", "Donnez-moi", "Veuillez afficher", "Merci d'afficher",
                     "Merci de lister", "Je souhaiterais voir"]}
FR_ASK = {"tu": ["Peux-tu me montrer", "Tu peux lister", "Est-ce que tu peux trouver", "Tu peux me sortir",
                 "Pourrais-tu chercher"],
          "vous": ["Pouvez-vous afficher", "Pourriez-vous me donner", "Pourriez-vous lister",
                   "Est-ce que vous pouvez trouver"]}

EN_AGG = {"sum": ["total {f}", "sum of the {f}", "combined {f}"], "avg": ["average {f}", "mean {f}"],
          "min": ["lowest {f}", "minimum {f}", "smallest {f}"], "max": ["highest {f}", "maximum {f}", "largest {f}"]}
EN_DATE_AGG = {"min": ["earliest {f}", "minimum {f}"], "max": ["latest {f}", "most recent {f}", "maximum {f}"]}
EN_AGG_TERSE = {"sum": ["sum", "total"], "avg": ["avg", "average", "mean"], "min": ["min", "minimum"],
                "max": ["max", "maximum"]}
FR_AGG = {"sum": [("la somme", "f"), ("le total", "m")], "avg": [("la moyenne", "f"), ("la valeur moyenne", "f")],
          "min": [("le minimum", "m"), ("la valeur minimale", "f"), ("la plus petite valeur", "f")],
          "max": [("le maximum", "m"), ("la valeur maximale", "f"), ("la plus grande valeur", "f")]}
FR_AGG_TERSE = {"sum": ["somme", "total"], "avg": ["moyenne", "moy"], "min": ["min", "minimum"],
                "max": ["max", "maximum"]}

# Write operations, which the DSL cannot express (refusals). {e} = entity, {c} = condition, {bare} = FR label
# without its article; a FR template is (verb for "tu", verb for "vous", the rest).
EN_WRITE = {
    "delete": ["Delete all {e}{c}", "Remove the {e}{c}", "Erase every one of the {e}{c}", "Purge {e}{c}"],
    "update": ["Update the {f} of {e}{c} to {v}", "Set {f} to {v} for {e}{c}", "Change the {f} to {v} for all {e}{c}"],
    "insert": ["Add a new record to {e} with {f} {v}", "Insert a row into {e} where {f} is {v}",
               "Create a new entry in {e}"],
    "join": ["Join {e} with the customers table on {f}", "Combine {e} with the suppliers table",
             "Merge {e} with last year's archive by {f}"],
}
FR_WRITE = {
    "delete": [("Supprime", "Supprimez", " les {e}{c}"), ("Efface", "Effacez", " les {e}{c}"),
               ("Retire", "Retirez", " les {e}{c}")],
    "update": [("Mets à jour", "Mettez à jour", " {f} des {e}{c} avec la valeur {v}"),
               ("Passe", "Passez", " {f} à {v} pour les {e}{c}"), ("Modifie", "Modifiez", " {f} des {e}{c} : {v}")],
    "insert": [("Ajoute", "Ajoutez", " un nouvel enregistrement aux {e} avec {f} à {v}"),
               ("Insère", "Insérez", " une ligne dans les {e} avec {bare} = {v}"),
               ("Crée", "Créez", " une nouvelle entrée dans les {e}")],
    "join": [("Fais", "Faites", " une jointure entre les {e} et les clients sur {bare}"),
             ("Croise", "Croisez", " les {e} avec la table des fournisseurs"),
             ("Fusionne", "Fusionnez", " les {e} avec l'archive de l'an dernier")],
}
WRITE_REFUSALS = {  # language: (reason by write operation, suggestion)
    "en": ({"delete": "This DSL only reads records; it cannot delete them.",
            "update": "This DSL only reads records; it cannot modify them.",
            "insert": "This DSL only reads records; it cannot create new ones.",
            "join": "This DSL queries a single collection; it cannot join it with another."},
           "Ask to list the matching {e} instead."),
    "fr": ({"delete": "Ce DSL ne fait que lire les données : il ne peut pas supprimer.",
            "update": "Ce DSL ne fait que lire les données : il ne peut rien modifier.",
            "insert": "Ce DSL ne fait que lire les données : il ne peut rien ajouter.",
            "join": "Ce DSL interroge une seule collection : il ne fait pas de jointure."},
           "Demandez plutôt d'afficher ces {e}."),
}
