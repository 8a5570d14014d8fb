// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title BlockNumber
/// @notice The chain's own block number, the one its logs are indexed by. On Arbitrum
///         `block.number` is an estimate of the L1 block; the L2's own number comes from the
///         ArbSys precompile. Elsewhere (and on a local node) nothing answers there, and
///         `block.number` is the chain's own.
library BlockNumber {
    /// @dev ArbSys, at 0x64 on every Arbitrum chain.
    address internal constant ARB_SYS = address(100);

    function current() internal view returns (uint256) {
        (bool ok, bytes memory ret) = ARB_SYS.staticcall(abi.encodeWithSignature("arbBlockNumber()"));
        if (ok && ret.length == 32) return abi.decode(ret, (uint256));
        return block.number;
    }
}
