//! `numpy.mean` of a float64 vector, bit for bit: numpy adds with pairwise summation (blocks
//! of eight partial sums, halves above 128 elements), and the last bits of the E2E scores
//! depend on that order.

/// numpy's `np.mean(np.array(values))`; NaN for an empty slice, as numpy gives.
pub fn np_mean(values: &[f64]) -> f64 {
    pairwise_sum(values) / values.len() as f64
}

/// numpy's `pairwise_sum` for contiguous float64 data.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for (j, slot) in r.iter_mut().enumerate() {
                *slot += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[full..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_in_numpys_order() {
        // Expected from numpy 2.4: np.sum(np.array([1.0 / (i + 1) for i in range(24)]))
        // is 3.775958177753507; a left-to-right sum gives 3.7759581777535067.
        let v: Vec<f64> = (0..24).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        assert_eq!(pairwise_sum(&v), 3.775958177753507);
        assert_eq!(v.iter().fold(0.0, |acc, x| acc + x), 3.7759581777535067);
    }
}
