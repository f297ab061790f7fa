"""The layers: a common base, the feed-forward and the recurrent layers."""
