# The flow-guided GRU on key frames (Eq. 6) of the synthvid GRU configs: one cell shared by both FPN levels, hidden
# size = FPN channels (64) so the aggregated feature feeds the head directly; Eq. 6's ReLU candidate (the FPN's outputs
# are post-ReLU; 'identity' is for signed features); the cell starts as plain propagation (the new key's own features)
# and learns how much warped history to mix in. Clips of 2 keys train 1 step and longer test chains drift: restart
# after 2 (README); the 8-key config runs the whole video (max_chain=None).
gru_aggregator = dict(type='FlowGuidedGRU', in_channels=64, hidden_channels=64, num_levels=1, candidate_act='relu',
                      init_as_propagation=True, max_chain=2)
