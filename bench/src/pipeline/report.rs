//! Collecting the figures of every run and printing their medians as Markdown tables.

use bench::stats::median;

use crate::freshness::Freshness;

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
    pub catch_up_pairs: Compared,
    pub catch_up_many_pairs: Compared,
    pub publish: Compared,
    pub load_rates: Vec<f64>,
    /// Per run: the service's, and the floor's.
    pub freshness: Vec<(Freshness, Freshness)>,
    /// Per tick rate (ticks/s per pair) and number of pairs: cold start times, and the bare
    /// ordered consumers' read of the same ticks, ms.
    pub cold_starts: Vec<((u64, usize), ColdStarts)>,
}

/// A cold start's times, each beside the bare replay's, ms.
#[derive(Default)]
pub struct ColdStarts {
    /// Restoring the window checkpoints.
    pub restart: Compared,
    /// Without checkpoints: every window replayed.
    pub replay: Compared,
}

/// What the tables' headings state.
pub struct Sizes {
    pub runs: usize,
    pub ticks: u64,
    pub publish_ticks: u64,
    pub freshness_ticks: u64,
    pub load_acks_in_flight: usize,
    pub many_pairs: usize,
    pub many_pairs_seconds: u64,
}

impl Results {
    pub fn cold_start_mut(&mut self, ticks_per_second: u64, pairs: usize) -> &mut ColdStarts {
        let key = (ticks_per_second, pairs);
        let index = match self.cold_starts.iter().position(|(measured, _)| *measured == key) {
            Some(index) => index,
            None => {
                self.cold_starts.push((key, ColdStarts::default()));
                self.cold_starts.len() - 1
            }
        };
        &mut self.cold_starts[index].1
    }

    /// Prints the figures as rows of `make bench`'s one table (`| measure | figure | ceiling, same
    /// run | ratio | target | met |`), with its header unless `rows_only`.
    pub fn print(&self, sizes: &Sizes, rows_only: bool) {
        if !rows_only {
            println!("{TABLE_HEADER}");
        }
        let runs = sizes.runs;
        compared_row(
            &format!("aggregator catch-up over {} ticks, msgs/s (median of {runs})", sizes.ticks),
            "bare pull consumer, explicit acks",
            &self.catch_up,
            Some(0.6),
        );
        compared_row(
            &format!(
                "aggregator catch-up, {} ticks over the 4 default pairs in turn, msgs/s (median of {runs})",
                sizes.ticks
            ),
            "bare pull consumer on the 4 subjects, explicit acks",
            &self.catch_up_pairs,
            Some(0.6),
        );
        compared_row(
            &format!(
                "aggregator catch-up, {} pairs at 1 tick/s for {} s ({} ticks, nearly one state write each), msgs/s = pairs at 1 tick/s one aggregator keeps up with (median of {runs})",
                sizes.many_pairs,
                sizes.many_pairs_seconds,
                sizes.many_pairs as u64 * sizes.many_pairs_seconds
            ),
            "bare pull consumer on the same subjects, explicit acks",
            &self.catch_up_many_pairs,
            None,
        );
        compared_row(
            &format!("publisher path, {} ticks, 1 ack in flight, msgs/s", sizes.publish_ticks),
            "bare JetStream publisher",
            &self.publish,
            None,
        );
        if !self.freshness.is_empty() {
            self.print_freshness(sizes);
        }
        for ((ticks_per_second, pairs), times) in &self.cold_starts {
            let which = if *pairs == 1 { "BTC-USD".to_string() } else { format!("each of {pairs} pairs") };
            let window = format!(
                "full window of {which} at {ticks_per_second} ticks/s ({} ticks)",
                ticks_per_second * 600 * *pairs as u64
            );
            let (ms, floor_ms) = (median(&times.restart.figures), median(&times.restart.ceilings));
            row(
                &format!("cold start (pod restart, from the window checkpoints), {window}: ms to every right average"),
                &format!("{ms:.0}"),
                &format!(
                    "bare ordered consumers reading the window (the replay it avoids; for reference): {floor_ms:.0}"
                ),
                &format!("{:.2}", median(&times.restart.ratios)),
                "<= 1000 ms",
                ms <= 1000.0,
            );
            let (ms, floor_ms) = (median(&times.replay.figures), median(&times.replay.ceilings));
            println!(
                "| first start (no checkpoint: the window replayed), {window}: ms to every right average | {ms:.0} | \
                 bare ordered consumers reading the same ticks: {floor_ms:.0} | {:.2} | — | — |",
                median(&times.replay.ratios)
            );
        }
        if !self.load_rates.is_empty() {
            println!(
                "| loading the stream (informational): async publish, {} acks in flight, msgs/s | {:.0} | — | — | — | — |",
                sizes.load_acks_in_flight,
                median(&self.load_rates)
            );
        }
    }

    /// The freshness row: the service's figures beside the floor's.
    fn print_freshness(&self, sizes: &Sizes) {
        let figures = |which: fn(&(Freshness, Freshness)) -> &Freshness| {
            let of = |field: fn(&Freshness) -> f64| {
                median(&self.freshness.iter().map(|run| field(which(run))).collect::<Vec<_>>())
            };
            (of(|f| f.p50_ms), of(|f| f.p99_ms), of(|f| f.max_ms))
        };
        let ((p50, p99, max), (floor_p50, floor_p99, floor_max)) = (figures(|run| &run.0), figures(|run| &run.1));
        let ratio =
            median(&self.freshness.iter().map(|(service, floor)| service.p99_ms / floor.p99_ms).collect::<Vec<_>>());
        row(
            &format!(
                "freshness, publisher ack to served, {} ticks: p50 / p99 / max ms (median of {})",
                sizes.freshness_ticks, sizes.runs
            ),
            &format!("{p50:.2} / {p99:.2} / {max:.2}"),
            &format!(
                "floor: bare async-nats publish, consumer, KV put, KV watch: {floor_p50:.2} / {floor_p99:.2} / {floor_max:.2}"
            ),
            &format!("{ratio:.2} (p99)"),
            "p99 <= 2x the floor's",
            ratio <= 2.0,
        );
    }
}

/// The header of `make bench`'s table (bench/run.sh prints the same).
const TABLE_HEADER: &str = "| measure | figure | ceiling, same run | ratio | target | met |\n|---|---|---|---|---|---|";

fn row(measure: &str, figure: &str, ceiling: &str, ratio: &str, target: &str, met: bool) {
    println!("| {measure} | {figure} | {ceiling} | {ratio} | {target} | {} |", if met { "yes" } else { "**no**" });
}

/// The row of `compared`, if it was measured (`PARTS`).
fn compared_row(measure: &str, ceiling: &str, compared: &Compared, target_ratio: Option<f64>) {
    if compared.figures.is_empty() {
        return;
    }
    let ratio = median(&compared.ratios);
    let figure = format!("{:.0}", median(&compared.figures));
    let ceiling = format!("{ceiling}: {:.0}", median(&compared.ceilings));
    match target_ratio {
        Some(target) => {
            row(measure, &figure, &ceiling, &format!("{ratio:.2}"), &format!(">= {target}"), ratio >= target)
        }
        None => println!("| {measure} | {figure} | {ceiling} | {ratio:.2} | — | — |"),
    }
}
