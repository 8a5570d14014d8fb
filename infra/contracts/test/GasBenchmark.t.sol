// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {BaselineURIStorage} from "../src/baseline/BaselineURIStorage.sol";
import {LatentCollection} from "../src/LatentCollection.sol";
import {TestBase} from "./Vm.sol";

/// Side by side in one forge run, for `forge snapshot` (.gas-snapshot): the OpenZeppelin
/// URIStorage baseline and LatentCollection, single mint, 100 to one recipient, 100 to 100,
/// with the per-job guard in force. Execution gas only; gas-bench.sh measures whole receipts
/// on anvil (GAS.md, checked by CI). Each test checks what it minted, so a bench that mints
/// nothing fails, and holds the goals in execution gas (a receipt adds the 21,000 base and the
/// calldata: gas-bench.sh checks the goals on receipts).
contract GasBenchmark is TestBase {
    BaselineURIStorage internal base;
    LatentCollection internal coll;
    /// The baseline's single mint to a fresh recipient, in execution gas (measured in setUp).
    uint256 internal baselineSingle;
    string internal constant URI = "ipfs://bafkreiekdcmnu7rxajwv5pzhvhunmdtxcnahqvhbakdlvz7dhpnhiuuclu";
    bytes32 internal constant DIGEST = 0x8a1898da7e37026d5ebf27a9e8d60e77134078548e10286bafe337b4e8a282a3;
    bytes32 internal constant DIR = 0x2b64c6d9afd8a34ed0dbf35f7de171a8825a50d9f42f05e98fe2b1addf00ab44;

    function job(uint64 position) internal pure returns (bytes32) {
        return bytes32(((uint256(keccak256(abi.encode(position))) >> 64) << 64) | position);
    }

    function jobs(uint64 from, uint256 n) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            l[i] = job(from + uint64(i));
        }
    }

    function setUp() public {
        base = new BaselineURIStorage(address(this));
        coll = new LatentCollection("N", "N", address(this), address(this), address(this), 500, "");
        // Warm both counters alike, and the position word of the collection's first jobs.
        base.safeMint(address(0xF00), URI);
        coll.mint(address(0xF01), job(0), keccak256("warm"));
        uint256 g = gasleft();
        base.safeMint(address(0xF02), URI);
        baselineSingle = g - gasleft();
    }

    function test_baseline_single() public {
        base.safeMint(address(0x1001), URI);
        assertEq(base.balanceOf(address(0x1001)), 1, "minted");
    }

    function test_ours_single() public {
        uint256 g = gasleft();
        uint256 id = coll.mint(address(0x1002), job(1), DIGEST);
        uint256 used = g - gasleft();
        assertEq(coll.ownerOf(id), address(0x1002), "minted");
        assertTrue(used <= baselineSingle / 2, "single mint above half the baseline");
    }

    function test_baseline_100_to_one() public {
        for (uint256 i; i < 100; ++i) {
            base.safeMint(address(0x1003), URI);
        }
        assertEq(base.balanceOf(address(0x1003)), 100, "minted");
    }

    function test_ours_batch_100_to_one() public {
        bytes32[] memory l = jobs(1000, 100);
        uint256 g = gasleft();
        coll.mintBatch(keccak256("b1"), address(0x1004), l, DIR, keccak256("root"));
        uint256 used = g - gasleft();
        assertEq(coll.balanceOf(address(0x1004)), 100, "minted");
        assertTrue(used / 100 <= 5_000, "batch to one above 5,000 per token");
    }

    function test_baseline_100_to_100() public {
        for (uint256 i; i < 100; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            base.safeMint(address(uint160(0x20000 + i)), URI);
        }
        assertEq(base.balanceOf(address(0x20063)), 1, "minted");
    }

    function test_ours_batch_100_to_100() public {
        address[] memory to = new address[](100);
        for (uint256 i; i < 100; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            to[i] = address(uint160(0x30000 + i));
        }
        bytes32[] memory l = jobs(2000, 100);
        uint256 g = gasleft();
        coll.mintBatchTo(keccak256("b2"), to, l, DIR, keccak256("root"));
        uint256 used = g - gasleft();
        assertEq(coll.balanceOf(address(0x30063)), 1, "minted");
        assertTrue(used / 100 <= 55_000, "batch to many above 55,000 per token");
    }
}
