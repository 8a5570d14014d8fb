// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {CidCodec} from "./CidCodec.sol";
import {BlockNumber} from "./BlockNumber.sol";

/// @title LatentEditions
/// @notice ERC-1155 editions of AI-generated images: one generated image (one job) becomes an
///         edition, of which many copies can be minted, up to an optional cap. Creating an
///         edition is idempotent per job id, and each mint carries its own idempotency key (an
///         order id, a shop webhook id), so a retried message never mints copies twice.
///         Metadata is the edition's IPFS CID (stored as its 32-byte sha2-256 digest,
///         re-encoded in `uri`), with an override for evolved editions (the ERC-1155 `URI`
///         event tells indexers).
contract LatentEditions is ERC1155, AccessControl, Pausable, ERC2981 {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant METADATA_ROLE = keccak256("METADATA_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice An edition: its metadata digest, the job it came from, the cap (0: open) and
    ///         the copies minted so far.
    struct Edition {
        bytes32 metadataDigest;
        bytes32 jobId;
        uint128 maxSupply;
        uint128 minted;
    }

    /// @notice Editions by id (ids start at 1).
    mapping(uint256 id => Edition) public editions;
    /// @notice The edition made from a job (0: none yet).
    mapping(bytes32 jobId => uint256) public editionOfJob;
    /// @notice Mint keys already used, and the edition they minted.
    mapping(bytes32 key => uint256) public mintedBy;
    /// @notice Editions created.
    uint256 public editionCount;
    /// @notice The block this contract was deployed in (the L2's own number on Arbitrum).
    uint256 public immutable deployedBlock;

    mapping(uint256 id => string) private _uriOverride;
    string private _contractURI;

    /// @notice The job already has edition `id`.
    error EditionExists(bytes32 jobId, uint256 id);
    /// @notice The mint key was used before, for edition `id`.
    error AlreadyMinted(bytes32 key, uint256 id);
    /// @notice No such edition.
    error UnknownEdition(uint256 id);
    /// @notice The mint would pass the edition's cap.
    error SoldOut(uint256 id, uint256 maxSupply, uint256 minted, uint256 asked);
    /// @notice Zero keys, zero amounts and zero digests are refused.
    error EmptyArgument(string what);

    /// @notice An edition was created.
    event EditionCreated(uint256 indexed id, bytes32 indexed jobId, bytes32 metadataDigest, uint256 maxSupply);
    /// @notice Copies were minted under `key`.
    event EditionMinted(bytes32 indexed key, uint256 indexed id, address indexed to, uint256 amount);
    /// @notice ERC-7572.
    event ContractURIUpdated();

    constructor(address admin, address minter, address royaltyReceiver, uint96 royaltyBps, string memory contractURI_)
        ERC1155("")
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
        _grantRole(METADATA_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        if (royaltyReceiver != address(0)) _setDefaultRoyalty(royaltyReceiver, royaltyBps);
        _contractURI = contractURI_;
        deployedBlock = BlockNumber.current();
    }

    /// @notice Creates the edition of `jobId` with metadata `metadataDigest` (sha2-256 of the
    ///         metadata JSON, i.e. the digest of its raw CIDv1) and a cap (0: open edition).
    function createEdition(bytes32 jobId, bytes32 metadataDigest, uint128 maxSupply)
        external
        onlyRole(MINTER_ROLE)
        returns (uint256 id)
    {
        if (jobId == bytes32(0)) revert EmptyArgument("jobId");
        if (metadataDigest == bytes32(0)) revert EmptyArgument("metadataDigest");
        uint256 existing = editionOfJob[jobId];
        if (existing != 0) revert EditionExists(jobId, existing);
        id = ++editionCount;
        editionOfJob[jobId] = id;
        editions[id] = Edition({metadataDigest: metadataDigest, jobId: jobId, maxSupply: maxSupply, minted: 0});
        emit EditionCreated(id, jobId, metadataDigest, maxSupply);
    }

    /// @notice Mints `amount` copies of edition `id` to `to`, once per `key`.
    function mint(bytes32 key, uint256 id, address to, uint128 amount) external onlyRole(MINTER_ROLE) whenNotPaused {
        if (key == bytes32(0)) revert EmptyArgument("key");
        if (amount == 0) revert EmptyArgument("amount");
        uint256 used = mintedBy[key];
        if (used != 0) revert AlreadyMinted(key, used);
        Edition storage e = editions[id];
        if (e.metadataDigest == bytes32(0)) revert UnknownEdition(id);
        if (e.maxSupply != 0 && uint256(e.minted) + amount > e.maxSupply) {
            revert SoldOut(id, e.maxSupply, e.minted, amount);
        }
        mintedBy[key] = id;
        e.minted += amount;
        emit EditionMinted(key, id, to, amount);
        _mint(to, id, amount, "");
    }

    /// @notice `ipfs://<cid>` of the edition's metadata, or its override.
    function uri(uint256 id) public view override returns (string memory) {
        bytes32 digest = editions[id].metadataDigest;
        if (digest == bytes32(0)) revert UnknownEdition(id);
        string memory o = _uriOverride[id];
        if (bytes(o).length != 0) return o;
        return string.concat("ipfs://", CidCodec.rawCid(digest));
    }

    /// @notice Points an evolved edition at new metadata.
    function setURI(uint256 id, string calldata newUri) external onlyRole(METADATA_ROLE) {
        if (editions[id].metadataDigest == bytes32(0)) revert UnknownEdition(id);
        _uriOverride[id] = newUri;
        emit URI(newUri, id);
    }

    /// @notice True if `metadata` is the exact JSON the edition was created with.
    function verifyMetadata(uint256 id, bytes calldata metadata) external view returns (bool) {
        bytes32 digest = editions[id].metadataDigest;
        return digest != bytes32(0) && sha256(metadata) == digest;
    }

    /// @notice Copies minted of edition `id`.
    function totalSupply(uint256 id) external view returns (uint256) {
        return editions[id].minted;
    }

    /// @notice ERC-7572 collection metadata.
    function contractURI() external view returns (string memory) {
        return _contractURI;
    }

    /// @notice Sets the ERC-7572 collection metadata.
    function setContractURI(string calldata newUri) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _contractURI = newUri;
        emit ContractURIUpdated();
    }

    /// @notice ERC-2981 royalty for every edition.
    function setDefaultRoyalty(address receiver, uint96 bps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setDefaultRoyalty(receiver, bps);
    }

    /// @notice Stops minting (transfers go on).
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resumes minting.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC1155, AccessControl, ERC2981)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }
}
