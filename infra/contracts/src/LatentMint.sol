// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title LatentMint
/// @notice ERC-721 collection of AI-generated images. Each token is minted for one pipeline
///         job, identified by a 32-byte job id; the contract refuses a job id it has already
///         minted, so retries, duplicate queue deliveries and racing workers can never produce
///         a second token for the same job.
contract LatentMint is ERC721, AccessControl {
    /// @notice Role allowed to mint.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice Number of tokens minted; token ids run from 1 to totalSupply.
    uint256 public totalSupply;

    /// @notice Token minted for a job id, 0 if none.
    mapping(bytes32 jobId => uint256 tokenId) public tokenOfJob;

    /// @notice Job id a token was minted for.
    mapping(uint256 tokenId => bytes32 jobId) public jobOfToken;

    mapping(uint256 tokenId => string uri) private _tokenURIs;

    /// @notice The job was minted before, as `tokenId`.
    error AlreadyMinted(bytes32 jobId, uint256 tokenId);
    /// @notice A job id of zero is refused: it is the "not minted" marker.
    error EmptyJobId();
    /// @notice A token must point at its metadata.
    error EmptyTokenURI();

    /// @notice A job was minted.
    event Minted(bytes32 indexed jobId, uint256 indexed tokenId, address indexed to, string tokenURI);

    constructor(string memory name_, string memory symbol_, address admin, address minter) ERC721(name_, symbol_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
    }

    /// @notice Mints the token of `jobId` to `to`, with metadata at `uri` (an ipfs:// URI).
    /// @dev Effects before the interaction; `_mint` (not `_safeMint`) makes no external call.
    function mint(address to, bytes32 jobId, string calldata uri) external onlyRole(MINTER_ROLE) returns (uint256 tokenId) {
        if (jobId == bytes32(0)) revert EmptyJobId();
        if (bytes(uri).length == 0) revert EmptyTokenURI();
        uint256 existing = tokenOfJob[jobId];
        if (existing != 0) revert AlreadyMinted(jobId, existing);
        tokenId = ++totalSupply;
        tokenOfJob[jobId] = tokenId;
        jobOfToken[tokenId] = jobId;
        _tokenURIs[tokenId] = uri;
        _mint(to, tokenId);
        emit Minted(jobId, tokenId, to, uri);
    }

    /// @inheritdoc ERC721
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        return _tokenURIs[tokenId];
    }

    /// @inheritdoc ERC721
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
