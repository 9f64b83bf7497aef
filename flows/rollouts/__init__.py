"""Rollouts: a module revision carried across a target's fleet in waves (issue 23).

The gateway owns the rollout's record (which clients are in which wave, what each plan
showed, which run upgraded each); the ``rollout`` flow drives it, one wave at a time,
asking the gateway over HTTP as a scheduled sweep asks it for the fleet."""
