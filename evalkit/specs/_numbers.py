"""Numbers as task, suite and policy files must write them: strict and finite.

A YAML value arrives already typed (`1`, `0.5`, `true`, `"0.5"`), so no spec field converts one
type into another: a string or a boolean where a number belongs is an error at file:line, not a
guess. `.nan` and `.inf` are refused too: a NaN floor fails every comparison (bad input would read
as a regression) and an infinite one passes everything. An int is accepted where a float is meant.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
StrictPositiveInt = Annotated[int, Field(strict=True, gt=0)]
