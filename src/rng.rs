//! The one seeded pseudo-random generator (Knuth's MMIX linear
//! congruential generator) for everything that needs reproducible numbers:
//! the tiny test model's weights, training's sampling, tests, benchmarks.
//! The same numbers on every machine; not for anything secret.

/// The generator's state; each step returns the new state, whose high bits
/// are the good ones.
#[derive(Clone, Debug)]
pub struct Lcg(pub u64);

impl Lcg {
    /// A generator whose first state is `seed`.
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    /// Advances and returns the new state.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// The top 31 bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 33) as u32
    }

    /// Uniform in [0, 1) with 24 bits.
    pub fn unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// The top byte.
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}
