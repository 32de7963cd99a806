#!/usr/bin/env python3
"""Regenerates the polynomial coefficients and splitting constants of `adjoint_jit::math`.

Run `python3 gen_coefficients.py` (needs `mpmath`, which ships with SymPy) and paste the printed
Rust constants over the ones in exp.rs, log.rs, logistic.rs and trig.rs. Each polynomial is a
Chebyshev near-minimax fit (`mpmath.chebyfit`) of the smooth "remainder" function that the Rust
code evaluates, on the reduced interval plus a small margin for rounding in the reduction, with
the coefficients rounded to the target format. The script also prints the truncation error of
the complete approximation (with the rounded coefficients) as log2 of the maximum relative error.
"""

import struct

import mpmath as mp

mp.mp.dps = 60


def to_f32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def f32_literal(v):
    """The shortest decimal that rounds back to the f32 `v`."""
    for digits in range(1, 12):
        s = "%.*e" % (digits, v)
        if to_f32(float(s)) == v:
            mantissa, exponent = s.split("e")
            return f"{mantissa}e{int(exponent)}"
    raise ValueError(v)


def fit(g, a, b, degree):
    """Coefficients, lowest degree first, of a near-minimax polynomial for g on [a, b]."""
    return mp.chebyfit(g, [a, b], degree + 1)[::-1]


def horner(coeffs, x):
    acc = mp.mpf(0)
    for c in reversed(coeffs):
        acc = acc * x + mp.mpf(c)
    return acc


def max_rel_error(approx, exact, a, b, n=2000):
    worst = mp.mpf(0)
    for i in range(n + 1):
        x = a + (b - a) * mp.mpf(i) / n
        e = exact(x)
        if x != 0 and e != 0:
            worst = max(worst, abs((approx(x) - e) / e))
    return worst


def near_zero(g, limit):
    """g with its removable singularity at 0 filled in by `limit`."""
    return lambda z: limit if abs(z) < mp.mpf("1e-25") else g(z)


def emit(name, g, a, b, degrees, full, exact, lo, hi):
    for kind, degree in degrees:
        if degree is None:
            continue
        c = fit(g, a, b, degree)
        if kind == "f32":
            c = [to_f32(x) for x in c]
            text = ", ".join(f32_literal(x) for x in c)
        else:
            c = [float(x) for x in c]
            text = ", ".join(repr(x) for x in c)
        err = max_rel_error(lambda x: full(c, x), exact, lo, hi)
        print(f"// truncation error 2^{float(mp.log(err, 2)):.1f}")
        print(f"const {name}_{kind.upper()}: [{kind}; {degree + 1}] = [{text}];")


def main():
    # exp: e^r = 1 + r + r^2 P(r), |r| <= 1.01 ln2/2.
    a = mp.log(2) / 2 * mp.mpf("1.01")
    emit(
        "EXP",
        near_zero(lambda r: (mp.exp(r) - 1 - r) / r**2, mp.mpf(1) / 2),
        -a,
        a,
        [("f32", 4), ("f64", 10)],
        lambda c, r: 1 + r + r * r * horner(c, r),
        mp.exp,
        -a,
        a,
    )

    # log: log(1+f) = 2 atanh(s) = 2s + s^3 T(s^2), s = f/(2+f), |s| <= (sqrt2-1)/(sqrt2+1).
    smax = (mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)
    zmax = (smax * mp.mpf("1.0001")) ** 2

    def t(z):
        s = mp.sqrt(z)
        return (2 * mp.atanh(s) - 2 * s) / (s * z)

    t = near_zero(t, mp.mpf(2) / 3)
    emit(
        "LOG",
        t,
        0,
        zmax,
        [("f32", 3), ("f64", 6)],
        lambda c, s: 2 * s + s**3 * horner(c, s * s),
        lambda s: 2 * mp.atanh(s),
        -smax,
        smax,
    )
    # Double-length log for pow: the 2/3 term is exact, the rest T1(z) = (T(z) - 2/3) / z.
    emit(
        "LOG_TAIL",
        near_zero(lambda z: (t(z) - mp.mpf(2) / 3) / z, mp.mpf(2) / 5),
        0,
        zmax,
        [("f64", 7)],
        lambda c, s: 2 * s + 2 * s**3 / 3 + s**5 * horner(c, s * s),
        lambda s: 2 * mp.atanh(s),
        -smax,
        smax,
    )

    # tanh: x + x^3 P(x^2) for |x| < 0.625.
    x = mp.mpf("0.625")
    emit(
        "TANH",
        near_zero(lambda z: (mp.tanh(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)), -mp.mpf(1) / 3),
        0,
        x * x,
        [("f32", 4), ("f64", 10)],
        lambda c, x: x + x**3 * horner(c, x * x),
        mp.tanh,
        0,
        x,
    )

    # sin and cos on |r| <= 1.02 pi/4.
    x = mp.pi / 4 * mp.mpf("1.02")
    emit(
        "SIN",
        near_zero(lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / (z * mp.sqrt(z)), -mp.mpf(1) / 6),
        0,
        x * x,
        [("f32", 2), ("f64", 5)],
        lambda c, r: r + r**3 * horner(c, r * r),
        mp.sin,
        0,
        x,
    )
    emit(
        "COS",
        near_zero(lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / (z * z), mp.mpf(1) / 24),
        0,
        x * x,
        [("f32", 2), ("f64", 5)],
        lambda c, r: 1 - r * r / 2 + r**4 * horner(c, r * r),
        mp.cos,
        0,
        x,
    )

    # Splitting constants.
    def truncate(v, bits):
        e = mp.floor(mp.log(abs(v), 2))
        scale = mp.mpf(2) ** (bits - 1 - e)
        return mp.sign(v) * mp.floor(abs(v) * scale) / scale

    half_pi = mp.pi / 2
    c1 = to_f32(half_pi)
    c2 = to_f32(half_pi - c1)
    c3 = to_f32(half_pi - c1 - c2)
    print("PIO2_FMA_F32:", [f32_literal(v) for v in (c1, c2, c3)])
    d1 = float(half_pi)
    d2 = float(half_pi - d1)
    d3 = float(half_pi - d1 - d2)
    print("PIO2_FMA_F64:", [repr(v) for v in (d1, d2, d3)])
    rest, pieces = half_pi, []
    for _ in range(3):
        p = truncate(rest, 33)
        pieces.append(float(p))
        rest -= p
    pieces.append(float(rest))
    print("PIO2_SPLIT_F64 (33-bit pieces):", [repr(v) for v in pieces])
    ln2_hi32 = 0.693359375  # 355/512
    print("LN2_F32: hi", ln2_hi32, "lo", f32_literal(to_f32(mp.log(2) - ln2_hi32)))
    ln2_hi64 = float(truncate(mp.log(2), 32))
    print("LN2_F64: hi", repr(ln2_hi64), "lo", repr(float(mp.log(2) - ln2_hi64)))
    two_thirds = float(mp.mpf(2) / 3)
    print("TWO_THIRDS: hi", repr(two_thirds), "lo", repr(float(mp.mpf(2) / 3 - two_thirds)))
    print("PIO2_F64 (rem_pio2.rs): hi", repr(d1), "lo", repr(d2))

    # The binary expansion of 2/pi for the full-range reduction (rem_pio2.rs): word k holds
    # the bits of weight 2^-(64k+1) .. 2^-(64k+64).
    with mp.workdps(500):
        bits = int(mp.floor(2 / mp.pi * mp.mpf(2) ** (64 * TWO_OVER_PI_WORDS)))
    words = [(bits >> (64 * (TWO_OVER_PI_WORDS - 1 - k))) & (2**64 - 1) for k in range(TWO_OVER_PI_WORDS)]
    print(f"TWO_OVER_PI: [u64; {TWO_OVER_PI_WORDS}] =")
    for w in words:
        print(f"    0x{w:016x},")

# Enough words of 2/pi for the largest f64 exponent plus four words of product (rem_pio2.rs).
TWO_OVER_PI_WORDS = 20


if __name__ == "__main__":
    main()
