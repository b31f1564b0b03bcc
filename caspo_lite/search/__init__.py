"""Search strategies by name: greedy, sc, bon, deepconf, cat."""
