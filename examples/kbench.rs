use lmic::model::kernels::Linear;
use std::time::Instant;
fn main() {
    for &(m, k, n) in &[
        (2048usize, 576usize, 1536usize),
        (64, 576, 1536),
        (8, 576, 1536),
        (1, 576, 1536),
        (2048, 64, 128),
    ] {
        let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 * 0.01).collect();
        let l = Linear::new(&w, n, k);
        let mut o = vec![0f32; m * n];
        l.forward(&x, m, &mut o);
        let t = Instant::now();
        let reps = (2e10 / (2.0 * (m * n * k) as f64)).max(1.0) as usize;
        for _ in 0..reps {
            l.forward(&x, m, &mut o);
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "m{m} k{k} n{n}: {:.1} GFLOP/s",
            2.0 * (m * n * k * reps) as f64 / s / 1e9
        );
    }
}
