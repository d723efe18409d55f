"""Grid axes of a campaign: the four ways to write one, their size and their values.

An axis in `[grid]` is written as

    width = [8, 32, 128]                  # a list, used in the order written
    alpha_tilde = {logspace = [-2, 4, 7]} # 10**-2 … 10**4, 7 values log-spaced (float axes)
    seed = {range = [0, 15]}              # 0, 1, …, 14: stop is exclusive, like Python's range
    width = {geomspace = [8, 1024, 8]}    # 8 … 1024 geometric (integer axes: rounded, unique)

`axis(element)` builds the pydantic type of one axis from the type of its values; the form
is picked by a discriminator (a list, or the one known key of a table), so pydantic's errors
point at the form that was meant. Sizes are known without expanding, so a huge grid is
refused before any list is built. Generated floats are rounded to 12 significant digits so
that cell ids do not depend on the last bit of a platform's `pow`.
"""

from __future__ import annotations

import math
import reprlib
import typing
from typing import Annotated, Any, ClassVar, Generic, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    Tag,
    model_validator,
)
from pydantic.fields import FieldInfo

AXES = ("width", "alpha_tilde", "train_size", "depth", "seed")  # order of the cartesian product
TAG = "~"  # prefix of the discriminator tags; error locations drop these parts
SIGNIFICANT_DIGITS = 12
MAX_EXPONENT = 300  # 10**±300 stays a finite, non-zero float
MAX_GEOMSPACE_END = 1e300

Number = TypeVar("Number", bound=float)  # an axis element: int or float
Integer = TypeVar("Integer", bound=int)
Count = Annotated[int, Strict(), Field(gt=0, description="a positive integer")]
EXPONENT_RULE = f"a base-10 exponent in [-{MAX_EXPONENT}, {MAX_EXPONENT}]"
Exponent = Annotated[
    float,
    Strict(),
    Field(ge=-MAX_EXPONENT, le=MAX_EXPONENT, allow_inf_nan=False, description=EXPONENT_RULE),
]


def describe(annotation: Any) -> str | None:
    """The `description` of the first `Field(...)` inside a type annotation that has one."""
    if isinstance(annotation, FieldInfo):
        return annotation.description
    return next(filter(None, map(describe, typing.get_args(annotation))), None)


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _unique(values: list) -> tuple:
    """Drop repeats, keeping the first occurrence (order of the axis as written)."""
    return tuple(dict.fromkeys(values))


class Form(BaseModel):
    """A generated axis: one key (the form's name) holding its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: ClassVar[str]
    syntax: ClassVar[str]  # what a correct one looks like, for error messages
    members: ClassVar[tuple[str, ...]]  # names of the parameters, for error messages

    def size(self) -> int:
        raise NotImplementedError

    def values(self) -> tuple:
        raise NotImplementedError


class Logspace(Form):
    key: ClassVar[str] = "logspace"
    syntax: ClassVar[str] = (
        "{logspace = [start_exp, stop_exp, n]}: n values from 10**start_exp "
        "to 10**stop_exp, log-spaced, with n a positive integer"
    )
    members: ClassVar[tuple[str, ...]] = ("start_exp", "stop_exp", "n")
    logspace: tuple[Exponent, Exponent, Count]

    def size(self) -> int:
        return self.logspace[2]

    def values(self) -> tuple[float, ...]:
        start, stop, n = self.logspace
        step = (stop - start) / (n - 1) if n > 1 else 0.0
        return _unique([_round(10.0 ** (start + i * step)) for i in range(n)])


class Range(Form, Generic[Integer]):
    key: ClassVar[str] = "range"
    syntax: ClassVar[str] = (
        "{range = [start, stop]}: the integers start, start+1, …, stop-1 "
        "(stop is exclusive, like Python's range)"
    )
    members: ClassVar[tuple[str, ...]] = ("start", "stop")
    range: tuple[Integer, Annotated[int, Strict(), Field(description="an integer")]]

    @model_validator(mode="after")
    def _not_empty(self) -> Range:
        start, stop = self.range
        if stop <= start:
            raise ValueError(
                f"range {reprlib.repr([start, stop])} is empty: stop must be greater "
                "than start, as it is exclusive like Python's range ([3, 4] is the "
                "single value 3)"
            )
        return self

    def size(self) -> int:
        return self.range[1] - self.range[0]

    def values(self) -> tuple[int, ...]:
        return tuple(range(*self.range))


class Geomspace(Form, Generic[Number]):
    key: ClassVar[str] = "geomspace"
    syntax: ClassVar[str] = (
        "{geomspace = [start, stop, n]}: n values from start to stop, "
        "geometrically spaced (on integer axes rounded, repeats dropped)"
    )
    members: ClassVar[tuple[str, ...]] = ("start", "stop", "n")
    geomspace: tuple[Number, Number, Count]

    @model_validator(mode="after")
    def _finite(self) -> Geomspace:
        start, stop, _ = self.geomspace
        if min(start, stop) <= 0:
            raise ValueError(f"geomspace ends must be positive, got {reprlib.repr([start, stop])}")
        if max(start, stop) > MAX_GEOMSPACE_END:
            raise ValueError(
                f"geomspace ends must be at most {MAX_GEOMSPACE_END:g}, "
                f"got {reprlib.repr([start, stop])}"
            )
        return self

    def size(self) -> int:
        return self.geomspace[2]

    def values(self) -> tuple:
        start, stop, n = self.geomspace
        low, high = math.log(start), math.log(stop)
        step = (high - low) / (n - 1) if n > 1 else 0.0
        raw = [math.exp(low + i * step) for i in range(n)]
        if isinstance(start, int):  # integer axis
            return _unique([max(1, round(v)) for v in raw])
        return _unique([_round(v) for v in raw])


FORMS: dict[str, type[Form]] = {f.key: f for f in (Logspace, Range, Geomspace)}


def _no_repeats(values: list) -> list:
    seen: set = set()
    repeated: list = []
    for v in values:
        if v in seen and v not in repeated:
            repeated.append(v)
        seen.add(v)
    if repeated:
        raise ValueError(
            f"repeated values {reprlib.repr(repeated)}, which would give the "
            "same cells twice; list each value once"
        )
    return values


def axis(element: Any, integer: bool) -> Any:
    """The pydantic type of one grid axis whose values have type `element`.

    Integer axes accept a list, range or geomspace; float axes a list, logspace or
    geomspace. The result validates to a `list` or a `Form`; see `size` and `values`."""
    forms = ("range", "geomspace") if integer else ("logspace", "geomspace")
    typed = {"range": Range[element], "geomspace": Geomspace[element], "logspace": Logspace}
    listed = Annotated[list[element], Field(min_length=1), AfterValidator(_no_repeats)]
    choices = [Annotated[listed, Tag(TAG + "list")]]
    choices += [Annotated[typed[key], Tag(TAG + key)] for key in forms]
    example = "[8, 32, 128]" if integer else "[0.01, 1.0, 100.0]"
    spelled = ", ".join("{" + key + " = [...]}" for key in forms)
    hint = "; logspace gives non-integers, use geomspace" if integer else ""

    def pick(value: Any) -> str | None:
        if isinstance(value, (list, tuple)):
            return TAG + "list"
        if isinstance(value, Form):
            return TAG + value.key if value.key in forms else None
        if isinstance(value, dict):
            return next((TAG + key for key in forms if key in value), None)
        return None

    return Annotated[
        Union[tuple(choices)],  # noqa: UP007 - built at run time from a tuple: `|` cannot
        Discriminator(
            pick,
            custom_error_type="axis_form",
            custom_error_message=f"a list such as {example} or one of {spelled}{hint}",
        ),
        Field(description=describe(element)),
    ]


def size(value: list | Form) -> int:
    """Number of values of a validated axis, without expanding it."""
    return len(value) if isinstance(value, list) else value.size()


def values(value: list | Form) -> tuple:
    """The values of a validated axis, in order."""
    return tuple(value) if isinstance(value, list) else value.values()
