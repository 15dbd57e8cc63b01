"""A small validation layer for homesec's config sections: typed fields with defaults, bounds and
descriptions, unknown keys forbidden, checks across fields, and every problem reported at once.

Why not pydantic: every homesec process (the capture daemon and each gunicorn worker) imports the
config, and on a Pi Zero 2 W with 512 MB for everything `import homesec.config` cost ~20 MB RSS
(~12 MB anonymous) with pydantic: ~7 MB for pydantic itself and ~13 MB for building the validators
of a dozen models, a large share of a worker. The config is read once at start-up from TOML, whose
values are already typed, so all we need is a few type checks; this module does them in plain
Python with the same vocabulary (`Field`, `field_validator`, `model_validator`) and the same error
texts, so config.py reads as before. Numbers: docs/memory.md.

What is checked, and how strictly (TOML gives the values their types):
- `int`: an int, or a float without a fractional part; never a bool, never a string.
- `float`: an int or a float (an int becomes a float, TOML writes 15 for 15.0); never a bool.
- `bool`, `str`: exactly that type. `Path`: a str or a path. `Literal[...]`: one of the values.
- `list[X]`, `dict[K, V]`, `X | None`, `Annotated[X, Field(...)]` (bounds for each item), nested
  sections (a dict, or an instance of the section as is), ipaddress addresses and networks.
- `Field(ge=, gt=, le=, lt=)` for numbers, `min_length`/`max_length` for strings and lists,
  `pattern` (a regular expression searched in the string).
- Assignments to a field after construction are checked the same way, and the section's "after"
  checks run again; a failed assignment leaves the old value.

A problem is a `ValidationError` (a ValueError) whose `errors()` list gives each problem's `loc`
(the key path), `msg`, `type` and `input`; config.py turns that into a ConfigError.
"""

from __future__ import annotations

import ipaddress
import re
import typing
from collections.abc import Callable
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, ClassVar, Literal, TypeVar

__all__ = ["Field", "FieldInfo", "Section", "ValidationError", "as_dict", "field_validator",
           "fields_of", "model_validator", "replace", "validate"]

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<required>"})()
_INVALID: Any = type("_Invalid", (), {"__repr__": lambda self: "<invalid>"})()

Loc = tuple[str | int, ...]
Errors = list[dict[str, Any]]
Check = Callable[[Any, Loc, Errors], Any]  # returns the value (maybe converted) or _INVALID
S = TypeVar("S", bound="Section")


class ValidationError(ValueError):
    """One or more problems found while validating a section; `errors()` lists them."""

    def __init__(self, title: str, errors: Errors) -> None:
        self.title = title
        self._errors = errors
        super().__init__(self._text())

    def errors(self) -> Errors:
        """Each problem as {"loc", "msg", "type", "input"} ("input" absent when there is none)."""
        return list(self._errors)

    def _text(self) -> str:
        n = len(self._errors)
        lines = [f"{n} validation error{'s' if n != 1 else ''} for {self.title}"]
        for err in self._errors:
            lines.append("  " + (".".join(str(p) for p in err["loc"]) or "(top level)"))
            got = f" (got {err['input']!r})" if "input" in err and not isinstance(
                err["input"], dict | Section) else ""
            lines.append(f"    {err['msg']}{got}")
        return "\n".join(lines)


def _problem(errors: Errors, loc: Loc, msg: str, kind: str, value: Any = _MISSING) -> None:
    err: dict[str, Any] = {"loc": loc, "msg": msg, "type": kind}
    if value is not _MISSING:
        err["input"] = value
    errors.append(err)


class FieldInfo:
    """A field's default, bounds and description (what `Field(...)` returns)."""

    __slots__ = ("annotation", "default", "default_factory", "description", "ge", "gt", "le",
                 "lt", "max_length", "min_length", "pattern")

    def __init__(self, default: Any = _MISSING, *, default_factory: Callable[[], Any] | None = None,
                 description: str = "", ge: float | None = None, gt: float | None = None,
                 le: float | None = None, lt: float | None = None, min_length: int | None = None,
                 max_length: int | None = None, pattern: str | None = None) -> None:
        if default is not _MISSING and default_factory is not None:
            raise TypeError("give a field either a default or a default_factory, not both")
        self.default = default
        self.default_factory = default_factory
        self.description = description
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.min_length, self.max_length, self.pattern = min_length, max_length, pattern
        self.annotation: Any = None  # the resolved type, filled in by fields_of()

    @property
    def required(self) -> bool:
        """True when the field has neither a default nor a default_factory."""
        return self.default is _MISSING and self.default_factory is None

    def make_default(self) -> Any:
        """A fresh default value (a new one from default_factory each time; a list or dict
        default is copied, so no two sections share it)."""
        if self.default_factory is not None:
            return self.default_factory()
        if isinstance(self.default, list | dict):
            return type(self.default)(self.default)
        return self.default

    def __repr__(self) -> str:
        return f"FieldInfo(annotation={self.annotation!r}, default={self.default!r})"


def Field(default: Any = _MISSING, **kwargs: Any) -> Any:
    """A field's default (or `default_factory`), bounds and `description`."""
    return FieldInfo(default, **kwargs)


class _Validator:
    """A `field_validator`/`model_validator` mark, collected when the section class is made."""

    def __init__(self, mode: str, func: Any, names: tuple[str, ...] = ()) -> None:
        self.mode, self.func, self.names = mode, func, names


def field_validator(*names: str, mode: Literal["before", "after"] = "after"
                    ) -> Callable[[Any], Any]:
    """Check (and maybe change) the named fields' values: `f(cls, value) -> value`; raise
    ValueError to refuse. "after" runs on the type-checked value, "before" on the raw one."""
    if mode not in ("before", "after"):
        raise ValueError(f"field_validator mode {mode!r}: only 'before' or 'after'")
    return lambda func: _Validator("field-" + mode, func, names)


def model_validator(*, mode: Literal["before", "after"]) -> Callable[[Any], Any]:
    """Check a whole section: "before" as `f(cls, data) -> data` on the raw dict, "after" as
    `f(self) -> self` once every field is valid. Raise ValueError to refuse."""
    if mode not in ("before", "after"):
        raise ValueError(f"model_validator mode {mode!r}: only 'before' or 'after'")
    return lambda func: _Validator(mode, func)


def _call(func: Any, first: Any, *args: Any) -> Any:
    """Call a validator stored as a classmethod, staticmethod or plain function."""
    if isinstance(func, staticmethod):
        return func.__func__(*args)
    return getattr(func, "__func__", func)(first, *args)


# ---- types -> checks ---------------------------------------------------------------------------

def _num(bound: float) -> str:
    """A bound as pydantic wrote it: 0.0 as 0, 0.5 as 0.5."""
    return str(int(bound)) if isinstance(bound, float) and bound.is_integer() else str(bound)


def _check_int(value: Any, loc: Loc, errors: Errors) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _problem(errors, loc, "Input should be a valid integer", "int_type", value)
        return _INVALID
    if isinstance(value, float):
        if not value.is_integer():
            _problem(errors, loc, "Input should be a valid integer, got a number with a "
                     "fractional part", "int_from_float", value)
            return _INVALID
        return int(value)
    return value


def _check_float(value: Any, loc: Loc, errors: Errors) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _problem(errors, loc, "Input should be a valid number", "float_type", value)
        return _INVALID
    return float(value)


def _check_bool(value: Any, loc: Loc, errors: Errors) -> Any:
    if not isinstance(value, bool):
        _problem(errors, loc, "Input should be a valid boolean", "bool_type", value)
        return _INVALID
    return value


def _check_str(value: Any, loc: Loc, errors: Errors) -> Any:
    if not isinstance(value, str):
        _problem(errors, loc, "Input should be a valid string", "string_type", value)
        return _INVALID
    return value


def _check_path(value: Any, loc: Loc, errors: Errors) -> Any:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        _problem(errors, loc, "Input is not a valid path", "path_type", value)
        return _INVALID
    return Path(value)


def _check_any(value: Any, loc: Loc, errors: Errors) -> Any:
    return value


_SIMPLE: dict[Any, Check] = {int: _check_int, float: _check_float, bool: _check_bool,
                             str: _check_str, Path: _check_path, Any: _check_any}
_IP_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
             ipaddress.IPv6Network, ipaddress.IPv4Interface, ipaddress.IPv6Interface)


def _check_ip(tp: type) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if isinstance(value, tp):
            return value
        if isinstance(value, str):
            try:
                return tp(value)
            except ValueError:
                pass
        _problem(errors, loc, f"Input is not a valid {tp.__name__}", "ip_type", value)
        return _INVALID
    return check


def _check_literal(choices: tuple[Any, ...]) -> Check:
    shown = [repr(c) for c in choices]
    expected = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if any(type(value) is type(c) and value == c for c in choices):
            return value
        _problem(errors, loc, f"Input should be {expected}", "literal_error", value)
        return _INVALID
    return check


def _check_list(item: Check) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if not isinstance(value, list | tuple):
            _problem(errors, loc, "Input should be a valid list", "list_type", value)
            return _INVALID
        out = [item(v, (*loc, i), errors) for i, v in enumerate(value)]
        return _INVALID if any(v is _INVALID for v in out) else out
    return check


def _check_dict(key: Check, val: Check) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if not isinstance(value, dict):
            _problem(errors, loc, "Input should be a valid dictionary", "dict_type", value)
            return _INVALID
        out = {}
        for k, v in value.items():
            ck, cv = key(k, (*loc, str(k)), errors), val(v, (*loc, str(k)), errors)
            if ck is _INVALID or cv is _INVALID:
                return _INVALID
            out[ck] = cv
        return out
    return check


def _check_union(members: list[Check], nullable: bool) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if value is None and nullable:
            return None
        first: Errors = []
        for i, member in enumerate(members):
            tried: Errors = []
            out = member(value, loc, tried)
            if not tried:
                return out
            if i == 0:
                first = tried
        errors.extend(first)  # the problems with the first type given (X in `X | None`)
        return _INVALID
    return check


def _check_section(cls: type[Section]) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        return _spec(cls).build(value, loc, errors)
    return check


def _with_bounds(inner: Check, info: FieldInfo) -> Check:
    """`inner`, then the bounds of `info` on its result (None passes: `X | None` unset)."""
    regex = re.compile(info.pattern) if info.pattern is not None else None

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        out = inner(value, loc, errors)
        if out is _INVALID or out is None:
            return out
        n = len(errors)
        if isinstance(out, int | float):
            if info.ge is not None and not out >= info.ge:
                _problem(errors, loc, f"Input should be greater than or equal to {_num(info.ge)}",
                         "greater_than_equal", value)
            if info.gt is not None and not out > info.gt:
                _problem(errors, loc, f"Input should be greater than {_num(info.gt)}",
                         "greater_than", value)
            if info.le is not None and not out <= info.le:
                _problem(errors, loc, f"Input should be less than or equal to {_num(info.le)}",
                         "less_than_equal", value)
            if info.lt is not None and not out < info.lt:
                _problem(errors, loc, f"Input should be less than {_num(info.lt)}", "less_than",
                         value)
        elif isinstance(out, str):
            if info.min_length is not None and len(out) < info.min_length:
                s = "s" if info.min_length != 1 else ""
                _problem(errors, loc, f"String should have at least {info.min_length} "
                         f"character{s}", "string_too_short", value)
            if info.max_length is not None and len(out) > info.max_length:
                s = "s" if info.max_length != 1 else ""
                _problem(errors, loc, f"String should have at most {info.max_length} "
                         f"character{s}", "string_too_long", value)
            if regex is not None and not regex.search(out):
                _problem(errors, loc, f"String should match pattern '{info.pattern}'",
                         "string_pattern_mismatch", value)
        elif isinstance(out, list):
            if info.min_length is not None and len(out) < info.min_length:
                s = "s" if info.min_length != 1 else ""
                _problem(errors, loc, f"List should have at least {info.min_length} item{s} "
                         f"after validation, not {len(out)}", "too_short", value)
            if info.max_length is not None and len(out) > info.max_length:
                s = "s" if info.max_length != 1 else ""
                _problem(errors, loc, f"List should have at most {info.max_length} item{s} "
                         f"after validation, not {len(out)}", "too_long", value)
        return out if len(errors) == n else _INVALID
    return check


def _has_bounds(info: FieldInfo) -> bool:
    return any(getattr(info, a) is not None for a in
               ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"))


def _compile(tp: Any, where: str) -> Check:
    """The check for a type annotation; TypeError for a type this layer does not know."""
    if tp in _SIMPLE:
        return _SIMPLE[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        check = _compile(args[0], where)
        for meta in tp.__metadata__:
            if isinstance(meta, FieldInfo) and _has_bounds(meta):
                check = _with_bounds(check, meta)
        return check
    if origin is Literal:
        return _check_literal(args)
    if origin is list:
        return _check_list(_compile(args[0] if args else Any, where))
    if origin is dict:
        return _check_dict(*(_compile(a, where) for a in (args or (Any, Any))))
    if origin is UnionType or origin is typing.Union:
        members = [_compile(a, where) for a in args if a is not NoneType]
        return _check_union(members, nullable=NoneType in args)
    if isinstance(tp, type) and issubclass(tp, Section):
        return _check_section(tp)
    if tp in _IP_TYPES:
        return _check_ip(tp)
    raise TypeError(f"{where}: config_schema cannot check values of type {tp!r}")


# ---- sections ----------------------------------------------------------------------------------

class _Spec:
    """A section class's resolved fields, checks and validators (built on first use)."""

    def __init__(self, cls: type[Section]) -> None:
        self.cls = cls
        hints = typing.get_type_hints(cls, include_extras=True)  # each base in its module
        self.fields: dict[str, FieldInfo] = {}
        self.checks: dict[str, Check] = {}
        for name, info in cls.__section_fields__.items():
            info.annotation = hints[name]
            check = _compile(hints[name], f"{cls.__name__}.{name}")
            self.checks[name] = _with_bounds(check, info) if _has_bounds(info) else check
            self.fields[name] = info
        validators = cls.__section_validators__
        self.before = [v.func for v in validators if v.mode == "before"]
        self.after = [v.func for v in validators if v.mode == "after"]
        self.field_before: dict[str, list[Any]] = {}
        self.field_after: dict[str, list[Any]] = {}
        for v in validators:
            table = {"field-before": self.field_before, "field-after": self.field_after}.get(v.mode)
            for name in v.names if table is not None else ():
                if name not in self.fields:
                    raise TypeError(f"{cls.__name__}: field_validator for unknown field {name!r}")
                table.setdefault(name, []).append(v.func)

    def check_field(self, name: str, value: Any, loc: Loc, errors: Errors) -> Any:
        """One field's value: before-validators, type and bounds, after-validators."""
        try:
            for func in self.field_before.get(name, ()):
                value = _call(func, self.cls, value)
            out = self.checks[name](value, loc, errors)
            if out is _INVALID:
                return _INVALID
            for func in self.field_after.get(name, ()):
                out = _call(func, self.cls, out)
            return out
        except (ValueError, AssertionError) as exc:
            _problem(errors, loc, _refusal(exc), "value_error", value)
            return _INVALID

    def run_after(self, obj: Section, data: Any, loc: Loc, errors: Errors) -> bool:
        """The section's "after" checks, in order, until one refuses."""
        for func in self.after:
            try:
                func(obj)
            except (ValueError, AssertionError) as exc:
                _problem(errors, loc, _refusal(exc), "value_error", data)
                return False
        return True

    def build(self, data: Any, loc: Loc, errors: Errors, into: Section | None = None) -> Any:
        """A valid section from `data` (into `into` when given), or _INVALID with the problems
        added to `errors`."""
        if isinstance(data, self.cls) and into is None:
            return data
        try:
            for func in self.before:
                data = _call(func, self.cls, data)
        except (ValueError, AssertionError) as exc:
            _problem(errors, loc, _refusal(exc), "value_error", data)
            return _INVALID
        if not isinstance(data, dict):
            _problem(errors, loc, f"Input should be a valid dictionary or instance of "
                     f"{self.cls.__name__}", "model_type", data)
            return _INVALID
        n = len(errors)
        values: dict[str, Any] = {}
        for name, info in self.fields.items():
            if name in data:
                values[name] = self.check_field(name, data[name], (*loc, name), errors)
            elif info.required:
                _problem(errors, (*loc, name), "Field required", "missing", data)
            else:
                values[name] = info.make_default()
        for key in data:
            if key not in self.fields:
                _problem(errors, (*loc, str(key)), "Extra inputs are not permitted",
                         "extra_forbidden", data[key])
        if len(errors) != n:
            return _INVALID
        obj = into if into is not None else object.__new__(self.cls)
        obj.__dict__.update(values)
        return obj if self.run_after(obj, data, loc, errors) else _INVALID


def _refusal(exc: BaseException) -> str:
    """A validator's refusal as pydantic worded it (tests and users know these texts)."""
    if isinstance(exc, AssertionError):
        return f"Assertion failed, {exc}"
    return f"Value error, {exc}"


_SPECS: dict[type, _Spec] = {}


def _spec(cls: type[Section]) -> _Spec:
    spec = _SPECS.get(cls)
    if spec is None:
        spec = _SPECS[cls] = _Spec(cls)
    return spec


class Section:
    """Base of a config section: declare fields as annotated class attributes with a default or
    `Field(...)`. Unknown keys are errors; assignments are validated."""

    __section_fields__: ClassVar[dict[str, FieldInfo]] = {}
    __section_validators__: ClassVar[tuple[_Validator, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = dict(cls.__section_fields__)  # a base's fields first, as declared
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect: a big import)
        for name, ann in own.items():
            if name.startswith("_") or "ClassVar" in str(ann):
                continue
            value = cls.__dict__.get(name, _MISSING)
            info = value if isinstance(value, FieldInfo) else FieldInfo(value)
            if name in cls.__dict__:
                delattr(cls, name)  # the instance's value is in its __dict__
            fields[name] = info
        validators = list(cls.__section_validators__)
        for name, value in list(cls.__dict__.items()):
            if isinstance(value, _Validator):
                validators.append(value)
                setattr(cls, name, value.func)  # still callable under its own name
        cls.__section_fields__ = fields
        cls.__section_validators__ = tuple(validators)

    def __init__(self, **data: Any) -> None:
        errors: Errors = []
        _spec(type(self)).build(data, (), errors, into=self)
        if errors:
            raise ValidationError(type(self).__name__, errors)

    def __setattr__(self, name: str, value: Any) -> None:
        spec = _spec(type(self))
        errors: Errors = []
        if name not in spec.fields:
            _problem(errors, (name,), f"Object has no attribute '{name}'", "no_such_attribute",
                     value)
            raise ValidationError(type(self).__name__, errors)
        checked = spec.check_field(name, value, (name,), errors)
        if checked is not _INVALID:
            old = self.__dict__[name]
            self.__dict__[name] = checked
            if not spec.run_after(self, self.__dict__, (), errors):
                self.__dict__[name] = old
        if errors:
            raise ValidationError(type(self).__name__, errors)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({inner})"


def validate(cls: type[S], data: Any) -> S:
    """A `cls` section from `data` (a dict as read from TOML), or ValidationError listing every
    problem."""
    errors: Errors = []
    out = _spec(cls).build(data, (), errors)
    if errors:
        raise ValidationError(cls.__name__, errors)
    return out


def fields_of(section: type[Section] | Section) -> dict[str, FieldInfo]:
    """The fields of a section class (or of an instance's class), in declaration order."""
    cls = section if isinstance(section, type) else type(section)
    return dict(_spec(cls).fields)


def replace(section: S, **changes: Any) -> S:
    """A validated copy of `section` with some fields changed (nested sections are shared)."""
    return type(section)(**{**section.__dict__, **changes})


def as_dict(section: Section) -> dict[str, Any]:
    """The section's values as plain dicts and lists (paths stay Path objects)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Section):
            return {k: plain(v) for k, v in value.__dict__.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(section)
