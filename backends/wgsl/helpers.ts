/**
 * WGSL helper functions for KIR primitives WGSL lacks or defines differently. A kernel's module
 * includes only the helpers its body uses (sorted, so output stays deterministic).
 *
 * Infinity and NaN come from bit patterns through a `var`: WGSL has no literals for them and
 * rejects non-finite results of constant expressions.
 */
export const HELPERS = {
  tokr_inf_f32: "fn tokr_inf_f32() -> f32 {\n  var b = 0x7f800000u;\n  return bitcast<f32>(b);\n}",
  tokr_nan_f32: "fn tokr_nan_f32() -> f32 {\n  var b = 0x7fc00000u;\n  return bitcast<f32>(b);\n}",
  tokr_inf_f16: "fn tokr_inf_f16() -> f16 {\n  var b = 0x7c007c00u;\n  return bitcast<vec2<f16>>(b).x;\n}",
  tokr_nan_f16: "fn tokr_nan_f16() -> f16 {\n  var b = 0x7e007e00u;\n  return bitcast<vec2<f16>>(b).x;\n}",
  // Integer zero that is not a constant expression (a constant zero divisor does not compile).
  tokr_zero_i32: "fn tokr_zero_i32() -> i32 {\n  var z = 0i;\n  return z;\n}",
  tokr_zero_u32: "fn tokr_zero_u32() -> u32 {\n  var z = 0u;\n  return z;\n}",
  // NaN tests on the bits: drivers may fold `x != x` to false (WGSL lets them assume no NaN).
  tokr_isnan_f32:
    "fn tokr_isnan_f32(x: f32) -> bool {\n  return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;\n}",
  tokr_isnan_f16: "fn tokr_isnan_f16(x: f16) -> bool {\n  return tokr_isnan_f32(f32(x));\n}",
  tokr_eq_f16: "fn tokr_eq_f16(a: f16, b: f16) -> bool {\n  return a == b && !tokr_isnan_f16(a);\n}",
  tokr_ne_f16:
    "fn tokr_ne_f16(a: f16, b: f16) -> bool {\n  return a != b || tokr_isnan_f16(a) || tokr_isnan_f16(b);\n}",
  tokr_eq_f32: "fn tokr_eq_f32(a: f32, b: f32) -> bool {\n  return a == b && !tokr_isnan_f32(a);\n}",
  tokr_ne_f32:
    "fn tokr_ne_f32(a: f32, b: f32) -> bool {\n  return a != b || tokr_isnan_f32(a) || tokr_isnan_f32(b);\n}",
  // min/max that propagate NaN (a + b is NaN when either is).
  tokr_min_f16:
    "fn tokr_min_f16(a: f16, b: f16) -> f16 {\n  return select(min(a, b), a + b, tokr_isnan_f16(a) || tokr_isnan_f16(b));\n}",
  tokr_min_f32:
    "fn tokr_min_f32(a: f32, b: f32) -> f32 {\n  return select(min(a, b), a + b, tokr_isnan_f32(a) || tokr_isnan_f32(b));\n}",
  tokr_max_f16:
    "fn tokr_max_f16(a: f16, b: f16) -> f16 {\n  return select(max(a, b), a + b, tokr_isnan_f16(a) || tokr_isnan_f16(b));\n}",
  tokr_max_f32:
    "fn tokr_max_f32(a: f32, b: f32) -> f32 {\n  return select(max(a, b), a + b, tokr_isnan_f32(a) || tokr_isnan_f32(b));\n}",
  // erf: Maclaurin series (6 terms, truncation < 2e-8) for |x| < 0.5, else Abramowitz & Stegun
  // 7.1.26 (|error| <= 1.5e-7). Measured max |error| in f32 on Dawn/lavapipe: see test/backends.
  tokr_erf: [
    "fn tokr_erf(x: f32) -> f32 {",
    "  let a = abs(x);",
    "  if (a < 0.5f) {",
    "    let x2 = x * x;",
    "    return x * (1.1283791671f + x2 * (-0.37612638903f + x2 * (0.11283791671f + x2 * (-0.026866170645f",
    "      + x2 * (0.0052239776254f + x2 * -0.00085483270235f)))));",
    "  }",
    "  let t = 1.0f / (1.0f + 0.3275911f * a);",
    "  let p = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));",
    "  let y = 1.0f - p * exp(-a * a);",
    "  return select(y, -y, x < 0.0f);",
    "}",
  ].join("\n"),
  // pow with Math.pow's rules (except the sign of (-0)^odd): WGSL pow is undefined for a
  // negative base and for a zero base (lavapipe gives 0^-1 = 0).
  tokr_pow: [
    "fn tokr_pow(a: f32, b: f32) -> f32 {",
    "  if (b == 0.0f) { return 1.0f; }",
    "  var nan = 0x7fc00000u;",
    "  var inf = 0x7f800000u;",
    "  if ((bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u || (bitcast<u32>(b) & 0x7fffffffu) > 0x7f800000u) {",
    "    return bitcast<f32>(nan);",
    "  }",
    "  if (a == 0.0f) { return select(0.0f, bitcast<f32>(inf), b < 0.0f); }",
    "  let r = exp2(b * log2(abs(a)));",
    "  if (a >= 0.0f) { return r; }",
    "  if (floor(b) != b) { return bitcast<f32>(nan); }",
    "  return select(r, -r, floor(b * 0.5f) != b * 0.5f);",
    "}",
  ].join("\n"),
} as const;

export type Helper = keyof typeof HELPERS;
