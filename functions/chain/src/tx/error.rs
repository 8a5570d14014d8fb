//! What an error means and what to do about it: a contract's refusal, a node's answer to a raw
//! transaction, an RPC that cannot be reached. Each is sorted into a port error the stage acts
//! on (retry the message, or fail the job).

use latentmint_core::ports::PortError;

alloy::sol! {
    /// OpenZeppelin `Pausable`'s refusal while the contract is paused (both our contracts).
    error EnforcedPause();
    /// OpenZeppelin `AccessControl`'s refusal of a sender without the role.
    error AccessControlUnauthorizedAccount(address account, bytes32 neededRole);
}

/// A failed call or estimate as a port error: the contract's own refusal (decoded with the
/// contract's error interface `I`) and reverts are permanent, the RPC's troubles transient.
/// Two refusals are the operator's to lift, so they are transient: a pause, and a sender
/// without the role (a new key not yet granted it). A job failed for either would never be
/// minted; retried, and resumed by a later submit, it is minted once the operator acts.
pub(crate) fn classify<I: alloy::sol_types::SolInterface + std::fmt::Debug>(
    what: &str,
    e: alloy::contract::Error,
) -> PortError {
    use alloy::contract::Error as E;
    use alloy::sol_types::SolError;
    if let Some(data) = e.as_revert_data() {
        if data.starts_with(&EnforcedPause::SELECTOR) {
            return PortError::Transient(format!(
                "the contract is paused: the {what} waits until a PAUSER_ROLE holder calls unpause()"
            ));
        }
        if let Ok(refused) = AccessControlUnauthorizedAccount::abi_decode(&data) {
            let role = ["MINTER_ROLE", "METADATA_ROLE", "PAUSER_ROLE"]
                .into_iter()
                .find(|name| alloy::primitives::keccak256(name) == refused.neededRole)
                .map_or_else(|| refused.neededRole.to_string(), str::to_string);
            return PortError::Transient(format!(
                "the sending wallet {} lacks {role}, which the {what} needs: it waits until an admin grants it \
                 (grantRole({role}, {}))",
                refused.account, refused.account
            ));
        }
    }
    match &e {
        E::TransportError(t) if t.as_error_resp().is_some() => {
            if let Some(decoded) = e.as_decoded_interface_error::<I>() {
                return PortError::Permanent(format!("the contract refused the {what}: {decoded:?}"));
            }
            let msg = t.to_string();
            match NodeAnswer::of(&msg).when_calling() {
                Recovery::Fail => PortError::Permanent(format!("{what} reverted: {msg}")),
                Recovery::ReadTheChain | Recovery::Replace | Recovery::RetryLater => {
                    PortError::Transient(format!("RPC: {msg}"))
                }
            }
        }
        E::TransportError(t) => PortError::Transient(format!("RPC unreachable: {t}")),
        E::PendingTransactionError(p) => PortError::Transient(format!("waiting for the {what}: {p}")),
        other => PortError::Permanent(other.to_string()),
    }
}

/// What a node's refusal of a call or a raw transaction says, read from its message (nodes
/// answer in text: geth, anvil and the providers in front of them word these the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeAnswer {
    /// `nonce too low`: the nonce is used, by an earlier attempt that was mined or by another
    /// sender of the wallet.
    NonceTooLow,
    /// `already known`: this very transaction is in the node's mempool.
    AlreadyKnown,
    /// `replacement transaction underpriced`, `transaction underpriced`: a transaction with
    /// this nonce waits with higher fees, or the fees are below the node's floor.
    Underpriced,
    /// `execution reverted`: the contract refused it.
    Reverted,
    /// Anything else: the RPC's trouble.
    Other,
}

/// What the sender does about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Ask the chain whether the effect landed; if not, retry the message with a fresh nonce.
    ReadTheChain,
    /// An earlier attempt holds the nonce: raise the fees and replace it.
    Replace,
    /// Retry the message later (the stage's backoff).
    RetryLater,
    /// Never succeeds: the job fails, saying why.
    Fail,
}

impl NodeAnswer {
    /// Sorts a node's error message.
    pub(crate) fn of(message: &str) -> Self {
        let m = message.to_ascii_lowercase();
        if m.contains("nonce too low") {
            Self::NonceTooLow
        } else if m.contains("already known") {
            Self::AlreadyKnown
        } else if m.contains("underpriced") {
            Self::Underpriced
        } else if m.contains("revert") {
            Self::Reverted
        } else {
            Self::Other
        }
    }

    /// What to do about it while sending a raw transaction (the call was estimated first, so
    /// a revert here is the node's trouble, retried).
    pub(crate) fn when_sending(self) -> Recovery {
        match self {
            Self::NonceTooLow => Recovery::ReadTheChain,
            Self::AlreadyKnown | Self::Underpriced => Recovery::Replace,
            Self::Reverted | Self::Other => Recovery::RetryLater,
        }
    }

    /// What to do about it when a call or an estimate fails: a nonce race or a re-broadcast
    /// means the transaction is (being) mined already, so the retry reads the chain; a revert
    /// is the contract's answer.
    pub(crate) fn when_calling(self) -> Recovery {
        match self {
            Self::NonceTooLow | Self::AlreadyKnown | Self::Underpriced => Recovery::ReadTheChain,
            Self::Reverted => Recovery::Fail,
            Self::Other => Recovery::RetryLater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_answers_are_sorted_and_each_has_its_recovery() {
        let cases = [
            (
                "nonce too low: address 0xabc, tx: 5 state: 7",
                NodeAnswer::NonceTooLow,
                Recovery::ReadTheChain,
                Recovery::ReadTheChain,
            ),
            ("already known", NodeAnswer::AlreadyKnown, Recovery::Replace, Recovery::ReadTheChain),
            ("replacement transaction underpriced", NodeAnswer::Underpriced, Recovery::Replace, Recovery::ReadTheChain),
            (
                "transaction underpriced: tip needed 1, tip permitted 0",
                NodeAnswer::Underpriced,
                Recovery::Replace,
                Recovery::ReadTheChain,
            ),
            ("execution reverted: custom error 0x1234", NodeAnswer::Reverted, Recovery::RetryLater, Recovery::Fail),
            (
                "error sending request for url (http://127.0.0.1:1)",
                NodeAnswer::Other,
                Recovery::RetryLater,
                Recovery::RetryLater,
            ),
            ("Nonce too low", NodeAnswer::NonceTooLow, Recovery::ReadTheChain, Recovery::ReadTheChain),
        ];
        for (message, answer, sending, calling) in cases {
            let a = NodeAnswer::of(message);
            assert_eq!((a, a.when_sending(), a.when_calling()), (answer, sending, calling), "{message}");
        }
    }
}
