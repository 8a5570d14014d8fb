// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LatentEditions} from "../src/LatentEditions.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {TestBase} from "./Vm.sol";

contract LatentEditionsTest is TestBase {
    LatentEditions internal e;
    address internal admin = address(0xA11CE);
    address internal minter = address(0xB0B);
    address internal alice = address(0xA1);
    bytes32 internal constant HELLO = 0xb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9; // sha256("hello world")

    function setUp() public {
        e = new LatentEditions(admin, minter, admin, 750, "ipfs://editions");
    }

    function _edition(bytes32 job, uint128 cap) internal returns (uint256) {
        vm.prank(minter);
        return e.createEdition(job, HELLO, cap);
    }

    function test_an_edition_mints_copies_and_resolves_its_cid() public {
        uint256 id = _edition(keccak256("job"), 10);
        assertEq(id, 1, "first edition");
        vm.prank(minter);
        e.mint(keccak256("order-1"), id, alice, 3);
        assertEq(e.balanceOf(alice, id), 3, "copies");
        assertEq(e.totalSupply(id), 3, "supply");
        assertEq(e.uri(id), "ipfs://bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", "uri");
        assertTrue(e.verifyMetadata(id, "hello world"), "metadata verifies");
        assertTrue(!e.verifyMetadata(id, "hello"), "other bytes do not");
        (address receiver, uint256 royalty) = e.royaltyInfo(id, 10_000);
        assertEq(receiver, admin, "royalty receiver");
        assertEq(royalty, 750, "royalty");
    }

    function test_a_job_makes_one_edition_and_a_key_mints_once() public {
        uint256 id = _edition(keccak256("job"), 0);
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(LatentEditions.EditionExists.selector, keccak256("job"), id));
        e.createEdition(keccak256("job"), HELLO, 0);
        vm.startPrank(minter);
        e.mint(keccak256("order"), id, alice, 2);
        vm.expectRevert(abi.encodeWithSelector(LatentEditions.AlreadyMinted.selector, keccak256("order"), id));
        e.mint(keccak256("order"), id, alice, 2);
        vm.stopPrank();
        assertEq(e.balanceOf(alice, id), 2, "one mint");
    }

    function test_the_cap_holds_and_bad_arguments_are_named() public {
        uint256 id = _edition(keccak256("job"), 5);
        vm.startPrank(minter);
        e.mint(keccak256("a"), id, alice, 4);
        vm.expectRevert(abi.encodeWithSelector(LatentEditions.SoldOut.selector, id, uint256(5), uint256(4), uint256(2)));
        e.mint(keccak256("b"), id, alice, 2);
        e.mint(keccak256("c"), id, alice, 1);
        vm.expectRevert(abi.encodeWithSelector(LatentEditions.UnknownEdition.selector, uint256(9)));
        e.mint(keccak256("d"), 9, alice, 1);
        vm.expectRevert(abi.encodeWithSelector(LatentEditions.EmptyArgument.selector, "amount"));
        e.mint(keccak256("e"), id, alice, 0);
        vm.expectRevert(abi.encodeWithSelector(LatentEditions.EmptyArgument.selector, "metadataDigest"));
        e.createEdition(keccak256("job2"), bytes32(0), 0);
        vm.stopPrank();
        assertEq(e.totalSupply(id), 5, "sold out at the cap");
    }

    function test_roles_guard_create_mint_update_and_pause() public {
        bytes32 role = e.MINTER_ROLE();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        e.createEdition(keccak256("job"), HELLO, 0);
        uint256 id = _edition(keccak256("job"), 0);
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        e.mint(keccak256("k"), id, alice, 1);

        bytes32 mrole = e.METADATA_ROLE();
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, minter, mrole));
        e.setURI(id, "ipfs://evolved");
        vm.prank(admin);
        e.setURI(id, "ipfs://evolved");
        assertEq(e.uri(id), "ipfs://evolved", "override");

        vm.prank(admin);
        e.pause();
        vm.prank(minter);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        e.mint(keccak256("k"), id, alice, 1);
        vm.prank(admin);
        e.unpause();
        vm.prank(minter);
        e.mint(keccak256("k"), id, alice, 1);
        assertEq(e.balanceOf(alice, id), 1, "minted after unpause");
    }

    function test_interfaces() public view {
        assertTrue(e.supportsInterface(0xd9b67a26), "ERC-1155");
        assertTrue(e.supportsInterface(0x0e89341c), "ERC-1155 metadata URI");
        assertTrue(e.supportsInterface(0x2a55205a), "ERC-2981");
        assertTrue(e.supportsInterface(0x7965db0b), "AccessControl");
        assertEq(e.contractURI(), "ipfs://editions", "ERC-7572");
    }

    /// Fuzz: any sequence of two mints never passes the cap, and the supply is their sum.
    function testFuzz_mints_never_pass_the_cap(uint128 cap, uint128 a, uint128 b) public {
        cap = uint128(bound(cap, 1, 1e6));
        a = uint128(bound(a, 1, 2e6));
        b = uint128(bound(b, 1, 2e6));
        uint256 id = _edition(keccak256("job"), cap);
        vm.startPrank(minter);
        uint256 total;
        if (a <= cap) {
            e.mint(keccak256("a"), id, alice, a);
            total = a;
        } else {
            vm.expectRevert(abi.encodeWithSelector(LatentEditions.SoldOut.selector, id, uint256(cap), uint256(0), uint256(a)));
            e.mint(keccak256("a"), id, alice, a);
        }
        if (total + b <= cap) {
            e.mint(keccak256("b"), id, alice, b);
            total += b;
        } else {
            vm.expectRevert(abi.encodeWithSelector(LatentEditions.SoldOut.selector, id, uint256(cap), total, uint256(b)));
            e.mint(keccak256("b"), id, alice, b);
        }
        vm.stopPrank();
        assertEq(e.totalSupply(id), total, "supply is the sum of accepted mints");
        assertEq(e.balanceOf(alice, id), total, "balance");
        assertTrue(total <= cap, "cap");
    }

    function bound(uint128 x, uint128 lo, uint128 hi) internal pure returns (uint128) {
        return lo + x % (hi - lo + 1);
    }
}

/// Random calls for the invariant run: editions, mints with reused keys, over-cap asks.
contract EditionsHandler {
    LatentEditions public e;
    uint256 public acceptedCopies;
    bytes32[] public usedKeys;

    constructor(LatentEditions e_) {
        e = e_;
    }

    function create(uint8 job, uint8 cap) external {
        try e.createEdition(keccak256(abi.encode("job", job)), keccak256(abi.encode(job)), cap % 20) {} catch {}
    }

    function mint(uint8 key, uint8 edition, uint8 amount) external {
        uint256 id = edition % (e.editionCount() + 1);
        try e.mint(keccak256(abi.encode("key", key)), id, address(this), amount % 8) {
            acceptedCopies += amount % 8;
            usedKeys.push(keccak256(abi.encode("key", key)));
        } catch {}
    }

    function usedKeyCount() external view returns (uint256) {
        return usedKeys.length;
    }

    function onERC1155Received(address, address, uint256, uint256, bytes calldata) external pure returns (bytes4) {
        return this.onERC1155Received.selector;
    }
}

contract LatentEditionsInvariants is TestBase {
    LatentEditions internal e;
    EditionsHandler internal h;

    function setUp() public {
        e = new LatentEditions(address(this), address(this), address(0), 0, "");
        h = new EditionsHandler(e);
        e.grantRole(e.MINTER_ROLE(), address(h));
        targetContract(address(h));
    }

    /// Supply equals the copies of accepted mints, every edition is within its cap, and the
    /// handler's balance is all of it.
    function invariant_supply_matches_accepted_mints_within_caps() public view {
        uint256 sum;
        for (uint256 id = 1; id <= e.editionCount(); id++) {
            (,, uint128 cap, uint128 minted) = e.editions(id);
            if (cap != 0) assertTrue(minted <= cap, "edition within its cap");
            assertEq(e.balanceOf(address(h), id), minted, "balance is supply");
            sum += minted;
        }
        assertEq(sum, h.acceptedCopies(), "supply is the sum of accepted mints");
    }

    /// No mint key was ever accepted twice.
    function invariant_no_key_mints_twice() public view {
        uint256 n = h.usedKeyCount();
        for (uint256 i = 0; i < n; i++) {
            for (uint256 j = i + 1; j < n; j++) {
                assertTrue(h.usedKeys(i) != h.usedKeys(j), "a key minted twice");
            }
        }
    }
}
