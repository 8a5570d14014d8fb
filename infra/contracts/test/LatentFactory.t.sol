// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {LatentCollection} from "../src/LatentCollection.sol";
import {LatentFactory} from "../src/LatentFactory.sol";
import {TestBase} from "./Vm.sol";

contract LatentFactoryTest is TestBase {
    address internal studio = address(0x57D10);

    function collectionCode(string memory name) internal view returns (bytes memory) {
        return abi.encodePacked(
            type(LatentCollection).creationCode, abi.encode(name, "N", studio, studio, address(0), uint96(0), "")
        );
    }

    function test_the_address_follows_from_owner_and_salt_only() public {
        LatentFactory f = new LatentFactory(studio);
        bytes32 salt = keccak256("neon");
        address expected = f.addressOf(salt);
        vm.prank(studio);
        address got = f.create(salt, collectionCode("Neon"));
        assertEq(got, expected, "deployed where addressOf said");
        assertEq(LatentCollection(got).name(), "Neon", "the collection is there");
        assertTrue(LatentCollection(got).hasRole(0x00, studio), "administered by the studio");
        // Another salt, other code: another address, announced the same way.
        bytes32 other = keccak256("other");
        address expectedOther = f.addressOf(other);
        vm.prank(studio);
        assertEq(f.create(other, collectionCode("Other name, other bytes")), expectedOther, "code does not matter");
    }

    function test_only_the_owner_deploys_and_a_salt_is_used_once() public {
        LatentFactory f = new LatentFactory(studio);
        bytes32 salt = keccak256("neon");
        vm.prank(address(0xBAD));
        vm.expectRevert(abi.encodeWithSelector(LatentFactory.NotOwner.selector, address(0xBAD)));
        f.create(salt, collectionCode("Squatter"));
        vm.prank(studio);
        f.create(salt, collectionCode("Neon"));
        vm.prank(studio);
        vm.expectRevert(abi.encodeWithSelector(LatentFactory.DeployFailed.selector, salt));
        f.create(salt, collectionCode("Neon"));
    }

    function test_reverting_creation_code_deploys_nothing() public {
        LatentFactory f = new LatentFactory(studio);
        vm.prank(studio);
        vm.expectRevert(abi.encodeWithSelector(LatentFactory.DeployFailed.selector, bytes32(uint256(1))));
        f.create(bytes32(uint256(1)), hex"fe");
    }
}
