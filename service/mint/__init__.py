"""The mint flow (`broker.Broker`): authenticate, admit, apply the policy, ask upstream,
answer; and its memo.
"""
