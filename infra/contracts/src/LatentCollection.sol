// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721A} from "erc721a/contracts/ERC721A.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {CidCodec} from "./CidCodec.sol";

/// @title LatentCollection
/// @notice Gas-lean ERC-721 for AI-generated images. Tokens are minted in batches with
///         sequential ids (ERC721A: one ownership write per batch to one recipient), each batch
///         under an idempotency key (a job id, or a hash of a batch's job ids) that can never mint
///         twice. Metadata lives on IPFS: a single mint stores its metadata CID's 32-byte digest,
///         a batch stores one directory CID digest (token i of the batch is `<dir>/<i>`), so
///         storage is O(1) per batch. Evolved tokens get a per-token URI override (ERC-4906).
/// @dev    CIDs are stored as sha2-256 digests and re-encoded (CIDv1, base32) in `tokenURI`.
///         Two id spaces: batches get ERC721A's sequential ids from 1; a single mint's id is
///         derived from its job id (`singleTokenId`, top bit set, far above any sequential
///         id), so the token itself is the job's idempotency record and a single mint writes
///         three storage slots (owner, balance, metadata digest) instead of five.
contract LatentCollection is ERC721A, AccessControl, Pausable, ERC2981 {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant METADATA_ROLE = keccak256("METADATA_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice A minted batch: its first token id and size (count 0 = key unused).
    struct Batch {
        uint64 first;
        uint32 count;
    }

    /// @notice Batches by idempotency key.
    mapping(bytes32 key => Batch) public batches;

    /// @dev Metadata of the batch starting at a token id: a raw-file CID digest (single mint) or
    ///      a directory CID digest (batch). Exactly one of the two is set per batch start.
    mapping(uint256 first => bytes32) private _fileDigest;
    mapping(uint256 first => bytes32) private _dirDigest;

    /// @notice Merkle root over the batch's generation records (leaf i: keccak256(bytes.concat(
    ///         keccak256(abi.encode(i, recordHash))))); the proof is in each token's metadata.
    mapping(uint256 first => bytes32) public provenanceRoot;

    mapping(uint256 tokenId => string) private _uriOverride;

    /// @dev Single mints (ids with the top bit set): owner per token, balance per owner, count.
    uint256 private constant SINGLE = 1 << 255;
    mapping(uint256 tokenId => address) private _singleOwner;
    mapping(address owner => uint256) private _singleBalance;
    uint256 private _singlesMinted;
    string private _contractURI;

    /// @notice The key was minted before, starting at `first`.
    error AlreadyMinted(bytes32 key, uint256 first);
    /// @notice Zero keys, empty batches and zero digests are refused.
    error EmptyArgument(string what);

    /// @notice A batch minted.
    event BatchMinted(bytes32 indexed batchId, uint256 first, uint256 count, bytes32 directoryDigest, bytes32 provenanceRoot);
    /// @notice ERC-4906.
    event MetadataUpdate(uint256 _tokenId);
    /// @notice ERC-4906.
    event BatchMetadataUpdate(uint256 _fromTokenId, uint256 _toTokenId);
    /// @notice ERC-7572.
    event ContractURIUpdated();

    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        address minter,
        address royaltyReceiver,
        uint96 royaltyBps,
        string memory contractURI_
    ) ERC721A(name_, symbol_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
        _grantRole(METADATA_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        if (royaltyReceiver != address(0)) _setDefaultRoyalty(royaltyReceiver, royaltyBps);
        _contractURI = contractURI_;
    }

    function _startTokenId() internal pure override returns (uint256) {
        return 1;
    }

    function _claim(bytes32 key, uint256 count) private returns (uint256 first) {
        if (key == bytes32(0)) revert EmptyArgument("key");
        if (count == 0) revert EmptyArgument("count");
        Batch memory b = batches[key];
        if (b.count != 0) revert AlreadyMinted(key, b.first);
        first = _nextTokenId();
        // Ids and counts stay far below 2^64 and 2^32: a batch is bounded by the block gas limit.
        // forge-lint: disable-next-line(unsafe-typecast)
        batches[key] = Batch(uint64(first), uint32(count));
    }

    /// @notice Mints one token for `jobId` to `to`; its id is `singleTokenId(jobId)`, its
    ///         metadata the raw-file CID whose sha2-256 digest is `metadataDigest` (the
    ///         metadata JSON's sha256).
    function mint(address to, bytes32 jobId, bytes32 metadataDigest) external onlyRole(MINTER_ROLE) whenNotPaused returns (uint256 tokenId) {
        if (jobId == bytes32(0)) revert EmptyArgument("key");
        if (metadataDigest == bytes32(0)) revert EmptyArgument("metadataDigest");
        if (to == address(0)) revert MintToZeroAddress();
        tokenId = singleTokenId(jobId);
        if (_singleOwner[tokenId] != address(0)) revert AlreadyMinted(jobId, tokenId);
        _singleOwner[tokenId] = to;
        _fileDigest[tokenId] = metadataDigest;
        unchecked {
            ++_singleBalance[to];
            ++_singlesMinted;
        }
        emit Transfer(address(0), to, tokenId);
    }

    /// @notice The id a single mint of `jobId` gets: the job id with the top bit set (job ids
    ///         are hashes, so two jobs differing only in that bit do not occur).
    function singleTokenId(bytes32 jobId) public pure returns (uint256) {
        return uint256(jobId) | SINGLE;
    }

    /// @notice The token minted for `key` (a job id minted alone, or a batch id: its first
    ///         token), or 0 if none.
    function mintedToken(bytes32 key) external view returns (uint256) {
        uint256 single = singleTokenId(key);
        if (_singleOwner[single] != address(0)) return single;
        return batches[key].first;
    }

    /// @notice Mints `count` tokens to `to` for batch `batchId`; token i's metadata is file `i`
    ///         of the UnixFS directory whose dag-pb CID digest is `directoryDigest`.
    function mintBatch(bytes32 batchId, address to, uint256 count, bytes32 directoryDigest, bytes32 root)
        external
        onlyRole(MINTER_ROLE)
        whenNotPaused
        returns (uint256 first)
    {
        if (directoryDigest == bytes32(0)) revert EmptyArgument("directoryDigest");
        first = _claim(batchId, count);
        _dirDigest[first] = directoryDigest;
        if (root != bytes32(0)) provenanceRoot[first] = root;
        _mint(to, count);
        emit BatchMinted(batchId, first, count, directoryDigest, root);
    }

    /// @notice Like `mintBatch`, one token to each of `recipients`, in order.
    function mintBatchTo(bytes32 batchId, address[] calldata recipients, bytes32 directoryDigest, bytes32 root)
        external
        onlyRole(MINTER_ROLE)
        whenNotPaused
        returns (uint256 first)
    {
        if (directoryDigest == bytes32(0)) revert EmptyArgument("directoryDigest");
        uint256 n = recipients.length;
        first = _claim(batchId, n);
        _dirDigest[first] = directoryDigest;
        if (root != bytes32(0)) provenanceRoot[first] = root;
        for (uint256 i; i < n; ++i) {
            _mint(recipients[i], 1);
        }
        emit BatchMinted(batchId, first, n, directoryDigest, root);
    }

    /// @notice First token id of the batch holding `tokenId`.
    function batchStart(uint256 tokenId) public view returns (uint256 first) {
        if (!_exists(tokenId)) revert URIQueryForNonexistentToken();
        if (tokenId & SINGLE != 0) return tokenId;
        first = tokenId;
        while (_fileDigest[first] == bytes32(0) && _dirDigest[first] == bytes32(0)) {
            unchecked {
                --first;
            }
        }
    }

    /// @notice `ipfs://<cid>` for a single mint, `ipfs://<dir cid>/<index>` for a batch, or
    ///         the token's override after an update.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        bytes memory o = bytes(_uriOverride[tokenId]);
        if (o.length != 0) return string(o);
        uint256 first = batchStart(tokenId);
        bytes32 file = _fileDigest[first];
        if (file != bytes32(0)) return string.concat("ipfs://", CidCodec.rawCid(file));
        return string.concat("ipfs://", CidCodec.dagPbCid(_dirDigest[first]), "/", _toString(tokenId - first));
    }

    /// @notice Points a token at new metadata (a living NFT evolved). ERC-4906.
    function setTokenURI(uint256 tokenId, string calldata uri) external onlyRole(METADATA_ROLE) {
        if (!_exists(tokenId)) revert URIQueryForNonexistentToken();
        _uriOverride[tokenId] = uri;
        emit MetadataUpdate(tokenId);
    }

    /// @notice Checks a generation record of a batch token against the batch's provenance root.
    function verifyProvenance(uint256 tokenId, bytes32 recordHash, bytes32[] calldata proof) external view returns (bool) {
        uint256 first = batchStart(tokenId);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(tokenId - first, recordHash))));
        return MerkleProof.verifyCalldata(proof, provenanceRoot[first], leaf);
    }

    /// @notice Checks metadata bytes of a single-mint token against its on-chain CID digest:
    ///         the metadata (with its provenance record) is exactly what was minted.
    function verifyMetadata(uint256 tokenId, bytes calldata metadata) external view returns (bool) {
        return _fileDigest[batchStart(tokenId)] == sha256(metadata) && bytes(_uriOverride[tokenId]).length == 0;
    }

    /// @notice ERC-7572 collection metadata.
    function contractURI() external view returns (string memory) {
        return _contractURI;
    }

    /// @notice Sets the collection metadata URI. ERC-7572.
    function setContractURI(string calldata uri) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _contractURI = uri;
        emit ContractURIUpdated();
    }

    /// @notice Sets the default royalty (ERC-2981).
    function setDefaultRoyalty(address receiver, uint96 bps) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setDefaultRoyalty(receiver, bps);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @notice Tokens minted so far.
    function totalMinted() external view returns (uint256) {
        return _totalMinted() + _singlesMinted;
    }

    function totalSupply() public view override returns (uint256) {
        return super.totalSupply() + _singlesMinted;
    }

    function _exists(uint256 tokenId) internal view override returns (bool) {
        if (tokenId & SINGLE != 0) return _singleOwner[tokenId] != address(0);
        return super._exists(tokenId);
    }

    function ownerOf(uint256 tokenId) public view override returns (address) {
        if (tokenId & SINGLE == 0) return super.ownerOf(tokenId);
        address owner = _singleOwner[tokenId];
        if (owner == address(0)) revert OwnerQueryForNonexistentToken();
        return owner;
    }

    function balanceOf(address owner) public view override returns (uint256) {
        return super.balanceOf(owner) + _singleBalance[owner];
    }

    /// @dev Single-mint ids live outside ERC721A's records; everything else is ERC721A's. The
    ///      safe variants call this one, then check the receiver.
    function transferFrom(address from, address to, uint256 tokenId) public payable override {
        if (tokenId & SINGLE == 0) return super.transferFrom(from, to, tokenId);
        address owner = _singleOwner[tokenId];
        if (owner == address(0)) revert OwnerQueryForNonexistentToken();
        if (owner != from) revert TransferFromIncorrectOwner();
        if (to == address(0)) revert TransferToZeroAddress();
        address approved = getApproved(tokenId);
        if (msg.sender != from && approved != msg.sender && !isApprovedForAll(from, msg.sender)) {
            revert TransferCallerNotOwnerNorApproved();
        }
        if (approved != address(0)) _approve(address(0), tokenId, false);
        _singleOwner[tokenId] = to;
        unchecked {
            --_singleBalance[from];
            ++_singleBalance[to];
        }
        emit Transfer(from, to, tokenId);
    }

    function supportsInterface(bytes4 id) public view override(ERC721A, AccessControl, ERC2981) returns (bool) {
        return id == 0x49064906 // ERC-4906
            || ERC721A.supportsInterface(id) || AccessControl.supportsInterface(id) || ERC2981.supportsInterface(id);
    }
}
