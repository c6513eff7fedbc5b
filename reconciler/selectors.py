"""Kubernetes label-selector semantics: matchLabels + matchExpressions, validation, matching."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (Kubernetes' qualified name), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"invalid label key {key!r}: prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            f"invalid label key {key!r}: name must be 1-63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value, or None (empty is valid)."""
    if value and (len(value) > 63 or not _NAME.match(value)):
        return (
            f"invalid label value {value!r}: must be at most 63 alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    """One selector term. ``=`` is how matchLabels entries are represented."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in ("=", "In"):
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            # Kubernetes: a missing key satisfies NotIn.
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        raise ValueError(f"unknown operator {self.operator!r}")

    def __str__(self) -> str:
        if self.operator == "=":
            return f"{self.key}={self.values[0]}"
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """A validated selector: all requirements must hold; no requirements matches everything."""

    requirements: tuple[Requirement, ...]

    @classmethod
    def build(
        cls, match_labels: Mapping[str, str], expressions: Sequence[tuple[str, str, Sequence[str]]]
    ) -> LabelSelector:
        reqs = [Requirement(k, "=", (v,)) for k, v in match_labels.items()]
        reqs += [Requirement(k, op, tuple(sorted(set(vals)))) for k, op, vals in expressions]
        return cls(tuple(reqs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def failing(self, labels: Mapping[str, str]) -> list[Requirement]:
        """The requirements ``labels`` do not satisfy (empty when it matches)."""
        return [r for r in self.requirements if not r.matches(labels)]

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements) or "<everything>"


def expression_problems(key: str, operator: str, values: Sequence[str]) -> list[tuple[str, str]]:
    """Problems of one matchExpressions entry as (relative field, message)."""
    problems: list[tuple[str, str]] = []
    if (why := label_key_problem(key)) is not None:
        problems.append(("key", why))
    if operator not in OPERATORS:
        problems.append(("operator", f"unknown operator {operator!r}; use {', '.join(OPERATORS)}"))
    elif operator in ("In", "NotIn") and not values:
        problems.append(("values", f"operator {operator} needs at least one value"))
    elif operator in ("Exists", "DoesNotExist") and values:
        problems.append(("values", f"operator {operator} takes no values"))
    for i, value in enumerate(values):
        if (why := label_value_problem(value)) is not None:
            problems.append((f"values[{i}]", why))
    return problems
