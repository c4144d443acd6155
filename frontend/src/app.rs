//! Which frontend a process is: its name, default addresses and whether it follows the price state.

use std::net::SocketAddr;

/// The two frontends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    BitcoinApi,
    RestApi,
}

impl App {
    pub fn name(self) -> &'static str {
        match self {
            App::BitcoinApi => "bitcoin-api",
            App::RestApi => "rest-api",
        }
    }

    pub fn default_listen_addr(self) -> SocketAddr {
        match self {
            App::BitcoinApi => SocketAddr::from(([0, 0, 0, 0], 8080)),
            App::RestApi => SocketAddr::from(([0, 0, 0, 0], 8081)),
        }
    }

    /// True for the app that serves the price state (and so needs NATS).
    pub fn serves_state(self) -> bool {
        self == App::BitcoinApi
    }

    /// The default address of the ops port (`/metrics`, `/liveness`, `/readiness`).
    pub fn default_ops_addr(self) -> SocketAddr {
        match self {
            App::BitcoinApi => SocketAddr::from(([0, 0, 0, 0], 9092)),
            App::RestApi => SocketAddr::from(([0, 0, 0, 0], 9093)),
        }
    }
}
