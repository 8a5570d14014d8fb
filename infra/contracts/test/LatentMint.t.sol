// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LatentMint} from "../src/LatentMint.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {TestBase} from "./Vm.sol";

contract LatentMintTest is TestBase {
    LatentMint internal nft;
    address internal admin = address(0xA11CE);
    address internal minter = address(0xB0B);
    address internal collector = address(0xC0FFEE);

    function setUp() public {
        nft = new LatentMint("Neon Shapes", "NEON", admin, minter);
    }

    function test_mint_records_owner_uri_and_job() public {
        vm.prank(minter);
        uint256 id = nft.mint(collector, keccak256("job-1"), "ipfs://meta1");
        assertEq(id, 1, "first token id");
        assertEq(nft.ownerOf(1), collector, "owner");
        assertEq(nft.tokenURI(1), "ipfs://meta1", "tokenURI");
        assertEq(nft.tokenOfJob(keccak256("job-1")), 1, "tokenOfJob");
        assertEq(nft.jobOfToken(1), keccak256("job-1"), "jobOfToken");
        assertEq(nft.totalSupply(), 1, "supply");
    }

    function test_same_job_twice_is_refused() public {
        vm.startPrank(minter);
        nft.mint(collector, keccak256("job-1"), "ipfs://a");
        vm.expectRevert(abi.encodeWithSelector(LatentMint.AlreadyMinted.selector, keccak256("job-1"), uint256(1)));
        nft.mint(admin, keccak256("job-1"), "ipfs://b");
        vm.stopPrank();
        assertEq(nft.totalSupply(), 1, "supply after refused duplicate");
        assertEq(nft.ownerOf(1), collector, "first mint stands");
    }

    function test_only_minter_mints() public {
        bytes32 role = nft.MINTER_ROLE();
        vm.prank(collector);
        vm.expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, collector, role));
        nft.mint(collector, keccak256("job-1"), "ipfs://a");
    }

    function test_empty_job_and_uri_are_refused() public {
        vm.startPrank(minter);
        vm.expectRevert(LatentMint.EmptyJobId.selector);
        nft.mint(collector, bytes32(0), "ipfs://a");
        vm.expectRevert(LatentMint.EmptyTokenURI.selector);
        nft.mint(collector, keccak256("j"), "");
        vm.stopPrank();
    }

    function test_tokenURI_of_unminted_token_reverts() public {
        vm.expectRevert();
        nft.tokenURI(7);
    }

    function test_supports_erc721_and_access_control() public view {
        assertTrue(nft.supportsInterface(0x80ac58cd), "ERC-721");
        assertTrue(nft.supportsInterface(0x7965db0b), "AccessControl");
    }

    function testFuzz_distinct_jobs_get_distinct_tokens(bytes32 a, bytes32 b, address to) public {
        vm.assume(a != b && a != bytes32(0) && b != bytes32(0) && to != address(0));
        vm.startPrank(minter);
        uint256 ta = nft.mint(to, a, "ipfs://a");
        uint256 tb = nft.mint(to, b, "ipfs://b");
        vm.stopPrank();
        assertTrue(ta != tb, "distinct ids");
        assertEq(nft.tokenOfJob(a), ta, "a");
        assertEq(nft.tokenOfJob(b), tb, "b");
    }

    function testFuzz_a_job_never_mints_twice(bytes32 job, address first, address second) public {
        vm.assume(job != bytes32(0) && first != address(0) && second != address(0));
        vm.startPrank(minter);
        uint256 id = nft.mint(first, job, "ipfs://1");
        vm.expectRevert(abi.encodeWithSelector(LatentMint.AlreadyMinted.selector, job, id));
        nft.mint(second, job, "ipfs://2");
        vm.stopPrank();
        assertEq(nft.ownerOf(id), first, "owner unchanged");
        assertEq(nft.totalSupply(), 1, "one token");
    }
}

/// Drives random mints, many of them repeats of earlier job ids, as duplicate queue
/// deliveries would.
contract MintHandler {
    LatentMint public immutable nft;
    bytes32[] public jobs;
    uint256 public successes;
    mapping(bytes32 => bool) public seen;

    constructor(LatentMint nft_) {
        nft = nft_;
    }

    function mint(uint8 jobSeed, address to) external {
        // Few distinct job ids, so repeats are frequent.
        bytes32 job = keccak256(abi.encode(jobSeed % 16));
        if (to == address(0)) to = address(0xD00D);
        try nft.mint(to, job, "ipfs://x") {
            successes++;
            if (!seen[job]) {
                seen[job] = true;
                jobs.push(job);
            }
        } catch {}
    }

    function jobCount() external view returns (uint256) {
        return jobs.length;
    }
}

contract LatentMintInvariants is TestBase {
    LatentMint internal nft;
    MintHandler internal handler;

    function setUp() public {
        nft = new LatentMint("Neon Shapes", "NEON", address(this), address(this));
        handler = new MintHandler(nft);
        nft.grantRole(nft.MINTER_ROLE(), address(handler));
        targetContract(address(handler));
    }

    /// Every successful mint was a new job: no job ever minted twice.
    function invariant_each_job_minted_at_most_once() public view {
        assertEq(handler.successes(), handler.jobCount(), "mints == distinct jobs");
        assertEq(nft.totalSupply(), handler.successes(), "supply == mints");
    }

    /// The job <-> token maps are inverse to each other.
    function invariant_job_token_maps_agree() public view {
        uint256 n = handler.jobCount();
        for (uint256 i = 0; i < n; i++) {
            bytes32 job = handler.jobs(i);
            uint256 id = nft.tokenOfJob(job);
            assertTrue(id != 0, "minted job has a token");
            assertEq(nft.jobOfToken(id), job, "token maps back to its job");
        }
    }
}
