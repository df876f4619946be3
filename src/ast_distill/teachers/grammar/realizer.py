"""Realization: a Plan -> one request text (a list, terse or aggregate request; imperative or question)."""
from __future__ import annotations

from .clauses import ClauseWriter
from .phrases import (EN_AGG, EN_AGG_TERSE, EN_ASK, EN_DATE_AGG, EN_VERBS, FR_AGG, FR_AGG_TERSE, FR_ASK,
                      FR_VERBS)
from .plans import Plan
from .wording import fr_de, fr_elide, tidy


class Realizer(ClauseWriter):
    """Writes one request. A new one per request: it fixes the language, style, register and entity noun."""

    # -- whole requests ------------------------------------------------------------------------------------
    def request(self, plan: Plan) -> str:
        if plan.aggregate is not None:
            text = self.aggregate_request(plan)
        elif self.style == "terse":
            text = self.terse_request(plan)
        else:
            text = self.list_request(plan)
        return tidy(text, self.lang, capitalize=self.style != "terse" or self.rng.random() < 0.3)

    def _verb(self) -> str:
        return self.pick(EN_VERBS) if self.lang == "en" else self.pick(FR_VERBS[self.register])

    def _ask(self) -> str:
        return self.pick(EN_ASK) if self.lang == "en" else self.pick(FR_ASK[self.register])

    def list_request(self, plan: Plan) -> str:
        en = self.lang == "en"
        conds = self.cond_suffix(plan.cond)
        of_form = bool(plan.select) and self.rng.random() < 0.6  # "the price and city of listings ..."
        limit_prefix = plan.limit is not None and self.rng.random() < 0.5
        if limit_prefix:
            first = "premiers" if self.gender == "m" else "premières"
            if en:
                options = ["the first {n} {e}", "the top {n} {e}", "{n} {e}"] + ([] if of_form else ["up to {n} {e}"])
            else:
                options = ["{n} {e}", f"les {{n}} {first} {{e}}"] + ([] if of_form else ["jusqu'à {n} {e}"])
            obj = self.pick(options).format(n=plan.limit, e=self.entity)
        elif en:
            obj = self.pick((self.entity, f"all {self.entity}", f"the {self.entity}", f"all the {self.entity}"))
        else:
            every = "tous" if self.gender == "m" else "toutes"
            obj = self.pick((f"les {self.entity}", f"{every} les {self.entity}"))
        tail = self.sort_suffix(plan.sort) + ("" if plan.limit is None or limit_prefix
                                              else self.limit_suffix(plan.limit))
        if not plan.select:
            head, end = self.head(obj, question_ok=True)
            return head + conds + tail + end
        fields = self.field_list(plan.select)
        if of_form:
            if en:
                of_obj = f"{fields} of {obj}"
            else:
                of_obj = f"{fields} " + (f"des {obj[4:]}" if obj.startswith("les ") else f"de {obj}")
            head, end = self.head(of_obj, question_ok=True)
            return head + conds + tail + end
        extra = (self.pick((", only {s}", ", returning {s}", " (just {s})", ", showing {s}")) if en else
                 self.pick((", seulement {s}", ", avec juste {s}", " (uniquement {s})", ", en affichant {s}")))
        head, end = self.head(obj, question_ok=True)
        return head + conds + extra.format(s=fields) + tail + end

    def head(self, obj: str, question_ok: bool) -> tuple[str, str]:
        """(start of the sentence up to the object, sentence end)."""
        if self.style == "question" and question_ok:
            if self.lang == "en":
                if self.rng.random() < 0.2 and not obj.startswith(("the ", "all", "up to")) and obj[:1].isalpha():
                    return f"Any {obj}", "?"
                return f"{self._ask()} {obj}", "?"
            if self.rng.random() < 0.25 and obj.startswith("les "):
                which = "Quels" if self.gender == "m" else "Quelles"
                return f"{which} sont {obj}", " ?"
            return f"{self._ask()} {obj}", " ?"
        end = "" if self.rng.random() < 0.6 else "."
        return f"{self._verb()} {obj}", end

    def terse_request(self, plan: Plan) -> str:
        parts = [self.entity]
        if plan.select:
            parts.append(self.pick(("[{s}]", "fields {s}", "select {s}") if self.lang == "en"
                                   else ("[{s}]", "champs {s}", "colonnes {s}")).format(s=self.field_list(plan.select)))
        conds = ""
        if plan.cond is not None:
            # After a field list the condition needs a visible separator ("[price, city] where ...").
            lead = self.pick((": ", " where ", "; ") if self.lang == "en" else (" : ", " où ", " ; ")) \
                if plan.select else self.pick((" ", ": ", " where ") if self.lang == "en" else (" ", " : ", " où "))
            conds = lead + self.cond(plan.cond)
        text = " ".join(parts) + conds + self.sort_suffix(plan.sort)
        if plan.limit is not None:
            text += self.limit_suffix(plan.limit)
        return text

    def aggregate_request(self, plan: Plan) -> str:
        function, lex = plan.aggregate
        conds, group = self.cond_suffix(plan.cond), self.group_suffix(plan.group_by)
        en = self.lang == "en"
        if self.style == "terse":
            if function == "count":
                head = self.pick(("count {e}", "count of {e}", "number of {e}") if en
                                 else (f"nombre {fr_de(self.entity)}", "compte {e}", "nb {e}")).format(e=self.entity)
            else:
                name = self.pick((EN_AGG_TERSE if en else FR_AGG_TERSE)[function])
                label = self.label(lex)
                head = self.pick((f"{name} {label} {self.entity}", f"{name}({label}) {self.entity}"))
            return head + conds + group
        if function == "count":
            if en:
                if self.style == "question":
                    form = self.pick(("How many {e}{c}{g}?", "How many {e} are there{c}{g}?",
                                      "What is the number of {e}{c}{g}?", "Can you count the {e}{c}{g}?"))
                else:
                    form = self.pick(("Count the {e}{c}{g}", "Count {e}{c}{g}", "Give me the number of {e}{c}{g}",
                                      "Get the count of {e}{c}{g}", "Tell me the number of {e}{c}{g}"))
                return form.format(e=self.entity, c=conds, g=group)
            de_e = fr_elide("de", self.entity)
            if self.style == "question":
                form = self.pick((f"Combien {de_e}{{c}}{{g}} ?", f"Combien y a-t-il {de_e}{{c}}{{g}} ?",
                                  f"Quel est le nombre {de_e}{{c}}{{g}} ?",
                                  ("Peux-tu compter" if self.register == "tu" else "Pouvez-vous compter")
                                  + " les {e}{c}{g} ?"))
            else:
                form = self.pick((("Compte" if self.register == "tu" else "Comptez") + " les {e}{c}{g}",
                                  ("Donne-moi" if self.register == "tu" else "Donnez-moi") + f" le nombre {de_e}{{c}}{{g}}",
                                  ("Calcule" if self.register == "tu" else "Calculez") + f" le nombre {de_e}{{c}}{{g}}"))
            return form.format(e=self.entity, c=conds, g=group)
        label = self.label(lex)
        if en:
            bank = (EN_DATE_AGG.get(function) if lex.type == "date" else None) or EN_AGG[function]
            agg = self.pick(bank).format(f=label)
            link = self.pick(("of", "for", "across", "among"))
            if self.style == "question":
                form = self.pick(("What is the {a} {l} {e}{c}{g}?", "What's the {a} {l} {e}{c}{g}?",
                                  "Can you compute the {a} {l} {e}{c}{g}?"))
            else:
                form = self.pick(("Compute the {a} {l} {e}{c}{g}", "Give me the {a} {l} {e}{c}{g}",
                                  "Calculate the {a} {l} {e}{c}{g}", "Show the {a} {l} {e}{c}{g}",
                                  "Get the {a} {l} {e}{c}{g}"))
            return form.format(a=agg, l=link, e=self.entity, c=conds, g=group)
        noun, gender = self.rng.choice(FR_AGG[function])
        agg = f"{noun} {fr_de(label)}"
        if self.style == "question":
            which = "Quel" if gender == "m" else "Quelle"
            form = self.pick((f"{which} est {{a}} des {{e}}{{c}}{{g}} ?",
                              ("Peux-tu calculer" if self.register == "tu" else "Pouvez-vous calculer")
                              + " {a} des {e}{c}{g} ?"))
        else:
            verb = self.pick(("Calcule", "Donne-moi", "Affiche") if self.register == "tu"
                             else ("Calculez", "Donnez-moi", "Affichez"))
            form = verb + self.pick((" {a} des {e}{c}{g}", " {a} pour les {e}{c}{g}"))
        return form.format(a=agg, e=self.entity, c=conds, g=group)
