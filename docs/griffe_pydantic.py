"""A griffe extension for the API reference: the ``__init__`` signature of pydantic models.

Griffe reads the sources without importing them, so it does not see the ``__init__`` pydantic
makes at run time from a model's fields. A model that writes no ``__init__`` (or only one that
takes ``**data``) then has no parameter defaults, and mkdocstrings lists every documented
parameter of its class docstring as "required". This extension gives such a model the
signature pydantic gives it: one keyword-only parameter per field of the class, with the
field's default (``Field(default=...)``, ``Field(default_factory=f)`` shown as ``f()``, or the
plain value); a field without one stays required.

A class counts as a pydantic model when it sets ``model_config = ConfigDict(...)`` or derives
from ``pydantic.BaseModel`` directly (griffe cannot follow bases from other packages, such as
LangChain's ``BaseRetriever``). ``mkdocs.yml`` loads it with the mkdocstrings ``extensions``
option (path from the repository root, where ``mkdocs build`` runs).
"""

from __future__ import annotations

from typing import Any

import griffe

BASES = {"pydantic.BaseModel", "pydantic.main.BaseModel"}
CONFIG = {"pydantic.ConfigDict", "pydantic.config.ConfigDict"}
FIELD = {"pydantic.Field", "pydantic.fields.Field"}


def is_pydantic_model(cls: griffe.Class) -> bool:
    """Whether ``cls`` sets ``model_config = ConfigDict(...)`` or derives from ``pydantic.BaseModel``."""
    config = cls.members.get("model_config")
    value = config.value if isinstance(config, griffe.Attribute) else None
    if isinstance(value, griffe.ExprCall) and value.function.canonical_path in CONFIG:
        return True
    return any(getattr(base, "canonical_path", str(base)) in BASES for base in cls.bases)


def field_default(attribute: griffe.Attribute) -> tuple[bool, Any]:
    """``(has a default, the default)`` of a field: ``Field(...)`` arguments or the plain value."""
    value = attribute.value
    if value is None:
        return False, None
    if isinstance(value, griffe.ExprCall) and value.function.canonical_path in FIELD:
        keywords = {a.name: a.value for a in value.arguments if isinstance(a, griffe.ExprKeyword)}
        if "default_factory" in keywords:
            return True, griffe.ExprCall(function=keywords["default_factory"], arguments=[])
        if "default" in keywords:
            return True, keywords["default"]
        positional = [a for a in value.arguments if not isinstance(a, griffe.ExprKeyword)]
        if positional and str(positional[0]) not in {"...", "Ellipsis"}:
            return True, positional[0]
        return False, None
    return True, value


def fields(cls: griffe.Class) -> list[griffe.Parameter]:
    """One keyword-only parameter per public field written in ``cls``'s body."""
    parameters = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.name.startswith("_"):
            continue
        if member.name == "model_config" or member.annotation is None or "property" in member.labels:
            continue
        if "class-attribute" in member.labels and "instance-attribute" not in member.labels:
            continue  # a ClassVar
        has_default, default = field_default(member)
        parameters.append(
            griffe.Parameter(
                member.name,
                annotation=member.annotation,
                kind=griffe.ParameterKind.keyword_only,
                default=default if has_default else None,
                docstring=member.docstring,
            )
        )
    return parameters


def takes_only_data(init: griffe.Object) -> bool:
    """Whether an ``__init__`` is ``(self, **data)``: pydantic's signature says more."""
    kinds = [p.kind for p in init.parameters if p.name != "self"]
    return kinds == [griffe.ParameterKind.var_keyword]


def set_model_init(cls: griffe.Class) -> None:
    init = cls.members.get("__init__")
    if init is not None and (init.is_alias or not takes_only_data(init)):
        return
    parameters = fields(cls)
    if not parameters:
        return
    self_parameter = griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)
    synthesized = griffe.Function(
        "__init__",
        lineno=init.lineno if init is not None else cls.lineno,
        endlineno=init.endlineno if init is not None else cls.lineno,
        parent=cls,
        parameters=griffe.Parameters(self_parameter, *parameters),
        returns="None",
        docstring=init.docstring if init is not None else None,
    )
    cls.set_member("__init__", synthesized)


def visit(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    if isinstance(obj, griffe.Class) and is_pydantic_model(obj):
        set_model_init(obj)
    for member in list(obj.members.values()):
        if not member.is_alias and (member.is_module or member.is_class):
            visit(member, seen)


class PydanticInit(griffe.Extension):
    """Give pydantic models the ``__init__`` signature pydantic makes from their fields."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        visit(pkg, set())
