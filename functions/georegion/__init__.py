"""``georegion``: entering and leaving saved georegions (home, work, custom places), with
hysteresis and a dwell time so that GPS jitter at a region's edge does not flap."""
