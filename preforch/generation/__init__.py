"""Pieces that produce replies under a weight vector, shared by training (alignment/) and serving (serving/):
the combined reward, candidate sampling, the WiC and MOSLIM spec readers, the multi-head model and its weighted
view, and the expert set. Below alignment and serving, above data, rewards and orchestrator."""
