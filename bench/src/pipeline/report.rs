//! Collecting the figures of every run and printing their medians as Markdown tables.

use crate::freshness::Freshness;

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

/// A figure and its ceiling, measured in the same run, per run.
#[derive(Default)]
pub struct Compared {
    figures: Vec<f64>,
    ceilings: Vec<f64>,
    ratios: Vec<f64>,
}

impl Compared {
    pub fn push(&mut self, figure: f64, ceiling: f64) {
        self.figures.push(figure);
        self.ceilings.push(ceiling);
        self.ratios.push(figure / ceiling);
    }
}

/// Every figure of every run.
#[derive(Default)]
pub struct Results {
    pub catch_up: Compared,
    pub publish: Compared,
    pub load_rates: Vec<f64>,
    pub freshness: Vec<Freshness>,
    /// Per tick rate (ticks/s): cold start times, ms.
    pub cold_starts: Vec<(u64, Vec<f64>)>,
}

/// What the tables' headings state.
pub struct Sizes {
    pub runs: usize,
    pub ticks: u64,
    pub publish_ticks: u64,
    pub freshness_ticks: u64,
    pub load_acks_in_flight: usize,
}

impl Results {
    pub fn cold_start_mut(&mut self, ticks_per_second: u64) -> &mut Vec<f64> {
        let index = match self.cold_starts.iter().position(|(rate, _)| *rate == ticks_per_second) {
            Some(index) => index,
            None => {
                self.cold_starts.push((ticks_per_second, Vec::new()));
                self.cold_starts.len() - 1
            }
        };
        &mut self.cold_starts[index].1
    }

    pub fn print(&self, sizes: &Sizes) {
        self.print_rates(sizes);
        self.print_freshness(sizes);
        self.print_cold_starts(sizes);
    }

    fn print_rates(&self, sizes: &Sizes) {
        println!();
        println!(
            "## Pipeline (TICKS={}, PUBLISH_TICKS={}, median of {} runs)",
            sizes.ticks, sizes.publish_ticks, sizes.runs
        );
        println!();
        println!("| measure | figure | ceiling | ratio | target |");
        println!("|---|---|---|---|---|");
        compared_row("aggregator catch-up, msgs/s", "bare pull consumer, explicit acks", &self.catch_up, ">= 0.5");
        compared_row("publisher publish, msgs/s (1 ack in flight)", "bare publisher", &self.publish, "—");
        println!();
        println!(
            "Loading the stream (informational): {:.0} msgs/s, async JetStream publish with {} acks in flight \
             (median of {} loads).",
            median(&self.load_rates),
            sizes.load_acks_in_flight,
            self.load_rates.len()
        );
    }

    fn print_freshness(&self, sizes: &Sizes) {
        let of = |field: fn(&Freshness) -> f64| median(&self.freshness.iter().map(field).collect::<Vec<_>>());
        println!();
        println!(
            "## Freshness (publisher ack -> served by bitcoin-api, FRESHNESS_TICKS={}, median of {} runs)",
            sizes.freshness_ticks, sizes.runs
        );
        println!();
        println!("| p50 ms | p99 ms | max ms | target |");
        println!("|---|---|---|---|");
        println!("| {:.2} | {:.2} | {:.2} | p99 <= 10 ms |", of(|f| f.p50_ms), of(|f| f.p99_ms), of(|f| f.max_ms));
    }

    fn print_cold_starts(&self, sizes: &Sizes) {
        println!();
        println!(
            "## Cold start (aggregator spawn -> first right state in KV, full window, median of {} runs)",
            sizes.runs
        );
        println!();
        println!("| window in the stream | ticks | ms | target |");
        println!("|---|---|---|---|");
        for (ticks_per_second, times_ms) in &self.cold_starts {
            println!(
                "| {ticks_per_second} ticks/s over 600 s | {} | {:.0} | <= 1000 |",
                ticks_per_second * 600,
                median(times_ms)
            );
        }
    }
}

fn compared_row(measure: &str, ceiling: &str, compared: &Compared, target: &str) {
    println!(
        "| {measure} | {:.0} | {ceiling}: {:.0} | {:.2} | {target} |",
        median(&compared.figures),
        median(&compared.ceilings),
        median(&compared.ratios)
    );
}
