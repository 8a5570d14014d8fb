// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title LatentFactory
/// @notice Deploys a studio's collections at addresses that follow from the studio (the
///         factory's owner) and a salt alone, never from the contract's bytecode or its
///         constructor arguments: a collection whose local records are lost is found again
///         at the same address, by any version of latentmint, on every chain.
/// @dev    One factory per owner, itself deployed through the standard deterministic
///         deployment proxy (0x4e59b44847b379578588920ca78fbf26c0b4956c, on anvil and the
///         L2s) with salt 0, so its address follows from the owner. `create` deploys a
///         minimal proxy with CREATE2(salt) whose only code runs CREATE on the calldata it is
///         given; the collection is that proxy's first creation, at
///         keccak256(rlp([proxy, 1])). Only the owner may deploy, so nobody can take a
///         studio's address with another contract. This contract's creation code must never
///         change: it fixes every factory's address (a Rust test pins its hash).
contract LatentFactory {
    /// @notice The studio whose collections this factory deploys.
    address public immutable owner;

    /// @dev Init code of the proxy: returns the runtime `CALLDATACOPY` + `CREATE` (value =
    ///      callvalue, code = calldata), 0x363d3d37363d34f0.
    bytes private constant PROXY = hex"67363d3d37363d34f03d5260086018f3";

    /// @notice Only the owner deploys.
    error NotOwner(address caller);
    /// @notice The salt was used before, or the creation code reverted.
    error DeployFailed(bytes32 salt);

    /// @notice A collection was deployed at `instance` under `salt`.
    event Deployed(bytes32 indexed salt, address instance);

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Deploys `initCode` (creation code and constructor arguments) at `addressOf(salt)`.
    function create(bytes32 salt, bytes calldata initCode) external returns (address instance) {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        bytes memory proxyCode = PROXY;
        address proxy;
        assembly ("memory-safe") {
            proxy := create2(0, add(proxyCode, 32), mload(proxyCode), salt)
        }
        if (proxy == address(0)) revert DeployFailed(salt);
        instance = addressOf(salt);
        (bool ok,) = proxy.call(initCode);
        if (!ok || instance.code.length == 0) revert DeployFailed(salt);
        emit Deployed(salt, instance);
    }

    /// @notice Where `create(salt, …)` puts its contract, whatever the code.
    function addressOf(bytes32 salt) public view returns (address) {
        address proxy = address(
            uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, keccak256(PROXY)))))
        );
        // RLP of [proxy, nonce 1]: 0xd6, 0x94 ++ 20 address bytes, 0x01.
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes2(0xd694), proxy, bytes1(0x01))))));
    }
}
