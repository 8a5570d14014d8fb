// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title NodeInterfaceStub
/// @notice Stands in for Arbitrum's NodeInterface (a virtual contract at 0x…C8 that only
/// Arbitrum nodes answer) on anvil, so the minter's Arbitrum fee path runs against a real node in
/// tests. Like the real one, the L1 part grows with the calldata posted to L1 (16 gas per byte,
/// scaled by an L1/L2 price ratio); the L2 part is a fixed 250,000. Never deployed to a chain.
contract NodeInterfaceStub {
    /// @notice Splits a gas estimate into its total and its L1 component.
    function gasEstimateComponents(address, bool, bytes calldata data)
        external
        payable
        returns (uint64 gasEstimate, uint64 gasEstimateForL1, uint256 baseFee, uint256 l1BaseFeeEstimate)
    {
        gasEstimateForL1 = uint64(data.length * 16 * 50);
        gasEstimate = 250_000 + gasEstimateForL1;
        baseFee = block.basefee;
        l1BaseFeeEstimate = 30 gwei;
    }
}
