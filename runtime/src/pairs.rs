//! `PAIRS`: the currency pairs a service works on, the same option in every binary.

use btc_contract::Pair;
use btc_contract::names::DEFAULT_PAIRS;

#[derive(Debug, Clone, clap::Args)]
pub struct PairsArgs {
    /// Currency pairs, ASSET-CURRENCY comma-separated: each is its own ticks subject, state key
    /// and window. Give every component of a deployment the same list; aggregator replicas may
    /// split it between them (README, "Pairs").
    #[arg(long = "pairs", env = "PAIRS", value_delimiter = ',', default_value = DEFAULT_PAIRS)]
    pairs: Vec<Pair>,
}

impl PairsArgs {
    pub fn new(pairs: Vec<Pair>) -> Self {
        Self { pairs }
    }

    /// The pairs in the order given, without repeats.
    pub fn pairs(&self) -> Vec<Pair> {
        let mut unique: Vec<Pair> = Vec::with_capacity(self.pairs.len());
        for pair in &self.pairs {
            if !unique.contains(pair) {
                unique.push(pair.clone());
            }
        }
        unique
    }
}

impl Default for PairsArgs {
    fn default() -> Self {
        Self::new(Pair::defaults())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        pairs: PairsArgs,
    }

    #[test]
    fn pairs_default_to_the_contract_s_list_and_drop_repeats() {
        let defaults = Cli::try_parse_from(["cli"]).expect("defaults");
        assert_eq!(defaults.pairs.pairs(), Pair::defaults());
        let given = Cli::try_parse_from(["cli", "--pairs", "eth-usd,BTC-USD,ETH-USD"]).expect("a list");
        assert_eq!(given.pairs.pairs().iter().map(Pair::as_str).collect::<Vec<_>>(), ["ETH-USD", "BTC-USD"]);
    }

    #[test]
    fn a_bad_pair_is_refused_naming_it() {
        let error = Cli::try_parse_from(["cli", "--pairs", "BTC-USD,BTCUSD"]).expect_err("refused");
        assert!(error.to_string().contains("\"BTCUSD\" is not a pair"), "{error}");
    }
}
