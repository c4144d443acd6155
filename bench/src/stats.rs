//! Order statistics of the measured samples.

/// The nearest-rank `quantile` (0..=1) of sorted `values`.
pub fn percentile<T>(sorted: &[T], quantile: f64) -> Option<&T> {
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1))
}

/// The median of `values` (the lower middle one for an even count, like run.sh).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5).copied().unwrap_or(f64::NAN)
}
