"""The post's weather numbers, exactly and to 30 digits, and where its 0.088 came from."""

from __future__ import annotations

import decimal

import sympy as sp

from klspec.spec.derivations._core import Chain, Derivation, Step
from klspec.spec.derivations.checks import Numeric, Proved
from klspec.spec.derivations.notation import notation

R = sp.Rational


def _decimal_text(value: sp.Rational, places: int) -> str:
    with decimal.localcontext() as ctx:
        ctx.prec = places + 40
        d = decimal.Decimal(int(value.p)) / decimal.Decimal(int(value.q))
        return str(d.quantize(decimal.Decimal(1).scaleb(-places)))


#: A decimal number shown as written (0.088) that means the exact rational (88/1000).
Decimal = notation(
    "Decimal",
    lambda printer, value, places: _decimal_text(value, int(places)),
    lambda value, places: value,
    nargs=2,
)


def dec(text: str) -> sp.Expr:
    """``dec("0.088")``: exactly 88/1000, printed as 0.088."""
    places = len(text.split(".")[1]) if "." in text else 0
    value = sp.Rational(text)  # from the decimal string: exact, never a binary float
    return Decimal(abs(value), places) * (-1 if value < 0 else 1)


KLtwo = notation(
    "KLtwo",
    r"D_{\mathrm{KL}}\left((#1, #2) \,\|\, (#3, #4)\right)",
    lambda p1, p2, q1, q2: p1 * sp.log(p1 / q1) + p2 * sp.log(p2 / q2),
    nargs=4,
)

P = (dec("0.7"), dec("0.3"))  # sunny 70%, rainy 30%: exactly 7/10 and 3/10
Q = (dec("0.5"), dec("0.5"))  # the 50/50 forecast
FORWARD = KLtwo(*P, *Q)
REVERSE = KLtwo(*Q, *P)
FORWARD_EXACT = R(7, 10) * sp.log(R(7, 5)) + R(3, 10) * sp.log(R(3, 5))
REVERSE_EXACT = sp.log(R(25, 21)) / 2

# 30 significant digits (computed with mpmath at 60 digits; the Numeric checks verify
# them at 50 digits to within half a unit of the 30th digit).
FORWARD_NATS = "0.0822828785050518463915611582608"
FORWARD_BITS = "0.118709100769307381775180775757"
REVERSE_NATS = "0.0871766935723888763504603430433"
REVERSE_BITS = "0.125769383497982203422465298900"


def _thirty_digits(text: str) -> Numeric:
    digits = text.split(".")[1]
    last = len(digits)  # position of the 30th significant digit after the point
    # Half a unit in the 30th digit, relative to the value: what "30 digits" means.
    return Numeric(dps=50, rtol=R(1, 2 * 10**last) / abs(R(text)))


def _three_places(value: str) -> Numeric:
    """Within 0.0005 of ``value`` (three places), as a tolerance relative to it."""
    return Numeric(dps=30, rtol=R(1, 2000) / abs(R(value)))


def _bits(e):
    return e / sp.log(2)


WEATHER_NUMBERS = Derivation(
    id="derivation.weather_numbers",
    title="The post's weather example: exact values, 30 digits, and the 0.088",
    statement="KL((0.7, 0.3)‖(0.5, 0.5)) = 0.7 ln(7/5) + 0.3 ln(3/5) ≈ 0.0823 nats "
    "(0.1187 bits); KL((0.5, 0.5)‖(0.7, 0.3)) = ½ ln(25/21) ≈ 0.0872 nats (0.1258 bits). "
    "The post's 0.088 for the reverse direction is a rounding artefact.",
    assumptions=(
        "P = (7/10, 3/10), Q = (1/2, 1/2) as exact rationals (never Rational(0.7), the "
        "binary float)",
    ),
    symbols={},
    chains=(
        Chain(
            title="Forward, nats",
            start=FORWARD,
            steps=(
                Step(FORWARD_EXACT, "the definition with 0.7/0.5 = 7/5, 0.3/0.5 = 3/5", Proved()),
                Step(
                    dec(FORWARD_NATS),
                    "30 significant digits",
                    _thirty_digits(FORWARD_NATS),
                    relation="≈",
                ),
            ),
        ),
        Chain(
            title="Forward, bits",
            start=_bits(FORWARD),
            steps=(
                Step(_bits(FORWARD_EXACT), "bits are nats divided by ln 2", Proved()),
                Step(
                    dec(FORWARD_BITS),
                    "30 significant digits",
                    _thirty_digits(FORWARD_BITS),
                    relation="≈",
                ),
            ),
        ),
        Chain(
            title="Reverse, nats",
            start=REVERSE,
            steps=(
                Step(
                    sp.log(R(5, 7)) / 2 + sp.log(R(5, 3)) / 2,
                    "the definition with the arguments swapped",
                    Proved(),
                ),
                Step(REVERSE_EXACT, "ln a + ln b = ln ab for a, b > 0", Proved()),
                Step(
                    dec(REVERSE_NATS),
                    "30 significant digits: 0.087 to three places, not 0.088",
                    _thirty_digits(REVERSE_NATS),
                    relation="≈",
                ),
            ),
        ),
        Chain(
            title="Reverse, bits",
            start=_bits(REVERSE),
            steps=(
                Step(_bits(REVERSE_EXACT), "bits are nats divided by ln 2", Proved()),
                Step(
                    dec(REVERSE_BITS),
                    "30 significant digits",
                    _thirty_digits(REVERSE_BITS),
                    relation="≈",
                ),
            ),
        ),
        Chain(
            title="How the post got 0.088",
            start=sp.log(R(5, 7)) / 2 + sp.log(R(5, 3)) / 2,
            steps=(
                Step(
                    dec("0.5") * dec("-0.336") + dec("0.5") * dec("0.511"),
                    "the post rounds each log to three places: ln(5/7) ≈ −0.336, "
                    "ln(5/3) ≈ 0.511 (each within 0.0005)",
                    _three_places("0.0875"),
                    relation="≈",
                ),
                Step(dec("-0.168") + dec("0.2555"), "exact products", Proved()),
                Step(
                    dec("-0.168") + dec("0.256"),
                    "the post rounds 0.2555 up to 0.256",
                    _three_places("0.088"),
                    relation="≈",
                ),
                Step(dec("0.088"), "exact difference: the post's number", Proved()),
            ),
        ),
        Chain(
            title="The post's forward arithmetic, for comparison",
            start=FORWARD_EXACT,
            steps=(
                Step(
                    dec("0.7") * dec("0.336") + dec("0.3") * dec("-0.511"),
                    "the same three-place logs",
                    _three_places("0.0819"),
                    relation="≈",
                ),
                Step(dec("0.2352") - dec("0.1533"), "exact products", Proved()),
                Step(dec("0.0819"), "exact difference; the post's 0.082 is right", Proved()),
            ),
        ),
    ),
    conclusion="Forward KL = 0.08228... nats (0.11871... bits); reverse KL = 0.08718... nats "
    "(0.12577... bits), so the post's 0.082 is right and its 0.088 is not: rounding the logs "
    "to three places and then the product 0.2555 up to 0.256 gives −0.168 + 0.256 = 0.088, "
    "while the value is 0.087 to three places. (Even the unrounded products of the rounded "
    "logs, ½(0.511 − 0.336) = 0.0875, sit exactly on a rounding boundary.) The asymmetry "
    "the post illustrates is real, 0.0823 vs 0.0872.",
    clause_ids=("example.weather.forward", "example.weather.reverse", "units.base"),
    numeric_crosscheck="tests/test_derivation_crosschecks.py::test_weather_numbers_match_the_reference",
    honesty="The 30-digit values are numeric (mpmath at 50 digits, within half a unit of "
    "the 30th digit); the exact forms and the post's arithmetic are proved.",
)
