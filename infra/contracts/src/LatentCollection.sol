// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721A} from "erc721a/contracts/ERC721A.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {CidCodec} from "./CidCodec.sol";
import {BlockNumber} from "./BlockNumber.sol";

/// @title LatentCollection
/// @notice Gas-lean ERC-721 for AI-generated images, minting each job at most once on every
///         path. A job id carries its collection position in its low 64 bits; the contract
///         keeps one bit per position (256 positions per storage word) and refuses any mint,
///         alone or in a batch to one or many recipients, whose job's position is taken. So
///         no regrouping of jobs into batches, no lost local state and no second wallet can
///         mint a job twice. Metadata lives on IPFS: a single mint's token id *is* its
///         metadata CID's sha2-256 digest (nothing else to store), a batch stores one UnixFS
///         directory CID digest (token i of the batch is `<dir>/<i>`), so storage is O(1) per
///         batch. Every mint names its jobs in an event (`JobMinted`, `BatchMinted`), from
///         which anyone rebuilds which job became which token. Evolved tokens get a per-token
///         URI override (ERC-4906).
/// @dev    Two id spaces: batches get ERC721A's sequential ids from 1; a single mint's id is
///         its metadata digest, which is above 2^64 (a digest below it is refused), so the two
///         never meet. CIDs are re-encoded (CIDv1, base32) in `tokenURI`.
contract LatentCollection is ERC721A, AccessControl, ERC2981 {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant METADATA_ROLE = keccak256("METADATA_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice The block this contract was deployed in (the L2's own block number on
    ///         Arbitrum): no event of it is older, so a reader's log scan starts here.
    uint256 public immutable deployedBlock;

    /// @dev One bit per job position: word `p >> 8`, bit `p & 255`.
    mapping(uint256 word => uint256 bits) private _mintedPositions;

    /// @dev Metadata directory CID digest of the batch starting at a token id.
    mapping(uint256 first => bytes32) private _dirDigest;

    /// @notice Merkle root over the batch's generation records (leaf i: keccak256(bytes.concat(
    ///         keccak256(abi.encode(i, recordHash))))); the proof is in each token's metadata.
    mapping(uint256 first => bytes32) public provenanceRoot;

    mapping(uint256 tokenId => string) private _uriOverride;

    /// @dev Single mints (ids above 2^64): owner per token, balance per owner.
    mapping(uint256 tokenId => address) private _singleOwner;
    mapping(address owner => uint256) private _singleBalance;
    /// @dev Single mints so far, and the pause flag, in one slot: a single mint reads both
    ///      with one storage access (OpenZeppelin's Pausable would spend a second one).
    uint128 private _singlesMinted;
    bool private _paused;
    string private _contractURI;

    /// @notice The job's position (its id's low 64 bits) was minted before: by this job, or
    ///         by another job at the same position (an edited collection file).
    error AlreadyMinted(bytes32 jobId, uint64 position);
    /// @notice A single mint's token (its metadata digest) exists already.
    error TokenExists(uint256 tokenId);
    /// @notice Zero job ids, empty batches and unusable digests are refused.
    error EmptyArgument(string what);
    /// @notice A batch to many recipients needs one recipient per job.
    error LengthMismatch(uint256 jobs, uint256 recipients);

    /// @notice The contract is paused (as OpenZeppelin's Pausable says it).
    error EnforcedPause();
    /// @notice The contract is not paused.
    error ExpectedPause();

    /// @notice Job `jobId` was minted alone as `tokenId`.
    event JobMinted(bytes32 indexed jobId, uint256 tokenId);
    /// @notice Minting stopped (OpenZeppelin's Pausable event).
    event Paused(address account);
    /// @notice Minting resumed.
    event Unpaused(address account);
    /// @notice A batch was minted: token `first + i` is job `jobIds[i]`, its metadata file
    ///         `i` of the directory whose dag-pb CID digest is `directoryDigest`.
    event BatchMinted(
        bytes32 indexed batchId, uint256 first, bytes32 directoryDigest, bytes32 provenanceRoot, bytes32[] jobIds
    );
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
        deployedBlock = BlockNumber.current();
    }

    function _startTokenId() internal pure override returns (uint256) {
        return 1;
    }

    /// @notice A job's position in its collection: the low 64 bits of its id.
    function positionOf(bytes32 jobId) public pure returns (uint64) {
        return uint64(uint256(jobId));
    }

    /// @notice True once `jobId`'s position is minted (by it, or by another job there).
    function isMinted(bytes32 jobId) external view returns (bool) {
        uint64 p = positionOf(jobId);
        // forge-lint: disable-next-line(incorrect-shift)
        return _mintedPositions[p >> 8] & (1 << (p & 0xff)) != 0;
    }

    /// @notice `count` words of the position bitmap from word `from` (positions `from * 256`
    ///         on): how a reader learns which of thousands of jobs are minted in one call.
    function mintedWords(uint256 from, uint256 count) external view returns (uint256[] memory words) {
        words = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            words[i] = _mintedPositions[from + i];
        }
    }

    /// @dev Takes every job's position, or reverts naming the first one already taken (in
    ///      storage, or earlier in this same list). Runs of positions in one word cost one
    ///      read and one write of it.
    function _claim(bytes32[] calldata jobIds) internal virtual {
        uint256 n = jobIds.length;
        if (n == 0) revert EmptyArgument("jobIds");
        uint256 word = type(uint256).max;
        uint256 bits;
        for (uint256 i; i < n; ++i) {
            bytes32 job = jobIds[i];
            if (job == bytes32(0)) revert EmptyArgument("jobId");
            uint64 p = positionOf(job);
            uint256 w = p >> 8;
            if (w != word) {
                if (word != type(uint256).max) _mintedPositions[word] = bits;
                word = w;
                bits = _mintedPositions[w];
            }
            // forge-lint: disable-next-line(incorrect-shift)
            uint256 bit = 1 << (p & 0xff);
            if (bits & bit != 0) revert AlreadyMinted(job, p);
            bits |= bit;
        }
        _mintedPositions[word] = bits;
    }

    /// @dev Takes one job's position, or reverts if it is taken.
    function _claimOne(bytes32 jobId) internal virtual {
        uint64 p = positionOf(jobId);
        // forge-lint: disable-next-line(incorrect-shift)
        uint256 bit = 1 << (p & 0xff);
        uint256 bits = _mintedPositions[p >> 8];
        if (bits & bit != 0) revert AlreadyMinted(jobId, p);
        _mintedPositions[p >> 8] = bits | bit;
    }

    /// @notice Mints one token for `jobId` to `to`. Its id is `metadataDigest` (the sha2-256
    ///         digest of the metadata JSON, i.e. of its raw CIDv1), so the token id commits to
    ///         the metadata it was minted with.
    function mint(address to, bytes32 jobId, bytes32 metadataDigest)
        external
        onlyRole(MINTER_ROLE)
        whenNotPaused
        returns (uint256 tokenId)
    {
        if (jobId == bytes32(0)) revert EmptyArgument("jobId");
        tokenId = uint256(metadataDigest);
        // Below 2^64 would meet batch ids (a sha2-256 digest lands there with odds 2^-192).
        if (tokenId <= type(uint64).max) revert EmptyArgument("metadataDigest");
        if (to == address(0)) revert MintToZeroAddress();
        _claimOne(jobId);
        if (_singleOwner[tokenId] != address(0)) revert TokenExists(tokenId);
        _singleOwner[tokenId] = to;
        unchecked {
            ++_singleBalance[to];
            ++_singlesMinted;
        }
        emit JobMinted(jobId, tokenId);
        emit Transfer(address(0), to, tokenId);
    }

    /// @notice Mints one token per job of `jobIds` to `to`, as batch `batchId` (the caller's
    ///         name for it, in the event only); token `first + i` is job `i`, its metadata
    ///         file `i` of the UnixFS directory whose dag-pb CID digest is `directoryDigest`.
    function mintBatch(bytes32 batchId, address to, bytes32[] calldata jobIds, bytes32 directoryDigest, bytes32 root)
        external
        onlyRole(MINTER_ROLE)
        whenNotPaused
        returns (uint256 first)
    {
        if (directoryDigest == bytes32(0)) revert EmptyArgument("directoryDigest");
        _claim(jobIds);
        first = _nextTokenId();
        _dirDigest[first] = directoryDigest;
        if (root != bytes32(0)) provenanceRoot[first] = root;
        _mint(to, jobIds.length);
        emit BatchMinted(batchId, first, directoryDigest, root, jobIds);
    }

    /// @notice Like `mintBatch`, job `i`'s token to `recipients[i]`.
    function mintBatchTo(
        bytes32 batchId,
        address[] calldata recipients,
        bytes32[] calldata jobIds,
        bytes32 directoryDigest,
        bytes32 root
    ) external onlyRole(MINTER_ROLE) whenNotPaused returns (uint256 first) {
        if (directoryDigest == bytes32(0)) revert EmptyArgument("directoryDigest");
        uint256 n = recipients.length;
        if (n != jobIds.length) revert LengthMismatch(jobIds.length, n);
        _claim(jobIds);
        first = _nextTokenId();
        _dirDigest[first] = directoryDigest;
        if (root != bytes32(0)) provenanceRoot[first] = root;
        for (uint256 i; i < n; ++i) {
            _mint(recipients[i], 1);
        }
        emit BatchMinted(batchId, first, directoryDigest, root, jobIds);
    }

    /// @notice First token id of the batch holding `tokenId`.
    function batchStart(uint256 tokenId) public view returns (uint256 first) {
        if (!_exists(tokenId)) revert URIQueryForNonexistentToken();
        if (_isSingle(tokenId)) return tokenId;
        first = tokenId;
        while (_dirDigest[first] == bytes32(0)) {
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
        if (_isSingle(tokenId)) return string.concat("ipfs://", CidCodec.rawCid(bytes32(tokenId)));
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
        return _isSingle(tokenId) && _exists(tokenId) && bytes32(tokenId) == sha256(metadata)
            && bytes(_uriOverride[tokenId]).length == 0;
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

    modifier whenNotPaused() {
        if (_paused) revert EnforcedPause();
        _;
    }

    /// @notice True while minting is stopped.
    function paused() external view returns (bool) {
        return _paused;
    }

    /// @notice Stops minting (transfers go on).
    function pause() external onlyRole(PAUSER_ROLE) {
        if (_paused) revert EnforcedPause();
        _paused = true;
        emit Paused(msg.sender);
    }

    /// @notice Resumes minting.
    function unpause() external onlyRole(PAUSER_ROLE) {
        if (!_paused) revert ExpectedPause();
        _paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Tokens minted so far.
    function totalMinted() external view returns (uint256) {
        return _totalMinted() + _singlesMinted;
    }

    function totalSupply() public view override returns (uint256) {
        return super.totalSupply() + _singlesMinted;
    }

    /// @dev A single mint's id (a metadata digest); batch ids are sequential from 1.
    function _isSingle(uint256 tokenId) private pure returns (bool) {
        return tokenId > type(uint64).max;
    }

    function _exists(uint256 tokenId) internal view override returns (bool) {
        if (_isSingle(tokenId)) return _singleOwner[tokenId] != address(0);
        return super._exists(tokenId);
    }

    function ownerOf(uint256 tokenId) public view override returns (address) {
        if (!_isSingle(tokenId)) return super.ownerOf(tokenId);
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
        if (!_isSingle(tokenId)) return super.transferFrom(from, to, tokenId);
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
