//! The measuring examples' stand-in for the model: an adaptive two-sided
//! geometric code.

/// Bits an adaptive two-sided geometric code spends on `res` (scale: a
/// running mean of |r| with rate 1/16).
pub fn code_bits(res: &[i64]) -> f64 {
    let mut m = 16.0f64;
    let mut bits = 0.0;
    for &r in res {
        let a = r.unsigned_abs() as f64;
        let mm = m.max(0.3);
        let theta = ((1.0 + mm * mm).sqrt() - 1.0) / mm;
        bits += -((1.0 - theta) / (1.0 + theta)).log2() - a * theta.log2();
        m += (a - m) / 16.0;
    }
    bits
}
