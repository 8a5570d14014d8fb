//! One sender per wallet and chain. Two processes sending from one account race for nonces
//! ("nonce too low", transactions replacing each other); the lease makes the second one wait
//! or stop with a clear message instead. On one machine it is an OS file lock, released by the
//! kernel when its holder exits or dies, so a crash never leaves it held. In AWS the mint
//! queue is FIFO with one message group per wallet, which gives the same guarantee.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use latentmint_core::EvmAddress;

use crate::ChainError;

/// The right to send from one wallet on one chain, held until dropped.
#[derive(Debug)]
pub struct WalletLease {
    _file: File,
    path: PathBuf,
}

impl WalletLease {
    /// The lock file for `wallet` on `chain_id` under `dir` (one `dir` per machine, e.g. the
    /// system temp dir, so separate data folders still share it).
    pub fn path(dir: &Path, chain_id: u64, wallet: EvmAddress) -> PathBuf {
        dir.join(format!("wallet-{chain_id}-{}.lock", wallet.to_checksum().to_lowercase()))
    }

    /// Takes the lease, waiting up to `wait` for another holder to let go.
    pub fn acquire(dir: &Path, chain_id: u64, wallet: EvmAddress, wait: Duration) -> Result<Self, ChainError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ChainError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let path = Self::path(dir, chain_id, wallet);
        let file =
            File::create(&path).map_err(|e| ChainError::Config(format!("cannot create {}: {e}", path.display())))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file, path }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(ChainError::Config(format!(
                        "another latentmint process is sending from wallet {} on chain {chain_id} (lock {}); one sender per wallet keeps nonces in order: stop it, or give this run another signer",
                        wallet.to_checksum(),
                        path.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(ChainError::Config(format!("cannot lock {}: {e}", path.display())));
                }
            }
        }
    }

    /// The lock file.
    pub fn lock_path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let w = EvmAddress::from_bytes([7; 20]);
        let first = WalletLease::acquire(dir.path(), 1, w, Duration::ZERO).unwrap();
        let err = WalletLease::acquire(dir.path(), 1, w, Duration::from_millis(200)).unwrap_err().to_string();
        assert!(err.contains("one sender per wallet") && err.contains(&w.to_checksum()), "{err}");
        // Another chain or another wallet is independent.
        let _other_chain = WalletLease::acquire(dir.path(), 2, w, Duration::ZERO).unwrap();
        let _other_wallet =
            WalletLease::acquire(dir.path(), 1, EvmAddress::from_bytes([8; 20]), Duration::ZERO).unwrap();
        drop(first);
        WalletLease::acquire(dir.path(), 1, w, Duration::ZERO).unwrap();
    }
}
