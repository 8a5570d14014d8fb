// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title CidCodec
/// @notice CIDv1 strings (multibase base32, lower case) from sha2-256 digests, so contracts can
///         store 32 bytes per CID and still return `ipfs://bafy…` / `ipfs://bafk…` URIs.
library CidCodec {
    bytes internal constant ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

    /// @notice CIDv1 of a raw block (codec 0x55): a file of one chunk, as `ipfs add` makes it.
    function rawCid(bytes32 digest) internal pure returns (string memory) {
        return _cid(0x55, digest);
    }

    /// @notice CIDv1 of a dag-pb node (codec 0x70): a UnixFS directory or a multi-chunk file.
    function dagPbCid(bytes32 digest) internal pure returns (string memory) {
        return _cid(0x70, digest);
    }

    function _cid(uint8 codec, bytes32 digest) private pure returns (string memory) {
        // <version 1><codec><sha2-256 0x12><length 32><digest>
        bytes memory raw = abi.encodePacked(uint8(1), codec, uint8(0x12), uint8(0x20), digest);
        return string(abi.encodePacked("b", _base32(raw)));
    }

    function _base32(bytes memory data) private pure returns (bytes memory out) {
        uint256 bits = data.length * 8;
        out = new bytes((bits + 4) / 5);
        uint256 buffer;
        uint256 count;
        uint256 j;
        for (uint256 i; i < data.length; ++i) {
            buffer = (buffer << 8) | uint8(data[i]);
            count += 8;
            while (count >= 5) {
                count -= 5;
                out[j++] = ALPHABET[(buffer >> count) & 31];
            }
        }
        if (count > 0) out[j] = ALPHABET[(buffer << (5 - count)) & 31];
    }
}
