//! Unit tests of the dense kernels against naive loops.

use super::*;

fn rand_vec(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

/// A well-conditioned symmetric positive definite `[n, n]` matrix.
fn spd(n: usize, seed: u64) -> Vec<f64> {
    let x = rand_vec(2 * n * n, seed);
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] =
                (0..2 * n).map(|r| x[r * n + i] * x[r * n + j]).sum::<f64>() + if i == j { 1.0 } else { 0.0 };
        }
    }
    h
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn gemm_matches_naive_with_offsets_edges_and_k_blocks() {
    let (m, n, k, ldc, c_off) = (13, 37, 2 * KC + 5, 45, 3);
    let a = rand_vec(m * k, 1);
    let b = rand_vec(k * n, 2);
    let c0 = rand_vec(m * ldc, 3);
    let kr = |_: usize, _: usize| 0..k;
    let g = Gemm {
        a: View { data: &a, rs: k, cs: 1 },
        b: View { data: &b, rs: n, cs: 1 },
        ldc,
        c_off,
        n,
        alpha: -0.5,
        upper: false,
        k: &kr,
    };
    let mut want = c0.clone();
    for i in 0..m {
        for j in 0..n {
            want[i * ldc + c_off + j] -= 0.5 * (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum::<f64>();
        }
    }
    for threads in [1, 2, 3, 8] {
        let mut c = c0.clone();
        run_parallel(&g, &mut c, m, threads);
        assert!(max_abs_diff(&c, &want) < 1e-12, "threads {threads}");
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    // A triangular summation range (as in tri_inv_lower_in_place) over several KC blocks.
    let n = 3 * KC + 17;
    let x = rand_vec(n * n, 4);
    let kr = |i: usize, j: usize| i.max(j)..n;
    let g = Gemm {
        a: View { data: &x, rs: 1, cs: n },
        b: View { data: &x, rs: n, cs: 1 },
        ldc: n,
        c_off: 0,
        n,
        alpha: 1.0,
        upper: true,
        k: &kr,
    };
    let run = |threads| {
        let mut c = vec![0.0; n * n];
        run_parallel(&g, &mut c, 40, threads);
        c
    };
    let one = run(1);
    for threads in [2, 5, 16] {
        assert!(one == run(threads), "threads {threads}");
    }
}

#[test]
fn cholesky_inverse_and_gram_are_consistent() {
    for n in [1, 7, 64, 65, 200] {
        let h = spd(n, n as u64);
        let mut u = h.clone();
        assert!(cholesky_upper(&mut u, n));
        for i in 0..n {
            for j in 0..n {
                let got: f64 = (0..n).map(|p| u[p * n + i] * u[p * n + j]).sum();
                assert!((got - h[i * n + j]).abs() < 1e-9, "UᵀU n={n}");
                if j < i {
                    assert_eq!(u[i * n + j], 0.0);
                }
            }
        }
        transpose_in_place(&mut u, n);
        let mut x = u.clone();
        tri_inv_lower_in_place(&mut x, n);
        for i in 0..n {
            for j in 0..n {
                let got: f64 = (0..n).map(|p| u[i * n + p] * x[p * n + j]).sum();
                assert!((got - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9, "L·L⁻¹ n={n}");
            }
        }
        let mut hinv = vec![0.0; n * n];
        gram_of_lower(&x, n, &mut hinv);
        let mut f = vec![0.0; n * n];
        assert!(inverse_upper_cholesky(&mut h.clone(), &mut f, n));
        for i in 0..n {
            for j in 0..n {
                let id: f64 = (0..n).map(|p| h[i * n + p] * hinv[p * n + j]).sum();
                assert!((id - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9, "H·H⁻¹ n={n}");
                let got: f64 = (0..n).map(|p| f[p * n + i] * f[p * n + j]).sum();
                assert!((got - hinv[i * n + j]).abs() < 1e-9, "factor of H⁻¹ n={n}");
            }
        }
    }
}

#[test]
fn cholesky_rejects_indefinite_and_non_finite() {
    let mut a = vec![1.0, 2.0, 2.0, 1.0];
    assert!(!cholesky_upper(&mut a, 2));
    let mut b = vec![1.0, 0.0, 0.0, f64::NAN];
    assert!(!cholesky_upper(&mut b, 2));
    assert!(!inverse_upper_cholesky(&mut [0.0; 9], &mut [0.0; 9], 3));
}

#[test]
fn scaled_gram_accumulates_upper_and_mirrors() {
    let (rows, n) = (KC + 3, 21);
    let x: Vec<f32> = rand_vec(rows * n, 9).iter().map(|&v| v as f32).collect();
    let mut h = vec![1.0; n * n];
    add_scaled_gram_f32(&mut h, n, &x, 0.5);
    for i in 0..n {
        for j in 0..n {
            let want = 1.0 + (0..rows).map(|r| 0.25 * f64::from(x[r * n + i]) * f64::from(x[r * n + j])).sum::<f64>();
            assert!((h[i * n + j] - want).abs() < 1e-10);
        }
    }
}

#[test]
fn portable_and_fma_kernels_agree() {
    let (m, n, k) = (9, 19, KC + 9);
    let a = rand_vec(m * k, 5);
    let b = rand_vec(k * n, 6);
    let kr = |_: usize, _: usize| 0..k;
    let g = Gemm {
        a: View { data: &a, rs: k, cs: 1 },
        b: View { data: &b, rs: n, cs: 1 },
        ldc: n,
        c_off: 0,
        n,
        alpha: 1.0,
        upper: false,
        k: &kr,
    };
    let mut portable = vec![0.0; m * n];
    let mut pb = vec![0.0; PANEL * (JB / NR)];
    run_tiles_body::<false>(&g, &mut row_tiles(&mut portable, m, n, 0..n), 0..n, &mut pb);
    let mut dispatched = vec![0.0; m * n];
    run_tiles_with(&g, &mut row_tiles(&mut dispatched, m, n, 0..n), 0..n, &mut Vec::new());
    assert!(max_abs_diff(&portable, &dispatched) < 1e-12);
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            assert!((portable[i * n + j] - want).abs() < 1e-12);
        }
    }
}
