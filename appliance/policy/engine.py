"""Evaluate a policy bundle in-process with OPA itself (opa-golib-python-bindings, OPA v1).

The decision is the document ``data.stella.policy``. A policy defines ``deny`` (a set of
reasons; any reason fails the image) and may define ``indeterminate`` (reasons the decision
cannot be made, e.g. stale knowledge) and ``info`` (reasons recorded without effect). A reason
is ``{"code": "RISK.…", "msg": text}`` with optional ``vulnerability`` and ``component``.

Failures are never a pass: a module that does not parse or compile (Rego v0 syntax included)
raises :class:`PolicyLoadError`; an evaluation error, an undefined decision or a malformed
one is an :class:`Outcome` whose ``problem`` carries the reason code that makes the verdict
INDETERMINATE.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

from appliance.policy.bundle import PolicyBundle, PolicyLoadError

DECISION: Final = "stella.policy"
SETS: Final = ("deny", "indeterminate", "info")
_CODE = re.compile(r"RISK(\.[A-Z][A-Z0-9_]*){2,}")
_V0_HINTS: Final = ("`if` keyword is required", "`contains` keyword is required")


@functools.cache
def engine_version() -> str:
    """The policy engine as recorded in verdicts, e.g. ``opa-golib-python-bindings/0.4.4``:
    the version this process loaded, looked up once (reading the installed metadata costs
    about a millisecond, and every verdict records it twice)."""
    return f"opa-golib-python-bindings/{metadata.version('opa-golib-python-bindings')}"


@dataclass(frozen=True, slots=True, order=True)
class Reason:
    code: str
    message: str
    vulnerability: str = ""
    component: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.vulnerability:
            out["vulnerability"] = self.vulnerability
        if self.component:
            out["component"] = self.component
        return out


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the policy decided. ``problem`` is set (a reason code and a message) when there
    is no usable decision; the sets are then empty."""

    deny: tuple[Reason, ...] = ()
    indeterminate: tuple[Reason, ...] = ()
    info: tuple[Reason, ...] = ()
    problem: Reason | None = None


class CompiledPolicy:
    """A bundle loaded into one OPA engine, ready to evaluate many inputs."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle
        self._engine = OpaEngine()
        try:
            for module in bundle.modules:
                self._engine.add_policy(module.path, module.content)
            if bundle.data:
                self._engine.add_data(dict(bundle.data))
            self._engine.eval_query("true")  # compiles every module now: load errors here
        except OpaError as e:
            self._engine.close()
            raise _load_error(bundle, e) from e

    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> CompiledPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def evaluate(self, input_doc: Mapping[str, Any]) -> Outcome:
        try:
            document = self._engine.eval_document(DECISION, dict(input_doc))
        except OpaUndefinedError:
            return Outcome(
                problem=Reason(
                    "RISK.POLICY.UNDEFINED",
                    f"policy {self.bundle.id} defines no data.{DECISION} document",
                )
            )
        except OpaError as e:
            return Outcome(
                problem=Reason(
                    "RISK.POLICY.EVAL_ERROR",
                    f"policy {self.bundle.id} failed to evaluate: {_one_line(e.message)}",
                )
            )
        return read_decision(document, self.bundle.id)


def read_decision(document: Any, policy_id: str) -> Outcome:
    """The reason sets of a decision document, checked; anything unexpected is a problem."""

    def bad(why: str) -> Outcome:
        return Outcome(problem=Reason("RISK.POLICY.MALFORMED_RESULT", f"policy {policy_id}: {why}"))

    if not isinstance(document, Mapping):
        return bad(f"data.{DECISION} is not an object")
    if "deny" not in document:
        return Outcome(
            problem=Reason(
                "RISK.POLICY.UNDEFINED", f"policy {policy_id} does not define data.{DECISION}.deny"
            )
        )
    sets: dict[str, tuple[Reason, ...]] = {}
    for name in SETS:
        raw = document.get(name, [])
        if not isinstance(raw, list):
            return bad(f"{name} is not a set")
        reasons = []
        for item in raw:
            if not isinstance(item, Mapping):
                return bad(f"{name} holds {item!r}, not a reason object")
            code, msg = item.get("code"), item.get("msg", item.get("message", ""))
            if not isinstance(code, str) or not _CODE.fullmatch(code):
                return bad(f"{name} holds reason code {code!r}, not RISK.<AREA>.<NAME>")
            if not isinstance(msg, str):
                return bad(f"{name} reason {code} has a non-string msg")
            vuln, comp = item.get("vulnerability", ""), item.get("component", "")
            reasons.append(Reason(code, msg, str(vuln or ""), str(comp or "")))
        sets[name] = tuple(sorted(set(reasons)))
    return Outcome(deny=sets["deny"], indeterminate=sets["indeterminate"], info=sets["info"])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _load_error(bundle: PolicyBundle, error: OpaError) -> PolicyLoadError:
    text = _one_line(error.message)
    hint = "fix the Rego module and retry"
    if any(h in error.message for h in _V0_HINTS):
        hint = (
            "the policy uses Rego v0 syntax; OPA v1 requires v1 syntax ('if' before rule "
            "bodies, 'contains' for partial sets): rewrite it, e.g. with 'opa fmt --v0-v1'"
        )
    return PolicyLoadError(
        f"policy bundle {bundle.source} does not load ({error.code}): {text}", hint=hint
    )


def evaluate(bundle: PolicyBundle, input_doc: Mapping[str, Any]) -> Outcome:
    """Load ``bundle`` and evaluate it once on ``input_doc``."""
    with CompiledPolicy(bundle) as policy:
        return policy.evaluate(input_doc)
