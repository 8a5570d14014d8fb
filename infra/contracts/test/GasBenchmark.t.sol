// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {BaselineURIStorage} from "../src/baseline/BaselineURIStorage.sol";
import {LatentCollection} from "../src/LatentCollection.sol";

/// Side by side in one forge run, for `forge snapshot` (.gas-snapshot): the OpenZeppelin
/// URIStorage baseline and LatentCollection, single mint, 100 to one recipient, 100 to 100.
/// Execution gas only; gas-bench.sh measures whole receipts on anvil (GAS.md).
contract GasBenchmark {
    BaselineURIStorage internal base;
    LatentCollection internal coll;
    string internal constant URI = "ipfs://bafkreiekdcmnu7rxajwv5pzhvhunmdtxcnahqvhbakdlvz7dhpnhiuuclu";
    bytes32 internal constant DIGEST = 0x8a1898da7e37026d5ebf27a9e8d60e77134078548e10286bafe337b4e8a282a3;
    bytes32 internal constant DIR = 0x2b64c6d9afd8a34ed0dbf35f7de171a8825a50d9f42f05e98fe2b1addf00ab44;

    function setUp() public {
        base = new BaselineURIStorage(address(this));
        coll = new LatentCollection("N", "N", address(this), address(this), address(this), 500, "");
        // Warm both counters alike.
        base.safeMint(address(0xF00), URI);
        coll.mint(address(0xF01), keccak256("warm"), DIGEST);
    }

    function test_baseline_single() public {
        base.safeMint(address(0x1001), URI);
    }

    function test_ours_single() public {
        coll.mint(address(0x1002), keccak256("job"), DIGEST);
    }

    function test_baseline_100_to_one() public {
        for (uint256 i; i < 100; ++i) {
            base.safeMint(address(0x1003), URI);
        }
    }

    function test_ours_batch_100_to_one() public {
        coll.mintBatch(keccak256("b1"), address(0x1004), 100, DIR, keccak256("root"));
    }

    function test_baseline_100_to_100() public {
        for (uint256 i; i < 100; ++i) {
            base.safeMint(address(uint160(0x20000 + i)), URI);
        }
    }

    function test_ours_batch_100_to_100() public {
        address[] memory to = new address[](100);
        for (uint256 i; i < 100; ++i) {
            to[i] = address(uint160(0x30000 + i));
        }
        coll.mintBatchTo(keccak256("b2"), to, DIR, keccak256("root"));
    }
}
