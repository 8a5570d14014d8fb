// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LatentCollection} from "../LatentCollection.sol";

/// @title UnguardedCollection
/// @notice FOR TESTS ONLY: LatentCollection with its position guard removed, so a job can be
///         minted twice. It is what a collector's check must catch on a contract that does not
///         guard jobs (`latentmint verify --all` lists every job owning two tokens). Never deployed
///         by latentmint outside tests.
contract UnguardedCollection is LatentCollection {
    constructor(address admin) LatentCollection("Unguarded", "UNG", admin, admin, address(0), 0, "") {}

    function _claim(bytes32[] calldata) internal override {}

    function _claimOne(bytes32) internal override {}
}
