// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LatentCollection} from "../src/LatentCollection.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {TestBase, Vm} from "./Vm.sol";

/// Job ids as the pipeline makes them: a hash, with the job's collection position in the low
/// 64 bits.
library Jobs {
    function id(uint64 position, string memory salt) internal pure returns (bytes32) {
        return bytes32(((uint256(keccak256(bytes(salt))) >> 64) << 64) | position);
    }

    function list(bytes32 a) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](1);
        l[0] = a;
    }

    function list(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](2);
        (l[0], l[1]) = (a, b);
    }

    function list(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32[] memory l) {
        l = new bytes32[](3);
        (l[0], l[1], l[2]) = (a, b, c);
    }

    function to(address a, uint256 n) internal pure returns (address[] memory r) {
        r = new address[](n);
        for (uint256 i; i < n; ++i) {
            r[i] = a;
        }
    }
}

contract LatentCollectionTest is TestBase {
    using Jobs for *;

    LatentCollection internal c;
    address internal admin = address(0xA11CE);
    address internal minter = address(0xB0B);
    address internal alice = address(0xA1);
    bytes32 internal constant HELLO = 0xb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9; // sha256("hello world")
    bytes32 internal constant OTHER = 0x8a1898da7e37026d5ebf27a9e8d60e77134078548e10286bafe337b4e8a282a3;
    bytes32 internal constant DIR = 0x2b64c6d9afd8a34ed0dbf35f7de171a8825a50d9f42f05e98fe2b1addf00ab44;

    function setUp() public {
        vm.roll(42);
        c = new LatentCollection("Neon", "NEON", admin, minter, admin, 500, "ipfs://contract");
    }

    function test_deployed_block_is_recorded() public view {
        assertEq(c.deployedBlock(), 42, "a local chain's own block number");
    }

    function test_single_mint_id_is_the_metadata_digest() public {
        bytes32 job = Jobs.id(7, "job");
        vm.prank(minter);
        uint256 id = c.mint(alice, job, HELLO);
        assertEq(id, uint256(HELLO), "the id is the metadata digest");
        assertTrue(c.isMinted(job), "the job's position is taken");
        assertEq(c.positionOf(job), 7, "position = low 64 bits");
        assertEq(c.ownerOf(id), alice, "owner");
        assertEq(c.balanceOf(alice), 1, "balance");
        assertEq(c.totalSupply(), 1, "supply");
        // The CID `ipfs add --cid-version=1 --raw-leaves` gives for "hello world".
        assertEq(c.tokenURI(id), "ipfs://bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e", "uri");
        assertTrue(c.verifyMetadata(id, "hello world"), "metadata bytes verify");
        assertTrue(!c.verifyMetadata(id, "hello world!"), "other bytes do not");
        // Batches keep their sequential ids next to it.
        vm.prank(minter);
        assertEq(c.mintBatch(keccak256("batch"), alice, Jobs.list(Jobs.id(8, "a"), Jobs.id(9, "b")), DIR, 0), 1, "first");
        assertEq(c.balanceOf(alice), 3, "balance over both id spaces");
        assertEq(c.totalSupply(), 3, "supply over both id spaces");
        assertTrue(!c.verifyMetadata(1, "hello world"), "a batch token's metadata is checked through its directory");
        uint256[] memory words = c.mintedWords(0, 2);
        assertEq(words[0], (1 << 7) | (1 << 8) | (1 << 9), "positions 7, 8, 9");
        assertEq(words[1], 0, "nothing above 255");
    }

    function test_digests_in_the_batch_id_range_are_refused() public {
        vm.startPrank(minter);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.EmptyArgument.selector, "metadataDigest"));
        c.mint(alice, Jobs.id(1, "j"), bytes32(uint256(type(uint64).max)));
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.EmptyArgument.selector, "jobId"));
        c.mint(alice, bytes32(0), HELLO);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.EmptyArgument.selector, "jobIds"));
        c.mintBatch(0, alice, new bytes32[](0), DIR, 0);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.LengthMismatch.selector, 2, 1));
        c.mintBatchTo(0, Jobs.to(alice, 1), Jobs.list(Jobs.id(1, "a"), Jobs.id(2, "b")), DIR, 0);
        vm.stopPrank();
    }

    function test_single_tokens_transfer_like_any_other() public {
        address bob = address(0xB2);
        address carol = address(0xC3);
        vm.prank(minter);
        uint256 id = c.mint(alice, Jobs.id(1, "job"), HELLO);
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
        vm.expectRevert(bytes4(keccak256("OwnerQueryForNonexistentToken()")));
        c.ownerOf(uint256(OTHER));
    }

    function test_batch_uris_index_into_the_directory() public {
        vm.prank(minter);
        uint256 first =
            c.mintBatch(keccak256("batch"), alice, Jobs.list(Jobs.id(0, "a"), Jobs.id(1, "b"), Jobs.id(2, "c")), DIR, 0);
        assertEq(first, 1, "first");
        assertEq(c.balanceOf(alice), 3, "balance");
        assertEq(c.tokenURI(3), "ipfs://bafybeiblmtdntl6yunhnbw7tl566c4niqjnfbwpuf4c6td7cwgw56afliq/2", "third token");
        assertEq(c.batchStart(3), 1, "batch start");
    }

    /// Every path against every other: a job minted one way is refused every other way.
    function test_a_job_never_mints_twice_on_any_path() public {
        bytes32 a = Jobs.id(1, "a");
        bytes32 b = Jobs.id(2, "b");
        bytes32 c3 = Jobs.id(3, "c");
        vm.startPrank(minter);
        c.mint(alice, a, HELLO);
        // Alone, then alone again (other metadata: a regenerated image).
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, a, uint64(1)));
        c.mint(alice, a, OTHER);
        // Alone, then in a batch to one recipient, and to many.
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, a, uint64(1)));
        c.mintBatch(keccak256("x"), alice, Jobs.list(b, a), DIR, 0);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, a, uint64(1)));
        c.mintBatchTo(keccak256("y"), Jobs.to(alice, 2), Jobs.list(a, b), DIR, 0);
        // In a batch, then regrouped into another batch, then alone.
        c.mintBatch(keccak256("b1"), alice, Jobs.list(b, c3), DIR, 0);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, c3, uint64(3)));
        c.mintBatchTo(keccak256("b2"), Jobs.to(alice, 2), Jobs.list(Jobs.id(4, "d"), c3), DIR, 0);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, b, uint64(2)));
        c.mint(alice, b, OTHER);
        // Twice in one batch.
        bytes32 d = Jobs.id(300, "d");
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, d, uint64(300)));
        c.mintBatch(keccak256("z"), alice, Jobs.list(d, Jobs.id(5, "e"), d), DIR, 0);
        vm.stopPrank();
        assertEq(c.totalMinted(), 3, "supply: a, b, c");
        assertTrue(!c.isMinted(d), "the refused batch left nothing behind");
    }

    /// An edited collection file puts another job at a minted position: refused too.
    function test_a_position_holds_one_job() public {
        vm.prank(minter);
        c.mint(alice, Jobs.id(9, "first version"), HELLO);
        bytes32 edited = Jobs.id(9, "edited prompt");
        assertTrue(c.isMinted(edited), "the position reads as taken");
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, edited, uint64(9)));
        c.mint(alice, edited, OTHER);
    }

    function test_roles_guard_mint_update_and_pause() public {
        bytes32 role = c.MINTER_ROLE();
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role));
        c.mint(alice, Jobs.id(1, "j"), HELLO);
        vm.prank(minter);
        uint256 id = c.mint(alice, Jobs.id(1, "j"), HELLO);
        bytes32 mrole = c.METADATA_ROLE();
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, minter, mrole));
        c.setTokenURI(id, "ipfs://new");
        vm.prank(admin);
        c.pause();
        vm.prank(minter);
        vm.expectRevert(LatentCollection.EnforcedPause.selector);
        c.mint(alice, Jobs.id(2, "k"), OTHER);
        vm.prank(minter);
        vm.expectRevert(LatentCollection.EnforcedPause.selector);
        c.mintBatch(0, alice, Jobs.list(Jobs.id(3, "l")), DIR, 0);
        assertTrue(c.paused(), "paused");
        vm.prank(admin);
        c.unpause();
        vm.prank(minter);
        c.mint(alice, Jobs.id(2, "k"), OTHER);
        assertEq(c.totalSupply(), 2, "minting again after unpause");
    }

    function test_evolved_token_override_and_erc4906() public {
        vm.prank(minter);
        uint256 id = c.mint(alice, Jobs.id(1, "j"), HELLO);
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
        c.mintBatch(keccak256("b"), alice, Jobs.list(Jobs.id(0, "a"), Jobs.id(1, "b")), DIR, root);
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = l0;
        assertTrue(c.verifyProvenance(2, keccak256("rec1"), proof), "record 1 verifies");
        assertTrue(!c.verifyProvenance(2, keccak256("forged"), proof), "a forged record does not");
    }

    function testFuzz_batches_get_contiguous_ids(uint8 a, uint8 b, address to) public {
        vm.assume(a > 0 && b > 0 && to != address(0) && to.code.length == 0);
        bytes32[] memory first = new bytes32[](a);
        bytes32[] memory second = new bytes32[](b);
        for (uint256 i; i < a; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            first[i] = Jobs.id(uint64(i), "first");
        }
        for (uint256 i; i < b; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            second[i] = Jobs.id(uint64(1000 + i), "second");
        }
        vm.startPrank(minter);
        uint256 f1 = c.mintBatch(keccak256("1"), to, first, DIR, 0);
        uint256 f2 = c.mintBatch(keccak256("2"), to, second, DIR, 0);
        vm.stopPrank();
        assertEq(f2, f1 + a, "contiguous");
        assertEq(c.batchStart(f2 + b - 1), f2, "last token belongs to batch 2");
        assertEq(c.batchStart(f2 - 1), f1, "last token of batch 1");
        assertEq(c.totalMinted(), uint256(a) + b, "supply");
    }

    /// Any two job lists that share a position: whichever path mints the first, the second
    /// is refused whole, and the bitmap holds exactly the first list's positions.
    function testFuzz_overlapping_lists_mint_once(uint64 base, uint8 n, uint8 m, uint8 shared, uint8 paths) public {
        n = uint8(bound(n, 1, 40));
        m = uint8(bound(m, 1, 40));
        shared = uint8(bound(shared, 0, n - 1));
        base = uint64(bound(base, 0, type(uint64).max - 200));
        bytes32[] memory one = new bytes32[](n);
        bytes32[] memory two = new bytes32[](m);
        for (uint256 i; i < n; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            one[i] = Jobs.id(base + uint64(i), "one");
        }
        for (uint256 i; i < m; ++i) {
            // forge-lint: disable-next-line(unsafe-typecast)
            two[i] = Jobs.id(base + uint64(n + i), "two");
        }
        // The second list regroups one job of the first (at a random place).
        two[shared % m] = one[shared];
        vm.startPrank(minter);
        _mintAny(paths & 1, one);
        vm.expectRevert(abi.encodeWithSelector(LatentCollection.AlreadyMinted.selector, one[shared], base + shared));
        _mintAnyExternal(paths >> 1 & 1, two);
        vm.stopPrank();
        assertEq(c.totalMinted(), n, "only the first list");
        for (uint256 i; i < m; ++i) {
            assertEq(c.isMinted(two[i]), two[i] == one[shared], "nothing of the refused list is taken");
        }
    }

    function _mintAny(uint256 path, bytes32[] memory jobs) internal {
        if (jobs.length == 1 && path == 0) {
            c.mint(alice, jobs[0], keccak256(abi.encode(jobs[0])));
        } else if (path == 0) {
            c.mintBatch(keccak256(abi.encode(jobs)), alice, jobs, DIR, 0);
        } else {
            c.mintBatchTo(keccak256(abi.encode(jobs)), Jobs.to(address(0xC0FFEE), jobs.length), jobs, DIR, 0);
        }
    }

    /// The same, as the one external call `expectRevert` watches.
    function _mintAnyExternal(uint256 path, bytes32[] memory jobs) internal {
        if (jobs.length == 1 && path == 0) {
            c.mint(alice, jobs[0], keccak256(abi.encode(jobs[0])));
        } else if (path == 0) {
            c.mintBatch(keccak256(abi.encode(jobs)), alice, jobs, DIR, 0);
        } else {
            c.mintBatchTo(keccak256(abi.encode(jobs)), Jobs.to(address(0xC0FFEE), jobs.length), jobs, DIR, 0);
        }
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}

/// Random mints of a small universe of jobs, on every path, repeats and regroupings included,
/// as duplicate deliveries, lost state and a second wallet would send them.
contract CollectionHandler {
    LatentCollection public immutable c;
    /// Tokens the contract accepted.
    uint256 public tokens;
    /// Jobs the contract accepted a second time (by id or by position): must stay 0.
    uint256 public duplicates;
    /// Accepted calls where a job of the list was minted before: must stay 0.
    mapping(bytes32 => bool) public minted;
    mapping(uint64 => bool) public positionTaken;

    constructor(LatentCollection c_) {
        c = c_;
    }

    /// 24 jobs over positions 0..19 and 250..253, and 4 more that are a second job at a
    /// position another job holds (an edited collection file).
    function job(uint8 seed) public pure returns (bytes32) {
        uint256 k = seed % 28;
        if (k < 20) return bytes32(((uint256(keccak256(abi.encode("job", k))) >> 64) << 64) | k);
        if (k < 24) return bytes32(((uint256(keccak256(abi.encode("job", k))) >> 64) << 64) | (230 + k));
        return bytes32(((uint256(keccak256(abi.encode("edited", k))) >> 64) << 64) | (k - 24));
    }

    function mint(uint8 seed) external {
        bytes32 j = job(seed);
        try c.mint(address(0xD00D), j, keccak256(abi.encode(j, seed))) {
            _accepted(j);
        } catch {}
    }

    function mintBatch(uint8 s1, uint8 s2, uint8 s3, uint8 n) external {
        bytes32[] memory jobs = _list(s1, s2, s3, n);
        try c.mintBatch(keccak256(abi.encode(jobs)), address(0xD00D), jobs, bytes32(uint256(1)), bytes32(0)) {
            for (uint256 i; i < jobs.length; ++i) {
                _accepted(jobs[i]);
            }
        } catch {}
    }

    function mintBatchTo(uint8 s1, uint8 s2, uint8 s3, uint8 n) external {
        bytes32[] memory jobs = _list(s1, s2, s3, n);
        address[] memory to = new address[](jobs.length);
        for (uint256 i; i < jobs.length; ++i) {
            to[i] = address(0xD00D);
        }
        try c.mintBatchTo(keccak256(abi.encode(jobs)), to, jobs, bytes32(uint256(1)), bytes32(0)) {
            for (uint256 i; i < jobs.length; ++i) {
                _accepted(jobs[i]);
            }
        } catch {}
    }

    function _list(uint8 s1, uint8 s2, uint8 s3, uint8 n) private pure returns (bytes32[] memory l) {
        l = new bytes32[](n % 3 + 1);
        l[0] = job(s1);
        if (l.length > 1) l[1] = job(s2);
        if (l.length > 2) l[2] = job(s3);
    }

    /// Times an account without the role minted, re-pointed metadata, paused or granted
    /// itself a role: must stay 0.
    uint256 public intrusions;

    /// The same calls from an account that holds no role.
    function intruder(uint8 what, uint8 seed) external {
        Vm vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
        bytes32 j = job(seed);
        vm.prank(address(0xBAD));
        uint256 w = what % 6;
        if (w == 0) {
            try c.mint(address(0xBAD), j, keccak256("intruder")) { intrusions++; } catch {}
        } else if (w == 1) {
            bytes32[] memory l = new bytes32[](1);
            l[0] = j;
            try c.mintBatch(j, address(0xBAD), l, bytes32(uint256(1)), bytes32(0)) { intrusions++; } catch {}
        } else if (w == 2) {
            try c.setTokenURI(1, "ipfs://hijacked") { intrusions++; } catch {}
        } else if (w == 3) {
            try c.pause() { intrusions++; } catch {}
        } else if (w == 4) {
            bytes32 minterRole = c.MINTER_ROLE();
            try c.grantRole(minterRole, address(0xBAD)) { intrusions++; } catch {}
        } else {
            bytes32 adminRole = c.DEFAULT_ADMIN_ROLE();
            try c.grantRole(adminRole, address(0xBAD)) { intrusions++; } catch {}
        }
    }

    function _accepted(bytes32 j) private {
        uint64 p = uint64(uint256(j));
        if (minted[j] || positionTaken[p]) duplicates++;
        minted[j] = true;
        positionTaken[p] = true;
        tokens++;
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

    /// No job id, and no position, ever owns two tokens, whichever paths minted them.
    function invariant_no_job_mints_twice() public view {
        assertEq(h.duplicates(), 0, "a job (or its position) minted twice");
    }

    /// Supply is one token per accepted job, over both id spaces, and the bitmap holds exactly
    /// the accepted jobs' positions.
    function invariant_one_token_per_job() public view {
        assertEq(c.totalMinted(), h.tokens(), "supply");
        assertEq(c.totalSupply(), h.tokens(), "totalSupply");
        assertEq(c.balanceOf(address(0xD00D)), h.tokens(), "balance");
        uint256 set;
        uint256[] memory words = c.mintedWords(0, 1);
        for (uint256 b; b < 256; ++b) {
            if (words[0] >> b & 1 == 1) set++;
        }
        assertEq(set, h.tokens(), "one position per token");
    }

    /// Only the right roles mint, update metadata, pause or grant roles.
    function invariant_only_roles_mint_update_pause_or_grant() public view {
        assertEq(h.intrusions(), 0, "an account without the role got through");
        assertTrue(!c.paused(), "nobody with the pauser role paused");
        assertEq(c.balanceOf(address(0xBAD)), 0, "the intruder holds no token");
        assertTrue(!c.hasRole(c.MINTER_ROLE(), address(0xBAD)), "the intruder is no minter");
        assertTrue(!c.hasRole(c.DEFAULT_ADMIN_ROLE(), address(0xBAD)), "the intruder is no admin");
    }
}
