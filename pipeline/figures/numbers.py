"""Numbers as the figures print them: 90 (not 9×10¹), 0.3, 2,000 steps (not 2e+03); powers
of ten only beyond PLAIN (10⁻⁹ on a spectrum), never Python's 1e+03."""

from __future__ import annotations

import math

from matplotlib.ticker import LogFormatterSciNotation

PLAIN = (1e-3, 1e5)  # |value| inside this range is written out in digits


def number(value: float, digits: int = 3, math_mode: bool = False) -> str:
    """`value` with `digits` significant digits (an integer part is never rounded: 2,048)
    in digits with thousands separators, e.g. 90, 0.3, 1.25, 2,000; outside PLAIN as
    m×10^k in mathtext ($10^{-9}$, $2.5\\times10^{6}$). `math_mode`: for use inside
    $...$ (no delimiters, the separator as {,})."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    if PLAIN[0] <= abs(value) < PLAIN[1]:
        decimals = max(0, digits - 1 - exponent)
        text = f"{round(value, decimals):,.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text.replace(",", "{,}") if math_mode else text
    mantissa = f"{value / 10**exponent:.{digits - 1}f}".rstrip("0").rstrip(".")
    if mantissa in ("10", "-10"):  # 9.996 rounds up to the next power
        mantissa, exponent = mantissa[:-1], exponent + 1
    body = f"10^{{{exponent}}}"
    if mantissa.lstrip("-") != "1":
        body = rf"{mantissa.lstrip('-')}\times{body}"
    if mantissa.startswith("-"):
        body = "-" + body
    return body if math_mode else f"${body}$"


class PlainLogFormatter(LogFormatterSciNotation):
    """Matplotlib's log-axis labels (the same ticks labelled, major and minor), written as
    `number` gives them when the whole view lies inside PLAIN: 20 … 90, not 2×10¹ … 9×10¹;
    an axis reaching beyond PLAIN keeps powers of ten throughout."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        label = super().__call__(x, pos)
        if not label or self.axis is None:
            return label
        low, high = sorted(abs(v) for v in self.axis.get_view_interval())
        if PLAIN[0] <= low and high < PLAIN[1]:
            return number(x)
        return label
