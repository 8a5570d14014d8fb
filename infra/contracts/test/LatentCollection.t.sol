// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LatentCollection} from "../src/LatentCollection.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {TestBase, Vm} from "./Vm.sol";

contract LatentCollectionTest is TestBase {
    LatentCollection internal c;
    address internal admin = address(0xA11CE);
    address internal minter = address(0xB0B);
    address internal alice = address(0xA1);
    bytes32 internal constant HELLO = 0xb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9; // sha256("hello world")
    bytes32 internal constant DIR = 0x2b64c6d9afd8a34ed0dbf35f7de171a8825a50d9f42f05e98fe2b1addf00ab44;

    function setUp() public {
        c = new LatentCollection("Neon", "NEON", admin, minter, admin, 500, "ipfs://contract");
    }

    function test_single_mint_uri_is_the_raw_cid() public {
        vm.prank(minter);
        uint256 id = c.mint(alice, keccak256("job"), HELLO);
        assertEq(id, c.singleTokenId(keccak256("job")), "the id comes from the job id");
        assertEq(id, uint256(keccak256("job")) | (1 << 255), "top bit set");
        assertEq(c.mintedToken(keccak256("job")), id, "found by job id");
        assertEq(c.ownerOf(id), alice, "owner");
        assertEq(c.balanceOf(alice), 1, "balance");
        assertEq(c.totalSupply(), 1, "supply");
        // The CID `ipfs add --cid-version=1 --raw-leaves` gives for "hello world".
        assertEq(c.tokenURI(id), "ipfs://bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", "uri");
        assertTrue(c.verifyMetadata(id, "hello world"), "metadata bytes verify");
        assertTrue(!c.verifyMetadata(id, "hello world!"), "other bytes do not");
        // Batches keep their sequential ids next to it.
        vm.prank(minter);
        assertEq(c.mintBatch(keccak256("batch"), alice, 2, DIR, bytes32(0)), 1, "first batch id");
        assertEq(c.balanceOf(alice), 3, "balance over both id spaces");
        assertEq(c.totalSupply(), 3, "supply over both id spaces");
        assertEq(c.mintedToken(keccak256("batch")), 1, "batch found by its key");
        assertEq(c.mintedToken(keccak256("nothing")), 0, "unknown key");
    }

    function test_single_tokens_transfer_like_any_other() public {
        address bob = address(0xB2);
        address carol = address(0xC3);
        vm.prank(minter);
        uint256 id = c.mint(alice, keccak256("job"), HELLO);
        // Only the owner or an approved account moves it.
        vm.prank(bob);
        vm.expectRevert(bytes4(keccak256("TransferCallerNotOwnerNorApproved()")));
        c.transferFrom(alice, bob, id);
        vm.prank(alice);
        vm.expectRevert(bytes4(keccak256("TransferFromIncorrectOwner()")));
        c.transferFrom(bob, carol, id);
        vm.prank(alice);
        vm.expectRevert(bytes4(keccak256("TransferToZeroAddress()")));
        c.transferFrom(alice, address(0), id);
        vm.prank(alice);
        c.approve(bob, id);
        assertEq(c.getApproved(id), bob, "approved");
        vm.prank(bob);
        c.transferFrom(alice, carol, id);
        assertEq(c.ownerOf(id), carol, "moved by the approved account");
        assertEq(c.getApproved(id), address(0), "approval cleared");
        assertEq(c.balanceOf(alice), 0, "sender balance");
        assertEq(c.balanceOf(carol), 1, "receiver balance");
        vm.prank(carol);
        c.setApprovalForAll(bob, true);
        vm.prank(bob);
        c.safeTransferFrom(carol, alice, id);
        assertEq(c.ownerOf(id), alice, "moved by an operator, safely");
        uint256 unminted = c.singleTokenId(keccak256("other"));
        vm.expectRevert(bytes4(keccak256("OwnerQueryForNonexistentToken()")));
        c.ownerOf(unminted);
    }

    function test_batch_uris_index_into_the_directory() public {
        vm.prank(minter);
        uint256 first = c.mintBatch(keccak256("batch"), alice, 3, DIR, bytes32(0));
        assertEq(first, 1, "first");
        assertEq(c.balanceOf(alice), 3, "balance");
        assertEq(c.tokenURI(3), "ipfs://bafybeiblmtdntl6yunhnbw7tl566c4niqjnfbwpuf4c6td7cwgw56afliq/2", "third token");
        assertEq(c.batchStart(3), 1, "batch start");
    }

    function test_a_key_never_mints_twice() public {
        vm.startPrank(minter);
        c.mintBatch(keccak256("batch"), alice, 2, DIR, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, keccak256("batch"), uint256(1)));
        c.mintBatch(keccak256("batch"), alice, 2, DIR, bytes32(0));
        uint256 id = c.mint(alice, keccak256("job"), HELLO);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, keccak256("job"), id));
        c.mint(alice, keccak256("job"), HELLO);
        vm.stopPrank();
        assertEq(c.totalMinted(), 3, "supply");
    }

    function test_roles_guard_mint_update_and_pause() public {
        bytes32 role = c.MINTER_ROLE();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        c.mint(alice, keccak256("j"), HELLO);
        vm.prank(minter);
        uint256 id = c.mint(alice, keccak256("j"), HELLO);
        bytes32 mrole = c.METADATA_ROLE();
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, minter, mrole));
        c.setTokenURI(id, "ipfs://new");
        vm.prank(admin);
        c.pause();
        vm.prank(minter);
        vm.expectRevert(Pausable.EnforcedPause.selector);
        c.mint(alice, keccak256("k"), HELLO);
    }

    function test_evolved_token_override_and_erc4906() public {
        vm.prank(minter);
        uint256 id = c.mint(alice, keccak256("j"), HELLO);
        vm.prank(admin);
        c.setTokenURI(id, "ipfs://evolved");
        assertEq(c.tokenURI(id), "ipfs://evolved", "override");
        assertTrue(!c.verifyMetadata(id, "hello world"), "an evolved token no longer has its minted metadata");
        assertTrue(c.supportsInterface(0x49064906), "ERC-4906");
        assertTrue(c.supportsInterface(0x2a55205a), "ERC-2981");
        assertTrue(c.supportsInterface(0x80ac58cd), "ERC-721");
        (address r, uint256 amount) = c.royaltyInfo(id, 10000);
        assertEq(r, admin, "royalty receiver");
        assertEq(amount, 500, "5%");
        assertEq(c.contractURI(), "ipfs://contract", "ERC-7572");
    }

    function test_provenance_merkle_proof() public {
        // Two-leaf tree over (index, recordHash).
        bytes32 l0 = keccak256(bytes.concat(keccak256(abi.encode(uint256(0), keccak256("rec0")))));
        bytes32 l1 = keccak256(bytes.concat(keccak256(abi.encode(uint256(1), keccak256("rec1")))));
        bytes32 root = l0 < l1 ? keccak256(abi.encodePacked(l0, l1)) : keccak256(abi.encodePacked(l1, l0));
        vm.prank(minter);
        c.mintBatch(keccak256("b"), alice, 2, DIR, root);
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = l0;
        assertTrue(c.verifyProvenance(2, keccak256("rec1"), proof), "record 1 verifies");
        assertTrue(!c.verifyProvenance(2, keccak256("forged"), proof), "a forged record does not");
    }

    function testFuzz_batches_get_contiguous_ids(uint8 a, uint8 b, address to) public {
        vm.assume(a > 0 && b > 0 && to != address(0) && to.code.length == 0);
        vm.startPrank(minter);
        uint256 f1 = c.mintBatch(keccak256("1"), to, a, DIR, bytes32(0));
        uint256 f2 = c.mintBatch(keccak256("2"), to, b, DIR, bytes32(0));
        vm.stopPrank();
        assertEq(f2, f1 + a, "contiguous");
        assertEq(c.batchStart(f2 + b - 1), f2, "last token belongs to batch 2");
        assertEq(c.batchStart(f2 - 1), f1, "last token of batch 1");
        assertEq(c.totalMinted(), uint256(a) + b, "supply");
    }
}

/// Random mints under a few keys, repeats included, as duplicate deliveries would send them.
/// Job ids (single mints) and batch ids are separate spaces, as in the pipeline.
contract CollectionHandler {
    LatentCollection public immutable c;
    uint256 public sizes;
    uint256 public keys;
    /// Times the contract accepted a key it had accepted before: must stay 0.
    uint256 public duplicates;
    mapping(bytes32 => bool) public used;

    constructor(LatentCollection c_) {
        c = c_;
    }

    function mintBatch(uint8 keySeed, uint8 count) external {
        bytes32 key = keccak256(abi.encode("batch", keySeed % 12));
        uint256 n = uint256(count % 5) + 1;
        try c.mintBatch(key, address(0xD00D), n, bytes32(uint256(1)), bytes32(0)) {
            _accepted(key, n);
        } catch {}
    }

    function mint(uint8 keySeed) external {
        bytes32 key = keccak256(abi.encode("job", keySeed % 12));
        try c.mint(address(0xD00D), key, bytes32(uint256(2))) {
            _accepted(key, 1);
        } catch {}
    }

    /// Times an account without the role minted, re-pointed metadata or paused: must stay 0.
    uint256 public intrusions;

    /// The same calls from an account that holds no role.
    function intruder(uint8 what, uint8 keySeed) external {
        Vm vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
        bytes32 key = keccak256(abi.encode("intruder", keySeed));
        vm.prank(address(0xBAD));
        if (what % 4 == 0) {
            try c.mint(address(0xBAD), key, bytes32(uint256(3))) { intrusions++; } catch {}
        } else if (what % 4 == 1) {
            try c.mintBatch(key, address(0xBAD), 2, bytes32(uint256(1)), bytes32(0)) { intrusions++; } catch {}
        } else if (what % 4 == 2) {
            try c.setTokenURI(1, "ipfs://hijacked") { intrusions++; } catch {}
        } else {
            try c.pause() { intrusions++; } catch {}
        }
    }

    function _accepted(bytes32 key, uint256 n) private {
        if (used[key]) duplicates++;
        used[key] = true;
        keys++;
        sizes += n;
    }
}

contract LatentCollectionInvariants is TestBase {
    LatentCollection internal c;
    CollectionHandler internal h;

    function setUp() public {
        c = new LatentCollection("N", "N", address(this), address(this), address(0), 0, "");
        h = new CollectionHandler(c);
        c.grantRole(c.MINTER_ROLE(), address(h));
        targetContract(address(h));
    }

    /// Supply is the sum of the minted batch sizes and single mints, over both id spaces.
    function invariant_supply_is_sum_of_batches() public view {
        assertEq(c.totalMinted(), h.sizes(), "supply");
        assertEq(c.totalSupply(), h.sizes(), "totalSupply");
        assertEq(c.balanceOf(address(0xD00D)), h.sizes(), "balance");
    }

    /// Only the right roles mint, update metadata or pause.
    function invariant_only_roles_mint_update_or_pause() public view {
        assertEq(h.intrusions(), 0, "an account without the role got through");
        assertTrue(!c.paused(), "nobody with the pauser role paused");
        assertEq(c.balanceOf(address(0xBAD)), 0, "the intruder holds no token");
    }

    /// No key is ever accepted twice.
    function invariant_no_key_mints_twice() public view {
        assertEq(h.duplicates(), 0, "a key minted twice");
    }

    /// Only the minter role mints: this contract and the handler hold it, nobody else.
    function invariant_only_minters_hold_the_role() public view {
        assertTrue(!c.hasRole(c.MINTER_ROLE(), address(0xD00D)), "recipient is no minter");
    }
}
