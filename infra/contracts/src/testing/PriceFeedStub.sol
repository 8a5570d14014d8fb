// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title PriceFeedStub
/// @notice Stands in for a Chainlink price feed (an AggregatorV3 with its `AnswerUpdated`
/// event) on anvil, so `[living.oracle]` runs against a real node in tests: anyone may post an
/// answer. Placed with anvil_setCode (no constructor runs), hence the constant decimals. Never
/// deployed to a chain.
contract PriceFeedStub {
    /// @notice Answers carry 8 decimals, as Chainlink's USD feeds do.
    uint8 public constant decimals = 8;

    uint80 private _round;
    int256 private _answer;
    uint256 private _updatedAt;

    /// @notice Chainlink's AggregatorInterface event.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    /// @notice Posts `answer` as the next round.
    function updateAnswer(int256 answer) external {
        _round += 1;
        _answer = answer;
        _updatedAt = block.timestamp;
        emit AnswerUpdated(answer, _round, block.timestamp);
    }

    /// @notice AggregatorV3Interface's read of the latest round.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (_round, _answer, _updatedAt, _updatedAt, _round);
    }
}
